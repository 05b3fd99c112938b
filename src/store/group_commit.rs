//! Group commit: concurrent writes to one log share one transaction and one
//! sync. A write is queued under its tenant; the first writer that finds no
//! group running for that tenant leads: on a blocking thread it takes what
//! is queued (up to [`MAX_GROUP`]), opens one transaction (SQLite: `BEGIN
//! IMMEDIATE`; PostgreSQL: the log's head row locked first), runs each
//! write in its own savepoint, commits, and only then settles every write
//! of the group, then takes the next group until the queue is empty.
//!
//! A write that fails rolls back its savepoint alone and is answered with
//! its own error; the others commit. A write that panics is answered as
//! failed, its savepoint rolled back. If the group's transaction fails (the
//! lock not had in time, the commit refused, a savepoint that would not
//! roll back), no write of the group is durable and each write, run or
//! not, is answered with that failure.

use super::connection::lock_log;
use super::pool::{DbPool, Pooled};
use super::DbConn;
use crate::domain::access::TenantId;
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// The most writes one transaction takes; what is left waits for the next.
pub const MAX_GROUP: usize = 256;

/// A queued write.
pub trait Write: Send {
    /// Does the write on the group's connection, inside the group's
    /// transaction; whether it succeeded (else its savepoint is rolled back).
    fn run(&mut self, conn: &mut DbConn) -> bool;
    /// Answers the write once its group is over: `group` is the group's
    /// commit (`Err` also for a write that never ran).
    fn settle(self: Box<Self>, group: Result<(), &diesel::result::Error>);
}

/// The queued writes of every tenant.
#[derive(Default)]
pub struct Groups {
    queues: Mutex<HashMap<TenantId, VecDeque<Box<dyn Write>>>>,
    gate: Option<Arc<Gate>>,
}

/// Tests only: holds every group until opened, and counts the writes
/// queued, so that a test can queue several writes and see them committed
/// as one group.
#[derive(Debug, Default)]
pub struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    queued: AtomicUsize,
}

impl Gate {
    /// Lets every group through from now on.
    pub fn open(&self) {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.opened.notify_all();
    }

    /// How many writes were queued so far.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    fn pass(&self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        while !*open {
            open = self.opened.wait(open).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Groups {
    /// Groups whose leaders wait at `gate` (tests).
    pub fn gated(gate: Option<Arc<Gate>>) -> Self {
        Self {
            queues: Mutex::default(),
            gate,
        }
    }

    /// Queues a write for `tenant`. Returns `true` when the caller must
    /// lead: call [`Groups::lead`] on a blocking thread.
    pub fn submit(&self, tenant: &TenantId, write: Box<dyn Write>) -> bool {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(gate) = &self.gate {
            gate.queued.fetch_add(1, Ordering::SeqCst);
        }
        match queues.get_mut(tenant) {
            Some(queue) => {
                queue.push_back(write);
                false
            }
            None => {
                queues.insert(tenant.clone(), VecDeque::from([write]));
                true
            }
        }
    }

    /// Takes up to [`MAX_GROUP`] queued writes of `tenant`; when none is
    /// left, the tenant's queue is removed (the next writer leads).
    fn take(&self, tenant: &TenantId) -> VecDeque<Box<dyn Write>> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let Some(queue) = queues.get_mut(tenant) else {
            return VecDeque::new();
        };
        if queue.is_empty() {
            queues.remove(tenant);
            return VecDeque::new();
        }
        let n = queue.len().min(MAX_GROUP);
        queue.drain(..n).collect()
    }

    /// Runs `tenant`'s queued writes, group after group, until none is
    /// left. Blocks: call it on a blocking thread.
    pub fn lead(&self, tenant: &TenantId, pool: &DbPool) {
        if let Some(gate) = &self.gate {
            gate.pass();
        }
        // A connection for as long as groups come; after a failed group a
        // fresh one (the pool drops the old one if its server went away or
        // its transaction state broke).
        let mut conn = None;
        loop {
            let writes = self.take(tenant);
            if writes.is_empty() {
                return;
            }
            if conn.is_none() {
                conn = pool
                    .get()
                    .inspect_err(|e| {
                        tracing::error!(error = %e, "no database connection for a group of writes")
                    })
                    .ok();
            }
            let Some(held) = conn.as_mut() else {
                let unavailable = diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ClosedConnection,
                    Box::new("no database connection".to_owned()),
                );
                for write in writes {
                    write.settle(Err(&unavailable));
                }
                continue;
            };
            if run_group(held, tenant, writes).is_err() {
                conn = None;
            }
        }
    }
}

/// One transaction for `writes`, each in its savepoint; settles every
/// write after the commit (or the transaction's failure: a lost connection
/// when the server went away, whatever the statement that met it said).
fn run_group(
    conn: &mut Pooled,
    tenant: &TenantId,
    mut writes: VecDeque<Box<dyn Write>>,
) -> Result<(), ()> {
    let size = writes.len();
    let mut ran: Vec<Box<dyn Write>> = Vec::with_capacity(size);
    let committed = conn.immediate_transaction(|conn| {
        lock_log(conn, tenant)?;
        while let Some(mut write) = writes.pop_front() {
            let kept = run_one(conn, write.as_mut());
            ran.push(write);
            kept?;
        }
        Ok::<(), diesel::result::Error>(())
    });
    match &committed {
        Ok(()) => crate::metrics::write_group(size),
        Err(e) => {
            tracing::error!(error = %e, writes = size, "a group of writes failed: rolled back, or (when the connection broke during its commit) of unknown outcome; its writers were told to retry with their keys")
        }
    }
    let lost = match &committed {
        Err(_) if conn.check_after_failure() => Some(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ClosedConnection,
            Box::new("the connection to the database was lost".to_owned()),
        )),
        _ => None,
    };
    let group = match (&committed, &lost) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(lost)) => Err(lost),
        (Err(e), None) => Err(e),
    };
    for write in ran.into_iter().chain(writes) {
        write.settle(group);
    }
    committed.map_err(|_| ())
}

/// One write in its savepoint: kept if it succeeded, rolled back if it
/// failed or panicked. An error here (the savepoint could not be released
/// or rolled back) breaks the whole group.
fn run_one(conn: &mut DbConn, write: &mut dyn Write) -> Result<(), diesel::result::Error> {
    let kept = conn.savepoint(
        |conn| match catch_unwind(AssertUnwindSafe(|| write.run(conn))) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(Undo::Failed),
        },
    );
    match kept {
        Ok(()) | Err(Undo::Failed) => Ok(()),
        Err(Undo::Database(e)) => Err(e),
    }
}

/// Why a write's savepoint is rolled back.
enum Undo {
    Failed,
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for Undo {
    fn from(e: diesel::result::Error) -> Self {
        Undo::Database(e)
    }
}
