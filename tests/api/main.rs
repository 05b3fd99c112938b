//! The integration suite: one binary, one temporary data dir and port per
//! test. A test marked `#[both]` runs twice, `name::sqlite` and
//! `name::postgres` (each app of the latter on its own database of the
//! suite's throwaway PostgreSQL cluster, `postgres.rs`); `#[postgres_only]`
//! runs on PostgreSQL alone; the rest (files that start no app, or that
//! copy the SQLite file) run once, on SQLite. `cargo test --test api
//! postgres` runs the PostgreSQL half, `-- --skip postgres` the rest.

mod abuse;
mod audit;
mod authz;
mod browser;
mod changes;
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
mod entry_points;
mod erasure;
mod errors;
mod events;
mod faults;
mod group_commit;
mod helpers;
mod hostile;
mod idempotency;
mod identities;
mod imports;
mod inbound;
mod ivr;
mod limits;
mod log;
mod log_privacy;
mod merkle;
mod metrics;
mod multi_instance;
mod on_postgres;
mod openapi;
mod operations;
mod pages;
mod postgres;
mod races;
mod recording;
mod restore;
mod retention;
mod reviews;
mod statements;
mod tamper;
mod tenants;
mod upgrade;
mod vectors;
mod verify_files;
mod verify_online;
mod vocabularies;
