//! Who may do what (docs/decisions.md): the roles of API keys, and the rules
//! for the names an admin gives (tenant ids, brand names).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Roles of API keys. `admin` implies all the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Collector,
    Sender,
    Auditor,
    /// Reads the change feed (`GET /v1/changes`), nothing else.
    Subscriber,
}

/// Every role, in the canonical order of a key's `roles`.
const ALL_ROLES: [Role; 5] = [
    Role::Admin,
    Role::Collector,
    Role::Sender,
    Role::Auditor,
    Role::Subscriber,
];

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Collector => "collector",
            Role::Sender => "sender",
            Role::Auditor => "auditor",
            Role::Subscriber => "subscriber",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        ALL_ROLES.into_iter().find(|r| r.as_str() == text)
    }
}

/// The roles of a new key, in their canonical order without repeats;
/// `None` when there is none.
pub fn normalised_roles(roles: &[Role]) -> Option<Vec<String>> {
    let ordered: Vec<String> = ALL_ROLES
        .into_iter()
        .filter(|r| roles.contains(r))
        .map(|r| r.as_str().to_owned())
        .collect();
    (!ordered.is_empty()).then_some(ordered)
}

/// What a tenant id is, for error messages.
pub const TENANT_ID_RULE: &str =
    "a tenant id is 1 to 64 lowercase letters, digits and inner hyphens";

/// A tenant id (docs/ledger-format.md): `^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$`.
pub fn is_tenant_id(id: &str) -> bool {
    let b = id.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 64
        && inner(&b[0])
        && inner(&b[b.len() - 1])
        && b.iter().all(|c| inner(c) || *c == b'-')
}

/// A tenant id as it was checked or stored: the one type every store and
/// service signature takes for "which tenant". Built by [`TenantId::parse`]
/// from outside input, or [`TenantId::stored`] from what the database holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// An id from outside input, if it follows [`TENANT_ID_RULE`].
    pub fn parse(text: &str) -> Option<Self> {
        is_tenant_id(text).then(|| Self(text.to_owned()))
    }

    /// An id read back from the database (it was checked when written).
    pub fn stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<String> for TenantId {
    /// What the database holds (rows read back through diesel).
    fn from(text: String) -> Self {
        Self::stored(text)
    }
}

impl std::ops::Deref for TenantId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for TenantId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for TenantId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for TenantId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// What a brand name is, for error messages.
pub const BRAND_NAME_RULE: &str =
    "a brand name is 1 to 100 characters, without control characters or surrounding spaces";

/// Checks a brand name (1-100 characters after NFC, no control characters,
/// no surrounding whitespace); `Err` is the field code of what is wrong.
pub fn check_brand_name(name: &str) -> Result<(), &'static str> {
    let nfc = super::text::nfc(name);
    let count = nfc.chars().count();
    if count == 0 {
        Err("empty")
    } else if count > 100 {
        Err("too_long")
    } else if nfc.chars().any(char::is_control) || nfc.trim() != nfc {
        Err("invalid_characters")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_and_brand_names() {
        for good in ["a", "0", "makro", "makro-de", "a1-b2", &"x".repeat(64)] {
            assert!(is_tenant_id(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Makro",
            "a_b",
            "a.b",
            "a b",
            "ä",
            &"x".repeat(65),
        ] {
            assert!(!is_tenant_id(bad), "{bad}");
        }
        assert_eq!(check_brand_name("Makro Cash & Carry"), Ok(()));
        assert_eq!(check_brand_name(""), Err("empty"));
        assert_eq!(check_brand_name(" Makro"), Err("invalid_characters"));
        assert_eq!(check_brand_name("Ma\u{0}kro"), Err("invalid_characters"));
        assert_eq!(check_brand_name(&"é".repeat(101)), Err("too_long"));
    }

    #[test]
    fn roles_are_ordered_once() {
        assert_eq!(
            normalised_roles(&[Role::Sender, Role::Admin, Role::Sender]),
            Some(vec!["admin".to_owned(), "sender".to_owned()])
        );
        assert_eq!(normalised_roles(&[]), None);
    }
}
