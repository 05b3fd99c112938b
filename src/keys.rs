//! The master key file (docs/ledger-format.md), the keys derived from it with
//! HMAC-SHA256, and secrets sealed with AES-256-GCM.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Label of the key-encryption key.
const KEK_LABEL: &[u8] = b"consent-ledger/kek/v1";
/// Label prefix of a tenant's suppression and webhook-dedup key.
const SUPPRESS_LABEL: &str = "consent-ledger/suppress/v1\n";
/// Label prefix of a tenant's change feed key (docs/changes.md).
const FEED_LABEL: &str = "consent-ledger/feed/v1\n";
/// The plaintext of the database canary.
const CANARY_PLAINTEXT: &[u8] = b"consent-ledger canary v1";
const CANARY_AAD: &[u8] = b"consent-ledger/canary/v1";

/// `len` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    bytes
}

/// 32 random bytes as 64 lowercase hex: a salt.
pub fn random_salt_hex() -> String {
    hex::encode(random_bytes::<32>())
}

/// A new random code of `len` characters of `alphabet` (at most 256),
/// each equally likely: a confirmation code.
pub fn random_code(alphabet: &[u8], len: usize) -> String {
    let limit = 256 - 256 % alphabet.len();
    let mut code = String::with_capacity(len);
    while code.len() < len {
        // Rejection sampling keeps every character equally likely.
        for b in random_bytes::<16>() {
            if (b as usize) < limit && code.len() < len {
                code.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    code
}

/// What is stored of a confirmation code: the tenant's keyed hash of it.
pub fn confirmation_code_hash(master: &MasterKey, tenant: &str, code: &str) -> String {
    master.keyed_hash(tenant, &["confirmation", code])
}

/// A new document id: `doc_` and 12 random lowercase hex digits.
pub fn new_document_id() -> String {
    format!("doc_{}", hex::encode(random_bytes::<6>()))
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the master key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create the master key file {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("the master key file {path} is readable by group or others (mode {mode:o}); run: chmod 600 {path}")]
    TooOpen { path: String, mode: u32 },
    #[error(
        "the master key file {path} must hold 64 hex digits (32 bytes) and an optional newline"
    )]
    Malformed { path: String },
}

/// The one secret everything else is derived from. Never printed.
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// A tenant's keyed identity hash, keyed once (`MasterKey::identity_hasher`).
#[derive(Clone)]
pub struct IdentityHasher(Hmac<Sha256>);

impl IdentityHasher {
    /// `keyed_hash(tenant, ["identity", identity])`, hex.
    pub fn hash(&self, identity: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(identity.as_bytes());
        mac.update(b"\n");
        hex::encode(mac.finalize().into_bytes())
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads the key file, or creates it (mode 0600) when it does not exist.
    /// Returns the key and whether it was generated now.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), KeyFileError> {
        let shown = path.display().to_string();
        match fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(KeyFileError::TooOpen { path: shown, mode });
                }
                let text = fs::read_to_string(path).map_err(|source| KeyFileError::Read {
                    path: shown.clone(),
                    source,
                })?;
                let hex_part = text.strip_suffix('\n').unwrap_or(&text);
                let bytes: [u8; 32] = (hex_part.len() == 64)
                    .then(|| hex::decode(hex_part).ok())
                    .flatten()
                    .and_then(|v| v.try_into().ok())
                    .ok_or(KeyFileError::Malformed { path: shown })?;
                Ok((Self(bytes), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes = random_bytes::<32>();
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent).map_err(|source| KeyFileError::Create {
                        path: shown.clone(),
                        source,
                    })?;
                }
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|source| KeyFileError::Create {
                        path: shown.clone(),
                        source,
                    })?;
                file.write_all(format!("{}\n", hex::encode(bytes)).as_bytes())
                    .and_then(|_| file.sync_all())
                    .map_err(|source| KeyFileError::Create {
                        path: shown,
                        source,
                    })?;
                Ok((Self(bytes), true))
            }
            Err(source) => Err(KeyFileError::Read {
                path: shown,
                source,
            }),
        }
    }

    fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(label);
        mac.finalize().into_bytes().into()
    }

    /// The key-encryption key: HMAC-SHA256(master, "consent-ledger/kek/v1").
    pub fn kek(&self) -> Sealer {
        Sealer(self.derive(KEK_LABEL))
    }

    /// A tenant's suppression and webhook-dedup key.
    pub fn suppress_key(&self, tenant: &str) -> [u8; 32] {
        self.derive(format!("{SUPPRESS_LABEL}{tenant}").as_bytes())
    }

    /// A tenant's change feed key: what an admin hands to subscribers so
    /// that they can match an erasure's `identity_hashes` to their own
    /// contacts. Derived, so every instance and restart has the same one.
    pub fn feed_key(&self, tenant: &str) -> [u8; 32] {
        self.derive(format!("{FEED_LABEL}{tenant}").as_bytes())
    }

    /// What the change feed says of an erased identity: hex of
    /// HMAC-SHA256 under the tenant's feed key of the identity's UTF-8
    /// (an E.164 number or a user id, nothing appended).
    pub fn feed_hash(&self, tenant: &str, identity: &str) -> String {
        hmac_sha256_hex(&self.feed_key(tenant), identity.as_bytes())
    }

    /// The tenant's keyed hash of `parts` (each followed by a newline), hex:
    /// names a delivery or a user id without revealing it, and survives
    /// erasure (docs/webhooks.md).
    pub fn keyed_hash(&self, tenant: &str, parts: &[&str]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.suppress_key(tenant))
            .expect("HMAC takes any key length");
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// The tenant's keyed hash of an identity (an E.164 number or a user
    /// id): what a suppression record keeps of an erased identity.
    pub fn identity_hash(&self, tenant: &str, identity: &str) -> String {
        self.identity_hasher(tenant).hash(identity)
    }

    /// [`MasterKey::identity_hash`] for many identities of one tenant: the
    /// key is derived and the HMAC keyed once (a batch check hashes
    /// thousands).
    pub fn identity_hasher(&self, tenant: &str) -> IdentityHasher {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.suppress_key(tenant))
            .expect("HMAC takes any key length");
        mac.update(b"identity\n");
        IdentityHasher(mac)
    }

    /// The canary stored in the database, encrypted under the master key.
    pub fn make_canary(&self) -> String {
        Sealer(self.0).seal(CANARY_PLAINTEXT, CANARY_AAD)
    }

    /// Whether this key opens the database's canary.
    pub fn opens_canary(&self, sealed: &str) -> bool {
        Sealer(self.0)
            .open(sealed, CANARY_AAD)
            .is_some_and(|plain| plain == CANARY_PLAINTEXT)
    }
}

