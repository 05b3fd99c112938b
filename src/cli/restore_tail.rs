//! `restore-tail --export FILE`: after restoring a backup older than what
//! was signed, re-appends the missing entries from a verified export, then
//! signs a checkpoint to show that signing resumed.

use super::open::open;
use crate::config::Settings;
use crate::services::restore::{restore_tail, RestoreError};
use anyhow::anyhow;
use std::path::Path;
use std::process::ExitCode;

pub fn run(settings: &Settings, export: &Path) -> anyhow::Result<ExitCode> {
    let mut opened = open(settings)?;
    let restored = match restore_tail(&mut opened.conn, &opened.master, export) {
        Ok(restored) => restored,
        Err(RestoreError::Refused(why)) => {
            eprintln!("refused: {why}");
            return Ok(ExitCode::from(1));
        }
        Err(other) => return Err(anyhow!(other)),
    };
    println!(
        "{}: re-appended {} entries (size {} → {})",
        restored.tenant,
        restored.to - restored.from,
        restored.from,
        restored.to
    );
    match opened
        .signer
        .ensure_checkpoint(&mut opened.conn, &opened.master, &restored.tenant)
    {
        Ok(checkpoint) => {
            println!("signed a checkpoint at size {}", checkpoint.size);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("the entries are back, but signing is still refused: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
