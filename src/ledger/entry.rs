//! Ledger entries v1 (SPEC section 5, exact): the fields of each type, their
//! RFC 8785 serialisation, the leaf hash and the hiding commitments.

use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
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
        self.borrowed().canonical_json()
    }

    /// The same entry, borrowing this one's strings.
    pub fn borrowed(&self) -> EntryRef<'_> {
        fn b(s: &Option<String>) -> Option<Cow<'_, str>> {
            s.as_deref().map(Cow::Borrowed)
        }
        fn list(l: &Option<Vec<String>>) -> Option<Vec<Cow<'_, str>>> {
            l.as_ref()
                .map(|l| l.iter().map(|s| Cow::Borrowed(s.as_str())).collect())
        }
        EntryRef {
            v: self.v,
            log: Cow::Borrowed(&self.log),
            seq: self.seq,
            prev: Cow::Borrowed(&self.prev),
            recorded_at: self.recorded_at,
            kind: self.kind,
            subject: Cow::Borrowed(&self.subject),
            collector: Cow::Borrowed(&self.collector),
            channel: b(&self.channel),
            captured_at: self.captured_at,
            evidence_sha256: b(&self.evidence_sha256),
            purposes: list(&self.purposes),
            message_channels: list(&self.message_channels),
            company_name_shown: b(&self.company_name_shown),
            consent_text_sha256: b(&self.consent_text_sha256),
            language: b(&self.language),
            backfill: self.backfill,
            confirmation_required: self.confirmation_required,
            confirms: self.confirms,
            lifts: self.lifts,
            reason: b(&self.reason),
        }
    }

    /// SHA-256(0x00 ‖ JCS(entry)), lowercase hex.
    pub fn leaf_hash_hex(&self) -> String {
        to_hex(&leaf_hash(self.canonical_json().as_bytes()))
    }
}

impl EntryType {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::OptIn => "opt_in",
            EntryType::OptOut => "opt_out",
            EntryType::Confirmation => "confirmation",
            EntryType::OptOutLifted => "opt_out_lifted",
            EntryType::Erasure => "erasure",
        }
    }
}

/// Whether any byte is a control character, `"` or `\\` (eight bytes at a time).
pub(crate) fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        // Bytes below 0x20: subtracting 0x20 borrows into the high bit of
        // bytes that had it clear.
        let control = v.wrapping_sub(ONES * 0x20) & !v & HIGHS != 0;
        if control || has_zero(v ^ (ONES * b'"' as u64)) || has_zero(v ^ (ONES * b'\\' as u64)) {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// A JSON string as RFC 8785 writes it (ECMAScript `JSON.stringify`):
/// `"` and `\` escaped, control characters as `\b \t \n \f \r` or
/// `\u00xx` (lowercase hex), everything else as is.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    if !needs_escape(s.as_bytes()) {
        // The common case: nothing to escape.
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn push_string_array(out: &mut String, list: &[Cow<'_, str>]) {
    out.push('[');
    for (i, item) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, item);
    }
    out.push(']');
}

/// RFC 8785 form of a flat object of strings (evidence bodies): keys sorted
/// by UTF-16 code units.
pub fn jcs_string_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    pairs.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    let mut out = String::with_capacity(256);
    out.push('{');
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, k);
        out.push(':');
        push_json_string(&mut out, v);
    }
    out.push('}');
    out
}

