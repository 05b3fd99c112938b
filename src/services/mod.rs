//! The application layer: one module per use case, each owning its
//! transaction and returning one `ServiceError` (recording an opt-in from
//! any door, an opt-out or an interaction through the API, a provider's
//! message, a WhatsApp notification; a tenant's brands, keys, channel
//! settings, forms and documents; what a hosted page records; checking
//! consent: one check, a batch, a subject's report), and what
//! composes store calls with files and signing: checkpoints and the signer
//! state file, tenant creation (its size-0 checkpoint), exports and
//! dossiers, `verify-db`, housekeeping, and the rate limiters. Knows
//! nothing of HTTP.

pub mod brands;
pub mod changes;
pub mod channel_settings;
pub mod checking;
pub mod dead_letters;
pub mod documents;
pub mod entry_points;
pub mod erasure;
pub mod error;
pub mod events;
pub mod export;
pub mod forms;
pub mod housekeeping;
pub mod imports;
pub mod inbound;
pub mod interactions;
pub mod ivr;
pub mod keys;
pub mod links;
pub mod notification;
pub mod opt_outs;
pub mod pages;
pub mod rate_limit;
pub mod recording;
pub mod restore;
pub mod retention;
pub mod reviews;
pub mod signer;
pub mod statements;
pub mod tenants;
pub mod verify_db;
