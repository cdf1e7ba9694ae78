//! Route matching and parameter templates: Alertmanager's matcher syntax and semantics (a
//! missing label is the empty string; regexes are anchored), and `{{ labels.x }}`,
//! `{{ annotations.x }}`, `{{ alert.name }}` placeholders (`| host` drops a `:port`) filled in
//! from an alert. Both read text the operator wrote and values an alert sender chose.

use std::sync::LazyLock;

use anyhow::{Result, bail};
use regex::Regex;

use crate::alert::AlertFields;

#[derive(Debug)]
enum Op {
    Equal(String),
    NotEqual(String),
    Matches(Regex),
    NotMatches(Regex),
}

#[derive(Debug)]
pub struct Matcher {
    label: String,
    op: Op,
}

static MATCHER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$"#).unwrap()
});
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\{\{\s*(labels|annotations|alert)\.([a-zA-Z0-9_]+)\s*(\|\s*host\s*)?\}\}").unwrap()
});

impl Matcher {
    pub fn parse(text: &str) -> Result<Matcher> {
        let Some(caps) = MATCHER.captures(text) else {
            bail!("matcher {text:?}: expected name=\"value\" (or !=, =~, !~)");
        };
        let value = caps[3].replace("\\\"", "\"").replace("\\\\", "\\");
        let anchored = |v: &str| Regex::new(&format!("^(?:{v})$"));
        let op = match &caps[2] {
            "=" => Op::Equal(value),
            "!=" => Op::NotEqual(value),
            "=~" => {
                Op::Matches(anchored(&value).map_err(|e| anyhow::anyhow!("matcher {text:?}: {e}"))?)
            }
            _ => Op::NotMatches(
                anchored(&value).map_err(|e| anyhow::anyhow!("matcher {text:?}: {e}"))?,
            ),
        };
        Ok(Matcher {
            label: caps[1].to_string(),
            op,
        })
    }

    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        let value = labels
            .iter()
            .find(|(k, _)| *k == self.label)
            .map_or("", |(_, v)| v.as_str());
        match &self.op {
            Op::Equal(v) => value == v,
            Op::NotEqual(v) => value != v,
            Op::Matches(r) => r.is_match(value),
            Op::NotMatches(r) => !r.is_match(value),
        }
    }
}

/// Whether `text` holds a placeholder (a route's node is then checked when an alert fills it).
pub fn is_template(text: &str) -> bool {
    PLACEHOLDER.is_match(text)
}

/// `template` with its placeholders filled in from `alert`; a missing value is empty. The
/// output is at most the template plus, per placeholder, the longest label, annotation or
/// alert field.
pub fn fill(template: &str, alert: &AlertFields) -> String {
    PLACEHOLDER
        .replace_all(template, |caps: &regex::Captures<'_>| {
            let lookup = |pairs: &[(String, String)]| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == caps[2])
                    .map(|(_, v)| v.clone())
            };
            match &caps[1] {
                "labels" => lookup(&alert.labels),
                "annotations" => lookup(&alert.annotations),
                _ => match &caps[2] {
                    "name" => Some(alert.name.clone()),
                    "fingerprint" => Some(alert.fingerprint.clone()),
                    "status" => Some(alert.status.clone()),
                    _ => None,
                },
            }
            .map(|v| match caps.get(3) {
                Some(_) => crate::fleet::host_of(&v).to_string(),
                None => v,
            })
            .unwrap_or_default()
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matchers_follow_alertmanager_semantics() {
        let l = labels(&[
            ("alertname", "BotDown"),
            ("severity", "critical"),
            ("env", "prod"),
        ]);
        let m = |t: &str| Matcher::parse(t).unwrap().matches(&l);
        assert!(m(r#"alertname="BotDown""#));
        assert!(!m(r#"alertname="Bot""#));
        assert!(m(r#"severity=~"critical|page""#));
        assert!(!m(r#"severity=~"crit""#), "regexes are anchored");
        assert!(m(r#"env!="staging""#));
        assert!(m(r#"team="""#), "a missing label is the empty string");
        assert!(m(r#"team!~".+""#));
        assert!(Matcher::parse("alertname BotDown").is_err());
        assert!(Matcher::parse(r#"x=~"(""#).is_err());
    }
}
