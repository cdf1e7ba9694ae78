//! Colour for the command line's own words (an outcome, `error:`), never for text a playbook
//! chose. Strings carry ANSI codes unconditionally; the CLI prints through anstream, which drops
//! them unless the stream is a terminal and NO_COLOR is unset (the rule clap applies to --help).

use anstyle::{AnsiColor, Style};

const RED: Style = AnsiColor::Red.on_default().bold();
const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
const GREEN: Style = AnsiColor::Green.on_default().bold();
const BOLD: Style = Style::new().bold();

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// A run's status word, coloured by what it asks of the operator.
pub fn outcome(status: &str) -> String {
    let style = match status {
        "failed" | "lost" => RED,
        "escalated" => YELLOW,
        "resolved" | "mitigated" => GREEN,
        _ => BOLD,
    };
    paint(style, &status.to_uppercase())
}

pub fn error() -> String {
    paint(RED, "error:")
}

pub fn warning() -> String {
    paint(YELLOW, "warning:")
}

pub fn ok() -> String {
    paint(GREEN, "ok ")
}

pub fn err() -> String {
    paint(RED, "ERR")
}
