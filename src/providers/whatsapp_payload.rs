//! WhatsApp Cloud API webhook bodies (`messages` and `user_preferences` fields), read leniently
//! and flattened by [`events`] into the few things the consent service acts on.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The `object` Meta sends for WhatsApp Business Account webhooks.
pub const WABA_OBJECT: &str = "whatsapp_business_account";

// Every field below reads through `lenient`, `lenient_vec` or `unix_seconds`: Meta adds
// and drops fields over time (phone numbers disappear for username users, for one), and
// one odd part must cost us that part only, never the whole delivery. A part that is
// missing, null or of the wrong shape reads as absent; unknown fields are ignored.

/// The webhook body as POSTed by Meta.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Notification {
    #[serde(deserialize_with = "lenient")]
    pub object: Option<String>,
    #[serde(deserialize_with = "lenient_vec")]
    pub entry: Vec<WabaEntry>,
}

/// One WhatsApp Business Account's batch of changes.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WabaEntry {
    /// The WhatsApp Business Account id.
    #[serde(deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_vec")]
    pub changes: Vec<Change>,
}

/// One subscribed field's change, such as `messages` or `user_preferences`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Change {
    #[serde(deserialize_with = "lenient")]
    pub field: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub value: ChangeValue,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChangeValue {
    #[serde(deserialize_with = "lenient")]
    pub messaging_product: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub metadata: Metadata,
    #[serde(deserialize_with = "lenient_vec")]
    pub contacts: Vec<Contact>,
    #[serde(deserialize_with = "lenient_vec")]
    pub messages: Vec<Message>,
    #[serde(deserialize_with = "lenient_vec")]
    pub statuses: Vec<Status>,
    #[serde(deserialize_with = "lenient_vec")]
    pub user_preferences: Vec<UserPreference>,
    #[serde(deserialize_with = "lenient_vec")]
    pub errors: Vec<WebhookError>,
}

/// The business phone number the change concerns.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Metadata {
    #[serde(deserialize_with = "lenient")]
    pub display_phone_number: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub phone_number_id: Option<String>,
}

/// The person behind a message or preference change.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Contact {
    #[serde(deserialize_with = "lenient")]
    pub profile: Profile,
    /// Phone-number based id; omitted for users with a username unless Meta may share the number.
    #[serde(deserialize_with = "lenient")]
    pub wa_id: Option<String>,
    /// Business-scoped user id (BSUID), e.g. `US.13491208655302741918`.
    #[serde(deserialize_with = "lenient")]
    pub user_id: Option<String>,
    /// BSUID shared across linked business portfolios, when Meta has enabled it.
    #[serde(deserialize_with = "lenient")]
    pub parent_user_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Profile {
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub username: Option<String>,
}

/// A message sent by the person to the business.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Message {
    /// The sender's phone number; may be omitted for users with a username.
    #[serde(deserialize_with = "lenient")]
    pub from: Option<String>,
    /// The sender's BSUID on the message itself. Meta's references put the BSUID on
    /// `contacts[]`; this is read too so a payload carrying it here is not lost.
    #[serde(deserialize_with = "lenient")]
    pub from_user_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(deserialize_with = "unix_seconds")]
    pub timestamp: Option<i64>,
    #[serde(rename = "type", deserialize_with = "lenient")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub context: Option<MessageContext>,
    #[serde(deserialize_with = "lenient")]
    pub text: Option<Text>,
    #[serde(deserialize_with = "lenient")]
    pub button: Option<Button>,
    #[serde(deserialize_with = "lenient")]
    pub interactive: Option<Interactive>,
    #[serde(deserialize_with = "lenient")]
    pub image: Option<Media>,
    #[serde(deserialize_with = "lenient")]
    pub audio: Option<Media>,
    #[serde(deserialize_with = "lenient")]
    pub video: Option<Media>,
    #[serde(deserialize_with = "lenient")]
    pub document: Option<Media>,
    #[serde(deserialize_with = "lenient")]
    pub sticker: Option<Media>,
    #[serde(deserialize_with = "lenient")]
    pub reaction: Option<Reaction>,
    #[serde(deserialize_with = "lenient")]
    pub system: Option<System>,
    #[serde(deserialize_with = "lenient_vec")]
    pub errors: Vec<WebhookError>,
}

/// The message this one replies to (or the business message whose button was tapped).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MessageContext {
    #[serde(deserialize_with = "lenient")]
    pub from: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Text {
    #[serde(deserialize_with = "lenient")]
    pub body: Option<String>,
}

