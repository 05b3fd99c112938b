//! Recording an opt-out through the API or a bulk import (docs/recording.md): the clock rule,
//! then the append. An opt-out of an erased identity without a newer
//! subject records nothing: the identity stays opted out.

use super::error::ServiceResult;
use super::recording::{note_backfill, Door};
use crate::domain::access::TenantId;
use crate::domain::record::{OptOutRecord, Record};
use crate::domain::request::check_not_future;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::ledger::entry::EntryType;
use crate::store::append::{self, Answer, Appended};
use crate::store::idempotency::{self, IdempotencyScope};
use crate::store::{DbConn, Rejection, StoreError};

/// What an opt-out came to.
#[derive(Debug, Clone)]
pub enum OptedOut {
    Recorded(Appended),
    /// An erased identity without a newer subject: nothing recorded.
    Suppressed,
}

/// The idempotent answers an API request stores with its opt-out.
pub struct Reply<'a> {
    pub scope: &'a IdempotencyScope,
    /// The answer to an opt-out recorded.
    pub render: &'a dyn Fn(&Appended) -> String,
    /// The answer when nothing was recorded.
    pub suppressed: &'a str,
}

/// Records an opt-out that came through `door` (the API, or a line of a
/// bulk import), in the caller's transaction when it holds one (a
/// savepoint).
pub fn record_opt_out(
    conn: &mut DbConn,
    master: &MasterKey,
    (tenant, door): (&TenantId, Door<'_>),
    opt_out: OptOutRecord,
    reply: Option<Reply<'_>>,
    now: Timestamp,
) -> ServiceResult<OptedOut> {
    check_not_future(opt_out.captured_at, now)?;
    let record = Record::OptOut(opt_out);
    let answer = reply.as_ref().map(|r| Answer {
        scope: r.scope,
        render: r.render,
    });
    let collector = door.collector();
    let noted = record.is_backfill() && door.notes_each_backfill();
    let appended = conn.immediate_transaction(|conn| {
        let appended =
            append::append_locked(conn, master, tenant, &collector, &record, answer, now)?;
        if noted {
            note_backfill(
                conn,
                tenant,
                (&collector, EntryType::OptOut),
                &appended,
                now,
            )?;
        }
        Ok(appended)
    });
    let appended = match appended {
        Err(StoreError::Rejected(Rejection::SuppressedNothingToRecord)) => {
            if let Some(reply) = reply {
                idempotency::finish(conn, reply.scope, 200, reply.suppressed, None, now.millis())?;
            }
            return Ok(OptedOut::Suppressed);
        }
        other => other?,
    };
    match door.notes_each_backfill() {
        true => {
            tracing::info!(tenant = %tenant, seq = appended.seq, subject = %appended.subject, "recorded")
        }
        // A bulk import logs its progress, not each line.
        false => tracing::debug!(tenant = %tenant, seq = appended.seq, "opt-out imported"),
    }
    Ok(OptedOut::Recorded(appended))
}
