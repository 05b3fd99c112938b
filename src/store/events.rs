//! Outbound events' rows (docs/events.md): endpoints with the feed
//! position each has taken changes up to, and deliveries with their
//! attempts and leases. What is delivered when: `services/events/`.

use super::schema::{erased_identity_hashes, event_deliveries, event_endpoints};
use super::DbConn;
use crate::domain::access::TenantId;
use diesel::dsl::{exists, not};
use diesel::prelude::*;

/// A delivery waiting for its endpoint's 2xx.
pub const PENDING: &str = "pending";
/// Answered 2xx.
pub const DELIVERED: &str = "delivered";
/// Retried for 24 hours without a 2xx.
pub const FAILED: &str = "failed";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = event_endpoints)]
pub struct EndpointRow {
    pub tenant_id: TenantId,
    pub id: String,
    pub url: String,
    pub types: Option<String>,
    pub secret_sealed: String,
    pub created_at: i64,
    pub next_seq: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = event_deliveries)]
pub struct DeliveryRow {
    pub tenant_id: TenantId,
    pub id: String,
    pub endpoint_id: String,
    pub seq: i64,
    pub group_id: i64,
    pub status: String,
    pub attempts: i32,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub leased_until: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub identities_sealed: Option<String>,
}

/// A delivery to queue.
pub struct NewDelivery<'a> {
    pub id: &'a str,
    pub endpoint_id: &'a str,
    pub seq: i64,
    pub group_id: i64,
    pub identities_sealed: Option<&'a str>,
}

pub fn insert_endpoint(conn: &mut DbConn, row: &EndpointRow) -> QueryResult<()> {
    diesel::insert_into(event_endpoints::table)
        .values((
            event_endpoints::tenant_id.eq(&row.tenant_id),
            event_endpoints::id.eq(&row.id),
            event_endpoints::url.eq(&row.url),
            event_endpoints::types.eq(&row.types),
            event_endpoints::secret_sealed.eq(&row.secret_sealed),
            event_endpoints::created_at.eq(row.created_at),
            event_endpoints::next_seq.eq(row.next_seq),
        ))
        .execute(conn)
        .map(drop)
}

