//! Dead letters applied (docs/identities.md): a kept opt-out is applied, with
//! its own `captured_at`, as soon as it can be (its user id arrives with a
//! number, or its business number is configured), a kept system message
//! closes its group then, and the letter is marked resolved; a message to a
//! business number the tenant does not have is kept. Keeping and reading
//! letters: `store/dead_letters.rs`.

use super::error::ServiceResult;
use super::inbound::list_applied_ambiguous;
use super::links::close_group;
use super::recording::append_unless_suppressed;
use crate::domain::access::TenantId;
use crate::domain::purpose::{Purpose, PurposeSet};
use crate::domain::time::Timestamp;
use crate::domain::vocabulary::{Heard, Language, Rule};
use crate::keys::MasterKey;
use crate::providers::letter::{LetterPayload, MessageLetter, PreferenceLetter};
use crate::providers::message::{
    keyword_opt_out, marketing_stop, message_evidence, message_letter, message_of_letter,
    preference_evidence, InboundMessage, Outcome, Provider, Sender, PROVIDER_CLOCK_SKEW_MILLIS,
};
use crate::providers::settings::StoredSettings;
use crate::store::append::opt_out_records_nothing;
use crate::store::channels;
use crate::store::connection::lock_log;
use crate::store::dead_letters::{
    keep_unapplied, letters_for_business, letters_waiting_for_user_ids, open_letter,
    resolve_dead_letter, tenants_with_letters_waiting_for_user_ids, DeadLetterRow, Letter,
};
use crate::store::links::Source;
use crate::store::DbConn;

/// Keeps a message sent to a business number the tenant does not have
/// (yet): its opt-out (`withdrawn`: the purposes it withdraws, when it is
/// one) applies once the number is configured.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn keep_for_unknown_business(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    (message, withdrawn): (&InboundMessage, Option<(PurposeSet, Heard)>),
    now: Timestamp,
) -> ServiceResult<Outcome> {
    if let (Some(_), Some(identity)) = (withdrawn, message.sender.recorded_on()) {
        // An opt-out of an erased identity records nothing (it is opted out
        // already), and keeps nothing that names it again.
        if opt_out_records_nothing(conn, master, tenant, identity.as_str())? {
            return Ok(Outcome::Recorded { seqs: Vec::new() });
        }
    }
    let letter = Letter {
        provider: message.provider,
        reason: "unknown_phone_number_id",
        business: Some(message.business.as_str()).filter(|b| !b.is_empty()),
        payload: message_letter(message, withdrawn),
        waits_for: None,
    };
    let dedup = [message.provider.as_str(), message.message_id.as_str()];
    Ok(keep_unapplied(conn, master, tenant, &dedup, letter, now)?)
}

/// Applies, at start, the opt-outs that older versions kept while they
/// waited for a user id to arrive with a number: under today's rules they
/// are readable (recorded on the user id itself, docs/identities.md). Each
/// tenant's letters apply in one transaction under its log's lock, with
/// their own `captured_at`. Returns the seqs appended.
#[tracing::instrument(level = "debug", skip_all)]
pub fn apply_letters_waiting_for_user_ids(
    conn: &mut DbConn,
    master: &MasterKey,
    now: Timestamp,
) -> ServiceResult<Vec<u64>> {
    let tenants = tenants_with_letters_waiting_for_user_ids(conn)?;
    let mut seqs = Vec::new();
    for tenant in tenants {
        seqs.extend(conn.immediate_transaction(|conn| {
            lock_log(conn, &tenant)?;
            let settings = channels::settings_of(conn, &tenant)?;
            let waiting = letters_waiting_for_user_ids(conn, &tenant)?;
            apply_letters(conn, master, &tenant, &settings, &waiting, now)
        })?);
    }
    if !seqs.is_empty() {
        tracing::info!(applied = seqs.len(), "kept opt-outs by user id applied");
    }
    Ok(seqs)
}

/// Applies the kept opt-outs that arrived for business numbers the tenant
/// has now (call inside a transaction that holds the log's lock, after the
/// settings are saved). Returns the seqs appended.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn apply_letters_for_business(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    settings: &StoredSettings,
    now: Timestamp,
) -> ServiceResult<Vec<u64>> {
    let business: Vec<String> = settings
        .whatsapp
        .iter()
        .flat_map(|w| w.phone_numbers.iter().map(|p| p.id.clone()))
        .collect();
    if business.is_empty() {
        return Ok(Vec::new());
    }
    let waiting = letters_for_business(conn, tenant, &business)?;
    apply_letters(conn, master, tenant, settings, &waiting, now)
}

