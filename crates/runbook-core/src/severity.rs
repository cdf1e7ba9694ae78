//! Incident priority, P1 (most urgent) to P4, as the operators' incident classification uses
//! it. A run takes it from the trigger (`--severity`, a route's `severity`, the run hook's
//! `?severity=`), else from the alert's `severity` / `priority` label, else P3; it reaches the
//! notifications and the incident report.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
            Priority::P4 => "P4",
        }
    }

    /// `P1`…`P4`, or the words monitoring systems put in a `severity` label.
    pub fn parse(text: &str) -> Result<Priority, String> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "p1" | "p0" | "critical" | "page" | "emergency" | "disaster" => Priority::P1,
            "p2" | "high" | "error" | "major" => Priority::P2,
            "p3" | "warning" | "warn" | "medium" | "average" | "minor" => Priority::P3,
            "p4" | "info" | "low" | "none" | "informational" => Priority::P4,
            _ => {
                return Err(format!(
                    "severity {text:?}: expected P1, P2, P3 or P4 (or critical, high, warning, info)"
                ));
            }
        })
    }

    /// From an alert's labels: `priority` first, then `severity`; unknown words are ignored.
    pub fn from_labels(labels: &[(String, String)]) -> Option<Priority> {
        ["priority", "severity"].iter().find_map(|key| {
            labels
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| Priority::parse(v).ok())
        })
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_words_map_to_priorities() {
        assert_eq!(Priority::parse("P2"), Ok(Priority::P2));
        assert_eq!(Priority::parse("critical"), Ok(Priority::P1));
        assert_eq!(Priority::parse(" Warning "), Ok(Priority::P3));
        assert!(
            Priority::parse("urgent-ish")
                .unwrap_err()
                .contains("P1, P2, P3 or P4")
        );
        let labels = vec![
            ("severity".to_string(), "info".to_string()),
            ("priority".to_string(), "P2".to_string()),
        ];
        assert_eq!(Priority::from_labels(&labels), Some(Priority::P2));
        assert_eq!(Priority::from_labels(&labels[..1]), Some(Priority::P4));
        assert_eq!(Priority::from_labels(&[]), None);
    }
}
