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

  // A refusal or a failed check comes back as a fragment saying why (the server never sends
  // htmx a whole page): show it where the request's answer goes, as htmx does for a success.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status >= 400 && status < 600 && event.detail.serverResponse) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
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

// The live board. The server pushes rows (rendered once per tick for everyone) into a hidden
// inbox; here each row goes to its group(s) in the board's sort order, rows that left the
// view are taken away, group counts are recounted, and times in state tick every second.
(function () {
  "use strict";

  function start() {
    var board = document.getElementById("board");
    if (!board) {
      return;
    }
    var group = board.dataset.group;
    var sort = board.dataset.sort;
    var bands = JSON.parse(board.dataset.bands || "{}");
    var labels = JSON.parse(board.dataset.labels || "{}");
    var stateOrder = Object.keys(labels);
    var inbox = document.getElementById("board-inbox");

    function keysOf(row) {
      switch (group) {
        case "state":
          return [row.dataset.state];
        case "queue":
          var queues = (row.dataset.queues || "").split(" ").filter(Boolean);
          return queues.length ? queues : ["none"];
        case "location":
          return [row.dataset.location || "none"];
        default:
          return [row.dataset.team || "none"];
      }
    }

    function before(a, b) {
      if (sort === "time") {
        return Number(a.dataset.since) < Number(b.dataset.since);
      }
      if (sort === "state" && a.dataset.state !== b.dataset.state) {
        return stateOrder.indexOf(a.dataset.state) < stateOrder.indexOf(b.dataset.state);
      }
      return a.dataset.name < b.dataset.name;
    }

    function insertSorted(list, row) {
      // Binary search over the rows already there.
      var rows = list.children;
      var low = 0;
      var high = rows.length;
      while (low < high) {
        var mid = (low + high) >> 1;
        if (before(rows[mid], row)) {
          low = mid + 1;
        } else {
          high = mid;
        }
      }
      list.insertBefore(row, rows[low] || null);
    }

    function removeAgent(id, touched) {
      board.querySelectorAll('#board-groups li[data-agent="' + CSS.escape(id) + '"]').forEach(function (old) {
        touched.add(old.parentElement);
        old.remove();
      });
    }

    function recount(list) {
      var section = list.closest(".group");
      if (!section) {
        return;
      }
      var counts = {};
      var rows = list.children;
      for (var i = 0; i < rows.length; i++) {
        counts[rows[i].dataset.state] = (counts[rows[i].dataset.state] || 0) + 1;
      }
      section.querySelector(".group-size").textContent = rows.length;
      section.classList.toggle("empty", rows.length === 0);
      var ul = section.querySelector(".group-head .counts");
      if (ul) {
        ul.replaceChildren.apply(ul, badges(counts));
      }
    }

    function badges(counts) {
      return stateOrder
        .filter(function (s) {
          return counts[s];
        })
        .map(function (s) {
          var li = document.createElement("li");
          li.className = "st-" + s;
          li.title = labels[s];
          var b = document.createElement("b");
          b.textContent = counts[s];
          li.append(b, " " + labels[s]);
          return li;
        });
    }

    function recountTotals() {
      var counts = {};
      board.querySelectorAll("#board-groups li.agent").forEach(function (row) {
        // An agent in several queue groups counts once.
        if (!counts["#" + row.dataset.agent]) {
          counts["#" + row.dataset.agent] = true;
          counts[row.dataset.state] = (counts[row.dataset.state] || 0) + 1;
        }
      });
      var totals = document.querySelector("#board-totals .counts");
      if (totals) {
        totals.replaceChildren.apply(totals, badges(counts));
      }
    }

    function apply() {
      var touched = new Set();
      Array.prototype.slice.call(inbox.children).forEach(function (item) {
        if (item.dataset.remove) {
          removeAgent(item.dataset.remove, touched);
          return;
        }
        if (!item.dataset.agent) {
          return;
        }
        removeAgent(item.dataset.agent, touched);
        keysOf(item).forEach(function (key, i) {
          var list = document.getElementById("g-" + group + "-" + key);
          if (!list) {
            return;
          }
          var row = i === 0 ? item : item.cloneNode(true);
          tickRow(row, Date.now());
          insertSorted(list, row);
          touched.add(list);
          if (window.htmx) {
            window.htmx.process(row);
          }
        });
      });
      inbox.replaceChildren();
      touched.forEach(function (list) {
        if (list && list.isConnected) {
          recount(list);
        }
      });
      recountTotals();
    }

    function format(seconds) {
      seconds = Math.max(0, Math.floor(seconds));
      var h = Math.floor(seconds / 3600);
      var m = Math.floor(seconds / 60) % 60;
      var s = seconds % 60;
      var ss = (s < 10 ? "0" : "") + s;
      return h > 0 ? h + ":" + (m < 10 ? "0" : "") + m + ":" + ss : m + ":" + ss;
    }

    function tickRow(row, now) {
      var seconds = (now - Number(row.dataset.since)) / 1000;
      var time = row.querySelector(".agent-tis");
      var text = format(seconds);
      if (time && time.textContent !== text) {
        time.textContent = text;
      }
      var band = bands[row.dataset.state];
      var level = band ? (seconds >= band[1] ? "alert" : seconds >= band[0] ? "warn" : "") : "";
      row.classList.toggle("band-warn", level === "warn");
      row.classList.toggle("band-alert", level === "alert");
    }

    setInterval(function () {
      var now = Date.now();
      board.querySelectorAll("#board-groups li.agent").forEach(function (row) {
        tickRow(row, now);
      });
      board.querySelectorAll(".tile .wait[data-since]").forEach(function (wait) {
        wait.textContent = format((now - Number(wait.dataset.since)) / 1000);
      });
    }, 1000);

    board.addEventListener("htmx:sseMessage", function (event) {
      if (event.target === inbox) {
        apply();
      }
    });
    board.addEventListener("htmx:sseBeforeMessage", function (event) {
      if (event.detail && event.detail.type === "resync") {
        event.preventDefault();
        window.location.reload();
      }
    });
    var status = board.querySelector("[data-live-status]");
    board.addEventListener("htmx:sseOpen", function () {
      board.dataset.live = "open";
      if (status) {
        status.textContent = status.dataset.textLive;
        status.classList.remove("lost");
      }
    });
    var failures = 0;
    board.addEventListener("htmx:sseOpen", function () {
      failures = 0;
    });
    board.addEventListener("htmx:sseError", function () {
      // Repeated failures usually mean the session ended: a reload shows the sign-in page.
      failures += 1;
      if (failures >= 4) {
        window.location.reload();
      }
      board.dataset.live = "lost";
      if (status) {
        status.textContent = status.dataset.textLost;
        status.classList.add("lost");
      }
    });

    // The drawer: opened by htmx into #drawer, closed with Esc or its close link.
    var drawer = document.getElementById("drawer");
    function closeDrawer() {
      if (drawer) {
        drawer.replaceChildren();
        drawer.classList.remove("open");
      }
    }
    document.body.addEventListener("htmx:afterSwap", function (event) {
      if (event.target === drawer) {
        drawer.classList.add("open");
        var close = drawer.querySelector("[data-drawer-close]");
        if (close) {
          close.focus();
        }
      }
    });
    document.addEventListener("click", function (event) {
      if (event.target.closest("[data-drawer-close]")) {
        event.preventDefault();
        closeDrawer();
      }
    });

    // Keyboard: ↑/↓ or j/k move between agents, Enter opens (the link), Esc closes, / searches.
    document.addEventListener("keydown", function (event) {
      var tag = (event.target.tagName || "").toLowerCase();
      var typing = tag === "input" || tag === "select" || tag === "textarea";
      if (event.key === "Escape") {
        closeDrawer();
        return;
      }
      if (typing || event.ctrlKey || event.metaKey || event.altKey) {
        return;
      }
      if (event.key === "/") {
        var search = document.querySelector("[data-board-search]");
        if (search) {
          event.preventDefault();
          search.focus();
        }
        return;
      }
      var step = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1 }[event.key];
      if (!step) {
        return;
      }
      var links = Array.prototype.slice.call(board.querySelectorAll("#board-groups .agent-name"));
      if (!links.length) {
        return;
      }
      event.preventDefault();
      var at = links.indexOf(document.activeElement);
      var next = at < 0 ? 0 : Math.min(links.length - 1, Math.max(0, at + step));
      links[next].focus();
    });

    // Wallboard rotation between the queue tiles and the agents.
    var rotate = Number(board.dataset.rotate || 0);
    if (rotate > 0) {
      board.classList.add("show-tiles");
      setInterval(function () {
        board.classList.toggle("show-tiles");
        board.classList.toggle("show-agents");
      }, rotate * 1000);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
