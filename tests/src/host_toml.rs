//! A test's host.toml, built rather than spelled out in a `format!` string: each table is
//! written once however many keys the test gives it, and top-level keys come before every
//! table (TOML would file them under the last one). Values are TOML as written (`toml_str`
//! quotes a string).
//!
//! ```ignore
//! let config = HostToml::new()
//!     .plugin_dirs()
//!     .hook_bearer("run", "RUN_TOKEN")
//!     .grant_fs_read("hostile", sandbox.path().join("evidence"))
//!     .route(&[r#"alertname="DiskFull""#], "disk-full")
//!     .to_string();
//! ```

use std::fmt;
use std::path::Path;

#[derive(Clone, Debug, Default)]
pub struct HostToml {
    /// Keys before any table.
    top: Vec<String>,
    /// (header as written, `[name]` or `[[name]]`; its `key = value` lines), in order.
    tables: Vec<(String, Vec<String>)>,
}

/// `text` as a TOML basic string.
pub fn toml_str(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A TOML array of strings.
pub fn toml_strs<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<String> = items.iter().map(|s| toml_str(s.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

impl HostToml {
    pub fn new() -> Self {
        Self::default()
    }

    /// `plugin-dirs = ["plugins"]`: where `Sandbox::add_plugin` puts the hostile guests.
    pub fn plugin_dirs(self) -> Self {
        self.top("plugin-dirs", r#"["plugins"]"#)
    }

    /// `key = value` before every table.
    pub fn top(mut self, key: &str, value: &str) -> Self {
        self.top.push(format!("{key} = {value}"));
        self
    }

    /// `[name]`, written even when no key follows (an empty grants table says "nothing").
    pub fn table(mut self, name: &str) -> Self {
        self.lines_of(name);
        self
    }

    /// `key = value` in `[table]`. A key set twice whose values are both arrays gets one array
    /// of both (two `grant_fs_read`s grant both roots); otherwise the later value wins.
    pub fn set(mut self, table: &str, key: &str, value: &str) -> Self {
        let lines = self.lines_of(table);
        let prefix = format!("{key} = ");
        match lines.iter_mut().find(|l| l.starts_with(&prefix)) {
            Some(line) => {
                let old = &line[prefix.len()..];
                let inner = |v: &str| {
                    v.strip_prefix('[')
                        .and_then(|v| v.strip_suffix(']'))
                        .map(|v| v.trim().to_string())
                };
                *line = match (inner(old), inner(value)) {
                    (Some(old), Some(new)) => {
                        let items: Vec<String> =
                            [old, new].into_iter().filter(|i| !i.is_empty()).collect();
                        format!("{prefix}[{}]", items.join(", "))
                    }
                    _ => format!("{prefix}{value}"),
                };
            }
            None => lines.push(format!("{prefix}{value}")),
        }
        self
    }

    /// `[webhooks.<hook>]` taking a bearer token from the environment variable `env`.
    pub fn hook_bearer(self, hook: &str, env: &str) -> Self {
        self.hook_auth(
            hook,
            &format!(
                r#"{{ kind = "bearer", token = {{ env = {} }} }}"#,
                toml_str(env)
            ),
        )
    }

    /// `[webhooks.<hook>]` open to anyone (`kind = "none"`).
    pub fn hook_open(self, hook: &str) -> Self {
        self.hook_auth(hook, r#"{ kind = "none" }"#)
    }

    /// `[webhooks.<hook>]` with `auth` as written.
    pub fn hook_auth(self, hook: &str, auth: &str) -> Self {
        self.set(&format!("webhooks.{hook}"), "auth", auth)
    }

    /// `[ui]` basic auth: `username`, the password from the environment variable `env`.
    pub fn ui_basic_env(self, username: &str, env: &str) -> Self {
        self.set(
            "ui",
            "auth",
            &format!(
                r#"{{ kind = "basic", username = {}, password = {{ env = {} }} }}"#,
                toml_str(username),
                toml_str(env)
            ),
        )
    }

    /// `[ui]` basic auth: `username`, the password in the file `path`.
    pub fn ui_basic_file(self, username: &str, path: &str) -> Self {
        self.set(
            "ui",
            "auth",
            &format!(
                r#"{{ kind = "basic", username = {}, password = {{ file = {} }} }}"#,
                toml_str(username),
                toml_str(path)
            ),
        )
    }

    /// `key = value` in `[plugins.<plugin>]` (limits: `deadline-secs`, `max-concurrent` …).
    pub fn plugin(self, plugin: &str, key: &str, value: &str) -> Self {
        self.set(&format!("plugins.{plugin}"), key, value)
    }

    /// `capability = value` in `[plugins.<plugin>.grants]`.
    pub fn grant(self, plugin: &str, capability: &str, value: &str) -> Self {
        self.set(&format!("plugins.{plugin}.grants"), capability, value)
    }

    /// One more fs-read root for `plugin`.
    pub fn grant_fs_read(self, plugin: &str, root: impl AsRef<Path>) -> Self {
        let root = root.as_ref().display().to_string();
        self.grant(plugin, "fs-read", &toml_strs(&[root]))
    }

    /// `[notify.<channel>]` of kind file, appending to `path`.
    pub fn notify_file(self, channel: &str, path: &str) -> Self {
        let table = format!("notify.{channel}");
        self.set(&table, "kind", r#""file""#)
            .set(&table, "path", &toml_str(path))
    }

    /// `[fleet.nodes.<node>]` with its agent's token from the environment variable `env`.
    pub fn node(self, node: &str, env: &str) -> Self {
        self.set(
            &format!("fleet.nodes.{node}"),
            "token",
            &format!("{{ env = {} }}", toml_str(env)),
        )
    }

    /// A `[[route]]`: alerts matching every one of `matchers` run `playbook`; `extra` lines
    /// (`params = …`, `dry-run = true` …) as written.
    pub fn route(self, matchers: &[&str], playbook: &str) -> Self {
        self.route_with(matchers, playbook, &[])
    }

    pub fn route_with(mut self, matchers: &[&str], playbook: &str, extra: &[&str]) -> Self {
        let matchers: Vec<String> = matchers.iter().map(|m| format!("'{m}'")).collect();
        let mut lines = vec![
            format!("matchers = [{}]", matchers.join(", ")),
            format!("playbook = {}", toml_str(playbook)),
        ];
        lines.extend(extra.iter().map(|l| l.to_string()));
        self.tables.push(("[[route]]".into(), lines));
        self
    }

    /// A `[[schedule]]` with its lines as written (`name = …`, `cron = …`, `playbook = …`).
    pub fn schedule<S: AsRef<str>>(mut self, lines: &[S]) -> Self {
        self.tables.push((
            "[[schedule]]".into(),
            lines.iter().map(|l| l.as_ref().to_string()).collect(),
        ));
        self
    }

    fn lines_of(&mut self, table: &str) -> &mut Vec<String> {
        let header = format!("[{table}]");
        let at = match self.tables.iter().position(|(h, _)| *h == header) {
            Some(at) => at,
            None => {
                self.tables.push((header, Vec::new()));
                self.tables.len() - 1
            }
        };
        &mut self.tables[at].1
    }
}

impl fmt::Display for HostToml {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.top {
            writeln!(f, "{line}")?;
        }
        for (header, lines) in &self.tables {
            writeln!(f, "{header}")?;
            for line in lines {
                writeln!(f, "{line}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_once_top_keys_first_arrays_merged() {
        let text = HostToml::new()
            .hook_bearer("run", "RUN_TOKEN")
            .plugin_dirs()
            .grant_fs_read("hostile", "/a")
            .grant("hostile", "notify", r#"["ops"]"#)
            .grant_fs_read("hostile", "/b \"q\"")
            .table("plugins.asks.grants")
            .route(&[r#"alertname="X""#], "hostile")
            .to_string();
        assert_eq!(
            text,
            "plugin-dirs = [\"plugins\"]\n\
             [webhooks.run]\nauth = { kind = \"bearer\", token = { env = \"RUN_TOKEN\" } }\n\
             [plugins.hostile.grants]\nfs-read = [\"/a\", \"/b \\\"q\\\"\"]\nnotify = [\"ops\"]\n\
             [plugins.asks.grants]\n\
             [[route]]\nmatchers = ['alertname=\"X\"']\nplaybook = \"hostile\"\n"
        );
    }
}
