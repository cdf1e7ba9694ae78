//! The console forms' CSRF tokens: `<issued-at>.<mac>`, the MAC an HMAC-SHA256 under the
//! console key (made once and kept in the run store, so every replica on the store has it)
//! of when the token was issued, the form it was served in (the path the form posts to) and
//! a hash of the `[ui]` credentials it was served to. So a token expires, is good for its own
//! form only, and dies with the password it was served to (a SIGHUP that changes `[ui]`
//! revokes every token of the old credentials at once).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::store::Store;

/// How long a served form may be submitted.
pub(super) const TTL: Duration = Duration::from_secs(8 * 3600);
/// A token issued this far in the future still counts (another replica's clock runs ahead).
const SKEW: Duration = Duration::from_secs(5 * 60);
/// The store's name for the key.
const KEY_NAME: &str = "console-csrf-key";

pub(super) struct Csrf {
    key: Vec<u8>,
}

/// Why a token was refused (for the log; the person is told to reload the form).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    Missing,
    Malformed,
    Expired,
    /// Made for another form, other credentials, or under another key.
    NotThisForm,
}

impl Csrf {
    /// The store's console key (made by the first process that asks).
    pub(super) async fn from_store(store: &Store) -> Result<Csrf> {
        let candidate = hex::encode(random_key()?);
        let key = store
            .shared_secret(KEY_NAME, &candidate)
            .await
            .context("reading the console's CSRF key from the run store")?;
        let key = hex::decode(key.trim()).context("the console's CSRF key in the store")?;
        anyhow::ensure!(
            key.len() >= 32,
            "the console's CSRF key in the store is too short"
        );
        Ok(Csrf { key })
    }

    #[cfg(test)]
    pub(super) fn with_key(key: &[u8]) -> Csrf {
        Csrf { key: key.to_vec() }
    }

    /// The token for `form` served to `credentials` (the Authorization header; empty with
    /// `[ui] auth = none`).
    pub(super) fn token(&self, credentials: &str, form: &str) -> String {
        self.token_at(credentials, form, now())
    }

    pub(super) fn check(
        &self,
        credentials: &str,
        form: &str,
        given: Option<&str>,
    ) -> Result<(), Refused> {
        self.check_at(credentials, form, given, now())
    }

    fn token_at(&self, credentials: &str, form: &str, issued: u64) -> String {
        format!(
            "{issued}.{}",
            hex::encode(self.mac(credentials, form, issued).finalize().into_bytes())
        )
    }

    fn check_at(
        &self,
        credentials: &str,
        form: &str,
        given: Option<&str>,
        now: u64,
    ) -> Result<(), Refused> {
        let given = given.filter(|g| !g.is_empty()).ok_or(Refused::Missing)?;
        let (issued, mac) = given.split_once('.').ok_or(Refused::Malformed)?;
        let issued: u64 = issued.parse().map_err(|_| Refused::Malformed)?;
        let mac = hex::decode(mac).map_err(|_| Refused::Malformed)?;
        if issued > now.saturating_add(SKEW.as_secs()) || now.saturating_sub(issued) > TTL.as_secs()
        {
            return Err(Refused::Expired);
        }
        self.mac(credentials, form, issued)
            .verify_slice(&mac)
            .map_err(|_| Refused::NotThisForm)
    }

    fn mac(&self, credentials: &str, form: &str, issued: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(b"runbook console csrf v2\0");
        mac.update(&issued.to_be_bytes());
        mac.update(&(form.len() as u64).to_be_bytes());
        mac.update(form.as_bytes());
        mac.update(&Sha256::digest(credentials.as_bytes()));
        mac
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

pub(crate) fn random_key() -> Result<[u8; 32]> {
    use std::io::Read as _;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .context("reading /dev/urandom for the console's CSRF key")?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "Basic b25jYWxsOm9sZA==";
    const FORM: &str = "/ui/playbooks/disk-full/run";
    const T: u64 = 1_790_000_000;

    #[test]
    fn a_token_is_good_for_its_form_its_credentials_and_some_hours() {
        let csrf = Csrf::with_key(&[7; 32]);
        let token = csrf.token_at(ALICE, FORM, T);
        // Positive controls: at once, and just before it expires.
        assert_eq!(csrf.check_at(ALICE, FORM, Some(&token), T), Ok(()));
        assert_eq!(
            csrf.check_at(ALICE, FORM, Some(&token), T + TTL.as_secs()),
            Ok(())
        );
        // Expired; or issued far in the future (a forged issue time).
        assert_eq!(
            csrf.check_at(ALICE, FORM, Some(&token), T + TTL.as_secs() + 1),
            Err(Refused::Expired)
        );
        let ahead = csrf.token_at(ALICE, FORM, T + 3600);
        assert_eq!(
            csrf.check_at(ALICE, FORM, Some(&ahead), T),
            Err(Refused::Expired)
        );
        // Another form, other credentials (a changed password), another key.
        assert_eq!(
            csrf.check_at(ALICE, "/ui/outbox/1/retry", Some(&token), T),
            Err(Refused::NotThisForm)
        );
        assert_eq!(
            csrf.check_at("Basic b25jYWxsOm5ldw==", FORM, Some(&token), T),
            Err(Refused::NotThisForm)
        );
        assert_eq!(
            Csrf::with_key(&[8; 32]).check_at(ALICE, FORM, Some(&token), T),
            Err(Refused::NotThisForm)
        );
        // A fresher issue time on an old MAC does not pass.
        let (_, mac) = token.split_once('.').unwrap();
        let moved = format!("{}.{mac}", T + 10);
        assert_eq!(
            csrf.check_at(ALICE, FORM, Some(&moved), T + 10),
            Err(Refused::NotThisForm)
        );
        for bad in ["", "0".repeat(64).as_str(), "x.y", "1.zz"] {
            assert!(csrf.check_at(ALICE, FORM, Some(bad), T).is_err(), "{bad}");
        }
        assert_eq!(csrf.check_at(ALICE, FORM, None, T), Err(Refused::Missing));
        // The same key (another replica): the same tokens.
        assert_eq!(
            Csrf::with_key(&[7; 32]).check_at(ALICE, FORM, Some(&token), T + 5),
            Ok(())
        );
    }
}
