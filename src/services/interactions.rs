//! Recording an interaction through the API (docs/recording.md): a message
//! from the identity opens its customer-service window. The interaction is
//! kept on the identity's current subject (one is made when it has none),
//! and the window of its group after it is answered.

use super::error::ServiceResult;
use crate::domain::access::TenantId;
use crate::domain::decision::Window;
use crate::domain::request::Interaction;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::store::connection::lock_log;
use crate::store::consent::{record_interaction as keep_interaction, window_of};
use crate::store::idempotency::{self, IdempotencyScope};
use crate::store::{DbConn, Rejection};

/// The idempotent answer an API request stores with its interaction.
pub struct Reply<'a> {
    pub scope: &'a IdempotencyScope,
    pub render: &'a dyn Fn(&Window) -> String,
}

/// Records an interaction (its `received_at` checked against the clock)
/// and answers the window after it.
pub fn record_interaction(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    interaction: &Interaction,
    reply: Option<Reply<'_>>,
    now: Timestamp,
) -> ServiceResult<Window> {
    let received_at = interaction.received_at(now)?;
    let identity = &interaction.identity;
    let id = interaction.business_phone_number_id.as_deref();
    conn.immediate_transaction(|conn| {
        // The log first, as webhooks do: the window row references the
        // tenant, and taking that share lock first could deadlock with a
        // webhook on PostgreSQL.
        lock_log(conn, tenant)?;
        let times = (received_at, now);
        let group = keep_interaction(conn, master, tenant, identity.as_str(), id, times)?;
        let (window, _) = window_of(conn, tenant, &group, id, now, &mut None)?;
        if let Some(reply) = reply {
            let stored = (reply.render)(&window);
            if !idempotency::finish(conn, reply.scope, 200, &stored, None, now.millis())? {
                return Err(Rejection::IdempotencyLost.into());
            }
        }
        Ok(window)
    })
}
