//! `operator-token rotate`: a new operator token replaces the stored one at
//! once on every instance (they read its hash on each use); printed once.

use super::open::open;
use crate::config::Settings;
use crate::keys;
use crate::store::connection::{meta_set, OPERATOR_TOKEN_META};
use anyhow::{bail, Context};
use std::process::ExitCode;

pub fn rotate(settings: &Settings) -> anyhow::Result<ExitCode> {
    if settings.operator_token.is_some() {
        bail!(
            "the operator token is configured (CONSENT_LEDGER_OPERATOR_TOKEN or the settings file): \
             change it there and restart; the stored token is not used while it is set"
        );
    }
    let mut conn = open(settings)?.conn;
    let token = keys::new_operator_token();
    meta_set(&mut conn, OPERATOR_TOKEN_META, &keys::secret_sha256(&token))
        .context("cannot store the new operator token")?;
    // The file written at first start holds the old token: it would only mislead.
    let stale = settings.data_dir.join("operator.token");
    match std::fs::remove_file(&stale) {
        Ok(()) => eprintln!("removed {} (it held the old token)", stale.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!("could not remove {}: {e}", stale.display()),
    }
    tracing::info!("operator token rotated");
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