/// A quick-reply button tapped on a template message.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Button {
    #[serde(deserialize_with = "lenient")]
    pub payload: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Interactive {
    #[serde(rename = "type", deserialize_with = "lenient")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub button_reply: Option<Reply>,
    #[serde(deserialize_with = "lenient")]
    pub list_reply: Option<Reply>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Reply {
    #[serde(deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub title: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub description: Option<String>,
}

/// Image, audio, video, document or sticker metadata; the bytes are fetched separately.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Media {
    #[serde(deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub mime_type: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub sha256: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub caption: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub filename: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Reaction {
    #[serde(deserialize_with = "lenient")]
    pub message_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub emoji: Option<String>,
}

/// A system notice, such as the user changing their number or BSUID.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct System {
    #[serde(deserialize_with = "lenient")]
    pub body: Option<String>,
    #[serde(rename = "type", deserialize_with = "lenient")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub wa_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub user_id: Option<String>,
}

/// The delivery status of a message the business sent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Status {
    #[serde(deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub status: Option<String>,
    #[serde(deserialize_with = "unix_seconds")]
    pub timestamp: Option<i64>,
    #[serde(deserialize_with = "lenient")]
    pub recipient_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub recipient_user_id: Option<String>,
    #[serde(deserialize_with = "lenient_vec")]
    pub errors: Vec<WebhookError>,
}

/// A marketing-message preference the person set in WhatsApp (`user_preferences` field).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserPreference {
    #[serde(deserialize_with = "lenient")]
    pub wa_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub user_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub detail: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub category: Option<String>,
    /// `stop` or `resume`.
    #[serde(deserialize_with = "lenient")]
    pub value: Option<String>,
    /// Documented as an integer, unlike message timestamps; both forms are accepted.
    #[serde(deserialize_with = "unix_seconds")]
    pub timestamp: Option<i64>,
}

/// An error Meta attaches to a change, message or status.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WebhookError {
    #[serde(deserialize_with = "lenient")]
    pub code: Option<i64>,
    #[serde(deserialize_with = "lenient")]
    pub title: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub message: Option<String>,
}

/// What the service acts on, one per message or preference, in payload order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message from the person (any type except reaction and system).
    Message(MessageEvent),
    /// `user_preferences` with category `marketing_messages`.
    Preference(PreferenceEvent),
    /// Statuses, reactions and system messages: nothing to record for a
    /// business number of the tenant; kept as a dead letter for one it
    /// does not have (docs/webhooks.md).
    Unrecorded(Unrecorded),
    /// The system messages `user_changed_number` and
    /// `user_changed_user_id`: the sender's group is closed (docs/identities.md).
    Changed(ChangedEvent),
    /// A `changes[]` entry the service does not act on (other fields, other products, items without an id) — counted, ignored.
    Ignored,
}

/// Something that records nothing, with what a dead letter keeps of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecorded {
    /// `value.metadata.phone_number_id`.
    pub phone_number_id: Option<String>,
    /// Names the delivery, so that a retry keeps no second letter.
    pub dedup: Vec<String>,
    /// What an admin reads: the type and its ids, times and statuses.
    pub detail: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent {
    /// `value.metadata.phone_number_id`: which business number received it.
    pub phone_number_id: Option<String>,
    /// `entry[].id`: the WhatsApp Business Account.
    pub waba: Option<String>,
    /// `messages[].from`, or the matching `contacts[].wa_id`.
    pub wa_id: Option<String>,
    /// Business-scoped user id, from the message or its matching contact.
    pub user_id: Option<String>,
    /// The parent user id of the matching contact.
    pub parent_user_id: Option<String>,
    pub message_id: String,
    /// Unix seconds; `None` when absent or unparseable.
    pub timestamp: Option<i64>,
    pub content: Content,
}

/// A system message saying the person changed their number or user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedEvent {
    pub phone_number_id: Option<String>,
    pub waba: Option<String>,
    /// The identities the message arrived from (the old ones).
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
    pub parent_user_id: Option<String>,
    pub message_id: String,
    pub timestamp: Option<i64>,
    /// `user_changed_number` or `user_changed_user_id`.
    pub system: String,
    /// What a dead letter keeps of it.
    pub detail: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    /// `text.body`; `reply_to` is `context.id`.
    Text {
        body: String,
        reply_to: Option<String>,
    },
    /// `button.payload` (template quick reply) or `interactive.button_reply.id`.
    Button {
        payload: String,
        reply_to: Option<String>,
    },
    /// Media, location, contacts, list replies, orders, unknown types…
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferenceEvent {
    pub phone_number_id: Option<String>,
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
    /// As sent: `stop` or `resume`.
    pub value: String,
    pub timestamp: Option<i64>,
}

