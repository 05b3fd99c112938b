//! Recording (SPEC section 4): `POST /v1/opt-ins`, `/v1/opt-outs` (collector)
//! and `/v1/interactions` (collector or sender).

use super::auth::{Caller, Role};
use super::checks::window_of;
use super::idempotent;
use super::json::ApiJson;
use super::AppState;
use crate::domain::decision::Window;
use crate::domain::evidence::{self, EvidenceFor};
use crate::domain::number::E164;
use crate::domain::purpose::{
    CaptureChannel, MessageChannel, MessageChannelSet, Purpose, PurposeSet,
};
use crate::domain::text::{
    contains_whole_word, is_readable_text, is_well_formed_language_tag, nfc,
};
use crate::domain::time::Timestamp;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::store::append::{self, Answer, Appended, OptInRecord, OptOutRecord, Record};
use crate::store::connection::lock_log;
use crate::store::consent::record_inbound;
use crate::store::idempotency;
use crate::store::tenants::find_brand;
use crate::store::{Rejection, StoreError};
use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How far in the future a capture time may be (clock skew).
const FUTURE_SKEW_MILLIS: i64 = 60_000;
/// How old an opt-in may be without `backfill`.
const MAX_AGE_DAYS: i64 = 30;
/// How old an interaction may be.
const INTERACTION_MAX_AGE_MILLIS: i64 = 24 * 3600 * 1000;
/// Longest consent text, in characters.
const MAX_CONSENT_TEXT_CHARS: usize = 10_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptInRequest {
    /// E.164, or a national number with `region` (or the tenant's `default_region`).
    #[schema(example = "+4915112345678")]
    pub number: String,
    /// ISO 3166 alpha-2, any case.
    #[serde(default)]
    pub region: Option<String>,
    /// Where the person opted in: sms, web, whatsapp, ivr or paper.
    pub channel: CaptureChannel,
    /// Exactly (after NFC) an active brand of the tenant.
    #[schema(example = "Makro")]
    pub company_name_shown: String,
    /// The exact wording the person saw, heard or signed (1-10,000 characters); must name the brand.
    #[schema(example = "Yes, I want offers from Makro on WhatsApp. Reply STOP to end.")]
    pub consent_text: String,
    pub purposes: Vec<Purpose>,
    /// Default `["whatsapp"]`.
    #[serde(default)]
    pub message_channels: Option<Vec<MessageChannel>>,
    /// When the person acted.
    pub captured_at: Timestamp,
    /// BCP 47 tag of the consent text.
    #[serde(default)]
    pub language: Option<String>,
    /// Importing an older record (admin only).
    #[serde(default)]
    pub backfill: bool,
    /// A flat object of strings; keys per capture channel (SPEC section 4).
    #[schema(value_type = Object, example = json!({"page_url":"https://shop.example/newsletter","ip":"203.0.113.7","user_agent":"Mozilla/5.0"}))]
    pub evidence: serde_json::Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptOutRequest {
    #[schema(example = "+4915112345678")]
    pub number: String,
    #[serde(default)]
    pub region: Option<String>,
    /// A capture channel, or `api`.
    pub channel: CaptureChannel,
    /// Default: all three.
    #[serde(default)]
    pub purposes: Option<Vec<Purpose>>,
    /// Default: both.
    #[serde(default)]
    pub message_channels: Option<Vec<MessageChannel>>,
    pub captured_at: Timestamp,
    #[serde(default)]
    pub backfill: bool,
    #[schema(value_type = Object, example = json!({"reason":"asked the call centre"}))]
    pub evidence: serde_json::Value,
}

/// What a recorded entry answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recorded {
    pub seq: u64,
    pub leaf_hash: String,
    /// The subject commitment (a pseudonym of the number within this tenant).
    pub subject: String,
    pub recorded_at: Timestamp,
}

