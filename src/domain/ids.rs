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
