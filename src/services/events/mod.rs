//! Outbound events (SPEC section 13, docs/events.md): endpoints an admin
//! registers (`endpoints.rs`), the changes of the feed each takes, queued
//! and delivered at least once, in log order per group, signed as Standard
//! Webhooks says (`deliveries.rs`), over HTTP that reaches only the
//! addresses the operator allows (`send.rs`).

pub mod deliveries;
pub mod endpoints;
pub mod send;

use crate::domain::access::TenantId;
use crate::keys::MasterKey;

/// What binds a sealed erased identity to its tenant and erasure.
fn erased_aad(tenant: &TenantId, seq: i64) -> Vec<u8> {
    format!("consent-ledger/erased/v1\n{}\n{seq}", tenant.as_str()).into_bytes()
}

/// An erased identity kept for the tenant's endpoints, sealed under the
/// master key until every endpoint has taken the erasure (7 days at most).
pub fn seal_erased(master: &MasterKey, tenant: &TenantId, seq: i64, identity: &str) -> String {
    master
        .kek()
        .seal(identity.as_bytes(), &erased_aad(tenant, seq))
}

fn open_erased(master: &MasterKey, tenant: &TenantId, seq: i64, sealed: &str) -> Option<String> {
    let plain = master.kek().open(sealed, &erased_aad(tenant, seq))?;
    String::from_utf8(plain).ok()
}
