//! Linking identities into one person, and closing a group when a number
//! or user id changes hands (docs/identities.md). Only a signature-checked
//! WhatsApp message links or closes (and once, the wave-1 migration);
//! everything here runs inside the message's transaction, under the log's
//! lock. The entries' mechanics: `store/links.rs`.

use super::error::ServiceResult;
use crate::domain::access::TenantId;
use crate::domain::evidence::Evidence;
use crate::domain::identity::{Identity, UserId};
use crate::domain::number::E164;
use crate::domain::purpose::{CaptureChannel, MessageChannelSet, PurposeSet};
use crate::domain::record::{OptOutRecord, Record};
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::store::append::append_locked;
use crate::store::connection::lock_log;
use crate::store::links::{
    alias_tenants, aliases_of, append_link_locked, close_subjects, delete_alias, Source,
};
use crate::store::subjects::{current_or_new_subject, current_subject};
use crate::store::DbConn;

/// The collector of links and closures: WhatsApp's webhook.
const COLLECTOR: &str = "webhook:whatsapp";

/// The collector of the links migrated from wave-1 aliases.
pub const MIGRATION_COLLECTOR: &str = "system:migration";

/// Joins `subject` and `linked` into one group unless they already are:
/// one `identity_linked` entry (`subject` = the first identity), creating
/// either subject if needed. Returns the entry's seq, if one was appended.
pub fn link(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    (subject, linked): (&Identity, &Identity),
    source: &Source<'_>,
    now: Timestamp,
) -> ServiceResult<Option<u64>> {
    let a = current_or_new_subject(conn, master, tenant, subject.as_str(), now.millis())?;
    let b = current_or_new_subject(conn, master, tenant, linked.as_str(), now.millis())?;
    if a.group_id == b.group_id {
        return Ok(None);
    }
    Ok(Some(append_link_locked(
        conn,
        tenant,
        (&a, &b),
        source,
        now,
    )?))
}

/// Closes the group of `identity`'s open subject: an opt-out of every
/// purpose and message channel on that subject (the message as evidence),
/// then the whole group is closed, its windows forgotten. Nothing carries
/// over to a later subject of any of its identities. Returns the opt-out's
/// seq, if the identity had an open subject.
pub fn close_group(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    identity: &Identity,
    source: &Source<'_>,
    now: Timestamp,
) -> ServiceResult<Option<u64>> {
    let Some(subject) = current_subject(conn, tenant, identity.as_str())? else {
        return Ok(None);
    };
    let record = Record::OptOut(OptOutRecord {
        identity: identity.clone(),
        channel: CaptureChannel::Whatsapp,
        purposes: PurposeSet::all(),
        message_channels: MessageChannelSet::all(),
        captured_at: source.captured_at,
        backfill: false,
        evidence: source.evidence.clone().with("reason", "number changed"),
        lift_class: None,
    });
    let appended = append_locked(conn, master, tenant, COLLECTOR, &record, None, now)?;
    close_subjects(conn, subject.group_id, appended.seq, now.millis())?;
    tracing::info!(seq = appended.seq, subject = %appended.subject, "group closed: a changed number");
    Ok(Some(appended.seq))
}

/// Migrates the wave-1 aliases (a user id stored beside a number) into
/// `identity_linked` entries, once, at upgrade (docs/identities.md): collector
/// `system:migration`, `captured_at` = when the alias was stored, evidence
/// `{"reason":"migrated alias"}`. Each tenant's aliases move in one
/// transaction under its log's lock and are deleted as they move, so a
/// restart in between migrates each alias once. Returns the links appended.
pub fn migrate_aliases(
    conn: &mut DbConn,
    master: &MasterKey,
    now: Timestamp,
) -> ServiceResult<usize> {
    let tenants = alias_tenants(conn)?;
    let mut linked = 0;
    for tenant in tenants {
        linked +=
            conn.immediate_transaction(|conn| migrate_tenant_aliases(conn, master, &tenant, now))?;
    }
    if linked > 0 {
        tracing::info!(linked, "wave-1 aliases migrated into identity links");
    }
    Ok(linked)
}

fn migrate_tenant_aliases(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    now: Timestamp,
) -> ServiceResult<usize> {
    lock_log(conn, tenant)?;
    let aliases = aliases_of(conn, tenant)?;
    let evidence = Evidence::from_pairs([("reason", "migrated alias")]);
    let mut linked = 0;
    for (user_id, e164, stored_at) in aliases {
        let number = E164::from_canonical(&e164).map(Identity::Number);
        let user = UserId::parse(&user_id).map(Identity::User);
        if let (Some(number), Some(user)) = (number, user) {
            let source = Source {
                waba: "",
                captured_at: Timestamp::from_millis(stored_at),
                evidence: &evidence,
                collector: MIGRATION_COLLECTOR,
            };
            let pair = (&number, &user);
            linked += usize::from(link(conn, master, tenant, pair, &source, now)?.is_some());
        } else {
            tracing::warn!("a wave-1 alias that is not a number and a user id: dropped");
        }
        delete_alias(conn, tenant, &user_id)?;
    }
    Ok(linked)
}
