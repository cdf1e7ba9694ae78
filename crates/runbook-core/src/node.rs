//! Node names of the fleet: they go into the store, URLs, metrics labels and log lines, so
//! only hostname characters. Checked where host.toml is read and where an agent starts.

/// Node names go into the store, URLs, metrics labels and log lines: hostname characters only.
pub const MAX_NODE_NAME: usize = 63;
/// A node name: letters, digits, `.`, `-` and `_`, starting with a letter or digit, ≤ 63 bytes
/// (a DNS label or a dotted host name without its port).
pub fn check_node_name(name: &str) -> Result<(), String> {
    let shown = crate::text::escape(&crate::text::echo(name)).into_owned();
    if name.is_empty() || name.len() > MAX_NODE_NAME {
        return Err(format!(
            "node name {shown:?}: 1 to {MAX_NODE_NAME} bytes expected"
        ));
    }
    let ok_start = name.as_bytes()[0].is_ascii_alphanumeric();
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !ok_start || !ok_chars {
        return Err(format!(
            "node name {shown:?}: letters, digits, '.', '-' and '_' only, starting with a \
             letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_host_names() {
        for good in ["node-a", "web01.prod", "n_1", "7"] {
            assert!(check_node_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "a/b",
            "a b",
            "a:1",
            "fd00::7",
            "ä",
            &"x".repeat(64),
        ] {
            assert!(check_node_name(bad).is_err(), "{bad:?}");
        }
    }
}
