//! What an inbound message means for the ledger (SPEC section 7), and
//! recording it: the delivery's dedup mark, the window, and every entry it
//! causes commit in one transaction under the log's lock, or none do.

use super::settings::{OptInMatch, StoredSettings};
use super::whatsapp_payload::Content;
use crate::domain::evidence::Evidence;
use crate::domain::keywords::{classify, normalize, Meaning};
use crate::domain::number::E164;
use crate::domain::purpose::{CaptureChannel, MessageChannel, MessageChannelSet, PurposeSet};
use crate::domain::text::is_readable_text;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::store::append::{
    append_locked, LiftClass, LiftRecord, OptInRecord, OptOutRecord, Record,
};
use crate::store::channels::{self, NewDeadLetter};
use crate::store::connection::lock_log;
use crate::store::consent::record_inbound;
use crate::store::tenants::find_brand;
use crate::store::{DbConn, StoreResult};
use hmac::{KeyInit, Mac};

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    WhatsApp,
    Twilio,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::WhatsApp => "whatsapp",
            Provider::Twilio => "twilio",
        }
    }

    pub fn collector(self) -> &'static str {
        match self {
            Provider::WhatsApp => "webhook:whatsapp",
            Provider::Twilio => "webhook:twilio",
        }
    }

    fn capture_channel(self) -> CaptureChannel {
        match self {
            Provider::WhatsApp => CaptureChannel::Whatsapp,
            Provider::Twilio => CaptureChannel::Sms,
        }
    }

    fn message_channel(self) -> MessageChannel {
        match self {
            Provider::WhatsApp => MessageChannel::Whatsapp,
            Provider::Twilio => MessageChannel::Sms,
        }
    }
}

/// Who sent a message: a number, or only a business-scoped user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    Number {
        number: E164,
        user_id: Option<String>,
    },
    UserId(String),
    /// Nothing that names a person we can resolve (a malformed number).
    Unknown,
}

/// One inbound message, as both webhooks hand it over.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub provider: Provider,
    pub sender: Sender,
    /// The provider's message id (`wamid.…`, `SM…`).
    pub message_id: String,
    /// The WhatsApp phone number id or the Twilio number it was sent to.
    pub business: String,
    pub captured_at: Timestamp,
    pub content: Content,
}

/// WhatsApp's own marketing stop or resume (`user_preferences`).
#[derive(Debug, Clone)]
pub struct PreferenceChange {
    pub sender: Sender,
    pub business: String,
    pub stop: bool,
    pub captured_at: Timestamp,
}

/// What handling a delivery did (for the log line and the tests' eyes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Duplicate,
    Recorded { seqs: Vec<u64> },
    DeadLetter { reason: &'static str },
}

/// What a message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Intent<'a> {
    OptOut { full: bool },
    Lift,
    OptIn(&'a OptInMatch),
    Nothing,
}

fn words(normalized: &str) -> usize {
    normalized.split(' ').filter(|w| !w.is_empty()).count()
}

fn intent<'a>(provider: Provider, content: &Content, settings: &'a StoredSettings) -> Intent<'a> {
    let matches: &[OptInMatch] = match provider {
        Provider::WhatsApp => settings.whatsapp.as_ref().map_or(&[], |w| &w.opt_in),
        Provider::Twilio => settings.twilio.as_ref().map_or(&[], |t| &t.opt_in),
    };
    let extra = settings.normalized_keywords();
    let (text, is_button, is_reply) = match content {
        Content::Button { payload, .. } => {
            if let Some(m) = matches.iter().find(|m| m.match_text == *payload) {
                return Intent::OptIn(m);
            }
            (payload, true, true)
        }
        Content::Text { body, reply_to } => (body, false, reply_to.is_some()),
        Content::Other => return Intent::Nothing,
    };
    let normalized = normalize(text);
    match classify(&normalized, &extra) {
        Meaning::FullOptOut => Intent::OptOut { full: true },
        Meaning::PartialOptOut => Intent::OptOut { full: false },
        Meaning::Lift => Intent::Lift,
        // A button opts in only by its exact payload (above).
        Meaning::Other if is_button => Intent::Nothing,
        Meaning::Other => matches
            .iter()
            .filter(|m| normalize(&m.match_text) == normalized)
            // On WhatsApp a one-word text opts in only as a reply to the business.
            .find(|m| {
                provider == Provider::Twilio || is_reply || words(&normalize(&m.match_text)) >= 2
            })
            .map_or(Intent::Nothing, Intent::OptIn),
    }
}