/// Flattens a notification into events, in payload order. Pure: no I/O, never panics.
pub fn events(n: &Notification) -> Vec<Event> {
    // A body for another product must not turn into consent events; a missing `object`
    // is tolerated like any other missing part.
    let foreign = n.object.as_deref().is_some_and(|o| o != WABA_OBJECT);
    let mut out = Vec::new();
    for (waba, change) in n
        .entry
        .iter()
        .flat_map(|e| e.changes.iter().map(move |c| (an_id(&e.id), c)))
    {
        if foreign {
            out.push(Event::Ignored);
        } else {
            change_events(waba, change, &mut out);
        }
    }
    out
}

fn change_events(waba: Option<&str>, change: &Change, out: &mut Vec<Event>) {
    let start = out.len();
    let value = &change.value;
    // A missing `field` is read by content, so a trimmed body still yields its events.
    let field = change.field.as_deref();
    if matches!(field, None | Some("messages")) {
        for (index, message) in value.messages.iter().enumerate() {
            out.push(message_event(message, index, value, waba));
        }
        // Delivery receipts say nothing about consent: one event per change, however many.
        if !value.statuses.is_empty() {
            out.push(statuses_event(value));
        }
    }
    if matches!(field, None | Some("user_preferences")) {
        for (index, preference) in value.user_preferences.iter().enumerate() {
            out.push(preference_event(preference, index, value));
        }
    }
    // Every change is counted, even one with nothing we understand in it.
    if out.len() == start {
        out.push(Event::Ignored);
    }
}

fn message_event(
    message: &Message,
    index: usize,
    value: &ChangeValue,
    waba: Option<&str>,
) -> Event {
    let kind = message_kind(message);
    // Without an id the message cannot be deduplicated or cited as evidence.
    let Some(message_id) = present(&message.id) else {
        return Event::Ignored;
    };
    // Reactions and system notices are not the person writing to us.
    if let Some(kind @ ("reaction" | "system")) = kind {
        let mut detail = serde_json::json!({"type": kind, "message_id": message_id,
            "from": an_id(&message.from), "timestamp": message.timestamp});
        if let Some(system) = &message.system {
            detail["system"] = serde_json::json!({"type": system.kind, "body": system.body,
                "wa_id": system.wa_id, "user_id": system.user_id});
        }
        if let Some(reaction) = &message.reaction {
            detail["reaction"] =
                serde_json::json!({"message_id": reaction.message_id, "emoji": reaction.emoji});
        }
        let changed = message
            .system
            .as_ref()
            .and_then(|s| present(&s.kind))
            .filter(|k| matches!(*k, "user_changed_number" | "user_changed_user_id"));
        if let Some(system) = changed {
            let who = sender_ids(message, index, value);
            return Event::Changed(ChangedEvent {
                phone_number_id: an_id(&value.metadata.phone_number_id).map(str::to_owned),
                waba: waba.map(str::to_owned),
                wa_id: who.0,
                user_id: who.1,
                parent_user_id: who.2,
                message_id: message_id.to_owned(),
                timestamp: message.timestamp,
                system: system.to_owned(),
                detail,
            });
        }
        return Event::Unrecorded(Unrecorded {
            phone_number_id: an_id(&value.metadata.phone_number_id).map(str::to_owned),
            dedup: vec!["whatsapp".to_owned(), message_id.to_owned()],
            detail,
        });
    }
    let (wa_id, user_id, parent_user_id) = sender_ids(message, index, value);
    Event::Message(MessageEvent {
        phone_number_id: an_id(&value.metadata.phone_number_id).map(str::to_owned),
        waba: waba.map(str::to_owned),
        wa_id,
        user_id,
        parent_user_id,
        message_id: message_id.to_owned(),
        timestamp: message.timestamp,
        content: content(message, kind),
    })
}

/// The sender's wa_id, user id and parent id: from the message, or from
/// the `contacts[]` item that describes it.
fn sender_ids(
    message: &Message,
    index: usize,
    value: &ChangeValue,
) -> (Option<String>, Option<String>, Option<String>) {
    let from = an_id(&message.from);
    let contact = matching_contact(&value.contacts, from, index);
    let wa_id = from.or_else(|| contact.and_then(|c| an_id(&c.wa_id)));
    let user_id = an_id(&message.from_user_id).or_else(|| contact.and_then(|c| an_id(&c.user_id)));
    let parent = contact.and_then(|c| an_id(&c.parent_user_id));
    (
        wa_id.map(str::to_owned),
        user_id.map(str::to_owned),
        parent.map(str::to_owned),
    )
}

