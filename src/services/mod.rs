//! The application layer: one module per use case, each owning its
//! transaction and returning one `ServiceError` (recording an opt-in from
//! any door, a provider's message, a WhatsApp notification), and what
//! composes store calls with files and signing: checkpoints and the signer
//! state file, tenant creation (its size-0 checkpoint), exports and
//! dossiers, `verify-db`, housekeeping, and the rate limiters. Knows
//! nothing of HTTP.

pub mod dead_letters;
pub mod erasure;
pub mod error;
pub mod export;
pub mod housekeeping;
pub mod inbound;
pub mod links;
pub mod notification;
pub mod rate_limit;
pub mod recording;
pub mod restore;
pub mod retention;
pub mod signer;
pub mod tenants;
pub mod verify_db;
