//! consent-ledger: an opt-in consent ledger for business messaging.
//!
//! The crate's map. Dependencies point one way, `cli → startup → api →
//! services → store → domain, providers, ledger` (see `docs/architecture.md`;
//! `tests/architecture.rs` holds it).

/// HTTP only: extract, authorize, call, render; one file per resource, the
/// webhooks in `api/webhooks/`.
pub mod api;
/// The command line, one file per command.
pub mod cli;
/// Typed settings from flags, environment and an optional TOML file.
pub mod config;
/// Pure consent rules: numbers, purposes, evidence, requests parsed into
/// what is appended, the decision, problem codes.
pub mod domain;
/// One `ApiError` rendered as RFC 9457 problem+json.
pub mod error;
/// The master key file, HMAC derivations and sealed secrets.
pub mod keys;
/// Pure ledger crypto: entries, JCS, hashes, commitments, the Merkle tree,
/// signed notes, offline verification.
pub mod ledger;
/// Prometheus metrics: one registry, no tenant labels.
pub mod metrics;
/// Pure: what the providers' messages mean (payloads, signatures, `wa_id`s,
/// intent, channel settings, what a dead letter keeps).
pub mod providers;
/// The application layer: one module per use case (recording an opt-in
/// from any door, a provider's message), and what composes store calls
/// with files and signing (the signer, tenant creation, exports,
/// verify-db).
pub mod services;
/// Building the actix application and its OpenAPI document.
pub mod startup;
/// Diesel: schema, connections, migrations, the appender, dead letters,
/// the signer's reads and writes.
pub mod store;
/// The tracing subscriber.
pub mod telemetry;
