//! What a WhatsApp notification's events mean, pure: the message of each
//! event, its time, and the keys that deduplicate a preference change.
//! The handler is `api/webhooks/whatsapp.rs`; recording, `store/notification.rs`.

use super::message::{InboundMessage, Provider};
use super::whatsapp_payload as payload;
use crate::domain::time::Timestamp;

/// A marketing preference is deduplicated on (wa_id, value, timestamp),
/// with the canonical number when the wa_id is one.
pub fn preference_key(p: &payload::PreferenceEvent) -> Vec<String> {
    let sender = Provider::WhatsApp.sender(p.wa_id.as_deref(), p.user_id.as_deref(), None);
    let who = match sender.recorded_on() {
        Some(identity) => identity.as_str().to_owned(),
        None => p.wa_id.clone().unwrap_or_default(),
    };
    let at = p.timestamp.map(|t| t.to_string()).unwrap_or_default();
    vec!["user_preferences".to_owned(), who, p.value.clone(), at]
}

/// The time of a message or preference: `None` when missing or beyond
/// what a timestamp can be.
pub fn timestamp(seconds: Option<i64>) -> Option<Timestamp> {
    seconds
        .and_then(|s| s.checked_mul(1000))
        .map(Timestamp::from_millis)
}

pub fn inbound_message(m: payload::MessageEvent) -> InboundMessage {
    InboundMessage {
        provider: Provider::WhatsApp,
        sender: Provider::WhatsApp.sender(
            m.wa_id.as_deref(),
            m.user_id.as_deref(),
            m.parent_user_id.as_deref(),
        ),
        from: m.wa_id,
        message_id: m.message_id,
        waba: m.waba,
        business: m.phone_number_id.unwrap_or_default(),
        captured_at: timestamp(m.timestamp),
        content: m.content,
    }
}

/// A system message that a person changed their number or user id, as the
/// message it arrived as (from the old identities, with no content).
pub fn changed_message(c: payload::ChangedEvent) -> InboundMessage {
    inbound_message(payload::MessageEvent {
        phone_number_id: c.phone_number_id,
        waba: c.waba,
        wa_id: c.wa_id,
        user_id: c.user_id,
        parent_user_id: c.parent_user_id,
        message_id: c.message_id,
        timestamp: c.timestamp,
        content: payload::Content::Other,
    })
}
