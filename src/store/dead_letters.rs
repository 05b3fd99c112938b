//! Dead letters (docs/identities.md): what a webhook could not apply is kept,
//! sealed, never dropped; an admin can read it; the letters waiting to be
//! applied, and marking one resolved. Applying them: `services/dead_letters.rs`.

use super::channels;
use super::connection::lock_log;
use super::schema::dead_letters;
use super::{DbConn, StoreResult};
use crate::domain::access::TenantId;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::providers::letter::{letter_names, LetterPayload};
use crate::providers::message::{canonical_from, Outcome, Provider};
use diesel::prelude::*;

/// Where a dead letter's payload is sealed (the associated data).
fn letter_aad(tenant: &TenantId) -> Vec<u8> {
    format!("consent-ledger/dead-letter/v1\n{tenant}").into_bytes()
}

/// Opens a dead letter's sealed payload (any JSON: letters kept by older
/// versions have another shape).
pub fn open_letter(
    master: &MasterKey,
    tenant: &TenantId,
    sealed: &str,
) -> Option<serde_json::Value> {
    let plain = master.kek().open(sealed, &letter_aad(tenant))?;
    serde_json::from_slice(&plain).ok()
}

/// Seals a dead letter's payload for its tenant.
pub fn seal_letter(master: &MasterKey, tenant: &TenantId, payload: &LetterPayload) -> String {
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
    tenant: &TenantId,
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
    tenant: &TenantId,
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
    tenant: &TenantId,
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
pub fn dead_letter(
    conn: &mut DbConn,
    tenant: &TenantId,
    id: i64,
) -> QueryResult<Option<DeadLetterRow>> {
    dead_letters::table
        .filter(dead_letters::tenant_id.eq(tenant))
        .filter(dead_letters::id.eq(id))
        .select(DeadLetterRow::as_select())
        .first(conn)
        .optional()
}

/// The tenants with opt-outs an older version kept waiting for a user id.
pub fn tenants_with_letters_waiting_for_user_ids(conn: &mut DbConn) -> QueryResult<Vec<TenantId>> {
    dead_letters::table
        .filter(dead_letters::user_id_hash.is_not_null())
        .filter(dead_letters::opt_out.eq(true))
        .filter(dead_letters::resolved_at.is_null())
        .select(dead_letters::tenant_id)
        .distinct()
        .order(dead_letters::tenant_id)
        .load(conn)
}

/// The unapplied opt-outs waiting for a user id (by its keyed hash).
pub fn letters_waiting_for_user_ids(
    conn: &mut DbConn,
    tenant: &TenantId,
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
    tenant: &TenantId,
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
    tenant: &TenantId,
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
    tenant: &TenantId,
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
/// what is kept (docs/identities.md: only it is stored). Each letter is opened,
/// rewritten when it changes, sealed again and marked. Returns how many
/// were rewritten.
pub fn canonicalise_letters(conn: &mut DbConn, master: &MasterKey) -> QueryResult<usize> {
    let mut rewritten = 0;
    loop {
        let batch: Vec<(i64, TenantId, String)> = dead_letters::table
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
