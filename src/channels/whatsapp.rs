//! `GET`/`POST /webhooks/whatsapp/{tenant}`: Meta's handshake, then signed
//! notifications turned into windows, opt-ins, opt-outs and lifts.

use super::inbound::{self, Letter};
use super::letter::LetterPayload;
use super::message::{preference_letter, InboundMessage, PreferenceChange, Provider, Sender};
use super::settings::{open_secret, StoredSettings, StoredWhatsApp};
use super::signature::whatsapp_signature_valid;
use super::whatsapp_payload::{self as payload, Event, Notification};
use super::{open_secrets, read_body, tenant_settings};
use crate::api::AppState;
use crate::domain::time::Timestamp;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::keys::MasterKey;
use crate::store::{DbConn, StoreError};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use utoipa::IntoParams;

/// Meta sends at most this much in one notification.
const BODY_LIMIT: usize = 3 * 1024 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    pub mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    pub verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    pub challenge: Option<String>,
}

fn whatsapp_settings(settings: &StoredSettings) -> Result<&StoredWhatsApp, ApiError> {
    settings
        .whatsapp
        .as_ref()
        .ok_or_else(|| ApiError::not_found("no WhatsApp channel is configured"))
}

#[utoipa::path(
    tag = "webhooks",
    params(("tenant" = String, Path, description = "The tenant id"), Handshake),
    responses(
        (status = 200, description = "`hub.challenge`, echoed", content_type = "text/plain", body = String),
        (status = 403, description = "The verify token does not match", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or no WhatsApp channel", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The query string is not valid", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/webhooks/whatsapp/{tenant}")]
pub async fn whatsapp_handshake(
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    query: web::Query<Handshake>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    let settings = tenant_settings(&state, &tenant).await?;
    let whatsapp = whatsapp_settings(&settings)?;
    let expected = open_secret(
        &state.master.kek(),
        &tenant,
        "whatsapp.verify_token",
        &whatsapp.verify_token,
    )
    .ok_or_else(|| ApiError::internal("the verify token does not open with this master key"))?;
    let presented = query.verify_token.as_deref().unwrap_or("");
    let matches = bool::from(presented.as_bytes().ct_eq(expected.as_bytes()));
    let challenge = query.challenge.as_deref().unwrap_or("");
    let challenge_ok = challenge.len() <= 256 && challenge.bytes().all(|b| b.is_ascii_graphic());
    if query.mode.as_deref() != Some("subscribe") || !matches || !challenge_ok {
        tracing::info!("WhatsApp handshake refused");
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "hub.mode must be subscribe and hub.verify_token must match the configured token",
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(challenge.to_owned()))
}

#[utoipa::path(
    tag = "webhooks",
    params(("tenant" = String, Path, description = "The tenant id")),
    request_body(content = String, description = "Meta's notification, signed with X-Hub-Signature-256", content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted (also when ignored)"),
        (status = 400, description = "The body could not be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad signature: nothing recorded", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or no WhatsApp channel", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than 3 MiB", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/whatsapp/{tenant}")]
pub async fn whatsapp_notification(
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    let body = read_body(body, BODY_LIMIT).await?;
    let settings = tenant_settings(&state, &tenant).await?;
    let whatsapp = whatsapp_settings(&settings)?;
    let secrets = open_secrets(
        &state,
        &tenant,
        &[
            ("whatsapp.app_secret", Some(&whatsapp.app_secret)),
            (
                "whatsapp.previous_app_secret",
                whatsapp.previous_app_secret.as_ref(),
            ),
        ],
    )?;
    let header = request
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    if !whatsapp_signature_valid(&secret_refs, &body, header) {
        tracing::info!("WhatsApp notification with a missing or bad signature");
        return Err(ApiError::unauthorized(
            "X-Hub-Signature-256 is missing or does not match the app secret",
        ));
    }
    let notification: Notification = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(_) => {
            tracing::warn!("a signed WhatsApp notification is not JSON; ignored");
            return Ok(HttpResponse::Ok().finish());
        }
    };
    let master = state.master.clone();
    let clock = state.clock.clone();
    let applied = state
        .db(move |conn| {
            apply_notification(conn, &master, &tenant, &settings, &notification, &clock)
                .map_err(ApiError::from)
        })
        .await?;
    tracing::info!(
        recorded = applied.recorded,
        duplicates = applied.duplicates,
        dead_letters = applied.dead_letters,
        ignored = applied.ignored,
        "WhatsApp notification handled"
    );
    Ok(HttpResponse::Ok().finish())
}

/// Counts for the log line.
#[derive(Debug, Default)]
pub struct Applied {
    pub recorded: usize,
    pub duplicates: usize,
    pub dead_letters: usize,
    pub ignored: usize,
}

impl Applied {
    fn count(&mut self, outcome: inbound::Outcome) {
        match outcome {
            inbound::Outcome::Duplicate => self.duplicates += 1,
            inbound::Outcome::Recorded { seqs } => self.recorded += seqs.len(),
            inbound::Outcome::DeadLetter { .. } => self.dead_letters += 1,
        }
    }
}

/// A marketing preference is deduplicated on (wa_id, value, timestamp),
/// with the canonical number when the wa_id is one.
fn preference_key(p: &payload::Preference) -> Vec<String> {
    let who = match Provider::WhatsApp.sender(p.wa_id.as_deref(), p.user_id.as_deref()) {
        Sender::Number { number, .. } => number.as_str().to_owned(),
        Sender::UserId(user_id) => user_id,
        Sender::Unknown => p.wa_id.clone().unwrap_or_default(),
    };
    let at = p.timestamp.map(|t| t.to_string()).unwrap_or_default();
    vec!["user_preferences".to_owned(), who, p.value.clone(), at]
}

/// The time of a message or preference: `None` when missing or beyond
/// what a timestamp can be.
fn timestamp(seconds: Option<i64>) -> Option<Timestamp> {
    seconds
        .and_then(|s| s.checked_mul(1000))
        .map(Timestamp::from_millis)
}

fn inbound_message(m: payload::InboundMessage) -> InboundMessage {
    InboundMessage {
        provider: Provider::WhatsApp,
        sender: Provider::WhatsApp.sender(m.wa_id.as_deref(), m.user_id.as_deref()),
        from: m.wa_id,
        message_id: m.message_id,
        business: m.phone_number_id.unwrap_or_default(),
        captured_at: timestamp(m.timestamp),
        content: m.content,
    }
}

/// Applies every event of a verified notification, each in its own
/// transaction (a retry after a failure skips what was done).
pub fn apply_notification(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    settings: &StoredSettings,
    notification: &Notification,
    clock: &crate::domain::time::Clock,
) -> Result<Applied, StoreError> {
    let mut applied = Applied::default();
    let known = |id: Option<&str>| {
        settings
            .whatsapp
            .iter()
            .flat_map(|w| w.phone_numbers.iter())
            .any(|p| Some(p.id.as_str()) == id)
    };
    for event in payload::events(notification) {
        let now = clock.now();
        let outcome = match event {
            Event::Ignored => {
                applied.ignored += 1;
                continue;
            }
            Event::Unrecorded(u) if known(u.phone_number_id.as_deref()) => {
                applied.ignored += 1;
                continue;
            }
            Event::Unrecorded(u) => {
                let letter = Letter {
                    provider: Provider::WhatsApp,
                    reason: "unknown_phone_number_id",
                    business: u.phone_number_id.as_deref(),
                    payload: LetterPayload::Unrecorded { detail: u.detail },
                    waits_for: None,
                };
                let dedup: Vec<&str> = u.dedup.iter().map(String::as_str).collect();
                inbound::keep_unapplied(conn, master, tenant, &dedup, letter, now)?
            }
            Event::Message(m) => {
                let business_known = known(m.phone_number_id.as_deref());
                let message = inbound_message(m);
                if business_known {
                    inbound::record_message(conn, master, tenant, settings, &message, now)?
                } else {
                    // Sealed whole: the admin may need the sender and the words.
                    inbound::keep_for_unknown_business(
                        conn, master, tenant, settings, &message, now,
                    )?
                }
            }
            Event::Preference(p) => {
                let Some(outcome) =
                    apply_preference(conn, master, tenant, settings, &p, known, now)?
                else {
                    applied.ignored += 1;
                    continue;
                };
                outcome
            }
        };
        applied.count(outcome);
    }
    Ok(applied)
}

/// A `user_preferences` change: recorded, or kept when its business number
/// is unknown or it has no time; `None` for values other than stop and
/// resume.
fn apply_preference(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    settings: &StoredSettings,
    p: &payload::Preference,
    known: impl Fn(Option<&str>) -> bool,
    now: Timestamp,
) -> Result<Option<inbound::Outcome>, StoreError> {
    let stop = match p.value.as_str() {
        "stop" => true,
        "resume" => false,
        _ => return Ok(None),
    };
    let key = preference_key(p);
    let key: Vec<&str> = key.iter().map(String::as_str).collect();
    let change = PreferenceChange {
        sender: Provider::WhatsApp.sender(p.wa_id.as_deref(), p.user_id.as_deref()),
        from: p.wa_id.clone(),
        business: p.phone_number_id.clone().unwrap_or_default(),
        stop,
        captured_at: timestamp(p.timestamp).unwrap_or(now),
    };
    // Without its time a retry could not be told apart from a new change.
    let reason = match (known(p.phone_number_id.as_deref()), timestamp(p.timestamp)) {
        (false, at) => Some(("unknown_phone_number_id", at)),
        (true, None) => Some(("missing_timestamp", None)),
        (true, Some(_)) => None,
    };
    let outcome = match reason {
        Some((reason, at)) => {
            let letter = Letter {
                provider: Provider::WhatsApp,
                reason,
                business: p.phone_number_id.as_deref(),
                payload: preference_letter(&change, at),
                waits_for: change.sender.only_user_id(),
            };
            inbound::keep_unapplied(conn, master, tenant, &key, letter, now)?
        }
        None => inbound::record_preference(conn, master, tenant, settings, &key, &change, now)?,
    };
    Ok(Some(outcome))
}
