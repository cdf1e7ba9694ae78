//! Signatures cosign can check: ECDSA P-256 with SHA-256 over cosign's "simple signing" JSON
//! payload (which names the manifest digest), stored as a layer of the manifest tagged
//! `sha256-<hex>.sig` beside the artifact, the signature base64 in the layer's
//! `dev.cosignproject.cosign/signature` annotation. `cosign verify --key NAME.pub
//! --insecure-ignore-tlog REF` accepts what `host sign` writes. Keys: NAME.pub is a PEM
//! SubjectPublicKeyInfo (what cosign writes); NAME.key a PKCS#8 PEM private key (what
//! `cosign import-key-pair` reads; cosign's own password-encrypted format is not read).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde::{Deserialize, Serialize};

pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const SIGNATURE_TYPE: &str = "cosign container image signature";
/// Signatures looked at per artifact: a registry cannot make us verify thousands.
pub const MAX_SIGNATURES: usize = 16;
/// A DER P-256 signature is at most 72 bytes (96 in base64): longer is not one.
const MAX_SIGNATURE_B64: usize = 512;
/// A payload is one small blob, base64.
const MAX_PAYLOAD_B64: usize = super::registry::MAX_SMALL_BLOB_BYTES.div_ceil(3) * 4;
/// What `signatures.json` can hold: `MAX_SIGNATURES` records within their caps.
pub const MAX_RECORDS_BYTES: u64 =
    (MAX_SIGNATURES * (MAX_PAYLOAD_B64 + MAX_SIGNATURE_B64 + 64) + 16) as u64;

/// One signature as found beside an artifact, kept with it so that trust is checked again,
/// offline, on every load (a key removed from `[trust]` refuses the next run).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignatureRecord {
    /// The simple-signing payload, base64.
    pub payload: String,
    /// The DER ECDSA signature, base64 (the annotation's value).
    pub signature: String,
}

impl SignatureRecord {
    /// Within the caps a stored record is read back under (a longer one cannot verify).
    pub fn fits(&self) -> bool {
        self.payload.len() <= MAX_PAYLOAD_B64 && self.signature.len() <= MAX_SIGNATURE_B64
    }
}

/// `signatures.json`'s bytes: the records that fit, at most `MAX_SIGNATURES`.
pub fn encode_records(records: &[SignatureRecord]) -> serde_json::Result<Vec<u8>> {
    let kept: Vec<&SignatureRecord> = records
        .iter()
        .filter(|r| r.fits())
        .take(MAX_SIGNATURES)
        .collect();
    serde_json::to_vec(&kept)
}

/// `signatures.json` read back: anything `encode_records` could not have written is refused
/// (with why), never read as "no signatures".
pub fn parse_records(bytes: &[u8]) -> Result<Vec<SignatureRecord>, String> {
    let records: Vec<SignatureRecord> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a list of signatures ({e})"))?;
    if records.len() > MAX_SIGNATURES {
        return Err(format!(
            "{} signatures, more than the {MAX_SIGNATURES} ever kept",
            records.len()
        ));
    }
    if records.iter().any(|r| !r.fits()) {
        return Err("a signature over its size cap".into());
    }
    Ok(records)
}

/// A public key `[trust]` names, under its file's stem (`release.pub` → "release").
pub struct TrustedKey {
    pub name: String,
    key: VerifyingKey,
}

impl TrustedKey {
    pub fn load(path: &Path) -> Result<Self> {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("reading the trusted key {}", path.display()))?;
        let key = VerifyingKey::from_public_key_pem(&pem).map_err(|e| {
            anyhow::anyhow!(
                "{}: not an ECDSA P-256 public key in PEM (what `host keygen` and `cosign generate-key-pair` write): {e}",
                path.display()
            )
        })?;
        Ok(Self {
            name: key_name(path),
            key,
        })
    }

    /// SHA-256 of the key's uncompressed point: which key, whatever file it was read from.
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(self.key.to_encoded_point(false).as_bytes()).into()
    }
}

