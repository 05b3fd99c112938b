//! The pages as answers: the HTML of `html.rs` in the words of `words.rs`,
//! with the pages' headers, a fresh cookie and token when a page is
//! served, and the page again with what is wrong when a post is refused.

use super::admission::Refusal;
use super::cookie::set_cookie;
use super::fields::Posted;
use super::html::{self, Notice, NumberField, OptInPage, FORM_CHANGED};
use super::token::{token, Served};
use super::words::{words, Words};
use crate::api::AppState;
use crate::domain::purpose::Purpose;
use crate::store::forms::StoredForm;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

/// An HTML answer with the pages' headers: no caching, no referrer, and
/// frames only from the form's `embed_origins`.
pub(super) fn html(status: StatusCode, body: String, embed_origins: &[String]) -> HttpResponse {
    let ancestors = match embed_origins {
        [] => "'none'".to_owned(),
        origins => origins.join(" "),
    };
    let policy = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
    );
    let mut answer = HttpResponse::build(status);
    answer
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", policy))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"));
    if embed_origins.is_empty() {
        answer.insert_header(("X-Frame-Options", "DENY"));
    }
    answer.body(body)
}

/// A page with a fresh cookie and the token bound to it and to the
/// version of the page shown (0 for the opt-out page).
pub(super) fn served(
    state: &AppState,
    tenant: &str,
    (page, version): (&str, i64),
    render: impl FnOnce(&str) -> String,
    embed_origins: &[String],
) -> HttpResponse {
    let nonce = crate::keys::random_salt_hex();
    let served = Served {
        page,
        version,
        nonce: &nonce,
        issued: state.now().millis(),
    };
    let token = token(state, tenant, &served);
    let mut answer = html(StatusCode::OK, render(&token), embed_origins);
    set_cookie(&mut answer, state, tenant, &nonce);
    answer
}

/// The opt-in page of `form`, given its token.
pub(super) fn opt_in_render<'a>(
    form: &'a StoredForm,
    tenant: &'a str,
    number: NumberField<'a>,
    ticked: &'a [Purpose],
    error: Option<Notice<'a>>,
) -> impl Fn(&str) -> String + 'a {
    move |token: &str| {
        html::opt_in_page(&OptInPage {
            words: words(form.definition.page_language()),
            tenant,
            form_id: &form.id,
            form: &form.definition,
            token,
            number: NumberField {
                number: number.number,
                region: number.region,
                error: number.error,
            },
            ticked,
            error,
        })
    }
}

/// A refused post: the page again (422) with what is wrong, nothing recorded.
pub(super) fn again(
    form: &StoredForm,
    tenant: &str,
    posted: &Posted,
    (number_error, error): (Option<&str>, Option<Notice<'_>>),
) -> HttpResponse {
    let number = NumberField {
        number: &posted.number,
        region: posted.region.as_deref(),
        error: number_error,
    };
    let page = opt_in_render(form, tenant, number, &posted.purposes, error)(&posted.token);
    html(
        StatusCode::UNPROCESSABLE_ENTITY,
        page,
        &form.definition.embed_origins,
    )
}

/// A post for a version of the form that has since changed: nothing is
/// recorded and the current page is shown (422, `form_changed`), with a
/// token for it under the same cookie; the number typed stays, no box is
/// ticked (what they stand for may have changed).
pub(super) fn form_changed(
    state: &AppState,
    tenant: &str,
    form: &StoredForm,
    posted: &Posted,
    nonce: &str,
) -> HttpResponse {
    let w = words(form.definition.page_language());
    let served = Served {
        page: &form.id,
        version: form.version,
        nonce,
        issued: state.now().millis(),
    };
    let token = token(state, tenant, &served);
    let number = NumberField {
        number: &posted.number,
        region: posted.region.as_deref(),
        error: None,
    };
    let notice = Notice {
        code: FORM_CHANGED,
        text: w.form_changed,
    };
    let page = opt_in_render(form, tenant, number, &[], Some(notice))(&token);
    html(
        StatusCode::UNPROCESSABLE_ENTITY,
        page,
        &form.definition.embed_origins,
    )
}

/// A post refused before its fields are read: 403 or 429, as a page.
pub(super) fn refused(refusal: Refusal, w: &Words) -> HttpResponse {
    match refusal {
        Refusal::Expired => html(StatusCode::FORBIDDEN, html::message_page(w, w.expired), &[]),
        Refusal::Limited => html(
            StatusCode::TOO_MANY_REQUESTS,
            html::message_page(w, w.rate_limited),
            &[],
        ),
    }
}

/// The language tag of a form's pages: its own, or that of its words.
pub(super) fn page_lang(form: &StoredForm, w: &Words) -> String {
    form.definition
        .language
        .clone()
        .unwrap_or_else(|| w.lang.to_owned())
}
