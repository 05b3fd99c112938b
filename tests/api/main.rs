//! The integration suite: one binary, one temporary data dir and port per test.

mod channels;
mod checks;
mod cli;
mod decisions;
mod errors;
mod helpers;
mod idempotency;
mod log;
mod merkle;
mod openapi;
mod recording;
mod tamper;
mod tenants;
mod vectors;
mod verify_files;
