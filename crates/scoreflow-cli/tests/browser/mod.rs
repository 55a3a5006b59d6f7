//! Headless Chromium for the tests, driven over the Chrome DevTools Protocol (CDP): a
//! WebSocket (`tungstenite`) carrying JSON commands and events. A dedicated crate
//! (`headless_chrome`, `chromiumoxide`) would compile the whole generated protocol — minutes on
//! two cores — for the eight methods used here.
//!
//! The browser is Debian's `chromium` (or `$SCOREFLOW_CHROMIUM`), started headless with a
//! fresh profile and everything that talks to the network switched off; `.ci/run` installs it.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// How long any one browser step may take.
const STEP: Duration = Duration::from_secs(60);

/// The browser binary: `$SCOREFLOW_CHROMIUM`, else the first of chromium, chromium-browser,
/// google-chrome on `PATH`. Panics with what to install when there is none.
pub fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("SCOREFLOW_CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "this test loads the HTML reports in headless Chromium, and none was found: install \
         Debian's chromium (`apt-get install -y chromium`; .ci/run does this when it is missing) \
         or set SCOREFLOW_CHROMIUM to a Chrome or Chromium binary"
    );
}

/// A running headless browser and its DevTools connection.
pub struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    next_id: u64,
    /// Events read while waiting for something else.
    events: VecDeque<Value>,
    log: PathBuf,
    _profile: tempfile::TempDir,
}

/// One image of a page after loading.
#[derive(Debug, Clone)]
pub struct Img {
    /// The start of its `src`.
    pub src: String,
    /// `img.decode()` resolved.
    pub decoded: bool,
    /// naturalWidth × naturalHeight.
    pub size: (u64, u64),
}

/// What a page did in the browser.
#[derive(Debug, Clone, Default)]
pub struct PageReport {
    /// Console errors, uncaught exceptions, error log entries and failed loads.
    pub errors: Vec<String>,
    /// Console and log warnings (reported, not failures).
    pub warnings: Vec<String>,
    /// Every request other than the page itself and `data:` URIs.
    pub requests: Vec<String>,
    /// Every `<img>`.
    pub images: Vec<Img>,
    /// `href` of every link.
    pub links: Vec<String>,
    /// A summary of the DOM (see `PROBE`).
    pub dom: Value,
    /// scrollWidth − innerWidth at phone width (> 0: the page scrolls sideways).
    pub phone_overflow: i64,
    /// Screenshots written.
    pub screenshots: Vec<PathBuf>,
}

/// Waits for every image to load and decode.
const IMAGES: &str =
    "Promise.all(Array.from(document.images, img => img.decode().then(() => true, \
    () => false).then(ok => ({src: img.getAttribute('src').slice(0, 40), ok, w: img.naturalWidth, \
    h: img.naturalHeight}))))";

/// Counts of the page's landmarks.
const PROBE: &str = "({title: document.title, h1: (document.querySelector('h1') || {}).textContent, \
    sections: Array.from(document.querySelectorAll('main section[id]'), s => s.id), \
    figures: document.querySelectorAll('figure').length, charts: document.querySelectorAll('svg.chart').length, \
    tables: document.querySelectorAll('table').length, \
    unscopedTh: document.querySelectorAll('th:not([scope])').length, \
    imgNoAlt: document.querySelectorAll('img:not([alt])').length, \
    scripts: document.scripts.length, \
    text: document.body.innerText})";

