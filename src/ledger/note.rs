//! C2SP signed notes with Ed25519 keys, and `tlog-checkpoint` bodies.
//! Key ID = first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).

use super::merkle::Hash;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature type byte of Ed25519 in C2SP signed notes.
const ALG_ED25519: u8 = 0x01;

/// The 4-byte key ID of an Ed25519 key named `name`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ALG_ED25519]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// `<name>+<8 hex key ID>+<base64(0x01 ‖ public key)>`.
pub fn verifier_key(name: &str, public_key: &[u8; 32]) -> String {
    let mut typed = Vec::with_capacity(33);
    typed.push(ALG_ED25519);
    typed.extend_from_slice(public_key);
    format!(
        "{name}+{}+{}",
        hex::encode(key_id(name, public_key)),
        BASE64.encode(typed)
    )
}

/// The signature line `— <name> <base64(key ID ‖ signature)>\n` over `text`
/// (which must end in a newline).
pub fn signature_line(text: &str, name: &str, key: &SigningKey) -> String {
    let public = key.verifying_key().to_bytes();
    let signature = key.sign(text.as_bytes()).to_bytes();
    let mut blob = Vec::with_capacity(68);
    blob.extend_from_slice(&key_id(name, &public));
    blob.extend_from_slice(&signature);
    format!("\u{2014} {name} {}\n", BASE64.encode(blob))
}

/// A signed note: the text, a blank line, one signature line.
pub fn sign_note(text: &str, name: &str, key: &SigningKey) -> String {
    debug_assert!(text.ends_with('\n'));
    format!("{text}\n{}", signature_line(text, name, key))
}

/// A `tlog-checkpoint` body: origin, decimal size, base64 root, each ending in `\n`.
pub fn checkpoint_body(origin: &str, size: u64, root: &[u8; 32]) -> String {
    format!("{origin}\n{size}\n{}\n", BASE64.encode(root))
}

/// A parsed verifier key: who signs, and the Ed25519 key that checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub name: String,
    pub key_id: [u8; 4],
    pub public_key: VerifyingKey,
}

/// Why a note, key or checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed verifier key")]
    MalformedKey,
    #[error("the verifier key's ID does not match its name and public key")]
    KeyIdMismatch,
    #[error("malformed signed note")]
    MalformedNote,
    #[error("no signature by the trusted key")]
    NotSigned,
    #[error("the signature by the trusted key is invalid")]
    BadSignature,
    #[error("malformed checkpoint body")]
    MalformedCheckpoint,
}

impl Verifier {
    /// Parses `<name>+<8 hex key ID>+<base64(0x01 ‖ public key)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        // Names hold no '+'; the base64 key may.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::MalformedKey);
        };
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
            return Err(NoteError::MalformedKey);
        }
        let id: [u8; 4] = hex::decode(id_hex)
            .ok()
            .filter(|_| id_hex.len() == 8 && id_hex.bytes().all(|b| !b.is_ascii_uppercase()))
            .and_then(|v| v.try_into().ok())
            .ok_or(NoteError::MalformedKey)?;
        let typed = BASE64
            .decode(key_b64)
            .map_err(|_| NoteError::MalformedKey)?;
        let (alg, key) = typed.split_first().ok_or(NoteError::MalformedKey)?;
        let key: [u8; 32] = key.try_into().map_err(|_| NoteError::MalformedKey)?;
        if *alg != ALG_ED25519 {
            return Err(NoteError::MalformedKey);
        }
        if key_id(name, &key) != id {
            return Err(NoteError::KeyIdMismatch);
        }
        let public_key = VerifyingKey::from_bytes(&key).map_err(|_| NoteError::MalformedKey)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: id,
            public_key,
        })
    }

    /// The verifier key string again.
    pub fn to_verifier_key(&self) -> String {
        verifier_key(&self.name, &self.public_key.to_bytes())
    }
}

/// A signature line of a note: the signer's name, key ID and signature bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: [u8; 4],
    pub signature: Vec<u8>,
}