fn apply_letters(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    settings: &StoredSettings,
    rows: &[DeadLetterRow],
    now: Timestamp,
) -> ServiceResult<Vec<u64>> {
    let mut seqs = Vec::new();
    for row in rows {
        if let Some(seq) = apply_letter(conn, master, tenant, settings, row, now)? {
            resolve_dead_letter(conn, row.id, seq, now.millis())?;
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
    tenant: &TenantId,
    settings: &StoredSettings,
    row: &DeadLetterRow,
    now: Timestamp,
) -> ServiceResult<Option<u64>> {
    let payload = open_letter(master, tenant, &row.payload_sealed)
        .and_then(|json| serde_json::from_value::<LetterPayload>(json).ok());
    let letter_id = row.id.to_string();
    let kept_at = Timestamp::from_millis(row.received_at);
    let own_time = |at: Option<Timestamp>| {
        at.filter(|t| *t <= kept_at.plus_millis(PROVIDER_CLOCK_SKEW_MILLIS))
            .unwrap_or(kept_at)
    };
    let (record, collector) = match payload {
        Some(LetterPayload::Message(letter)) if letter.system.is_some() => {
            let letter = KeptLetter {
                id: &letter_id,
                kept_at,
                letter: &letter,
            };
            return close_by_letter(conn, master, tenant, settings, &letter, now);
        }
        Some(LetterPayload::Message(letter)) => {
            let Some((message, purposes)) = applicable_message(&letter, settings) else {
                return Ok(None);
            };
            let Some(identity) = message.sender.recorded_on() else {
                return Ok(None);
            };
            let evidence = letter
                .heard
                .iter()
                .fold(message_evidence(&message), |e, (k, v)| e.with(k, v))
                .with("dead_letter_id", &letter_id);
            let at = own_time(message.captured_at);
            let purposes: PurposeSet = purposes.into_iter().collect();
            let record =
                keyword_opt_out(message.provider, identity.clone(), purposes, at, evidence);
            let collector = message.provider.collector();
            let appended = append_unless_suppressed(conn, master, tenant, collector, &record, now)?
                .map(|a| a.seq);
            // An ambiguous message is listed for review once it opts out.
            if let (Some(seq), Some(heard)) = (appended, heard_ambiguous(&letter)) {
                let arrival = (&message, identity, at);
                list_applied_ambiguous(conn, master, tenant, (arrival, heard, purposes), seq, now)?;
            }
            return Ok(appended);
        }
        Some(LetterPayload::Preference(letter)) => {
            let Some(sender) = applicable_stop(&letter, settings) else {
                return Ok(None);
            };
            let Some(identity) = sender.recorded_on() else {
                return Ok(None);
            };
            let business = letter.business.unwrap_or_default();
            let evidence =
                preference_evidence(&business, "stop").with("dead_letter_id", &letter_id);
            let record = marketing_stop(identity, own_time(letter.captured_at), evidence);
            (record, Provider::WhatsApp.collector())
        }
        _ => return Ok(None),
    };
    // An erased number without a newer subject: already opted out.
    let appended = append_unless_suppressed(conn, master, tenant, collector, &record, now)?;
    Ok(appended.map(|a| a.seq))
}

/// How a kept message was heard, when it was ambiguous.
fn heard_ambiguous(letter: &MessageLetter) -> Option<Heard> {
    (letter.heard.get("rule").map(String::as_str) == Some(Rule::Ambiguous.as_str())).then(|| {
        Heard {
            rule: Rule::Ambiguous,
            language: letter
                .heard
                .get("language")
                .and_then(|l| Language::parse(l)),
        }
    })
}

/// A kept letter, its id and when it was kept.
struct KeptLetter<'a> {
    id: &'a str,
    kept_at: Timestamp,
    letter: &'a MessageLetter,
}

/// Applies a kept system message saying the person changed their number
/// or user id, once its business number is the tenant's: the sender's
/// group is closed (docs/identities.md), the letter named in the evidence. A
/// group closed late this way may hold a new holder's opt-in recorded
/// meanwhile: it ends opted out, the safe side.
fn close_by_letter(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    settings: &StoredSettings,
    kept: &KeptLetter<'_>,
    now: Timestamp,
) -> ServiceResult<Option<u64>> {
    let Some(message) = message_of_letter(kept.letter) else {
        return Ok(None);
    };
    if message.provider != Provider::WhatsApp || !is_whatsapp_number(settings, &message.business) {
        return Ok(None);
    }
    let Some(identity) = message.sender.recorded_on() else {
        return Ok(None);
    };
    let system = kept.letter.system.as_deref().unwrap_or_default();
    let evidence = message_evidence(&message)
        .with("system", system)
        .with("dead_letter_id", kept.id);
    let captured_at = message
        .captured_at
        .filter(|t| *t <= kept.kept_at.plus_millis(PROVIDER_CLOCK_SKEW_MILLIS))
        .unwrap_or(kept.kept_at);
    let source = Source {
        waba: message.waba.as_deref().unwrap_or(""),
        captured_at,
        evidence: &evidence,
        collector: Provider::WhatsApp.collector(),
    };
    close_group(conn, master, tenant, &identity, &source, now)
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
        .then(|| Provider::WhatsApp.sender(letter.from.as_deref(), letter.user_id.as_deref(), None))
}

fn is_whatsapp_number(settings: &StoredSettings, id: &str) -> bool {
    settings
        .whatsapp
        .iter()
        .any(|w| w.phone_numbers.iter().any(|p| p.id == id))
}

/// A dead letter with what it held, unsealed: `None` when the tenant has
/// no letter of this id; the payload `None` when it does not open with
/// this master key.
pub fn open(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    id: i64,
) -> ServiceResult<Option<(DeadLetterRow, Option<serde_json::Value>)>> {
    let Some(row) = crate::store::dead_letters::dead_letter(conn, tenant, id)? else {
        return Ok(None);
    };
    let payload = open_letter(master, tenant, &row.payload_sealed);
    Ok(Some((row, payload)))
}
