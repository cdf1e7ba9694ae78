//! OpenID Connect sign-in for the console (`[ui.oidc]`): discovery, the authorization code
//! flow with PKCE, and the ID token's checks (signature on the provider's keys, issuer,
//! audience, expiry, nonce), all by the `openidconnect` crate. State only: the console's
//! login pages (ui/login.rs) drive it; the sessions it leads to live in the run store.
//!
//! The provider's keys are fetched again when a token names a key not in the set we hold, at
//! most once per [`REFETCH_EVERY`]: a rotation at the provider is picked up, and a stream of
//! tokens with made-up key ids costs no stream of fetches.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, Client,
    ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IdTokenFields, IdTokenVerifier, IssuerUrl, JsonWebKeySetUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};

use crate::config::OidcConfig;
use provider_http::{MAX_REPLY, ProviderHttp};

mod provider_http;
use runbook_core::access::{MAX_GROUP_NAME, MAX_SESSION_GROUPS, PendingLogin, StartedLogin};

/// The least time between two fetches of the provider's keys.
pub(crate) const REFETCH_EVERY: Duration = Duration::from_secs(10);
/// How long a sign-in may take at the provider.
pub(crate) const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Every call to the provider (discovery, keys, the code's exchange); its replies are capped
/// at [`MAX_REPLY`] bytes besides.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Claims besides the standard ones: the groups claim is named in config, so all are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OtherClaims {
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for OtherClaims {}

type Fields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<Fields, CoreTokenType>;
type OidcClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// `[ui.oidc]` with its secret loaded, and what discovery found (on the first sign-in).
pub(crate) struct Oidc {
    config: OidcConfig,
    secret: String,
    http: ProviderHttp,
    discovered: tokio::sync::Mutex<Option<Arc<Discovered>>>,
}

struct Discovered {
    client: OidcClient,
    issuer: IssuerUrl,
    jwks_uri: JsonWebKeySetUrl,
    algs: Vec<CoreJwsSigningAlgorithm>,
    keys: RwLock<CoreJsonWebKeySet>,
    /// When the keys were last fetched again (serialises refetches, and bounds them); never
    /// yet: the first key we lack is always looked for.
    refetched: tokio::sync::Mutex<Option<Instant>>,
}

/// Who signed in, as the provider vouched for them.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn {
    pub(crate) subject: String,
    pub(crate) name: String,
    pub(crate) groups: Vec<String>,
}

/// Why a callback did not sign anyone in. `Refused` is the answer's fault (a 401);
/// `Unavailable`, the provider's (502); `Oversized`, a reply of the provider's past the cap
/// (502, and the page says so: the operator has a provider to look at).
#[derive(Debug)]
pub(crate) enum Failed {
    Refused(String),
    Unavailable(String),
    Oversized(String),
}

/// A failed call to the provider: `Oversized` when the cap refused its reply.
fn provider_call(what: &str, e: &(dyn std::error::Error + 'static)) -> Failed {
    match provider_http::too_large(e) {
        Some(why) => Failed::Oversized(format!("{what}: {why}")),
        None => Failed::Unavailable(format!("{what}: {}", error_chain(e))),
    }
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Oidc({})", self.config.issuer) // never the secret
    }
}

impl Oidc {
    /// The client of `config`; nothing is fetched yet (a provider that is down does not stop
    /// the server from starting).
    pub(crate) fn new(config: &OidcConfig) -> Result<Oidc> {
        let secret = config
            .client_secret
            .load()
            .context("[ui.oidc] client-secret")?;
        let http = ProviderHttp::new(PROVIDER_TIMEOUT, MAX_REPLY)
            .context("building the OpenID Connect HTTP client")?;
        Ok(Oidc {
            config: config.clone(),
            secret,
            http,
            discovered: tokio::sync::Mutex::new(None),
        })
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.config.issuer
    }

    pub(crate) fn session_ttl(&self) -> Duration {
        self.config.session_ttl()
    }

