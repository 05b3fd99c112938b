//! Lists paged by a number (`after`, `limit`): the dead letters and the
//! audit trail.

use crate::error::ApiError;

/// The page size asked for: 1 to 1000, 100 when not given.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid_field(
            "limit",
            "out_of_range",
            "`limit` is 1 to 1000",
        ))
    }
}
