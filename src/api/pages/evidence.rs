//! What a page's submission holds as evidence, captured by the server
//! itself: the page's URL, the address and the user agent, and for a form
//! its id, its version and the hash of its canonical render.

use super::html::NumberField;
use super::render::opt_in_render;
use crate::api::limits::{client_addr, ClientAddr};
use crate::api::AppState;
use crate::domain::evidence::Evidence;
use crate::ledger::hash::sha256_hex;
use crate::store::forms::StoredForm;
use actix_web::HttpRequest;

/// What the server captures of the person's browser.
fn browser_evidence(state: &AppState, req: &HttpRequest) -> Vec<(&'static str, String)> {
    let ip = client_addr(req).map_or_else(String::new, |ClientAddr(ip)| ip.to_string());
    let agent: String = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .chars()
        .filter(|c| !c.is_control())
        .take(512)
        .collect();
    let page_url = format!("{}{}", state.settings.public_url, req.path());
    vec![("page_url", page_url), ("ip", ip), ("user_agent", agent)]
}

/// The page as every visitor is first shown it (no token, nothing typed):
/// what `rendered_html_sha256` commits to.
fn canonical_sha256(form: &StoredForm, tenant: &str) -> String {
    let region = form.definition.default_region.as_deref();
    let blank = NumberField {
        number: "",
        region,
        error: None,
    };
    sha256_hex(opt_in_render(form, tenant, blank, &[], None)("").as_bytes())
}

/// An opt-in form's evidence: the browser's, the form's id and version,
/// and the hash of its canonical render.
pub(super) fn form_evidence(
    state: &AppState,
    req: &HttpRequest,
    form: &StoredForm,
    tenant: &str,
) -> Evidence {
    let mut evidence = browser_evidence(state, req);
    evidence.push(("form_id", form.id.clone()));
    evidence.push(("form_version", form.version.to_string()));
    evidence.push(("rendered_html_sha256", canonical_sha256(form, tenant)));
    let pairs: Vec<(&str, &str)> = evidence.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Evidence::from_list(&pairs)
}

/// The opt-out page's evidence: the browser's, and the reason.
pub(super) fn opt_out_evidence(state: &AppState, req: &HttpRequest) -> Evidence {
    let mut evidence = browser_evidence(state, req);
    evidence.push(("reason", "opt-out page".to_owned()));
    let pairs: Vec<(&str, &str)> = evidence.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Evidence::from_list(&pairs)
}
