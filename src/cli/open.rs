//! The one helper the commands share: the database (migrated), the master
//! key and the signer of the settings.

use crate::config::Settings;
use crate::keys::MasterKey;
use crate::services::signer::Signer;
use crate::startup;
use crate::store::pool::PooledConn;
use std::sync::Arc;

/// What most commands work with: a connection, the master key, the signer.
pub struct Opened {
    pub conn: PooledConn,
    pub master: Arc<MasterKey>,
    pub signer: Signer,
}

/// Opens (and migrates) the database, loads the master key and the signer
/// state file of `settings`.
pub fn open(settings: &Settings) -> anyhow::Result<Opened> {
    let (pool, master) = startup::open_database(settings)?;
    Ok(Opened {
        conn: pool.get()?,
        master,
        signer: Signer::new(settings.signer_state_file.clone()),
    })
}