impl From<&Appended> for Recorded {
    fn from(a: &Appended) -> Self {
        Self {
            seq: a.seq,
            leaf_hash: a.leaf_hash.clone(),
            subject: a.subject.clone(),
            recorded_at: a.recorded_at,
        }
    }
}

/// Parses a number of a request body (422 `invalid_number`).
pub fn parse_number(caller: &Caller, number: &str, region: Option<&str>) -> Result<E164, ApiError> {
    E164::parse(number, region, caller.tenant.default_region.as_deref())
        .map_err(|e| ApiError::invalid_number("number", e))
}

fn check_not_future(field: &str, at: Timestamp, now: Timestamp) -> Result<(), ApiError> {
    if at > now.plus_millis(FUTURE_SKEW_MILLIS) {
        return Err(ApiError::new(
            ErrorCode::CapturedAtInFuture,
            format!("`{field}` is more than 60 seconds after the server's clock"),
        )
        .with_errors(vec![evidence::FieldError::new(field, "in_future")]));
    }
    Ok(())
}

fn check_backfill_role(caller: &Caller, backfill: bool) -> Result<(), ApiError> {
    if backfill && !caller.has(Role::Admin) {
        return Err(ApiError::forbidden(
            "`backfill: true` needs a key with the admin role",
        ));
    }
    Ok(())
}

fn purpose_set(field: &str, list: &[Purpose]) -> Result<PurposeSet, ApiError> {
    if list.is_empty() {
        return Err(ApiError::invalid_field(
            field,
            "empty",
            format!("`{field}` needs at least one purpose"),
        ));
    }
    Ok(list.iter().copied().collect())
}

fn channel_set(
    field: &str,
    list: Option<&[MessageChannel]>,
    default: MessageChannelSet,
) -> Result<MessageChannelSet, ApiError> {
    match list {
        None => Ok(default),
        Some([]) => Err(ApiError::invalid_field(
            field,
            "empty",
            format!("`{field}` needs at least one message channel"),
        )),
        Some(list) => Ok(list.iter().copied().collect()),
    }
}

fn check_evidence(
    kind: EvidenceFor,
    channel: CaptureChannel,
    raw: &serde_json::Value,
) -> Result<evidence::Evidence, ApiError> {
    evidence::validate(kind, channel, raw).map_err(|errors| {
        ApiError::new(
            ErrorCode::InvalidEvidence,
            format!("the evidence does not fit the `{channel}` row; see errors"),
        )
        .with_errors(errors)
    })
}

/// For paper, `captured_at` is when the form was signed: `signed_on` must
/// be its date (a day either way for time zones).
fn check_signed_on(evidence: &evidence::Evidence, captured_at: Timestamp) -> Result<(), ApiError> {
    let Some(signed_on) = evidence.get("signed_on") else {
        return Ok(());
    };
    let signed = chrono::NaiveDate::parse_from_str(signed_on, "%Y-%m-%d").ok();
    let apart = signed.map(|d| (d - captured_at.date()).num_days().abs());
    if apart.is_none_or(|days| days > 1) {
        return Err(ApiError::new(
            ErrorCode::InvalidEvidence,
            "`evidence.signed_on` must be the date of `captured_at` (when the form was signed)",
        )
        .with_errors(vec![evidence::FieldError::new(
            "evidence.signed_on",
            "not_captured_at_date",
        )]));
    }
    Ok(())
}

/// Refusals the appender decided under the log's lock.
fn append_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Rejected(Rejection::BrandRetired) => ApiError::new(ErrorCode::BrandRetired,
            "this brand is retired and takes no new opt-ins",
        )
        .with_errors(vec![evidence::FieldError::new("company_name_shown", "brand_retired")]),
        StoreError::Rejected(Rejection::CapturedInFuture) => ApiError::new(ErrorCode::CapturedAtInFuture,
            "`captured_at` is more than 60 seconds after the server's clock",
        )
        .with_errors(vec![evidence::FieldError::new("captured_at", "in_future")]),
        StoreError::Rejected(Rejection::IdempotencyLost) => ApiError::new(ErrorCode::IdempotencyInProgress,
            "a newer request with this Idempotency-Key took it over; nothing was recorded by this one",
        ),
        other => other.into(),
    }
}

