//! The mechanics of links between identities (docs/identities.md): the
//! `identity_linked` entry and its row, merging and closing groups, whether
//! a pairing contradicts a link, the wave-1 aliases. What links and closes,
//! and when: `services/links.rs`. Everything here runs inside the caller's
//! transaction, under the log's lock.

use super::append::{lock_head, write_entry, SaltedEvidence};
use super::consent::forget_windows;
use super::schema::{consent_events, identity_links, subject_aliases, subjects};
use super::subjects::{current_subject, SubjectRow};
use super::{DbConn, StoreResult};
use crate::domain::access::TenantId;
use crate::domain::evidence::Evidence;
use crate::domain::identity::Identity;
use crate::domain::ids::{GroupId, SubjectId};
use crate::domain::purpose::CaptureChannel;
use crate::domain::time::Timestamp;
use crate::keys::random_salt_hex;
use crate::ledger::commitment::evidence_commitment;
use crate::ledger::entry::{Entry, EntryType};
use crate::ledger::jcs::jcs_string_map;
use diesel::prelude::*;

/// Where a link or a closure came from: the message's WhatsApp Business
/// Account, its time and its evidence, and who recorded it.
pub struct Source<'a> {
    pub waba: &'a str,
    pub captured_at: Timestamp,
    pub evidence: &'a Evidence,
    pub collector: &'a str,
}

