//! What composes store calls with files and signing: checkpoints and the
//! signer state file, tenant creation (its size-0 checkpoint), exports and
//! dossiers, `verify-db`, and the rate limiters. Knows nothing of HTTP.

pub mod export;
pub mod housekeeping;
pub mod rate_limit;
pub mod restore;
pub mod signer;
pub mod tenants;
pub mod verify_db;
