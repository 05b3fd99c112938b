//! What `restore-tail` answers when it cannot go on.

use crate::store::StoreError;

/// Why an export was not (wholly) re-appended.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot read the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for RestoreError {
    fn from(e: diesel::result::Error) -> Self {
        RestoreError::Store(StoreError::Database(e))
    }
}
