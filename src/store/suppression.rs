//! Suppression records (docs/decisions.md rule 1 and 11): per tenant, the
//! keyed hash of each identity erased on request and the time of its
//! latest erasure. Never deleted: they keep an erased number opted out.

use super::schema::suppressions;
use super::DbConn;
use crate::domain::access::TenantId;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use diesel::prelude::*;

/// The latest erasure on request of an identity, by its keyed hash
/// (milliseconds), if it was ever erased.
pub fn suppressed_at(
    conn: &mut DbConn,
    tenant: &TenantId,
    identity_hash: &str,
) -> QueryResult<Option<i64>> {
    crate::one_row!(
        conn,
        suppressions::table
            .filter(suppressions::tenant_id.eq(tenant))
            .filter(suppressions::identity_hash.eq(identity_hash))
            .select(suppressions::erased_at)
    )
}

/// The latest erasure on request of each of many identities, by their
/// keyed hashes (a batch check): hash → milliseconds.
pub fn suppressed_many(
    conn: &mut DbConn,
    tenant: &TenantId,
    identity_hashes: &[String],
) -> QueryResult<std::collections::HashMap<String, i64>> {
    let mut out = std::collections::HashMap::new();
    if let [only] = identity_hashes {
        // One statement diesel keeps prepared (an `IN` list is prepared
        // anew on each call on SQLite): a single check asks this.
        let found = suppressed_at(conn, tenant, only)?;
        out.extend(found.map(|at| (only.clone(), at)));
        return Ok(out);
    }
    for chunk in identity_hashes.chunks(900) {
        let rows: Vec<(String, i64)> = crate::all_rows!(
            conn,
            suppressions::table
                .filter(suppressions::tenant_id.eq(tenant))
                .filter(suppressions::identity_hash.eq_any(chunk))
                .select((suppressions::identity_hash, suppressions::erased_at))
        )?;
        out.extend(rows);
    }
    Ok(out)
}

/// When the identity was last erased on request, if ever (docs/decisions.md
/// rule 1).
pub fn suppression_of(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    identity: &str,
) -> QueryResult<Option<Timestamp>> {
    let hash = master.identity_hash(tenant, identity);
    Ok(suppressed_at(conn, tenant, &hash)?.map(Timestamp::from_millis))
}

/// The latest erasure on request of any of a group's identities, by their
/// keyed hashes (docs/decisions.md rule 1).
pub fn group_suppression(
    conn: &mut DbConn,
    tenant: &TenantId,
    identity_hashes: &[String],
) -> QueryResult<Option<Timestamp>> {
    let found = suppressed_many(conn, tenant, identity_hashes)?;
    Ok(found.values().max().copied().map(Timestamp::from_millis))
}

/// Records (or moves forward) the suppression of an identity.
pub fn suppress(
    conn: &mut DbConn,
    tenant: &TenantId,
    identity_hash: &str,
    at: i64,
) -> QueryResult<()> {
    let row = (
        suppressions::tenant_id.eq(tenant),
        suppressions::identity_hash.eq(identity_hash),
        suppressions::erased_at.eq(at),
    );
    let key = (suppressions::tenant_id, suppressions::identity_hash);
    crate::on_backend!(conn, |c| diesel::insert_into(suppressions::table)
        .values(row)
        .on_conflict(key)
        .do_update()
        .set(suppressions::erased_at.eq(at))
        .execute(c))?;
    Ok(())
}