/// A change's delivery statuses as one event: their ids, statuses and times.
fn statuses_event(value: &ChangeValue) -> Event {
    let statuses: Vec<Value> = value
        .statuses
        .iter()
        .map(|s| serde_json::json!({"id": s.id, "status": s.status, "timestamp": s.timestamp}))
        .collect();
    let mut dedup = vec!["whatsapp-statuses".to_owned()];
    for s in &value.statuses {
        dedup.push(format!(
            "{}:{}:{}",
            s.id.as_deref().unwrap_or(""),
            s.status.as_deref().unwrap_or(""),
            s.timestamp.unwrap_or(0)
        ));
    }
    Event::Unrecorded(Unrecorded {
        phone_number_id: an_id(&value.metadata.phone_number_id).map(str::to_owned),
        dedup,
        detail: serde_json::json!({"type": "statuses", "statuses": statuses}),
    })
}

/// `type`, or, when Meta's `type` is missing, the first part that says what it is.
fn message_kind(message: &Message) -> Option<&str> {
    message.kind.as_deref().or(if message.text.is_some() {
        Some("text")
    } else if message.button.is_some() {
        Some("button")
    } else if message.interactive.is_some() {
        Some("interactive")
    } else if message.reaction.is_some() {
        Some("reaction")
    } else if message.system.is_some() {
        Some("system")
    } else {
        None
    })
}

fn content(message: &Message, kind: Option<&str>) -> Content {
    let reply_to = message.context.as_ref().and_then(|c| c.id.clone());
    match kind {
        Some("text") => match message.text.as_ref().and_then(|t| t.body.clone()) {
            Some(body) => Content::Text { body, reply_to },
            None => Content::Other,
        },
        Some("button") => {
            // Meta sets the payload to the label when the template defined none; fall back
            // to the label anyway rather than lose the tap.
            let button = message.button.as_ref();
            match button.and_then(|b| present(&b.payload).or(present(&b.text))) {
                Some(payload) => Content::Button {
                    payload: payload.to_owned(),
                    reply_to,
                },
                None => Content::Other,
            }
        }
        Some("interactive") => {
            let interactive = message.interactive.as_ref();
            let is_button = interactive.is_some_and(|i| {
                i.kind.as_deref() == Some("button_reply")
                    || (i.kind.is_none() && i.button_reply.is_some())
            });
            match interactive.and_then(|i| present(&i.button_reply.as_ref()?.id)) {
                Some(payload) if is_button => Content::Button {
                    payload: payload.to_owned(),
                    reply_to,
                },
                _ => Content::Other,
            }
        }
        _ => Content::Other,
    }
}

fn preference_event(preference: &UserPreference, index: usize, value: &ChangeValue) -> Event {
    if preference.category.as_deref() != Some("marketing_messages") {
        return Event::Ignored;
    }
    let Some(setting) = present(&preference.value) else {
        return Event::Ignored;
    };
    let own_wa_id = an_id(&preference.wa_id);
    let contact = matching_contact(&value.contacts, own_wa_id, index);
    let wa_id = own_wa_id.or_else(|| contact.and_then(|c| an_id(&c.wa_id)));
    let user_id = an_id(&preference.user_id).or_else(|| contact.and_then(|c| an_id(&c.user_id)));
    Event::Preference(PreferenceEvent {
        phone_number_id: an_id(&value.metadata.phone_number_id).map(str::to_owned),
        wa_id: wa_id.map(str::to_owned),
        user_id: user_id.map(str::to_owned),
        value: setting.to_owned(),
        timestamp: preference.timestamp,
    })
}

/// The contact describing item `index`: by wa_id when the item names one, else by position.
/// Meta sends one contact per sender, so a lone contact covers every item of the change.
fn matching_contact<'a>(
    contacts: &'a [Contact],
    wa_id: Option<&str>,
    index: usize,
) -> Option<&'a Contact> {
    match wa_id {
        Some(wa_id) => contacts.iter().find(|c| c.wa_id.as_deref() == Some(wa_id)),
        None => contacts.get(index).or(match contacts {
            [only] => Some(only),
            _ => None,
        }),
    }
}

/// An empty string identifies nobody, so it counts as absent.
fn present(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|s| !s.is_empty())
}

/// An identifier Meta sends that is stored as it is or looked up (wa_id,
/// user id, phone number id): one with a control character is no
/// identifier and counts as absent. (A message id is only hashed or sealed,
/// so any non-empty one is kept: a STOP is never dropped for its id.)
fn an_id(field: &Option<String>) -> Option<&str> {
    present(field).filter(|s| !s.chars().any(char::is_control))
}

/// Reads any JSON and keeps it only if it has the expected shape; otherwise the default.
fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).unwrap_or_default())
}

/// Like [`lenient`] but item by item, so one malformed item keeps its place (and so
/// positional contact matching stays aligned) without taking its neighbours down.
fn lenient_vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::Array(items) => items
            .into_iter()
            .map(|item| T::deserialize(item).unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    })
}

