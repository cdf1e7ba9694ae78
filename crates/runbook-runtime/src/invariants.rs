//! What the host.toml and replay-fixture parsers keep true for any input, whatever its bytes:
//! asserted by the fuzz targets (fuzz/fuzz_targets/host_toml.rs and fixture.rs, which build
//! this crate, wasmtime included, instrumented: `scripts/fuzz.sh SECONDS`) and, over their
//! checked-in corpora, by this module's tests, so every regression is replayed in CI without
//! that instrumented build.

use std::path::Path;

use crate::config::Config;
use crate::tape::{Fixture, FixtureFormat};

/// Where the fuzzed host.toml is taken to live: relative paths inside resolve below it.
const CONFIG_PATH: &str = "/etc/runbook/host.toml";

/// host.toml: refused with a message fit for a terminal, or accepted the same way twice into
/// a config whose routes name catalog entries, whose relative paths stay below the config's
/// directory and whose limits are the numbers written (no silent wrap).
pub fn host_toml(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let path = Path::new(CONFIG_PATH);
    let config = match Config::parse(text, path) {
        Ok(config) => config,
        Err(e) => return assert_printable(&format!("{e:#}")),
    };
    let again = Config::parse(text, path).expect("accepted once, accepted again");
    assert_eq!(
        format!("{config:?}"),
        format!("{again:?}"),
        "not deterministic"
    );
    for route in &config.routes {
        crate::catalog::check_name(&route.playbook).expect("a route names a catalog entry");
    }
    for dir in config.plugin_dirs.iter().chain(&config.cache_dir) {
        assert!(dir.is_absolute(), "{} not resolved", dir.display());
    }
    for (name, plugin) in &config.plugins {
        let limits = config.limits_for(name);
        if let Some(mib) = plugin.memory_mib {
            assert_eq!(limits.memory_bytes >> 20, mib, "memory-mib {mib} wrapped");
        }
        let _ = config.grants_for(name, false);
    }
    let _ = config.host_files();
}

/// A replay fixture (`host test`): refused with a message fit for a terminal, or accepted into
/// one that `host runs export --fixture` writes as JSON and reads back the same, valid or not
/// the same way.
pub fn fixture(bytes: &[u8], format: FixtureFormat) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let fixture = match Fixture::parse(text, format) {
        Ok(fixture) => fixture,
        Err(e) => return assert_printable(&format!("{e:#}")),
    };
    let valid = fixture.validate();
    if let Err(e) = &valid {
        assert_printable(&format!("{e:#}"));
    }
    let json = fixture.to_json().expect("a parsed fixture writes as JSON");
    let back = Fixture::parse(&json, FixtureFormat::Json).expect("its own JSON reads back");
    assert_eq!(
        back.to_json().unwrap(),
        json,
        "the JSON round trip changed it"
    );
    assert_eq!(back.validate().is_ok(), valid.is_ok(), "validity changed");
}

/// A fuzz input for [`fixture`]: its first byte picks the format (`t`: TOML, else JSON), the
/// rest is the file.
pub fn fixture_input(bytes: &[u8]) {
    match bytes.split_first() {
        Some((b't', text)) => fixture(text, FixtureFormat::Toml),
        Some((_, text)) => fixture(text, FixtureFormat::Json),
        None => {}
    }
}

/// An error reaches a terminal (`host check`, `host test`): no escape sequence or other control
/// character may ride in it from the input; line breaks and tabs are layout.
fn assert_printable(message: &str) {
    let bad = message
        .chars()
        .find(|&c| c.is_control() && c != '\n' && c != '\t');
    assert!(bad.is_none(), "control character {bad:?} in: {message:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every input of a checked-in corpus (fuzz/corpus/NAME): the fuzzers' finds and seeds.
    fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).unwrap())
            })
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{} is empty", dir.display());
        inputs
    }

    #[test]
    fn the_host_toml_corpus_keeps_every_property() {
        for (name, bytes) in corpus("host_toml") {
            eprintln!("host_toml/{name}");
            host_toml(&bytes);
        }
    }

    #[test]
    fn the_fixture_corpus_keeps_every_property() {
        for (name, bytes) in corpus("fixture") {
            eprintln!("fixture/{name}");
            fixture_input(&bytes);
        }
    }
}
