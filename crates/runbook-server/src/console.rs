//! The console's own state (the CSRF key every process on the store shares, the bound on
//! live timelines) and its `[ui]` auth. State only: the server's state holds it, it imports
//! no handler.

use std::sync::Arc;

use anyhow::{Result, bail};
use tokio::sync::Semaphore;

use crate::auth::Verifier;
use crate::config::{AuthConfig, UiConfig};
use crate::csrf::Csrf;

/// Live timelines followed at once; each polls the store, so they are bounded.
const MAX_STREAMS: usize = 64;
/// The console's own state: the CSRF key, the stream bound. (Its auth is in `reload::Live`.)
pub(crate) struct Console {
    pub(super) csrf: Csrf,
    pub(super) streams: Arc<Semaphore>,
}

impl Console {
    /// With the CSRF key every process on `store` shares.
    pub(crate) async fn new(store: &crate::store::Store) -> Result<Console> {
        Ok(Console {
            csrf: Csrf::from_store(store).await?,
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        })
    }
}

/// `[ui]` as a verifier: basic, bearer or none; `None` when absent (the forms are closed).
pub(crate) fn verifier(config: &UiConfig) -> Result<Option<Verifier>> {
    match &config.auth {
        None => Ok(None),
        Some(auth @ (AuthConfig::None | AuthConfig::Bearer { .. } | AuthConfig::Basic { .. })) => {
            Ok(Some(Verifier::from_config(auth)?))
        }
        Some(_) => bail!("[ui] auth must be basic, bearer or none"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_not_console_auth() {
        let auth = toml::from_str::<AuthConfig>("kind = \"hmac-sha256\"\nsecret = { env = \"X\" }")
            .unwrap();
        assert!(
            verifier(&UiConfig {
                auth: Some(auth),
                role: None,
                oidc: None
            })
            .is_err()
        );
        assert!(
            verifier(&UiConfig {
                auth: None,
                role: None,
                oidc: None
            })
            .unwrap()
            .is_none()
        );
    }
}
