//! Ledger entries v1 (SPEC section 5, exact): the fields of each type, their
//! RFC 8785 serialisation, the leaf hash and the hiding commitments.

use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// `prev` of entry 0.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The five entry types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryType {
    OptIn,
    OptOut,
    Confirmation,
    OptOutLifted,
    Erasure,
}

/// One ledger entry. Fields that a type does not carry are absent, never
/// null; `backfill` and `confirmation_required` appear only when true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub v: u8,
    pub log: String,
    pub seq: u64,
    pub prev: String,
    pub recorded_at: Timestamp,
    #[serde(rename = "type")]
    pub kind: EntryType,
    pub subject: String,
    pub collector: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub captured_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub evidence_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub purposes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message_channels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub company_name_shown: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub consent_text_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub backfill: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confirmation_required: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confirms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lifts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

impl Entry {
    /// An entry with the fields every type carries; the caller adds the rest.
    pub fn new(
        kind: EntryType,
        log: &str,
        seq: u64,
        prev: &str,
        recorded_at: Timestamp,
        subject: &str,
        collector: &str,
    ) -> Self {
        Self {
            v: 1,
            log: log.to_owned(),
            seq,
            prev: prev.to_owned(),
            recorded_at,
            kind,
            subject: subject.to_owned(),
            collector: collector.to_owned(),
            channel: None,
            captured_at: None,
            evidence_sha256: None,
            purposes: None,
            message_channels: None,
            company_name_shown: None,
            consent_text_sha256: None,
            language: None,
            backfill: None,
            confirmation_required: None,
            confirms: None,
            lifts: None,
            reason: None,
        }
    }

    /// RFC 8785 (JCS) serialisation: the bytes that are hashed.
    pub fn canonical_json(&self) -> String {
        serde_jcs::to_string(self).expect("entries hold only strings, integers and booleans")
    }

    /// SHA-256(0x00 ‖ JCS(entry)), lowercase hex.
    pub fn leaf_hash_hex(&self) -> String {
        hex::encode(leaf_hash(self.canonical_json().as_bytes()))
    }
}

/// The RFC 6962 leaf hash of serialised entry bytes.
pub fn leaf_hash(canonical: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// Hex SHA-256 of bytes (consent texts, request bodies).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `subject = SHA-256("consent-ledger/subject/v1\n" ‖ salt_hex ‖ "\n" ‖ e164)`.
pub fn subject_commitment(salt_hex: &str, e164: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"consent-ledger/subject/v1\n");
    hasher.update(salt_hex.as_bytes());
    hasher.update(b"\n");
    hasher.update(e164.as_bytes());
    hex::encode(hasher.finalize())
}

/// `evidence_sha256 = SHA-256("consent-ledger/evidence/v1\n" ‖ salt_hex ‖ "\n" ‖ JCS(evidence))`.
pub fn evidence_commitment(salt_hex: &str, evidence_jcs: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"consent-ledger/evidence/v1\n");
    hasher.update(salt_hex.as_bytes());
    hasher.update(b"\n");
    hasher.update(evidence_jcs.as_bytes());
    hex::encode(hasher.finalize())
}

/// RFC 8785 form of any JSON value (evidence bodies).
pub fn jcs<T: Serialize>(value: &T) -> String {
    serde_jcs::to_string(value).expect("JSON values serialise")
}

/// The secrets that open an entry's commitments (exact: all four keys always
/// present, null where not applicable or erased).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Openings {
    pub subject: Option<SubjectOpening>,
    pub evidence: Option<EvidenceOpening>,
    pub consent_text: Option<String>,
    pub erased: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectOpening {
    pub e164: String,
    pub salt: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceOpening {
    pub salt: String,
    #[schema(value_type = Object)]
    pub body: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_are_omitted_and_keys_sorted() {
        let mut entry = Entry::new(
            EntryType::Erasure,
            "l/t",
            7,
            ZERO_HASH,
            Timestamp::parse("2026-11-20T10:00:07.107Z").unwrap(),
            "ab",
            "key_aa00bb11cc22",
        );
        entry.reason = Some("request".into());
        assert_eq!(
            entry.canonical_json(),
            format!(
                "{{\"collector\":\"key_aa00bb11cc22\",\"log\":\"l/t\",\"prev\":\"{ZERO_HASH}\",\"reason\":\"request\",\"recorded_at\":\"2026-11-20T10:00:07.107Z\",\"seq\":7,\"subject\":\"ab\",\"type\":\"erasure\",\"v\":1}}"
            )
        );
    }
}
