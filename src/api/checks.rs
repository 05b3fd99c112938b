//! `POST /v1/checks` and `/v1/checks/batch` (sender): the decision of SPEC
//! section 2, read from committed state with no cache.

use super::auth::{self, Caller};
use super::json::{self, ApiJson, BATCH_LIMIT};
use super::AppState;
use crate::domain::decision::{self, ConsentEvent, EventKind, Question, Reason, Window};
use crate::domain::ids::BrandId;
use crate::domain::number::E164;
use crate::domain::purpose::{CaptureChannel, MessageChannel, Purpose};
use crate::domain::recording::check_phone_number_id;
use crate::domain::time::Timestamp;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::keys::MasterKey;
use crate::store::consent::{many_numbers, subject_events, window_from, window_of, ManyNumbers};
use crate::store::suppression::{suppressed_many, suppression_of};
use crate::store::tenants::{active_brands, find_brand, BrandRow};
use crate::store::DbConn;
use actix_web::middleware::from_fn;
use actix_web::{post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;

/// Most checks in one batch.
pub const MAX_BATCH_ITEMS: usize = 10_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    #[schema(example = "+4915112345678")]
    pub number: String,
    #[serde(default)]
    pub region: Option<String>,
    pub purpose: Purpose,
    /// Matched after NFC and case folding against all brands; may be omitted
    /// while the tenant has exactly one active brand.
    #[serde(default)]
    #[schema(example = "Makro")]
    pub brand: Option<String>,
    /// The messaging channel (default whatsapp).
    #[serde(default)]
    pub channel: MessageChannel,
    #[serde(default)]
    pub business_phone_number_id: Option<String>,
}

/// The event a decision rests on.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentRef {
    /// `opt_in` or `opt_out`.
    #[serde(rename = "type")]
    #[schema(example = "opt_in")]
    pub kind: &'static str,
    pub seq: u64,
    /// The capture channel.
    pub channel: CaptureChannel,
    /// The brand an opt-in was given to; null for opt-outs.
    pub company_name_shown: Option<String>,
    pub captured_at: Timestamp,
}

/// The answer to "may we send this, now?" (SPEC section 2, exact fields).
#[derive(Debug, Serialize, ToSchema)]
pub struct Decision {
    pub number: String,
    pub purpose: Purpose,
    pub brand: String,
    pub channel: MessageChannel,
    /// A business-initiated message (a template) may be sent now.
    pub allowed: bool,
    pub reason: Reason,
    /// The window is closed: any message needs a template.
    pub template_required: bool,
    /// The window of that business number is open and the person has not opted out.
    pub session_reply_allowed: bool,
    pub window: Window,
    pub consent: Option<ConsentRef>,
}

impl From<&ConsentEvent> for ConsentRef {
    fn from(e: &ConsentEvent) -> Self {
        Self {
            kind: match e.kind {
                EventKind::OptIn => "opt_in",
                EventKind::OptOut => "opt_out",
            },
            seq: e.seq,
            channel: e.channel,
            company_name_shown: e.company_name_shown.clone(),
            captured_at: e.captured_at,
        }
    }
}

/// What one request (a check, or a whole batch) reads once.
#[derive(Default)]
struct Cache {
    brands: HashMap<Option<String>, BrandRow>,
    phone_number_ids: Option<Vec<String>>,
    /// A batch's numbers, read together before its items are decided.
    many: Option<Prefetched>,
}

/// The consent state of a batch's numbers, read in a few queries.
struct Prefetched {
    state: ManyNumbers,
    /// Number → its latest erasure on request.
    suppressed: HashMap<String, Timestamp>,
}

impl Prefetched {
    /// Whether the tenant holds any state of this number.
    fn knows(&self, number: &str) -> bool {
        self.state.events.contains_key(number)
            || self.state.inbound.contains_key(number)
            || self.suppressed.contains_key(number)
    }

    fn read(
        conn: &mut DbConn,
        master: &MasterKey,
        tenant: &str,
        numbers: &[&str],
    ) -> Result<Self, ApiError> {
        let state = many_numbers(conn, tenant, numbers)?;
        let hashes: Vec<String> = numbers
            .iter()
            .map(|n| master.identity_hash(tenant, n))
            .collect();
        let found = suppressed_many(conn, tenant, &hashes)?;
        let suppressed = numbers
            .iter()
            .zip(&hashes)
            .filter_map(|(n, h)| {
                found
                    .get(h)
                    .map(|&at| ((*n).to_owned(), Timestamp::from_millis(at)))
            })
            .collect();
        Ok(Self { state, suppressed })
    }
}

