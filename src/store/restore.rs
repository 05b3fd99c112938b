//! The queries `restore-tail` needs beyond the append's own (docs/ledger-format.md):
//! which tenant a log belongs to, what the database already holds, and the
//! subjects an export names. `services::restore` decides what to re-append.

use super::schema::subjects;
use super::DbConn;
use crate::domain::access::TenantId;
use crate::domain::ids::{GroupId, SubjectId};
use diesel::prelude::*;

/// The subject of the tenant with this commitment, erased or not.
pub fn subject_by_commitment(
    conn: &mut DbConn,
    tenant: &TenantId,
    commitment: &str,
) -> QueryResult<Option<SubjectId>> {
    subjects::table
        .filter(subjects::tenant_id.eq(tenant))
        .filter(subjects::commitment.eq(commitment))
        .select(subjects::id)
        .first(conn)
        .optional()
}

/// A subject's group.
pub fn group_of(conn: &mut DbConn, subject_id: SubjectId) -> QueryResult<GroupId> {
    subjects::table
        .find(subject_id)
        .select(subjects::group_id)
        .first(conn)
}

/// A subject's identity, while the database knows it.
pub fn identity_of(conn: &mut DbConn, subject_id: SubjectId) -> QueryResult<Option<String>> {
    subjects::table
        .find(subject_id)
        .select(subjects::identity)
        .first(conn)
}

/// Marks a subject erased at `at`.
pub fn mark_erased(conn: &mut DbConn, subject_id: SubjectId, at: i64) -> QueryResult<()> {
    diesel::update(subjects::table.find(subject_id))
        .set(subjects::erased_at.eq(Some(at)))
        .execute(conn)?;
    Ok(())
}

/// The tenant whose log has this origin.
pub fn tenant_of_log(conn: &mut DbConn, origin: &str) -> QueryResult<Option<TenantId>> {
    use super::schema::tenants;
    tenants::table
        .filter(tenants::origin.eq(origin))
        .select(tenants::id)
        .first(conn)
        .optional()
}

/// The leaf hash stored at `seq`, if the log has it.
pub fn leaf_hash_at(conn: &mut DbConn, tenant: &TenantId, seq: u64) -> QueryResult<Option<String>> {
    use super::schema::entries;
    entries::table
        .filter(entries::tenant_id.eq(tenant))
        .filter(entries::seq.eq(seq as i64))
        .select(entries::leaf_hash)
        .first(conn)
        .optional()
}
