//! Parameter types. The contract's `param-spec` (wit/types.wit) carries no type, so a
//! parameter's type is derived from what a playbook already says about it:
//!
//! - an explicit tag at the end of its description: `[number]`, `[bool]`, `[duration]`,
//!   `[list]`, `[string]`, or `[enum: a|b|c]` ("How long to wait [duration]");
//! - else its default: a number ("80", "0.5") makes it a number, `true`/`false` a bool;
//! - else a string (anything goes).
//!
//! Values are checked before a run is queued (CLI, webhook, route templates, console form),
//! so "abc" for a number is refused naming the parameter, its type and the value, instead of
//! becoming a failed run. An empty value means "not set" (what a route template that found no
//! label gives) and passes for every type; surrounding blanks are ignored, as the SDKs do.

use crate::bindings::ParamSpec;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamType {
    String,
    Number,
    Bool,
    /// One of these words.
    Enum(Vec<String>),
    /// Comma-separated items.
    List,
    /// `30s`, `5m`, `1h30m` (humantime).
    Duration,
}

impl std::fmt::Display for ParamType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamType::String => f.write_str("string"),
            ParamType::Number => f.write_str("number"),
            ParamType::Bool => f.write_str("bool"),
            ParamType::Enum(choices) => write!(f, "enum ({})", choices.join(", ")),
            ParamType::List => f.write_str("list"),
            ParamType::Duration => f.write_str("duration"),
        }
    }
}

/// The type tag at the end of a description, if it is one.
fn tagged(description: &str) -> Option<ParamType> {
    let inner = description.trim_end().strip_suffix(']')?;
    let (_, tag) = inner.rsplit_once('[')?;
    let tag = tag.trim();
    Some(match tag {
        "string" => ParamType::String,
        "number" => ParamType::Number,
        "bool" => ParamType::Bool,
        "list" => ParamType::List,
        "duration" => ParamType::Duration,
        _ => {
            let choices = tag.strip_prefix("enum:")?;
            let choices: Vec<String> = choices
                .split('|')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect();
            if choices.is_empty() {
                return None;
            }
            ParamType::Enum(choices)
        }
    })
}

fn is_number(value: &str) -> bool {
    value.parse::<f64>().is_ok_and(f64::is_finite)
}

/// The parameter's type (see the module's comment for how it is derived).
pub fn type_of(spec: &ParamSpec) -> ParamType {
    if let Some(t) = tagged(&spec.description) {
        return t;
    }
    match spec.default.as_deref().map(str::trim) {
        Some(d) if is_number(d) => ParamType::Number,
        Some("true" | "false") => ParamType::Bool,
        _ => ParamType::String,
    }
}

/// Why `value` is not a `ty`, in a few words; `None` when it is one.
pub fn problem(ty: &ParamType, value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let ok = match ty {
        ParamType::String | ParamType::List => true,
        ParamType::Number => is_number(value),
        ParamType::Bool => matches!(value, "true" | "false"),
        ParamType::Enum(choices) => choices.iter().any(|c| c == value),
        ParamType::Duration => humantime::parse_duration(value).is_ok(),
    };
    if ok {
        return None;
    }
    Some(match ty {
        ParamType::Number => "expected a number, like 80 or 0.5".into(),
        ParamType::Bool => "expected true or false".into(),
        ParamType::Enum(choices) => format!("expected one of {}", choices.join(", ")),
        ParamType::Duration => "expected a duration, like 30s, 5m or 1h30m".into(),
        ParamType::String | ParamType::List => unreachable!("any text is one"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(description: &str, default: Option<&str>) -> ParamSpec {
        ParamSpec {
            name: "p".into(),
            description: description.into(),
            default: default.map(String::from),
            required: false,
        }
    }

    #[test]
    fn types_come_from_a_tag_else_the_default() {
        assert_eq!(type_of(&spec("Usage (%)", Some("80"))), ParamType::Number);
        assert_eq!(type_of(&spec("ratio", Some(" 0.5 "))), ParamType::Number);
        assert_eq!(type_of(&spec("Restart?", Some("false"))), ParamType::Bool);
        assert_eq!(type_of(&spec("Channel", Some("ops"))), ParamType::String);
        assert_eq!(type_of(&spec("Container", None)), ParamType::String);
        assert_eq!(type_of(&spec("Wait [duration]", None)), ParamType::Duration);
        assert_eq!(type_of(&spec("Mounts [list]", Some("/"))), ParamType::List);
        // A tag overrides what the default suggests.
        assert_eq!(
            type_of(&spec("Port [string]", Some("80"))),
            ParamType::String
        );
        assert_eq!(
            type_of(&spec("How [enum: none | pause|stop]", Some("none"))),
            ParamType::Enum(vec!["none".into(), "pause".into(), "stop".into()])
        );
        // Brackets that are no tag are text.
        assert_eq!(
            type_of(&spec("see [the docs]", Some("1"))),
            ParamType::Number
        );
        assert_eq!(type_of(&spec("[enum:]", None)), ParamType::String);
    }

    #[test]
    fn values_are_checked_against_their_type() {
        assert_eq!(
            problem(&ParamType::Number, "abc").as_deref(),
            Some("expected a number, like 80 or 0.5")
        );
        assert!(problem(&ParamType::Number, "NaN").is_some());
        assert!(problem(&ParamType::Number, " 12.5 ").is_none());
        assert!(problem(&ParamType::Number, "").is_none(), "empty: not set");
        assert!(problem(&ParamType::Bool, "yes").is_some());
        assert!(problem(&ParamType::Bool, "true").is_none());
        assert!(problem(&ParamType::Duration, "5 minutes").is_none());
        assert!(problem(&ParamType::Duration, "5").is_some());
        let how = ParamType::Enum(vec!["none".into(), "stop".into()]);
        assert_eq!(
            problem(&how, "kill").as_deref(),
            Some("expected one of none, stop")
        );
        assert!(problem(&how, "stop").is_none());
        assert!(problem(&ParamType::List, "a,,b").is_none());
        assert!(problem(&ParamType::String, "anything").is_none());
    }
}