/// An entry borrowing its strings from the text it was parsed from (the
/// verifier parses millions); the same fields and rules as [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryRef<'a> {
    pub v: u8,
    #[serde(borrow)]
    pub log: Cow<'a, str>,
    pub seq: u64,
    #[serde(borrow)]
    pub prev: Cow<'a, str>,
    pub recorded_at: Timestamp,
    #[serde(rename = "type")]
    pub kind: EntryType,
    #[serde(borrow)]
    pub subject: Cow<'a, str>,
    #[serde(borrow)]
    pub collector: Cow<'a, str>,
    #[serde(borrow, default)]
    pub channel: Option<Cow<'a, str>>,
    #[serde(default)]
    pub captured_at: Option<Timestamp>,
    #[serde(borrow, default)]
    pub evidence_sha256: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub purposes: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    pub message_channels: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    pub company_name_shown: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub consent_text_sha256: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub language: Option<Cow<'a, str>>,
    #[serde(default)]
    pub backfill: Option<bool>,
    #[serde(default)]
    pub confirmation_required: Option<bool>,
    #[serde(default)]
    pub confirms: Option<u64>,
    #[serde(default)]
    pub lifts: Option<u64>,
    #[serde(borrow, default)]
    pub reason: Option<Cow<'a, str>>,
}

impl EntryRef<'_> {
    /// RFC 8785 (JCS) serialisation: the bytes that are hashed. Written by
    /// hand (keys in their fixed sorted order) because verification does it
    /// for every entry; a test checks it against a general JCS encoder.
    pub fn canonical_json(&self) -> String {
        let mut out = String::with_capacity(640);
        let mut first = true;
        let mut key = |out: &mut String, name: &str| {
            out.push(if first { '{' } else { ',' });
            first = false;
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
        };
        let opt_str = |out: &mut String,
                       key: &mut dyn FnMut(&mut String, &str),
                       name: &str,
                       v: &Option<Cow<'_, str>>| {
            if let Some(v) = v {
                key(out, name);
                push_json_string(out, v);
            }
        };
        // Sorted by UTF-16 code units; every key is ASCII, so byte order.
        if let Some(b) = self.backfill {
            key(&mut out, "backfill");
            out.push_str(if b { "true" } else { "false" });
        }
        if let Some(t) = self.captured_at {
            key(&mut out, "captured_at");
            out.push('"');
            t.write_canonical(&mut out);
            out.push('"');
        }
        opt_str(&mut out, &mut key, "channel", &self.channel);
        key(&mut out, "collector");
        push_json_string(&mut out, &self.collector);
        opt_str(
            &mut out,
            &mut key,
            "company_name_shown",
            &self.company_name_shown,
        );
        if let Some(b) = self.confirmation_required {
            key(&mut out, "confirmation_required");
            out.push_str(if b { "true" } else { "false" });
        }
        if let Some(n) = self.confirms {
            key(&mut out, "confirms");
            out.push_str(&n.to_string());
        }
        opt_str(
            &mut out,
            &mut key,
            "consent_text_sha256",
            &self.consent_text_sha256,
        );
        opt_str(&mut out, &mut key, "evidence_sha256", &self.evidence_sha256);
        opt_str(&mut out, &mut key, "language", &self.language);
        if let Some(n) = self.lifts {
            key(&mut out, "lifts");
            out.push_str(&n.to_string());
        }
        key(&mut out, "log");
        push_json_string(&mut out, &self.log);
        if let Some(list) = &self.message_channels {
            key(&mut out, "message_channels");
            push_string_array(&mut out, list);
        }
        key(&mut out, "prev");
        push_json_string(&mut out, &self.prev);
        if let Some(list) = &self.purposes {
            key(&mut out, "purposes");
            push_string_array(&mut out, list);
        }
        opt_str(&mut out, &mut key, "reason", &self.reason);
        key(&mut out, "recorded_at");
        out.push('"');
        self.recorded_at.write_canonical(&mut out);
        out.push('"');
        key(&mut out, "seq");
        out.push_str(&self.seq.to_string());
        key(&mut out, "subject");
        push_json_string(&mut out, &self.subject);
        key(&mut out, "type");
        push_json_string(&mut out, self.kind.as_str());
        key(&mut out, "v");
        out.push_str(&self.v.to_string());
        out.push('}');
        out
    }
}

