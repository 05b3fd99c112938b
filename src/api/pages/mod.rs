//! `GET`/`POST /forms/{tenant}/{form}` and `/forms/{tenant}/opt-out`: the
//! hosted pages (SPEC section 9). No login: a signed token in the page
//! (bound to the form version it shows) and a SameSite=Strict cookie
//! (valid 2 h), a honeypot field, a minimum fill time and rate limits keep
//! bots and other sites out: per address for every page, and for an
//! opt-in form per (tenant, number) and per page too. The server captures
//! the evidence itself.

pub mod html;
pub mod words;

use super::body::{declared_length, read_body};
use super::limits::{client_addr, ClientAddr};
use super::AppState;
use crate::domain::evidence::Evidence;
use crate::domain::form::{FormDefinition, OPT_OUT};
use crate::domain::identity::Identity;
use crate::domain::number::E164;
use crate::domain::purpose::{CaptureChannel, MessageChannelSet, Purpose, PurposeSet};
use crate::domain::record::{OptOutRecord, Record};
use crate::domain::recording::OptInDraft;
use crate::domain::time::Timestamp;
use crate::error::{ApiError, ErrorCode};
use crate::ledger::hash::sha256_hex;
use crate::services::error::ServiceError;
use crate::services::recording::{record_opt_in, Door};
use crate::store::tenants::{active_brands, find_brand, find_tenant, TenantRow};
use crate::store::{append, forms, DbConn, Rejection, StoreError};
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use html::{Notice, NumberField, OptInPage, OptOutPage, FORM_CHANGED};
use serde::Deserialize;
use utoipa::IntoParams;
use words::{words, Words};

/// A post sooner than this after the page was served is a bot's.
pub const MIN_FILL_MILLIS: i64 = 3_000;
/// How long a page's token stays valid.
const TOKEN_TTL_MILLIS: i64 = 2 * 3600 * 1000;
/// The cookie that binds a post to the page served to that browser.
const COOKIE: &str = "cl_form";
/// The largest post a page takes.
const POST_LIMIT: usize = 16 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// The opt-out page's language (`en`, `fr`, `es`, `pt`, `de`).
    pub lang: Option<String>,
}

/// What a page's token says was served: the page, which version of it
/// (0 for the opt-out page), to which cookie, and when.
struct Served<'a> {
    page: &'a str,
    version: i64,
    nonce: &'a str,
    issued: i64,
}

/// The page's token: when it was served and which version it showed, and
/// the tenant's keyed hash of those, the page and the cookie's nonce.
fn token(state: &AppState, tenant: &str, served: &Served<'_>) -> String {
    let (issued, version) = (served.issued.to_string(), served.version.to_string());
    let parts = ["form-token", served.page, &version, served.nonce, &issued];
    let mac = state.master.keyed_hash(tenant, &parts);
    format!("{issued}.{version}.{mac}")
}

/// When a post's token was issued and the version it showed, if it is
/// this page's, for this cookie, and not expired.
fn token_shown(
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

fn cookie_of(req: &HttpRequest) -> Option<String> {
    let header = req.headers().get("cookie")?.to_str().ok()?;
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then(|| value.to_owned())
    })
}

/// An HTML answer with the pages' headers: no caching, no referrer, and
/// frames only from the form's `embed_origins`.
fn html(status: StatusCode, body: String, embed_origins: &[String]) -> HttpResponse {
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
fn served(
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
    answer
}

/// The tenant and, for an opt-in page, its form; 404 when either is
/// unknown or its brand is retired.
async fn page_of(
    state: &AppState,
    tenant: &str,
    form: &str,
) -> Result<(TenantRow, Option<forms::StoredForm>), ApiError> {
    let missing = || ApiError::not_found("no such page");
    if !crate::domain::access::is_tenant_id(tenant) {
        return Err(missing());
    }
    let (tenant, form) = (tenant.to_owned(), form.to_owned());
    let found = state
        .db(move |conn| {
            let Some(row) = find_tenant(conn, &tenant)? else {
                return Ok(None);
            };
            if form == OPT_OUT {
                return Ok(Some((row, None)));
            }
            let stored = forms::find(conn, &tenant, &form)?;
            let active = match &stored {
                Some(f) => find_brand(conn, &tenant, &f.definition.brand)?
                    .is_some_and(|b| b.retired_at.is_none()),
                None => false,
            };
            Ok(active.then_some((row, stored)))
        })
        .await?;
    found.ok_or_else(missing)
}

/// The opt-out page's brands and words.
async fn opt_out_words(
    state: &AppState,
    tenant: &str,
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

fn opt_in_render<'a>(
    form: &'a forms::StoredForm,
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

/// The page as every visitor is first shown it (no token, nothing typed):
/// what `rendered_html_sha256` commits to.
fn canonical_sha256(form: &forms::StoredForm, tenant: &str) -> String {
    let region = form.definition.default_region.as_deref();
    let blank = NumberField {
        number: "",
        region,
        error: None,
    };
    sha256_hex(opt_in_render(form, tenant, blank, &[], None)("").as_bytes())
}

#[utoipa::path(
    tag = "pages",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("form" = String, Path, description = "A form id, or `opt-out`"),
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
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, form_id) = path.into_inner();
    let (_, form) = page_of(&state, &tenant, &form_id).await?;
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

/// A post's fields.
#[derive(Debug, Default)]
struct Posted {
    token: String,
    number: String,
    region: Option<String>,
    purposes: Vec<Purpose>,
    honeypot: bool,
}

fn posted(body: &[u8]) -> Result<Posted, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| ApiError::new(ErrorCode::MalformedBody, "the body is not a valid form"))?;
    let mut out = Posted::default();
    for (name, value) in pairs {
        match name.as_str() {
            "token" => out.token = value,
            "number" => out.number = value.chars().take(64).collect(),
            "region" if !value.is_empty() => out.region = Some(value.chars().take(2).collect()),
            "purpose" => out
                .purposes
                .extend(Purpose::ALL.into_iter().find(|p| p.as_str() == value)),
            "website" => out.honeypot |= !value.trim().is_empty(),
            _ => {}
        }
    }
    Ok(out)
}

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

