//! Route matchers (`alertname=~"Disk.*"`) and parameter templates (`{{ labels.instance | host }}`)
//! against an alert's labels. Input: line 1 a matcher, line 2 a template, then `key=value`
//! labels (`@key=value` annotations).
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook_core::alert::AlertFields;
use runbook_core::routing::{Matcher, fill, is_template};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let matcher = lines.next().unwrap_or_default();
    let template = lines.next().unwrap_or_default();
    let mut alert = AlertFields::default();
    for line in lines {
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        match key.strip_prefix('@') {
            Some(key) => alert.annotations.push((key.into(), value.into())),
            None => alert.labels.push((key.into(), value.into())),
        }
    }
    alert.name = alert
        .labels
        .first()
        .map(|(_, v)| v.clone())
        .unwrap_or_default();

    if let Ok(m) = Matcher::parse(matcher) {
        assert_eq!(m.matches(&alert.labels), m.matches(&alert.labels));
    }
    // Whatever a label holds, a matcher written for that value (quoted as host.toml quotes it)
    // takes exactly that value, and its negation refuses it.
    if let Some((label, value)) = alert.labels.first()
        && !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !label.as_bytes()[0].is_ascii_digit()
    {
        let quoted = value.replace('\\', "\\\\").replace('"', "\\\"");
        let only = vec![(label.clone(), value.clone())];
        let other = vec![(label.clone(), format!("{value}x"))];
        let equal = Matcher::parse(&format!("{label}=\"{quoted}\"")).expect("an = matcher");
        assert!(equal.matches(&only), "{label}={value:?}");
        assert!(!equal.matches(&other));
        let unequal = Matcher::parse(&format!("{label}!=\"{quoted}\"")).expect("a != matcher");
        assert!(!unequal.matches(&only));
        let pattern = regex::escape(value)
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        if let Ok(re) = Matcher::parse(&format!("{label}=~\"{pattern}\"")) {
            assert!(re.matches(&only), "anchored regex of the value");
            assert!(!re.matches(&other), "anchored: no prefix match");
        }
    }

    let filled = fill(template, &alert);
    if !is_template(template) {
        assert_eq!(filled, template, "no placeholder, nothing filled");
    }
    // Bounded: each placeholder (11 bytes at least) becomes one value at most.
    let longest = alert
        .labels
        .iter()
        .chain(&alert.annotations)
        .map(|(_, v)| v.len())
        .chain([
            alert.name.len(),
            alert.fingerprint.len(),
            alert.status.len(),
        ])
        .max()
        .unwrap_or(0);
    assert!(filled.len() <= template.len() + template.len() / 11 * longest);
});
