//! Event endpoints (docs/events.md): registered by an admin with the
//! change types they take, each with its own signing secret, shown once.
//! A new endpoint takes the changes recorded from its registration on.

use crate::domain::access::TenantId;
use crate::domain::change::ChangeType;
use crate::domain::endpoint::AddressPolicy;
use crate::domain::problem::Invalid;
use crate::domain::time::Timestamp;
use crate::keys::{random_bytes, MasterKey};
use crate::providers::standard_webhooks;
use crate::services::error::ServiceResult;
use crate::store::events::{self, EndpointRow};
use crate::store::log::log_head;
use crate::store::{DbConn, Rejection};

/// How many endpoints a tenant may have.
pub const MAX_ENDPOINTS: usize = 10;

/// An endpoint as an admin sees it (never its secret).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    /// `None`: every change type.
    pub types: Option<Vec<ChangeType>>,
    pub created_at: Timestamp,
}

/// A new endpoint and its secret, shown this once.
#[derive(Debug, Clone)]
pub struct Registered {
    pub endpoint: Endpoint,
    pub secret: String,
}

/// What binds an endpoint's sealed secret to it.
fn secret_aad(tenant: &TenantId, id: &str) -> Vec<u8> {
    format!(
        "consent-ledger/event-endpoint/v1\n{}\n{id}",
        tenant.as_str()
    )
    .into_bytes()
}

/// The signing key of a stored endpoint (`None` when it cannot be opened:
/// another master key).
pub fn signing_key(master: &MasterKey, row: &EndpointRow) -> Option<Vec<u8>> {
    let secret = master
        .kek()
        .open(&row.secret_sealed, &secret_aad(&row.tenant_id, &row.id))?;
    standard_webhooks::key_of(std::str::from_utf8(&secret).ok()?)
}

/// The change types a stored endpoint takes (`None`: all).
pub fn types_of(row: &EndpointRow) -> Option<Vec<ChangeType>> {
    row.types
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
}

fn endpoint_of(row: &EndpointRow) -> Endpoint {
    Endpoint {
        id: row.id.clone(),
        url: row.url.clone(),
        types: types_of(row),
        created_at: Timestamp::from_millis(row.created_at),
    }
}

/// Registers an endpoint: its URL checked against the operator's address
/// policy, its types (none given: all; an empty list is refused), at most
/// [`MAX_ENDPOINTS`] per tenant.
pub fn register(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    (url, types): (&str, Option<Vec<ChangeType>>),
    policy: AddressPolicy,
    now: Timestamp,
) -> ServiceResult<Registered> {
    let url = policy.endpoint_url(url)?;
    let types = match types {
        Some(list) if list.is_empty() => {
            return Err(Invalid::request_field(
                "types",
                "empty",
                "`types` lists at least one change type (leave it out for all)",
            )
            .into())
        }
        Some(mut list) => {
            list.sort_by_key(|t| *t as u8);
            list.dedup();
            Some(list)
        }
        None => None,
    };
    conn.immediate_transaction(|conn| {
        if events::endpoints_of(conn, tenant)?.len() >= MAX_ENDPOINTS {
            return Err(Rejection::EndpointLimit.into());
        }
        let id = format!("ep_{}", hex::encode(random_bytes::<6>()));
        let secret = standard_webhooks::secret_of(&random_bytes::<24>());
        let row = EndpointRow {
            tenant_id: tenant.clone(),
            id: id.clone(),
            url: url.to_string(),
            types: types
                .as_ref()
                .map(|t| serde_json::to_string(t).expect("types serialise")),
            secret_sealed: master
                .kek()
                .seal(secret.as_bytes(), &secret_aad(tenant, &id)),
            created_at: now.millis(),
            next_seq: log_head(conn, tenant)?.size as i64,
        };
        events::insert_endpoint(conn, &row)?;
        Ok(Registered {
            endpoint: endpoint_of(&row),
            secret,
        })
    })
}

/// A tenant's endpoints, oldest first.
pub fn list(conn: &mut DbConn, tenant: &TenantId) -> ServiceResult<Vec<Endpoint>> {
    Ok(events::endpoints_of(conn, tenant)?
        .iter()
        .map(endpoint_of)
        .collect())
}

/// Deletes an endpoint and what it has not delivered (404 when the tenant
/// has none of this id).
pub fn delete(conn: &mut DbConn, tenant: &TenantId, id: &str) -> ServiceResult<()> {
    conn.immediate_transaction(|conn| {
        if events::delete_endpoint(conn, tenant, id)? {
            Ok(())
        } else {
            Err(Rejection::NotFound("no such event endpoint").into())
        }
    })
}
