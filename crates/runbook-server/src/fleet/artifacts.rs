//! `POST /agent/v1/artifacts/{digest}` and `…/{digest}/component`: a fleet node that cannot
//! reach a registry gets a playbook artifact from its server instead. Behind the node door
//! like the rest of the agent API; only artifacts of this server's own registry playbooks
//! (those it has pulled and keeps by digest) are handed out, and the node checks manifest and
//! component against the digest the server named before it stores or compiles them.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use super::agent::admit_agent;
use crate::app::{App, Shared};
use crate::respond::{error, reply};
use crate::tls::PresentedCertificate;
use runbook_runtime::fleet::{ArtifactManifest, ArtifactRequest, ArtifactSignature};
use runbook_runtime::oci::Stored;

const ENDPOINT: &str = "agent";

/// A node's request through the node door, then the artifact it names.
fn admitted_artifact(
    app: &App,
    digest: &str,
    presented: &PresentedCertificate,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Stored, Box<Response>> {
    admit_agent::<ArtifactRequest>(app, presented, headers, body, |r| &r.agent)?;
    artifact(app, digest)
}

/// The stored artifact of `digest` if it is one of this server's registry playbooks.
fn artifact(app: &App, digest: &str) -> Result<Stored, Box<Response>> {
    if runbook_runtime::oci::reference::check_digest(digest).is_err() {
        return Err(Box::new(error(
            app,
            ENDPOINT,
            StatusCode::BAD_REQUEST,
            "a digest is sha256: and 64 lowercase hex digits",
        )));
    }
    let host = app.dispatcher.host();
    let cap = host.config.max_component_mib().saturating_mul(1 << 20);
    match host.artifact_store().get(digest, cap) {
        Ok(Some(stored)) => Ok(stored),
        Ok(None) => Err(Box::new(error(
            app,
            ENDPOINT,
            StatusCode::NOT_FOUND,
            format!("this server holds no playbook artifact {digest}"),
        ))),
        // A damaged copy is not handed out; the file and the way out go to the server's log.
        Err(e) => {
            tracing::error!("fleet artifact {digest}: {e:#}");
            Err(Box::new(error(
                app,
                ENDPOINT,
                StatusCode::SERVICE_UNAVAILABLE,
                format!("this server's copy of {digest} cannot be used (its log says why)"),
            )))
        }
    }
}

/// The manifest's exact bytes and the signatures found beside it.
pub(crate) async fn manifest(
    State(app): State<Shared>,
    Path(digest): Path<String>,
    presented: PresentedCertificate,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stored = match admitted_artifact(&app, &digest, &presented, &headers, &body) {
        Ok(stored) => stored,
        Err(refused) => return *refused,
    };
    let answer = ArtifactManifest {
        manifest: base64::engine::general_purpose::STANDARD.encode(&stored.manifest),
        signatures: stored
            .signatures
            .iter()
            .map(|s| ArtifactSignature {
                payload: s.payload.clone(),
                signature: s.signature.clone(),
            })
            .collect(),
    };
    reply(&app, ENDPOINT, StatusCode::OK, json!(answer))
}

/// The component's bytes (`application/wasm`).
pub(crate) async fn component(
    State(app): State<Shared>,
    Path(digest): Path<String>,
    presented: PresentedCertificate,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stored = match admitted_artifact(&app, &digest, &presented, &headers, &body) {
        Ok(stored) => stored,
        Err(refused) => return *refused,
    };
    // The store checked the file's size against the layer's; the node checks the bytes.
    let read = tokio::fs::File::open(&stored.component).await;
    let mut bytes = Vec::with_capacity(stored.layer.size as usize);
    let read = match read {
        Ok(file) => {
            use tokio::io::AsyncReadExt;
            file.take(stored.layer.size).read_to_end(&mut bytes).await
        }
        Err(e) => Err(e),
    };
    match read {
        Ok(_) => {
            app.dispatcher.metrics.request(ENDPOINT, 200);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/wasm")],
                Body::from(bytes),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(
                "fleet artifact {digest}: {}: {e}",
                stored.component.display()
            );
            error(
                &app,
                ENDPOINT,
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("this server could not read its copy of {digest}"),
            )
        }
    }
}
