//! Which playbook an alert starts: `[[route]]` entries with Alertmanager's own matcher
//! semantics (a missing label is the empty string; regexes are anchored), and parameters
//! templated from the alert's labels and annotations.

use anyhow::Result;

use crate::bindings::Alert;
use crate::config::RouteConfig;

pub use runbook_core::routing::Matcher;

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
                && !runbook_core::routing::is_template(node)
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
    runbook_core::routing::fill(template, &runbook_runtime::incident::fields_of(alert))
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
