//! Pure ledger crypto, no I/O: the v1 entry format (RFC 8785 JSON, leaf hash,
//! commitments) and C2SP signed notes.

pub mod canonical;
pub mod commitment;
pub mod entry;
pub mod hash;
pub mod jcs;
pub mod merkle;
pub mod note;
pub mod statement;
pub mod verify;
