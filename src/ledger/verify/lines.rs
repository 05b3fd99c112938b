//! The shapes of export, dossier and receipt lines, read borrowing from
//! the line's text, and the openings they carry.

use crate::ledger::entry::{EntryRef, Openings};
use crate::ledger::jcs::{jcs, jcs_string_map};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Header {
    pub(super) format: String,
    pub(super) log: String,
    pub(super) tree_size: u64,
    pub(super) verifier_key: String,
    #[serde(default)]
    pub(super) filtered: bool,
}

/// An entry line, borrowing from the line's text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EntryLine<'a> {
    #[serde(borrow)]
    pub(super) entry: EntryRef<'a>,
    #[serde(borrow)]
    pub(super) leaf_hash: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) openings: Option<OpeningsRef<'a>>,
    #[serde(borrow, default)]
    pub(super) inclusion_proof: Option<Vec<Cow<'a, str>>>,
}

/// Openings as they arrive in a file (docs/ledger-format.md, exact).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OpeningsRef<'a> {
    #[serde(borrow)]
    pub(super) subject: Option<SubjectRef<'a>>,
    #[serde(borrow)]
    pub(super) evidence: Option<EvidenceRef<'a>>,
    #[serde(borrow)]
    pub(super) consent_text: Option<Cow<'a, str>>,
    pub(super) erased: bool,
    /// Present (possibly null) exactly on `identity_linked` entries.
    #[serde(borrow, default, deserialize_with = "present")]
    pub(super) linked: Option<Option<SubjectRef<'a>>>,
}

/// A key that is present (its value possibly null), as opposed to absent.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `{"e164","salt"}` or `{"user_id","salt"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SubjectRef<'a> {
    #[serde(borrow, default)]
    pub(super) e164: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) user_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) salt: Cow<'a, str>,
}

impl SubjectRef<'_> {
    fn opened(&self) -> IdentityOpening<'_> {
        IdentityOpening {
            identity: match (&self.e164, &self.user_id) {
                (Some(n), None) => Some(Identity::Number(n.as_ref())),
                (None, Some(u)) => Some(Identity::UserId(u.as_ref())),
                _ => None,
            },
            salt: self.salt.as_ref(),
        }
    }
}

/// An opened identity, as the file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity<'x> {
    Number(&'x str),
    UserId(&'x str),
}

impl<'x> Identity<'x> {
    pub fn text(self) -> &'x str {
        match self {
            Identity::Number(t) | Identity::UserId(t) => t,
        }
    }
}

/// A subject's (or a link's) opening: the identity (`None` when the file
/// gives both keys or neither) and the salt.
#[derive(Debug, Clone, Copy)]
pub struct IdentityOpening<'x> {
    pub identity: Option<Identity<'x>>,
    pub salt: &'x str,
}

impl<'x> IdentityOpening<'x> {
    fn of(s: &'x crate::ledger::entry::SubjectOpening) -> Self {
        IdentityOpening {
            identity: match (&s.e164, &s.user_id) {
                (Some(n), None) => Some(Identity::Number(n)),
                (None, Some(u)) => Some(Identity::UserId(u)),
                _ => None,
            },
            salt: &s.salt,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EvidenceRef<'a> {
    #[serde(borrow)]
    pub(super) salt: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) body: EvidenceBody<'a>,
}

/// An evidence body: a flat object of strings, borrowed where possible
/// (all the service writes), or any other JSON object.
pub(super) enum EvidenceBody<'a> {
    Strings(Vec<(Cow<'a, str>, Cow<'a, str>)>),
    Other(serde_json::Map<String, serde_json::Value>),
}

/// A string that borrows from the input when it has no escapes.
pub(super) struct BorrowedStr<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for BorrowedStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = BorrowedStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit(std::marker::PhantomData))
    }
}

/// A value of an evidence body: a string, or anything else as JSON.
pub(super) enum BodyValue<'a> {
    Str(Cow<'a, str>),
    Other(serde_json::Value),
}

