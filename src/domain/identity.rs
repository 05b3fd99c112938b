//! Identities (docs/identities.md): a person is known by a number (E.164) or by
//! a WhatsApp business-scoped user id, `^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}\z`
//! (a parent id has `ENT.` after the country), stored exactly as received.
//! A number starts with `+` and a user id with two letters, so the two
//! never collide where both are stored or hashed.

use super::number::E164;
use super::problem::{ErrorCode, Invalid};
use std::fmt;

/// Whether `text` is a user id, matched whole.
pub fn is_user_id(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 4 || !b[0].is_ascii_uppercase() || !b[1].is_ascii_uppercase() || b[2] != b'.' {
        return false;
    }
    let rest = &b[3..];
    let id = rest.strip_prefix(b"ENT.").unwrap_or(rest);
    (1..=128).contains(&id.len()) && id.iter().all(u8::is_ascii_alphanumeric)
}

/// A business-scoped user id (or a parent id), as received.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    pub fn parse(text: &str) -> Option<Self> {
        is_user_id(text).then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A parent id (`ENT.` after the country), shared across a company's
    /// business portfolios.
    pub fn is_parent(&self) -> bool {
        self.0.as_bytes().get(3..7) == Some(b"ENT.")
    }
}

/// Never print a user id by accident.
impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserId(<redacted>)")
    }
}

/// A number or a user id: what a subject commits to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    Number(E164),
    User(UserId),
}

/// What kind of identity (a link pairs a number with a user id, or a user
/// id with a parent id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    Number,
    UserId,
    ParentId,
}

impl Identity {
    /// The identity exactly as stored, committed and hashed.
    pub fn as_str(&self) -> &str {
        match self {
            Identity::Number(n) => n.as_str(),
            Identity::User(u) => u.as_str(),
        }
    }

    /// A stored identity read back (a number in canonical E.164, or a user id).
    pub fn from_stored(text: &str) -> Option<Self> {
        match E164::from_canonical(text) {
            Some(number) => Some(Identity::Number(number)),
            None => UserId::parse(text).map(Identity::User),
        }
    }

    pub fn kind(&self) -> IdentityKind {
        match self {
            Identity::Number(_) => IdentityKind::Number,
            Identity::User(u) if u.is_parent() => IdentityKind::ParentId,
            Identity::User(_) => IdentityKind::UserId,
        }
    }

    pub fn number(&self) -> Option<&E164> {
        match self {
            Identity::Number(n) => Some(n),
            Identity::User(_) => None,
        }
    }

    /// The identity echoed in an answer: as `number` or as `user_id`.
    pub fn echo(&self) -> (Option<String>, Option<String>) {
        match self {
            Identity::Number(n) => (Some(n.as_str().to_owned()), None),
            Identity::User(u) => (None, Some(u.as_str().to_owned())),
        }
    }

    /// The JSON field that names it in requests and answers.
    pub fn field(&self) -> &'static str {
        match self {
            Identity::Number(_) => "number",
            Identity::User(_) => "user_id",
        }
    }
}

impl From<E164> for Identity {
    fn from(number: E164) -> Self {
        Identity::Number(number)
    }
}

/// A request's `user_id` (422 `invalid_user_id`).
pub fn parse_user_id(text: &str) -> Result<UserId, Invalid> {
    UserId::parse(text).ok_or_else(|| {
        Invalid::field(
            ErrorCode::InvalidUserId,
            "user_id",
            "invalid_user_id",
            "a user id is two capital letters, a dot, an optional `ENT.` and 1 to 128 letters or digits",
        )
    })
}

/// Exactly one of `number` and `user_id` (else 422 `invalid_request`).
pub fn exactly_one<'a>(
    number: Option<&'a str>,
    user_id: Option<&'a str>,
) -> Result<Result<&'a str, &'a str>, Invalid> {
    match (number, user_id) {
        (Some(n), None) => Ok(Ok(n)),
        (None, Some(u)) => Ok(Err(u)),
        (Some(_), Some(_)) => Err(Invalid::request_field(
            "user_id",
            "conflict",
            "name the person by `number` or by `user_id`, not both",
        )),
        (None, None) => Err(Invalid::request_field(
            "number",
            "required",
            "`number` or `user_id` is required",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_match_the_pattern_whole() {
        for good in [
            "BR.1502576394655843",
            "US.13491208655302741918",
            "BR.ENT.88012345678901234567",
            "DE.a",
            &format!("MX.{}", "Z".repeat(128)),
            "BR.ENT",
        ] {
            assert!(is_user_id(good), "{good}");
        }
        for bad in [
            "",
            "BR.",
            "BR.ENT.",
            "br.123",
            "B.123",
            "BRA.123",
            "BR-123",
            "BR.12 3",
            "BR.123\n",
            "BR.ENT.ENT.1",
            "+5511987654321",
            &format!("MX.{}", "Z".repeat(129)),
            "BR.éé",
        ] {
            assert!(!is_user_id(bad), "{bad:?}");
        }
    }
}
