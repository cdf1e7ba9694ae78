//! The OCI image manifest as far as a playbook artifact needs it: the wasm artifact layout
//! (config `application/vnd.wasm.config.v0+json`, one `application/wasm` layer) and the check
//! that a manifest is one, with its layer within the component size cap.

use anyhow::{Context, Result, bail};

pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// The parts of an image manifest we read.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// Parses a manifest of the wasm artifact layout: one `application/wasm` layer whose size is
/// within `cap`, and the wasm config.
pub fn wasm_layer(manifest: &[u8], cap: u64) -> Result<Descriptor> {
    let m: Manifest = serde_json::from_slice(manifest).context("not an OCI image manifest")?;
    if m.schema_version != 2 {
        bail!("manifest schemaVersion {} (expected 2)", m.schema_version);
    }
    if let Some(media) = &m.media_type
        && media != OCI_MANIFEST_MEDIA_TYPE
    {
        bail!("manifest media type {media:?}, not an OCI image manifest");
    }
    if m.config.media_type != WASM_CONFIG_MEDIA_TYPE {
        bail!(
            "config media type {:?}: not a WebAssembly artifact (expected {WASM_CONFIG_MEDIA_TYPE})",
            m.config.media_type
        );
    }
    let [layer] = m.layers.as_slice() else {
        bail!(
            "{} layers: a playbook artifact has exactly one application/wasm layer",
            m.layers.len()
        );
    };
    if layer.media_type != WASM_LAYER_MEDIA_TYPE {
        bail!(
            "layer media type {:?} (expected {WASM_LAYER_MEDIA_TYPE})",
            layer.media_type
        );
    }
    super::reference::check_digest(&layer.digest)
        .map_err(|e| anyhow::anyhow!("layer digest: {e}"))?;
    check_cap(layer, cap)?;
    Ok(layer.clone())
}

/// The layer within the component size cap.
pub fn check_cap(layer: &Descriptor, cap: u64) -> Result<()> {
    if layer.size > cap {
        bail!(
            "the component is {} bytes, over the component size cap of {} MiB (max-component-mib)",
            layer.size,
            cap >> 20
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_wasm_artifact_layout_is_a_playbook() {
        let layer =
            |media: &str, size: u64| json_layer(media, &format!("sha256:{}", "a".repeat(64)), size);
        let manifest = |config: &str, layers: Vec<serde_json::Value>| {
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST_MEDIA_TYPE,
                "config": json_layer(config, &format!("sha256:{}", "b".repeat(64)), 10),
                "layers": layers,
            }))
            .unwrap()
        };
        let good = manifest(
            WASM_CONFIG_MEDIA_TYPE,
            vec![layer(WASM_LAYER_MEDIA_TYPE, 100)],
        );
        assert_eq!(wasm_layer(&good, 1000).unwrap().size, 100);
        for (bad, why) in [
            (
                manifest(
                    WASM_CONFIG_MEDIA_TYPE,
                    vec![layer(WASM_LAYER_MEDIA_TYPE, 2000)],
                ),
                "over the component size cap",
            ),
            (
                manifest(
                    "application/vnd.oci.image.config.v1+json",
                    vec![layer(WASM_LAYER_MEDIA_TYPE, 1)],
                ),
                "not a WebAssembly artifact",
            ),
            (manifest(WASM_CONFIG_MEDIA_TYPE, vec![]), "exactly one"),
            (
                manifest(
                    WASM_CONFIG_MEDIA_TYPE,
                    vec![
                        layer(WASM_LAYER_MEDIA_TYPE, 1),
                        layer(WASM_LAYER_MEDIA_TYPE, 1),
                    ],
                ),
                "exactly one",
            ),
            (
                manifest(
                    WASM_CONFIG_MEDIA_TYPE,
                    vec![layer("application/vnd.oci.image.layer.v1.tar", 1)],
                ),
                "layer media type",
            ),
            (b"not json".to_vec(), "not an OCI image manifest"),
        ] {
            let e = wasm_layer(&bad, 1000).unwrap_err();
            assert!(format!("{e:#}").contains(why), "{e:#} (expected {why})");
        }
    }

    fn json_layer(media: &str, digest: &str, size: u64) -> serde_json::Value {
        serde_json::json!({ "mediaType": media, "digest": digest, "size": size })
    }
}