/// Resolves the brand of a check (any status), or the only active brand.
fn resolve_brand(
    conn: &mut DbConn,
    tenant: &str,
    name: Option<&str>,
    cache: &mut HashMap<Option<String>, BrandRow>,
) -> Result<BrandRow, ApiError> {
    let key = name.map(crate::domain::text::fold_key);
    if let Some(found) = cache.get(&key) {
        return Ok(found.clone());
    }
    let brand = match name {
        Some(name) => find_brand(conn, tenant, name)?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownBrand,
                "`brand` is not a brand of this tenant",
            )
            .with_errors(vec![crate::domain::evidence::FieldError::new(
                "brand",
                "unknown_brand",
            )])
        })?,
        None => {
            let mut active = active_brands(conn, tenant)?;
            if active.len() != 1 {
                return Err(ApiError::new(
                    ErrorCode::BrandRequired,
                    "the tenant has more than one active brand (or none): name the `brand`",
                )
                .with_errors(vec![crate::domain::evidence::FieldError::new(
                    "brand", "required",
                )]));
            }
            active.remove(0)
        }
    };
    cache.insert(key, brand.clone());
    Ok(brand)
}

/// Evaluates one check against committed state.
fn evaluate(
    conn: &mut DbConn,
    master: &MasterKey,
    caller: &Caller,
    request: &CheckRequest,
    now: Timestamp,
    cache: &mut Cache,
) -> Result<Decision, ApiError> {
    let number = caller.parse_number(&request.number, request.region.as_deref())?;
    evaluate_number(conn, master, caller, request, &number, now, cache)
}

/// [`evaluate`] of a parsed number: from the batch's prefetched state when
/// there is one, else with its own reads.
fn evaluate_number(
    conn: &mut DbConn,
    master: &MasterKey,
    caller: &Caller,
    request: &CheckRequest,
    number: &E164,
    now: Timestamp,
    cache: &mut Cache,
) -> Result<Decision, ApiError> {
    check_phone_number_id(request.business_phone_number_id.as_deref())?;
    let tenant = &caller.tenant;
    let brand = resolve_brand(
        conn,
        &tenant.id,
        request.brand.as_deref(),
        &mut cache.brands,
    )?;
    let read;
    let (events, suppressed_at): (&[ConsentEvent], Option<Timestamp>) = match &cache.many {
        Some(many) => (
            many.state
                .events
                .get(number.as_str())
                .map_or(&[], Vec::as_slice),
            many.suppressed.get(number.as_str()).copied(),
        ),
        None => {
            read = subject_events(conn, &tenant.id, number)?;
            (&read, suppression_of(conn, master, &tenant.id, number)?)
        }
    };
    let question = Question {
        purpose: request.purpose,
        brand_id: BrandId(brand.id),
        channel: request.channel,
    };
    let outcome = decision::decide(
        events,
        question,
        tenant.max_consent_age_days,
        suppressed_at,
        now,
    );
    let (window, certain) = match request.channel {
        MessageChannel::Sms => (Window::closed(None), false),
        MessageChannel::Whatsapp => window_of_check(
            conn,
            &tenant.id,
            request,
            number,
            now,
            cache.many.as_ref(),
            &mut cache.phone_number_ids,
        )?,
    };
    let whatsapp = request.channel == MessageChannel::Whatsapp;
    crate::metrics::decision(outcome.reason.as_str());
    Ok(Decision {
        number: number.as_str().to_owned(),
        purpose: request.purpose,
        brand: brand.name,
        channel: request.channel,
        allowed: outcome.reason == Reason::Allowed,
        reason: outcome.reason,
        template_required: whatsapp && !window.open,
        session_reply_allowed: whatsapp
            && window.open
            && certain
            && outcome.reason != Reason::OptedOut,
        window,
        consent: outcome.consent.map(ConsentRef::from),
    })
}

/// The WhatsApp window of a check's number: from the batch's prefetched
/// records when there are some, else read.
fn window_of_check(
    conn: &mut DbConn,
    tenant: &str,
    request: &CheckRequest,
    number: &E164,
    now: Timestamp,
    many: Option<&Prefetched>,
    configured: &mut Option<Vec<String>>,
) -> Result<(Window, bool), ApiError> {
    let named = request.business_phone_number_id.as_deref();
    Ok(match many {
        Some(many) => {
            let records = many.state.inbound.get(number.as_str());
            let records = records.map_or(&[][..], Vec::as_slice);
            window_from(conn, tenant, records, named, now, configured)?
        }
        None => window_of(conn, tenant, number, named, now, configured)?,
    })
}