impl<'de: 'a, 'a> Deserialize<'de> for BodyValue<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        use serde_json::Value;
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = BodyValue<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BodyValue::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BodyValue::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(BodyValue::Str(Cow::Owned(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(BodyValue::Other(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(BodyValue::Other(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(BodyValue::Other(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(BodyValue::Other(Value::from(v)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(BodyValue::Other(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Value::deserialize(SeqAccessDeserializer::new(seq)).map(BodyValue::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                Value::deserialize(MapAccessDeserializer::new(map)).map(BodyValue::Other)
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for EvidenceBody<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = EvidenceBody<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut pairs: Vec<(Cow<'a, str>, BodyValue<'a>)> = Vec::with_capacity(8);
                while let Some(BorrowedStr(key)) = map.next_key()? {
                    pairs.push((key, map.next_value()?));
                }
                let mut seen: Vec<&str> = pairs.iter().map(|(k, _)| k.as_ref()).collect();
                seen.sort_unstable();
                if seen.windows(2).any(|w| w[0] == w[1]) {
                    // Which value counts would depend on the reader.
                    return Err(serde::de::Error::custom(
                        "duplicate key in the evidence body",
                    ));
                }
                if pairs.iter().all(|(_, v)| matches!(v, BodyValue::Str(_))) {
                    {
                        return Ok(EvidenceBody::Strings(
                            pairs
                                .into_iter()
                                .map(|(k, v)| match v {
                                    BodyValue::Str(v) => (k, v),
                                    BodyValue::Other(_) => unreachable!("all strings"),
                                })
                                .collect(),
                        ));
                    }
                }
                // Anything else goes through the general encoder.
                Ok(EvidenceBody::Other(
                    pairs
                        .into_iter()
                        .map(|(k, v)| {
                            let v = match v {
                                BodyValue::Str(s) => serde_json::Value::String(s.into_owned()),
                                BodyValue::Other(v) => v,
                            };
                            (k.into_owned(), v)
                        })
                        .collect(),
                ))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// Openings in the form the checks read, from a file or from the database.
pub struct OpeningView<'x> {
    pub erased: bool,
    pub subject: Option<IdentityOpening<'x>>,
    /// Present exactly on `identity_linked` entries: the other identity.
    pub linked: Option<Option<IdentityOpening<'x>>>,
    /// (salt, RFC 8785 form of the body)
    pub evidence: Option<(&'x str, String)>,
    pub consent_text: Option<&'x str>,
}

impl<'x> OpeningView<'x> {
    /// From stored openings (`verify-db`).
    pub fn of(o: &'x Openings) -> Self {
        Self {
            erased: o.erased,
            subject: o.subject.as_ref().map(IdentityOpening::of),
            linked: o
                .linked
                .as_ref()
                .map(|l| l.as_ref().map(IdentityOpening::of)),
            evidence: o
                .evidence
                .as_ref()
                .map(|e| (e.salt.as_str(), evidence_jcs_of_map(&e.body))),
            consent_text: o.consent_text.as_deref(),
        }
    }

    pub(super) fn of_ref(o: &'x OpeningsRef<'_>) -> Self {
        Self {
            erased: o.erased,
            subject: o.subject.as_ref().map(SubjectRef::opened),
            linked: o
                .linked
                .as_ref()
                .map(|l| l.as_ref().map(SubjectRef::opened)),
            evidence: o
                .evidence
                .as_ref()
                .map(|e| (e.salt.as_ref(), evidence_jcs_of_body(&e.body))),
            consent_text: o.consent_text.as_deref(),
        }
    }
}

/// RFC 8785 form of an evidence body from a file.
pub(super) fn evidence_jcs_of_body(body: &EvidenceBody<'_>) -> String {
    match body {
        EvidenceBody::Strings(pairs) => {
            jcs_string_map(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
        }
        EvidenceBody::Other(map) => jcs(map),
    }
}

pub fn evidence_jcs_of_map(body: &serde_json::Map<String, serde_json::Value>) -> String {
    if body.values().all(|v| v.is_string()) {
        jcs_string_map(
            body.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())),
        )
    } else {
        jcs(body)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsistencyLine {
    pub(super) consistency: ConsistencyBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsistencyBody {
    pub(super) from: u64,
    pub(super) to: u64,
    pub(super) proof: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckpointLine {
    pub(super) checkpoint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Receipt<'a> {
    pub(super) format: String,
    #[serde(borrow)]
    pub(super) entry: EntryRef<'a>,
    pub(super) leaf_hash: String,
    pub(super) tree_size: u64,
    pub(super) inclusion_proof: Vec<String>,
    pub(super) checkpoint: String,
    pub(super) verifier_key: String,
    #[serde(borrow)]
    pub(super) openings: OpeningsRef<'a>,
}
