//! The commands' bodies (`host test`, `host run --record`, `host runs export --fixture`);
//! the binary (host/src/commands/) only parses arguments and calls these.

use std::path::{Path, PathBuf};

use super::test::{EXIT_BAD_FIXTURE, EXIT_FAIL, EXIT_PASS, TestReport, run_fixture};
use super::{FIXTURE_ARTIFACT, Fixture};
use crate::records::StoredRun;
use crate::run::{Host, Prepared, RunRecord};

/// `host test`: each fixture in turn; the worst exit code wins (2 over 1 over 0).
pub async fn test_command(
    host: &Host,
    prepared: &Prepared,
    fixtures: &[PathBuf],
    json: bool,
) -> anyhow::Result<u8> {
    let mut reports = Vec::new();
    let mut exit = EXIT_PASS;
    for path in fixtures {
        let report = match Fixture::read(path) {
            Ok(fixture) => run_fixture(host, prepared, fixture).await,
            Err(e) => TestReport::bad_file(&prepared.source.name, format!("{e:#}")),
        };
        exit = exit.max(report.exit_code());
        if !json {
            print!("{}", report.render(&path.display().to_string()));
        }
        reports.push(serde_json::json!({ "fixture": path, "report": report }));
    }
    if json {
        let doc = serde_json::json!({ "exit": exit, "fixtures": reports });
        println!("{}", crate::text::json_for_terminal(&doc)?);
    }
    debug_assert!([EXIT_PASS, EXIT_FAIL, EXIT_BAD_FIXTURE].contains(&exit));
    Ok(exit)
}

/// `host run --record FILE`: the fixture the run kept as its artifact, written out.
pub fn write_recording(record: &RunRecord, path: &Path) -> anyhow::Result<()> {
    let fixture = record
        .artifacts
        .iter()
        .find(|a| a.name == FIXTURE_ARTIFACT)
        .ok_or_else(|| anyhow::anyhow!("the run kept no fixture"))?;
    write(path, &fixture.text)
}

/// `host runs export ID --fixture FILE`: `false` when the run was not recorded.
pub fn export_fixture(run: &StoredRun, path: &Path) -> anyhow::Result<bool> {
    match run.artifacts.iter().find(|a| a.name == FIXTURE_ARTIFACT) {
        Some(fixture) => write(path, &fixture.text).map(|()| true),
        None => Ok(false),
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}
