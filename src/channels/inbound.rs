//! Recording an inbound message (SPEC section 7): the delivery's dedup mark,
//! the window, and every entry it causes commit in one transaction under the
//! log's lock, or none do. What cannot be applied is kept as a dead letter,
//! and a kept opt-out is applied, with its own `captured_at`, as soon as it
//! can be (SPEC section 3). What a message means: `message.rs`.

use super::letter::{LetterPayload, MessageLetter, PreferenceLetter};
use super::message::{
    intent, message_evidence, message_letter, message_of_letter, opt_out_purposes,
    preference_letter, InboundMessage, Intent, PreferenceChange, Provider, Sender,
};
use super::settings::{OptInMatch, StoredSettings};
use crate::domain::evidence::Evidence;
use crate::domain::number::E164;
use crate::domain::purpose::{
    CaptureChannel, MessageChannel, MessageChannelSet, Purpose, PurposeSet,
};
use crate::domain::text::is_readable_text;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::store::append::{
    append_locked, LiftClass, LiftRecord, OptInRecord, OptOutRecord, Record,
};
use crate::store::channels::{self, DeadLetterRow, NewDeadLetter};
use crate::store::connection::lock_log;
use crate::store::consent::record_inbound;
use crate::store::tenants::find_brand;
use crate::store::{DbConn, StoreResult};
use hmac::{KeyInit, Mac};

