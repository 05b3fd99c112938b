//! `GET`/`POST /forms/{tenant}/{form}` and `/forms/{tenant}/opt-out`: the
//! hosted pages (docs/pages.md). No login: a signed token in the page
//! (bound to the form version it shows, `token.rs`) and a SameSite=Strict
//! cookie (valid 2 h, `cookie.rs`), a honeypot field, a minimum fill time
//! and rate limits keep bots and other sites out: per address for every
//! page (`admission.rs`), and for an opt-in form per (tenant, number) and
//! per page too. The server captures the evidence itself (`evidence.rs`).
//! The handlers here parse, check, call `services/pages.rs` and answer
//! through `render.rs`.

mod admission;
mod cookie;
mod evidence;
mod fields;
pub mod html;
mod render;
mod token;
pub mod words;

use super::body::{declared_length, read_body};
use super::AppState;
use crate::domain::access::TenantId;
use crate::domain::form::OPT_OUT;
use crate::domain::number::E164;
use crate::domain::purpose::PurposeSet;
use crate::error::{ApiError, ErrorCode};
use crate::services::pages::{self, FormOptIn, FormOutcome, PageOptOut};
use crate::store::forms::StoredForm;
use crate::store::tenants::{active_brands, TenantRow};
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use admission::{admitted, Refusal};
use evidence::{form_evidence, opt_out_evidence};
use fields::{number_of, posted, Posted};
use html::{Notice, NumberField, OptOutPage};
use render::{again, form_changed, html, opt_in_render, page_lang, refused, served};
use serde::Deserialize;
use utoipa::IntoParams;
use words::{words, Words};

/// A post sooner than this after the page was served is a bot's.
pub const MIN_FILL_MILLIS: i64 = 3_000;
/// The largest post a page takes.
const POST_LIMIT: usize = 16 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// The opt-out page's language (`en`, `fr`, `es`, `pt`, `de`).
    pub lang: Option<String>,
}

/// The tenant and, for an opt-in page, its form; 404 when either is
/// unknown or its brand is retired.
async fn page_of(
    state: &AppState,
    path: web::Path<PagePath>,
) -> Result<(TenantRow, Option<StoredForm>), ApiError> {
    let missing = || ApiError::not_found("no such page");
    let PagePath { tenant, form } = path.into_inner();
    let Some(tenant) = TenantId::parse(&tenant) else {
        return Err(missing());
    };
    let found = state
        .db(move |conn| Ok(pages::find_page(conn, &tenant, &form)?))
        .await?;
    found.ok_or_else(missing)
}

/// A hosted page's path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PagePath {
    /// The tenant id
    tenant: String,
    /// A form id, or `opt-out`
    form: String,
}

/// The opt-out page's brands and words.
async fn opt_out_words(
    state: &AppState,
    tenant: &TenantId,
    lang: Option<&str>,
) -> Result<(Vec<String>, &'static Words), ApiError> {
    let id = tenant.to_owned();
    let brands = state
        .db(move |conn| Ok(active_brands(conn, &id)?))
        .await?
        .into_iter()
        .map(|b| b.name)
        .collect();
    Ok((brands, words(lang.unwrap_or("en"))))
}

/// Show a hosted opt-in or opt-out page
///
/// The HTML page of a form (its current version) or of the tenant's opt-out
/// page, with a signed token and its cookie; `?lang=` picks the opt-out
/// page's language.
#[utoipa::path(
    tag = "pages",
    params(
        PagePath,
        PageQuery,
    ),
    responses(
        (status = 200, description = "The page (HTML), with its cookie", content_type = "text/html", body = String),
        (status = "4XX", description = "Problem (404: no such tenant or form)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/forms/{tenant}/{form}")]
pub async fn show_page(
    state: web::Data<AppState>,
    path: web::Path<PagePath>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (row, form) = page_of(&state, path).await?;
    let tenant = row.id;
    let Some(form) = form else {
        let (brands, w) = opt_out_words(&state, &tenant, query.lang.as_deref()).await?;
        let render = |token: &str| {
            html::opt_out_page(&OptOutPage {
                words: w,
                tenant: &tenant,
                brands: &brands,
                token,
                number: NumberField {
                    number: "",
                    region: None,
                    error: None,
                },
                done: false,
            })
        };
        return Ok(served(&state, &tenant, (OPT_OUT, 0), render, &[]));
    };
    let region = form.definition.default_region.as_deref();
    let blank = NumberField {
        number: "",
        region,
        error: None,
    };
    let render = opt_in_render(&form, &tenant, blank, &[], None);
    Ok(served(
        &state,
        &tenant,
        (&form.id, form.version),
        render,
        &form.definition.embed_origins,
    ))
}

