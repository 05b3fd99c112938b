//! Subjects and their groups (SPEC section 3): a subject is one identity (a
//! number or a user id) with its salt; subjects joined by `identity_linked`
//! entries share a `group_id` (the id of one of them), kept on the consent
//! state too so that a check reads a group's events in one indexed query.
//! A closed group (a changed number) keeps answering until an identity of
//! it starts a new subject.

use super::schema::subjects;
use super::DbConn;
use crate::keys::random_salt_hex;
use crate::ledger::commitment::subject_commitment;
use diesel::prelude::*;

/// A subject as the store finds it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = subjects)]
pub struct SubjectRow {
    pub id: i64,
    pub commitment: String,
    pub group_id: i64,
    pub closed_at: Option<i64>,
}

/// An identity's open subject (not erased, its group not closed): the one
/// new entries of that identity go to.
pub fn current_subject(
    conn: &mut DbConn,
    tenant: &str,
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

/// An identity's newest subject that is not erased, open or closed: the
/// group that answers for it (SPEC section 2 rule 2).
pub fn newest_subject(
    conn: &mut DbConn,
    tenant: &str,
    identity: &str,
) -> QueryResult<Option<SubjectRow>> {
    crate::one_row!(
        conn,
        subjects::table
            .filter(subjects::tenant_id.eq(tenant))
            .filter(subjects::identity.eq(identity))
            .filter(subjects::erased_at.is_null())
            .order(subjects::id.desc())
            .select(SubjectRow::as_select())
    )
}

/// The identity's open subject, or a new one with a fresh random salt in
/// a group of its own.
pub fn current_or_new_subject(
    conn: &mut DbConn,
    tenant: &str,
    identity: &str,
    now: i64,
) -> QueryResult<SubjectRow> {
    if let Some(found) = current_subject(conn, tenant, identity)? {
        return Ok(found);
    }
    let salt = random_salt_hex();
    let commitment = subject_commitment(&salt, identity);
    let opened = Some((identity, salt.as_str()));
    let id = insert_subject(conn, tenant, &commitment, opened, (now, None))?;
    Ok(SubjectRow {
        id,
        commitment,
        group_id: id,
        closed_at: None,
    })
}

/// Inserts a subject in a group of its own: with its identity and salt
/// when `opened`, and at (`created_at`, `erased_at`). Returns its id.
pub fn insert_subject(
    conn: &mut DbConn,
    tenant: &str,
    commitment: &str,
    opened: Option<(&str, &str)>,
    (created_at, erased_at): (i64, Option<i64>),
) -> QueryResult<i64> {
    let id: i64 = crate::get_result!(
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
            ))
            .returning(subjects::id)
    )?;
    crate::execute!(conn, super::prepared::OwnGroup { subject: id })?;
    Ok(id)
}

/// A subject of a group, with its identity (none once erased).
#[derive(Debug, Clone, Queryable)]
pub struct Member {
    pub id: i64,
    pub commitment: String,
    pub identity: Option<String>,
}

/// The subjects of a group that are not erased, oldest first.
pub fn group_members(conn: &mut DbConn, group_id: i64) -> QueryResult<Vec<Member>> {
    crate::all_rows!(
        conn,
        subjects::table
            .filter(subjects::group_id.eq(group_id))
            .filter(subjects::erased_at.is_null())
            .order(subjects::id.asc())
            .select((subjects::id, subjects::commitment, subjects::identity))
    )
}

/// The identities of a group (not erased).
pub fn group_identities(conn: &mut DbConn, group_id: i64) -> QueryResult<Vec<String>> {
    Ok(group_members(conn, group_id)?
        .into_iter()
        .filter_map(|m| m.identity)
        .collect())
}