    async fn discovered(&self) -> Result<Arc<Discovered>, Failed> {
        let mut slot = self.discovered.lock().await;
        if let Some(found) = &*slot {
            return Ok(found.clone());
        }
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            Failed::Unavailable(format!("{what} of {}: {e}", self.config.issuer))
        };
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| unavailable("the issuer URL", &e))?;
        let metadata = CoreProviderMetadata::discover_async(issuer.clone(), &self.http)
            .await
            .map_err(|e| provider_call(&format!("discovery of {}", self.config.issuer), &e))?;
        let redirect = RedirectUrl::new(self.config.redirect_url.clone())
            .map_err(|e| unavailable("redirect-url", &e))?;
        // Keys only: a shared-secret (HS*) or unsigned token is never taken.
        let algs: Vec<CoreJwsSigningAlgorithm> = metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|a| {
                !matches!(
                    a,
                    CoreJwsSigningAlgorithm::HmacSha256
                        | CoreJwsSigningAlgorithm::HmacSha384
                        | CoreJwsSigningAlgorithm::HmacSha512
                        | CoreJwsSigningAlgorithm::None
                )
            })
            .cloned()
            .collect();
        let jwks_uri = metadata.jwks_uri().clone();
        let keys = metadata.jwks().clone();
        let client = OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.secret.clone())),
        )
        .set_redirect_uri(redirect);
        let found = Arc::new(Discovered {
            client,
            issuer,
            jwks_uri,
            algs,
            keys: RwLock::new(keys),
            refetched: tokio::sync::Mutex::new(None),
        });
        *slot = Some(found.clone());
        Ok(found)
    }

    /// A new sign-in: the provider's URL to send the browser to, what to store until the
    /// callback, and the state (which the browser also keeps, in a cookie).
    pub(crate) async fn begin(
        &self,
        return_to: &str,
    ) -> Result<(url::Url, PendingLogin, String), Failed> {
        let found = self.discovered().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let scopes = self
            .config
            .scopes
            .clone()
            .unwrap_or_else(|| vec!["profile".into(), "groups".into()]);
        let (url, state, nonce) = found
            .client
            .authorize_url(
                AuthenticationFlow::<openidconnect::core::CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(scopes.into_iter().map(Scope::new))
            .set_pkce_challenge(challenge)
            .url();
        let pending = PendingLogin {
            state_hash: runbook_core::access::token_hash(state.secret()),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to: return_to.to_string(),
            ttl: LOGIN_TTL,
        };
        Ok((url, pending, state.secret().clone()))
    }

    /// The provider's code for a sign-in begun here: exchanged (with the PKCE verifier) for
    /// tokens, and the ID token checked against the nonce of that sign-in.
    pub(crate) async fn finish(
        &self,
        code: &str,
        started: &StartedLogin,
    ) -> Result<SignedIn, Failed> {
        let found = self.discovered().await?;
        let request = found
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| Failed::Unavailable(format!("the provider has no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(started.pkce_verifier.clone()));
        let tokens = request
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(refusal) => Failed::Refused(format!(
                    "the provider refused the code: {}",
                    refusal.error()
                )),
                other => provider_call("exchanging the code at the provider", &other),
            })?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| Failed::Refused("the provider sent no ID token".into()))?;
        let nonce = Nonce::new(started.nonce.clone());
        let verify = |keys: CoreJsonWebKeySet| {
            let verifier = IdTokenVerifier::new_confidential_client(
                ClientId::new(self.config.client_id.clone()),
                ClientSecret::new(self.secret.clone()),
                found.issuer.clone(),
                keys,
            )
            .set_allowed_algs(found.algs.clone());
            id_token
                .claims(&verifier, &nonce)
                .map(|claims| self.signed_in(claims))
        };
        let keys = found.keys.read().unwrap().clone();
        match verify(keys) {
            Ok(signed_in) => Ok(signed_in),
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                let keys = self.refetch_keys(&found).await?;
                verify(keys).map_err(refused)
            }
            Err(e) => Err(refused(e)),
        }
    }

    /// The provider's keys again, unless they were fetched again within [`REFETCH_EVERY`]
    /// (then the ones we hold, and the token is refused).
    async fn refetch_keys(&self, found: &Discovered) -> Result<CoreJsonWebKeySet, Failed> {
        let mut refetched = found.refetched.lock().await;
        if refetched.is_some_and(|at| at.elapsed() < REFETCH_EVERY) {
            tracing::warn!("an ID token names a key the provider's set lacks (fetched just now)");
            return Ok(found.keys.read().unwrap().clone());
        }
        let keys = CoreJsonWebKeySet::fetch_async(&found.jwks_uri, &self.http)
            .await
            .map_err(|e| provider_call("fetching the provider's keys", &e))?;
        *refetched = Some(Instant::now());
        tracing::info!(
            keys = keys.keys().len(),
            "fetched the provider's keys again (a token named a key we did not hold)"
        );
        *found.keys.write().unwrap() = keys.clone();
        Ok(keys)
    }

    fn signed_in(
        &self,
        claims: &openidconnect::IdTokenClaims<OtherClaims, CoreGenderClaim>,
    ) -> SignedIn {
        let subject = claims.subject().as_str().to_string();
        let name = claims
            .preferred_username()
            .map(|n| n.as_str().to_string())
            .unwrap_or_else(|| subject.clone());
        let groups = groups_of(
            claims
                .additional_claims()
                .rest
                .get(&self.config.groups_claim),
        );
        SignedIn {
            subject,
            name,
            groups,
        }
    }
}

/// A groups claim: a list of strings, or one string. Other values, overlong names and
/// anything past [`MAX_SESSION_GROUPS`] are dropped (and say nothing of any role).
pub(crate) fn groups_of(claim: Option<&serde_json::Value>) -> Vec<String> {
    let fits = |g: &&str| !g.is_empty() && g.len() <= MAX_GROUP_NAME;
    let mut groups: Vec<String> = match claim {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|g| g.as_str())
            .filter(fits)
            .take(MAX_SESSION_GROUPS)
            .map(String::from)
            .collect(),
        Some(serde_json::Value::String(one)) => Some(one.as_str())
            .filter(fits)
            .map(String::from)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    groups.sort();
    groups.dedup();
    groups
}

fn refused(e: ClaimsVerificationError) -> Failed {
    Failed::Refused(format!("the ID token was refused: {}", error_chain(&e)))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_groups_claim_is_a_list_or_one_name_capped() {
        assert_eq!(
            groups_of(Some(&json!(["b", "a", "b", 7, "", null]))),
            ["a", "b"]
        );
        assert_eq!(groups_of(Some(&json!("ops"))), ["ops"]);
        assert!(groups_of(Some(&json!({"admin": true}))).is_empty());
        assert!(groups_of(None).is_empty());
        let long = "x".repeat(MAX_GROUP_NAME + 1);
        assert!(groups_of(Some(&json!([long]))).is_empty());
        let many: Vec<String> = (0..1000).map(|i| format!("g{i}")).collect();
        assert_eq!(groups_of(Some(&json!(many))).len(), MAX_SESSION_GROUPS);
    }
}
