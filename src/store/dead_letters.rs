//! Dead letters (SPEC section 3): what a webhook could not apply is kept,
//! sealed, never dropped; an admin can read it; a kept opt-out is applied,
//! with its own `captured_at`, as soon as it can be (its user id arrives
//! with a number, or its business number is configured), and the letter is
//! marked resolved.

use super::append::{append_locked, opt_out_records_nothing};
use super::channels;
use super::connection::lock_log;
use super::links::{close_group, Source};
use super::schema::dead_letters;
use super::{DbConn, Rejection, StoreError, StoreResult};
use crate::channels::letter::{letter_names, LetterPayload, MessageLetter, PreferenceLetter};
use crate::channels::message::{
    canonical_from, intent, keyword_opt_out, marketing_stop, message_evidence, message_letter,
    message_of_letter, preference_evidence, InboundMessage, Outcome, Provider, Sender,
    PROVIDER_CLOCK_SKEW_MILLIS,
};
use crate::channels::settings::StoredSettings;
use crate::domain::purpose::Purpose;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use diesel::prelude::*;

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

/// Seals a dead letter's payload for its tenant.
pub fn seal_letter(master: &MasterKey, tenant: &str, payload: &LetterPayload) -> String {
    let json = serde_json::to_vec(payload).expect("a letter serialises");
    master.kek().seal(&json, &letter_aad(tenant))
}

/// Something a webhook could not apply.
pub struct Letter<'a> {
    pub provider: Provider,
    pub reason: &'static str,
    pub business: Option<&'a str>,
    /// What an admin needs to act on it, and the service to apply it; sealed.
    pub payload: LetterPayload,
    /// The user id it waits for: what older versions kept for a sender
    /// without a readable number (today such a sender is recorded on the
    /// user id, and nothing waits).
    pub waits_for: Option<&'a str>,
}

