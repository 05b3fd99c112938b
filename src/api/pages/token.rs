//! The page token: what a page's form carries back, signed with the
//! tenant's keyed hash (the page, the form version it showed, the
//! cookie's nonce and when it was served), valid for 2 h.

use crate::api::AppState;

/// How long a page's token stays valid.
const TOKEN_TTL_MILLIS: i64 = 2 * 3600 * 1000;

/// What a page's token says was served: the page, which version of it
/// (0 for the opt-out page), to which cookie, and when.
pub(super) struct Served<'a> {
    pub page: &'a str,
    pub version: i64,
    pub nonce: &'a str,
    pub issued: i64,
}

/// What a valid token says: when the page was served, and which version.
pub(super) struct Shown {
    pub issued: i64,
    pub version: i64,
}

/// The page's token: when it was served and which version it showed, and
/// the tenant's keyed hash of those, the page and the cookie's nonce.
pub(super) fn token(state: &AppState, tenant: &str, served: &Served<'_>) -> String {
    let (issued, version) = (served.issued.to_string(), served.version.to_string());
    let parts = ["form-token", served.page, &version, served.nonce, &issued];
    let mac = state.master.keyed_hash(tenant, &parts);
    format!("{issued}.{version}.{mac}")
}

/// When a post's token was issued and the version it showed, if it is
/// this page's, for this cookie, and not expired.
pub(super) fn token_shown(
    state: &AppState,
    tenant: &str,
    (page, nonce): (&str, &str),
    token_text: &str,
    now: i64,
) -> Option<Shown> {
    let mut parts = token_text.splitn(3, '.');
    let issued: i64 = parts.next()?.parse().ok()?;
    let version: i64 = parts.next()?.parse().ok()?;
    let served = Served {
        page,
        version,
        nonce,
        issued,
    };
    let expected = token(state, tenant, &served);
    let same = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), token_text.as_bytes());
    let fresh = issued <= now && now - issued <= TOKEN_TTL_MILLIS;
    (bool::from(same) && fresh).then_some(Shown { issued, version })
}
