//! Sharing playbooks through an OCI registry: `host push`, `host pull`, `host lock`,
//! `host keygen`, `host sign`. Registry credentials come from RUNBOOK_REGISTRY_USERNAME and
//! RUNBOOK_REGISTRY_PASSWORD, else Docker's config.json (`docker login`).

use std::path::PathBuf;

use anstream::println;
use clap::Args;

use super::Globals;
use crate::commands::{ConfigError, Context};
use crate::config::Config;
use crate::oci::{self, ArtifactRef, RegistryOptions};

/// How to reach the registry, over what host.toml's `[registries."HOST:PORT"]` says.
#[derive(Args, Clone, Default)]
pub struct RegistryFlags {
    /// Plain HTTP: only for a registry on this machine (127.0.0.1, ::1, localhost)
    #[arg(long)]
    insecure: bool,
    /// PEM CA certificate(s) trusted for the registry besides the system's roots
    #[arg(long = "registry-ca", value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

impl RegistryFlags {
    fn options(
        &self,
        globals: &Globals,
        reference: &ArtifactRef,
    ) -> anyhow::Result<RegistryOptions> {
        let config = Config::discover(globals.config.as_deref())
            .map_err(|e| ConfigError(format!("{e:#}")))?;
        let mut options = oci::options_for(&config.registries, &reference.registry);
        options.insecure |= self.insecure;
        if self.ca_file.is_some() {
            options.ca_file = self.ca_file.clone();
        }
        Ok(options)
    }
}

fn parse(reference: &str) -> anyhow::Result<ArtifactRef> {
    ArtifactRef::parse(reference).map_err(|e| ConfigError(e.to_string()).into())
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  host push oci://registry.example.com/playbooks/disk-full:1.4 target/wasm32-wasip2/release/disk_full.wasm\n\n\
The component is pushed in the wasm artifact layout (config application/vnd.wasm.config.v0+json,\n\
one application/wasm layer); the manifest digest is printed. Sign it with `host sign`."
)]
pub struct PushArgs {
    /// oci://REGISTRY/REPOSITORY:TAG
    reference: String,
    /// The component (.wasm) to publish
    file: PathBuf,
    #[command(flatten)]
    registry: RegistryFlags,
}

impl PushArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let reference = parse(&self.reference)?;
        let options = self.registry.options(&globals, &reference)?;
        let cap = crate::catalog::DEFAULT_MAX_COMPONENT_MIB << 20;
        let wasm = crate::catalog::read_component(&self.file, cap)?;
        let digest = oci::push(&reference, &wasm, &options).await?;
        println!("{}", reference.pinned(&digest));
        Ok(0)
    }
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host pull oci://registry.example.com/playbooks/disk-full:1.4\n  host pull oci://registry.example.com/playbooks/disk-full@sha256:…\n\n\
The artifact is checked (digest, size cap, WebAssembly header) and kept beside the compile\n\
cache under its digest; runs of a [plugins.X] source use it without pulling again. A stored\n\
copy found damaged (a file edited, truncated or unreadable) is refused by runs and replaced\n\
by the next pull."
)]
pub struct PullArgs {
    /// oci://REGISTRY/REPOSITORY:TAG or …@sha256:DIGEST
    reference: String,
    /// Also write the component to this file
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryFlags,
}

impl PullArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let reference = parse(&self.reference)?;
        let options = self.registry.options(&globals, &reference)?;
        let host = Context::load(globals)?.host;
        let digest = oci::resolve(&reference, &options).await?;
        let pinned = reference.pinned(&digest);
        let cap = host.config.max_component_mib().saturating_mul(1 << 20);
        let (stored, replaced) = oci::pull(&host.artifact_store(), &pinned, &options, cap).await?;
        if let Some(damaged) = replaced {
            println!(
                "replaced a damaged copy ({}: {})",
                damaged.file.display(),
                damaged.why
            );
        }
        if let Some(output) = &self.output {
            std::fs::copy(&stored.component, output)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", output.display()))?;
        }
        println!("{pinned}");
        println!(
            "  layer {} ({} bytes)",
            stored.layer.digest, stored.layer.size
        );
        println!("  stored {}", stored.component.display());
        println!("  signatures found: {}", stored.signatures.len());
        Ok(0)
    }
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host lock            # pin every [plugins.X] source not pinned yet\n  host lock --update   # resolve every tag again\n\n\
host.lock sits next to host.toml; runs use the digests it names, whatever the tags point at later."
)]
pub struct LockArgs {
    /// Resolve every source again (a moved tag is followed)
    #[arg(long)]
    update: bool,
}

impl LockArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let host = Context::load(globals)?.host;
        let Some(path) = host.config.lock_path() else {
            return Err(ConfigError(
                "no host.toml: host.lock sits next to the config (--config FILE)".into(),
            )
            .into());
        };
        let mut lock = oci::lock::LockFile::read(&path)?;
        let sources = host.config.registry_sources();
        // Entries of plugins no longer in host.toml go.
        lock.plugins
            .retain(|name, _| sources.iter().any(|(n, _)| n == name));
        for (name, source) in &sources {
            let known = lock.digest(name, &source.to_string()).map(str::to_string);
            let digest = match (&source.digest, known) {
                (Some(digest), _) => digest.clone(),
                (None, Some(digest)) if !self.update => digest,
                _ => {
                    let options = oci::options_for(&host.config.registries, &source.registry);
                    oci::resolve(source, &options).await?
                }
            };
            let before = lock.plugins.get(name).map(|l| l.digest.clone());
            let mark = match before.as_deref() {
                Some(old) if old == digest => "=",
                Some(_) => "~",
                None => "+",
            };
            println!("{mark} {name} {}", source.pinned(&digest));
            lock.plugins.insert(
                name.clone(),
                oci::lock::Locked {
                    source: source.to_string(),
                    digest,
                },
            );
        }
        lock.write(&path)?;
        Ok(0)
    }
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  host keygen release          # writes release.key (keep it secret) and release.pub\n\n\
NAME.pub is a PEM public key cosign reads (`cosign verify --key NAME.pub`); list it in\n\
host.toml's [trust] keys. NAME.key is a PKCS#8 PEM private key (mode 0600)."
)]
pub struct KeygenArgs {
    /// The key pair's name: NAME.key and NAME.pub
    name: String,
    /// Directory to write them in
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

impl KeygenArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        let (key, public) = oci::sign::keygen(&self.dir, &self.name)?;
        println!("{}", key.display());
        println!("{}", public.display());
        Ok(0)
    }
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  host sign oci://registry.example.com/playbooks/disk-full:1.4 --key release.key\n\n\
Signs the manifest the reference names now (its digest is printed) the way cosign does: a\n\
simple-signing payload, ECDSA P-256, in the sha256-<hex>.sig tag beside it."
)]
pub struct SignArgs {
    /// oci://REGISTRY/REPOSITORY:TAG or …@sha256:DIGEST
    reference: String,
    /// The private key (`host keygen`)
    #[arg(long, value_name = "NAME.key")]
    key: PathBuf,
    #[command(flatten)]
    registry: RegistryFlags,
}

impl SignArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let reference = parse(&self.reference)?;
        let options = self.registry.options(&globals, &reference)?;
        let digest = oci::sign(&reference, &self.key, &options).await?;
        println!("signed {}", reference.pinned(&digest));
        Ok(0)
    }
}