/// A tenant's endpoints, oldest first.
pub fn endpoints_of(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<Vec<EndpointRow>> {
    event_endpoints::table
        .filter(event_endpoints::tenant_id.eq(tenant))
        .order((event_endpoints::created_at.asc(), event_endpoints::id.asc()))
        .select(EndpointRow::as_select())
        .load(conn)
}

/// Every tenant's endpoints.
pub fn all_endpoints(conn: &mut DbConn) -> QueryResult<Vec<EndpointRow>> {
    event_endpoints::table
        .order((event_endpoints::tenant_id.asc(), event_endpoints::id.asc()))
        .select(EndpointRow::as_select())
        .load(conn)
}

pub fn endpoint(
    conn: &mut DbConn,
    tenant: &TenantId,
    id: &str,
) -> QueryResult<Option<EndpointRow>> {
    event_endpoints::table
        .filter(event_endpoints::tenant_id.eq(tenant))
        .filter(event_endpoints::id.eq(id))
        .select(EndpointRow::as_select())
        .first(conn)
        .optional()
}

/// Deletes an endpoint and its deliveries; whether it existed.
pub fn delete_endpoint(conn: &mut DbConn, tenant: &TenantId, id: &str) -> QueryResult<bool> {
    diesel::delete(
        event_deliveries::table
            .filter(event_deliveries::tenant_id.eq(tenant))
            .filter(event_deliveries::endpoint_id.eq(id)),
    )
    .execute(conn)?;
    let deleted = diesel::delete(
        event_endpoints::table
            .filter(event_endpoints::tenant_id.eq(tenant))
            .filter(event_endpoints::id.eq(id)),
    )
    .execute(conn)?;
    Ok(deleted == 1)
}

/// Moves an endpoint's feed position from `from` to `to`; false when
/// another instance moved it first.
pub fn advance(conn: &mut DbConn, e: &EndpointRow, to: i64) -> QueryResult<bool> {
    let moved = diesel::update(
        event_endpoints::table
            .filter(event_endpoints::tenant_id.eq(&e.tenant_id))
            .filter(event_endpoints::id.eq(&e.id))
            .filter(event_endpoints::next_seq.eq(e.next_seq)),
    )
    .set(event_endpoints::next_seq.eq(to))
    .execute(conn)?;
    Ok(moved == 1)
}

/// The lowest feed position among a tenant's endpoints (`None`: it has none).
pub fn lowest_position(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<Option<i64>> {
    event_endpoints::table
        .filter(event_endpoints::tenant_id.eq(tenant))
        .select(diesel::dsl::min(event_endpoints::next_seq))
        .first(conn)
}

/// Queues a delivery once (a second instance queuing it too changes nothing).
pub fn insert_delivery(
    conn: &mut DbConn,
    tenant: &TenantId,
    new: &NewDelivery<'_>,
    now: i64,
) -> QueryResult<()> {
    crate::on_backend!(conn, |c| diesel::insert_into(event_deliveries::table)
        .values((
            event_deliveries::tenant_id.eq(tenant),
            event_deliveries::id.eq(new.id),
            event_deliveries::endpoint_id.eq(new.endpoint_id),
            event_deliveries::seq.eq(new.seq),
            event_deliveries::group_id.eq(new.group_id),
            event_deliveries::status.eq(PENDING),
            event_deliveries::attempts.eq(0),
            event_deliveries::created_at.eq(now),
            event_deliveries::next_attempt_at.eq(now),
            event_deliveries::identities_sealed.eq(new.identities_sealed),
        ))
        .on_conflict_do_nothing()
        .execute(c))
    .map(drop)
}

diesel::alias!(event_deliveries as earlier: Earlier);

/// At most `limit` pending deliveries due at `now`, not held by an
/// instance, each the first pending one of its endpoint and group.
pub fn due(conn: &mut DbConn, now: i64, limit: i64) -> QueryResult<Vec<DeliveryRow>> {
    let earlier_pending = earlier
        .filter(
            earlier
                .field(event_deliveries::tenant_id)
                .eq(event_deliveries::tenant_id),
        )
        .filter(
            earlier
                .field(event_deliveries::endpoint_id)
                .eq(event_deliveries::endpoint_id),
        )
        .filter(
            earlier
                .field(event_deliveries::group_id)
                .eq(event_deliveries::group_id),
        )
        .filter(earlier.field(event_deliveries::status).eq(PENDING))
        .filter(
            earlier
                .field(event_deliveries::seq)
                .lt(event_deliveries::seq),
        );
    event_deliveries::table
        .filter(event_deliveries::status.eq(PENDING))
        .filter(event_deliveries::next_attempt_at.le(now))
        .filter(
            event_deliveries::leased_until
                .is_null()
                .or(event_deliveries::leased_until.lt(now)),
        )
        .filter(not(exists(earlier_pending)))
        .order((
            event_deliveries::next_attempt_at.asc(),
            event_deliveries::seq.asc(),
        ))
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(conn)
}

/// Takes a due delivery for this instance until `until`; false when
/// another instance holds it (or it is no longer pending).
pub fn claim(conn: &mut DbConn, d: &DeliveryRow, now: i64, until: i64) -> QueryResult<bool> {
    let taken = diesel::update(
        event_deliveries::table
            .filter(event_deliveries::tenant_id.eq(&d.tenant_id))
            .filter(event_deliveries::id.eq(&d.id))
            .filter(event_deliveries::status.eq(PENDING))
            .filter(
                event_deliveries::leased_until
                    .is_null()
                    .or(event_deliveries::leased_until.lt(now)),
            ),
    )
    .set(event_deliveries::leased_until.eq(until))
    .execute(conn)?;
    Ok(taken == 1)
}

/// What an attempt ended in.
pub struct Outcome<'a> {
    pub at: i64,
    pub status: &'a str,
    pub http_status: Option<i32>,
    pub error: Option<&'a str>,
    pub next_attempt_at: i64,
}

/// Records an attempt's outcome and lets the delivery go.
pub fn finish_attempt(conn: &mut DbConn, d: &DeliveryRow, o: &Outcome<'_>) -> QueryResult<()> {
    let delivered = o.status == DELIVERED;
    diesel::update(
        event_deliveries::table
            .filter(event_deliveries::tenant_id.eq(&d.tenant_id))
            .filter(event_deliveries::id.eq(&d.id)),
    )
    .set((
        event_deliveries::status.eq(o.status),
        event_deliveries::attempts.eq(event_deliveries::attempts + 1),
        event_deliveries::last_attempt_at.eq(o.at),
        event_deliveries::last_status.eq(o.http_status),
        event_deliveries::last_error.eq(o.error),
        event_deliveries::next_attempt_at.eq(o.next_attempt_at),
        event_deliveries::leased_until.eq(None::<i64>),
    ))
    .execute(conn)?;
    if delivered {
        diesel::update(
            event_deliveries::table
                .filter(event_deliveries::tenant_id.eq(&d.tenant_id))
                .filter(event_deliveries::id.eq(&d.id)),
        )
        .set(event_deliveries::identities_sealed.eq(None::<String>))
        .execute(conn)?;
    }
    Ok(())
}

/// A tenant's deliveries, newest change first, of one status or all.
pub fn list(
    conn: &mut DbConn,
    tenant: &TenantId,
    status: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    let mut query = event_deliveries::table
        .filter(event_deliveries::tenant_id.eq(tenant))
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(event_deliveries::status.eq(status.to_owned()));
    }
    query
        .order((event_deliveries::seq.desc(), event_deliveries::id.asc()))
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(conn)
}

