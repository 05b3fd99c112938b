//! How handlers add to a tenant's audit trail (docs/privacy.md); the trail
//! is read at `GET /v1/audit-events` (`audit.rs`).

use super::AppState;
use crate::domain::access::TenantId;
use crate::store::audit::{self as store, AuditEvent, AuditKind};

/// Adds an event to the tenant's trail after what it tells of was done.
/// A failure to record is logged (the action stands; the trail of that
/// moment is missing, and the log says so).
pub async fn note(
    state: &AppState,
    tenant: &TenantId,
    actor: &str,
    kind: AuditKind,
    details: serde_json::Value,
) {
    let (tenant, actor) = (tenant.to_owned(), actor.to_owned());
    let now = state.now();
    let written = state
        .db(move |conn| {
            let event = AuditEvent {
                actor: &actor,
                kind,
                details,
            };
            Ok(store::record(conn, &tenant, &event, now)?)
        })
        .await;
    if let Err(error) = written {
        tracing::error!(kind = kind.as_str(), %error, "an audit event was not recorded");
    }
}
