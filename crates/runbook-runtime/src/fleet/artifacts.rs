//! The agent's way to a playbook artifact when the registry does not answer: its server hands
//! over the manifest, signatures and component of the digest it named. Nothing is trusted for
//! coming from the server: `oci::store_handed` checks every byte against that digest.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use base64::Engine as _;

use super::uplink::Uplink;
use super::{ArtifactManifest, ArtifactRequest};
use crate::oci::SignatureRecord;

/// A component may be a 40 MB Python one; the node's own cap applies again when it is stored.
const MAX_COMPONENT_BYTES: usize = 256 << 20;
const TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) struct ServerArtifacts(pub(crate) Arc<Uplink>);

#[async_trait::async_trait]
impl crate::run::ArtifactFallback for ServerArtifacts {
    async fn artifact(&self, digest: &str) -> Result<(Vec<u8>, Vec<u8>, Vec<SignatureRecord>)> {
        crate::oci::reference::check_digest(digest).map_err(|e| anyhow::anyhow!("{e}"))?;
        let request = ArtifactRequest {
            agent: self.0.agent.clone(),
        };
        let answer: ArtifactManifest = match self
            .0
            .post(&["agent", "v1", "artifacts", digest], &request, TIMEOUT)
            .await?
        {
            Ok(answer) => answer,
            Err(refused) => bail!(
                "the server refused ({}): {}",
                refused.status,
                refused.message
            ),
        };
        let manifest = base64::engine::general_purpose::STANDARD
            .decode(answer.manifest.as_bytes())
            .map_err(|e| anyhow::anyhow!("the server's manifest is not base64: {e}"))?;
        let component = match self
            .0
            .post_for_bytes(
                &["agent", "v1", "artifacts", digest, "component"],
                &request,
                TIMEOUT,
                MAX_COMPONENT_BYTES,
            )
            .await?
        {
            Ok(bytes) => bytes,
            Err(refused) => bail!(
                "the server refused ({}): {}",
                refused.status,
                refused.message
            ),
        };
        let signatures = answer
            .signatures
            .into_iter()
            .take(crate::oci::sign::MAX_SIGNATURES)
            .map(|s| SignatureRecord {
                payload: s.payload,
                signature: s.signature,
            })
            .collect();
        Ok((manifest, component, signatures))
    }
}
