//! Request and answer bodies that name a person: declared once, so that
//! every one (a recording, a check, a subject's report, an export) takes
//! and echoes the same fields the same way.

use super::identity::{exactly_one, parse_user_id, Identity};
use super::number::E164;
use super::problem::{ErrorCode, Invalid};

/// A request's number (422 `invalid_number` with the reason).
pub fn parse_number(
    number: &str,
    region: Option<&str>,
    default_region: Option<&str>,
) -> Result<E164, Invalid> {
    E164::parse(number, region, default_region)
        .map_err(|e| Invalid::field(ErrorCode::InvalidNumber, "number", e.code(), e.to_string()))
}

/// A request's identity: exactly one of `number` (with `region`, or the
/// tenant's `default_region`) and `user_id` (docs/identities.md).
pub fn parse_identity(
    number: Option<&str>,
    user_id: Option<&str>,
    region: Option<&str>,
    default_region: Option<&str>,
) -> Result<Identity, Invalid> {
    match exactly_one(number, user_id)? {
        Ok(number) => Ok(Identity::Number(parse_number(
            number,
            region,
            default_region,
        )?)),
        Err(_) if region.is_some() => Err(Invalid::request_field(
            "region",
            "invalid_value",
            "`region` applies to a national `number` only, not to a `user_id`",
        )),
        Err(user_id) => Ok(Identity::User(parse_user_id(user_id)?)),
    }
}

/// Declares a request body that names a person: `number` (national ones
/// in `region`, else in the tenant's `default_region`) or `user_id`, each
/// with its pattern from `domain/openapi.rs`, then the body's own fields.
/// `startup/openapi.rs::IdentityAlternatives` adds the `oneOf` of the two.
macro_rules! names_a_person {
    ($(#[$attr:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$attr])*
        pub struct $name {
            #[serde(default)]
            #[schema(schema_with = crate::domain::openapi::number)]
            pub number: Option<String>,
            #[serde(default)]
            #[schema(schema_with = crate::domain::openapi::user_id)]
            pub user_id: Option<String>,
            #[serde(default)]
            #[schema(schema_with = crate::domain::openapi::region)]
            pub region: Option<String>,
            $($fields)*
        }

        impl $name {
            /// The identity the body names, national numbers in
            /// `default_region` (422 when it names none, both, or an
            /// invalid one).
            pub fn identity(
                &self,
                default_region: Option<&str>,
            ) -> Result<crate::domain::identity::Identity, crate::domain::problem::Invalid> {
                crate::domain::person::parse_identity(
                    self.number.as_deref(),
                    self.user_id.as_deref(),
                    self.region.as_deref(),
                    default_region,
                )
            }
        }
    };
}

/// Declares an answer about a person: the identity asked, echoed as it
/// was named (`number` or `user_id`, the other absent), then the answer's
/// own fields.
macro_rules! echoes_a_person {
    ($(#[$attr:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$attr])*
        pub struct $name {
            /// The number asked (absent when asked by `user_id`).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub number: Option<String>,
            /// The user id asked (absent when asked by `number`).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub user_id: Option<String>,
            $($fields)*
        }
    };
}

pub(crate) use echoes_a_person;
pub(crate) use names_a_person;