/// The evidence a message carries: its channel's opt-in keys.
fn message_evidence(message: &InboundMessage) -> Evidence {
    let mut pairs: Vec<(&str, &str)> = vec![("message_id", &message.message_id)];
    pairs.push(match message.provider {
        Provider::WhatsApp => ("business_phone_number_id", &message.business),
        Provider::Twilio => ("from_number_to", &message.business),
    });
    match &message.content {
        Content::Text { body, reply_to } => {
            pairs.push(("body", body));
            if let (Provider::WhatsApp, Some(id)) = (message.provider, reply_to) {
                pairs.push(("prompt_message_id", id));
            }
        }
        Content::Button { payload, reply_to } => {
            pairs.push(("button_payload", payload));
            if let Some(id) = reply_to {
                pairs.push(("prompt_message_id", id));
            }
        }
        Content::Other => {}
    }
    Evidence::from_list(&pairs)
}

/// The tenant's keyed hash of a delivery: survives erasure, names no one.
pub fn dedup_key(master: &MasterKey, tenant: &str, parts: &[&str]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&master.suppress_key(tenant))
        .expect("HMAC takes any key length");
    for part in parts {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Opt-ins older than this are not recorded from a message (as for the API
/// without `backfill`).
const MAX_OPT_IN_AGE_MILLIS: i64 = 30 * 24 * 3600 * 1000;
/// How far a provider's timestamp may run ahead of our clock.
const FUTURE_SKEW_MILLIS: i64 = 60_000;

/// Seals what could not be applied, for an admin to act on.
fn sealed_letter(master: &MasterKey, tenant: &str, payload: &serde_json::Value) -> String {
    master.kek().seal(
        payload.to_string().as_bytes(),
        format!("consent-ledger/dead-letter/v1\n{tenant}").as_bytes(),
    )
}

/// The number a sender stands for, remembering a user id that came with it.
fn resolve_sender(
    conn: &mut DbConn,
    tenant: &str,
    sender: &Sender,
    now: i64,
) -> StoreResult<Option<E164>> {
    Ok(match sender {
        Sender::Number { number, user_id } => {
            if let Some(user_id) = user_id {
                channels::remember_alias(conn, tenant, user_id, number, now)?;
            }
            Some(number.clone())
        }
        Sender::UserId(user_id) => channels::resolve_alias(conn, tenant, user_id)?,
        Sender::Unknown => None,
    })
}

/// Something a webhook could not apply.
pub struct Letter<'a> {
    pub provider: Provider,
    pub reason: &'static str,
    pub business: Option<&'a str>,
    /// What an admin needs to act on it; stored sealed.
    pub payload: serde_json::Value,
}

fn dead_letter(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    letter: Letter<'_>,
    now: Timestamp,
) -> StoreResult<Outcome> {
    let sealed = sealed_letter(master, tenant, &letter.payload);
    channels::insert_dead_letter(
        conn,
        tenant,
        &NewDeadLetter {
            provider: letter.provider.as_str(),
            reason: letter.reason,
            phone_number_id: letter.business,
            payload_sealed: &sealed,
        },
        now.millis(),
    )?;
    tracing::warn!(
        provider = letter.provider.as_str(),
        reason = letter.reason,
        "webhook event kept as a dead letter"
    );
    Ok(Outcome::DeadLetter {
        reason: letter.reason,
    })
}

/// Records one inbound message: dedup, window, and what it means. `now`
/// is the server's clock.
pub fn record_message(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    settings: &StoredSettings,
    message: &InboundMessage,
    now: Timestamp,
) -> StoreResult<Outcome> {
    let intent = intent(message.provider, &message.content, settings);
    let channel = message.provider.capture_channel();
    conn.immediate_transaction(|conn| {
        // The log first: the rows written below reference the tenant, and
        // on PostgreSQL that share lock taken before the log's would
        // deadlock with another writer of this log.
        lock_log(conn, tenant)?;
        let key = dedup_key(
            master,
            tenant,
            &[message.provider.as_str(), &message.message_id],
        );
        if !channels::first_delivery(conn, tenant, &key, now.millis())? {
            return Ok(Outcome::Duplicate);
        }
        let letter = |reason: &'static str| Letter {
            provider: message.provider,
            reason,
            business: Some(&message.business),
            payload: serde_json::json!({
                "reason": reason,
                "message_id": message.message_id,
                "business": message.business,
                "sender": match &message.sender {
                    Sender::Number { number, .. } => number.as_str().to_owned(),
                    Sender::UserId(id) => id.clone(),
                    Sender::Unknown => String::new(),
                },
                "captured_at": message.captured_at.to_string(),
                "content": match &message.content {
                    Content::Text { body, .. } => serde_json::json!({"body": body}),
                    Content::Button { payload, .. } => serde_json::json!({"button_payload": payload}),
                    Content::Other => serde_json::Value::Null,
                },
            }),
        };
        // A provider clock ahead of ours: an opt-out (or a plain message)
        // counts from now rather than not at all; what restores consent waits
        // for an admin.
        let mut captured_at = message.captured_at;
        if captured_at > now.plus_millis(FUTURE_SKEW_MILLIS) {
            if matches!(intent, Intent::OptIn(_) | Intent::Lift) {
                return dead_letter(conn, master, tenant, letter("timestamp_in_future"), now);
            }
            captured_at = now;
        }
        let Some(number) = resolve_sender(conn, tenant, &message.sender, now.millis())? else {
            if matches!(intent, Intent::OptOut { .. }) {
                return dead_letter(conn, master, tenant, letter("unknown_sender"), now);
            }
            return Ok(Outcome::Recorded { seqs: Vec::new() });
        };
        if message.provider == Provider::WhatsApp {
            record_inbound(conn, tenant, &number, Some(&message.business), captured_at)?;
        }
        let evidence = message_evidence(message);
        let collector = message.provider.collector();
        let mut seqs = Vec::new();
        match intent {
            Intent::OptOut { full } => {
                let purposes = if full {
                    PurposeSet::all()
                } else {
                    settings.partial_opt_out.iter().copied().collect()
                };
                let record = Record::OptOut(OptOutRecord {
                    number,
                    channel,
                    purposes,
                    message_channels: MessageChannelSet::all(),
                    captured_at,
                    backfill: false,
                    evidence,
                    lift_class: Some(LiftClass::Keyword),
                });
                seqs.push(append_locked(conn, tenant, collector, &record, None, now)?.seq);
            }
            Intent::Lift => {
                for lifts in channels::liftable_opt_outs(
                    conn,
                    tenant,
                    &number,
                    LiftClass::Keyword,
                    channel,
                    captured_at.millis(),
                )? {
                    let record = Record::Lift(LiftRecord {
                        number: number.clone(),
                        channel,
                        captured_at,
                        evidence: evidence.clone(),
                        lifts,
                    });
                    seqs.push(append_locked(conn, tenant, collector, &record, None, now)?.seq);
                }
            }
            Intent::OptIn(m) => {
                if !is_readable_text(&m.prompt) {
                    // Saved before prompts were checked: it cannot be a consent text.
                    return dead_letter(conn, master, tenant, letter("unreadable_prompt"), now);
                }
                let brand = find_brand(conn, tenant, &m.brand)?.filter(|b| b.retired_at.is_none());
                let fresh = captured_at.millis() + MAX_OPT_IN_AGE_MILLIS >= now.millis();
                if let (Some(brand), true) = (brand, fresh) {
                    let message_channels = match &m.message_channels {
                        Some(list) => list.iter().copied().collect(),
                        None => [message.provider.message_channel()].into_iter().collect(),
                    };
                    let record = Record::OptIn(OptInRecord {
                        number,
                        channel,
                        brand_id: brand.id,
                        company_name_shown: brand.name,
                        consent_text: m.prompt.clone(),
                        purposes: m.purposes.iter().copied().collect(),
                        message_channels,
                        captured_at,
                        language: None,
                        backfill: false,
                        confirmation: None,
                        evidence,
                    });
                    seqs.push(append_locked(conn, tenant, collector, &record, None, now)?.seq);
                }
            }
            Intent::Nothing => {}
        }
        Ok(Outcome::Recorded { seqs })
    })
}