pub fn key_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `host keygen NAME`: NAME.key (0600, PKCS#8) and NAME.pub in `dir`; refuses to overwrite.
pub fn keygen(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fits = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty()
        || name.len() > 64
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.chars().all(fits)
    {
        bail!(
            "key name {name:?}: 1 to 64 ASCII letters, digits, '-' or '_' (it names NAME.key and NAME.pub)"
        );
    }
    let secret = SigningKey::random(&mut rand_core::OsRng);
    let private = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding the private key: {e}"))?;
    let public = secret
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding the public key: {e}"))?;
    let key_path = dir.join(format!("{name}.key"));
    let pub_path = dir.join(format!("{name}.pub"));
    for path in [&key_path, &pub_path] {
        if path.exists() {
            bail!(
                "{} exists: not overwritten (choose another name)",
                path.display()
            );
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .with_context(|| format!("creating {}", key_path.display()))?;
    file.write_all(private.as_bytes())?;
    std::fs::write(&pub_path, public).with_context(|| format!("writing {}", pub_path.display()))?;
    Ok((key_path, pub_path))
}

pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("reading the private key {}", path.display()))?;
    if pem.contains("ENCRYPTED SIGSTORE PRIVATE KEY") {
        bail!(
            "{}: cosign's password-encrypted key format is not read here; sign with a key from \
             `host keygen`, or export a PKCS#8 PEM key",
            path.display()
        );
    }
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a PKCS#8 PEM ECDSA P-256 private key (what `host keygen` writes): {e}",
            path.display()
        )
    })
}

/// Cosign's simple-signing payload for a manifest digest in a repository.
pub fn payload(repository_path: &str, manifest_digest: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": { "docker-reference": repository_path },
            "image": { "docker-manifest-digest": manifest_digest },
            "type": SIGNATURE_TYPE,
        },
        "optional": null,
    }))
    .expect("a JSON value serializes")
}

pub fn sign(key: &SigningKey, payload: &[u8]) -> SignatureRecord {
    let signature: DerSignature = key.sign(payload);
    let b64 = base64::engine::general_purpose::STANDARD;
    SignatureRecord {
        payload: b64.encode(payload),
        signature: b64.encode(signature.as_bytes()),
    }
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}
#[derive(Deserialize)]
struct Critical {
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}
#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// Why an artifact's signatures do not satisfy a trust list.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrustError {
    #[error(
        "unsigned: no signature found for {digest} (sign it with `host sign REF --key NAME.key`)"
    )]
    Unsigned { digest: String },
    #[error(
        "not signed by a trusted key: {found} signature(s) for {digest}, none by {} (the [trust] keys)",
        trusted.join(", ")
    )]
    Untrusted {
        digest: String,
        found: usize,
        trusted: Vec<String>,
    },
}

/// The first trusted key that signed `manifest_digest` among `signatures`. A signature counts
/// only when its payload names this very digest.
pub fn verify<'k>(
    manifest_digest: &str,
    signatures: &[SignatureRecord],
    trusted: &'k [TrustedKey],
) -> Result<&'k TrustedKey, TrustError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut found = 0;
    for record in signatures.iter().take(MAX_SIGNATURES) {
        let Ok(payload) = b64.decode(&record.payload) else {
            continue;
        };
        let Ok(parsed) = serde_json::from_slice::<Payload>(&payload) else {
            continue;
        };
        if parsed.critical.kind != SIGNATURE_TYPE || parsed.critical.image.digest != manifest_digest
        {
            continue;
        }
        found += 1;
        if record.signature.len() > MAX_SIGNATURE_B64 {
            continue;
        }
        let Ok(der) = b64.decode(&record.signature) else {
            continue;
        };
        let Ok(signature) = DerSignature::try_from(der.as_slice()) else {
            continue;
        };
        if let Some(key) = trusted
            .iter()
            .find(|k| k.key.verify(&payload, &signature).is_ok())
        {
            return Ok(key);
        }
    }
    if found == 0 {
        Err(TrustError::Unsigned {
            digest: manifest_digest.to_string(),
        })
    } else {
        Err(TrustError::Untrusted {
            digest: manifest_digest.to_string(),
            found,
            trusted: trusted.iter().map(|k| k.name.clone()).collect(),
        })
    }
}

