//! Which playbook an alert starts: `[[route]]` entries with Alertmanager's own matcher
//! semantics (a missing label is the empty string; regexes are anchored), and parameters
//! templated from the alert's labels and annotations.

use std::sync::LazyLock;

use anyhow::{Result, bail};
use regex::Regex;

use crate::bindings::Alert;
use crate::config::RouteConfig;

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

pub struct Route {
    pub config: RouteConfig,
    /// The route's `severity`, overriding the alert's label.
    pub severity: Option<crate::severity::Priority>,
    matchers: Vec<Matcher>,
}

pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(configs: &[RouteConfig]) -> Result<Router> {
        let mut routes = Vec::new();
        for (i, config) in configs.iter().enumerate() {
            let matchers = config
                .matchers
                .iter()
                .map(|m| Matcher::parse(m))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| anyhow::anyhow!("[[route]] #{} ({}): {e}", i + 1, config.playbook))?;
            let severity = config
                .severity
                .as_deref()
                .map(crate::severity::Priority::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("[[route]] #{} ({}): {e}", i + 1, config.playbook))?;
            // A fixed node name is checked now; a templated one when an alert fills it in.
            if let Some(node) = &config.node
                && !PLACEHOLDER.is_match(node)
            {
                runbook_runtime::fleet::check_node_name(node).map_err(|e| {
                    anyhow::anyhow!(
                        "[[route]] #{} ({}): node: {e} (or a template such as \
                         \"{{{{ labels.instance | host }}}}\")",
                        i + 1,
                        config.playbook
                    )
                })?;
            }
            routes.push(Route {
                config: config.clone(),
                severity,
                matchers,
            });
        }
        Ok(Router { routes })
    }

    /// The routes an alert takes, in order, stopping at the first without `continue`.
    pub fn routes_for(&self, alert: &Alert) -> Vec<&Route> {
        let mut taken = Vec::new();
        for route in &self.routes {
            if route.matchers.iter().all(|m| m.matches(&alert.labels)) {
                taken.push(route);
                if !route.config.continue_matching {
                    break;
                }
            }
        }
        taken
    }
}

impl Route {
    /// The route's parameters with `{{ labels.x }}`, `{{ annotations.x }}`, `{{ alert.name }}`
    /// and `{{ alert.fingerprint }}` filled in (missing values become empty; `| host` drops a
    /// `:port`).
    pub fn params_for(&self, alert: &Alert) -> Vec<(String, String)> {
        self.config
            .params
            .iter()
            .map(|(key, template)| (key.clone(), fill(template, alert)))
            .collect()
    }

    /// The node the route's run goes to, if the route names one; an error when the alert
    /// fills the template with something that is not a node name (the alert is rejected).
    pub fn node_for(&self, alert: &Alert) -> Option<Result<String, String>> {
        let template = self.config.node.as_deref()?;
        let node = fill(template, alert);
        Some(match runbook_runtime::fleet::check_node_name(&node) {
            Ok(()) => Ok(node),
            Err(e) if node.is_empty() => Err(format!(
                "the route's node {:?} is empty for this alert (a label missing?): {e}",
                template
            )),
            Err(e) => Err(format!("the route's node {template:?} gave {e}")),
        })
    }
}

fn fill(template: &str, alert: &Alert) -> String {
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
                Some(_) => runbook_runtime::fleet::host_of(&v).to_string(),
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

    #[test]
    fn params_are_templated_from_the_alert() {
        let config = RouteConfig {
            matchers: vec![],
            playbook: "bot-down".into(),
            params: [
                (
                    "container".to_string(),
                    "{{ labels.container }}".to_string(),
                ),
                (
                    "health-url".to_string(),
                    "http://127.0.0.1:{{annotations.port}}/health".to_string(),
                ),
                ("missing".to_string(), "{{ labels.nope }}".to_string()),
            ]
            .into(),
            cooldown_secs: None,
            continue_matching: false,
            dry_run: false,
            severity: None,
            node: Some("{{ labels.instance | host }}".into()),
        };
        let route = Route {
            config,
            severity: None,
            matchers: vec![],
        };
        let alert = Alert {
            name: "BotDown".into(),
            status: "firing".into(),
            labels: labels(&[("container", "bot-1"), ("instance", "node-a:9100")]),
            annotations: labels(&[("port", "8081")]),
            fingerprint: "f".into(),
            starts_at: "t".into(),
        };
        let params = route.params_for(&alert);
        assert_eq!(params[0], ("container".into(), "bot-1".into()));
        assert_eq!(
            params[1],
            ("health-url".into(), "http://127.0.0.1:8081/health".into())
        );
        assert_eq!(params[2], ("missing".into(), String::new()));
        assert_eq!(route.node_for(&alert), Some(Ok("node-a".to_string())));
        let hostile = Alert {
            labels: labels(&[("instance", "../../etc:9100")]),
            ..alert.clone()
        };
        assert!(matches!(route.node_for(&hostile), Some(Err(_))));
        let unlabelled = Alert {
            labels: vec![],
            ..alert
        };
        let refused = route.node_for(&unlabelled).unwrap().unwrap_err();
        assert!(refused.contains("empty"), "{refused}");
    }
}
