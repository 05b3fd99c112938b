//! `verify-db [--tenant ID]`: the live database scanned like an export;
//! exit 0 clean, 1 tampered.

use super::open::open;
use crate::config::Settings;
use crate::services::verify_db::{verify_db, ScanError};
use anyhow::bail;
use std::process::ExitCode;

pub fn run(settings: &Settings, tenant: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut opened = open(settings)?;
    match verify_db(&mut opened.conn, tenant, &opened.master, &opened.signer) {
        Ok(scanned) => {
            if tenant.is_some() && scanned.is_empty() {
                bail!("no tenant {:?}", tenant.unwrap_or_default());
            }
            for s in scanned {
                let revoked = match s.revoked_only {
                    0 => String::new(),
                    n => format!(" ({n} signed only by a revoked key: their roots match the entries, their signatures prove nothing)"),
                };
                println!(
                    "{}: {} entries and {} checkpoints verified{revoked}",
                    s.tenant, s.entries, s.checkpoints
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ScanError::Failed { tenant, failure }) => {
            println!("{tenant}: {failure}");
            Ok(ExitCode::from(1))
        }
        Err(other) => Err(other.into()),
    }
}
