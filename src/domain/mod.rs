//! Pure consent rules: no I/O, no HTTP, no SQL. Everything here is testable
//! in microseconds and reusable by an auditor's tool.

pub mod access;
pub mod change;
pub mod confirmation;
pub mod decision;
pub mod document;
pub mod endpoint;
pub mod entry_point;
pub mod evidence;
pub mod form;
pub mod identity;
pub mod ids;
pub mod import;
pub mod ivr;
pub mod number;
pub mod openapi;
pub mod person;
pub mod policy;
pub mod problem;
pub mod purpose;
pub mod record;
pub mod request;
pub mod retention;
pub mod text;
pub mod time;
pub mod vocabulary;
