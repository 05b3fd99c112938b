//! Before the server binds: the data dir, the master key, the database
//! opened and migrated (`store/pool.rs`), the operator token, and the
//! stored state upgraded once with the master key.

use crate::api;
use crate::config::Settings;
use crate::keys::{self, MasterKey};
use crate::store::connection::{meta_get, meta_insert};
use crate::store::DbPool;
use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

/// The database, the master key and the operator token, ready to serve.
pub struct Prepared {
    pub pool: DbPool,
    pub master: Arc<MasterKey>,
    pub configured_operator_sha256: Option<String>,
    /// Where a newly generated operator token was written.
    pub operator_token_written: Option<PathBuf>,
}

/// Creates the data dir (0700), loads or makes the master key, opens and
/// migrates the database and checks its canary.
pub fn open_database(settings: &Settings) -> anyhow::Result<(DbPool, Arc<MasterKey>)> {
    // The opt-out vocabularies are parsed and indexed now: no message pays.
    crate::domain::vocabulary::load();
    if let Ok(meta) = std::fs::metadata(&settings.data_dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %settings.data_dir.display(), mode = format!("{mode:o}"), "the data dir is readable by others: make it 0700 (the files in it are created 0600)");
        }
    }
    if !settings.data_dir.exists() {
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!("cannot create the data dir {}", settings.data_dir.display())
        })?;
        std::fs::set_permissions(&settings.data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| {
                format!(
                    "cannot restrict the data dir {}",
                    settings.data_dir.display()
                )
            })?;
    }
    let (master, generated) = MasterKey::load_or_generate(&settings.master_key_file)?;
    if generated {
        tracing::warn!(path = %settings.master_key_file.display(), "generated a new master key: back it up, outside the data dir");
    }
    let pool = crate::store::pool::open(&settings.database, &master, settings.db_pool_size)?;
    Ok((pool, Arc::new(master)))
}

/// Everything `serve` needs before it binds.
pub fn prepare(settings: &Settings) -> anyhow::Result<Prepared> {
    let (pool, master) = open_database(settings)?;
    let mut conn = pool.get().context("cannot open a database connection")?;
    let configured = settings
        .operator_token
        .as_ref()
        .map(|t| keys::secret_sha256(t.expose()));
    let mut written = None;
    if configured.is_none() && meta_get(&mut conn, api::auth::OPERATOR_TOKEN_META)?.is_none() {
        // Write a private temporary file, store the hash, then move the file
        // into place: a crash in between leaves no token that the database
        // does not know, and a stale file from an older database is replaced.
        let token = keys::new_operator_token();
        let path = settings.data_dir.join("operator.token");
        let tmp = settings.data_dir.join("operator.token.tmp");
        let _ = std::fs::remove_file(&tmp);
        keys::write_private_file(&tmp, &format!("{token}\n"))
            .with_context(|| format!("cannot write the operator token to {}", tmp.display()))?;
        let hash = keys::secret_sha256(&token);
        if meta_insert(&mut conn, api::auth::OPERATOR_TOKEN_META, &hash)? {
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("cannot move the operator token to {}", path.display()))?;
            written = Some(path);
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    let now = crate::domain::time::Timestamp::now();
    crate::services::links::migrate_aliases(&mut conn, &master, now)
        .context("cannot migrate the wave-1 aliases into identity links")?;
    upgrade_stored_state(&mut conn, &master, now)?;
    crate::services::dead_letters::apply_letters_waiting_for_user_ids(&mut conn, &master, now)
        .context("cannot apply the opt-outs kept for user ids")?;
    crate::domain::number::warm_metadata();
    Ok(Prepared {
        pool,
        master,
        configured_operator_sha256: configured,
        operator_token_written: written,
    })
}

/// What the migrations cannot do without the master key, once, at start:
/// each subject's keyed identity hash, the windows an older version kept by
/// identity, and the dead letters' canonical identities.
fn upgrade_stored_state(
    conn: &mut crate::store::DbConn,
    master: &MasterKey,
    now: crate::domain::time::Timestamp,
) -> anyhow::Result<()> {
    let hashed = crate::store::subjects::fill_identity_hashes(conn, master)
        .context("cannot store the subjects' identity hashes")?;
    let moved = crate::store::consent::move_legacy_windows(conn, master, now)
        .context("cannot move the windows kept by identity onto subjects")?;
    let rewritten = crate::store::dead_letters::canonicalise_letters(conn, master)
        .context("cannot rewrite the dead letters' identities in canonical form")?;
    if hashed + moved + rewritten > 0 {
        tracing::info!(hashed, moved, rewritten, "stored state upgraded");
    }
    Ok(())
}
