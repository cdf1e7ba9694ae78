//! Cases for the live-stream tests and benchmark: a timeline that grows while viewers follow.

use runbook_sdk::prelude::*;

pub fn run(case: &str, incident: &Incident) -> Option<Result<Outcome, Error>> {
    match case {
        "stream-lines" => Some(lines(incident)),
        _ => None,
    }
}

/// `target` = "COUNT,BYTES,PAUSE_MS,HOLD_MS": COUNT log lines of BYTES bytes each (numbered
/// "line N "), PAUSE_MS apart, then the run stays running HOLD_MS more and resolves.
fn lines(incident: &Incident) -> Result<Outcome, Error> {
    let spec: Vec<u64> = incident
        .param("target")
        .unwrap_or("10,20,100,0")
        .split(',')
        .map(|n| n.trim().parse().unwrap_or(0))
        .collect();
    let [count, bytes, pause, hold] = spec[..] else {
        return Err(Error::Invalid(
            "stream-lines: target is COUNT,BYTES,PAUSE_MS,HOLD_MS".into(),
        ));
    };
    for i in 0..count {
        let mut line = format!("line {i} ");
        while (line.len() as u64) < bytes {
            line.push('x');
        }
        info!("{line}");
        if pause > 0 {
            std::thread::sleep(std::time::Duration::from_millis(pause));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(hold));
    Ok(Outcome::resolved(format!("{count} lines")))
}
