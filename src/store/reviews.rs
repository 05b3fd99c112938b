//! Ambiguous messages kept for a person's review (docs/messages.md): the
//! message, the identity and the evidence stay sealed; a settled item
//! stays (so a second settlement is refused) until its group is erased.
//! Deciding what a review means: `services/reviews.rs`.

use super::schema::{reviews, tenants};
use super::DbConn;
use crate::domain::access::TenantId;
use crate::domain::decision::PendingReview;
use crate::domain::ids::{GroupId, SubjectId};
use crate::domain::purpose::PurposeSet;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Where a review item's message is sealed (the associated data).
fn review_aad(tenant: &TenantId) -> Vec<u8> {
    format!("consent-ledger/review/v1\n{tenant}").into_bytes()
}

/// What a review item keeps sealed: what an admin reads, and what a
/// settlement records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewMessage {
    /// The message's words as the person wrote them.
    pub text: String,
    /// The canonical identity it was recorded on (`+…` or a user id).
    pub identity: String,
    /// `whatsapp` or `twilio`.
    pub provider: String,
    /// The evidence an opt-out of this message carries.
    pub evidence: BTreeMap<String, String>,
}

pub fn seal_message(master: &MasterKey, tenant: &TenantId, message: &ReviewMessage) -> String {
    let json = serde_json::to_vec(message).expect("a review message serialises");
    master.kek().seal(&json, &review_aad(tenant))
}

/// The sealed message, or `None` when it does not open (another master key).
pub fn open_message(master: &MasterKey, tenant: &TenantId, sealed: &str) -> Option<ReviewMessage> {
    let plain = master.kek().open(sealed, &review_aad(tenant))?;
    serde_json::from_slice(&plain).ok()
}

/// A review item as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = reviews)]
pub struct ReviewRow {
    pub tenant_id: String,
    pub id: String,
    pub mode: String,
    pub subject_id: i64,
    pub group_id: i64,
    pub opt_out_seq: Option<i64>,
    pub purposes: i32,
    pub captured_at: i64,
    pub received_at: i64,
    pub message_sealed: String,
    pub settled_at: Option<i64>,
    pub decision: Option<String>,
    pub settled_seq: Option<i64>,
}

/// A review item to keep.
pub struct NewReview<'a> {
    pub id: &'a str,
    pub mode: &'a str,
    pub subject: SubjectId,
    pub group: GroupId,
    pub opt_out_seq: Option<u64>,
    pub purposes: i32,
    pub captured_at: i64,
    pub received_at: i64,
    pub message_sealed: &'a str,
}

/// Keeps a review item (inside the caller's transaction).
pub fn insert(conn: &mut DbConn, tenant: &TenantId, item: NewReview<'_>) -> QueryResult<()> {
    diesel::insert_into(reviews::table)
        .values((
            reviews::tenant_id.eq(tenant),
            reviews::id.eq(item.id),
            reviews::mode.eq(item.mode),
            reviews::subject_id.eq(item.subject),
            reviews::group_id.eq(item.group),
            reviews::opt_out_seq.eq(item.opt_out_seq.map(|s| s as i64)),
            reviews::purposes.eq(item.purposes),
            reviews::captured_at.eq(item.captured_at),
            reviews::received_at.eq(item.received_at),
            reviews::message_sealed.eq(item.message_sealed),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Up to `limit` items not yet settled, oldest first (by `received_at`,
/// then id), after the item `(received_at, id)` when one is given.
pub fn waiting(
    conn: &mut DbConn,
    tenant: &TenantId,
    after: Option<(i64, String)>,
    limit: i64,
) -> QueryResult<Vec<ReviewRow>> {
    let (at, id) = after.unwrap_or((i64::MIN, String::new()));
    reviews::table
        .filter(reviews::tenant_id.eq(tenant))
        .filter(reviews::settled_at.is_null())
        .filter(
            reviews::received_at
                .gt(at)
                .or(reviews::received_at.eq(at).and(reviews::id.gt(id))),
        )
        .select(ReviewRow::as_select())
        .order((reviews::received_at.asc(), reviews::id.asc()))
        .limit(limit)
        .load(conn)
}

pub fn find(conn: &mut DbConn, tenant: &TenantId, id: &str) -> QueryResult<Option<ReviewRow>> {
    reviews::table
        .filter(reviews::tenant_id.eq(tenant))
        .filter(reviews::id.eq(id))
        .select(ReviewRow::as_select())
        .first(conn)
        .optional()
}

/// Marks an item settled, once: `false` when it already was.
pub fn settle(
    conn: &mut DbConn,
    tenant: &TenantId,
    id: &str,
    (decision, settled_seq): (&str, Option<u64>),
    at: i64,
) -> QueryResult<bool> {
    diesel::update(
        reviews::table
            .filter(reviews::tenant_id.eq(tenant))
            .filter(reviews::id.eq(id))
            .filter(reviews::settled_at.is_null()),
    )
    .set((
        reviews::settled_at.eq(Some(at)),
        reviews::decision.eq(Some(decision)),
        reviews::settled_seq.eq(settled_seq.map(|s| s as i64)),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// The items of mode `review` not yet settled, of these groups: what a
/// check answers `under_review` for.
pub fn waiting_in_groups(
    conn: &mut DbConn,
    tenant: &TenantId,
    groups: &[GroupId],
) -> QueryResult<HashMap<GroupId, Vec<PendingReview>>> {
    let rows: Vec<(GroupId, i32, i64)> = reviews::table
        .filter(reviews::tenant_id.eq(tenant))
        .filter(reviews::group_id.eq_any(groups))
        .filter(reviews::mode.eq("review"))
        .filter(reviews::settled_at.is_null())
        .select((reviews::group_id, reviews::purposes, reviews::captured_at))
        .load(conn)?;
    let mut pending: HashMap<GroupId, Vec<PendingReview>> = HashMap::new();
    for (group, purposes, at) in rows {
        pending.entry(group).or_default().push(PendingReview {
            purposes: PurposeSet::from_bits(purposes),
            captured_at: Timestamp::from_millis(at),
        });
    }
    Ok(pending)
}

/// Notes that the tenant holds messages for review: from now on its
/// checks read review items.
pub fn mark_held(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<()> {
    diesel::update(tenants::table.find(tenant))
        .filter(tenants::reviews_held.eq(false))
        .set(tenants::reviews_held.eq(true))
        .execute(conn)
        .map(|_| ())
}

/// Items not yet settled, every tenant (the metrics' gauge).
pub fn count_waiting(conn: &mut DbConn) -> QueryResult<i64> {
    reviews::table
        .filter(reviews::settled_at.is_null())
        .count()
        .get_result(conn)
}

/// Deletes a subject's review items (its group is erased).
pub fn delete_of_subject(
    conn: &mut DbConn,
    tenant: &TenantId,
    subject: SubjectId,
) -> QueryResult<usize> {
    diesel::delete(
        reviews::table
            .filter(reviews::tenant_id.eq(tenant))
            .filter(reviews::subject_id.eq(subject)),
    )
    .execute(conn)
}
