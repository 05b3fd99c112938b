//! Signing checkpoints (docs/ledger-format.md): under the log's append lock, never
//! below the largest stored size, never another root for a stored size, and
//! never a tree that is not a consistent extension of what this instance
//! signed before (kept in the signer state file, outside the database), so a
//! restored or forked database is caught instead of signed.

use crate::domain::access::TenantId;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::ledger::merkle::Hash;
use crate::ledger::note;
use crate::store::log::{self, CheckpointRow};
use crate::store::DbConn;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("signing refused: {0}")]
    Refused(String),
    #[error("signer state file {path}: {message}")]
    State { path: String, message: String },
    /// The state file's disk is full or read-only: nothing was signed.
    #[error("signer state file {path}: {message}")]
    Storage { path: String, message: String },
    #[error("the tenant's signing key cannot be opened with this master key")]
    Key,
}

/// What this instance last signed for one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Signed {
    size: u64,
    root: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    logs: BTreeMap<String, Signed>,
}

/// Signs checkpoints and keeps the signer state file.
pub struct Signer {
    state_file: PathBuf,
    /// Serialises this process's reads and writes of the state file.
    guard: Mutex<()>,
}

impl Signer {
    pub fn new(state_file: impl Into<PathBuf>) -> Self {
        Self {
            state_file: state_file.into(),
            guard: Mutex::new(()),
        }
    }

    pub fn state_file(&self) -> &Path {
        &self.state_file
    }

    fn state_error(&self, message: impl std::fmt::Display) -> SignError {
        SignError::State {
            path: self.state_file.display().to_string(),
            message: message.to_string(),
        }
    }

    /// What this instance last signed for `origin`: size and root.
    pub fn last_signed(&self, origin: &str) -> Result<Option<(u64, Hash)>, SignError> {
        let state = self.read_state()?;
        Ok(state.logs.get(origin).and_then(|s| {
            let root = crate::ledger::hash::parse_hash(&s.root)?;
            Some((s.size, root))
        }))
    }

