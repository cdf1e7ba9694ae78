//! Logs through `tracing`: `--log-level` / `RUNBOOK_LOG` take `RUST_LOG`-style filters
//! (`info`, `runbook_server=debug,warn`), `--log-format text|json` picks the form. The
//! services (`host serve`, `host agent`) log timestamped lines with their fields; the one-shot
//! commands print only warnings and errors, as `warning: …` / `error: …` like the rest of the
//! CLI's messages. Everything goes to stderr: stdout carries a command's output.
//!
//! Nothing secret is logged: no header values, no bodies, no tokens; strings that came from a
//! playbook or a webhook are escaped where they are logged (`text::escape`).

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `service`: a long-running server or agent (info and up,
/// timestamped); else a one-shot command (warnings and up, plain). A bad filter is an error
/// naming it. Lines are written by a background thread (a request logs without a syscall);
/// keep the guard until exit, it flushes what is left.
pub fn init(
    level: Option<&str>,
    format: LogFormat,
    service: bool,
) -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    let default = if service { "info" } else { "warn" };
    let wanted = level
        .map(String::from)
        .or_else(|| std::env::var("RUNBOOK_LOG").ok())
        .unwrap_or_else(|| default.to_string());
    // Other crates (wasmtime, hyper, …) stay at warn unless named: their debug is not ours.
    let directives = if wanted.contains('=') || wanted.contains(',') {
        wanted.clone()
    } else {
        // The host's own crates: the CLI (`host`) and its layers.
        [
            "host",
            "runbook_core",
            "runbook_store",
            "runbook_runtime",
            "runbook_server",
        ]
        .iter()
        .fold("warn".to_string(), |all, target| {
            format!("{all},{target}={wanted}")
        })
    };
    let filter = EnvFilter::builder()
        .parse(&directives)
        .map_err(|e| anyhow::anyhow!("--log-level / RUNBOOK_LOG {wanted:?}: {e}"))?;
    // anstream drops the colour unless stderr is a terminal and NO_COLOR is unset. Nothing is
    // dropped when the thread falls behind: a logger blocks rather than loses lines.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(anstream::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match (format, service) {
        (LogFormat::Json, _) => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        (LogFormat::Text, true) => builder.with_ansi(true).with_target(false).try_init(),
        (LogFormat::Text, false) => builder.event_format(Plain).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))?;
    Ok(guard)
}

/// A one-shot command's form: `warning: message field=value …`.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match *event.metadata().level() {
            tracing::Level::ERROR => write!(writer, "{} ", crate::style::error())?,
            tracing::Level::WARN => write!(writer, "{} ", crate::style::warning())?,
            _ => {}
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
