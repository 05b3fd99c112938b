//! The checks every post passes before its fields are read: its cookie,
//! its token, and its address's limit.

use super::cookie::cookie_of;
use super::token::{token_shown, Shown};
use crate::api::limits::{client_addr, ClientAddr};
use crate::api::AppState;
use actix_web::HttpRequest;

/// Why a post records nothing before its fields are read.
pub(super) enum Refusal {
    /// No cookie, or a token that is not this page's, or expired: 403.
    Expired,
    /// Over a rate limit: 429.
    Limited,
}

/// The checks every post passes first: its cookie and token, and its
/// address's limit (the only one that counts a post before its fields are
/// read). Returns what the token says was shown, and the cookie's nonce.
pub(super) fn admitted(
    state: &AppState,
    req: &HttpRequest,
    tenant: &str,
    page: &str,
    token_text: &str,
) -> Result<(Shown, String), Refusal> {
    let now = state.now().millis();
    let nonce = cookie_of(req).ok_or(Refusal::Expired)?;
    let shown =
        token_shown(state, tenant, (page, &nonce), token_text, now).ok_or(Refusal::Expired)?;
    if let Some(ClientAddr(ip)) = client_addr(req) {
        if !state.guards.pages.address_allowed(ip) {
            return Err(Refusal::Limited);
        }
    }
    Ok((shown, nonce))
}
