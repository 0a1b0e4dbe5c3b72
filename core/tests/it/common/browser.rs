//! A small driver for real headless Chromium over the DevTools protocol: navigate, run
//! JavaScript, wait for conditions, take screenshots. Enough to sign in like a person would.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The Chromium binary, if one is installed (`MONTI_CHROMIUM` overrides).
pub fn chromium() -> Option<String> {
    if let Ok(path) = std::env::var("MONTI_CHROMIUM") {
        return Some(path);
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            std::process::Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_owned)
}

pub struct Browser {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

pub struct Page {
    socket: Socket,
    next_id: u64,
    /// Errors the page reported (console errors, uncaught exceptions, refused resources,
    /// Content-Security-Policy violations, failed loads) since they were last taken.
    console: Vec<String>,
    /// (URL, status) of responses, while the network is watched.
    responses: Vec<(String, u16)>,
}

impl Browser {
    /// Starts headless Chromium; `None` (after reporting) when it is not installed.
    pub async fn launch() -> Option<Browser> {
        let Some(binary) = chromium() else {
            super::service_missing("Chromium (apt-get install chromium)", "not found on PATH");
            return None;
        };
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let port = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                    return rest.split('/').next().and_then(|p| p.parse::<u16>().ok());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("chromium printed its DevTools address");
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(Browser {
            child,
            port,
            _profile: profile,
        })
    }

    /// The first tab.
    pub async fn page(&self) -> Page {
        let list: Value = reqwest::get(format!("http://127.0.0.1:{}/json/list", self.port))
            .await
            .expect("DevTools list")
            .json()
            .await
            .expect("DevTools JSON");
        let url = list
            .as_array()
            .and_then(|targets| targets.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("DevTools socket");
        let mut page = Page {
            socket,
            next_id: 0,
            console: Vec::new(),
            responses: Vec::new(),
        };
        page.call("Page.enable", json!({})).await;
        page.call("Runtime.enable", json!({})).await;
        page.call("Log.enable", json!({})).await;
        page
    }

    /// A new tab (sharing cookies with the others).
    #[allow(dead_code)]
    pub async fn new_page(&self) -> Page {
        let target: Value = reqwest::Client::new()
            .put(format!("http://127.0.0.1:{}/json/new?about:blank", self.port))
            .send()
            .await
            .expect("DevTools new tab")
            .json()
            .await
            .expect("DevTools JSON");
        let url = target["webSocketDebuggerUrl"]
            .as_str()
            .expect("a page target")
            .to_owned();
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("DevTools socket");
        let mut page = Page {
            socket,
            next_id: 0,
            console: Vec::new(),
            responses: Vec::new(),
        };
        page.call("Page.enable", json!({})).await;
        page.call("Runtime.enable", json!({})).await;
        page.call("Log.enable", json!({})).await;
        page
    }

    pub async fn close(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Page {
    /// Sends a DevTools command and returns its result (events in between are skipped).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket
            .send(Message::text(message))
            .await
            .expect("send to DevTools");
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .expect("DevTools answered in time")
                .expect("DevTools socket open")
                .expect("DevTools frame");
            let Message::Text(text) = frame else { continue };
            let value: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
            if value["id"] == id {
                return value;
            }
            self.note_error(&value);
        }
    }

    /// Keeps what an event says went wrong on the page, and the responses it got once
    /// [`Page::watch_network`] was called.
    fn note_error(&mut self, event: &Value) {
        let params = &event["params"];
        if event["method"] == "Network.responseReceived" {
            let response = &params["response"];
            self.responses.push((
                response["url"].as_str().unwrap_or_default().to_owned(),
                response["status"].as_u64().unwrap_or_default() as u16,
            ));
        }
        let problem = match event["method"].as_str() {
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => Some(format!(
                "{}: {} {}",
                params["entry"]["source"].as_str().unwrap_or_default(),
                params["entry"]["text"].as_str().unwrap_or_default(),
                params["entry"]["url"].as_str().unwrap_or_default()
            )),
            Some("Runtime.exceptionThrown") => Some(format!("exception: {}", params["exceptionDetails"])),
            Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
                Some(format!("console.error: {}", params["args"]))
            }
            _ => None,
        };
        self.console.extend(problem);
    }

    /// Records the page's responses from now on (see [`Page::responses`]).
    #[allow(dead_code)]
    pub async fn watch_network(&mut self) {
        self.call("Network.enable", json!({})).await;
    }

    /// The (URL, status) of each response since [`Page::watch_network`] or the last call.
    #[allow(dead_code)]
    pub async fn responses(&mut self) -> Vec<(String, u16)> {
        self.eval("0").await;
        std::mem::take(&mut self.responses)
    }