/// Records WhatsApp's marketing stop (an opt-out of marketing on WhatsApp)
/// or resume (lifts every effective stop of that kind).
pub fn record_preference(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    dedup: &[&str],
    change: &PreferenceChange,
    now: Timestamp,
) -> StoreResult<Outcome> {
    let value = if change.stop { "stop" } else { "resume" };
    conn.immediate_transaction(|conn| {
        lock_log(conn, tenant)?; // first, as in record_message
        let key = dedup_key(master, tenant, dedup);
        if !channels::first_delivery(conn, tenant, &key, now.millis())? {
            return Ok(Outcome::Duplicate);
        }
        let letter = |reason: &'static str| Letter {
            provider: Provider::WhatsApp,
            reason,
            business: Some(&change.business),
            payload: serde_json::json!({"reason": reason, "user_preferences": value,
                "sender": match &change.sender {
                    Sender::Number { number, .. } => number.as_str().to_owned(),
                    Sender::UserId(id) => id.clone(),
                    Sender::Unknown => String::new(),
                },
                "business": change.business,
                "captured_at": change.captured_at.to_string()}),
        };
        let mut captured_at = change.captured_at;
        if captured_at > now.plus_millis(FUTURE_SKEW_MILLIS) {
            if !change.stop {
                return dead_letter(conn, master, tenant, letter("timestamp_in_future"), now);
            }
            captured_at = now;
        }
        let Some(number) = resolve_sender(conn, tenant, &change.sender, now.millis())? else {
            if change.stop {
                return dead_letter(conn, master, tenant, letter("unknown_sender"), now);
            }
            return Ok(Outcome::Recorded { seqs: Vec::new() });
        };
        let collector = Provider::WhatsApp.collector();
        let mut seqs = Vec::new();
        if change.stop {
            let record = Record::OptOut(OptOutRecord {
                number,
                channel: CaptureChannel::Whatsapp,
                purposes: [crate::domain::purpose::Purpose::Marketing]
                    .into_iter()
                    .collect(),
                message_channels: [MessageChannel::Whatsapp].into_iter().collect(),
                captured_at,
                backfill: false,
                evidence: Evidence::from_pairs([
                    ("business_phone_number_id", change.business.as_str()),
                    ("preference", "stop"),
                ]),
                lift_class: Some(LiftClass::MarketingPreference),
            });
            seqs.push(append_locked(conn, tenant, collector, &record, None, now)?.seq);
        } else {
            for lifts in channels::liftable_opt_outs(
                conn,
                tenant,
                &number,
                LiftClass::MarketingPreference,
                CaptureChannel::Whatsapp,
                captured_at.millis(),
            )? {
                let record = Record::Lift(LiftRecord {
                    number: number.clone(),
                    channel: CaptureChannel::Whatsapp,
                    captured_at,
                    evidence: Evidence::from_pairs([
                        ("business_phone_number_id", change.business.as_str()),
                        ("preference", "resume"),
                    ]),
                    lifts,
                });
                seqs.push(append_locked(conn, tenant, collector, &record, None, now)?.seq);
            }
        }
        Ok(Outcome::Recorded { seqs })
    })
}

