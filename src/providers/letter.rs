//! What a dead letter keeps (docs/identities.md): the event as it arrived, sealed,
//! so that an admin can read it (`GET /v1/dead-letters/{id}`) and the
//! service can apply a kept opt-out with its own `captured_at` once it can
//! (the business number is configured, or the user id resolves). Pure.

use super::wa_id::wa_id_to_e164;
use super::whatsapp_payload::Content;
use crate::domain::purpose::Purpose;
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The sealed content of a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LetterPayload {
    /// A message from a person (WhatsApp or SMS).
    Message(MessageLetter),
    /// WhatsApp's own marketing stop or resume.
    Preference(PreferenceLetter),
    /// Statuses, reactions and system messages for a business number the
    /// tenant does not have: kept for the admin to read, never applied.
    Unrecorded { detail: serde_json::Value },
}

/// A message as it arrived, and what it meant when it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageLetter {
    /// `whatsapp` or `twilio`.
    pub provider: String,
    pub message_id: String,
    /// The WhatsApp phone number id or Twilio number it was sent to.
    pub business: Option<String>,
    /// The sender as the provider wrote it (`wa_id`, or Twilio's `From`).
    pub from: Option<String>,
    /// The sender's business-scoped user id, if any.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The sender's parent user id, if any.
    #[serde(default)]
    pub parent_user_id: Option<String>,
    /// The WhatsApp Business Account it came through (`entry[].id`).
    #[serde(default)]
    pub waba: Option<String>,
    /// The provider's time of the message; null when missing or unreadable.
    pub captured_at: Option<Timestamp>,
    pub content: Content,
    /// For an opt-out: the purposes it withdrew, by the rules when it
    /// arrived (the person's words mean what they meant then).
    #[serde(default)]
    pub opt_out: Option<Vec<Purpose>>,
    /// For an opt-out: how it was heard (`rule`, `language`,
    /// `vocabulary_version`), added to its evidence when it applies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub heard: BTreeMap<String, String>,
    /// A system message (`user_changed_number`, `user_changed_user_id`):
    /// it closes the sender's group once it can be applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

/// A `user_preferences` change as it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreferenceLetter {
    pub business: Option<String>,
    pub from: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    /// `stop` or `resume`.
    pub value: String,
    pub captured_at: Option<Timestamp>,
}

impl LetterPayload {
    /// Whether this letter holds an opt-out that applies once it can.
    pub fn holds_opt_out(&self) -> bool {
        match self {
            LetterPayload::Message(m) => m.opt_out.is_some() || m.system.is_some(),
            LetterPayload::Preference(p) => p.value == "stop",
            LetterPayload::Unrecorded { .. } => false,
        }
    }

    /// The user id a letter waits for: its sender's, when the sender has
    /// no readable number.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            LetterPayload::Message(m) => m.user_id.as_deref(),
            LetterPayload::Preference(p) => p.user_id.as_deref(),
            LetterPayload::Unrecorded { .. } => None,
        }
    }
}

/// Whether a dead letter's payload (any JSON: letters kept by older
/// versions have other shapes) names an identity: a string value equal to
/// it, or (for a number) to it without its `+`, or a `wa_id` in a legacy
/// Brazilian or Mexican form whose canonical number it is.
pub fn letter_names(payload: &serde_json::Value, identity: &str) -> bool {
    use serde_json::Value;
    match payload {
        Value::String(value) => {
            value == identity
                || (identity.starts_with('+')
                    && (identity[1..] == *value
                        || wa_id_to_e164(value).is_ok_and(|n| n.as_str() == identity)))
        }
        Value::Array(items) => items.iter().any(|v| letter_names(v, identity)),
        Value::Object(fields) => fields.values().any(|v| letter_names(v, identity)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_reads_back_as_it_was_written() {
        let letter = LetterPayload::Message(MessageLetter {
            provider: "whatsapp".into(),
            message_id: "wamid.1".into(),
            business: Some("106540352242922".into()),
            from: None,
            user_id: Some("US.13491208655302741918".into()),
            parent_user_id: None,
            waba: Some("102290129340398".into()),
            captured_at: Some(Timestamp::from_millis(1_749_416_383_000)),
            content: Content::Text {
                body: "STOP".into(),
                reply_to: Some("wamid.prompt".into()),
            },
            opt_out: Some(vec![Purpose::Marketing, Purpose::Utility]),
            heard: [("rule".to_owned(), "keyword".to_owned())].into(),
            system: None,
        });
        let json = serde_json::to_value(&letter).unwrap();
        assert_eq!(json["kind"], "message");
        assert_eq!(json["content"]["type"], "text");
        assert_eq!(json["captured_at"], "2025-06-08T20:59:43.000Z");
        assert_eq!(
            serde_json::from_value::<LetterPayload>(json).unwrap(),
            letter
        );
        assert!(letter.holds_opt_out());
        assert_eq!(letter.user_id(), Some("US.13491208655302741918"));
    }

    /// A letter is found by the canonical identity whatever form the
    /// provider sent: a Brazilian mobile without its ninth digit, a Mexican
    /// one with the legacy `1`, with or without `+`; a longer number that
    /// merely contains it is not it.
    #[test]
    fn a_letter_names_the_canonical_identity_in_any_form() {
        let letter = |from: &str| serde_json::json!({"kind": "message", "from": from, "detail": {"n": [1, "x"]}});
        for form in ["551199887766", "5511999887766", "+5511999887766"] {
            assert!(letter_names(&letter(form), "+5511999887766"), "{form}");
        }
        assert!(letter_names(&letter("5215512345678"), "+525512345678"));
        assert!(letter_names(&letter("525512345678"), "+525512345678"));
        assert!(!letter_names(&letter("15511999887766"), "+5511999887766"));
        assert!(!letter_names(&letter("5511999887766"), "+551199988776"));
        let user = serde_json::json!({"user_id": "US.13491208655302741918"});
        assert!(letter_names(&user, "US.13491208655302741918"));
        assert!(!letter_names(&user, "US.1349120865530274191"));
    }
}