/// The RFC 6962 leaf hash of serialised entry bytes.
pub fn leaf_hash(canonical: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// Lowercase hex of bytes (a table lookup: the hex crate's iterators are
/// slow on the verification path).
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 15) as usize]);
    }
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// Value of each byte as a lowercase hex digit; 0xff for anything else.
const HEX_VALUES: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// A hash written as 64 lowercase hex digits, or `None`.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let bytes: &[u8; 64] = text.as_bytes().try_into().ok()?;
    let mut out = [0u8; 32];
    let mut invalid = 0u8;
    for (i, o) in out.iter_mut().enumerate() {
        let hi = HEX_VALUES[bytes[2 * i] as usize];
        let lo = HEX_VALUES[bytes[2 * i + 1] as usize];
        invalid |= hi | lo;
        *o = (hi << 4) | (lo & 15);
    }
    (invalid & 0xf0 == 0).then_some(out)
}

/// Hex SHA-256 of bytes (consent texts, request bodies).
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

/// SHA-256 of bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

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
    fn escapes_are_found_in_every_position() {
        for len in 0..20 {
            let plain = "a".repeat(len);
            assert!(!needs_escape(plain.as_bytes()));
            for at in 0..len {
                for bad in [0u8, 0x1f, b'"', b'\\', b'\n'] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = bad;
                    assert!(needs_escape(&bytes), "{bad:#x} at {at} of {len}");
                }
                for fine in [0x20u8, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0xc3] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = fine;
                    assert!(!needs_escape(&bytes), "{fine:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn hashes_parse_only_as_lowercase_hex() {
        let h = [0xab; 32];
        assert_eq!(parse_hash(&to_hex(&h)), Some(h));
        assert_eq!(parse_hash(&to_hex(&h).to_uppercase()), None);
        assert_eq!(parse_hash(&"g".repeat(64)), None);
        assert_eq!(parse_hash(&"0".repeat(63)), None);
        assert_eq!(parse_hash(&format!("{}é", "0".repeat(62))), None);
        assert_eq!(parse_hash(&"0f".repeat(32)), Some([0x0f; 32]));
    }

    #[test]
    fn hand_written_jcs_matches_a_general_encoder() {
        let mut entry = Entry::new(
            EntryType::OptIn,
            "ledger.example.com/caf\u{e9}",
            9_007_199_254_740_991,
            ZERO_HASH,
            Timestamp::parse("2026-11-20T10:00:07.107Z").unwrap(),
            "ab",
            "key_aa00bb11cc22",
        );
        entry.channel = Some("web".into());
        entry.captured_at = Some(Timestamp::parse("2026-11-20T10:00:00Z").unwrap());
        entry.purposes = Some(vec!["marketing".into(), "utility".into()]);
        entry.message_channels = Some(vec!["sms".into()]);
        entry.company_name_shown = Some(
            "Caf\u{e9} \"Z\u{fc}rich\" \\ \u{1}\u{1f}\u{7f}\u{2028}\n\t\u{8}\u{c}\r \u{1F600}"
                .into(),
        );
        entry.consent_text_sha256 = Some("0".repeat(64));
        entry.evidence_sha256 = Some("1".repeat(64));
        entry.language = Some("de".into());
        entry.backfill = Some(true);
        entry.confirmation_required = Some(true);
        entry.confirms = Some(3);
        entry.lifts = Some(0);
        entry.reason = Some("request".into());
        assert_eq!(
            entry.canonical_json(),
            serde_jcs::to_string(&entry).unwrap()
        );
        let evidence = [
            ("z", "1"),
            ("\u{e9}", "x\u{1}"),
            ("\u{1F600}", "a"),
            ("\u{ff61}", "b"),
            ("A", "\""),
        ];
        let map: std::collections::BTreeMap<&str, &str> = evidence.into_iter().collect();
        assert_eq!(
            jcs_string_map(evidence),
            serde_jcs::to_string(&map).unwrap()
        );
    }

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
