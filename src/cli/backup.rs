//! `backup --out FILE`: an online, consistent copy of the SQLite database
//! (`VACUUM INTO`), written 0600, while the service runs. PostgreSQL is
//! backed up with its own tools (README, "Backups").

use super::open::open;
use crate::config::{DatabaseTarget, Settings};
use crate::store::connection::backup_sqlite_into;
use anyhow::{bail, Context};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

pub fn run(settings: &Settings, out: &Path) -> anyhow::Result<ExitCode> {
    if !matches!(settings.database, DatabaseTarget::Sqlite(_)) {
        bail!(
            "backup copies the SQLite database; back PostgreSQL up with pg_basebackup and WAL \
             archiving (see the README, \"Backups\")"
        );
    }
    let text = out
        .to_str()
        .context("the --out path is not valid UTF-8")?
        .to_owned();
    // SQLite writes into an empty file it finds: create it private, and
    // never over an existing file.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {} (it must not exist)", out.display()))?;
    let mut opened = open(settings)?;
    let copied = backup_sqlite_into(&mut opened.conn, &text);
    match copied {
        Ok(true) => {}
        Ok(false) => {
            let _ = std::fs::remove_file(out);
            bail!("the database is not SQLite");
        }
        Err(e) => {
            let _ = std::fs::remove_file(out);
            return Err(e).context("the backup failed");
        }
    }
    eprintln!(
        "backed up to {}; keep the master key ({}) apart from it",
        out.display(),
        settings.master_key_file.display()
    );
    Ok(ExitCode::SUCCESS)
}
