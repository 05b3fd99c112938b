//! The integration suite on SQLite: one binary, one temporary data dir and
//! port per test. `tests/postgres/main.rs` runs the same files on PostgreSQL.

/// The database this binary's tests run on.
pub const BACKEND: helpers::Backend = helpers::Backend::Sqlite;

mod abuse;
mod audit;
mod authz;
mod browser;
mod channels;
mod checks;
mod cli;
mod closed_groups;
mod confirmation;
mod contract;
mod crash;
mod decisions;
mod documents;
mod doors;
mod erasure;
mod errors;
mod group_commit;
mod helpers;
mod hostile;
mod idempotency;
mod identities;
mod inbound;
mod limits;
mod log;
mod log_privacy;
mod merkle;
mod metrics;
mod openapi;
mod operations;
mod pages;
mod postgres;
mod races;
mod recording;
mod restore;
mod retention;
mod reviews;
mod tamper;
mod tenants;
mod upgrade;
mod vectors;
mod verify_files;
mod verify_online;
mod vocabularies;