/// Hex of HMAC-SHA256 of `data` under `key`.
fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// AES-256-GCM with a random 96-bit nonce; the associated data binds a sealed
/// value to its place (a tenant's seed cannot be moved to another tenant).
pub struct Sealer([u8; 32]);

impl Sealer {
    /// Hex of nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let cipher = Aes256Gcm::new_from_slice(&self.0).expect("32-byte key");
        let nonce_bytes = random_bytes::<12>();
        let nonce = Nonce::from(nonce_bytes);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption of a short message cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        hex::encode(out)
    }

    /// The plaintext, or `None` when the key or the associated data is wrong.
    pub fn open(&self, sealed_hex: &str, aad: &[u8]) -> Option<Vec<u8>> {
        let bytes = hex::decode(sealed_hex).ok()?;
        if bytes.len() < 12 + 16 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce = Nonce::try_from(nonce).ok()?;
        let cipher = Aes256Gcm::new_from_slice(&self.0).ok()?;
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }

    #[cfg(test)]
    fn key_bytes(&self) -> [u8; 32] {
        self.0
    }
}

/// A new API key: its id (`key_<12 hex>`) and the key itself,
/// `clk_<12 hex>_<43 base64url chars of 32 random bytes>`, shown once.
pub fn new_api_key() -> (String, String) {
    use base64::Engine;
    let id = hex::encode(random_bytes::<6>());
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    (format!("key_{id}"), format!("clk_{id}_{secret}"))
}