/// Submit a hosted page
///
/// Records the opt-in (or opt-out) a person gave on a hosted page, with the
/// page's evidence, and answers the thank-you page; a bad post answers the
/// page again with what is wrong.
#[utoipa::path(
    tag = "pages",
    params(
        PagePath,
        PageQuery,
    ),
    request_body(content = String, description = "The page's form fields: token, region, number, purpose (one per ticked box)", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Recorded (or, for a bot, nothing): the thank-you page, with the code to send back when the opt-in must be confirmed", content_type = "text/html", body = String),
        (status = 403, description = "No cookie, or an expired or foreign token: nothing recorded", content_type = "text/html", body = String),
        (status = 422, description = "The page again with what is wrong: nothing recorded. A post for a form version changed since its page was served gets the current page with a new token (`data-code=\"form_changed\"`)", content_type = "text/html", body = String),
        (status = 429, description = "Too many posts from this address (IPv6: its /64); on an opt-in form also for this number on this tenant, or for this page, counted only for posts with a valid token, after the fill time and with a number. The opt-out page is limited per address only", content_type = "text/html", body = String),
        (status = "4XX", description = "Problem (404: no such tenant or form)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/forms/{tenant}/{form}")]
pub async fn post_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<PagePath>,
    query: web::Query<PageQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (row, form) = page_of(&state, path).await?;
    let declared = declared_length(&req);
    let body = read_body(
        &state,
        payload,
        declared,
        POST_LIMIT,
        ErrorCode::MalformedBody,
    )
    .await?;
    let posted = posted(&body)?;
    match form {
        Some(form) => opt_in_post(&state, &req, row, form, posted).await,
        None => opt_out_post(&state, &req, &row.id, query.lang.as_deref(), posted).await,
    }
}

async fn opt_in_post(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    row: TenantRow,
    form: StoredForm,
    posted: Posted,
) -> Result<HttpResponse, ApiError> {
    let tenant = row.id.clone();
    let w = words(form.definition.page_language());
    let (shown, nonce) = match admitted(state, req, &tenant, &form.id, &posted.token) {
        Ok(admitted) => admitted,
        Err(refusal) => return Ok(refused(refusal, w)),
    };
    if shown.version != form.version {
        tracing::info!(tenant = %tenant, form = %form.id, shown = shown.version, current = form.version, "a post for a form version that has since changed: nothing recorded");
        return Ok(form_changed(state, &tenant, &form, &posted, &nonce));
    }
    if posted.honeypot {
        tracing::info!(tenant = %tenant, form = %form.id, "a post that filled the trap field: nothing recorded");
        let page = html::success_page(w, &page_lang(&form, w), &form.definition.brand, None);
        return Ok(html(StatusCode::OK, page, &form.definition.embed_origins));
    }
    if state.now().millis() - shown.issued < MIN_FILL_MILLIS {
        tracing::info!(tenant = %tenant, form = %form.id, "a post faster than a person: nothing recorded");
        let notice = Notice {
            code: "too_fast",
            text: w.too_fast,
        };
        return Ok(again(&form, &tenant, &posted, (None, Some(notice))));
    }
    let (number, ticked) = match opt_in_fields(&form, &posted, w) {
        Ok(fields) => fields,
        Err(wrong) => return Ok(again(&form, &tenant, &posted, wrong)),
    };
    // Only now, with the token, the fill time and the number passed, does
    // the post count against the page and the number on this tenant.
    let pages = &state.guards.pages;
    if !pages.form_post_allowed(&tenant, &form.id, number.as_str()) {
        return Ok(refused(Refusal::Limited, w));
    }
    let recording = FormOptIn {
        row,
        definition: form.definition.clone(),
        form_id: form.id.clone(),
        version: form.version,
        number,
        purposes: ticked,
        evidence: form_evidence(state, req, &form, &tenant),
    };
    let confirm = match record_form_opt_in(state, recording).await? {
        FormOutcome::Recorded(confirm) => confirm,
        FormOutcome::Changed(current) => {
            return Ok(form_changed(state, &tenant, &current, &posted, &nonce));
        }
    };
    let confirm = confirm.as_ref().map(|(code, link)| html::Confirm {
        code,
        link: link.as_deref(),
    });
    let page = html::success_page(w, &page_lang(&form, w), &form.definition.brand, confirm);
    Ok(html(StatusCode::OK, page, &form.definition.embed_origins))
}