fn created(appended: &Appended) -> String {
    serde_json::to_string(&Recorded::from(appended)).expect("serialisable")
}

#[utoipa::path(
    tag = "recording",
    request_body = OptInRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the first answer is replayed for 24 h")),
    responses(
        (status = 201, description = "Recorded in the ledger", body = Recorded),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/opt-ins")]
pub async fn create_opt_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    body: ApiJson<OptInRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Collector])?;
    let r = body.value;
    let number = parse_number(&caller, &r.number, r.region.as_deref())?;
    if !r.channel.can_capture_opt_in() {
        return Err(ApiError::invalid_field(
            "channel",
            "invalid_value",
            "an opt-in's channel is sms, web, whatsapp, ivr or paper",
        ));
    }
    let purposes = purpose_set("purposes", &r.purposes)?;
    let message_channels = channel_set(
        "message_channels",
        r.message_channels.as_deref(),
        [MessageChannel::Whatsapp].into_iter().collect(),
    )?;
    let text_chars = r.consent_text.chars().count();
    if text_chars == 0 || text_chars > MAX_CONSENT_TEXT_CHARS {
        return Err(ApiError::invalid_field(
            "consent_text",
            if text_chars == 0 { "empty" } else { "too_long" },
            "the consent text is 1 to 10,000 characters",
        ));
    }
    if !is_readable_text(&r.consent_text) {
        return Err(ApiError::invalid_field(
            "consent_text",
            "control_character",
            "the consent text holds no control characters but line breaks and tabs",
        ));
    }
    if let Some(tag) = &r.language {
        if !is_well_formed_language_tag(tag) {
            return Err(ApiError::invalid_field(
                "language",
                "invalid_language_tag",
                "`language` is a BCP 47 tag such as en or pt-BR",
            ));
        }
    }
    check_backfill_role(&caller, r.backfill)?;
    let evidence = check_evidence(EvidenceFor::OptIn, r.channel, &r.evidence)?;
    check_signed_on(&evidence, r.captured_at)?;
    if evidence.get("document_id").is_some() {
        return Err(ApiError::new(
            ErrorCode::UnknownDocument,
            "no document with this `document_id` was uploaded",
        )
        .with_errors(vec![evidence::FieldError::new(
            "evidence.document_id",
            "unknown_document",
        )]));
    }
    let shown = nfc(&r.company_name_shown);
    if !contains_whole_word(&r.consent_text, &shown) {
        return Err(ApiError::new(
            ErrorCode::CompanyNameNotInText,
            "the consent text must contain `company_name_shown` as a whole word",
        )
        .with_errors(vec![evidence::FieldError::new(
            "consent_text",
            "company_name_missing",
        )]));
    }
    let tenant = caller.tenant.id.clone();
    let collector = caller.key_id.clone();
    let consent_text = r.consent_text;
    let captured_at = r.captured_at;
    let language = r.language;
    let backfill = r.backfill;
    let channel = r.channel;
    let clock = state.clock.clone();
    idempotent::run(&state, &req, &caller, "opt-ins", &body.body_sha256, move |conn, scope| {
        // Clock rules run after the idempotency lookup: a retry replays.
        let now = clock.now();
        check_not_future("captured_at", captured_at, now)?;
        if !backfill && captured_at < now.plus_days(-MAX_AGE_DAYS) {
            return Err(ApiError::new(ErrorCode::CapturedAtTooOld,
                "`captured_at` is older than 30 days; import it with `backfill: true` and an admin key",
            )
            .with_errors(vec![evidence::FieldError::new("captured_at", "too_old")]));
        }
        let brand = find_brand(conn, &tenant, &shown)?
            .filter(|b| b.name == shown)
            .ok_or_else(|| {
                ApiError::new(ErrorCode::UnknownBrand,
                    "`company_name_shown` must be exactly (after NFC) a brand of this tenant",
                )
                .with_errors(vec![evidence::FieldError::new("company_name_shown", "unknown_brand")])
            })?;
        if brand.retired_at.is_some() {
            return Err(ApiError::new(ErrorCode::BrandRetired, "this brand is retired and takes no new opt-ins")
                .with_errors(vec![evidence::FieldError::new("company_name_shown", "brand_retired")]));
        }
        let record = Record::OptIn(OptInRecord {
            number,
            channel,
            brand_id: brand.id,
            company_name_shown: brand.name,
            consent_text,
            purposes,
            message_channels,
            captured_at,
            language,
            backfill,
            confirmation: None,
            evidence,
        });
        let answer = scope.map(|scope| Answer { scope, render: &created });
        let appended =
            append::append(conn, &tenant, &collector, &record, answer, now).map_err(append_error)?;
        tracing::info!(tenant = %tenant, seq = appended.seq, subject = %appended.subject, "opt-in recorded");
        Ok((201, created(&appended)))
    })
    .await
}