/// The tag cosign keeps an artifact's signatures under.
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replacen(':', "-", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_key_over_this_digest_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = keygen(dir.path(), "release").unwrap();
        let (_, other_public) = keygen(dir.path(), "other").unwrap();
        assert!(keygen(dir.path(), "release").is_err(), "overwrote a key");
        let signing = load_signing_key(&key).unwrap();
        let digest = format!("sha256:{}", "1".repeat(64));
        let record = sign(&signing, &payload("reg.io/x", &digest));
        let trusted = [TrustedKey::load(&public).unwrap()];
        assert_eq!(
            verify(&digest, std::slice::from_ref(&record), &trusted)
                .unwrap()
                .name,
            "release"
        );

        let untrusted = [TrustedKey::load(&other_public).unwrap()];
        assert!(matches!(
            verify(&digest, std::slice::from_ref(&record), &untrusted),
            Err(TrustError::Untrusted { found: 1, .. })
        ));
        // Another artifact's signature does not count for this one.
        let other_digest = format!("sha256:{}", "2".repeat(64));
        assert!(matches!(
            verify(&other_digest, std::slice::from_ref(&record), &trusted),
            Err(TrustError::Unsigned { .. })
        ));
        // A payload changed after signing.
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut forged = record.clone();
        let text = String::from_utf8(b64.decode(&record.payload).unwrap()).unwrap();
        forged.payload = b64.encode(text.replace("reg.io/x", "reg.io/y"));
        assert!(matches!(
            verify(&digest, &[forged], &trusted),
            Err(TrustError::Untrusted { .. })
        ));
        assert!(matches!(
            verify(&digest, &[], &trusted),
            Err(TrustError::Unsigned { .. })
        ));
        assert_eq!(
            signature_tag(&digest),
            format!("sha256-{}.sig", "1".repeat(64))
        );
    }

    #[test]
    fn stored_records_read_back_within_their_caps_or_not_at_all() {
        let record = SignatureRecord {
            payload: "cGF5bG9hZA==".into(),
            signature: "c2ln".into(),
        };
        let long = SignatureRecord {
            payload: "x".into(),
            signature: "A".repeat(MAX_SIGNATURE_B64 + 4),
        };
        let mut many = vec![long.clone()];
        many.extend(vec![record.clone(); 20]);
        let bytes = encode_records(&many).unwrap();
        let back = parse_records(&bytes).unwrap();
        assert_eq!(back, vec![record.clone(); MAX_SIGNATURES]);
        // Every record at its caps still fits the file's cap.
        let widest = SignatureRecord {
            payload: "A".repeat(MAX_PAYLOAD_B64),
            signature: "A".repeat(MAX_SIGNATURE_B64),
        };
        let widest = encode_records(&vec![widest; MAX_SIGNATURES]).unwrap();
        assert!((widest.len() as u64) <= MAX_RECORDS_BYTES);
        assert_eq!(parse_records(&widest).unwrap().len(), MAX_SIGNATURES);

        let seventeen = serde_json::to_vec(&vec![record.clone(); 17]).unwrap();
        assert!(parse_records(&seventeen).unwrap_err().contains("17"));
        let over = serde_json::to_vec(&[long]).unwrap();
        assert!(parse_records(&over).unwrap_err().contains("cap"));
        for bad in [
            &b"not json"[..],
            b"{}",
            b"[{\"payload\":\"a\"}]",
            b"[{\"payload\":\"a\",\"signature\":\"b\",\"extra\":1}]",
            b"",
        ] {
            assert!(
                parse_records(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