/// What is wrong with a post's fields: the number field's error, or a
/// notice for the page.
type Wrong = (Option<&'static str>, Option<Notice<'static>>);

/// An opt-in post's number and the boxes ticked among the form's, or what
/// is wrong with them.
fn opt_in_fields(
    form: &StoredForm,
    posted: &Posted,
    w: &'static Words,
) -> Result<(E164, PurposeSet), Wrong> {
    let ticked: PurposeSet = posted
        .purposes
        .iter()
        .copied()
        .filter(|p| form.definition.purposes.contains(p))
        .collect();
    let Some(number) = number_of(posted, form.definition.default_region.as_deref()) else {
        return Err((Some(w.invalid_number), None));
    };
    if ticked.is_empty() {
        let notice = Notice {
            code: "no_purpose",
            text: w.no_purpose,
        };
        return Err((None, Some(notice)));
    }
    Ok((number, ticked))
}

/// Records a form's opt-in in the log's write (`services/pages.rs`); a
/// refusal (the form gone, its brand no longer one the tenant shows) is
/// the page's 404.
async fn record_form_opt_in(
    state: &web::Data<AppState>,
    opt_in: FormOptIn,
) -> Result<FormOutcome, ApiError> {
    let master = state.master.clone();
    let clock = state.clock.clone();
    let log = opt_in.row.id.clone();
    state
        .write(&log, move |conn| {
            match pages::record_form_opt_in(conn, &master, opt_in, clock.now()) {
                Ok(outcome) => Ok(outcome),
                Err(refused) if refused.is_refusal() => Err(ApiError::not_found("no such page")),
                Err(failed) => Err(failed.into()),
            }
        })
        .await
}

async fn opt_out_post(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    tenant: &TenantId,
    lang: Option<&str>,
    posted: Posted,
) -> Result<HttpResponse, ApiError> {
    let (brands, w) = opt_out_words(state, tenant, lang).await?;
    // The address's limit is the only one: no count another client could
    // fill (per number, per page) ever refuses an opt-out.
    let issued = match admitted(state, req, tenant, OPT_OUT, &posted.token) {
        Ok((shown, _)) => shown.issued,
        Err(refusal) => return Ok(refused(refusal, w)),
    };
    let page = |number: NumberField<'_>, done: bool| {
        html::opt_out_page(&OptOutPage {
            words: w,
            tenant,
            brands: &brands,
            token: &posted.token,
            number,
            done,
        })
    };
    let blank = || NumberField {
        number: "",
        region: None,
        error: None,
    };
    if posted.honeypot {
        tracing::info!(tenant = %tenant, "an opt-out post that filled the trap field: nothing recorded");
        return Ok(html(StatusCode::OK, page(blank(), true), &[]));
    }
    let too_fast = state.now().millis() - issued < MIN_FILL_MILLIS;
    let number = number_of(&posted, None).filter(|_| !too_fast);
    let Some(number) = number else {
        let field = NumberField {
            number: &posted.number,
            region: posted.region.as_deref(),
            error: Some(if too_fast {
                w.too_fast
            } else {
                w.invalid_number
            }),
        };
        let again = page(field, false);
        return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, again, &[]));
    };
    let evidence = opt_out_evidence(state, req);
    let master = state.master.clone();
    let clock = state.clock.clone();
    let id = tenant.to_owned();
    state
        .write(tenant, move |conn| {
            let opt_out = (number, evidence);
            match pages::record_page_opt_out(conn, &master, &id, opt_out, clock.now()) {
                Ok(PageOptOut::Recorded) => Ok(()),
                Ok(PageOptOut::NoActiveBrand) => Err(ApiError::not_found("no such page")),
                Err(failed) => Err(failed.into()),
            }
        })
        .await?;
    Ok(html(StatusCode::OK, page(blank(), true), &[]))
}
