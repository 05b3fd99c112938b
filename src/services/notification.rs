//! Recording a verified WhatsApp notification (docs/webhooks.md): each event
//! in its own transaction (a retry after a failure skips what was done),
//! kept as a dead letter when its business number is not the tenant's.

use super::error::ServiceError;
use super::inbound;
use crate::domain::access::TenantId;
use crate::domain::time::{Clock, Timestamp};
use crate::keys::MasterKey;
use crate::providers::letter::LetterPayload;
use crate::providers::message::{
    preference_letter, system_letter, Outcome, PreferenceChange, Provider,
};
use crate::providers::settings::StoredSettings;
use crate::providers::whatsapp::{changed_message, inbound_message, preference_key, timestamp};
use crate::providers::whatsapp_payload::{self as payload, Event, Notification};
use crate::store::dead_letters::{self, Letter};
use crate::store::tenants::TenantRow;
use crate::store::DbConn;

/// Counts of a notification's events, for the log line and the metrics.
#[derive(Debug, Default)]
pub struct Applied {
    /// Messages and preference changes recorded (with or without an entry).
    pub recorded: usize,
    pub duplicates: usize,
    pub dead_letters: usize,
    pub ignored: usize,
}

impl Applied {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::Recorded { .. } => self.recorded += 1,
            Outcome::DeadLetter { .. } => self.dead_letters += 1,
        }
    }

    /// Each count by the outcome label the webhook metrics use.
    pub fn by_outcome(&self) -> [(&'static str, usize); 4] {
        [
            ("recorded", self.recorded),
            ("deduplicated", self.duplicates),
            ("dead_lettered", self.dead_letters),
            ("ignored", self.ignored),
        ]
    }
}

/// Applies every event of a verified notification, each in its own
/// transaction (a retry after a failure skips what was done).
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant_row.id))]
pub fn record_notification(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant_row: &TenantRow,
    settings: &StoredSettings,
    notification: &Notification,
    clock: &Clock,
) -> Result<Applied, ServiceError> {
    let tenant = &tenant_row.id;
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
                dead_letters::keep_unapplied(conn, master, tenant, &dedup, letter, now)?
            }
            Event::Message(m) => {
                let known = known(m.phone_number_id.as_deref());
                apply_message(conn, master, (tenant_row, settings), (m, known), now)?
            }
            Event::Changed(c) if known(c.phone_number_id.as_deref()) => {
                let system = c.system.clone();
                let message = changed_message(c);
                inbound::record_change(conn, master, tenant, &message, &system, now)?
            }
            Event::Changed(c) => {
                // Kept whole: it closes the sender's group once the
                // business number is configured.
                let business = c.phone_number_id.clone();
                let system = c.system.clone();
                let message = changed_message(c);
                let letter = Letter {
                    provider: Provider::WhatsApp,
                    reason: "unknown_phone_number_id",
                    business: business.as_deref(),
                    payload: system_letter(&message, &system),
                    waits_for: None,
                };
                let dedup = ["whatsapp", message.message_id.as_str()];
                dead_letters::keep_unapplied(conn, master, tenant, &dedup, letter, now)?
            }
            Event::Preference(p) => {
                let Some(outcome) = apply_preference(conn, master, tenant, &p, known, now)? else {
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

/// A message from a person: recorded, or, when its business number is not
/// the tenant's, kept whole (the admin may need the sender and the words)
/// with what it withdraws.
fn apply_message(
    conn: &mut DbConn,
    master: &MasterKey,
    (tenant, settings): (&TenantRow, &StoredSettings),
    (m, business_known): (payload::MessageEvent, bool),
    now: Timestamp,
) -> Result<Outcome, ServiceError> {
    let message = inbound_message(m);
    if business_known {
        return inbound::record_message(conn, master, tenant, settings, &message, now);
    }
    let withdrawn = inbound::withdrawn(tenant, settings, &message);
    let kept = (&message, withdrawn);
    super::dead_letters::keep_for_unknown_business(conn, master, &tenant.id, kept, now)
}

/// A `user_preferences` change: recorded, or kept when its business number
/// is unknown or it has no time; `None` for values other than stop and
/// resume.
fn apply_preference(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    p: &payload::PreferenceEvent,
    known: impl Fn(Option<&str>) -> bool,
    now: Timestamp,
) -> Result<Option<Outcome>, ServiceError> {
    let stop = match p.value.as_str() {
        "stop" => true,
        "resume" => false,
        _ => return Ok(None),
    };
    let key = preference_key(p);
    let key: Vec<&str> = key.iter().map(String::as_str).collect();
    let change = PreferenceChange {
        sender: Provider::WhatsApp.sender(p.wa_id.as_deref(), p.user_id.as_deref(), None),
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
                waits_for: None,
            };
            dead_letters::keep_unapplied(conn, master, tenant, &key, letter, now)?
        }
        None => inbound::record_preference(conn, master, tenant, &key, &change, now)?,
    };
    Ok(Some(outcome))
}
