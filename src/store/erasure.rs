//! What erasure deletes (docs/privacy.md), for the erasure and retention
//! use cases (`services/erasure.rs`) and `restore-tail`: the groups that
//! hold an identity, what names an identity outside its subjects, what
//! opens a subject, and the compaction after an erasure commits. The
//! entries and their commitments stay, so every proof and checkpoint stays
//! valid.

use super::dead_letters;
use super::schema::{entries, idempotency_keys, subject_aliases, subjects};
use super::subjects::{group_members, Member};
use super::{DbConn, StoreResult};
use crate::domain::access::TenantId;
use crate::domain::ids::{GroupId, SubjectId};
use crate::keys::MasterKey;
use diesel::prelude::*;

/// The subjects (not erased) of every group that holds the identity,
/// open or closed, oldest first.
pub fn members_of_every_group(
    conn: &mut DbConn,
    tenant: &TenantId,
    identity: &str,
) -> QueryResult<Vec<Member>> {
    let mut groups: Vec<GroupId> = subjects::table
        .filter(subjects::tenant_id.eq(tenant))
        .filter(subjects::identity.eq(identity))
        .filter(subjects::erased_at.is_null())
        .select(subjects::group_id)
        .load(conn)?;
    groups.sort_unstable();
    groups.dedup();
    let mut members = Vec::new();
    for group in groups {
        members.extend(group_members(conn, group)?);
    }
    members.sort_by_key(|m| m.id);
    Ok(members)
}

/// Deletes what names an identity outside its subjects: wave-1 aliases and
/// dead letters (matched on the canonical identity).
pub fn forget_identity(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    identity: &str,
) -> StoreResult<()> {
    diesel::delete(
        subject_aliases::table
            .filter(subject_aliases::tenant_id.eq(tenant))
            .filter(
                subject_aliases::e164
                    .eq(identity)
                    .or(subject_aliases::user_id.eq(identity)),
            ),
    )
    .execute(conn)?;
    dead_letters::delete_letters_naming(conn, master, tenant, identity)?;
    Ok(())
}

/// Deletes what opens the subject: its identity and salt, every evidence
/// body and salt of its entries, its documents and idempotency records.
/// Its keyed identity hash stays, so that its identity's newest subject is
/// still known to be erased. Consent texts are the tenant's, not the
/// person's, and stay.
pub fn forget_subject(
    conn: &mut DbConn,
    tenant: &TenantId,
    subject_id: SubjectId,
    at: i64,
) -> StoreResult<()> {
    diesel::update(subjects::table.find(subject_id))
        .set((
            subjects::identity.eq(None::<String>),
            subjects::salt.eq(None::<String>),
            subjects::erased_at.eq(Some(at)),
        ))
        .execute(conn)?;
    diesel::update(entries::table.filter(entries::subject_id.eq(subject_id)))
        .set((
            entries::evidence_salt.eq(None::<String>),
            entries::evidence_jcs.eq(None::<String>),
        ))
        .execute(conn)?;
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::tenant_id.eq(tenant))
            .filter(idempotency_keys::subject_id.eq(subject_id)),
    )
    .execute(conn)?;
    super::documents::delete_of_subject(conn, tenant, subject_id)?;
    super::reviews::delete_of_subject(conn, tenant, subject_id)?;
    Ok(())
}

/// After an erasure commits: SQLite truncates its WAL (the deleted rows'
/// old pages are in it; `secure_delete` already zeroed them in the main
/// file), PostgreSQL vacuums the tables it touched. A failure is logged and
/// the next erasure tries again; the erasure itself stands. Retention calls
/// it once after a run's erasures.
pub fn compact(conn: &mut DbConn) {
    let done = match conn {
        DbConn::Sqlite(c) => diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").execute(c),
        DbConn::Pg(c) => diesel::sql_query(
            "VACUUM subjects, entries, windows, subject_aliases, idempotency_keys, dead_letters, documents, document_subjects, reviews",
        )
        .execute(c),
    };
    if let Err(error) = done {
        tracing::warn!(%error, "compacting after an erasure failed");
    }
}