impl Browser {
    /// Starts the browser with a fresh profile and connects to it.
    pub fn launch() -> Browser {
        let exe = chromium();
        let profile = tempfile::tempdir().expect("a temporary profile directory");
        let log = profile.path().join("chromium.log");
        let log_file = std::fs::File::create(&log).expect("the browser log");
        let child = Command::new(&exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("the browser log"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        // Chromium writes the port and the browser's WebSocket path to DevToolsActivePort.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + STEP;
        let mut child = child;
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break (port.trim().to_string(), path.trim().to_string());
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{} exited ({status}) before listening:\n{}",
                    exe.display(),
                    tail(&log)
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "{} did not start within {STEP:?}:\n{}",
                    exe.display(),
                    tail(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stream = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect to DevTools");
        let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .unwrap_or_else(|e| panic!("DevTools handshake failed: {e}"));
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("a read timeout");
        Browser {
            child,
            ws,
            next_id: 0,
            events: VecDeque::new(),
            log,
            _profile: profile,
        }
    }

    /// One message, or `None` after the read timeout.
    fn read(&mut self) -> Option<Value> {
        match self.ws.read() {
            Ok(Message::Text(t)) => {
                Some(serde_json::from_str(t.as_str()).expect("DevTools sends JSON"))
            }
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                None
            }
            Err(e) => panic!("DevTools connection failed: {e}\n{}", tail(&self.log)),
        }
    }

    /// Sends a command (to a page's session, or to the browser) and returns its result.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .unwrap_or_else(|e| panic!("sending {method}: {e}"));
        let deadline = Instant::now() + STEP;
        while Instant::now() < deadline {
            if let Some(v) = self.read() {
                if v.get("id").and_then(Value::as_u64) == Some(id) {
                    if let Some(e) = v.get("error") {
                        panic!("{method} failed: {e}");
                    }
                    return v["result"].clone();
                }
                self.events.push_back(v);
            }
        }
        panic!("no answer to {method} within {STEP:?}\n{}", tail(&self.log));
    }

    /// Waits for the event `method` of `session`.
    fn wait_event(&mut self, session: &str, method: &str) -> Value {
        let matches = |v: &Value| {
            v["method"] == method && v.get("sessionId").and_then(Value::as_str) == Some(session)
        };
        if let Some(i) = self.events.iter().position(matches) {
            return self.events.remove(i).expect("an event");
        }
        let deadline = Instant::now() + STEP;
        while Instant::now() < deadline {
            if let Some(v) = self.read() {
                if matches(&v) {
                    return v;
                }
                self.events.push_back(v);
            }
        }
        panic!("no {method} within {STEP:?}\n{}", tail(&self.log));
    }

    /// Evaluates `expr` in the page (awaiting a promise) and returns its value.
    fn eval(&mut self, session: &str, expr: &str) -> Value {
        let r = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("evaluating in the page failed: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Navigates to `url` and waits for its load event.
    fn load(&mut self, session: &str, url: &str) {
        let r = self.call(Some(session), "Page.navigate", json!({"url": url}));
        if let Some(e) = r.get("errorText") {
            panic!("loading {url}: {e}");
        }
        self.wait_event(session, "Page.loadEventFired");
    }

    /// A PNG of the whole page at the current viewport width.
    fn screenshot(&mut self, session: &str, path: &Path) {
        let size = self.eval(
            session,
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]",
        );
        let (w, h) = (
            size[0].as_f64().unwrap_or(800.0),
            size[1].as_f64().unwrap_or(600.0),
        );
        let shot = self.call(
            Some(session),
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("DevTools sends base64");
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// Loads `file` at desktop width (1280 × 900, light) and at phone width (390 × 844,
    /// mobile, dark colour scheme), collects console errors, requests and images, and writes
    /// `<shots>-desktop.png` and `<shots>-phone-dark.png`.
    pub fn check(&mut self, file: &Path, shots: &Path) -> PageReport {
        let url = format!(
            "file://{}",
            file.canonicalize().expect("the page").display()
        );
        let target = self.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"]
            .as_str()
            .expect("a target id")
            .to_string();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        let s = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        for m in [
            "Page.enable",
            "Runtime.enable",
            "Log.enable",
            "Network.enable",
        ] {
            self.call(Some(&s), m, json!({}));
        }
        let mut report = PageReport::default();

        self.call(
            Some(&s),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        self.load(&s, &url);
        let images = self.eval(&s, IMAGES);
        report.images = images
            .as_array()
            .expect("an image list")
            .iter()
            .map(|i| Img {
                src: i["src"].as_str().unwrap_or_default().to_string(),
                decoded: i["ok"] == true,
                size: (i["w"].as_u64().unwrap_or(0), i["h"].as_u64().unwrap_or(0)),
            })
            .collect();
        report.links = self
            .eval(
                &s,
                "Array.from(document.links, a => a.getAttribute('href'))",
            )
            .as_array()
            .expect("a link list")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        report.dom = self.eval(&s, PROBE);
        let desktop = shots.with_file_name(format!("{}-desktop.png", stem(shots)));
        self.screenshot(&s, &desktop);
        report.screenshots.push(desktop);

        self.call(
            Some(&s),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
        );
        self.call(
            Some(&s),
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
        );
        self.load(&s, &url);
        self.eval(&s, IMAGES);
        report.phone_overflow = self
            .eval(
                &s,
                "document.documentElement.scrollWidth - window.innerWidth",
            )
            .as_i64()
            .unwrap_or(i64::MAX);
        let phone = shots.with_file_name(format!("{}-phone-dark.png", stem(shots)));
        self.screenshot(&s, &phone);
        report.screenshots.push(phone);

        // Everything the page said or asked for, on both loads.
        let (mine, others): (Vec<Value>, Vec<Value>) = self
            .events
            .drain(..)
            .partition(|v| v.get("sessionId").and_then(Value::as_str) == Some(s.as_str()));
        self.events.extend(others);
        for e in &mine {
            let p = &e["params"];
            match e["method"].as_str().unwrap_or_default() {
                "Runtime.consoleAPICalled" => {
                    let text = p["args"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|x| x.get("value").unwrap_or(&x["description"]).to_string())
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default();
                    match p["type"].as_str().unwrap_or_default() {
                        "error" | "assert" => report.errors.push(format!("console: {text}")),
                        "warning" => report.warnings.push(format!("console: {text}")),
                        _ => {}
                    }
                }
                "Runtime.exceptionThrown" => {
                    report
                        .errors
                        .push(format!("exception: {}", p["exceptionDetails"]));
                }
                "Log.entryAdded" => {
                    let entry = &p["entry"];
                    let text = format!("{}: {} {}", entry["source"], entry["text"], entry["url"]);
                    match entry["level"].as_str().unwrap_or_default() {
                        "error" => report.errors.push(text),
                        "warning" => report.warnings.push(text),
                        _ => {}
                    }
                }
                "Network.requestWillBeSent" => {
                    let u = p["request"]["url"].as_str().unwrap_or_default();
                    if u != url && !u.starts_with("data:") {
                        report.requests.push(u.to_string());
                    }
                }
                "Network.loadingFailed" => {
                    report
                        .errors
                        .push(format!("load failed: {}", p["errorText"]));
                }
                _ => {}
            }
        }
        self.call(None, "Target.closeTarget", json!({"targetId": target}));
        report
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask politely, then make sure: the profile directory goes away after the process.
        let id = self.next_id + 1;
        let _ = self.ws.send(Message::text(
            json!({"id": id, "method": "Browser.close"}).to_string(),
        ));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The file stem of `p`.
fn stem(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The last lines of the browser's log, for failure messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "--- browser log (last lines) ---\n{}",
        lines[lines.len().saturating_sub(20)..].join("\n")
    )
}
