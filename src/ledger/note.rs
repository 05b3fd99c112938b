//! C2SP signed notes with Ed25519 keys, and `tlog-checkpoint` bodies.
//! Key ID = first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
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
}