/// What handling a delivery did (for the log line and the tests' eyes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Duplicate,
    Recorded { seqs: Vec<u64> },
    DeadLetter { reason: &'static str },
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

/// Where a dead letter's payload is sealed (the associated data).
fn letter_aad(tenant: &str) -> Vec<u8> {
    format!("consent-ledger/dead-letter/v1\n{tenant}").into_bytes()
}

/// Opens a dead letter's sealed payload (any JSON: letters kept by older
/// versions have another shape).
pub fn open_letter(master: &MasterKey, tenant: &str, sealed: &str) -> Option<serde_json::Value> {
    let plain = master.kek().open(sealed, &letter_aad(tenant))?;
    serde_json::from_slice(&plain).ok()
}

/// The number a sender stands for, remembering a user id that came with
/// it, and applying the opt-outs that waited for that user id.
fn resolve_sender(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    settings: &StoredSettings,
    sender: &Sender,
    now: Timestamp,
) -> StoreResult<Option<E164>> {
    Ok(match sender {
        Sender::Number { number, user_id } => {
            if let Some(user_id) = user_id {
                channels::remember_alias(conn, tenant, user_id, number, now.millis())?;
                apply_letters_waiting_for(conn, master, tenant, settings, user_id, now)?;
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
    /// What an admin needs to act on it, and the service to apply it; sealed.
    pub payload: LetterPayload,
    /// The user id it waits for (a sender without a readable number).
    pub waits_for: Option<&'a str>,
}

/// Keeps a dead letter (inside the caller's transaction).
fn keep(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    letter: Letter<'_>,
    now: Timestamp,
) -> StoreResult<Outcome> {
    let json = serde_json::to_vec(&letter.payload).expect("a letter serialises");
    let sealed = master.kek().seal(&json, &letter_aad(tenant));
    let user_id_hash = letter
        .waits_for
        .map(|user_id| dedup_key(master, tenant, &["user_id", user_id]));
    channels::insert_dead_letter(
        conn,
        tenant,
        &NewDeadLetter {
            provider: letter.provider.as_str(),
            reason: letter.reason,
            phone_number_id: letter.business,
            payload_sealed: &sealed,
            opt_out: letter.payload.holds_opt_out(),
            user_id_hash: user_id_hash.as_deref(),
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
    let withdrawn = match intent {
        Intent::OptOut { full } => Some(opt_out_purposes(full, settings)),
        _ => None,
    };
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
            payload: message_letter(message, withdrawn),
            waits_for: message.sender.only_user_id(),
        };
        // A provider clock ahead of ours, or no readable time at all: an
        // opt-out (or a plain message) counts from now rather than not at
        // all; what restores consent waits for an admin.
        let captured_at = match message.captured_at {
            Some(at) if at <= now.plus_millis(FUTURE_SKEW_MILLIS) => at,
            unusable => {
                if matches!(intent, Intent::OptIn(_) | Intent::Lift) {
                    let reason = match unusable {
                        Some(_) => "timestamp_in_future",
                        None => "invalid_timestamp",
                    };
                    return keep(conn, master, tenant, letter(reason), now);
                }
                now
            }
        };
        let resolved = resolve_sender(conn, master, tenant, settings, &message.sender, now)?;
        let Some(number) = resolved else {
            if withdrawn.is_some() {
                return keep(conn, master, tenant, letter("unknown_sender"), now);
            }
            return Ok(Outcome::Recorded { seqs: Vec::new() });
        };
        if message.provider == Provider::WhatsApp {
            record_inbound(conn, tenant, &number, Some(&message.business), captured_at)?;
        }
        let evidence = message_evidence(message);
        let done = match intent {
            Intent::OptOut { full } => {
                let purposes = opt_out_purposes(full, settings);
                let opt_out =
                    keyword_opt_out(message.provider, number, purposes, captured_at, evidence);
                vec![
                    append_locked(
                        conn,
                        tenant,
                        message.provider.collector(),
                        &opt_out,
                        None,
                        now,
                    )?
                    .seq,
                ]
            }
            Intent::Lift => {
                let lift = Lift {
                    class: LiftClass::Keyword,
                    channel: message.provider.capture_channel(),
                    captured_at,
                    evidence,
                };
                lift_opt_outs(
                    conn,
                    tenant,
                    message.provider.collector(),
                    &number,
                    &lift,
                    now,
                )?
            }
            Intent::OptIn(m) => {
                if !is_readable_text(&m.prompt) {
                    // Saved before prompts were checked: it cannot be a consent text.
                    return keep(conn, master, tenant, letter("unreadable_prompt"), now);
                }
                let opt_in = OptInFromMessage {
                    matched: m,
                    provider: message.provider,
                    number,
                    captured_at,
                    evidence,
                };
                record_opt_in(conn, tenant, &opt_in, now)?
            }
            Intent::Nothing => Vec::new(),
        };
        Ok(Outcome::Recorded { seqs: done })
    })
}

/// A full or partial opt-out by message, which START, UNSTOP or YES lift.
fn keyword_opt_out(
    provider: Provider,
    number: E164,
    purposes: PurposeSet,
    captured_at: Timestamp,
    evidence: Evidence,
) -> Record {
    Record::OptOut(OptOutRecord {
        number,
        channel: provider.capture_channel(),
        purposes,
        message_channels: MessageChannelSet::all(),
        captured_at,
        backfill: false,
        evidence,
        lift_class: Some(LiftClass::Keyword),
    })
}

/// What a lifting message carries.
struct Lift {
    class: LiftClass,
    channel: CaptureChannel,
    captured_at: Timestamp,
    evidence: Evidence,
}

/// Lifts every effective opt-out of that class, channel and earlier time:
/// one `opt_out_lifted` entry each, in seq order.
fn lift_opt_outs(
    conn: &mut DbConn,
    tenant: &str,
    collector: &str,
    number: &E164,
    lift: &Lift,
    now: Timestamp,
) -> StoreResult<Vec<u64>> {
    let mut seqs = Vec::new();
    let liftable = channels::liftable_opt_outs(
        conn,
        tenant,
        number,
        lift.class,
        lift.channel,
        lift.captured_at.millis(),
    )?;
    for lifts in liftable {
        let record = Record::Lift(LiftRecord {
            number: number.clone(),
            channel: lift.channel,
            captured_at: lift.captured_at,
            evidence: lift.evidence.clone(),
            lifts,
        });
        seqs.push(append_locked(conn, tenant, collector, &record, None, now)?.seq);
    }
    Ok(seqs)
}

/// An opt-in a message matched.
struct OptInFromMessage<'a> {
    matched: &'a OptInMatch,
    provider: Provider,
    number: E164,
    captured_at: Timestamp,
    evidence: Evidence,
}

/// Records a matched opt-in unless its brand was retired or it is older
/// than an API opt-in may be without `backfill`.
fn record_opt_in(
    conn: &mut DbConn,
    tenant: &str,
    opt_in: &OptInFromMessage<'_>,
    now: Timestamp,
) -> StoreResult<Vec<u64>> {
    let m = opt_in.matched;
    let brand = find_brand(conn, tenant, &m.brand)?.filter(|b| b.retired_at.is_none());
    let fresh = opt_in.captured_at.millis() + MAX_OPT_IN_AGE_MILLIS >= now.millis();
    let (Some(brand), true) = (brand, fresh) else {
        return Ok(Vec::new());
    };
    let message_channels = match &m.message_channels {
        Some(list) => list.iter().copied().collect(),
        None => [opt_in.provider.message_channel()].into_iter().collect(),
    };
    let record = Record::OptIn(OptInRecord {
        number: opt_in.number.clone(),
        channel: opt_in.provider.capture_channel(),
        brand_id: brand.id,
        company_name_shown: brand.name,
        consent_text: m.prompt.clone(),
        purposes: m.purposes.iter().copied().collect(),
        message_channels,
        captured_at: opt_in.captured_at,
        language: None,
        backfill: false,
        confirmation: None,
        evidence: opt_in.evidence.clone(),
    });
    let collector = opt_in.provider.collector();
    Ok(vec![
        append_locked(conn, tenant, collector, &record, None, now)?.seq,
    ])
}

/// WhatsApp's own marketing stop: an opt-out of marketing on WhatsApp.
fn marketing_stop(number: E164, captured_at: Timestamp, evidence: Evidence) -> Record {
    Record::OptOut(OptOutRecord {
        number,
        channel: CaptureChannel::Whatsapp,
        purposes: [Purpose::Marketing].into_iter().collect(),
        message_channels: [MessageChannel::Whatsapp].into_iter().collect(),
        captured_at,
        backfill: false,
        evidence,
        lift_class: Some(LiftClass::MarketingPreference),
    })
}

fn preference_evidence(business: &str, value: &str) -> Evidence {
    Evidence::from_pairs([
        ("business_phone_number_id", business),
        ("preference", value),
    ])
}

/// Records WhatsApp's marketing stop (an opt-out of marketing on WhatsApp)
/// or resume (lifts every effective stop of that kind).
pub fn record_preference(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    settings: &StoredSettings,
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
            payload: preference_letter(change, Some(change.captured_at)),
            waits_for: change.sender.only_user_id(),
        };
        let mut captured_at = change.captured_at;
        if captured_at > now.plus_millis(FUTURE_SKEW_MILLIS) {
            if !change.stop {
                return keep(conn, master, tenant, letter("timestamp_in_future"), now);
            }
            captured_at = now;
        }
        let resolved = resolve_sender(conn, master, tenant, settings, &change.sender, now)?;
        let Some(number) = resolved else {
            if change.stop {
                return keep(conn, master, tenant, letter("unknown_sender"), now);
            }
            return Ok(Outcome::Recorded { seqs: Vec::new() });
        };
        let collector = Provider::WhatsApp.collector();
        let evidence = preference_evidence(&change.business, value);
        let seqs = if change.stop {
            let record = marketing_stop(number, captured_at, evidence);
            vec![append_locked(conn, tenant, collector, &record, None, now)?.seq]
        } else {
            let lift = Lift {
                class: LiftClass::MarketingPreference,
                channel: CaptureChannel::Whatsapp,
                captured_at,
                evidence,
            };
            lift_opt_outs(conn, tenant, collector, &number, &lift, now)?
        };
        Ok(Outcome::Recorded { seqs })
    })
}