    /// The errors the page reported since the last call (after letting pending events in).
    pub async fn errors(&mut self) -> Vec<String> {
        self.eval("0").await;
        std::mem::take(&mut self.console)
    }

    /// Navigates and waits until the new document (after any redirects) has loaded.
    pub async fn goto(&mut self, url: &str) {
        // Mark the old document, so its lingering `complete` state is not mistaken for the new.
        self.eval("window.__montiLeaving = true").await;
        self.call("Page.navigate", json!({ "url": url })).await;
        let loaded = self
            .wait_for(
                "!window.__montiLeaving && document.readyState === 'complete'",
                Duration::from_secs(15),
            )
            .await;
        assert!(loaded, "{url} did not load");
    }

    /// Evaluates JavaScript and returns its value (`null` when it threw or the page was
    /// navigating).
    pub async fn eval(&mut self, expression: &str) -> Value {
        let reply = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        reply["result"]["result"]["value"].clone()
    }

    /// Waits until `predicate` (JavaScript) is true.
    pub async fn wait_for(&mut self, predicate: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let check = format!(
            "(() => {{ try {{ return document.readyState === 'complete' && !!({predicate}); }} catch (e) {{ return false; }} }})()"
        );
        while Instant::now() < deadline {
            if self.eval(&check).await == Value::Bool(true) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Types into a field as a person would (the value, then an input event).
    pub async fn fill(&mut self, selector: &str, value: &str) {
        let js = format!(
            "(() => {{ const el = document.querySelector({s}); if (!el) return false; el.focus(); el.value = {v}; \
             el.dispatchEvent(new Event('input', {{ bubbles: true }})); return true; }})()",
            s = json!(selector),
            v = json!(value)
        );
        assert_eq!(self.eval(&js).await, Value::Bool(true), "no field {selector}");
    }

    pub async fn click(&mut self, selector: &str) {
        let js = format!(
            "(() => {{ const el = document.querySelector({s}); if (!el) return false; el.click(); return true; }})()",
            s = json!(selector)
        );
        assert_eq!(
            self.eval(&js).await,
            Value::Bool(true),
            "nothing to click at {selector}"
        );
    }

    /// Presses the mouse at `dx` pixels from the left edge of the element at `selector`, half
    /// way down, as a person does (a real gesture: what lets a player start, say).
    #[allow(dead_code)]
    pub async fn press_at(&mut self, selector: &str, dx: f64) {
        let js = format!(
            "(() => {{ const el = document.querySelector({s}); if (!el) return null; el.scrollIntoView(); \
             const r = el.getBoundingClientRect(); return [r.left, r.top + r.height / 2]; }})()",
            s = json!(selector)
        );
        let at = self.eval(&js).await;
        let (Some(x), Some(y)) = (at[0].as_f64(), at[1].as_f64()) else {
            panic!("nothing to press at {selector}");
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x + dx, "y": y, "button": "left", "clickCount": 1 }),
            )
            .await;
        }
    }

    /// Chooses `file` in the file input at `selector`, as a person picking it would.
    pub async fn choose_file(&mut self, selector: &str, file: &std::path::Path) {
        let document = self.call("DOM.getDocument", json!({})).await;
        let input = self
            .call(
                "DOM.querySelector",
                json!({ "nodeId": document["result"]["root"]["nodeId"], "selector": selector }),
            )
            .await;
        self.call(
            "DOM.setFileInputFiles",
            json!({ "nodeId": input["result"]["nodeId"], "files": [file.to_str().expect("a UTF-8 path")] }),
        )
        .await;
        let chosen = format!("document.querySelector({}).files.length", json!(selector));
        assert_eq!(self.eval(&chosen).await, json!(1), "file chosen at {selector}: {input}");
    }

    /// Opens `url` (which asks to sign in) and signs in with the form.
    pub async fn sign_in_at(&mut self, url: &str, email: &str, password: &str) {
        self.goto(url).await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("#sign-in").await;
    }

    pub async fn path(&mut self) -> String {
        self.eval("location.pathname")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn text(&mut self) -> String {
        self.eval("document.body ? document.body.innerText : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A PNG of the visible page, for looking at what people see.
    /// Makes the page `width` × `height` CSS pixels, as a window that size shows it.
    pub async fn resize(&mut self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
    }

    pub async fn screenshot(&mut self, path: &std::path::Path) {
        use base64::Engine as _;
        let reply = self.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        if let Some(data) = reply["result"]["data"].as_str()
            && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data)
        {
            let _ = std::fs::write(path, bytes);
        }
    }
}
