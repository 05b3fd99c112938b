//! The housekeeping job (docs/recording.md, docs/api.md and docs/privacy.md): evidence retention,
//! and the purge of what is kept no longer than it serves (closed windows
//! and interaction records, idempotency answers after 24 hours, documents
//! no entry names a day after their upload). One instance
//! at a time (PostgreSQL: an advisory lock), bounded per run, so writers
//! wait at most one short transaction.

use super::error::ServiceError;
use crate::domain::access::TenantId;
use crate::domain::ids::SubjectId;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::store::connection::exclusively;
use crate::store::{documents, erasure, idempotency, retention, DbConn, StoreError, StoreResult};

/// How much one run may do.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Rows one purge transaction deletes.
    pub batch: i64,
    /// Purge transactions per run and table.
    pub batches: usize,
    /// Subjects erased for retention per tenant and run.
    pub erasures_per_tenant: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            batch: 1_000,
            batches: 100,
            erasures_per_tenant: 1_000,
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// False when another instance was running the job.
    pub ran: bool,
    /// Subjects erased for retention.
    pub erased: usize,
    /// Closed windows (and interaction records) deleted.
    pub windows: usize,
    /// Idempotency records deleted.
    pub idempotency_keys: usize,
    /// Documents deleted that no entry named a day after their upload.
    pub documents: usize,
}

/// Documents one purge transaction deletes at most: each may be 20 MiB,
/// and on SQLite freeing one reads every page of it under the write lock.
const DOCUMENTS_PER_BATCH: i64 = 16;

/// Candidates read per query while looking for due subjects.
const PAGE: i64 = 500;

/// Runs the job once at `now` on `conn`, holding the job's lock on `lock`
/// (another connection: on PostgreSQL a transaction stays open on it while
/// the job runs).
pub fn run(
    conn: &mut DbConn,
    lock: &mut DbConn,
    master: &MasterKey,
    now: Timestamp,
    budget: Budget,
) -> StoreResult<Report> {
    let report = exclusively(lock, conn, |conn| -> StoreResult<Report> {
        let mut report = Report {
            ran: true,
            ..Report::default()
        };
        report.windows = in_batches(budget, |limit| {
            retention::purge_closed_windows(conn, now.millis(), limit)
        })?;
        report.idempotency_keys = in_batches(budget, |limit| {
            idempotency::purge_expired(conn, now.millis(), limit)
        })?;
        let unnamed_before = now.millis() - documents::UNNAMED_KEPT_MILLIS;
        let few = Budget {
            batch: budget.batch.min(DOCUMENTS_PER_BATCH),
            ..budget
        };
        report.documents = in_batches(few, |limit| {
            documents::purge_unnamed(conn, unnamed_before, limit)
        })?;
        for tenant in retention::tenants_with_retention(conn)? {
            report.erased += erase_due(conn, master, &tenant, now, budget)?;
        }
        // What was deleted leaves the WAL (SQLite) or the tables' dead rows
        // (PostgreSQL), as after an erasure on request.
        if report.erased + report.windows + report.documents > 0 {
            erasure::compact(conn);
        }
        Ok(report)
    })?;
    Ok(report.unwrap_or_default())
}

/// Erases a tenant's due subjects, at most the budget's number.
fn erase_due(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    now: Timestamp,
    budget: Budget,
) -> StoreResult<usize> {
    let mut erased = 0;
    let mut after = SubjectId(0);
    loop {
        let page = retention::candidates(conn, tenant, after, PAGE, now)?;
        for &subject_id in &page {
            if erased == budget.erasures_per_tenant {
                return Ok(erased);
            }
            after = subject_id;
            match super::retention::erase_if_due(conn, master, tenant, subject_id, now) {
                Ok(Some(_)) => erased += 1,
                Ok(None) => {}
                Err(ServiceError::Store(StoreError::Database(e))) => return Err(e.into()),
                Err(other) => {
                    tracing::warn!(%tenant, subject_id = subject_id.0, error = %other, "retention skipped a subject");
                }
            }
        }
        if page.len() < PAGE as usize {
            return Ok(erased);
        }
    }
}

/// Repeats a bounded purge until it finds less than a batch or the budget
/// is spent; returns the rows deleted.
fn in_batches(
    budget: Budget,
    mut purge: impl FnMut(i64) -> diesel::QueryResult<usize>,
) -> StoreResult<usize> {
    let mut total = 0;
    for _ in 0..budget.batches {
        let n = purge(budget.batch)?;
        total += n;
        if n < budget.batch as usize {
            break;
        }
    }
    Ok(total)
}
