//! `POST /v1/checks` and `/v1/checks/batch` (sender): the decision of docs/decisions.md, read from committed state with no cache.

use super::auth::{self, Caller};
use super::json::{self, ApiJson, BATCH_LIMIT};
use super::AppState;
use crate::domain::decision::{ConsentEvent, EventKind, Reason, Window};
use crate::domain::person::{echoes_a_person, names_a_person};
use crate::domain::purpose::{CaptureChannel, MessageChannel, Purpose};
use crate::domain::time::Timestamp;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::services::checking::{Ask, Named};
use crate::services::statements::{self, Stated};
use actix_web::middleware::from_fn;
use actix_web::{post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most checks in one batch.
pub const MAX_BATCH_ITEMS: usize = 10_000;

names_a_person! {
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CheckRequest {
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
        /// Also answer `statement`: the decision as a note signed by the
        /// log's key, the sender's proof of it (docs/statements.md).
        #[serde(default)]
        pub statement: bool,
        /// The sender's own name for the send (a message or campaign id),
        /// written into the statement; only with `"statement": true`.
        #[serde(default)]
        #[schema(example = "campaign-42/msg-7", min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
        pub reference: Option<String>,
    }
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

echoes_a_person! {
    /// The answer to "may we send this, now?" (docs/decisions.md, exact fields).
    #[derive(Debug, Serialize, ToSchema)]
    pub struct Decision {
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
        /// With `"statement": true`: the decision as a C2SP signed note
        /// (docs/statements.md), verifiable offline with the log's verifier key.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub statement: Option<String>,
    }
}

impl From<ConsentEvent> for ConsentRef {
    fn from(e: ConsentEvent) -> Self {
        Self {
            kind: match e.kind {
                EventKind::OptIn => "opt_in",
                EventKind::OptOut => "opt_out",
            },
            seq: e.seq,
            channel: e.channel,
            company_name_shown: e.company_name_shown,
            captured_at: e.captured_at,
        }
    }
}

impl From<CheckRequest> for Ask {
    fn from(request: CheckRequest) -> Self {
        let named = Named {
            number: request.number,
            user_id: request.user_id,
            region: request.region,
        };
        Self {
            named,
            purpose: request.purpose,
            brand: request.brand,
            channel: request.channel,
            business_phone_number_id: request.business_phone_number_id,
            statement: request.statement,
            reference: request.reference,
        }
    }
}

impl From<Stated> for Decision {
    fn from(
        Stated {
            evaluated,
            statement,
        }: Stated,
    ) -> Self {
        let (number, user_id) = evaluated.identity.echo();
        Self {
            number,
            user_id,
            purpose: evaluated.purpose,
            brand: evaluated.brand,
            channel: evaluated.channel,
            allowed: evaluated.allowed,
            reason: evaluated.reason,
            template_required: evaluated.template_required,
            session_reply_allowed: evaluated.session_reply_allowed,
            window: evaluated.window,
            consent: evaluated.consent.map(ConsentRef::from),
            statement,
        }
    }
}

/// May we send this, now?
///
/// Decides one check: whether a template of this purpose and brand may be
/// sent on this channel to this number or user id now, the reason, the
/// customer-service window and the entry the answer rests on.
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
    let ask = Ask::from(body.value);
    let states = ask.statement;
    let now = state.now();
    let (master, signer) = (state.master.clone(), state.signer.clone());
    // A statement may sign a checkpoint first: a write, off the HTTP worker.
    let stated = state
        .read_unless(states, move |conn| {
            let tenant = &caller.tenant;
            Ok(statements::check(
                conn, &master, &signer, tenant, &ask, now,
            )?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Decision::from(stated)))
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

/// Each batch item read as a check, or why not, and what its error would
/// echo.
fn parse_items(
    items: Vec<Box<serde_json::value::RawValue>>,
) -> (Vec<Echo>, Vec<Result<Ask, ApiError>>) {
    items
        .into_iter()
        .map(|item| {
            // Not an object: nothing to echo but a null number.
            let echoed: Echoed = serde_json::from_str(item.get()).unwrap_or_default();
            let echo = match echoed.user_id {
                Some(user_id) => (None, Some(user_id)),
                None => (Some(echoed.number.unwrap_or_default()), None),
            };
            (echo, json::from_raw::<CheckRequest>(&item).map(Ask::from))
        })
        .unzip()
}

/// Check many at once
///
/// Up to 10,000 checks decided in one snapshot with one `now`, answered in
/// order; an invalid item is answered with its error in its place.
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
    let (master, signer) = (state.master.clone(), state.signer.clone());
    let decisions = state
        .db(move |conn| {
            let (mut echoes, asks) = parse_items(items);
            let mut out = BatchWriter::with_capacity(asks.len());
            let tenant = &caller.tenant;
            statements::check_batch(
                conn,
                &master,
                &signer,
                tenant,
                asks,
                now,
                |index, outcome| {
                    out.push(&match outcome {
                        Ok(evaluated) => BatchItem::Decision(evaluated.into()),
                        Err(error) => item_error(std::mem::take(&mut echoes[index]), error),
                    })
                },
            )?;
            Ok(out.finish())
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
