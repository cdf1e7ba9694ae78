//! What every older contract version shares: its capability interfaces registered under the
//! old names with the current host functions, and the conversions of the world's types that
//! are the same in every version. One expansion per version module (`v0_1`, `v0_2`, `v0_3`).

/// Expands, in a version module whose bindgen output is `generated` and whose types interface
/// is imported as `old`, to `add_to_linker`, `alert`, `description` and `outcome`.
macro_rules! older_contract {
    ([$($name:literal),* $(,)?], [$($capability:ident),* $(,)?]) => {
        /// The old names of the capability interfaces, bound by `link` to the current host
        /// functions returning the old error variant (`legacy`; the component model checks
        /// types structurally: every other type is identical).
        pub fn add_to_linker<T: 'static>(
            linker: &mut wasmtime::component::Linker<T>,
            link: crate::bindings::Link<T>,
        ) -> anyhow::Result<()> {
            // `types` holds only types; the instance must still exist for the import to resolve.
            linker.instance(&format!("runbook:host/types@{VERSION}"))?;
            $(
                link(
                    &mut linker.instance(&format!("runbook:host/{}@{VERSION}", $name))?,
                    $name,
                    crate::bindings::Errors::Denied,
                )?;
            )*
            Ok(())
        }

        fn alert(a: crate::bindings::Alert) -> old::Alert {
            old::Alert {
                name: a.name,
                status: a.status,
                labels: a.labels,
                annotations: a.annotations,
                fingerprint: a.fingerprint,
                starts_at: a.starts_at,
            }
        }

        pub fn description(d: old::Description) -> crate::bindings::Description {
            use crate::bindings::{Capability, Description, ParamSpec};
            Description {
                name: d.name,
                summary: d.summary,
                version: d.version,
                params: d
                    .params
                    .into_iter()
                    .map(|p| ParamSpec {
                        name: p.name,
                        description: p.description,
                        default: p.default,
                        required: p.required,
                    })
                    .collect(),
                capabilities: d
                    .capabilities
                    .into_iter()
                    .map(|c| match c {
                        $(old::Capability::$capability => Capability::$capability,)*
                    })
                    .collect(),
            }
        }

        pub fn outcome(
            result: Result<old::Outcome, old::Error>,
        ) -> Result<crate::bindings::Outcome, crate::bindings::CapError> {
            use crate::bindings::{CapError, Outcome, Status};
            match result {
                Ok(o) => Ok(Outcome {
                    status: match o.status {
                        old::Status::Resolved => Status::Resolved,
                        old::Status::Mitigated => Status::Mitigated,
                        old::Status::Escalated => Status::Escalated,
                        old::Status::NoAction => Status::NoAction,
                        old::Status::Failed => Status::Failed,
                    },
                    summary: o.summary,
                    actions: o.actions,
                }),
                Err(e) => Err(match e {
                    old::Error::Denied(s) => CapError::Denied(s),
                    old::Error::NotFound(s) => CapError::NotFound(s),
                    old::Error::Invalid(s) => CapError::Invalid(s),
                    old::Error::Unavailable(s) => CapError::Unavailable(s),
                    old::Error::Timeout(s) => CapError::Timeout(s),
                    old::Error::Failed(s) => CapError::Failed(s),
                }),
            }
        }
    };
}

pub(crate) use older_contract;
