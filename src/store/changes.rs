//! The change feed's reads (docs/changes.md): a page of a log's entries
//! from a position, and what the feed tells of them besides the entry (the
//! opt-in's brand, the subject's group and closing, the group's
//! identities, an erasure's identity hash). Which entries are changes and
//! how each reads: `services/changes.rs`.

use super::schema::{brands, consent_events, entries, erased_identity_hashes, subjects};
use super::DbConn;
use crate::domain::access::TenantId;
use crate::domain::ids::{GroupId, SubjectId};
use diesel::prelude::*;

/// An entry of the log as the feed reads it.
#[derive(Debug, Clone, Queryable)]
pub struct FeedEntry {
    pub seq: i64,
    pub canonical_json: String,
    pub subject_id: SubjectId,
}

/// Where a subject stands now: its group, and the seq of the opt-out that
/// closed it (if one did).
#[derive(Debug, Clone, Queryable)]
pub struct SubjectPlace {
    pub id: SubjectId,
    pub group_id: GroupId,
    pub closed_seq: Option<i64>,
}

/// At most `limit` entries of the log from seq `from` on, in log order.
pub fn entries_from(
    conn: &mut DbConn,
    tenant: &TenantId,
    from: i64,
    limit: i64,
) -> QueryResult<Vec<FeedEntry>> {
    crate::all_rows!(
        conn,
        entries::table
            .filter(entries::tenant_id.eq(tenant))
            .filter(entries::seq.ge(from))
            .order(entries::seq.asc())
            .limit(limit)
            .select((entries::seq, entries::canonical_json, entries::subject_id))
    )
}

/// The group and closing of each of the subjects.
pub fn places_of(conn: &mut DbConn, ids: &[SubjectId]) -> QueryResult<Vec<SubjectPlace>> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    crate::all_rows!(
        conn,
        subjects::table.filter(subjects::id.eq_any(&ids)).select((
            subjects::id,
            subjects::group_id,
            subjects::closed_seq
        ))
    )
}

/// The identities (not erased) of the groups, as (group, identity), oldest
/// subject first.
pub fn identities_of(
    conn: &mut DbConn,
    groups: &[GroupId],
) -> QueryResult<Vec<(GroupId, Option<String>)>> {
    let groups: Vec<i64> = groups.iter().map(|g| g.0).collect();
    crate::all_rows!(
        conn,
        subjects::table
            .filter(subjects::group_id.eq_any(&groups))
            .filter(subjects::erased_at.is_null())
            .filter(subjects::identity.is_not_null())
            .order(subjects::id.asc())
            .select((subjects::group_id, subjects::identity))
    )
}

/// The brand of each opt-in among the seqs, as (seq, brand name).
pub fn brands_of(
    conn: &mut DbConn,
    tenant: &TenantId,
    seqs: &[i64],
) -> QueryResult<Vec<(i64, String)>> {
    crate::all_rows!(
        conn,
        consent_events::table
            .inner_join(brands::table.on(brands::id.nullable().eq(consent_events::brand_id)))
            .filter(consent_events::tenant_id.eq(tenant))
            .filter(consent_events::seq.eq_any(seqs))
            .select((consent_events::seq, brands::name))
    )
}

/// The identity hash kept for each erasure among the seqs, as (seq, hash).
pub fn erased_hashes_of(
    conn: &mut DbConn,
    tenant: &TenantId,
    seqs: &[i64],
) -> QueryResult<Vec<(i64, String)>> {
    crate::all_rows!(
        conn,
        erased_identity_hashes::table
            .filter(erased_identity_hashes::tenant_id.eq(tenant))
            .filter(erased_identity_hashes::seq.eq_any(seqs))
            .select((
                erased_identity_hashes::seq,
                erased_identity_hashes::identity_hash,
            ))
    )
}

/// Keeps what the feed will say of the erasure at `seq`: the feed hash of
/// the identity it erased, and (while the tenant has event endpoints) the
/// identity sealed for their deliveries.
pub fn keep_erased_hash(
    conn: &mut DbConn,
    tenant: &TenantId,
    seq: i64,
    (identity_hash, identity_sealed): (&str, Option<&str>),
    erased_at: i64,
) -> QueryResult<()> {
    crate::execute!(
        conn,
        diesel::insert_into(erased_identity_hashes::table).values((
            erased_identity_hashes::tenant_id.eq(tenant),
            erased_identity_hashes::seq.eq(seq),
            erased_identity_hashes::identity_hash.eq(identity_hash),
            erased_identity_hashes::identity_sealed.eq(identity_sealed),
            erased_identity_hashes::erased_at.eq(erased_at),
        ))
    )
    .map(drop)
}
