//! consent-ledger: an opt-in consent ledger for business messaging.
//!
//! The crate's map; dependencies point inward (`domain` and `ledger` know no
//! HTTP and no SQL).

/// HTTP handlers, one file per resource, and the caller extractor with roles.
pub mod api;
/// Channels that record by themselves: settings and the WhatsApp and Twilio webhooks.
pub mod channels;
/// The command line: `serve`, `migrate`, `tenant create`, `key create`, `openapi`.
pub mod cli;
/// Typed settings from flags, environment and an optional TOML file.
pub mod config;
/// Pure consent rules: numbers, purposes, evidence, timestamps, the decision.
pub mod domain;
/// One `ApiError` rendered as RFC 9457 problem+json with stable codes.
pub mod error;
/// The master key file, HMAC derivations and sealed secrets.
pub mod keys;
/// Pure ledger crypto: entries (JCS, commitments, leaf hash) and signed notes.
pub mod ledger;
/// What composes store calls with files and signing: the signer, tenant creation, exports, verify-db.
pub mod services;
/// Building the actix application and its OpenAPI document.
pub mod startup;
/// Diesel storage: schema, connections, migrations and the appender.
pub mod store;
/// The tracing subscriber.
pub mod telemetry;
