//! What the operator asked for, checked against what the playbook declares: every parameter
//! given or defaulted, none unknown, each of its type. Mistakes here are usage errors (exit 2).

use anyhow::Result;

use crate::bindings::Description;

/// Mistakes in what the operator asked for: the CLI exits 2 for these.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Find(#[from] crate::catalog::FindError),
    #[error("playbook {playbook} has no parameter {name:?}; its parameters: {}", known.join(", "))]
    UnknownParam {
        playbook: String,
        name: String,
        known: Vec<String>,
    },
    #[error("parameter {name:?} is required by {playbook} (see `host inspect {playbook}`)")]
    MissingParam { playbook: String, name: String },
    #[error("parameter {0:?} is given more than once")]
    DuplicateParam(String),
    /// A value that is not of its parameter's type (crate::params).
    #[error("parameter {name:?} of {playbook} is a {ty}: {value:?} is not one ({why})")]
    BadValue {
        playbook: String,
        name: String,
        ty: crate::params::ParamType,
        value: String,
        why: String,
    },
}

/// Every declared parameter: given, else default; unknown or missing-required ones refused.
pub fn resolve_params(
    description: &Description,
    playbook: &str,
    given: &[(String, String)],
) -> Result<Vec<(String, String)>, UsageError> {
    let known: Vec<String> = description.params.iter().map(|p| p.name.clone()).collect();
    let mut seen = std::collections::HashSet::new();
    for (name, _) in given {
        if !known.contains(name) {
            return Err(UsageError::UnknownParam {
                playbook: playbook.to_string(),
                name: name.clone(),
                known,
            });
        }
        if !seen.insert(name) {
            return Err(UsageError::DuplicateParam(name.clone()));
        }
    }
    for (name, value) in given {
        let spec = description.params.iter().find(|p| p.name == *name);
        let ty = spec.map_or(crate::params::ParamType::String, crate::params::type_of);
        if let Some(why) = crate::params::problem(&ty, value) {
            return Err(UsageError::BadValue {
                playbook: playbook.to_string(),
                name: name.clone(),
                ty,
                value: crate::text::echo(value).into_owned(),
                why,
            });
        }
    }
    let mut resolved = Vec::new();
    for spec in &description.params {
        let value = given
            .iter()
            .find(|(n, _)| *n == spec.name)
            .map(|(_, v)| v.clone())
            .or_else(|| spec.default.clone());
        match value {
            Some(value) => resolved.push((spec.name.clone(), value)),
            None if spec.required => {
                return Err(UsageError::MissingParam {
                    playbook: playbook.to_string(),
                    name: spec.name.clone(),
                });
            }
            None => {}
        }
    }
    Ok(resolved)
}
