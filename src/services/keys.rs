//! A tenant's API keys (docs/ledger-format.md): creating one (shown once, only its
//! SHA-256 kept), revoking one (never the last active admin key).

use super::error::ServiceResult;
use crate::domain::access::TenantId;
use crate::store::tenants::{self, ApiKeyRow};
use crate::store::DbConn;

/// What a new key is.
pub struct NewApiKey<'a> {
    pub name: &'a str,
    /// Normalised: at least one, each once.
    pub roles: &'a [String],
    pub expires_at: Option<i64>,
}

/// Creates a key: its row, and the key itself (shown once).
pub fn create(
    conn: &mut DbConn,
    tenant: &TenantId,
    key: NewApiKey<'_>,
    now: i64,
) -> ServiceResult<(ApiKeyRow, String)> {
    Ok(tenants::create_api_key(
        conn,
        tenant,
        key.name,
        key.roles,
        key.expires_at,
        now,
    )?)
}

/// Revokes a key; it stops working at once.
pub fn revoke(conn: &mut DbConn, tenant: &TenantId, id: &str, now: i64) -> ServiceResult<()> {
    Ok(tenants::revoke_api_key(conn, tenant, id, now)?)
}

/// Notes that a key was used now, when its last use noted is older than
/// `store::tenants::TOUCH_INTERVAL_MILLIS` (approximate by design).
pub fn touch(conn: &mut DbConn, id: &str, now: i64) -> ServiceResult<()> {
    tenants::touch_api_key(conn, id, now)?;
    Ok(())
}
