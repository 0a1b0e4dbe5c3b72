// Monti's small browser glue. Pages work without it; it adds the theme switch, tells
// htmx requests about the CSRF token, and marks the page once htmx is running.
(function () {
  "use strict";

  var THEMES = ["auto", "light", "dark"];
  var STORAGE_KEY = "monti-theme";

  function storedTheme() {
    try {
      var value = window.localStorage.getItem(STORAGE_KEY);
      return THEMES.indexOf(value) >= 0 ? value : "auto";
    } catch (e) {
      return "auto";
    }
  }

  function applyTheme(theme) {
    var root = document.documentElement;
    if (theme === "auto") {
      delete root.dataset.theme;
    } else {
      root.dataset.theme = theme;
    }
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.textContent = "Theme: " + theme;
    });
  }

  applyTheme(storedTheme());

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-theme-toggle]");
    if (!button) {
      return;
    }
    var next = THEMES[(THEMES.indexOf(storedTheme()) + 1) % THEMES.length];
    try {
      window.localStorage.setItem(STORAGE_KEY, next);
    } catch (e) {
      // Private browsing: the choice lasts for this page only.
    }
    applyTheme(next);
  });

  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) {
      event.detail.headers["X-CSRF-Token"] = meta.content;
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    applyTheme(storedTheme());
    if (window.htmx) {
      document.documentElement.dataset.htmxVersion = window.htmx.version;
    }
  });
})();

// Forms marked data-confirm ask before submitting (delete buttons); selects marked
// data-autosubmit submit their form on change (the tenant switcher). Without JavaScript the
// forms still work: a plain submit button is shown instead.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
  document.addEventListener("change", function (event) {
    var select = event.target.closest("select[data-autosubmit]");
    if (select && select.form) {
      select.form.requestSubmit();
    }
  });
})();
