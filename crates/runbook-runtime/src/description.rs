//! What a playbook may say about itself: describe() runs under a short deadline of its own and
//! its answer is held to these caps, so one playbook's description can neither hang nor flood
//! `host list`, `host check`, the server's playbook table or an operator's terminal.

use std::time::Duration;

use crate::bindings::Description;

/// describe() only builds a value: anything slower is broken.
pub const DESCRIBE_DEADLINE: Duration = Duration::from_secs(3);

pub const MAX_PARAMS: usize = 64;
pub const MAX_CAPABILITIES: usize = 16;
/// Bytes, for the playbook's name, its version and each parameter's name.
pub const MAX_NAME_BYTES: usize = 64;
/// Bytes, for the summary and each parameter's description.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Bytes, for each parameter's default value.
pub const MAX_DEFAULT_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error)]
#[error("limit exceeded: describe() is too big: {what} (limit {limit})")]
pub struct TooBig {
    pub what: String,
    pub limit: String,
}

/// The first cap the description is over, named.
pub fn check(d: &Description) -> Result<(), TooBig> {
    let count = |what: &str, n: usize, max: usize| {
        if n > max {
            return Err(TooBig {
                what: format!("{n} {what}"),
                limit: format!("{max} {what}"),
            });
        }
        Ok(())
    };
    let bytes = |what: String, text: &str, max: usize| {
        if text.len() > max {
            return Err(TooBig {
                what: format!("{what} is {} bytes", text.len()),
                limit: format!("{max} bytes"),
            });
        }
        Ok(())
    };
    count("params", d.params.len(), MAX_PARAMS)?;
    count("capabilities", d.capabilities.len(), MAX_CAPABILITIES)?;
    bytes("name".into(), &d.name, MAX_NAME_BYTES)?;
    bytes("version".into(), &d.version, MAX_NAME_BYTES)?;
    bytes("summary".into(), &d.summary, MAX_TEXT_BYTES)?;
    for (i, p) in d.params.iter().enumerate() {
        bytes(format!("param #{} name", i + 1), &p.name, MAX_NAME_BYTES)?;
        bytes(
            format!("param {:?} description", p.name),
            &p.description,
            MAX_TEXT_BYTES,
        )?;
        if let Some(default) = &p.default {
            bytes(
                format!("param {:?} default", p.name),
                default,
                MAX_DEFAULT_BYTES,
            )?;
        }
    }
    Ok(())
}

/// A description as the compile cache records it, so a warm load need not instantiate the
/// guest only to ask again; what is read back is held to the caps above all the same.
#[derive(serde::Serialize, serde::Deserialize)]
struct Recorded {
    name: String,
    summary: String,
    version: String,
    params: Vec<RecordedParam>,
    capabilities: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RecordedParam {
    name: String,
    description: String,
    default: Option<String>,
    required: bool,
}

pub fn encode(d: &Description) -> Vec<u8> {
    let recorded = Recorded {
        name: d.name.clone(),
        summary: d.summary.clone(),
        version: d.version.clone(),
        params: d
            .params
            .iter()
            .map(|p| RecordedParam {
                name: p.name.clone(),
                description: p.description.clone(),
                default: p.default.clone(),
                required: p.required,
            })
            .collect(),
        capabilities: d
            .capabilities
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
    };
    serde_json::to_vec(&recorded).expect("a description serializes")
}

/// `None` for anything `encode` did not write.
pub fn decode(bytes: &[u8]) -> Option<Description> {
    use crate::bindings::{Capability, ParamSpec};
    let recorded: Recorded = serde_json::from_slice(bytes).ok()?;
    let capabilities = recorded
        .capabilities
        .iter()
        .map(|c| match c.as_str() {
            "docker" => Some(Capability::Docker),
            "http" => Some(Capability::Http),
            "fs-read" => Some(Capability::FsRead),
            "notify" => Some(Capability::Notify),
            "approval" => Some(Capability::Approval),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Description {
        name: recorded.name,
        summary: recorded.summary,
        version: recorded.version,
        params: recorded
            .params
            .into_iter()
            .map(|p| ParamSpec {
                name: p.name,
                description: p.description,
                default: p.default,
                required: p.required,
            })
            .collect(),
        capabilities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{Capability, ParamSpec};

    fn small() -> Description {
        Description {
            name: "p".into(),
            summary: "s".into(),
            version: "1".into(),
            params: vec![ParamSpec {
                name: "a".into(),
                description: "d".into(),
                default: Some("x".into()),
                required: false,
            }],
            capabilities: vec![Capability::FsRead],
        }
    }

    #[test]
    fn a_recorded_description_reads_back_as_itself() {
        let mut d = small();
        d.capabilities = vec![
            Capability::Docker,
            Capability::Http,
            Capability::FsRead,
            Capability::Notify,
            Capability::Approval,
        ];
        d.params[0].required = true;
        let back = decode(&encode(&d)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{d:?}"));
        assert!(decode(b"{}").is_none());
        assert!(decode(&encode(&d).repeat(2)).is_none());
    }

    #[test]
    fn every_cap_is_named_when_exceeded() {
        assert!(check(&small()).is_ok());
        let mut d = small();
        d.summary = "x".repeat(MAX_TEXT_BYTES + 1);
        assert_eq!(
            check(&d).unwrap_err().to_string(),
            "limit exceeded: describe() is too big: summary is 1025 bytes (limit 1024 bytes)"
        );
        let mut d = small();
        d.params = vec![d.params[0].clone(); MAX_PARAMS + 1];
        assert!(
            check(&d)
                .unwrap_err()
                .to_string()
                .contains("65 params (limit 64 params)")
        );
        let mut d = small();
        d.params[0].default = Some("x".repeat(MAX_DEFAULT_BYTES + 1));
        assert!(
            check(&d)
                .unwrap_err()
                .to_string()
                .contains("param \"a\" default is 4097 bytes")
        );
        let mut d = small();
        d.capabilities = vec![Capability::Http; MAX_CAPABILITIES + 1];
        assert!(
            check(&d)
                .unwrap_err()
                .to_string()
                .contains("17 capabilities")
        );
    }
}
