//! A tenant's brands (docs/ledger-format.md): adding one, retiring one. Each is
//! one transaction under the log's lock (`store/tenants.rs`); a brand is
//! never renamed, and a retired one stops new opt-ins for it.

use super::error::ServiceResult;
use crate::domain::access::TenantId;
use crate::store::tenants::{self, BrandRow};
use crate::store::DbConn;

/// Adds a brand (409 `brand_exists` when the tenant has one of this name,
/// compared case-insensitively).
pub fn create(
    conn: &mut DbConn,
    tenant: &TenantId,
    name: &str,
    now: i64,
) -> ServiceResult<BrandRow> {
    Ok(tenants::create_brand(conn, tenant, name, now)?)
}

/// Retires a brand (404 when the tenant has none of this name).
pub fn retire(
    conn: &mut DbConn,
    tenant: &TenantId,
    name: &str,
    now: i64,
) -> ServiceResult<BrandRow> {
    Ok(tenants::retire_brand(conn, tenant, name, now)?)
}
