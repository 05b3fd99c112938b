//! Ledger entries v1 (docs/ledger-format.md, exact): the fields of each type, their
//! canonical (RFC 8785) form, and the openings of their commitments.

use super::hash::{leaf_hash, to_hex};
use super::jcs::{push_json_string, push_string_array};
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use utoipa::ToSchema;

/// `prev` of entry 0.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The six entry types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryType {
    OptIn,
    OptOut,
    Confirmation,
    OptOutLifted,
    Erasure,
    /// Two identities of one person joined by a WhatsApp message (docs/identities.md): `linked` is the other identity's subject commitment.
    IdentityLinked,
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
    pub linked: Option<String>,
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
            linked: None,
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
            linked: b(&self.linked),
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
            EntryType::IdentityLinked => "identity_linked",
        }
    }
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
    pub linked: Option<Cow<'a, str>>,
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
        opt_str(&mut out, &mut key, "linked", &self.linked);
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

/// The secrets that open an entry's commitments (exact: all four keys always
/// present, null where not applicable or erased; an `identity_linked`
/// entry's add `linked`, and no other entry's do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Openings {
    pub subject: Option<SubjectOpening>,
    pub evidence: Option<EvidenceOpening>,
    pub consent_text: Option<String>,
    pub erased: bool,
    /// Only on `identity_linked` entries, where the key is always present:
    /// the other identity's opening, null when erased.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<SubjectOpening>)]
    pub linked: Option<Option<SubjectOpening>>,
}

/// A key that is present (its value possibly null), as opposed to absent.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The identity a subject commits to, with its salt: a number (`e164`) or
/// a WhatsApp user id (`user_id`), exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectOpening {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e164: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub salt: String,
}

impl SubjectOpening {
    /// A number's opening.
    pub fn number(e164: String, salt: String) -> Self {
        Self {
            e164: Some(e164),
            user_id: None,
            salt,
        }
    }

    /// The opening of a stored identity: a number (`+…`) or a user id.
    pub fn of(identity: String, salt: String) -> Self {
        if identity.starts_with('+') {
            Self::number(identity, salt)
        } else {
            Self {
                e164: None,
                user_id: Some(identity),
                salt,
            }
        }
    }

    /// The identity: the number or the user id; `None` unless exactly one.
    pub fn identity(&self) -> Option<&str> {
        match (&self.e164, &self.user_id) {
            (Some(n), None) => Some(n),
            (None, Some(u)) => Some(u),
            _ => None,
        }
    }
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