/// A refused post: the page again (422) with what is wrong, nothing recorded.
fn again(
    form: &forms::StoredForm,
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
fn form_changed(
    state: &AppState,
    tenant: &str,
    form: &forms::StoredForm,
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

/// Why a post records nothing before its fields are read.
enum Refusal {
    /// No cookie, or a token that is not this page's, or expired: 403.
    Expired,
    /// Over a rate limit: 429.
    Limited,
}

/// What a valid token says: when the page was served, and which version.
struct Shown {
    issued: i64,
    version: i64,
}

/// The checks every post passes first: its cookie and token, and its
/// address's limit (the only one that counts a post before its fields are
/// read). Returns what the token says was shown, and the cookie's nonce.
fn admitted(
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

fn refused(refusal: Refusal, w: &Words) -> HttpResponse {
    match refusal {
        Refusal::Expired => html(StatusCode::FORBIDDEN, html::message_page(w, w.expired), &[]),
        Refusal::Limited => html(
            StatusCode::TOO_MANY_REQUESTS,
            html::message_page(w, w.rate_limited),
            &[],
        ),
    }
}

/// The number of a post, in the chosen country (or the form's).
fn number_of(posted: &Posted, fallback: Option<&str>) -> Option<E164> {
    let region = posted.region.as_deref().or(fallback);
    E164::parse(posted.number.trim(), region, None).ok()
}

#[utoipa::path(
    tag = "pages",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("form" = String, Path, description = "A form id, or `opt-out`"),
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
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (tenant, form_id) = path.into_inner();
    let (row, form) = page_of(&state, &tenant, &form_id).await?;
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
        None => opt_out_post(&state, &req, &tenant, query.lang.as_deref(), posted).await,
    }
}

async fn opt_in_post(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    row: TenantRow,
    form: forms::StoredForm,
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
    let ticked: PurposeSet = posted
        .purposes
        .iter()
        .copied()
        .filter(|p| form.definition.purposes.contains(p))
        .collect();
    let Some(number) = number_of(&posted, form.definition.default_region.as_deref()) else {
        return Ok(again(
            &form,
            &tenant,
            &posted,
            (Some(w.invalid_number), None),
        ));
    };
    if ticked.is_empty() {
        let notice = Notice {
            code: "no_purpose",
            text: w.no_purpose,
        };
        return Ok(again(&form, &tenant, &posted, (None, Some(notice))));
    }
    // Only now, with the token, the fill time and the number passed, does
    // the post count against the page and the number on this tenant.
    let pages = &state.guards.pages;
    if !pages.form_post_allowed(&tenant, &form.id, number.as_str()) {
        return Ok(refused(Refusal::Limited, w));
    }
    let mut evidence = browser_evidence(state, req);
    evidence.push(("form_id", form.id.clone()));
    evidence.push(("form_version", form.version.to_string()));
    evidence.push(("rendered_html_sha256", canonical_sha256(&form, &tenant)));
    let pairs: Vec<(&str, &str)> = evidence.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let recording = FormOptIn {
        row,
        definition: form.definition.clone(),
        form_id: form.id.clone(),
        version: form.version,
        number,
        purposes: ticked,
        evidence: Evidence::from_list(&pairs),
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

/// The language tag of a form's pages: its own, or that of its words.
fn page_lang(form: &forms::StoredForm, w: &Words) -> String {
    form.definition
        .language
        .clone()
        .unwrap_or_else(|| w.lang.to_owned())
}

/// An opt-in given on a form, ready to record.
struct FormOptIn {
    row: TenantRow,
    definition: FormDefinition,
    form_id: String,
    /// The version shown, which `definition` is.
    version: i64,
    number: E164,
    purposes: PurposeSet,
    evidence: Evidence,
}

/// What became of a form's opt-in.
enum FormOutcome {
    /// Recorded; with the code and click-to-chat link when it must be
    /// confirmed.
    Recorded(Option<(String, Option<String>)>),
    /// The form changed after the post was checked: nothing recorded; the
    /// form as it now stands.
    Changed(forms::StoredForm),
}

/// Records a form's opt-in (collector `form:<id>`, channel `web`, captured
/// now), with a code when the tenant requires confirmation for `web`,
/// unless the form has meanwhile changed from the version shown.
async fn record_form_opt_in(
    state: &web::Data<AppState>,
    opt_in: FormOptIn,
) -> Result<FormOutcome, ApiError> {
    let master = state.master.clone();
    let clock = state.clock.clone();
    let log = opt_in.row.id.clone();
    state
        .write(&log, move |conn| {
            let now = clock.now();
            let tenant = opt_in.row.id.clone();
            let current = forms::find(conn, &tenant, &opt_in.form_id)?
                .ok_or_else(|| ApiError::not_found("no such page"))?;
            if current.version != opt_in.version {
                return Ok(FormOutcome::Changed(current));
            }
            let definition = &opt_in.definition;
            let draft = OptInDraft {
                identity: Identity::Number(opt_in.number),
                channel: CaptureChannel::Web,
                company_name_shown: definition.brand.clone(),
                consent_text: definition.consent_text.clone(),
                purposes: opt_in.purposes,
                message_channels: definition.message_channels.iter().copied().collect(),
                captured_at: now,
                language: definition.language.clone(),
                backfill: false,
                evidence: opt_in.evidence,
            };
            let door = Door::Page {
                form_id: &opt_in.form_id,
            };
            match record_opt_in(conn, &master, &opt_in.row, (draft, door), None, now) {
                Ok(recorded) => Ok(FormOutcome::Recorded(
                    recorded.confirmation.map(|c| (c.code, c.whatsapp_link)),
                )),
                // An erased number's opt-in captured before the erasure: the
                // page answers the same (it never tells whether a number
                // is known).
                Err(ServiceError::Store(StoreError::Rejected(Rejection::Suppressed))) => {
                    Ok(FormOutcome::Recorded(None))
                }
                // The form's brand is no longer one the tenant shows.
                Err(refused) if refused.is_refusal() => Err(ApiError::not_found("no such page")),
                Err(failed) => Err(failed.into()),
            }
        })
        .await
}

/// Appends what a page records; an erased number without a newer subject
/// records nothing and the page answers the same (it never tells whether
/// a number is known).
fn append_quietly(
    conn: &mut DbConn,
    master: &crate::keys::MasterKey,
    tenant: &str,
    collector: &str,
    record: &Record,
    now: Timestamp,
) -> Result<(), ApiError> {
    match append::append(conn, master, tenant, collector, record, None, now) {
        Ok(appended) => {
            tracing::info!(tenant = %tenant, seq = appended.seq, subject = %appended.subject, collector = %collector, "recorded from a page");
            Ok(())
        }
        Err(StoreError::Rejected(Rejection::Suppressed | Rejection::SuppressedNothingToRecord)) => {
            Ok(())
        }
        Err(StoreError::Rejected(Rejection::BrandRetired)) => {
            Err(ApiError::not_found("no such page"))
        }
        Err(other) => Err(other.into()),
    }
}

async fn opt_out_post(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    tenant: &str,
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
    let mut evidence = browser_evidence(state, req);
    evidence.push(("reason", "opt-out page".to_owned()));
    let pairs: Vec<(&str, &str)> = evidence.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let evidence = Evidence::from_list(&pairs);
    let master = state.master.clone();
    let clock = state.clock.clone();
    let id = tenant.to_owned();
    state
        .write(tenant, move |conn| {
            let now = clock.now();
            let record = Record::OptOut(OptOutRecord {
                identity: Identity::Number(number),
                channel: CaptureChannel::Web,
                purposes: PurposeSet::all(),
                message_channels: MessageChannelSet::all(),
                captured_at: now,
                backfill: false,
                evidence,
                lift_class: None,
            });
            append_quietly(conn, &master, &id, "form:opt-out", &record, now)
        })
        .await?;
    Ok(html(StatusCode::OK, page(blank(), true), &[]))
}