/// Keeps a dead letter (inside the caller's transaction).
pub fn keep(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    letter: Letter<'_>,
    now: Timestamp,
) -> StoreResult<Outcome> {
    let sealed = seal_letter(master, tenant, &letter.payload);
    let user_id_hash = letter
        .waits_for
        .map(|user_id| master.keyed_hash(tenant, &["user_id", user_id]));
    insert_dead_letter(
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

/// Keeps something that cannot be applied now (an unknown business
/// number, a preference without its time): one dead letter, outside any
/// append. `dedup` names the delivery, so a retry adds no second letter.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn keep_unapplied(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    dedup: &[&str],
    letter: Letter<'_>,
    now: Timestamp,
) -> StoreResult<Outcome> {
    let key = master.keyed_hash(tenant, dedup);
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
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn keep_for_unknown_business(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    settings: &StoredSettings,
    message: &InboundMessage,
    now: Timestamp,
) -> StoreResult<Outcome> {
    let withdrawn = intent(message.provider, &message.content, settings).withdrawn(settings);
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
    keep_unapplied(conn, master, tenant, &dedup, letter, now)
}

/// Applies, at start, the opt-outs that older versions kept while they
/// waited for a user id to arrive with a number: under today's rules they
/// are readable (recorded on the user id itself, SPEC section 3). Each
/// tenant's letters apply in one transaction under its log's lock, with
/// their own `captured_at`. Returns the seqs appended.
#[tracing::instrument(level = "debug", skip_all)]
pub fn apply_letters_waiting_for_user_ids(
    conn: &mut DbConn,
    master: &MasterKey,
    now: Timestamp,
) -> StoreResult<Vec<u64>> {
    let tenants: Vec<String> = dead_letters::table
        .filter(dead_letters::user_id_hash.is_not_null())
        .filter(dead_letters::opt_out.eq(true))
        .filter(dead_letters::resolved_at.is_null())
        .select(dead_letters::tenant_id)
        .distinct()
        .order(dead_letters::tenant_id)
        .load(conn)?;
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
    let waiting = letters_for_business(conn, tenant, &business)?;
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
            let evidence = message_evidence(&message).with("dead_letter_id", &letter_id);
            let at = own_time(message.captured_at);
            let purposes = purposes.into_iter().collect();
            let record = keyword_opt_out(message.provider, identity, purposes, at, evidence);
            (record, message.provider.collector())
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
    match append_locked(conn, master, tenant, collector, &record, None, now) {
        Ok(appended) => Ok(Some(appended.seq)),
        // An erased number without a newer subject: already opted out.
        Err(StoreError::Rejected(Rejection::SuppressedNothingToRecord)) => Ok(None),
        Err(other) => Err(other),
    }
}

/// A kept letter, its id and when it was kept.
struct KeptLetter<'a> {
    id: &'a str,
    kept_at: Timestamp,
    letter: &'a MessageLetter,
}

/// Applies a kept system message saying the person changed their number
/// or user id, once its business number is the tenant's: the sender's
/// group is closed (SPEC section 3), the letter named in the evidence. A
/// group closed late this way may hold a new holder's opt-in recorded
/// meanwhile: it ends opted out, the safe side.
fn close_by_letter(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    settings: &StoredSettings,
    kept: &KeptLetter<'_>,
    now: Timestamp,
) -> StoreResult<Option<u64>> {
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

/// A dead letter as stored (the payload stays sealed).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = dead_letters)]
pub struct DeadLetterRow {
    pub id: i64,
    pub provider: String,
    pub reason: String,
    pub phone_number_id: Option<String>,
    pub received_at: i64,
    pub payload_sealed: String,
    /// It holds an opt-out, applied as soon as it can be.
    pub opt_out: bool,
    pub resolved_at: Option<i64>,
    /// The entry that applied it.
    pub resolved_seq: Option<i64>,
}

/// What to keep of something a webhook could not apply.
#[derive(Debug, Clone)]
pub struct NewDeadLetter<'a> {
    pub provider: &'a str,
    pub reason: &'a str,
    pub phone_number_id: Option<&'a str>,
    pub payload_sealed: &'a str,
    pub opt_out: bool,
    /// The tenant's keyed hash of the user id it waits for.
    pub user_id_hash: Option<&'a str>,
}

pub fn insert_dead_letter(
    conn: &mut DbConn,
    tenant: &str,
    letter: &NewDeadLetter<'_>,
    now: i64,
) -> QueryResult<i64> {
    crate::on_backend!(conn, |c| diesel::insert_into(dead_letters::table)
        .values((
            dead_letters::tenant_id.eq(tenant),
            dead_letters::provider.eq(letter.provider),
            dead_letters::reason.eq(letter.reason),
            dead_letters::phone_number_id.eq(letter.phone_number_id),
            dead_letters::received_at.eq(now),
            dead_letters::payload_sealed.eq(letter.payload_sealed),
            dead_letters::opt_out.eq(letter.opt_out),
            dead_letters::user_id_hash.eq(letter.user_id_hash),
            dead_letters::canonical.eq(true),
        ))
        .returning(dead_letters::id)
        .get_result(c))
}

/// One dead letter of the tenant.
pub fn dead_letter(conn: &mut DbConn, tenant: &str, id: i64) -> QueryResult<Option<DeadLetterRow>> {
    dead_letters::table
        .filter(dead_letters::tenant_id.eq(tenant))
        .filter(dead_letters::id.eq(id))
        .select(DeadLetterRow::as_select())
        .first(conn)
        .optional()
}

/// The unapplied opt-outs waiting for a user id (by its keyed hash).
pub fn letters_waiting_for_user_ids(
    conn: &mut DbConn,
    tenant: &str,
) -> QueryResult<Vec<DeadLetterRow>> {
    dead_letters::table
        .filter(dead_letters::tenant_id.eq(tenant))
        .filter(dead_letters::user_id_hash.is_not_null())
        .filter(dead_letters::opt_out.eq(true))
        .filter(dead_letters::resolved_at.is_null())
        .order(dead_letters::id)
        .select(DeadLetterRow::as_select())
        .load(conn)
}

/// The unapplied opt-outs that arrived for one of these business numbers
/// while the tenant did not have it.
pub fn letters_for_business(
    conn: &mut DbConn,
    tenant: &str,
    business: &[String],
) -> QueryResult<Vec<DeadLetterRow>> {
    dead_letters::table
        .filter(dead_letters::tenant_id.eq(tenant))
        .filter(dead_letters::reason.eq("unknown_phone_number_id"))
        .filter(dead_letters::phone_number_id.eq_any(business))
        .filter(dead_letters::opt_out.eq(true))
        .filter(dead_letters::resolved_at.is_null())
        .order(dead_letters::id)
        .select(DeadLetterRow::as_select())
        .load(conn)
}

/// Marks a letter applied, by the entry `seq`.
pub fn resolve_dead_letter(conn: &mut DbConn, id: i64, seq: u64, now: i64) -> QueryResult<()> {
    diesel::update(dead_letters::table.find(id))
        .set((
            dead_letters::resolved_at.eq(now),
            dead_letters::resolved_seq.eq(seq as i64),
        ))
        .execute(conn)
        .map(|_| ())
}

/// A page of dead letters, oldest first, after the id `after`.
pub fn list_dead_letters(
    conn: &mut DbConn,
    tenant: &str,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<DeadLetterRow>> {
    dead_letters::table
        .filter(dead_letters::tenant_id.eq(tenant))
        .filter(dead_letters::id.gt(after))
        .order(dead_letters::id)
        .limit(limit)
        .select(DeadLetterRow::as_select())
        .load(conn)
}

/// Deletes the tenant's dead letters that name the identity, for an
/// erasure: payloads are sealed, so each is opened to look, and matched on
/// the canonical identity whatever form the provider sent
/// (`letter::letter_names`: whole values only, so a longer number that
/// merely contains this one keeps its letter).
pub fn delete_letters_naming(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    identity: &str,
) -> QueryResult<usize> {
    let sealed: Vec<(i64, String)> = dead_letters::table
        .filter(dead_letters::tenant_id.eq(tenant))
        .select((dead_letters::id, dead_letters::payload_sealed))
        .load(conn)?;
    let naming: Vec<i64> = sealed
        .into_iter()
        .filter(|(_, payload)| {
            open_letter(master, tenant, payload).is_some_and(|p| letter_names(&p, identity))
        })
        .map(|(id, _)| id)
        .collect();
    diesel::delete(dead_letters::table.filter(dead_letters::id.eq_any(&naming))).execute(conn)
}

/// Rewrites, once, the letters an older version kept with the sender as
/// the provider wrote it: the canonical form of a number that parses is
/// what is kept (SPEC section 3: only it is stored). Each letter is opened,
/// rewritten when it changes, sealed again and marked. Returns how many
/// were rewritten.
pub fn canonicalise_letters(conn: &mut DbConn, master: &MasterKey) -> QueryResult<usize> {
    let mut rewritten = 0;
    loop {
        let batch: Vec<(i64, String, String)> = dead_letters::table
            .filter(dead_letters::canonical.eq(false))
            .order(dead_letters::id)
            .limit(500)
            .select((
                dead_letters::id,
                dead_letters::tenant_id,
                dead_letters::payload_sealed,
            ))
            .load(conn)?;
        if batch.is_empty() {
            return Ok(rewritten);
        }
        conn.immediate_transaction(|conn| {
            for (id, tenant, sealed) in &batch {
                let payload = open_letter(master, tenant, sealed)
                    .and_then(|json| serde_json::from_value::<LetterPayload>(json).ok());
                let resealed = payload
                    .and_then(canonical_payload)
                    .map(|payload| seal_letter(master, tenant, &payload));
                let row = dead_letters::table.find(id);
                match resealed {
                    Some(sealed) => {
                        diesel::update(row)
                            .set((
                                dead_letters::payload_sealed.eq(sealed),
                                dead_letters::canonical.eq(true),
                            ))
                            .execute(conn)?;
                        rewritten += 1;
                    }
                    None => {
                        diesel::update(row)
                            .set(dead_letters::canonical.eq(true))
                            .execute(conn)?;
                    }
                }
            }
            Ok::<_, diesel::result::Error>(())
        })?;
    }
}

/// A letter with its sender in canonical form, if that changes it.
fn canonical_payload(payload: LetterPayload) -> Option<LetterPayload> {
    match payload {
        LetterPayload::Message(mut m) => {
            let provider = Provider::parse(&m.provider)?;
            let sender = provider.sender(m.from.as_deref(), None, None);
            let canonical = canonical_from(provider, &sender, m.from.as_deref());
            (canonical != m.from).then(|| {
                m.from = canonical;
                LetterPayload::Message(m)
            })
        }
        LetterPayload::Preference(mut p) => {
            let sender = Provider::WhatsApp.sender(p.from.as_deref(), None, None);
            let canonical = canonical_from(Provider::WhatsApp, &sender, p.from.as_deref());
            (canonical != p.from).then(|| {
                p.from = canonical;
                LetterPayload::Preference(p)
            })
        }
        LetterPayload::Unrecorded { .. } => None,
    }
}

/// Dead letters not applied, of every tenant (for the metrics).
pub fn waiting_count(conn: &mut DbConn) -> QueryResult<i64> {
    dead_letters::table
        .filter(dead_letters::resolved_at.is_null())
        .count()
        .get_result(conn)
}
