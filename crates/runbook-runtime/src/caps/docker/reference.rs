//! What a playbook may hand the Docker engine. The engine's API puts names in URL paths and
//! filters in query strings, so every string from a playbook is held to Docker's own grammar
//! here, before anything is looked up: a slash, `%`, `?`, `#`, a space or a control character
//! can never reach a request, and no input is kept or echoed whole.

use crate::bindings::CapError;
use crate::policy::{MAX_NAME_GLOB_BYTES, name_glob};

/// Longest container or network reference (a name, an id or an id prefix).
pub const MAX_REFERENCE_BYTES: usize = 255;
/// Label selectors one `list-containers` call may pass, and the longest one.
pub const MAX_LABEL_FILTERS: usize = 16;
pub const MAX_LABEL_FILTER_BYTES: usize = 512;
/// `input` quoted for an error message or the audit log: control characters escaped (Debug
/// quoting), cut as [`crate::text::echo`] cuts.
pub fn echo(input: &str) -> String {
    format!("{:?}", crate::text::echo(input))
}

/// A container reference: a Docker name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, one leading `/`
/// allowed) or an id / id prefix (hex, a subset of the same grammar). Returns it without the
/// `/`.
pub fn container(input: &str) -> Result<&str, CapError> {
    reference("container", input)
}

/// A network reference, same grammar as a container's.
pub fn network(input: &str) -> Result<&str, CapError> {
    reference("network", input)
}

fn reference<'a>(kind: &str, input: &'a str) -> Result<&'a str, CapError> {
    let name = input.strip_prefix('/').unwrap_or(input);
    let mut bytes = name.bytes();
    let valid = name.len() <= MAX_REFERENCE_BYTES
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(name)
    } else {
        Err(CapError::Invalid(format!(
            "{kind} {} is not a Docker {kind} name or id \
             ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most {MAX_REFERENCE_BYTES} bytes)",
            echo(input)
        )))
    }
}

/// What the engine answered as an object's id must be a full id before the host acts on it.
pub fn engine_id<'a>(kind: &str, id: &'a str) -> Result<&'a str, CapError> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id)
    } else {
        Err(CapError::Failed(format!(
            "the Docker engine answered {} as a {kind} id",
            echo(id)
        )))
    }
}

/// The `list-containers` name glob, compiled (bounded length, `*` never matches `/`).
pub fn list_glob(pattern: &str) -> Result<globset::GlobSet, CapError> {
    name_glob(pattern).map_err(|e| {
        CapError::Invalid(format!(
            "name glob {}: {e} (at most {MAX_NAME_GLOB_BYTES} bytes)",
            echo(pattern)
        ))
    })
}

/// `list-containers` label selectors: at most [`MAX_LABEL_FILTERS`] of `key` or `key=value`,
/// each bounded, with a non-empty key and no control characters (they go into the engine's
/// `filters` query as given).
pub fn label_filters(selectors: &[String]) -> Result<(), CapError> {
    if selectors.len() > MAX_LABEL_FILTERS {
        return Err(CapError::Invalid(format!(
            "{} label selectors; at most {MAX_LABEL_FILTERS}",
            selectors.len()
        )));
    }
    for selector in selectors {
        let key = selector
            .split_once('=')
            .map_or(selector.as_str(), |(k, _)| k);
        if selector.len() > MAX_LABEL_FILTER_BYTES
            || key.trim().is_empty()
            || selector.chars().any(char::is_control)
        {
            return Err(CapError::Invalid(format!(
                "label selector {} is not `key` or `key=value` (non-empty key, no control \
                 characters, at most {MAX_LABEL_FILTER_BYTES} bytes)",
                echo(selector)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(r: Result<&str, CapError>) -> bool {
        matches!(r, Err(CapError::Invalid(_)))
    }

    #[test]
    fn only_docker_names_and_ids_are_references() {
        for ok in [
            "bar-x",
            "/bar-x",
            "a",
            "web_1.blue",
            "0123abcd",
            &"f".repeat(64),
        ] {
            assert_eq!(container(ok).unwrap(), ok.trim_start_matches('/'));
        }
        let long = "a".repeat(MAX_REFERENCE_BYTES + 1);
        for bad in [
            "",
            "/",
            "//bar",
            "bar-x/../victim",
            "bar-x%2f..%2fvictim",
            "bar-x/%2e%2e/victim",
            "../victim",
            ".hidden",
            "-dash",
            "bar?x=1",
            "bar#x",
            "bar x",
            "bar\nx",
            "bar\u{7f}",
            "bär",
            long.as_str(),
        ] {
            assert!(invalid(container(bad)), "{bad:?}");
            assert!(invalid(network(bad)), "{bad:?}");
        }
    }

    #[test]
    fn echoes_are_capped_and_escaped() {
        let big = "x".repeat(1 << 20);
        let message = match container(&big) {
            Err(CapError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(message.len() < 400, "{}", message.len());
        assert!(message.contains("(1048576 bytes)"), "{message}");
        assert_eq!(echo("a\u{1b}[2Jb"), "\"a\\u{1b}[2Jb\"");
    }

    #[test]
    fn globs_and_label_selectors_are_bounded() {
        assert!(matches!(
            list_glob(&"*".repeat(1 << 20)),
            Err(CapError::Invalid(_))
        ));
        let glob = list_glob("bar-*").unwrap();
        assert!(glob.is_match("bar-x"));
        assert!(!glob.is_match("bar-x/../victim"));
        assert!(label_filters(&["a".into(), "a=b c".into()]).is_ok());
        for bad in [
            "",
            "=v",
            "a\u{0}=b",
            &"k".repeat(MAX_LABEL_FILTER_BYTES + 1),
        ] {
            assert!(label_filters(&[bad.to_string()]).is_err(), "{bad:?}");
        }
        assert!(label_filters(&vec!["a".to_string(); MAX_LABEL_FILTERS + 1]).is_err());
    }
}