/// Keeps something that cannot be applied at all (an unknown business
/// number): one dead letter, outside any append.
/// `dedup` names the delivery, so a retry adds no second letter.
pub fn keep_unapplied(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    dedup: &[&str],
    letter: Letter<'_>,
    now: Timestamp,
) -> StoreResult<Outcome> {
    let key = dedup_key(master, tenant, dedup);
    conn.immediate_transaction(|conn| {
        if !channels::first_delivery(conn, tenant, &key, now.millis())? {
            return Ok(Outcome::Duplicate);
        }
        dead_letter(conn, master, tenant, letter, now)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::settings::StoredTwilio;
    use crate::domain::purpose::Purpose;

    fn settings() -> StoredSettings {
        let opt_in = |m: &str| OptInMatch {
            match_text: m.into(),
            brand: "Makro".into(),
            purposes: vec![Purpose::Marketing],
            message_channels: None,
            prompt: "Makro".into(),
        };
        StoredSettings {
            whatsapp: Some(crate::channels::settings::StoredWhatsApp {
                app_secret: String::new(),
                previous_app_secret: None,
                verify_token: String::new(),
                phone_numbers: Vec::new(),
                opt_in: vec![
                    opt_in("JOIN"),
                    opt_in("JOIN MAKRO"),
                    opt_in("OPTIN_UTILITY"),
                ],
            }),
            twilio: Some(StoredTwilio {
                auth_token: String::new(),
                secondary_auth_token: None,
                account_sid: String::new(),
                webhook_url: String::new(),
                numbers: Vec::new(),
                opt_in: vec![opt_in("JOIN")],
            }),
            opt_out_keywords: vec!["BAJA".into()],
            partial_opt_out: vec![Purpose::Marketing],
        }
    }

    fn text(body: &str, reply: bool) -> Content {
        Content::Text {
            body: body.into(),
            reply_to: reply.then(|| "wamid.prompt".to_owned()),
        }
    }

    #[test]
    fn what_messages_ask_for() {
        let s = settings();
        let wa = Provider::WhatsApp;
        assert_eq!(
            intent(wa, &text("STOP", false), &s),
            Intent::OptOut { full: true }
        );
        assert_eq!(
            intent(wa, &text("stop.", false), &s),
            Intent::OptOut { full: true }
        );
        assert_eq!(
            intent(wa, &text("baja", false), &s),
            Intent::OptOut { full: true }
        );
        assert_eq!(
            intent(wa, &text("please stop texting me", false), &s),
            Intent::OptOut { full: false }
        );
        assert_eq!(intent(wa, &text("Start", false), &s), Intent::Lift);
        // One word opts in on WhatsApp only as a reply; two words always.
        assert_eq!(intent(wa, &text("join", false), &s), Intent::Nothing);
        assert!(
            matches!(intent(wa, &text("join", true), &s), Intent::OptIn(m) if m.match_text == "JOIN")
        );
        assert!(
            matches!(intent(wa, &text("Join Makro!", false), &s), Intent::OptIn(m) if m.match_text == "JOIN MAKRO")
        );
        // On SMS a configured keyword counts.
        assert!(matches!(
            intent(Provider::Twilio, &text("join", false), &s),
            Intent::OptIn(_)
        ));
        // Button payloads are byte-equal.
        let button = |p: &str| Content::Button {
            payload: p.into(),
            reply_to: None,
        };
        assert!(matches!(
            intent(wa, &button("OPTIN_UTILITY"), &s),
            Intent::OptIn(_)
        ));
        assert_eq!(intent(wa, &button("optin_utility"), &s), Intent::Nothing);
        assert_eq!(
            intent(wa, &button("STOP"), &s),
            Intent::OptOut { full: true }
        );
        assert_eq!(intent(wa, &Content::Other, &s), Intent::Nothing);
    }

    #[test]
    fn dedup_keys_are_keyed_per_tenant() {
        let master = MasterKey::from_bytes([1; 32]);
        let a = dedup_key(&master, "a", &["whatsapp", "wamid.1"]);
        assert_eq!(a, dedup_key(&master, "a", &["whatsapp", "wamid.1"]));
        assert_ne!(a, dedup_key(&master, "b", &["whatsapp", "wamid.1"]));
        assert_ne!(a, dedup_key(&master, "a", &["twilio", "wamid.1"]));
        assert_ne!(
            a,
            dedup_key(
                &MasterKey::from_bytes([2; 32]),
                "a",
                &["whatsapp", "wamid.1"]
            )
        );
        assert!(!a.contains("wamid"));
    }
}