/// Keeps something that cannot be applied now (an unknown business
/// number, a preference without its time): one dead letter, outside any
/// append. `dedup` names the delivery, so a retry adds no second letter.
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
        lock_log(conn, tenant)?;
        if !channels::first_delivery(conn, tenant, &key, now.millis())? {
            return Ok(Outcome::Duplicate);
        }
        keep(conn, master, tenant, letter, now)
    })
}

/// Keeps a message sent to a business number the tenant does not have
/// (yet): its opt-out applies once the number is configured.
pub fn keep_for_unknown_business(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    settings: &StoredSettings,
    message: &InboundMessage,
    now: Timestamp,
) -> StoreResult<Outcome> {
    let withdrawn = match intent(message.provider, &message.content, settings) {
        Intent::OptOut { full } => Some(opt_out_purposes(full, settings)),
        _ => None,
    };
    let letter = Letter {
        provider: message.provider,
        reason: "unknown_phone_number_id",
        business: Some(message.business.as_str()).filter(|b| !b.is_empty()),
        payload: message_letter(message, withdrawn),
        waits_for: message.sender.only_user_id(),
    };
    let dedup = [message.provider.as_str(), message.message_id.as_str()];
    keep_unapplied(conn, master, tenant, &dedup, letter, now)
}

/// Applies the kept opt-outs that waited for `user_id`, now that it
/// stands for a number (inside the caller's transaction, under the log's
/// lock). Returns the seqs appended.
fn apply_letters_waiting_for(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    settings: &StoredSettings,
    user_id: &str,
    now: Timestamp,
) -> StoreResult<Vec<u64>> {
    let hash = dedup_key(master, tenant, &["user_id", user_id]);
    let waiting = channels::letters_waiting_for(conn, tenant, &hash)?;
    apply_letters(conn, master, tenant, settings, &waiting, now)
}

