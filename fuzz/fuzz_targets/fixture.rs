//! Replay fixtures (`host test`), JSON or TOML by the input's first byte: the properties are
//! `runbook_runtime::invariants::fixture_input`'s, also asserted over this target's corpus by
//! the runtime's unit tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| runbook_runtime::invariants::fixture_input(bytes));
