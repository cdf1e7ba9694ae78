//! The console's layout in Chromium: at 1400 px no table, fact or heading breaks a word across
//! lines and no text is drawn over other text; on a phone (390 px) the same, and nothing is
//! wider than the screen; each status tone is its own colour, legible (WCAG 4.5:1) in light
//! and dark; Approve and Reject look different. Screenshots of each page go to docs/.

use std::time::Duration;

use runbook_tests::browser::Browser;

use super::{Console, docs};

/// (text colour, background) of a badge of each tone, and the page's background.
fn tones(b: &Browser) -> Vec<(String, String, String)> {
    let found = b.eval(
        "const main = document.querySelector('main');
         return ['t-good', 't-eased', 't-calm', 't-warn', 't-bad', 't-gone', 't-live',
                 't-asking', 't-queued'].map(t => {
           const s = document.createElement('span');
           s.className = 'status ' + t;
           s.textContent = t;
           main.append(s);
           const css = getComputedStyle(s);
           const found = [t, css.color, css.backgroundColor];
           s.remove();
           return found;
         });",
    );
    serde_json::from_value(found).unwrap()
}

fn rgb(css: &str) -> [f64; 3] {
    let inside = css
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')');
    let parts: Vec<f64> = inside
        .split(',')
        .map(|p| p.trim().parse().unwrap())
        .collect();
    [parts[0], parts[1], parts[2]]
}

/// WCAG contrast ratio of two CSS colours.
fn contrast(a: &str, b: &str) -> f64 {
    let luminance = |c: [f64; 3]| {
        let f = |v: f64| {
            let v = v / 255.0;
            if v <= 0.03928 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2])
    };
    let (x, y) = (luminance(rgb(a)), luminance(rgb(b)));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

