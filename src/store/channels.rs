//! What the channel webhooks keep: each tenant's settings (secrets sealed by
//! the caller), which business numbers belong to whom, the message ids
//! already handled, business-scoped user ids, and dead letters.

use super::append::LiftClass;
use super::connection::{lock_shared_rule, SharedRule};
use super::schema::{
    channel_numbers, channel_settings, consent_events, dead_letters, subject_aliases, subjects,
    webhook_dedup,
};
use super::DbConn;
use crate::domain::number::E164;
use crate::domain::purpose::CaptureChannel;
use diesel::prelude::*;

/// The stored settings document of a tenant, if any.
pub fn load_settings(conn: &mut DbConn, tenant: &str) -> QueryResult<Option<String>> {
    channel_settings::table
        .find(tenant)
        .select(channel_settings::settings)
        .first(conn)
        .optional()
}

/// A business number: a WhatsApp phone number id or a Twilio number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelNumber {
    pub kind: &'static str,
    pub value: String,
}

pub const WHATSAPP_PHONE_NUMBER_ID: &str = "whatsapp_phone_number_id";
pub const TWILIO_NUMBER: &str = "twilio_number";

/// Replaces the tenant's settings and numbers; call inside a transaction
/// that holds the tenant's log (`lock_log`). Returns the first number
/// another tenant holds (nothing is written then).
pub fn replace_settings(
    conn: &mut DbConn,
    tenant: &str,
    settings: &str,
    numbers: &[ChannelNumber],
    now: i64,
) -> QueryResult<Option<ChannelNumber>> {
    {
        lock_shared_rule(conn, SharedRule::ChannelNumbers)?;
        for number in numbers {
            let holder: Option<String> = channel_numbers::table
                .find((number.kind, &number.value))
                .select(channel_numbers::tenant_id)
                .first(conn)
                .optional()?;
            if holder.is_some_and(|h| h != tenant) {
                return Ok(Some(number.clone()));
            }
        }
        diesel::delete(channel_numbers::table.filter(channel_numbers::tenant_id.eq(tenant)))
            .execute(conn)?;
        let rows: Vec<_> = numbers
            .iter()
            .map(|n| {
                (
                    channel_numbers::kind.eq(n.kind),
                    channel_numbers::value.eq(&n.value),
                    channel_numbers::tenant_id.eq(tenant),
                )
            })
            .collect();
        crate::on_backend!(conn, |c| diesel::insert_into(channel_numbers::table)
            .values(&rows)
            .execute(c))?;
        crate::on_backend!(conn, |c| diesel::insert_into(channel_settings::table)
            .values((
                channel_settings::tenant_id.eq(tenant),
                channel_settings::settings.eq(settings),
                channel_settings::updated_at.eq(now),
            ))
            .on_conflict(channel_settings::tenant_id)
            .do_update()
            .set((
                channel_settings::settings.eq(settings),
                channel_settings::updated_at.eq(now),
            ))
            .execute(c))?;
        Ok(None)
    }
}

/// The tenant's configured WhatsApp phone number ids, in order.
pub fn whatsapp_phone_number_ids(conn: &mut DbConn, tenant: &str) -> QueryResult<Vec<String>> {
    channel_numbers::table
        .filter(channel_numbers::tenant_id.eq(tenant))
        .filter(channel_numbers::kind.eq(WHATSAPP_PHONE_NUMBER_ID))
        .order(channel_numbers::value)
        .select(channel_numbers::value)
        .load(conn)
}

/// Marks a provider message as handled; `false` when it was already (a
/// retry). Call it inside the transaction that records what it means.
pub fn first_delivery(
    conn: &mut DbConn,
    tenant: &str,
    key_hash: &str,
    now: i64,
) -> QueryResult<bool> {
    let inserted = crate::on_backend!(conn, |c| diesel::insert_into(webhook_dedup::table)
        .values((
            webhook_dedup::tenant_id.eq(tenant),
            webhook_dedup::key_hash.eq(key_hash),
            webhook_dedup::seen_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}

/// Keeps a business-scoped user id as an alias of the number.
pub fn remember_alias(
    conn: &mut DbConn,
    tenant: &str,
    user_id: &str,
    number: &E164,
    now: i64,
) -> QueryResult<()> {
    crate::on_backend!(conn, |c| diesel::insert_into(subject_aliases::table)
        .values((
            subject_aliases::tenant_id.eq(tenant),
            subject_aliases::user_id.eq(user_id),
            subject_aliases::e164.eq(number.as_str()),
            subject_aliases::updated_at.eq(now),
        ))
        .on_conflict((subject_aliases::tenant_id, subject_aliases::user_id))
        .do_update()
        .set((
            subject_aliases::e164.eq(number.as_str()),
            subject_aliases::updated_at.eq(now),
        ))
        .execute(c))
    .map(|_| ())
}

/// The number a business-scoped user id stands for, if known.
pub fn resolve_alias(conn: &mut DbConn, tenant: &str, user_id: &str) -> QueryResult<Option<E164>> {
    let found: Option<String> = subject_aliases::table
        .find((tenant, user_id))
        .select(subject_aliases::e164)
        .first(conn)
        .optional()?;
    Ok(found.as_deref().and_then(E164::from_canonical))
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
pub fn letters_waiting_for(
    conn: &mut DbConn,
    tenant: &str,
    user_id_hash: &str,
) -> QueryResult<Vec<DeadLetterRow>> {
    dead_letters::table
        .filter(dead_letters::tenant_id.eq(tenant))
        .filter(dead_letters::user_id_hash.eq(user_id_hash))
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

/// The effective opt-outs of the number's current subject that a message
/// captured at `before` may lift: of that class, recorded on that capture
/// channel, captured strictly earlier (a START never undoes a later STOP,
/// and an opt-out wins a tie), in seq order.
pub fn liftable_opt_outs(
    conn: &mut DbConn,
    tenant: &str,
    number: &E164,
    class: LiftClass,
    channel: CaptureChannel,
    before: i64,
) -> QueryResult<Vec<u64>> {
    let seqs: Vec<i64> = consent_events::table
        .inner_join(subjects::table)
        .filter(subjects::tenant_id.eq(tenant))
        .filter(subjects::e164.eq(number.as_str()))
        .filter(subjects::erased_at.is_null())
        .filter(consent_events::kind.eq("opt_out"))
        .filter(consent_events::lift_class.eq(class.as_str()))
        .filter(consent_events::channel.eq(channel.as_str()))
        .filter(consent_events::lifted_by.is_null())
        .filter(consent_events::captured_at.lt(before))
        .order(consent_events::seq)
        .select(consent_events::seq)
        .load(conn)?;
    Ok(seqs.into_iter().map(|s| s as u64).collect())
}
