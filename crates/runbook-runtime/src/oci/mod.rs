//! Playbooks by digest: components as OCI artifacts in the wasm artifact layout (config
//! `application/vnd.wasm.config.v0+json`, one `application/wasm` layer), pushed and pulled
//! through a registry (`registry`), pinned in host.lock (`lock`), kept on this machine by
//! manifest digest (`store`) and signed the way cosign signs images (`sign`). Nothing here
//! compiles or runs a component: the engine does, after these checks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::json;

pub mod lock;
pub mod manifest;
pub mod reference;
pub mod registry;
pub mod sign;
pub mod store;

pub use reference::ArtifactRef;
pub use registry::{Registry, RegistryOptions};
pub use sign::{SignatureRecord, TrustedKey};
pub use store::{ArtifactStore, Damaged, Stored};

use manifest::{
    Descriptor, OCI_MANIFEST_MEDIA_TYPE, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE,
};
use registry::sha256_digest;

/// The header of a WebAssembly component (not a core module).
const COMPONENT_HEADER: [u8; 8] = *b"\0asm\x0d\x00\x01\x00";

/// The options of `registry` among `[registries."HOST:PORT"]`.
pub fn options_for(
    registries: &BTreeMap<String, RegistryOptions>,
    registry: &str,
) -> RegistryOptions {
    registries.get(registry).cloned().unwrap_or_default()
}

/// `host push`: the component as an artifact under `r`'s tag; returns the manifest digest.
/// The manifest carries no time stamp: the same bytes pushed twice get the same digest.
pub async fn push(r: &ArtifactRef, wasm: &[u8], options: &RegistryOptions) -> Result<String> {
    if wasm.get(..8) != Some(&COMPONENT_HEADER[..]) {
        bail!(
            "not a WebAssembly component (a core module, or not wasm at all): build it for wasm32-wasip2 or with componentize-py"
        );
    }
    let registry = Registry::connect(r, options)?;
    let layer_digest = registry.push_blob(r, wasm).await?;
    let config = serde_json::to_vec(&json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
        "component": { "target": "runbook:host/playbook" },
    }))?;
    let config_digest = registry.push_blob(r, &config).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST_MEDIA_TYPE,
        "artifactType": WASM_CONFIG_MEDIA_TYPE,
        "config": {
            "mediaType": WASM_CONFIG_MEDIA_TYPE,
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": WASM_LAYER_MEDIA_TYPE,
            "digest": layer_digest,
            "size": wasm.len(),
        }],
    }))?;
    registry.push_manifest(r, manifest).await
}

/// The manifest digest `r` names now (its tag resolved; a digest checked to exist).
pub async fn resolve(r: &ArtifactRef, options: &RegistryOptions) -> Result<String> {
    let registry = Registry::connect(r, options)?;
    match registry.manifest(r).await? {
        Some((_, digest)) => Ok(digest),
        None => bail!("{r}: not found in the registry"),
    }
}

/// The artifact `r` (pinned to a digest) on this machine: from `store` when it is there, else
/// pulled (manifest, signatures found beside it, then the layer through its caps and checks).
pub async fn fetch(
    store: &ArtifactStore,
    r: &ArtifactRef,
    options: &RegistryOptions,
    cap: u64,
) -> Result<Stored> {
    let digest = r
        .digest
        .clone()
        .context("internal: fetch needs a pinned reference")?;
    if let Some(stored) = store
        .get(&digest, cap)
        .map_err(|e| store::name_reference(e, r))?
    {
        return Ok(stored);
    }
    let registry = Registry::connect(r, options)?;
    let (manifest, _) = registry
        .manifest(r)
        .await?
        .with_context(|| format!("{r}: not found in the registry"))?;
    let layer = manifest::wasm_layer(&manifest, cap).with_context(|| format!("{r}"))?;
    let signatures = match signatures(&registry, r, &digest).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!("{r}: its signatures could not be read: {e:#}");
            Vec::new()
        }
    };
    store
        .put(&digest, &manifest, &signatures, |path| async move {
            registry
                .blob_to_file(r, &layer.digest, cap, true, &path)
                .await
        })
        .await?;
    store
        .get(&digest, cap)?
        .context("internal: a stored artifact vanished")
}

/// `host pull`: `fetch`, with the stored component hashed again; a damaged stored copy is
/// discarded and pulled anew. Returns the artifact and, when one was replaced, why.
pub async fn pull(
    store: &ArtifactStore,
    r: &ArtifactRef,
    options: &RegistryOptions,
    cap: u64,
) -> Result<(Stored, Option<Damaged>)> {
    let digest = r
        .digest
        .clone()
        .context("internal: pull needs a pinned reference")?;
    let damage = match fetch(store, r, options, cap).await {
        Ok(stored) => match store.check_component(&stored) {
            Ok(()) => return Ok((stored, None)),
            Err(damaged) => damaged,
        },
        Err(e) => e.downcast::<Damaged>()?,
    };
    tracing::warn!("{damage}");
    store.discard(&digest)?;
    let stored = fetch(store, r, options, cap).await?;
    Ok((stored, Some(damage)))
}

