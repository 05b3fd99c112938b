//! `POST /v1/checks` and `/v1/checks/batch` (sender): the decision of SPEC
//! section 2, read from committed state with no cache.

use super::auth::{self, Caller};
use super::json::{self, ApiJson, BATCH_LIMIT};
use super::AppState;
use crate::domain::decision::{
    self, Closure, ConsentEvent, EventKind, InboundRecord, Question, Reason, Standing, Window,
};
use crate::domain::identity::Identity;
use crate::domain::ids::BrandId;
use crate::domain::number::E164;
use crate::domain::purpose::{CaptureChannel, MessageChannel, Purpose};
use crate::domain::recording::{check_phone_number_id, check_user_id_channels};
use crate::domain::time::Timestamp;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::keys::MasterKey;
use crate::store::consent::{
    identity_state, inbound_records, many_identities, window_from, ManyIdentities,
};
use crate::store::suppression::{group_suppression, suppressed_many};
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
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::number)]
    pub number: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::user_id)]
    pub user_id: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::region)]
    pub region: Option<String>,
    pub purpose: Purpose,
    /// Matched after NFC and case folding against all brands, active or
    /// retired (else 422 `unknown_brand`); may be omitted while the tenant
    /// has exactly one active brand (else 422 `brand_required`).
    #[serde(default)]
    #[schema(example = "Makro", min_length = 1)]
    pub brand: Option<String>,
    /// The messaging channel (default whatsapp); `sms` needs a `number`.
    #[serde(default)]
    pub channel: MessageChannel,
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::phone_number_id)]
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
    /// The number asked (absent when asked by `user_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// The user id asked (absent when asked by `number`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
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
    /// A single check's group, read before its number was validated.
    single: Option<GroupRead>,
}

/// The consent state of a batch's identities, read in a few queries.
struct Prefetched {
    state: ManyIdentities,
    /// Identity asked → the latest erasure on request of its group.
    suppressed: HashMap<String, Timestamp>,
}

impl Prefetched {
    /// Whether the tenant holds any state of this identity.
    fn knows(&self, identity: &str) -> bool {
        self.state.events.contains_key(identity)
            || self.state.closed.contains_key(identity)
            || self.state.inbound.contains_key(identity)
            || self.suppressed.contains_key(identity)
    }

