//! The hiding commitments (docs/ledger-format.md, exact): a subject and an
//! evidence body each committed with their own random salt, so that
//! erasing the salt and the value leaves the log verifiable.

use super::hash::to_hex;
use sha2::{Digest, Sha256};

/// `subject = SHA-256("consent-ledger/subject/v1\n" ‖ salt_hex ‖ "\n" ‖ e164)`.
pub fn subject_commitment_bytes(salt_hex: &str, e164: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"consent-ledger/subject/v1\n");
    hasher.update(salt_hex.as_bytes());
    hasher.update(b"\n");
    hasher.update(e164.as_bytes());
    hasher.finalize().into()
}

pub fn subject_commitment(salt_hex: &str, e164: &str) -> String {
    to_hex(&subject_commitment_bytes(salt_hex, e164))
}

/// `evidence_sha256 = SHA-256("consent-ledger/evidence/v1\n" ‖ salt_hex ‖ "\n" ‖ JCS(evidence))`.
pub fn evidence_commitment_bytes(salt_hex: &str, evidence_jcs: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"consent-ledger/evidence/v1\n");
    hasher.update(salt_hex.as_bytes());
    hasher.update(b"\n");
    hasher.update(evidence_jcs.as_bytes());
    hasher.finalize().into()
}

pub fn evidence_commitment(salt_hex: &str, evidence_jcs: &str) -> String {
    to_hex(&evidence_commitment_bytes(salt_hex, evidence_jcs))
}
