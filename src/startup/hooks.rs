//! What a test may control in a running application: its clock, the
//! gates writes and group commits wait at, the housekeeping interval.

use std::sync::Arc;

/// What a test may control in a running application; the default is the
/// system clock, no gate and the usual housekeeping interval.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub clock: crate::domain::time::Clock,
    /// Writes under an `Idempotency-Key` wait for a permit of this
    /// semaphore once their key is taken (see [`crate::api::AppState::write_gate`]).
    pub write_gate: Option<Arc<tokio::sync::Semaphore>>,
    /// How often housekeeping runs (default 10 minutes).
    pub housekeeping_interval: Option<std::time::Duration>,
    /// Group commits wait here until it opens (see `store/group_commit.rs`).
    pub group_gate: Option<Arc<crate::store::group_commit::Gate>>,
}