    fn read_state(&self) -> Result<StateFile, SignError> {
        match std::fs::read_to_string(&self.state_file) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| self.state_error(format!("unreadable: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StateFile::default()),
            Err(e) => Err(self.state_error(e)),
        }
    }

    /// Replaces the file atomically: a temporary file, fsync, rename, fsync the directory.
    fn write_state(&self, state: &StateFile) -> Result<(), SignError> {
        let dir = self
            .state_file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.state_error(e))?;
        let tmp = self.state_file.with_extension("tmp");
        let text = serde_json::to_string_pretty(state).expect("serialisable");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.state_file)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| match e.kind() {
            std::io::ErrorKind::StorageFull
            | std::io::ErrorKind::ReadOnlyFilesystem
            | std::io::ErrorKind::QuotaExceeded => SignError::Storage {
                path: self.state_file.display().to_string(),
                message: e.to_string(),
            },
            _ => self.state_error(e),
        })
    }

    /// Signs the tree at its current size, holding the log's append lock
    /// (call inside an immediate transaction). Signs with `keys` in order.
    pub fn sign_locked(
        &self,
        conn: &mut DbConn,
        tenant: &TenantId,
        origin: &str,
        size: u64,
        keys: &[&SigningKey],
    ) -> Result<CheckpointRow, SignError> {
        let _guard = self.guard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(latest) = log::latest_checkpoint(conn, tenant)? {
            if (latest.size as u64) > size {
                return Err(SignError::Refused(format!(
                    "the log has {size} entries but a checkpoint of size {} is stored: the database lost entries",
                    latest.size
                )));
            }
            // The tree must still be the one the newest checkpoint signed.
            if log::root_at(conn, tenant, latest.size as u64)?.as_slice() != latest.root.as_slice()
            {
                return Err(SignError::Refused(format!(
                    "the tree at size {} no longer matches its stored checkpoint: the log was rewritten",
                    latest.size
                )));
            }
        }
        let root = log::root_at(conn, tenant, size)?;
        let mut state = self.read_state()?;
        if let Some(previous) = state.logs.get(origin) {
            if previous.size > size {
                return Err(SignError::Refused(format!(
                    "this instance signed size {} of {origin}, the database holds only {size} entries: it was restored from an older copy; re-append the missing entries with restore-tail",
                    previous.size
                )));
            }
            let then = log::root_at(conn, tenant, previous.size)?;
            if hex::encode(then) != previous.root {
                return Err(SignError::Refused(format!(
                    "the database's tree at size {} differs from the one this instance signed: the log was forked or rewritten",
                    previous.size
                )));
            }
        }
        let body = note::checkpoint_body(origin, size, &root);
        let mut signed = format!("{body}\n");
        for key in keys {
            signed.push_str(&note::signature_line(&body, origin, key));
        }
        let now = Timestamp::now().millis();
        let row = log::insert_checkpoint(conn, tenant, size, &root, &signed, now)?;
        state.logs.insert(
            origin.to_owned(),
            Signed {
                size,
                root: hex::encode(root),
            },
        );
        self.write_state(&state)?;
        Ok(row)
    }

    /// The latest checkpoint, signing a new one first when the tree grew.
    #[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
    pub fn ensure_checkpoint(
        &self,
        conn: &mut DbConn,
        master: &MasterKey,
        tenant: &TenantId,
    ) -> Result<CheckpointRow, SignError> {
        conn.immediate_transaction(|conn| {
            crate::store::connection::lock_log(conn, tenant)?;
            let head = log::log_head(conn, tenant)?;
            let (origin, size) = (head.origin, head.size);
            if let Some(latest) = log::latest_checkpoint(conn, tenant)? {
                if latest.size as u64 == size {
                    return Ok(latest);
                }
            }
            let key = log::current_signing_key(conn, tenant)?
                .open(master)
                .ok_or(SignError::Key)?;
            self.sign_locked(conn, tenant, &origin, size, &[&key])
        })
    }

    /// Signs the current size with the old and a new key in one note; the
    /// old key becomes retired (or revoked) with `last_size`, the new one
    /// current with `first_size`. Returns the new verifier key.
    #[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
    pub fn rotate(
        &self,
        conn: &mut DbConn,
        master: &MasterKey,
        tenant: &TenantId,
        revoke_old: bool,
    ) -> Result<(String, CheckpointRow), SignError> {
        conn.immediate_transaction(|conn| {
            crate::store::connection::lock_log(conn, tenant)?;
            let head = log::log_head(conn, tenant)?;
            let (origin, size) = (head.origin, head.size);
            let old_row = log::current_signing_key(conn, tenant)?;
            let old = old_row.open(master).ok_or(SignError::Key)?;
            log::retire_signing_key(conn, old_row.id, size, revoke_old)?;
            let (new_row, new) = log::insert_signing_key(
                conn,
                master,
                tenant,
                &origin,
                size,
                Timestamp::now().millis(),
            )?;
            let checkpoint = self.sign_locked(conn, tenant, &origin, size, &[&old, &new])?;
            Ok((new_row.verifier_key, checkpoint))
        })
    }

    /// Signs every log that grew since its latest checkpoint (the background job).
    #[tracing::instrument(level = "debug", skip_all)]
    pub fn sign_grown_logs(
        &self,
        conn: &mut DbConn,
        master: &MasterKey,
    ) -> Vec<(String, Result<u64, SignError>)> {
        let grown: Vec<TenantId> = match log::grown_logs(conn) {
            Ok(list) => list,
            Err(e) => return vec![(String::new(), Err(e.into()))],
        };
        grown
            .into_iter()
            .map(|tenant| {
                let result = self
                    .ensure_checkpoint(conn, master, &tenant)
                    .map(|c| c.size as u64);
                (tenant.into_string(), result)
            })
            .collect()
    }
}

/// Decodes a stored root.
pub fn root_of(row: &CheckpointRow) -> Hash {
    row.root.as_slice().try_into().unwrap_or([0; 32])
}