#[utoipa::path(
    tag = "recording",
    request_body = OptOutRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the first answer is replayed for 24 h")),
    responses(
        (status = 201, description = "Recorded in the ledger; counts from the next request", body = Recorded),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/opt-outs")]
pub async fn create_opt_out(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    body: ApiJson<OptOutRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Collector])?;
    let r = body.value;
    let number = parse_number(&caller, &r.number, r.region.as_deref())?;
    let purposes = match &r.purposes {
        Some(list) => purpose_set("purposes", list)?,
        None => PurposeSet::all(),
    };
    let message_channels = channel_set(
        "message_channels",
        r.message_channels.as_deref(),
        MessageChannelSet::all(),
    )?;
    check_backfill_role(&caller, r.backfill)?;
    let evidence = check_evidence(EvidenceFor::OptOut, r.channel, &r.evidence)?;
    check_signed_on(&evidence, r.captured_at)?;
    if evidence.get("document_id").is_some() {
        return Err(ApiError::new(
            ErrorCode::UnknownDocument,
            "no document with this `document_id` was uploaded",
        )
        .with_errors(vec![evidence::FieldError::new(
            "evidence.document_id",
            "unknown_document",
        )]));
    }
    let record = Record::OptOut(OptOutRecord {
        number,
        channel: r.channel,
        purposes,
        message_channels,
        captured_at: r.captured_at,
        backfill: r.backfill,
        evidence,
        lift_class: None,
    });
    let tenant = caller.tenant.id.clone();
    let collector = caller.key_id.clone();
    let captured_at = r.captured_at;
    let clock = state.clock.clone();
    idempotent::run(&state, &req, &caller, "opt-outs", &body.body_sha256, move |conn, scope| {
        let now = clock.now();
        check_not_future("captured_at", captured_at, now)?;
        let answer = scope.map(|scope| Answer { scope, render: &created });
        let appended =
            append::append(conn, &tenant, &collector, &record, answer, now).map_err(append_error)?;
        tracing::info!(tenant = %tenant, seq = appended.seq, subject = %appended.subject, "opt-out recorded");
        Ok((201, created(&appended)))
    })
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractionRequest {
    #[schema(example = "+4915112345678")]
    pub number: String,
    #[serde(default)]
    pub region: Option<String>,
    /// The business number the person wrote to; without it the window counts for every id.
    #[serde(default)]
    pub business_phone_number_id: Option<String>,
    /// When the person's message arrived (default now); at most 24 h old.
    #[serde(default)]
    pub received_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InteractionRecorded {
    pub number: String,
    pub window: Window,
}

/// What an interaction's idempotent answer keeps: the window, never the
/// number (a replay takes the number from its own, identical, request).
#[derive(Debug, Serialize, Deserialize)]
struct StoredInteraction {
    window: Window,
}

/// The answer to an interaction, from what was stored and the number asked.
fn interaction_answer(number: &E164, stored: &str) -> Option<String> {
    let stored: StoredInteraction = serde_json::from_str(stored).ok()?;
    serde_json::to_string(&InteractionRecorded {
        number: number.as_str().to_owned(),
        window: stored.window,
    })
    .ok()
}

/// SPEC section 4: an interaction's `received_at` is not after the
/// server's clock (no tolerance: omit it to mean now) and at most 24 hours
/// old (an older message opens no window any more).
fn check_received_at(received_at: Timestamp, now: Timestamp) -> Result<(), ApiError> {
    if received_at > now {
        return Err(ApiError::new(
            ErrorCode::ReceivedAtInFuture,
            "`received_at` is after the server's clock (no tolerance); omit it to mean now",
        )
        .with_errors(vec![evidence::FieldError::new("received_at", "in_future")]));
    }
    if received_at < now.plus_millis(-INTERACTION_MAX_AGE_MILLIS) {
        return Err(ApiError::new(
            ErrorCode::ReceivedAtTooOld,
            "`received_at` is more than 24 hours ago: that message opens no window any more",
        )
        .with_errors(vec![evidence::FieldError::new("received_at", "too_old")]));
    }
    Ok(())
}

/// A business phone number id: 1-64 visible ASCII characters.
pub fn check_phone_number_id(id: Option<&str>) -> Result<(), ApiError> {
    match id {
        Some(id)
            if id.is_empty()
                || id.len() > 64
                || !id.bytes().all(|b| (0x21..=0x7e).contains(&b)) =>
        {
            Err(ApiError::invalid_field(
                "business_phone_number_id",
                "invalid_value",
                "a business phone number id is 1 to 64 visible ASCII characters",
            ))
        }
        _ => Ok(()),
    }
}

#[utoipa::path(
    tag = "recording",
    request_body = InteractionRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the first answer is replayed for 24 h")),
    responses(
        (status = 200, description = "The customer-service window after this message", body = InteractionRecorded),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/interactions")]
pub async fn create_interaction(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    body: ApiJson<InteractionRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Collector, Role::Sender])?;
    let r = body.value;
    let number = parse_number(&caller, &r.number, r.region.as_deref())?;
    check_phone_number_id(r.business_phone_number_id.as_deref())?;
    let tenant = caller.tenant.id.clone();
    let id = r.business_phone_number_id;
    let given = r.received_at;
    let clock = state.clock.clone();
    let asked = number.clone();
    // A replay answers the stored window with the number of this request
    // (the same body, so the same number).
    let replay = move |stored: String| interaction_answer(&asked, &stored).unwrap_or(stored);
    idempotent::run_with_replay(
        &state,
        &req,
        &caller,
        "interactions",
        &body.body_sha256,
        replay,
        move |conn, scope| {
            let now = clock.now();
            let received_at = given.unwrap_or(now);
            check_received_at(received_at, now)?;
            conn.immediate_transaction(|conn| {
                // The log first, as webhooks do: the window row references
                // the tenant, and taking that share lock first could
                // deadlock with a webhook on PostgreSQL.
                lock_log(conn, &tenant)?;
                record_inbound(conn, &tenant, &number, id.as_deref(), received_at)?;
                let (window, _) = window_of(conn, &tenant, &number, id.as_deref(), now, &mut None)?;
                let stored =
                    serde_json::to_string(&StoredInteraction { window }).expect("serialisable");
                if let Some(scope) = scope {
                    if !idempotency::finish(conn, scope, 200, &stored, None, now.millis())? {
                        return Err(append_error(StoreError::Rejected(
                            Rejection::IdempotencyLost,
                        )));
                    }
                }
                let body = interaction_answer(&number, &stored).expect("it was just written");
                Ok((200, body))
            })
        },
    )
    .await
}