    fn read(
        conn: &mut DbConn,
        master: &MasterKey,
        tenant: &str,
        asked: &[&str],
    ) -> Result<Self, ApiError> {
        let state = many_identities(conn, master, tenant, asked)?;
        let group_of = |identity: &str| -> Vec<String> {
            match state.members.get(identity) {
                Some(members) => members.clone(),
                None => vec![identity.to_owned()],
            }
        };
        let mut all: Vec<String> = asked.iter().flat_map(|i| group_of(i)).collect();
        all.sort_unstable();
        all.dedup();
        let hasher = master.identity_hasher(tenant);
        let hashes: Vec<String> = all.iter().map(|i| hasher.hash(i)).collect();
        let found = suppressed_many(conn, tenant, &hashes)?;
        let erased: HashMap<&str, i64> = all
            .iter()
            .zip(&hashes)
            .filter_map(|(i, h)| found.get(h).map(|&at| (i.as_str(), at)))
            .collect();
        let suppressed = asked
            .iter()
            .filter_map(|i| {
                let latest = group_of(i)
                    .iter()
                    .filter_map(|m| erased.get(m.as_str()))
                    .max()
                    .copied();
                latest.map(|at| ((*i).to_owned(), Timestamp::from_millis(at)))
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
    // A number already in canonical E.164 is looked up as it was sent, and
    // checked against the numbering plan only when the tenant holds nothing
    // of it: the tenant stored state only for numbers validated in exactly
    // this form.
    if let Some(identity) = canonical_number(request) {
        let read = read_group(conn, master, &caller.tenant.id, &identity, None)?;
        if !read.known {
            parse_identity_of(caller, request)?;
        }
        cache.single = Some(read);
        return evaluate_identity(conn, master, caller, request, &identity, now, cache);
    }
    let identity = parse_identity_of(caller, request)?;
    evaluate_identity(conn, master, caller, request, &identity, now, cache)
}

/// The number of a check sent in canonical E.164 with no `region` and no
/// `user_id`, not yet validated.
fn canonical_number(request: &CheckRequest) -> Option<Identity> {
    match (&request.number, &request.user_id, &request.region) {
        (Some(number), None, None) => E164::from_canonical(number).map(Identity::Number),
        _ => None,
    }
}

/// A check's identity: exactly one of `number` and `user_id`; a user id
/// only on WhatsApp.
fn parse_identity_of(caller: &Caller, request: &CheckRequest) -> Result<Identity, ApiError> {
    let identity = caller.parse_identity(
        request.number.as_deref(),
        request.user_id.as_deref(),
        request.region.as_deref(),
    )?;
    let sms = request.channel == MessageChannel::Sms;
    check_user_id_channels(&identity, "channel", sms)?;
    Ok(identity)
}

/// What a decision reads of an identity's group.
struct GroupRead {
    events: Vec<ConsentEvent>,
    suppressed_at: Option<Timestamp>,
    /// The group is closed (rule 2).
    closure: Option<Closure>,
    inbound: Vec<InboundRecord>,
    /// Whether the tenant holds anything of the identity (a subject, a
    /// window, a suppression).
    known: bool,
}

/// Reads an identity's group: from the batch's prefetched state when there
/// is one, else with its own reads.
fn read_group(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    identity: &Identity,
    many: Option<&Prefetched>,
) -> Result<GroupRead, ApiError> {
    let id = identity.as_str();
    Ok(match many {
        Some(many) => GroupRead {
            events: many.state.events.get(id).cloned().unwrap_or_default(),
            suppressed_at: many.suppressed.get(id).copied(),
            closure: many.state.closed.get(id).copied(),
            inbound: many.state.inbound.get(id).cloned().unwrap_or_default(),
            known: many.knows(id),
        },
        None => {
            let state = identity_state(conn, master, tenant, id)?;
            let suppressed_at = group_suppression(conn, master, tenant, &state.identities)?;
            let inbound = inbound_records(conn, &state.window_subjects)?;
            GroupRead {
                known: state.live_subject().is_some() || suppressed_at.is_some(),
                suppressed_at,
                closure: state.closure(),
                inbound,
                events: state.events,
            }
        }
    })
}

/// [`evaluate`] of a parsed identity, over its whole group.
fn evaluate_identity(
    conn: &mut DbConn,
    master: &MasterKey,
    caller: &Caller,
    request: &CheckRequest,
    identity: &Identity,
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
    let read = match cache.single.take() {
        Some(read) => read,
        None => read_group(conn, master, &tenant.id, identity, cache.many.as_ref())?,
    };
    let question = Question {
        purpose: request.purpose,
        brand_id: BrandId(brand.id),
        channel: request.channel,
    };
    let standing = Standing {
        suppressed_at: read.suppressed_at,
        closed: read.closure,
    };
    let outcome = decision::decide(
        &read.events,
        question,
        tenant.max_consent_age_days,
        standing,
        now,
    );
    let (window, certain) = match request.channel {
        MessageChannel::Sms => (Window::closed(None), false),
        MessageChannel::Whatsapp => {
            let named = request.business_phone_number_id.as_deref();
            let configured = &mut cache.phone_number_ids;
            window_from(conn, &tenant.id, &read.inbound, named, now, configured)?
        }
    };
    let whatsapp = request.channel == MessageChannel::Whatsapp;
    crate::metrics::decision(outcome.reason.as_str());
    let (number, user_id) = identity.echo();
    Ok(Decision {
        number,
        user_id,
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
    // On SQLite the check's reads share one read transaction: they take the
    // database's read lock once instead of once each (single checks 10,600
    // -> 14,400/s in the service benchmark), and see one snapshot. On
    // PostgreSQL a transaction would be two more round trips; each
    // statement reads committed state, as before.
    let decision = state
        .read(move |conn| {
            let mut cache = Cache::default();
            if conn.is_postgres() {
                evaluate(conn, &master, &caller, &request, now, &mut cache)
            } else {
                conn.snapshot(|conn| evaluate(conn, &master, &caller, &request, now, &mut cache))
            }
        })
        .await?;
    Ok(HttpResponse::Ok().json(decision))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Up to 10,000 checks. An item that is not a valid check is answered
    /// in its place with an error, not refused with the batch.
    #[schema(value_type = Vec<CheckRequest>, max_items = 10_000)]
    pub checks: Vec<Box<serde_json::value::RawValue>>,
}

/// What a batch item's error echoes, read from the item as it was sent:
/// a key that is present counts even when it is null.
#[derive(Debug, Default, Deserialize)]
struct Echoed {
    #[serde(default, deserialize_with = "present")]
    number: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    user_id: Option<serde_json::Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// An item that could not be decided.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItemError {
    /// The `number` exactly as it was sent: a string, or whatever JSON
    /// value (null when it was missing); absent when the item has a `user_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<serde_json::Value>,
    /// The `user_id` exactly as it was sent, when the item has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<serde_json::Value>,
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

/// What an item's error echoes: its `user_id` if it has one, else its
/// `number` (null when missing).
type Echo = (Option<serde_json::Value>, Option<serde_json::Value>);

fn item_error((number, user_id): Echo, error: ApiError) -> BatchItem {
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
        user_id,
        error: ItemError {
            code: error.code.as_str().to_owned(),
            reason,
            detail,
        },
    })
}

/// A batch item as sent (its identity echoed in an error), read and its
/// identity parsed, or why not.
type ParsedItem = (Echo, Result<(CheckRequest, ItemIdentity), ApiError>);

/// A batch item's identity: validated (a user id, or a number checked
/// against the numbering plan), or a number only shaped like canonical
/// E.164 (no `region`), to be validated unless the tenant already holds
/// state for it (which it stored only for valid numbers, in exactly this
/// form).
enum ItemIdentity {
    Validated(Identity),
    Shaped(Identity),
}

impl ItemIdentity {
    fn identity(&self) -> &Identity {
        match self {
            ItemIdentity::Validated(i) | ItemIdentity::Shaped(i) => i,
        }
    }
}

fn parse_items(caller: &Caller, items: Vec<Box<serde_json::value::RawValue>>) -> Vec<ParsedItem> {
    items
        .into_iter()
        .map(|item| {
            // Not an object: nothing to echo but a null number.
            let echoed: Echoed = serde_json::from_str(item.get()).unwrap_or_default();
            let echo = match echoed.user_id {
                Some(user_id) => (None, Some(user_id)),
                None => (Some(echoed.number.unwrap_or_default()), None),
            };
            let request = json::from_raw::<CheckRequest>(&item).and_then(|request| {
                let shaped = match (&request.number, &request.user_id, &request.region) {
                    (Some(number), None, None) => E164::from_canonical(number),
                    _ => None,
                };
                let identity = match shaped {
                    Some(number) => ItemIdentity::Shaped(Identity::Number(number)),
                    None => ItemIdentity::Validated(parse_identity_of(caller, &request)?),
                };
                Ok((request, identity))
            });
            (echo, request)
        })
        .collect()
}

/// The item's identity, its number validated now unless the batch's state
/// shows the tenant already holds it (then it was valid when stored).
fn confirm_identity(
    caller: &Caller,
    request: &CheckRequest,
    identity: ItemIdentity,
    many: Option<&Prefetched>,
) -> Result<Identity, ApiError> {
    match identity {
        ItemIdentity::Validated(i) => Ok(i),
        ItemIdentity::Shaped(i) if many.is_some_and(|m| m.knows(i.as_str())) => Ok(i),
        ItemIdentity::Shaped(_) => parse_identity_of(caller, request),
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
                let mut asked: Vec<&str> = parsed
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().ok().map(|(_, i)| i.identity().as_str()))
                    .collect();
                asked.sort_unstable();
                asked.dedup();
                cache.many = Some(Prefetched::read(conn, &master, &caller.tenant.id, &asked)?);
                let mut out = BatchWriter::with_capacity(parsed.len());
                for (echo, request) in parsed {
                    let decided = request.and_then(|(request, identity)| {
                        let identity =
                            confirm_identity(&caller, &request, identity, cache.many.as_ref())?;
                        evaluate_identity(
                            conn, &master, &caller, &request, &identity, now, &mut cache,
                        )
                    });
                    out.push(&match decided {
                        Ok(decision) => BatchItem::Decision(decision),
                        Err(error) if error.status().is_server_error() => return Err(error),
                        Err(error) => item_error(echo, error),
                    });
                }
                Ok::<_, ApiError>(out.finish())
            })
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(decisions))
}

/// A [`BatchResponse`] written item by item as each is decided, so that a
/// batch holds its answer once, as JSON text, and never all its decisions
/// as values too.
struct BatchWriter {
    json: Vec<u8>,
    items: usize,
}

impl BatchWriter {
    fn with_capacity(items: usize) -> Self {
        // About what a decision takes as JSON.
        let mut json = Vec::with_capacity(32 + items * 420);
        json.extend_from_slice(b"{\"decisions\":[");
        Self { json, items: 0 }
    }

    fn push(&mut self, item: &BatchItem) {
        if self.items > 0 {
            self.json.push(b',');
        }
        serde_json::to_writer(&mut self.json, item).expect("a decision serialises");
        self.items += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        self.json.extend_from_slice(b"]}");
        self.json
    }
}