/// An artifact from bytes another party handed over (the server, for a node that cannot reach
/// the registry): stored only if the manifest has the digest asked for and the component the
/// manifest's layer digest.
pub async fn store_handed(
    store: &ArtifactStore,
    manifest_digest: &str,
    manifest: &[u8],
    component: &[u8],
    signatures: &[SignatureRecord],
    cap: u64,
) -> Result<Stored> {
    if sha256_digest(manifest) != manifest_digest {
        bail!("the manifest handed over is not {manifest_digest}: refused");
    }
    let layer = manifest::wasm_layer(manifest, cap)?;
    if sha256_digest(component) != layer.digest {
        bail!(
            "the component handed over is not the layer {} of {manifest_digest}: refused",
            layer.digest
        );
    }
    if !component.starts_with(b"\0asm") {
        bail!("the component handed over is not WebAssembly: refused");
    }
    if store.get(manifest_digest, cap)?.is_none() {
        store
            .put(manifest_digest, manifest, signatures, |path| async move {
                std::fs::write(&path, component).context("writing the component")
            })
            .await?;
    }
    store
        .get(manifest_digest, cap)?
        .context("internal: a stored artifact vanished")
}

/// Asks the registry again for the signatures of a stored artifact (one signed after it was
/// pulled) and keeps them.
pub async fn refresh_signatures(
    store: &ArtifactStore,
    r: &ArtifactRef,
    options: &RegistryOptions,
    stored: &mut Stored,
) -> Result<()> {
    let registry = Registry::connect(r, options)?;
    let found = signatures(&registry, r, &stored.manifest_digest).await?;
    if found != stored.signatures {
        store.set_signatures(&stored.manifest_digest, &found)?;
        stored.signatures = found;
    }
    Ok(())
}

/// The signatures in the `sha256-HEX.sig` manifest beside `digest` (none when it is absent).
async fn signatures(
    registry: &Registry,
    r: &ArtifactRef,
    digest: &str,
) -> Result<Vec<SignatureRecord>> {
    let sig_ref = r.with_tag(&sign::signature_tag(digest));
    let Some((manifest, _)) = registry.manifest(&sig_ref).await? else {
        return Ok(Vec::new());
    };
    let manifest: manifest::Manifest =
        serde_json::from_slice(&manifest).context("the signature manifest")?;
    let mut found = Vec::new();
    for layer in manifest.layers.iter().take(sign::MAX_SIGNATURES) {
        let Some(signature) = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(sign::SIGNATURE_ANNOTATION))
        else {
            continue;
        };
        if layer.media_type != sign::SIMPLE_SIGNING_MEDIA_TYPE
            || reference::check_digest(&layer.digest).is_err()
        {
            continue;
        }
        let payload = registry.small_blob(&sig_ref, &layer.digest).await?;
        use base64::Engine as _;
        let record = SignatureRecord {
            payload: base64::engine::general_purpose::STANDARD.encode(payload),
            signature: signature.clone(),
        };
        // One that cannot verify is not kept (the store reads records back within caps).
        if record.fits() {
            found.push(record);
        }
    }
    Ok(found)
}

/// `host sign`: adds a signature by `key` over the manifest `r` names to its `.sig` manifest
/// (keeping the signatures already there). Returns the digest signed.
pub async fn sign(
    r: &ArtifactRef,
    key: &std::path::Path,
    options: &RegistryOptions,
) -> Result<String> {
    let key = sign::load_signing_key(key)?;
    let registry = Registry::connect(r, options)?;
    let (manifest, digest) = registry
        .manifest(r)
        .await?
        .with_context(|| format!("{r}: not found in the registry"))?;
    // Only playbooks are signed here: what we sign, we can also run.
    manifest::wasm_layer(&manifest, u64::MAX).with_context(|| format!("{r}"))?;
    let sig_ref = r.with_tag(&sign::signature_tag(&digest));
    let mut layers: Vec<Descriptor> = match registry.manifest(&sig_ref).await? {
        Some((existing, _)) => {
            serde_json::from_slice::<manifest::Manifest>(&existing)
                .context("the existing signature manifest")?
                .layers
        }
        None => Vec::new(),
    };
    let payload = sign::payload(&r.repository_path(), &digest);
    let record = sign::sign(&key, &payload);
    let payload_digest = registry.push_blob(&sig_ref, &payload).await?;
    layers.retain(|l| {
        l.digest != payload_digest
            || l.annotations
                .as_ref()
                .and_then(|a| a.get(sign::SIGNATURE_ANNOTATION))
                != Some(&record.signature)
    });
    layers.push(Descriptor {
        media_type: sign::SIMPLE_SIGNING_MEDIA_TYPE.to_string(),
        digest: payload_digest,
        size: payload.len() as u64,
        annotations: Some(BTreeMap::from([(
            sign::SIGNATURE_ANNOTATION.to_string(),
            record.signature,
        )])),
    });
    let config = serde_json::to_vec(&json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{ "created": "0001-01-01T00:00:00Z" }],
        "os": "",
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>(),
        },
    }))?;
    let config_digest = registry.push_blob(&sig_ref, &config).await?;
    let manifest = serde_json::to_vec(&manifest::Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST_MEDIA_TYPE.to_string()),
        artifact_type: None,
        config: Descriptor {
            media_type: "application/vnd.oci.image.config.v1+json".to_string(),
            digest: config_digest,
            size: config.len() as u64,
            annotations: None,
        },
        layers,
        annotations: None,
    })?;
    registry.push_manifest(&sig_ref, manifest).await?;
    Ok(digest)
}

/// The keys a registry playbook must be signed by: its own `trust-keys`, else `[trust] keys`.
pub fn load_keys(paths: &[PathBuf]) -> Result<Vec<TrustedKey>> {
    paths.iter().map(|p| TrustedKey::load(p)).collect()
}
