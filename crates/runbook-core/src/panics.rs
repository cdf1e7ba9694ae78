//! A panic in the host is a bug, but one a playbook may reach with a string it chose: it is
//! caught per capability call and per run, and what it prints is bounded like any other
//! playbook-controlled text.

/// Panics are caught per run (see `run::guard_run`); this keeps what they print to one bounded
/// line (a panic message may quote a megabyte a playbook passed), plus the backtrace when
/// `RUST_BACKTRACE` asks for it.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        // A panic message can quote a playbook's input: escaped, like everything it wrote.
        eprintln!(
            "host error: panic{at}: {}",
            crate::text::escape(&panic_message(info.payload()))
        );
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            eprintln!("{backtrace}");
        }
    }));
}

/// What a panic said, cut to a line's worth (it may quote what a playbook passed).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    const MAX: usize = 500;
    let text = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_panic_message_is_cut_and_says_its_length() {
        let long = "x".repeat(1 << 20);
        let said = panic_message(&long);
        assert!(said.len() < 600, "{} bytes", said.len());
        assert!(said.ends_with("(1048576 bytes)"), "{said}");
        assert_eq!(panic_message(&"short"), "short");
    }
}
