//! Subjects and their groups (docs/identities.md): a subject is one identity (a
//! number or a user id) with its salt; subjects joined by `identity_linked`
//! entries share a `group_id` (the id of one of them), kept on the consent
//! state too so that a check reads a group's events in one indexed query.
//! A closed group (a changed number) answers `opted_out` until an identity
//! of it arrives again and starts a new subject. Each subject keeps the
//! tenant's keyed hash of its identity, also once erased, so that an
//! identity's newest subject is found whatever became of it.

use super::schema::subjects;
use super::DbConn;
use crate::domain::access::TenantId;
use crate::domain::ids::{GroupId, SubjectId};
use crate::keys::{random_salt_hex, MasterKey};
use crate::ledger::commitment::subject_commitment;
use diesel::prelude::*;

/// A subject as the store finds it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = subjects)]
pub struct SubjectRow {
    pub id: SubjectId,
    pub commitment: String,
    pub group_id: GroupId,
    pub closed_at: Option<i64>,
    /// The opt-out that closed the group, while it is closed.
    pub closed_seq: Option<i64>,
    pub erased_at: Option<i64>,
}

impl SubjectRow {
    /// Whether the subject is in a closed group (and not erased).
    pub fn is_closed(&self) -> bool {
        self.closed_at.is_some() && self.erased_at.is_none()
    }

    pub fn is_erased(&self) -> bool {
        self.erased_at.is_some()
    }
}

/// An identity's open subject (not erased, its group not closed): the one
/// new entries of that identity go to.
pub fn current_subject(
    conn: &mut DbConn,
    tenant: &TenantId,
    identity: &str,
) -> QueryResult<Option<SubjectRow>> {
    crate::one_row!(
        conn,
        subjects::table
            .filter(subjects::tenant_id.eq(tenant))
            .filter(subjects::identity.eq(identity))
            .filter(subjects::erased_at.is_null())
            .filter(subjects::closed_at.is_null())
            .select(SubjectRow::as_select())
    )
}

/// An identity's newest subject, by the keyed hash of the identity
/// (`MasterKey::identity_hash`), whatever its state: open, closed or
/// erased. The group that answers for the identity (docs/decisions.md rule
/// 2): never an older one.
pub fn newest_subject_by_hash(
    conn: &mut DbConn,
    tenant: &TenantId,
    identity_hash: &str,
) -> QueryResult<Option<SubjectRow>> {
    crate::one_row!(
        conn,
        subjects::table
            .filter(subjects::tenant_id.eq(tenant))
            .filter(subjects::identity_hash.eq(identity_hash))
            .order(subjects::id.desc())
            .select(SubjectRow::as_select())
    )
}

/// The commitment of the newest subject of each of these keyed identity
/// hashes that has one, by hash ([`newest_subject_by_hash`] for many, in
/// chunks of a few hundred).
pub fn newest_commitments_by_hash(
    conn: &mut DbConn,
    tenant: &TenantId,
    hashes: &[String],
) -> QueryResult<std::collections::HashMap<String, String>> {
    let mut newest = std::collections::HashMap::with_capacity(hashes.len());
    for chunk in hashes.chunks(500) {
        let rows: Vec<(Option<String>, String)> = subjects::table
            .filter(subjects::tenant_id.eq(tenant))
            .filter(subjects::identity_hash.eq_any(chunk))
            .order(subjects::id.asc())
            .select((subjects::identity_hash, subjects::commitment))
            .load(conn)?;
        // Oldest first: a newer subject's commitment replaces an older one's.
        newest.extend(rows.into_iter().filter_map(|(h, c)| Some((h?, c))));
    }
    Ok(newest)
}

/// [`newest_subject_by_hash`] of an identity.
pub fn newest_subject(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    identity: &str,
) -> QueryResult<Option<SubjectRow>> {
    newest_subject_by_hash(conn, tenant, &master.identity_hash(tenant, identity))
}

/// The identity's newest subject unless it is erased: the group that
/// answers for it; `None` answers as for an unknown identity (never an
/// older group).
pub fn newest_live_subject(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    identity: &str,
) -> QueryResult<Option<SubjectRow>> {
    Ok(newest_subject(conn, master, tenant, identity)?.filter(|s| !s.is_erased()))
}

/// The identity's open subject, or a new one with a fresh random salt in
/// a group of its own.
pub fn current_or_new_subject(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    identity: &str,
    now: i64,
) -> QueryResult<SubjectRow> {
    if let Some(found) = current_subject(conn, tenant, identity)? {
        return Ok(found);
    }
    let salt = random_salt_hex();
    let commitment = subject_commitment(&salt, identity);
    let opened = Some((identity, salt.as_str()));
    let id = insert_subject(conn, master, tenant, &commitment, opened, (now, None))?;
    Ok(SubjectRow {
        id,
        commitment,
        group_id: id.own_group(),
        closed_at: None,
        closed_seq: None,
        erased_at: None,
    })
}

/// Inserts a subject in a group of its own: with its identity, salt and
/// the identity's keyed hash when `opened`, and at (`created_at`,
/// `erased_at`). Returns its id.
pub fn insert_subject(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    commitment: &str,
    opened: Option<(&str, &str)>,
    (created_at, erased_at): (i64, Option<i64>),
) -> QueryResult<SubjectId> {
    let identity_hash = opened.map(|(identity, _)| master.identity_hash(tenant, identity));
    let id: SubjectId = crate::get_result!(
        conn,
        diesel::insert_into(subjects::table)
            .values((
                subjects::tenant_id.eq(tenant),
                subjects::commitment.eq(commitment),
                subjects::identity.eq(opened.map(|(identity, _)| identity)),
                subjects::salt.eq(opened.map(|(_, salt)| salt)),
                subjects::created_at.eq(created_at),
                subjects::erased_at.eq(erased_at),
                subjects::group_id.eq(0),
                subjects::identity_hash.eq(identity_hash),
            ))
            .returning(subjects::id)
    )?;
    crate::execute!(conn, super::prepared::OwnGroup { subject: id.0 })?;
    Ok(id)
}

