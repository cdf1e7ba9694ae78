//! A real OpenID provider for the console's sign-in tests: panva's oidc-provider
//! (tests/oidc/provider.mjs, installed by scripts/test-env.sh) on 127.0.0.1, ended when
//! dropped; and a browser-like client (cookies, redirects followed by hand) that signs in
//! through it over plain HTTP, for the cases that need no real browser.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The console's client at the test provider.
pub const CLIENT_ID: &str = "runbook-console";
pub const CLIENT_SECRET: &str = "runbook-console-test-secret";

pub struct Provider {
    child: Child,
    /// Held open: the provider ends when it closes (this test binary ended, even by a panic
    /// in a static's owner).
    _stdin: std::process::ChildStdin,
    pub issuer: String,
    agent: ureq::Agent,
}

impl Provider {
    /// Starts the provider with the console's client (which may return to any loopback port).
    pub fn start() -> Provider {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/oidc");
        assert!(
            std::path::Path::new(&format!("{dir}/node_modules/oidc-provider")).is_dir(),
            "oidc-provider is not installed: run scripts/test-env.sh"
        );
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .args([CLIENT_ID, CLIENT_SECRET])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting node tests/oidc/provider.mjs (scripts/test-env.sh installs node)");
        let mut first = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut first).unwrap();
        // The provider's notices go on coming: drained, or node dies of a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let issuer = first
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the provider did not start: {first:?}"))
            .trim()
            .to_string();
        Provider {
            _stdin: child.stdin.take().unwrap(),
            child,
            issuer,
            agent: agent(),
        }
    }

    /// A new signing key replaces the provider's (its JWKS changes); the new key's id.
    pub fn rotate_keys(&self) -> String {
        let mut reply = self
            .agent
            .post(format!("{}/test/rotate", self.issuer))
            .send_empty()
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&reply.body_mut().read_to_string().unwrap()).unwrap();
        body["kid"].as_str().unwrap().to_string()
    }

    /// `user`'s next token response carries a bad ID token (see provider.mjs for the modes).
    pub fn mischief(&self, user: &str, mode: &str) {
        self.agent
            .post(format!(
                "{}/test/mischief?user={user}&mode={mode}",
                self.issuer
            ))
            .send_empty()
            .unwrap();
    }

    /// The key ids the provider publishes now.
    pub fn key_ids(&self) -> Vec<String> {
        let mut reply = self
            .agent
            .get(format!("{}/jwks", self.issuer))
            .call()
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&reply.body_mut().read_to_string().unwrap()).unwrap();
        body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// One answer: its status, where it redirects, its body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

/// A browser's part that matters here: one cookie jar for 127.0.0.1 (cookies know no port,
/// so the provider's, and two replicas', share it, as in a browser) and redirects by hand.
pub struct Client {
    agent: ureq::Agent,
    jar: Mutex<BTreeMap<String, String>>,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            agent: agent(),
            jar: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Client {
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .unwrap()
            .insert(name.to_string(), value.to_string());
    }

    pub fn forget_cookie(&self, name: &str) {
        self.jar.lock().unwrap().remove(name);
    }

    fn cookies(&self) -> String {
        self.jar
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&self, response: &mut ureq::http::Response<ureq::Body>) -> Answer {
        let set_cookies: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(String::from))
            .collect();
        for line in &set_cookies {
            let pair = line.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                let gone = line.to_ascii_lowercase().contains("max-age=0") || value.is_empty();
                let mut jar = self.jar.lock().unwrap();
                if gone {
                    jar.remove(name.trim());
                } else {
                    jar.insert(name.trim().to_string(), value.to_string());
                }
            }
        }
        Answer {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            set_cookies,
            body: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    pub fn get(&self, url: &str) -> Answer {
        let mut response = self
            .agent
            .get(url)
            .header("Cookie", self.cookies())
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        self.keep(&mut response)
    }

    pub fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Answer {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut response = self
            .agent
            .post(url)
            .header("Cookie", self.cookies())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body.as_bytes())
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        self.keep(&mut response)
    }

    /// Goes through the sign-in at the provider as `user` up to the console's callback URL
    /// (not followed): what the provider hands the browser back with.
    pub fn to_callback(&self, console: &str, user: &str) -> String {
        let begun = self.get(&format!("{console}/ui/login?next=/ui/runs"));
        assert_eq!(begun.status, 303, "/ui/login: {}", begun.body);
        let auth = begun.location.expect("to the provider");
        let origin = auth.split("/auth").next().unwrap().to_string();
        // The provider's redirects, its sign-in form (posted once), more redirects.
        let mut url = auth;
        let mut posted = false;
        for _ in 0..10 {
            let answer = self.get(&url);
            let next = match answer.location {
                Some(location) => location,
                None => {
                    assert!(
                        !posted && answer.body.contains("name=\"login\""),
                        "the provider's page ({}): {}",
                        answer.status,
                        answer.body
                    );
                    posted = true;
                    let done = self.post_form(
                        &url,
                        &[("prompt", "login"), ("login", user), ("password", "any")],
                    );
                    done.location.unwrap_or_else(|| {
                        panic!("the provider's sign-in ({}): {}", done.status, done.body)
                    })
                }
            };
            url = absolute(&origin, &next);
            if url.contains("/ui/login/callback") {
                return url;
            }
        }
        panic!("no way back from the provider (at {url})")
    }

    /// Signs in as `user` through the provider; the callback's answer.
    pub fn sign_in(&self, console: &str, user: &str) -> Answer {
        let callback = self.to_callback(console, user);
        self.get(&callback)
    }
}

fn absolute(origin: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        location.to_string()
    }
}
