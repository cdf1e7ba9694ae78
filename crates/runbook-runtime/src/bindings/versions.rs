//! Which contract version a component speaks, and calling it in that version.
//!
//! Adding a version (say 0.5.0): copy `wit/*.wit` to `wit/0.4.0/` before editing, add a module
//! like `v0_3.rs` for 0.4.0 (bindgen of `wit/0.4.0`, `older_contract!` for the interfaces
//! 0.4.0 has, conversions for the types that changed), a case in `VersionedPre`, and a
//! fixture component built against it (tests/hostile/). See docs/playbooks.md.

use anyhow::Result;
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker};

use super::{
    CapError, Description, Errors, Incident, Link, Outcome, Playbook, PlaybookPre, v0_1, v0_2, v0_3,
};

/// The version of `wit/` this host publishes (`host wit`, the SDK, the templates).
pub const CURRENT: &str = "0.4.0";

/// Every contract version this host loads, newest first.
pub const SUPPORTED: &[&str] = &[CURRENT, v0_3::VERSION, v0_2::VERSION, v0_1::VERSION];

/// The current version's interfaces, as `runbook:host/<name>@CURRENT`.
const INTERFACES: &[&str] = &["docker", "http", "fs-read", "notify", "report", "approval"];

/// Binds every supported version's capability interfaces into one linker.
pub fn add_to_linker<T: 'static>(linker: &mut Linker<T>, link: Link<T>) -> Result<()> {
    // `types` holds only types; the instance must still exist for the import to resolve.
    linker.instance(&format!("runbook:host/types@{CURRENT}"))?;
    for name in INTERFACES {
        link(
            &mut linker.instance(&format!("runbook:host/{name}@{CURRENT}"))?,
            name,
            Errors::Current,
        )?;
    }
    v0_3::add_to_linker(linker, link)?;
    v0_2::add_to_linker(linker, link)?;
    v0_1::add_to_linker(linker, link)
}

/// The contract version of a component, read from the `runbook:host/…@version` names it
/// imports (every playbook imports at least `types`, whose types its exports use). A component
/// importing none of them is taken as current; linking then says what is missing.
pub fn contract_version(component: &Component, engine: &Engine) -> &'static str {
    let ty = component.component_type();
    let version = ty.imports(engine).find_map(|(name, _)| {
        let (_, version) = name.strip_prefix("runbook:host/")?.split_once('@')?;
        SUPPORTED.iter().copied().find(|v| *v == version)
    });
    version.unwrap_or(CURRENT)
}

/// A linked playbook of any supported version.
pub enum VersionedPre<T: 'static> {
    Current(PlaybookPre<T>),
    V0_3(v0_3::PlaybookPre<T>),
    V0_2(v0_2::PlaybookPre<T>),
    V0_1(v0_1::PlaybookPre<T>),
}

pub enum VersionedPlaybook {
    Current(Playbook),
    V0_3(v0_3::Playbook),
    V0_2(v0_2::Playbook),
    V0_1(v0_1::Playbook),
}

impl<T: Send + 'static> VersionedPre<T> {
    pub fn new(instance_pre: InstancePre<T>, engine: &Engine) -> Result<Self> {
        Ok(match contract_version(instance_pre.component(), engine) {
            v0_1::VERSION => Self::V0_1(v0_1::PlaybookPre::new(instance_pre)?),
            v0_2::VERSION => Self::V0_2(v0_2::PlaybookPre::new(instance_pre)?),
            v0_3::VERSION => Self::V0_3(v0_3::PlaybookPre::new(instance_pre)?),
            _ => Self::Current(PlaybookPre::new(instance_pre)?),
        })
    }

    /// The contract version the component was built against.
    pub fn contract(&self) -> &'static str {
        match self {
            Self::Current(_) => CURRENT,
            Self::V0_3(_) => v0_3::VERSION,
            Self::V0_2(_) => v0_2::VERSION,
            Self::V0_1(_) => v0_1::VERSION,
        }
    }

    pub async fn instantiate_async(
        &self,
        store: &mut wasmtime::Store<T>,
    ) -> wasmtime::Result<VersionedPlaybook> {
        Ok(match self {
            Self::Current(pre) => VersionedPlaybook::Current(pre.instantiate_async(store).await?),
            Self::V0_3(pre) => VersionedPlaybook::V0_3(pre.instantiate_async(store).await?),
            Self::V0_2(pre) => VersionedPlaybook::V0_2(pre.instantiate_async(store).await?),
            Self::V0_1(pre) => VersionedPlaybook::V0_1(pre.instantiate_async(store).await?),
        })
    }
}

impl VersionedPlaybook {
    pub async fn call_describe<T: Send>(
        &self,
        store: &mut wasmtime::Store<T>,
    ) -> wasmtime::Result<Description> {
        match self {
            Self::Current(p) => p.call_describe(store).await,
            Self::V0_3(p) => Ok(v0_3::description(p.call_describe(store).await?)),
            Self::V0_2(p) => Ok(v0_2::description(p.call_describe(store).await?)),
            Self::V0_1(p) => Ok(v0_1::description(p.call_describe(store).await?)),
        }
    }

    pub async fn call_run<T: Send>(
        &self,
        store: &mut wasmtime::Store<T>,
        incident: &Incident,
    ) -> wasmtime::Result<Result<Outcome, CapError>> {
        match self {
            Self::Current(p) => p.call_run(store, incident).await,
            Self::V0_3(p) => Ok(v0_3::outcome(
                p.call_run(store, &v0_3::incident(incident)).await?,
            )),
            Self::V0_2(p) => Ok(v0_2::outcome(
                p.call_run(store, &v0_2::incident(incident)).await?,
            )),
            Self::V0_1(p) => Ok(v0_1::outcome(
                p.call_run(store, &v0_1::incident(incident)).await?,
            )),
        }
    }
}
