//! The change feed's items (SPEC section 13, docs/changes.md): one consent
//! change of a log, with the identities a subscriber knows the person by,
//! and the opaque cursor that resumes the feed after it.

use super::identity::Identity;
use super::time::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What changed. Clients treat a type they do not know as "re-check this
/// person".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    OptIn,
    OptOut,
    OptOutLifted,
    Confirmation,
    /// The opt-out that closed a group (a changed or reassigned number).
    GroupClosed,
    Erasure,
}

/// An identity of the changed person's group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeedIdentity {
    /// E.164.
    Number(String),
    /// A WhatsApp business-scoped user id (or parent id).
    UserId(String),
}

impl From<&Identity> for FeedIdentity {
    fn from(identity: &Identity) -> Self {
        match identity {
            Identity::Number(n) => FeedIdentity::Number(n.as_str().to_owned()),
            Identity::User(u) => FeedIdentity::UserId(u.as_str().to_owned()),
        }
    }
}

/// A place in a log's feed: the number of entries read before it. Written
/// as `c1-` and lowercase hex; the same on every instance and after a
/// restart, since it counts entries of the log itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor(pub u64);

const CURSOR_PREFIX: &str = "c1-";

impl Cursor {
    /// The start of the log.
    pub const START: Cursor = Cursor(0);

    /// The cursor as given to clients.
    pub fn encode(self) -> String {
        format!("{CURSOR_PREFIX}{:x}", self.0)
    }

    /// A cursor as a client gave it back; `None` when it is not one of ours.
    pub fn parse(text: &str) -> Option<Cursor> {
        let digits = text.strip_prefix(CURSOR_PREFIX)?;
        let well_formed = !digits.is_empty()
            && digits.len() <= 14
            && digits
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && (digits == "0" || !digits.starts_with('0'));
        well_formed
            .then(|| u64::from_str_radix(digits, 16).ok())
            .flatten()
            .map(Cursor)
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

/// One change of the feed. Fields the entry does not have are null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Change {
    /// Resumes the feed after this change (`after`).
    #[schema(value_type = String, example = "c1-2a")]
    pub cursor: Cursor,
    /// The entry's seq in the log.
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: ChangeType,
    /// Every current identity of the entry's group; empty once erased.
    pub identities: Vec<FeedIdentity>,
    pub purposes: Option<Vec<String>>,
    pub message_channels: Option<Vec<String>>,
    /// The brand of an opt-in, as stored.
    pub brand: Option<String>,
    pub captured_at: Option<Timestamp>,
    pub recorded_at: Timestamp,
    /// An erasure only: hex HMAC-SHA256 of each erased identity (E.164 or
    /// user id, UTF-8) under the tenant's feed key (`GET /v1/changes/key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_hashes: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_what_they_wrote_and_nothing_else() {
        for position in [0, 1, 42, 0x1f_ffff_ffff_ffff] {
            let text = Cursor(position).encode();
            assert_eq!(Cursor::parse(&text), Some(Cursor(position)), "{text}");
        }
        assert_eq!(Cursor(42).encode(), "c1-2a");
        for bad in [
            "",
            "c1-",
            "c1-0a",
            "c1-2A",
            "c2-2a",
            "2a",
            "c1--1",
            "c1-+2",
            "c1-2a ",
            "c1-fffffffffffffff",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
    }
}