pub fn delivery(
    conn: &mut DbConn,
    tenant: &TenantId,
    id: &str,
) -> QueryResult<Option<DeliveryRow>> {
    event_deliveries::table
        .filter(event_deliveries::tenant_id.eq(tenant))
        .filter(event_deliveries::id.eq(id))
        .select(DeliveryRow::as_select())
        .first(conn)
        .optional()
}

/// A failed delivery made pending again, due at once, with 24 hours of
/// retries from `now`; false when it is not failed.
pub fn retry(conn: &mut DbConn, tenant: &TenantId, id: &str, now: i64) -> QueryResult<bool> {
    let retried = diesel::update(
        event_deliveries::table
            .filter(event_deliveries::tenant_id.eq(tenant))
            .filter(event_deliveries::id.eq(id))
            .filter(event_deliveries::status.eq(FAILED)),
    )
    .set((
        event_deliveries::status.eq(PENDING),
        event_deliveries::created_at.eq(now),
        event_deliveries::next_attempt_at.eq(now),
        event_deliveries::leased_until.eq(None::<i64>),
    ))
    .execute(conn)?;
    Ok(retried == 1)
}

/// Drops the erased identities of deliveries queued before `before` (an
/// erasure's delivery failed for 7 days carries the hashes only).
pub fn drop_identities_before(conn: &mut DbConn, before: i64) -> QueryResult<usize> {
    diesel::update(
        event_deliveries::table
            .filter(event_deliveries::identities_sealed.is_not_null())
            .filter(event_deliveries::created_at.lt(before)),
    )
    .set(event_deliveries::identities_sealed.eq(None::<String>))
    .execute(conn)
}

/// Deletes the deliveries made that were queued before `before`.
pub fn delete_delivered_before(conn: &mut DbConn, before: i64) -> QueryResult<usize> {
    diesel::delete(
        event_deliveries::table
            .filter(event_deliveries::status.eq(DELIVERED))
            .filter(event_deliveries::created_at.lt(before)),
    )
    .execute(conn)
}

/// How many deliveries of each status, across tenants.
pub fn counts(conn: &mut DbConn) -> QueryResult<Vec<(String, i64)>> {
    event_deliveries::table
        .group_by(event_deliveries::status)
        .select((event_deliveries::status, diesel::dsl::count_star()))
        .load(conn)
}

/// The sealed identities kept for the erasures among `seqs`.
pub fn erased_sealed(
    conn: &mut DbConn,
    tenant: &TenantId,
    seqs: &[i64],
) -> QueryResult<Vec<(i64, Option<String>)>> {
    erased_identity_hashes::table
        .filter(erased_identity_hashes::tenant_id.eq(tenant))
        .filter(erased_identity_hashes::seq.eq_any(seqs))
        .select((
            erased_identity_hashes::seq,
            erased_identity_hashes::identity_sealed,
        ))
        .load(conn)
}

/// Forgets the sealed identities of a tenant's erasures below `seq` (every
/// endpoint has taken them), and of every erasure before `before`.
pub fn forget_erased_sealed(
    conn: &mut DbConn,
    tenant: Option<(&TenantId, i64)>,
    before: i64,
) -> QueryResult<usize> {
    let kept = erased_identity_hashes::identity_sealed.is_not_null();
    let mut forgotten = diesel::update(
        erased_identity_hashes::table
            .filter(kept)
            .filter(erased_identity_hashes::erased_at.lt(before)),
    )
    .set(erased_identity_hashes::identity_sealed.eq(None::<String>))
    .execute(conn)?;
    if let Some((tenant, below)) = tenant {
        forgotten += diesel::update(
            erased_identity_hashes::table
                .filter(erased_identity_hashes::tenant_id.eq(tenant))
                .filter(erased_identity_hashes::identity_sealed.is_not_null())
                .filter(erased_identity_hashes::seq.lt(below)),
        )
        .set(erased_identity_hashes::identity_sealed.eq(None::<String>))
        .execute(conn)?;
    }
    Ok(forgotten)
}

/// Whether the tenant has an endpoint (an erasure then keeps its
/// identities sealed for them).
pub fn has_endpoints(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<bool> {
    diesel::select(exists(
        event_endpoints::table.filter(event_endpoints::tenant_id.eq(tenant)),
    ))
    .get_result(conn)
}