/// The id (`key_<12 hex>`) of a well-formed API key, or `None`.
pub fn api_key_id(presented: &str) -> Option<String> {
    let rest = presented.strip_prefix("clk_")?;
    let bytes = rest.as_bytes();
    let well_formed = bytes.len() == 12 + 1 + 43
        && bytes[..12]
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && bytes[12] == b'_'
        && bytes[13..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    well_formed.then(|| format!("key_{}", &rest[..12]))
}

/// A new operator token: `clo_` and 43 base64url characters.
pub fn new_operator_token() -> String {
    use base64::Engine;
    format!(
        "clo_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    )
}

/// Hex SHA-256 of a presented secret, compared in constant time.
pub fn secret_sha256(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Constant-time equality of two hashes (or any two strings of equal length).
pub fn same_secret_hash(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Writes a file readable only by its owner, failing if it exists.
pub fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {

    /// The hasher keyed once gives exactly the keyed hash of
    /// `["identity", identity]`.
    #[test]
    fn the_identity_hasher_is_the_keyed_hash() {
        let master = MasterKey::from_bytes([9; 32]);
        let hasher = master.identity_hasher("makro");
        for identity in ["+4915112345678", "US.1", ""] {
            assert_eq!(
                hasher.hash(identity),
                master.keyed_hash("makro", &["identity", identity])
            );
        }
        assert_ne!(
            hasher.hash("+1"),
            master.identity_hasher("other").hash("+1")
        );
    }

    /// RFC 4231, test case 2: the HMAC the feed's identity hashes use.
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// The feed key is the tenant's own, and the feed's hash is keyed by it.
    #[test]
    fn the_feed_hash_is_the_hmac_under_the_tenants_feed_key() {
        let master = MasterKey::from_bytes([9; 32]);
        let key = master.feed_key("makro");
        assert_ne!(key, master.feed_key("other"));
        assert_ne!(key, master.suppress_key("makro"));
        assert_eq!(
            master.feed_hash("makro", "+4915112345678"),
            hmac_sha256_hex(&key, b"+4915112345678")
        );
    }

    #[test]
    fn random_codes_use_only_their_alphabet() {
        let alphabet = b"ABC23";
        let codes: Vec<String> = (0..200).map(|_| random_code(alphabet, 6)).collect();
        for code in &codes {
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| alphabet.contains(&b)), "{code}");
        }
        // Every letter turns up, and codes differ.
        for &b in alphabet {
            assert!(codes.iter().any(|c| c.as_bytes().contains(&b)));
        }
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert!(
            unique.len() > 150,
            "random: {} distinct of 200",
            unique.len()
        );
    }

    use super::*;

    fn vector_key() -> MasterKey {
        let bytes = hex::decode("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
            .unwrap();
        MasterKey(bytes.try_into().unwrap())
    }

    #[test]
    fn derivations_match_the_ledger_vectors() {
        let key = vector_key();
        assert_eq!(
            hex::encode(key.kek().key_bytes()),
            "21cf96d9de7891a2b82c7a4488590eece2674f15b832cf6bf6d52717652f83a3"
        );
        assert_eq!(
            hex::encode(key.suppress_key("makro")),
            "a5d383cfaf2bfcbecdbd56832174a75a479c0aeb0d4a9bdcb7b72553dd17824b"
        );
    }

    #[test]
    fn sealing_binds_the_associated_data() {
        let kek = vector_key().kek();
        let sealed = kek.seal(b"seed", b"tenant:a");
        assert_eq!(
            kek.open(&sealed, b"tenant:a").as_deref(),
            Some(&b"seed"[..])
        );
        assert_eq!(kek.open(&sealed, b"tenant:b"), None);
        let other = MasterKey([9; 32]).kek();
        assert_eq!(other.open(&sealed, b"tenant:a"), None);
    }

    #[test]
    fn api_keys_have_the_spec_format() {
        let (id, key) = new_api_key();
        assert_eq!(key.len(), 4 + 12 + 1 + 43);
        assert_eq!(api_key_id(&key).as_deref(), Some(id.as_str()));
        assert!(id.starts_with("key_") && id.len() == 16);
        assert_eq!(api_key_id("clk_0123456789ab_short"), None);
        assert_eq!(api_key_id(&key.replace("clk_", "clx_")), None);
        assert_eq!(api_key_id(&format!("{key}x")), None);
    }

    #[test]
    fn canary_tells_keys_apart() {
        let canary = vector_key().make_canary();
        assert!(vector_key().opens_canary(&canary));
        assert!(!MasterKey([9; 32]).opens_canary(&canary));
    }

    #[test]
    fn key_file_is_generated_private_and_refused_when_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let (first, created) = MasterKey::load_or_generate(&path).unwrap();
        assert!(created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, created) = MasterKey::load_or_generate(&path).unwrap();
        assert!(!created);
        assert_eq!(first.0, again.0);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            MasterKey::load_or_generate(&path),
            Err(KeyFileError::TooOpen { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "abc\n").unwrap();
        assert!(matches!(
            MasterKey::load_or_generate(&path),
            Err(KeyFileError::Malformed { .. })
        ));
    }
}
