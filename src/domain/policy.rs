//! What a tenant's settings ask of every door and every check (docs/decisions.md): read once with the tenant, so no handler or service parses
//! a setting again.

use super::purpose::CaptureChannel;
use super::vocabulary::LanguageSet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an ambiguous message does (docs/webhooks.md): an opt-out of the
/// partial purposes listed for review (the default), or nothing until a
/// person reviews it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AmbiguousMode {
    #[default]
    OptOut,
    Review,
}

impl AmbiguousMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AmbiguousMode::OptOut => "opt_out",
            AmbiguousMode::Review => "review",
        }
    }

    pub fn parse(value: &str) -> Option<AmbiguousMode> {
        [AmbiguousMode::OptOut, AmbiguousMode::Review]
            .into_iter()
            .find(|m| m.as_str() == value)
    }
}

/// A tenant's settings as rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantPolicy {
    /// Opt-ins older than this many days no longer allow (docs/decisions.md).
    pub max_consent_age_days: Option<i64>,
    /// The region of national numbers that name none (ISO 3166 alpha-2).
    pub default_region: Option<String>,
    /// The capture channels whose opt-ins wait for confirmation.
    pub confirmation_for: Vec<CaptureChannel>,
    /// Days evidence is kept after consent ends (docs/privacy.md).
    pub evidence_retention_days: Option<i64>,
    /// The languages whose opt-out vocabularies are read (docs/webhooks.md).
    pub languages: LanguageSet,
    /// What an ambiguous message does.
    pub ambiguous: AmbiguousMode,
}

impl TenantPolicy {
    /// Whether an opt-in captured through `channel` waits for confirmation.
    pub fn requires_confirmation(&self, channel: CaptureChannel) -> bool {
        self.confirmation_for.contains(&channel)
    }

    /// Whether an ambiguous message waits for a review before it withdraws
    /// anything (`ambiguous_messages: review`).
    pub fn reviews_first(&self) -> bool {
        self.ambiguous == AmbiguousMode::Review
    }

    /// The region national numbers are read in, when they name none.
    pub fn default_region(&self) -> Option<&str> {
        self.default_region.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_channels_wait_for_confirmation() {
        let policy = TenantPolicy {
            confirmation_for: vec![CaptureChannel::Web],
            ..TenantPolicy::default()
        };
        assert!(policy.requires_confirmation(CaptureChannel::Web));
        assert!(!policy.requires_confirmation(CaptureChannel::Sms));
        assert!(!TenantPolicy::default().requires_confirmation(CaptureChannel::Web));
    }
}