pub(super) fn at_1400_px_no_word_breaks_and_each_status_has_its_colour(
    c: &Console,
    run_id: &str,
    question: &str,
) {
    let b = &c.browser;
    b.window_size(1400, 900);
    // The detector itself: a word squeezed into a narrow box that may break anywhere.
    b.goto(&c.page("/ui/runs"));
    b.wait_for("the runs", Duration::from_secs(10), |b| {
        b.count("#runs tr.run") >= 3
    });
    b.eval(
        "const p = document.createElement('div');
         p.id = 'probe';
         p.style.cssText = 'width: 40px; overflow-wrap: anywhere';
         p.textContent = 'deduplicated';
         document.querySelector('main').append(p);
         const q = document.createElement('div');
         q.id = 'probe2';
         q.style.cssText = 'position: relative; top: -1.2em';
         q.textContent = 'overdrawn text';
         p.after(q);
         return true",
    );
    assert_eq!(b.words_broken_across_lines("#probe"), ["deduplicated"]);
    assert!(
        !b.overlapping_text("#probe, #probe2").is_empty(),
        "overlap detector"
    );

    let pages = [
        ("/ui/runs".to_string(), "#runs", "console-runs.png"),
        (format!("/ui/runs/{run_id}"), "#timeline", "console-run.png"),
        (
            "/ui/approvals".to_string(),
            "#approvals",
            "console-approvals.png",
        ),
        (
            "/ui/outbox?state=all".to_string(),
            "#outbox",
            "console-outbox.png",
        ),
        ("/ui/alerts".to_string(), "#alerts", "console-alerts.png"),
    ];
    for (path, ready, shot) in &pages {
        b.goto(&c.page(path));
        b.wait_for(path, Duration::from_secs(10), |b| b.count(ready) == 1);
        let broken = b.words_broken_across_lines("main td, main th, main dd, main h1");
        assert!(
            broken.is_empty(),
            "{path}: words broken across lines: {broken:?}"
        );
        let over = b.overlapping_text("main");
        assert!(over.is_empty(), "{path}: text drawn over text: {over:?}");
        b.screenshot(&docs(shot));
    }
    // Status words never wrap inside themselves.
    b.goto(&c.page("/ui/runs"));
    b.wait_for("the runs", Duration::from_secs(10), |b| {
        b.count("#runs") == 1
    });
    assert_eq!(
        b.eval("return getComputedStyle(document.querySelector('#runs .status')).whiteSpace"),
        "nowrap"
    );
    // The badge: one question waits, and it leads to the approvals.
    assert_eq!(b.text("#pending-count"), "1");
    assert_eq!(
        b.eval("return document.getElementById('pending-count').closest('a').getAttribute('href')"),
        "/ui/approvals"
    );

    // One colour per meaning, each legible on its own background and on the page's, in
    // both schemes.
    for scheme in ["light", "dark"] {
        b.color_scheme(scheme);
        let tones = tones(b);
        let page = b
            .eval("return getComputedStyle(document.body).backgroundColor")
            .as_str()
            .unwrap()
            .to_string();
        for (tone, fg, bg) in &tones {
            assert!(contrast(fg, bg) >= 4.5, "{scheme} {tone}: {fg} on {bg}");
            assert!(
                contrast(fg, &page) >= 4.5,
                "{scheme} {tone}: {fg} on {page}"
            );
        }
        let mut pairs: Vec<_> = tones.iter().map(|(_, fg, bg)| (fg, bg)).collect();
        pairs.sort();
        pairs.dedup();
        assert_eq!(
            pairs.len(),
            tones.len(),
            "{scheme}: two tones look alike: {tones:?}"
        );
    }
    b.color_scheme("light");

    // Approve is the green primary button, Reject the red outlined one.
    b.goto(&c.page_as_oncall(&format!("/ui/approvals/{question}")));
    b.wait_for("the answer form", Duration::from_secs(10), |b| {
        b.count("button.approve") == 1 && b.count("button.reject") == 1
    });
    let style = |css: &str, property: &str| {
        let script = format!("return getComputedStyle(document.querySelector('{css}')).{property}");
        b.eval(&script).as_str().unwrap().to_string()
    };
    let approve = rgb(&style("button.approve", "backgroundColor"));
    assert!(
        approve[1] > approve[0] && approve[1] > approve[2],
        "{approve:?}"
    );
    assert!(
        contrast(
            &style("button.approve", "color"),
            &style("button.approve", "backgroundColor")
        ) >= 4.5
    );
    let reject = rgb(&style("button.reject", "color"));
    assert!(reject[0] > reject[1] && reject[0] > reject[2], "{reject:?}");
    assert_eq!(
        style("button.reject", "backgroundColor"),
        style("body", "backgroundColor"),
        "Reject is outlined, not filled"
    );
    assert!(style("button.reject", "borderTopWidth") != "0px");
    b.screenshot(&docs("console-approve.png"));
}

pub(super) fn on_a_phone_nothing_overlaps(c: &Console, run_id: &str) {
    let b = &c.browser;
    b.window_size(390, 844);
    for (path, ready, shot) in [
        (
            "/ui/runs".to_string(),
            "#runs",
            Some("console-runs-phone.png"),
        ),
        (format!("/ui/runs/{run_id}"), "#timeline", None),
        ("/ui/outbox?state=all".to_string(), "#outbox", None),
    ] {
        b.goto(&c.page(&path));
        b.wait_for(&path, Duration::from_secs(10), |b| b.count(ready) == 1);
        assert_eq!(
            b.eval("return window.innerWidth < 500"),
            true,
            "the phone's viewport"
        );
        let over = b.overlapping_text("body");
        assert!(over.is_empty(), "{path}: text drawn over text: {over:?}");
        let wider = b.eval(
            "return [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                .map(e => e.tagName + '.' + e.className)",
        );
        assert_eq!(wider, serde_json::json!([]), "{path}: wider than the phone");
        if let Some(shot) = shot {
            b.screenshot(&docs(shot));
        }
    }
}
