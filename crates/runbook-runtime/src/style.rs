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

/// A span of time as people read it, the same on every page and in the terminal: "20 ms"
/// below a second, "4.2 s" below a minute, then "1m 22s", "2h 5m" (a 20 ms run is not "0.0 s",
/// and nobody counts the seconds of an hour).
pub fn duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    let secs = d.as_secs();
    if ms < 1000 {
        format!("{ms} ms")
    } else if secs < 60 {
        // Truncated, not rounded: 59.96 s stays below "1m 0s".
        format!("{:.1} s", (d.as_millis() / 100) as f64 / 10.0)
    } else if secs < 3600 {
        format!("{}m {}s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h {}m", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::duration;

    #[test]
    fn durations_read_as_people_say_them() {
        let ms = Duration::from_millis;
        assert_eq!(duration(ms(0)), "0 ms");
        assert_eq!(duration(ms(20)), "20 ms");
        assert_eq!(duration(ms(999)), "999 ms");
        assert_eq!(duration(ms(1000)), "1.0 s");
        assert_eq!(duration(ms(4_250)), "4.2 s");
        assert_eq!(duration(ms(59_990)), "59.9 s");
        assert_eq!(duration(ms(60_000)), "1m 0s");
        assert_eq!(duration(ms(82_400)), "1m 22s");
        assert_eq!(duration(ms(3_599_999)), "59m 59s");
        assert_eq!(duration(ms(7_500_000)), "2h 5m");
        assert_eq!(duration(ms(90_000_000)), "1d 1h");
    }
}