#[utoipa::path(
    tag = "checks",
    request_body = CheckRequest,
    responses(
        (status = 200, description = "The decision, allowed or not", body = Decision),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/checks", wrap = "from_fn(auth::sender)")]
pub async fn check(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CheckRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.value;
    let now = state.now();
    let master = state.master.clone();
    let decision = state
        .db(move |conn| evaluate(conn, &master, &caller, &request, now, &mut Cache::default()))
        .await?;
    Ok(HttpResponse::Ok().json(decision))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Up to 10,000 checks.
    #[schema(value_type = Vec<CheckRequest>)]
    pub checks: Vec<serde_json::Value>,
}

/// An item that could not be decided.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItemError {
    /// The `number` exactly as it was sent: a string, or whatever JSON
    /// value (null when it was missing).
    pub number: serde_json::Value,
    pub error: ItemError,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemError {
    pub code: String,
    /// For `invalid_number`: not_a_number, missing_region, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    Decision(Decision),
    Error(BatchItemError),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// One per check, in order.
    pub decisions: Vec<BatchItem>,
}

fn item_error(number: serde_json::Value, error: ApiError) -> BatchItem {
    let reason = (error.code == ErrorCode::InvalidNumber)
        .then(|| error.errors.first().map(|e| e.code.to_owned()))
        .flatten();
    let field = error.errors.first().map(|e| e.field.clone());
    let detail = match field {
        Some(field) if error.code == ErrorCode::InvalidRequest => {
            format!("{} ({field})", error.detail)
        }
        _ => error.detail.clone(),
    };
    BatchItem::Error(BatchItemError {
        number,
        error: ItemError {
            code: error.code.as_str().to_owned(),
            reason,
            detail,
        },
    })
}

/// A batch item as sent (its `number` echoed in an error), read and its
/// number parsed, or why not.
type ParsedItem = (
    serde_json::Value,
    Result<(CheckRequest, ItemNumber), ApiError>,
);

/// A batch item's number: validated with the numbering plan, or only shaped
/// like a canonical E.164 number (no `region`), to be validated unless the
/// tenant already holds state for it (which it stored only for valid
/// numbers, in exactly this form).
enum ItemNumber {
    Validated(E164),
    Shaped(E164),
}

impl ItemNumber {
    fn e164(&self) -> &E164 {
        match self {
            ItemNumber::Validated(n) | ItemNumber::Shaped(n) => n,
        }
    }
}

fn parse_items(caller: &Caller, items: Vec<serde_json::Value>) -> Vec<ParsedItem> {
    items
        .into_iter()
        .map(|item| {
            let echo = item
                .get("number")
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            let request = json::from_value::<CheckRequest>(item).and_then(|request| {
                let shaped = request
                    .region
                    .is_none()
                    .then(|| E164::from_canonical(&request.number))
                    .flatten();
                let number = match shaped {
                    Some(number) => ItemNumber::Shaped(number),
                    None => ItemNumber::Validated(
                        caller.parse_number(&request.number, request.region.as_deref())?,
                    ),
                };
                Ok((request, number))
            });
            (echo, request)
        })
        .collect()
}

/// The item's number, validated now unless the batch's state shows the
/// tenant already holds it (then it was valid when stored).
fn confirm_number(
    caller: &Caller,
    request: &CheckRequest,
    number: ItemNumber,
    many: Option<&Prefetched>,
) -> Result<E164, ApiError> {
    match number {
        ItemNumber::Validated(n) => Ok(n),
        ItemNumber::Shaped(n) if many.is_some_and(|m| m.knows(n.as_str())) => Ok(n),
        ItemNumber::Shaped(_) => caller.parse_number(&request.number, None),
    }
}

#[utoipa::path(
    tag = "checks",
    request_body = BatchRequest,
    responses(
        (status = 200, description = "One decision or error per check, in order, from one snapshot and one `now`", body = BatchResponse),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/checks/batch", wrap = "from_fn(auth::sender)")]
pub async fn check_batch(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<BatchRequest, BATCH_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let items = body.value.checks;
    if items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::invalid_field(
            "checks",
            "too_many",
            format!("a batch holds at most {MAX_BATCH_ITEMS} checks"),
        ));
    }
    let now = state.now();
    let master = state.master.clone();
    let decisions = state
        .db(move |conn| {
            let mut cache = Cache::default();
            // Each item read and its number parsed first, so that the
            // batch's numbers are read together.
            let parsed = parse_items(&caller, items);
            // One read transaction: every item sees the same snapshot.
            conn.snapshot(|conn| {
                let mut numbers: Vec<&str> = parsed
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().ok().map(|(_, n)| n.e164().as_str()))
                    .collect();
                numbers.sort_unstable();
                numbers.dedup();
                cache.many = Some(Prefetched::read(
                    conn,
                    &master,
                    &caller.tenant.id,
                    &numbers,
                )?);
                let mut out = Vec::with_capacity(parsed.len());
                for (number, request) in parsed {
                    let decided = request.and_then(|(request, number)| {
                        let parsed_number =
                            confirm_number(&caller, &request, number, cache.many.as_ref())?;
                        evaluate_number(
                            conn,
                            &master,
                            &caller,
                            &request,
                            &parsed_number,
                            now,
                            &mut cache,
                        )
                    });
                    out.push(match decided {
                        Ok(decision) => BatchItem::Decision(decision),
                        Err(error) if error.status().is_server_error() => return Err(error),
                        Err(error) => item_error(number, error),
                    });
                }
                Ok::<_, ApiError>(out)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(BatchResponse { decisions }))
}
