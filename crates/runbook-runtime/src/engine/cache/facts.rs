//! Facts this host checked once and need not check on every run, kept in the compile cache
//! under its MAC: today, "the trusted key K signed the artifact D" (an ECDSA verification
//! costs a warm run more than everything else a registry playbook adds). A fact names its
//! whole subject (the artifact digest and the key's fingerprint), so it says nothing about
//! another artifact or another key: removing a key from `[trust]` refuses the next run, and
//! the bytes that run are still checked against D's layer digest. Forging one needs the
//! cache's secret, which already guards the native code the cache maps and runs.

use hmac::Mac;
use sha2::{Digest, Sha256};

use super::{CompileCache, read_private_file, write_atomically};

const SIGNATURE_DOMAIN: &[u8] = b"runbook-host verified signature v1\0";
const MAX_FACT_BYTES: u64 = 128;

impl CompileCache {
    /// Whether this host verified before that the key of `key_fingerprint` signed the artifact
    /// `manifest_digest`; a missing, unreadable or forged record is "no".
    pub fn knows_signature(&self, manifest_digest: &str, key_fingerprint: &[u8; 32]) -> bool {
        let subject = signature_subject(manifest_digest, key_fingerprint);
        let Ok(tag) = read_private_file(&self.fact_path(&subject), MAX_FACT_BYTES) else {
            return false;
        };
        hex::decode(tag.trim_ascii())
            .ok()
            .is_some_and(|tag| self.fact_mac(&subject).verify_slice(&tag).is_ok())
    }

    /// Records that the key of `key_fingerprint` signed `manifest_digest` (just verified).
    pub fn remember_signature(
        &self,
        manifest_digest: &str,
        key_fingerprint: &[u8; 32],
    ) -> std::io::Result<()> {
        let subject = signature_subject(manifest_digest, key_fingerprint);
        let tag = hex::encode(self.fact_mac(&subject).finalize().into_bytes());
        write_atomically(&self.fact_path(&subject), format!("{tag}\n").as_bytes())
    }

    fn fact_path(&self, subject: &[u8]) -> std::path::PathBuf {
        let name = Sha256::new()
            .chain_update(SIGNATURE_DOMAIN)
            .chain_update(subject)
            .finalize();
        self.dir.join(format!("{}.trust", hex::encode(&name[..16])))
    }

    fn fact_mac(&self, subject: &[u8]) -> hmac::Hmac<Sha256> {
        let mut mac = self.keyed();
        mac.update(SIGNATURE_DOMAIN);
        mac.update(&(subject.len() as u64).to_be_bytes());
        mac.update(subject);
        mac
    }
}

fn signature_subject(manifest_digest: &str, key_fingerprint: &[u8; 32]) -> Vec<u8> {
    let mut subject = Vec::with_capacity(manifest_digest.len() + 33);
    subject.extend_from_slice(manifest_digest.as_bytes());
    subject.push(0);
    subject.extend_from_slice(key_fingerprint);
    subject
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fact_holds_for_its_subject_only_and_cannot_be_forged() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(&dir.path().join("cache")).unwrap();
        let digest = format!("sha256:{}", "1".repeat(64));
        let other = format!("sha256:{}", "2".repeat(64));
        let (key, other_key) = ([7u8; 32], [8u8; 32]);
        assert!(!cache.knows_signature(&digest, &key));
        cache.remember_signature(&digest, &key).unwrap();
        assert!(cache.knows_signature(&digest, &key));
        assert!(!cache.knows_signature(&other, &key));
        assert!(!cache.knows_signature(&digest, &other_key));

        // A record written without the cache's secret, or copied onto another subject.
        let path = cache.fact_path(&signature_subject(&digest, &key));
        let genuine = std::fs::read(&path).unwrap();
        let other_path = cache.fact_path(&signature_subject(&other, &key));
        write_atomically(&other_path, &genuine).unwrap();
        assert!(
            !cache.knows_signature(&other, &key),
            "a transplanted fact held"
        );
        write_atomically(&path, format!("{}\n", "0".repeat(64)).as_bytes()).unwrap();
        assert!(!cache.knows_signature(&digest, &key), "a forged fact held");
        write_atomically(&path, b"not hex").unwrap();
        assert!(!cache.knows_signature(&digest, &key));

        // Another cache (another secret) does not share its facts.
        cache.remember_signature(&digest, &key).unwrap();
        let copy = dir.path().join("copy");
        let other_cache = CompileCache::open(&copy).unwrap();
        std::fs::copy(
            &path,
            other_cache.fact_path(&signature_subject(&digest, &key)),
        )
        .unwrap();
        assert!(!other_cache.knows_signature(&digest, &key));
    }
}
