//! Keeping an evidence document (docs/recording.md): within the tenant's
//! storage quota, with the upload's idempotent answer, in one transaction.

use super::error::ServiceResult;
use crate::domain::access::TenantId;
use crate::domain::problem::{ErrorCode, Invalid};
use crate::store::documents::{self, NewDocument};
use crate::store::idempotency::{self, IdempotencyScope};
use crate::store::{DbConn, Rejection};

/// The answer an upload under an `Idempotency-Key` keeps with its document.
pub struct Kept<'a> {
    pub scope: &'a IdempotencyScope,
    pub body: &'a str,
}

/// Keeps `document` unless the tenant's documents would then take more
/// than `quota` bytes (507 `document_quota_exceeded`, nothing kept).
pub fn keep(
    conn: &mut DbConn,
    tenant: &TenantId,
    (document, quota): (&NewDocument<'_>, i64),
    reply: Option<Kept<'_>>,
    now: i64,
) -> ServiceResult<()> {
    conn.immediate_transaction(|conn| {
        if !documents::insert(conn, tenant, document, quota, now)? {
            return Err(quota_exceeded(quota).into());
        }
        if let Some(reply) = reply {
            if !idempotency::finish(conn, reply.scope, 201, reply.body, None, now)? {
                return Err(Rejection::IdempotencyLost.into());
            }
        }
        Ok(())
    })
}

fn quota_exceeded(quota: i64) -> Invalid {
    Invalid::new(
        ErrorCode::DocumentQuotaExceeded,
        format!(
            "this document would take the tenant's documents past their quota of {} MiB",
            quota >> 20
        ),
    )
}