/// Appends the `identity_linked` entry that joins subject `a` (its
/// `subject`) and `b` (its `linked`), inside the caller's transaction under
/// the log's lock, keeps the link with its business account, and merges
/// the two groups. Returns the entry's seq.
pub fn append_link_locked(
    conn: &mut DbConn,
    tenant: &TenantId,
    (a, b): (&SubjectRow, &SubjectRow),
    source: &Source<'_>,
    now: Timestamp,
) -> StoreResult<u64> {
    let head = lock_head(conn, tenant, None, now)?;
    let fields = source.evidence.fields();
    let evidence = SaltedEvidence {
        salt: random_salt_hex(),
        jcs: jcs_string_map(fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    };
    let mut entry = Entry::new(
        EntryType::IdentityLinked,
        &head.origin,
        head.size,
        &head.hash,
        head.recorded_at,
        &a.commitment,
        source.collector,
    );
    entry.channel = Some(CaptureChannel::Whatsapp.as_str().to_owned());
    entry.captured_at = Some(source.captured_at);
    entry.evidence_sha256 = Some(evidence_commitment(&evidence.salt, &evidence.jcs));
    entry.linked = Some(b.commitment.clone());
    write_entry(conn, tenant, None, a.id, Some(&evidence), &entry)?;
    let link = (a.id, b.id, source.captured_at);
    insert_link(conn, tenant, head.size, link, source.waba)?;
    merge_groups(conn, a.group_id, b.group_id)?;
    tracing::debug!(seq = head.size, "identities linked");
    Ok(head.size)
}

/// The tenants that hold wave-1 aliases (a user id stored beside a number).
pub fn alias_tenants(conn: &mut DbConn) -> QueryResult<Vec<TenantId>> {
    subject_aliases::table
        .select(subject_aliases::tenant_id)
        .distinct()
        .order(subject_aliases::tenant_id)
        .load(conn)
}

/// A tenant's wave-1 aliases, oldest first: (user id, number, when stored).
pub fn aliases_of(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<Vec<(String, String, i64)>> {
    subject_aliases::table
        .filter(subject_aliases::tenant_id.eq(tenant))
        .order((subject_aliases::updated_at, subject_aliases::user_id))
        .select((
            subject_aliases::user_id,
            subject_aliases::e164,
            subject_aliases::updated_at,
        ))
        .load(conn)
}

/// Deletes a wave-1 alias (it moved, or cannot).
pub fn delete_alias(conn: &mut DbConn, tenant: &TenantId, user_id: &str) -> QueryResult<()> {
    diesel::delete(
        subject_aliases::table
            .filter(subject_aliases::tenant_id.eq(tenant))
            .filter(subject_aliases::user_id.eq(user_id)),
    )
    .execute(conn)?;
    Ok(())
}

/// A link between two subjects, when it was captured.
type Link = (SubjectId, SubjectId, Timestamp);

fn insert_link(
    conn: &mut DbConn,
    tenant: &TenantId,
    seq: u64,
    (subject_id, linked_id, captured_at): Link,
    waba: &str,
) -> QueryResult<()> {
    diesel::insert_into(identity_links::table)
        .values((
            identity_links::tenant_id.eq(tenant),
            identity_links::seq.eq(seq as i64),
            identity_links::subject_id.eq(subject_id),
            identity_links::linked_subject_id.eq(linked_id),
            identity_links::waba.eq(waba),
            identity_links::captured_at.eq(captured_at.millis()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Keeps a re-appended link (`restore-tail`: its business account is not
/// in the export) and merges the two subjects' groups.
pub fn keep_link(conn: &mut DbConn, tenant: &TenantId, seq: u64, link: Link) -> QueryResult<()> {
    insert_link(conn, tenant, seq, link, "")?;
    let group = |conn: &mut DbConn, id: SubjectId| -> QueryResult<GroupId> {
        subjects::table
            .find(id)
            .select(subjects::group_id)
            .first(conn)
    };
    let (a, b) = (group(conn, link.0)?, group(conn, link.1)?);
    if a != b {
        merge_groups(conn, a, b)?;
    }
    Ok(())
}

/// Closes every open subject of a group at `at` (milliseconds), by the
/// opt-out `closed_by`, and forgets the group's windows: they are never
/// read across to a later subject of its identities.
pub fn close_subjects(
    conn: &mut DbConn,
    group_id: GroupId,
    closed_by: u64,
    at: i64,
) -> QueryResult<()> {
    diesel::update(
        subjects::table
            .filter(subjects::group_id.eq(group_id))
            .filter(subjects::closed_at.is_null()),
    )
    .set((
        subjects::closed_at.eq(Some(at)),
        subjects::closed_seq.eq(Some(closed_by as i64)),
    ))
    .execute(conn)?;
    let members: Vec<SubjectId> = subjects::table
        .filter(subjects::group_id.eq(group_id))
        .select(subjects::id)
        .load(conn)?;
    forget_windows(conn, &members)?;
    Ok(())
}

/// Moves the larger group id onto the smaller, on the subjects and on the
/// consent state a check reads.
fn merge_groups(conn: &mut DbConn, a: GroupId, b: GroupId) -> QueryResult<()> {
    let (keep, drop) = if a < b { (a, b) } else { (b, a) };
    diesel::update(subjects::table.filter(subjects::group_id.eq(drop)))
        .set(subjects::group_id.eq(keep))
        .execute(conn)?;
    diesel::update(consent_events::table.filter(consent_events::group_id.eq(drop)))
        .set(consent_events::group_id.eq(keep))
        .execute(conn)?;
    Ok(())
}

/// Whether `arrived`, paired with `other` through the WhatsApp Business
/// Account `waba`, contradicts a link of its open subject made through
/// that account: it is linked there to another identity of `other`'s kind
/// (docs/identities.md, a changed or reassigned number).
pub fn contradicts_link(
    conn: &mut DbConn,
    tenant: &TenantId,
    arrived: &Identity,
    other: &Identity,
    waba: &str,
) -> StoreResult<bool> {
    let Some(subject) = current_subject(conn, tenant, arrived.as_str())? else {
        return Ok(false);
    };
    let links: Vec<(SubjectId, SubjectId)> = identity_links::table
        .filter(identity_links::tenant_id.eq(tenant))
        .filter(identity_links::waba.eq(waba))
        .filter(
            identity_links::subject_id
                .eq(subject.id)
                .or(identity_links::linked_subject_id.eq(subject.id)),
        )
        .select((
            identity_links::subject_id,
            identity_links::linked_subject_id,
        ))
        .load(conn)?;
    let partners: Vec<SubjectId> = links
        .into_iter()
        .map(|(a, b)| if a == subject.id { b } else { a })
        .collect();
    let identities: Vec<Option<String>> = subjects::table
        .filter(subjects::id.eq_any(&partners))
        .filter(subjects::erased_at.is_null())
        .select(subjects::identity)
        .load(conn)?;
    let contradicted = identities
        .iter()
        .flatten()
        .filter_map(|stored| Identity::from_stored(stored))
        .any(|partner| partner.kind() == other.kind() && partner != *other);
    Ok(contradicted)
}

/// The latest `captured_at` of the links of a group's subjects (a group of
/// links alone counts for retention from it).
pub fn last_link_at(conn: &mut DbConn, members: &[SubjectId]) -> QueryResult<Option<Timestamp>> {
    let latest: Option<i64> = identity_links::table
        .filter(
            identity_links::subject_id
                .eq_any(members)
                .or(identity_links::linked_subject_id.eq_any(members)),
        )
        .select(diesel::dsl::max(identity_links::captured_at))
        .first(conn)?;
    Ok(latest.map(Timestamp::from_millis))
}
