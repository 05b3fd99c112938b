//! The page cookie (`cl_form`): a random nonce, SameSite=Strict, valid
//! 2 h, that binds a post to the page served to that browser.

use crate::api::AppState;
use actix_web::{HttpRequest, HttpResponse};

/// The cookie that binds a post to the page served to that browser.
const COOKIE: &str = "cl_form";

/// The nonce of a request's page cookie, if it has one.
pub(super) fn cookie_of(req: &HttpRequest) -> Option<String> {
    let header = req.headers().get("cookie")?.to_str().ok()?;
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then(|| value.to_owned())
    })
}

/// Sets the page cookie with `nonce` on `answer`, for the tenant's pages
/// only, `Secure` when the service is public over HTTPS.
pub(super) fn set_cookie(answer: &mut HttpResponse, state: &AppState, tenant: &str, nonce: &str) {
    let secure = if state.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={nonce}; Path=/forms/{tenant}; Max-Age=7200; HttpOnly; SameSite=Strict{secure}"
    );
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&cookie) {
        answer
            .headers_mut()
            .insert(actix_web::http::header::SET_COOKIE, value);
    }
}
