//! What a verification failure names: the place (header, seq, line or
//! checkpoint) and what failed there.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Header,
    Seq(u64),
    Line(u64),
    Checkpoint,
}

/// A verification failure: `seq N: <what failed>` and the like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub place: Place,
    pub what: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::Header => write!(f, "header: {}", self.what),
            Place::Seq(n) => write!(f, "seq {n}: {}", self.what),
            Place::Line(n) => write!(f, "line {n}: {}", self.what),
            Place::Checkpoint => write!(f, "checkpoint: {}", self.what),
        }
    }
}

pub(super) fn fail<T>(place: Place, what: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        place,
        what: what.into(),
    })
}

/// What went wrong: unreadable input (exit 2) or a failed check (exit 1).
#[derive(Debug)]
pub enum VerifyError {
    Unreadable(String),
    Failed(Failure),
}

pub(super) fn failed(place: Place, what: impl Into<String>) -> VerifyError {
    VerifyError::Failed(Failure {
        place,
        what: what.into(),
    })
}

impl From<Failure> for VerifyError {
    fn from(f: Failure) -> Self {
        VerifyError::Failed(f)
    }
}
