//! host.toml (`Config::parse`): the properties are `runbook_runtime::invariants::host_toml`'s,
//! which the runtime's unit tests also assert over this target's corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| runbook_runtime::invariants::host_toml(bytes));
