//! Creating a tenant (docs/ledger-format.md): its rows and its size-0 checkpoint,
//! signed with its new key, commit together or not at all; changing its
//! settings.

use super::error::ServiceResult;
use super::signer::{SignError, Signer};
use crate::domain::access::TenantId;
use crate::keys::MasterKey;
use crate::store::log::current_signing_key;
use crate::store::tenants::{self, NewTenant, SettingsChange, TenantRow};
use crate::store::{DbConn, Rejection, StoreError};

/// Why a tenant was not created.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("the tenant id exists or existed")]
    Exists,
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Signing(#[from] SignError),
}

impl From<StoreError> for TenantError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rejected(Rejection::TenantExists) => TenantError::Exists,
            other => TenantError::Store(other),
        }
    }
}

impl From<diesel::result::Error> for TenantError {
    fn from(e: diesel::result::Error) -> Self {
        TenantError::Store(e.into())
    }
}

/// Creates a tenant with its origin `<base_origin>/<id>`, signing key,
/// size-0 checkpoint, first brand and first admin key.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %id))]
pub fn create_tenant(
    conn: &mut DbConn,
    master: &MasterKey,
    signer: &Signer,
    base_origin: &str,
    id: &TenantId,
    brand: &str,
    now: i64,
) -> Result<NewTenant, TenantError> {
    conn.immediate_transaction(|conn| {
        let (created, key) = tenants::insert_tenant(conn, master, base_origin, id, brand, now)?;
        signer.sign_locked(conn, id, &created.log, 0, &[&key])?;
        Ok(created)
    })
}

/// Changes a tenant's settings; answers its row after the change and its
/// current verifier key.
pub fn update_settings(
    conn: &mut DbConn,
    id: &TenantId,
    change: SettingsChange,
) -> ServiceResult<(TenantRow, String)> {
    let row = tenants::update_settings(conn, id, change)?;
    let key = current_signing_key(conn, id)?;
    Ok((row, key.verifier_key))
}
