//! `[[budget]]` in host.toml: how many mutating capability calls of some kinds may be made
//! per container, node, playbook or overall within a window, across every playbook, replica
//! and node sharing the store. Read and checked with the rest of the config.

use std::time::Duration;

use serde::Deserialize;

/// The capability functions a budget may count: the mutating ones.
pub const BUDGETED_ACTIONS: &[&str] = &[
    "docker.start",
    "docker.stop",
    "docker.restart",
    "docker.pause",
    "docker.unpause",
    "docker.prune",
    "docker.network-disconnect",
];

/// The budget the built-in remediations get unless host.toml declares one of the same name.
pub const DEFAULT_BUDGET: &str = "restarts";
const MAX_BUDGET_NAME: usize = 64;
const MAX_BUDGETS: usize = 64;

/// What a budget's uses are counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Per {
    /// The container the call resolved to (its canonical name, not what the playbook passed).
    Container,
    /// The machine the call runs on (a fleet node's name, else this host's).
    Node,
    Playbook,
    Global,
}

impl Per {
    pub fn as_str(self) -> &'static str {
        match self {
            Per::Container => "container",
            Per::Node => "node",
            Per::Playbook => "playbook",
            Per::Global => "global",
        }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BudgetConfig {
    pub name: String,
    /// Capability functions, `interface.function` (see [`BUDGETED_ACTIONS`]).
    pub actions: Vec<String>,
    pub per: Per,
    pub max: u32,
    /// `1h`, `30m`, `1d` …
    #[serde(with = "humantime_serde_lite")]
    pub within: Duration,
    /// Only these playbooks' calls count (empty: every playbook's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub playbooks: Vec<String>,
}

/// `within` as people write it (`1h`), without another dependency.
mod humantime_serde_lite {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("within {text:?}: {e} (e.g. \"1h\")")))
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

impl BudgetConfig {
    /// Does this budget count `interface.function` made by `playbook`?
    pub fn counts(&self, action: &str, playbook: &str) -> bool {
        self.actions.iter().any(|a| a == action)
            && (self.playbooks.is_empty() || self.playbooks.iter().any(|p| p == playbook))
    }

    /// "3 per container within 1h".
    pub fn describe(&self) -> String {
        format!(
            "{} per {} within {}",
            self.max,
            self.per.as_str(),
            humantime::format_duration(self.within)
        )
    }

    fn check(&self) -> Result<(), String> {
        if self.name.is_empty()
            || self.name.len() > MAX_BUDGET_NAME
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "name {:?}: 1 to {MAX_BUDGET_NAME} letters, digits, '-', '_' or '.'",
                crate::text::echo(&self.name)
            ));
        }
        if self.actions.is_empty() {
            return Err("`actions` is empty: name the capability functions it counts".into());
        }
        for action in &self.actions {
            if !BUDGETED_ACTIONS.contains(&action.as_str()) {
                return Err(format!(
                    "action {:?} is not a mutating capability function; one of {}",
                    crate::text::echo(action),
                    BUDGETED_ACTIONS.join(", ")
                ));
            }
        }
        if self.max == 0 {
            return Err("`max` is 0: at least 1 (to forbid an action, do not grant it)".into());
        }
        if self.within < Duration::from_secs(1) || self.within > Duration::from_secs(366 * 86400) {
            return Err("`within` must be between 1s and 366d".into());
        }
        for playbook in &self.playbooks {
            crate::catalog::check_name(playbook).map_err(|e| format!("playbooks: {e}"))?;
        }
        Ok(())
    }
}

/// The built-in remediations restart a container at most 3 times an hour, whichever playbook,
/// replica or node asks.
pub fn default_budget() -> BudgetConfig {
    BudgetConfig {
        name: DEFAULT_BUDGET.into(),
        actions: ["docker.restart", "docker.start", "docker.stop"]
            .map(String::from)
            .to_vec(),
        per: Per::Container,
        max: 3,
        within: Duration::from_secs(3600),
        playbooks: ["bot-down", "web-down"].map(String::from).to_vec(),
    }
}

/// The budgets in force: host.toml's, and the default one unless host.toml names its own
/// `restarts`. Each checked; names unique.
pub fn effective(declared: &[BudgetConfig]) -> Result<Vec<BudgetConfig>, String> {
    if declared.len() > MAX_BUDGETS {
        return Err(format!("more than {MAX_BUDGETS} [[budget]] tables"));
    }
    let mut names = std::collections::HashSet::new();
    for (i, budget) in declared.iter().enumerate() {
        budget
            .check()
            .map_err(|e| format!("[[budget]] #{}: {e}", i + 1))?;
        if !names.insert(budget.name.as_str()) {
            return Err(format!(
                "[[budget]] #{}: another budget is named {:?}; give each its own name",
                i + 1,
                budget.name
            ));
        }
    }
    let mut budgets = declared.to_vec();
    if !names.contains(DEFAULT_BUDGET) {
        budgets.push(default_budget());
    }
    Ok(budgets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<BudgetConfig>, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            budget: Vec<BudgetConfig>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        effective(&file.budget)
    }

    #[test]
    fn the_default_restarts_budget_applies_unless_replaced() {
        let budgets = parse("").unwrap();
        assert_eq!(budgets.len(), 1);
        assert_eq!(budgets[0].describe(), "3 per container within 1h");
        assert!(budgets[0].counts("docker.restart", "bot-down"));
        assert!(!budgets[0].counts("docker.restart", "my-playbook"));
        assert!(!budgets[0].counts("docker.inspect", "bot-down"));

        let budgets = parse(
            r#"[[budget]]
name = "restarts"
actions = ["docker.restart"]
per = "node"
max = 10
within = "30m""#,
        )
        .unwrap();
        assert_eq!(budgets.len(), 1);
        assert_eq!(budgets[0].describe(), "10 per node within 30m");
        assert!(budgets[0].counts("docker.restart", "anything"));
    }

    #[test]
    fn a_bad_budget_is_a_config_error_naming_it() {
        let base = |extra: &str| {
            format!(
                "[[budget]]\nname = \"b\"\nactions = [\"docker.stop\"]\nper = \"global\"\nmax = 1\nwithin = \"1h\"\n{extra}"
            )
        };
        for (text, wanted) in [
            (
                base("").replace("docker.stop", "docker.inspect"),
                "not a mutating",
            ),
            (base("").replace("max = 1", "max = 0"), "`max` is 0"),
            (base("").replace("\"1h\"", "\"soon\""), "within \"soon\""),
            (
                base("").replace("\"global\"", "\"galaxy\""),
                "unknown variant",
            ),
            (
                base("").replace("name = \"b\"", "name = \"a b\""),
                "name \"a b\"",
            ),
            (
                format!("{}\n{}", base(""), base("")),
                "another budget is named",
            ),
            (base("colour = 1"), "unknown field"),
        ] {
            let error = parse(&text).unwrap_err();
            assert!(error.contains(wanted), "{wanted:?} not in {error}");
        }
    }
}