/// A subject of a group, with its identity (none once erased).
#[derive(Debug, Clone, Queryable)]
pub struct Member {
    pub id: SubjectId,
    pub commitment: String,
    pub identity: Option<String>,
}

/// The subjects of a group that are not erased, oldest first.
pub fn group_members(conn: &mut DbConn, group_id: GroupId) -> QueryResult<Vec<Member>> {
    crate::all_rows!(
        conn,
        subjects::table
            .filter(subjects::group_id.eq(group_id))
            .filter(subjects::erased_at.is_null())
            .order(subjects::id.asc())
            .select((subjects::id, subjects::commitment, subjects::identity))
    )
}

/// The commitments of every subject of a group, erased or not.
pub fn group_commitments(conn: &mut DbConn, group_id: GroupId) -> QueryResult<Vec<String>> {
    subjects::table
        .filter(subjects::group_id.eq(group_id))
        .select(subjects::commitment)
        .load(conn)
}

/// The identities of a group (not erased).
pub fn group_identities(conn: &mut DbConn, group_id: GroupId) -> QueryResult<Vec<String>> {
    Ok(group_members(conn, group_id)?
        .into_iter()
        .filter_map(|m| m.identity)
        .collect())
}

/// Every subject of an identity that is not erased, open or closed (a
/// number's earlier groups name it too), oldest first.
pub fn subjects_of_identity(
    conn: &mut DbConn,
    tenant: &TenantId,
    identity: &str,
) -> QueryResult<Vec<SubjectRow>> {
    subjects::table
        .filter(subjects::tenant_id.eq(tenant))
        .filter(subjects::identity.eq(identity))
        .filter(subjects::erased_at.is_null())
        .order(subjects::id.asc())
        .select(SubjectRow::as_select())
        .load(conn)
}

/// The group of a subject of the tenant that is not erased.
pub fn live_group_of(
    conn: &mut DbConn,
    tenant: &TenantId,
    subject_id: SubjectId,
) -> QueryResult<Option<GroupId>> {
    subjects::table
        .find(subject_id)
        .filter(subjects::tenant_id.eq(tenant))
        .filter(subjects::erased_at.is_null())
        .select(subjects::group_id)
        .first(conn)
        .optional()
}

/// Whether any subject of a group holds an entry (a subject made by an
/// arrival that recorded nothing holds none).
pub fn group_holds_entries(conn: &mut DbConn, group_id: GroupId) -> QueryResult<bool> {
    use super::schema::entries;
    let members = subjects::table
        .filter(subjects::group_id.eq(group_id))
        .select(subjects::id);
    diesel::select(diesel::dsl::exists(
        entries::table.filter(entries::subject_id.eq_any(members)),
    ))
    .get_result(conn)
}

/// Fills, once, the keyed identity hash of the subjects stored before
/// subjects kept one (the hash needs the master key, so the migration
/// cannot). Returns how many were filled.
pub fn fill_identity_hashes(conn: &mut DbConn, master: &MasterKey) -> QueryResult<usize> {
    let mut filled = 0;
    loop {
        let batch: Vec<(i64, String, Option<String>)> = subjects::table
            .filter(subjects::identity_hash.is_null())
            .filter(subjects::identity.is_not_null())
            .order(subjects::id)
            .limit(1000)
            .select((subjects::id, subjects::tenant_id, subjects::identity))
            .load(conn)?;
        if batch.is_empty() {
            return Ok(filled);
        }
        conn.immediate_transaction(|conn| {
            for (id, tenant, identity) in &batch {
                let hash = identity.as_deref().map(|i| master.identity_hash(tenant, i));
                diesel::update(subjects::table.find(id))
                    .set(subjects::identity_hash.eq(hash))
                    .execute(conn)?;
            }
            Ok::<_, diesel::result::Error>(())
        })?;
        filled += batch.len();
    }
}

/// Deletes a subject that holds nothing (made by an arrival that recorded
/// nothing: no entry, no link, no window, no document): docs/identities.md.
/// Returns whether it was deleted.
pub fn delete_if_empty(conn: &mut DbConn, subject_id: SubjectId) -> QueryResult<bool> {
    use super::schema::{
        consent_events, document_subjects, entries, idempotency_keys, identity_links, windows,
    };
    use diesel::dsl::{exists, not};
    let deleted = diesel::delete(
        subjects::table
            .filter(subjects::id.eq(subject_id))
            .filter(subjects::erased_at.is_null())
            .filter(not(exists(
                entries::table.filter(entries::subject_id.eq(subject_id)),
            )))
            .filter(not(exists(
                identity_links::table.filter(
                    identity_links::subject_id
                        .eq(subject_id)
                        .or(identity_links::linked_subject_id.eq(subject_id)),
                ),
            )))
            .filter(not(exists(
                windows::table.filter(windows::subject_id.eq(subject_id)),
            )))
            .filter(not(exists(
                consent_events::table.filter(consent_events::subject_id.eq(subject_id)),
            )))
            .filter(not(exists(
                document_subjects::table.filter(document_subjects::subject_id.eq(subject_id)),
            )))
            .filter(not(exists(
                idempotency_keys::table.filter(idempotency_keys::subject_id.eq(subject_id)),
            ))),
    )
    .execute(conn)?;
    Ok(deleted == 1)
}
