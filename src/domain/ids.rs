//! Ids that would be easy to mix up as bare integers.

use std::fmt;

/// A brand of a tenant (its row id). Brands are never renamed: an opt-in
/// names the brand it was given to by this id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrandId(pub i64);

impl fmt::Display for BrandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "brand {}", self.0)
    }
}

/// A subject (docs/identities.md): one identity of a tenant with its salt, by
/// its row id. What the ledger shows of it is its commitment, never this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectId(pub i64);

/// A group of linked subjects, by the id of one of them: a check reads a
/// group's events by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub i64);

impl SubjectId {
    /// The group of a subject not linked to any other: its own id.
    pub fn own_group(self) -> GroupId {
        GroupId(self.0)
    }
}

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subject {}", self.0)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {}", self.0)
    }
}
