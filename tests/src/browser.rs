//! A real headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`,
//! installed by scripts/test-env.sh): one chromedriver process and one browser session,
//! ended when dropped. The W3C WebDriver protocol is a handful of JSON calls over HTTP; the
//! ureq client the tests already use speaks it without pulling an async stack into them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::docker::free_port;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The W3C id of an element in a JSON answer.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at `width`×`height`.
    pub fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {CHROMEDRIVER} ({e}): run scripts/test-env.sh to install it")
            });
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while agent.get(format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            agent,
        };
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            // An alert() a page opens stays open, for `alert_text` to find.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--hide-scrollbars",
                         format!("--window-size={width},{height}")],
            },
        } } });
        let created = browser.call("POST", "/session", Some(capabilities));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        browser
    }

    /// One WebDriver command; panics on a WebDriver error, with its message.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let answer = self.try_call(method, path, body);
        match answer {
            Ok(value) => value,
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        }
    }

    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.unwrap_or(json!({})).to_string()),
        }
        .map_err(|e| e.to_string())?;
        let ok = response.status().is_success();
        let text = response
            .into_body()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if ok {
            Ok(value["value"].clone())
        } else {
            Err(value["value"]["message"]
                .as_str()
                .unwrap_or(&text)
                .to_string())
        }
    }

    fn session_path(&self, tail: &str) -> String {
        format!("/session/{}{tail}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        );
    }

    pub fn current_url(&self) -> String {
        self.call("GET", &self.session_path("/url"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
    }

    fn find(&self, css: &str) -> Option<String> {
        let found = self.try_call(
            "POST",
            &self.session_path("/element"),
            Some(json!({ "using": "css selector", "value": css })),
        );
        match found {
            Ok(v) => v[ELEMENT].as_str().map(String::from),
            Err(e) if e.contains("no such element") => None,
            Err(e) => panic!("finding {css}: {e}"),
        }
    }

    /// The visible text of the first element matching `css` (empty when there is none). Read
    /// in one script: the console swaps live parts of the page, so an element found by one
    /// WebDriver call may be detached by the next.
    pub fn text(&self, css: &str) -> String {
        let selector = serde_json::to_string(css).unwrap();
        self.eval(&format!(
            "const e = document.querySelector({selector}); return e ? e.innerText : '';"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    pub fn count(&self, css: &str) -> usize {
        self.call(
            "POST",
            &self.session_path("/elements"),
            Some(json!({ "using": "css selector", "value": css })),
        )
        .as_array()
        .map_or(0, Vec::len)
    }

    /// Clicks the first element matching `css`, finding it again when a live update replaced
    /// it between the find and the click.
    pub fn click(&self, css: &str) {
        for _ in 0..20 {
            let id = self
                .find(css)
                .unwrap_or_else(|| panic!("no element {css} on {}", self.current_url()));
            match self.try_call(
                "POST",
                &self.session_path(&format!("/element/{id}/click")),
                None,
            ) {
                Ok(_) => return,
                Err(e) if is_stale(&e) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("clicking {css}: {e}"),
            }
        }
        panic!("{css} kept being replaced while clicking it");
    }

    /// Replaces the value of the input matching `css`.
    pub fn fill(&self, css: &str, value: &str) {
        let id = self.find(css).unwrap_or_else(|| panic!("no input {css}"));
        self.call(
            "POST",
            &self.session_path(&format!("/element/{id}/clear")),
            None,
        );
        self.call(
            "POST",
            &self.session_path(&format!("/element/{id}/value")),
            Some(json!({ "text": value })),
        );
    }

    /// The text of an open alert/confirm dialog, if a page opened one.
    pub fn alert_text(&self) -> Option<String> {
        self.try_call("GET", &self.session_path("/alert/text"), None)
            .ok()
            .map(|v| v.as_str().unwrap_or_default().to_string())
    }

    /// Waits until `condition` holds (polling every 50 ms), at most `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&Browser) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !condition(self) {
            assert!(
                Instant::now() < deadline,
                "never happened: {what} (at {})",
                self.current_url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Words (runs of non-space characters) inside the elements matching `css` that the
    /// layout broke across two lines: each word's text range has line boxes at one height
    /// only, unless it was broken.
    pub fn words_broken_across_lines(&self, css: &str) -> Vec<String> {
        let selector = serde_json::to_string(css).unwrap();
        let found = self.eval(&format!(
            "const broken = [];
             for (const root of document.querySelectorAll({selector})) {{
               const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
               for (let node = walker.nextNode(); node; node = walker.nextNode()) {{
                 for (const m of node.textContent.matchAll(/\\S+/g)) {{
                   const range = document.createRange();
                   range.setStart(node, m.index);
                   range.setEnd(node, m.index + m[0].length);
                   const tops = new Set([...range.getClientRects()]
                     .filter(r => r.width > 0).map(r => Math.round(r.top)));
                   if (tops.size > 1) broken.push(m[0]);
                 }}
               }}
             }}
             return broken;"
        ));
        serde_json::from_value(found).expect("a list of words")
    }

    /// Pairs of text fragments inside `css` drawn over each other (each line of each text
    /// node is a box; two boxes of different text nodes may touch, not overlap); text that is
    /// not drawn (a closed `<details>`) is not looked at.
    pub fn overlapping_text(&self, css: &str) -> Vec<String> {
        let selector = serde_json::to_string(css).unwrap();
        let found = self.eval(&format!(
            "const boxes = [];
             for (const root of document.querySelectorAll({selector})) {{
               const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
               for (let node = walker.nextNode(); node; node = walker.nextNode()) {{
                 if (!node.textContent.trim()) continue;
                 // Not drawn: the content of a closed <details> is laid out but hidden.
                 if (node.parentElement && !node.parentElement.checkVisibility()) continue;
                 const range = document.createRange();
                 range.selectNodeContents(node);
                 for (const r of range.getClientRects()) {{
                   if (r.width > 0 && r.height > 0) boxes.push([node, r]);
                 }}
               }}
             }}
             const over = [];
             for (let i = 0; i < boxes.length; i++) {{
               for (let j = i + 1; j < boxes.length; j++) {{
                 const [a, ra] = boxes[i], [b, rb] = boxes[j];
                 if (a === b) continue;
                 const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
                 const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
                 if (w > 2 && h > 2) over.push(a.textContent.trim() + ' | ' + b.textContent.trim());
               }}
             }}
             return over.slice(0, 20);"
        ));
        serde_json::from_value(found).expect("a list of pairs")
    }

    /// The page's prefers-color-scheme, as Chromium's DevTools protocol emulates it.
    pub fn color_scheme(&self, scheme: &str) {
        self.call(
            "POST",
            &self.session_path("/goog/cdp/execute"),
            Some(json!({ "cmd": "Emulation.setEmulatedMedia",
                         "params": { "features": [{ "name": "prefers-color-scheme", "value": scheme }] } })),
        );
    }

    pub fn window_size(&self, width: u32, height: u32) {
        self.call(
            "POST",
            &self.session_path("/window/rect"),
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// A PNG of the viewport, written to `path`.
    pub fn screenshot(&self, path: &std::path::Path) {
        let data = self.call("GET", &self.session_path("/screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64"))
            .expect("a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

/// An element that a page update detached between two WebDriver calls.
fn is_stale(error: &str) -> bool {
    error.contains("stale element") || error.contains("does not belong to the document")
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