/// Unix seconds from a string (messages, statuses) or a number (user_preferences).
fn unix_seconds<'de, D>(deserializer: D) -> Result<Option<i64>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHONE_NUMBER_ID: &str = "106540352242922";
    /// The WhatsApp Business Account of the fixtures (`entry[].id`).
    const WABA_ID: &str = "102290129340398";
    const LENA: &str = "4915112345678";
    const LENA_BSUID: &str = "DE.1502576394655843";

    fn parse(json: &str) -> Notification {
        serde_json::from_str(json).expect("lenient parsing accepts any JSON object")
    }

    fn events_of(json: &str) -> Vec<Event> {
        events(&parse(json))
    }

    fn message(
        wa_id: Option<&str>,
        user_id: Option<&str>,
        message_id: &str,
        timestamp: i64,
        content: Content,
    ) -> Event {
        Event::Message(MessageEvent {
            phone_number_id: Some(PHONE_NUMBER_ID.to_owned()),
            waba: Some(WABA_ID.to_owned()),
            wa_id: wa_id.map(str::to_owned),
            user_id: user_id.map(str::to_owned),
            parent_user_id: None,
            message_id: message_id.to_owned(),
            timestamp: Some(timestamp),
            content,
        })
    }

    fn text(body: &str, reply_to: Option<&str>) -> Content {
        Content::Text {
            body: body.to_owned(),
            reply_to: reply_to.map(str::to_owned),
        }
    }

    fn button(payload: &str, reply_to: Option<&str>) -> Content {
        Content::Button {
            payload: payload.to_owned(),
            reply_to: reply_to.map(str::to_owned),
        }
    }

    #[test]
    fn text_stop() {
        let n = parse(include_str!("../../tests/fixtures/whatsapp/text.json"));
        assert_eq!(n.object.as_deref(), Some(WABA_OBJECT));
        assert_eq!(n.entry[0].id.as_deref(), Some("102290129340398"));
        let value = &n.entry[0].changes[0].value;
        assert_eq!(value.messaging_product.as_deref(), Some("whatsapp"));
        assert_eq!(
            value.metadata.display_phone_number.as_deref(),
            Some("15550783881")
        );
        assert_eq!(
            value.contacts[0].profile.name.as_deref(),
            Some("Lena Schmidt")
        );
        assert_eq!(
            events(&n),
            vec![message(
                Some(LENA),
                None,
                "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFDlGRkE5REY2NjhEMEJFNjI2RDM3AA==",
                1_749_416_383,
                text("STOP", None),
            )]
        );
    }

    #[test]
    fn text_reply_carries_context_id() {
        assert_eq!(
            events_of(include_str!(
                "../../tests/fixtures/whatsapp/text_reply.json"
            )),
            vec![message(
                Some(LENA),
                None,
                "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFEYwQTE1MDczQjk0RDU4M0RERjE2AA==",
                1_749_416_502,
                text(
                    "Bitte keine Angebote mehr",
                    Some("wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjhDMkI5NkZFNDg4RDEwODcyOQA="),
                ),
            )]
        );
    }

    #[test]
    fn template_quick_reply_button() {
        assert_eq!(
            events_of(include_str!("../../tests/fixtures/whatsapp/button.json")),
            vec![message(
                Some(LENA),
                None,
                "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFDE0NDMwODMwN0M1N0QzNUJCREUxAA==",
                1_749_416_620,
                button(
                    "STOP_PROMOTIONS",
                    Some("wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjE3M0M0QjZBOTE3ODk2OEY3NgA="),
                ),
            )]
        );
    }

    #[test]
    fn interactive_button_reply() {
        assert_eq!(
            events_of(include_str!(
                "../../tests/fixtures/whatsapp/interactive.json"
            )),
            vec![message(
                Some(LENA),
                None,
                "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFDYwNkI0MDEwNEQzNDA2MTk1QkM4AA==",
                1_749_416_744,
                button(
                    "optin_marketing_yes",
                    Some("wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjE3M0M0QjZBOTE3ODk2OEY3NgA="),
                ),
            )]
        );
    }

    #[test]
    fn image_is_other_even_with_a_stop_caption() {
        let n = parse(include_str!("../../tests/fixtures/whatsapp/image.json"));
        let image = n.entry[0].changes[0].value.messages[0]
            .image
            .as_ref()
            .unwrap();
        assert_eq!(image.mime_type.as_deref(), Some("image/jpeg"));
        assert_eq!(image.id.as_deref(), Some("1003383421387256"));
        assert_eq!(
            events(&n),
            vec![message(
                Some(LENA),
                None,
                "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFDM4QzJERjlCMDIwQkQ1RUUxRTZCAA==",
                1_749_416_861,
                Content::Other,
            )]
        );
    }

    /// The one event of a notification, which must record nothing.
    fn unrecorded(events: Vec<Event>) -> Unrecorded {
        match events.as_slice() {
            [Event::Unrecorded(u)] => u.clone(),
            other => panic!("not one unrecorded event: {other:?}"),
        }
    }

    #[test]
    fn reaction_records_nothing() {
        let n = parse(include_str!("../../tests/fixtures/whatsapp/reaction.json"));
        let reaction = n.entry[0].changes[0].value.messages[0]
            .reaction
            .as_ref()
            .unwrap();
        assert_eq!(reaction.emoji.as_deref(), Some("👍"));
        let u = unrecorded(events(&n));
        assert_eq!(u.phone_number_id.as_deref(), Some(PHONE_NUMBER_ID));
        assert_eq!(u.detail["type"], "reaction");
        assert_eq!(u.detail["reaction"]["emoji"], "👍");
        assert_eq!(u.dedup[0], "whatsapp");
    }

    #[test]
    fn status_is_one_unrecorded_event() {
        let n = parse(include_str!("../../tests/fixtures/whatsapp/status.json"));
        let status = &n.entry[0].changes[0].value.statuses[0];
        assert_eq!(status.status.as_deref(), Some("delivered"));
        assert_eq!(status.timestamp, Some(1_749_416_401));
        let u = unrecorded(events(&n));
        assert_eq!(u.phone_number_id.as_deref(), Some(PHONE_NUMBER_ID));
        assert_eq!(u.detail["statuses"][0]["status"], "delivered");
        assert_eq!(u.detail["statuses"][0]["timestamp"], 1_749_416_401);
    }

    #[test]
    fn many_statuses_in_one_change_are_one_event() {
        let json = r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages",
            "value":{"statuses":[{"id":"a","status":"sent"},{"id":"b","status":"read"},{"id":"c"}]}}]}]}"#;
        let u = unrecorded(events_of(json));
        assert_eq!(u.detail["statuses"].as_array().unwrap().len(), 3);
        assert_eq!(
            u.dedup,
            ["whatsapp-statuses", "a:sent:0", "b:read:0", "c::0"]
        );
    }

    #[test]
    fn user_preferences_stop() {
        assert_eq!(
            events_of(include_str!(
                "../../tests/fixtures/whatsapp/user_preferences.json"
            )),
            vec![Event::Preference(PreferenceEvent {
                phone_number_id: Some(PHONE_NUMBER_ID.to_owned()),
                wa_id: Some(LENA.to_owned()),
                user_id: None,
                value: "stop".to_owned(),
                timestamp: Some(1_749_417_102),
            })]
        );
    }

    #[test]
    fn user_preferences_timestamp_as_string_and_other_categories() {
        let json = r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"user_preferences",
            "value":{"metadata":{"phone_number_id":"106540352242922"},
              "contacts":[{"wa_id":"4915112345678","user_id":"DE.1502576394655843"}],
              "user_preferences":[
                {"wa_id":"4915112345678","category":"marketing_messages","value":"resume","timestamp":"1749417200"},
                {"wa_id":"4915112345678","category":"something_new","value":"stop","timestamp":1749417201},
                {"category":"marketing_messages","timestamp":1749417202}
              ]}}]}]}"#;
        assert_eq!(
            events_of(json),
            vec![
                Event::Preference(PreferenceEvent {
                    phone_number_id: Some(PHONE_NUMBER_ID.to_owned()),
                    wa_id: Some(LENA.to_owned()),
                    user_id: Some(LENA_BSUID.to_owned()),
                    value: "resume".to_owned(),
                    timestamp: Some(1_749_417_200),
                }),
                Event::Ignored,
                Event::Ignored,
            ]
        );
    }

    #[test]
    fn identifiers_with_control_characters_count_as_absent() {
        let json = r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"user_preferences",
            "value":{"metadata":{"phone_number_id":"1065403\u0000"},
              "contacts":[{"wa_id":"4915112345678","user_id":"DE.\u0000"}],
              "user_preferences":[
                {"wa_id":"4915112345678","category":"marketing_messages","value":"stop","timestamp":1749417200}
              ]}}]}]}"#;
        assert_eq!(
            events_of(json),
            vec![Event::Preference(PreferenceEvent {
                phone_number_id: None,
                wa_id: Some(LENA.to_owned()),
                user_id: None,
                value: "stop".to_owned(),
                timestamp: Some(1_749_417_200),
            }),]
        );
    }

    #[test]
    fn brazilian_wa_id_is_passed_through_verbatim() {
        // WhatsApp reports some Brazilian mobiles without the ninth digit; normalising
        // the number is the caller's job, this layer keeps what Meta sent.
        assert_eq!(
            events_of(include_str!(
                "../../tests/fixtures/whatsapp/brazil_text.json"
            )),
            vec![message(
                Some("551199887766"),
                None,
                "wamid.HBgMNTUxMTk5ODg3NzY2FQIAEhgURTUyODAwRkREOTZGRDFERDUzMDQA",
                1_749_417_230,
                text("PARAR", None),
            )]
        );
    }

    #[test]
    fn bsuid_and_wa_id_from_the_matching_contact() {
        let n = parse(include_str!(
            "../../tests/fixtures/whatsapp/bsuid_text.json"
        ));
        let contact = &n.entry[0].changes[0].value.contacts[0];
        assert_eq!(contact.profile.username.as_deref(), Some("@lena.schmidt"));
        assert_eq!(
            events(&n),
            vec![message(
                Some(LENA),
                Some(LENA_BSUID),
                "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFEI1RENGRDI0MzI5OTk0RjFERDUwAA==",
                1_749_417_355,
                text("STOP", None),
            )]
        );
    }

    #[test]
    fn bsuid_only_matches_the_contact_by_position() {
        assert_eq!(
            events_of(include_str!(
                "../../tests/fixtures/whatsapp/bsuid_only.json"
            )),
            vec![message(
                None,
                Some(LENA_BSUID),
                "wamid.HBgTREUuMTUwMjU3NjM5NDY1NTg0MxUCABIYFDdBMTRFMEQ5QjI2QzQwOEFFRjYzAA==",
                1_749_417_468,
                text("STOP", None),
            )]
        );
    }

    #[test]
    fn contacts_are_matched_by_wa_id_not_order() {
        let json = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages",
            "value":{"metadata":{"phone_number_id":"106540352242922"},
              "contacts":[{"wa_id":"111","user_id":"US.1"},{"wa_id":"222","user_id":"US.2"}],
              "messages":[
                {"from":"222","id":"m1","timestamp":"1","type":"text","text":{"body":"a"}},
                {"from":"333","id":"m2","timestamp":"2","type":"text","text":{"body":"b"}},
                {"from":"444","from_user_id":"US.4","id":"m3","timestamp":"3","type":"text","text":{"body":"c"}}
              ]}}]}]}"#;
        assert_eq!(
            events_of(json),
            vec![
                message(Some("222"), Some("US.2"), "m1", 1, text("a", None)),
                message(Some("333"), None, "m2", 2, text("b", None)),
                message(Some("444"), Some("US.4"), "m3", 3, text("c", None)),
            ]
        );
    }

    #[test]
    fn message_types_without_consent_meaning() {
        let json = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages",
            "value":{"metadata":{"phone_number_id":"106540352242922"},"contacts":[{"wa_id":"111"}],
              "messages":[
                {"from":"111","id":"s","timestamp":"1","type":"system","system":{"body":"User changed number","type":"user_changed_number","wa_id":"112"}},
                {"from":"111","timestamp":"2","type":"text","text":{"body":"STOP"}},
                {"from":"111","id":"","timestamp":"3","type":"text","text":{"body":"STOP"}},
                {"from":"111","id":"l","timestamp":"4","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"row","title":"Row","description":"d"}}},
                {"from":"111","id":"u","timestamp":"5","type":"unsupported","errors":[{"code":131051,"title":"Message type unknown"}]},
                {"from":"111","id":"t","timestamp":"6","type":"text"},
                {"from":"111","id":"b","timestamp":"7","type":"button","button":{"text":"Stop promotions"}},
                {"from":"111","id":"n","timestamp":"8","text":{"body":"untyped"}}
              ]}}]}]}"#;
        let wa = Some("111");
        let mut events = events_of(json);
        let Event::Changed(system) = events.remove(0) else {
            panic!("a changed number is its own event");
        };
        assert_eq!(system.system, "user_changed_number");
        assert_eq!(system.wa_id.as_deref(), Some("111"));
        assert_eq!(system.message_id, "s");
        assert_eq!(system.detail["system"]["wa_id"], "112");
        assert_eq!(
            events,
            vec![
                Event::Ignored,
                Event::Ignored,
                message(wa, None, "l", 4, Content::Other),
                message(wa, None, "u", 5, Content::Other),
                message(wa, None, "t", 6, Content::Other),
                message(wa, None, "b", 7, button("Stop promotions", None)),
                message(wa, None, "n", 8, text("untyped", None)),
            ]
        );
    }

    #[test]
    fn timestamps_as_string_number_or_garbage() {
        let json = r#"{"entry":[{"changes":[{"value":{"messages":[
            {"from":"1","id":"a","timestamp":"1749416383","type":"text","text":{"body":"x"}},
            {"from":"1","id":"b","timestamp":1749416384,"type":"text","text":{"body":"x"}},
            {"from":"1","id":"c","timestamp":"yesterday","type":"text","text":{"body":"x"}},
            {"from":"1","id":"d","timestamp":1.5,"type":"text","text":{"body":"x"}},
            {"from":"1","id":"e","type":"text","text":{"body":"x"}}
        ]}}]}]}"#;
        let stamps: Vec<Option<i64>> = events_of(json)
            .into_iter()
            .map(|e| match e {
                Event::Message(m) => m.timestamp,
                other => panic!("expected a message, got {other:?}"),
            })
            .collect();
        assert_eq!(
            stamps,
            vec![Some(1_749_416_383), Some(1_749_416_384), None, None, None]
        );
    }

    #[test]
    fn garbage_but_valid_json_never_panics() {
        assert_eq!(events_of(r#"{}"#), vec![]);
        assert_eq!(events_of(r#"{"object":"x"}"#), vec![]);
        assert_eq!(events_of(r#"{"entry":[{}]}"#), vec![]);
        assert_eq!(
            events_of(r#"{"entry":[{"changes":[{}]}]}"#),
            vec![Event::Ignored]
        );
        assert_eq!(
            events_of(r#"{"entry":[{"changes":[{"value":null,"field":null}]}]}"#),
            vec![Event::Ignored]
        );
        assert_eq!(
            events_of(r#"{"object":7,"entry":"nope","extra":{"deep":[1,2]}}"#),
            vec![]
        );
        assert_eq!(
            events_of(r#"{"entry":[null,3,{"changes":[null,{"value":[]}]}]}"#),
            vec![Event::Ignored, Event::Ignored]
        );
        // Wrong shapes deep inside: the bad item keeps its place and reads as empty.
        let json = r#"{"entry":[{"changes":[{"field":"messages","value":{
            "metadata":"oops","contacts":{"wa_id":"1"},
            "messages":[42,{"from":7,"id":"m","timestamp":{},"type":"text","text":"STOP","context":[]}]}}]}]}"#;
        assert_eq!(
            events_of(json),
            vec![
                Event::Ignored,
                Event::Message(MessageEvent {
                    phone_number_id: None,
                    waba: None,
                    wa_id: None,
                    user_id: None,
                    parent_user_id: None,
                    message_id: "m".to_owned(),
                    timestamp: None,
                    content: Content::Other,
                }),
            ]
        );
    }

    #[test]
    fn other_fields_and_other_objects_are_ignored() {
        let echoes = r#"{"object":"whatsapp_business_account","entry":[{"changes":[
            {"field":"smb_message_echoes","value":{"messages":[{"from":"1","id":"m","type":"text","text":{"body":"STOP"}}]}},
            {"field":"account_update","value":{"event":"VERIFIED_ACCOUNT"}}]}]}"#;
        assert_eq!(events_of(echoes), vec![Event::Ignored, Event::Ignored]);
        let foreign = r#"{"object":"instagram","entry":[{"changes":[
            {"field":"messages","value":{"messages":[{"from":"1","id":"m","type":"text","text":{"body":"STOP"}}]}}]}]}"#;
        assert_eq!(events_of(foreign), vec![Event::Ignored]);
    }

    #[test]
    fn events_keep_payload_order_across_entries_and_changes() {
        let json = r#"{"object":"whatsapp_business_account","entry":[
            {"changes":[{"field":"messages","value":{"statuses":[{"id":"s"}]}},
                        {"field":"messages","value":{"messages":[{"from":"1","id":"m1","timestamp":"1","type":"text","text":{"body":"a"}}]}}]},
            {"changes":[{"field":"user_preferences","value":{"user_preferences":[{"wa_id":"1","category":"marketing_messages","value":"stop","timestamp":2}]}}]}]}"#;
        let mut events = events_of(json);
        assert_eq!(
            unrecorded(events.drain(..1).collect()).detail["type"],
            "statuses"
        );
        assert_eq!(
            events,
            vec![
                Event::Message(MessageEvent {
                    phone_number_id: None,
                    waba: None,
                    wa_id: Some("1".to_owned()),
                    user_id: None,
                    parent_user_id: None,
                    message_id: "m1".to_owned(),
                    timestamp: Some(1),
                    content: text("a", None),
                }),
                Event::Preference(PreferenceEvent {
                    phone_number_id: None,
                    wa_id: Some("1".to_owned()),
                    user_id: None,
                    value: "stop".to_owned(),
                    timestamp: Some(2),
                }),
            ]
        );
    }
}