/// A signed note split into its text and signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        let split = note.rfind("\n\n").ok_or(NoteError::MalformedNote)?;
        let text = &note[..split + 1];
        let block = &note[split + 2..];
        if text.chars().any(|c| c.is_control() && c != '\n') || !block.ends_with('\n') {
            return Err(NoteError::MalformedNote);
        }
        let mut signatures = Vec::new();
        for line in block[..block.len() - 1].split('\n') {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or(NoteError::MalformedNote)?;
            let (name, b64) = rest.split_once(' ').ok_or(NoteError::MalformedNote)?;
            let blob = BASE64.decode(b64).map_err(|_| NoteError::MalformedNote)?;
            if name.is_empty() || blob.len() < 5 {
                return Err(NoteError::MalformedNote);
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id: [blob[0], blob[1], blob[2], blob[3]],
                signature: blob[4..].to_vec(),
            });
        }
        if signatures.is_empty() {
            return Err(NoteError::MalformedNote);
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Checks that `verifier` signed the text; other signatures are ignored.
    pub fn verify(&self, verifier: &Verifier) -> Result<(), NoteError> {
        let mine: Vec<&NoteSignature> = self
            .signatures
            .iter()
            .filter(|s| s.name == verifier.name && s.key_id == verifier.key_id)
            .collect();
        if mine.is_empty() {
            return Err(NoteError::NotSigned);
        }
        for sig in mine {
            let signature =
                Signature::from_slice(&sig.signature).map_err(|_| NoteError::BadSignature)?;
            verifier
                .public_key
                .verify(self.text.as_bytes(), &signature)
                .map_err(|_| NoteError::BadSignature)?;
        }
        Ok(())
    }
}

/// A parsed `tlog-checkpoint` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(NoteError::MalformedCheckpoint)?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError::MalformedCheckpoint)?;
        let size_text = lines.next().ok_or(NoteError::MalformedCheckpoint)?;
        let canonical_number = !size_text.is_empty()
            && size_text.bytes().all(|b| b.is_ascii_digit())
            && (size_text == "0" || !size_text.starts_with('0'));
        let size: u64 = size_text
            .parse()
            .ok()
            .filter(|_| canonical_number)
            .ok_or(NoteError::MalformedCheckpoint)?;
        let root: Hash = lines
            .next()
            .and_then(|r| BASE64.decode(r).ok())
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::MalformedCheckpoint)?;
        if lines.any(str::is_empty) {
            return Err(NoteError::MalformedCheckpoint);
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// Verifies a signed checkpoint note with `verifier` and parses its body.
pub fn open_checkpoint(note: &str, verifier: &Verifier) -> Result<Checkpoint, NoteError> {
    let signed = SignedNote::parse(note)?;
    signed.verify(verifier)?;
    Checkpoint::parse(&signed.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_and_verifier_key_of_the_go_example() {
        let seed: [u8; 32] =
            hex::decode("810a1402d5146c8d84f2443330f54080ebf98ee17d9c74f6252fc5d5c7283173")
                .unwrap()
                .try_into()
                .unwrap();
        let key = SigningKey::from_bytes(&seed);
        let public = key.verifying_key().to_bytes();
        assert_eq!(
            hex::encode(public),
            "1a5cd907143c384c41e830c5bce12aa8817ec5649aaabf2c31388b35b2d744d6"
        );
        assert_eq!(
            verifier_key("PeterNeumann", &public),
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        );
    }

    #[test]
    fn verifier_keys_round_trip_and_refuse_mismatches() {
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let v = Verifier::parse(vkey).unwrap();
        assert_eq!(v.to_verifier_key(), vkey);
        assert_eq!(
            Verifier::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
            Err(NoteError::KeyIdMismatch)
        );
        assert_eq!(Verifier::parse("nonsense"), Err(NoteError::MalformedKey));
    }

    #[test]
    fn a_signed_note_verifies_and_a_changed_text_does_not() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let verifier = Verifier::parse(&verifier_key(
            "log.example/a",
            &key.verifying_key().to_bytes(),
        ))
        .unwrap();
        let body = checkpoint_body("log.example/a", 3, &[9; 32]);
        let note = sign_note(&body, "log.example/a", &key);
        let cp = open_checkpoint(&note, &verifier).unwrap();
        assert_eq!(
            (cp.origin.as_str(), cp.size, cp.root),
            ("log.example/a", 3, [9; 32])
        );
        let forged = note.replacen("\n3\n", "\n4\n", 1);
        assert_eq!(
            open_checkpoint(&forged, &verifier),
            Err(NoteError::BadSignature)
        );
        let other = Verifier::parse(&verifier_key(
            "log.example/a",
            &SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes(),
        ))
        .unwrap();
        assert_eq!(open_checkpoint(&note, &other), Err(NoteError::NotSigned));
        assert_eq!(
            Checkpoint::parse("o\n01\nAAAA\n"),
            Err(NoteError::MalformedCheckpoint)
        );
    }
}
