//! Cron expressions (seconds optional) read in an IANA time zone: `[[schedule]]`'s `cron` and
//! `timezone`. The zone database is compiled in (jiff's bundle), so a FROM scratch image knows
//! every zone.

use std::fmt;

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer};

/// A parsed cron expression, with the text it came from.
#[derive(Clone)]
pub struct CronExpr {
    pub text: String,
    cron: Cron,
}

/// Two expressions are the same schedule when they are spelled the same.
impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl CronExpr {
    /// The latest time the expression matches at or before `at`, read in `zone`.
    pub fn latest_at(&self, at: Timestamp, zone: &Zone) -> Option<Timestamp> {
        let zoned = at.to_zoned(zone.tz.clone());
        let previous = self.cron.find_previous_occurrence(&zoned, true).ok()?;
        Some(previous.timestamp())
    }

    /// The first time the expression matches strictly after `after`, read in `zone`.
    pub fn next_after(&self, after: Timestamp, zone: &Zone) -> Option<Timestamp> {
        let zoned = after.to_zoned(zone.tz.clone());
        let next = self.cron.find_next_occurrence(&zoned, false).ok()?;
        Some(next.timestamp())
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        // croner reads an empty list item as a field that matches nothing, and then searches
        // centuries for a time that never comes (minutes of CPU for `, * * * *`).
        if text
            .split_whitespace()
            .any(|field| field.split(',').any(str::is_empty))
        {
            return Err(format!(
                "cron {text:?}: a list has an empty item (`,,`, or a comma at the start or end of a field)"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(text)
            // croner quotes the offending part raw: escaped, so a config error cannot carry
            // a terminal escape sequence (found by the host_toml fuzz target).
            .map_err(|e| format!("cron {text:?}: {}", crate::text::escape(&e.to_string())))?;
        Ok(Self {
            text: text.to_string(),
            cron,
        })
    }
}

impl<'de> Deserialize<'de> for CronExpr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        CronExpr::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An IANA time zone, by name.
#[derive(Clone)]
pub struct Zone {
    pub name: String,
    tz: TimeZone,
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.name)
    }
}

impl Default for Zone {
    fn default() -> Self {
        Self {
            name: "UTC".into(),
            tz: TimeZone::UTC,
        }
    }
}

impl Zone {
    pub fn parse(name: &str) -> Result<Self, String> {
        let tz = TimeZone::get(name)
            .map_err(|_| format!("timezone {name:?}: not an IANA time zone name"))?;
        Ok(Self {
            name: name.to_string(),
            tz,
        })
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Zone::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the host_toml fuzz target: croner's message quoted an escape sequence raw.
    #[test]
    fn an_error_carries_no_control_character() {
        let error = CronExpr::parse("\u{1b}]0;x\u{7} * * * *").unwrap_err();
        assert!(!error.chars().any(char::is_control), "{error:?}");
        assert!(error.contains("illegal"), "{error}");
    }

    /// Found by the cron fuzz target: each of these took croner 10 s to minutes of CPU.
    #[test]
    fn a_list_with_an_empty_item_is_refused_before_it_is_searched() {
        for text in [
            ", * * * *",
            "* * * * ,,7",
            " ,  * * * ,,7",
            "1, * * * *",
            "* ,2 * * *",
        ] {
            let error = CronExpr::parse(text).unwrap_err();
            assert!(error.contains("empty item"), "{text:?}: {error}");
        }
        let fine = CronExpr::parse("0,30 9-17 * * 1-5").expect("a list without empty items");
        let start = Timestamp::from_second(0).unwrap();
        assert!(fine.next_after(start, &Zone::default()).unwrap() > start);
    }
}