/// Applies the kept opt-outs that arrived for business numbers the tenant
/// has now (call inside a transaction that holds the log's lock, after the
/// settings are saved). Returns the seqs appended.
pub fn apply_letters_for_business(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    settings: &StoredSettings,
    now: Timestamp,
) -> StoreResult<Vec<u64>> {
    let business: Vec<String> = settings
        .whatsapp
        .iter()
        .flat_map(|w| w.phone_numbers.iter().map(|p| p.id.clone()))
        .collect();
    if business.is_empty() {
        return Ok(Vec::new());
    }
    let waiting = channels::letters_for_business(conn, tenant, &business)?;
    apply_letters(conn, master, tenant, settings, &waiting, now)
}

fn apply_letters(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    settings: &StoredSettings,
    rows: &[DeadLetterRow],
    now: Timestamp,
) -> StoreResult<Vec<u64>> {
    let mut seqs = Vec::new();
    for row in rows {
        if let Some(seq) = apply_letter(conn, master, tenant, settings, row, now)? {
            channels::resolve_dead_letter(conn, row.id, seq, now.millis())?;
            tracing::info!(dead_letter = row.id, seq, "kept opt-out applied");
            seqs.push(seq);
        }
    }
    Ok(seqs)
}

/// Appends a kept opt-out if it can be applied now: its business number is
/// the tenant's and its sender resolves to a number. Its `captured_at` is
/// its own (the time it was kept, when it had none or one in the future);
/// its evidence names the dead letter.
fn apply_letter(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    settings: &StoredSettings,
    row: &DeadLetterRow,
    now: Timestamp,
) -> StoreResult<Option<u64>> {
    let payload = open_letter(master, tenant, &row.payload_sealed)
        .and_then(|json| serde_json::from_value::<LetterPayload>(json).ok());
    let letter_id = row.id.to_string();
    let kept_at = Timestamp::from_millis(row.received_at);
    let own_time = |at: Option<Timestamp>| {
        at.filter(|t| *t <= kept_at.plus_millis(FUTURE_SKEW_MILLIS))
            .unwrap_or(kept_at)
    };
    let (record, collector) = match payload {
        Some(LetterPayload::Message(letter)) => {
            let Some((message, purposes)) = applicable_message(&letter, settings) else {
                return Ok(None);
            };
            let Some(number) = sender_number(conn, tenant, &message.sender)? else {
                return Ok(None);
            };
            let evidence = message_evidence(&message).with("dead_letter_id", &letter_id);
            let at = own_time(message.captured_at);
            let purposes = purposes.into_iter().collect();
            let record = keyword_opt_out(message.provider, number, purposes, at, evidence);
            (record, message.provider.collector())
        }
        Some(LetterPayload::Preference(letter)) => {
            let Some(sender) = applicable_stop(&letter, settings) else {
                return Ok(None);
            };
            let Some(number) = sender_number(conn, tenant, &sender)? else {
                return Ok(None);
            };
            let business = letter.business.unwrap_or_default();
            let evidence =
                preference_evidence(&business, "stop").with("dead_letter_id", &letter_id);
            let record = marketing_stop(number, own_time(letter.captured_at), evidence);
            (record, Provider::WhatsApp.collector())
        }
        _ => return Ok(None),
    };
    Ok(Some(
        append_locked(conn, tenant, collector, &record, None, now)?.seq,
    ))
}

/// The kept message and the purposes it withdrew, when it holds an
/// opt-out to a business number the tenant has.
fn applicable_message(
    letter: &MessageLetter,
    settings: &StoredSettings,
) -> Option<(InboundMessage, Vec<Purpose>)> {
    let purposes = letter.opt_out.clone()?;
    let message = message_of_letter(letter)?;
    let known = match message.provider {
        Provider::WhatsApp => is_whatsapp_number(settings, &message.business),
        Provider::Twilio => settings
            .twilio
            .iter()
            .any(|t| t.numbers.contains(&message.business)),
    };
    known.then_some((message, purposes))
}

/// The sender of a kept marketing stop to a business number the tenant has.
fn applicable_stop(letter: &PreferenceLetter, settings: &StoredSettings) -> Option<Sender> {
    let business = letter.business.as_deref()?;
    (letter.value == "stop" && is_whatsapp_number(settings, business))
        .then(|| Provider::WhatsApp.sender(letter.from.as_deref(), letter.user_id.as_deref()))
}

fn is_whatsapp_number(settings: &StoredSettings, id: &str) -> bool {
    settings
        .whatsapp
        .iter()
        .any(|w| w.phone_numbers.iter().any(|p| p.id == id))
}

/// The number a sender stands for (a user id through its alias).
fn sender_number(conn: &mut DbConn, tenant: &str, sender: &Sender) -> StoreResult<Option<E164>> {
    Ok(match sender {
        Sender::Number { number, .. } => Some(number.clone()),
        Sender::UserId(user_id) => channels::resolve_alias(conn, tenant, user_id)?,
        Sender::Unknown => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
