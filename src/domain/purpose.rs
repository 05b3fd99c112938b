//! Purposes (Meta's template categories), message channels and capture
//! channels, and the small sets of them that consents cover.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// What a message is for: Meta's template categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Marketing,
    Utility,
    Authentication,
}

impl Purpose {
    pub const ALL: [Purpose; 3] = [
        Purpose::Marketing,
        Purpose::Utility,
        Purpose::Authentication,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Marketing => "marketing",
            Purpose::Utility => "utility",
            Purpose::Authentication => "authentication",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Purpose::Marketing => 1,
            Purpose::Utility => 2,
            Purpose::Authentication => 4,
        }
    }
}

/// The channel a message is sent over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageChannel {
    #[default]
    Whatsapp,
    Sms,
}

impl MessageChannel {
    pub const ALL: [MessageChannel; 2] = [MessageChannel::Whatsapp, MessageChannel::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageChannel::Whatsapp => "whatsapp",
            MessageChannel::Sms => "sms",
        }
    }

    fn bit(self) -> u8 {
        match self {
            MessageChannel::Whatsapp => 1,
            MessageChannel::Sms => 2,
        }
    }
}

/// Where a person gave (or withdrew) consent. `Api` is for opt-outs only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaptureChannel {
    Sms,
    Web,
    Whatsapp,
    Ivr,
    Paper,
    Api,
}

impl CaptureChannel {
    pub const ALL: [CaptureChannel; 6] = [
        CaptureChannel::Sms,
        CaptureChannel::Web,
        CaptureChannel::Whatsapp,
        CaptureChannel::Ivr,
        CaptureChannel::Paper,
        CaptureChannel::Api,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CaptureChannel::Sms => "sms",
            CaptureChannel::Web => "web",
            CaptureChannel::Whatsapp => "whatsapp",
            CaptureChannel::Ivr => "ivr",
            CaptureChannel::Paper => "paper",
            CaptureChannel::Api => "api",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// Opt-ins come from a person's act; `api` is only a way to withdraw.
    pub fn can_capture_opt_in(self) -> bool {
        self != CaptureChannel::Api
    }
}

impl fmt::Display for CaptureChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of purposes, stored as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PurposeSet(u8);

impl PurposeSet {
    pub fn all() -> Self {
        Self(7)
    }

    pub fn from_bits(bits: i32) -> Self {
        Self((bits & 7) as u8)
    }

    pub fn bits(self) -> i32 {
        i32::from(self.0)
    }

    pub fn contains(self, p: Purpose) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Names sorted by byte order, de-duplicated (the ledger's canonical array).
    pub fn names(self) -> Vec<&'static str> {
        let mut names: Vec<_> = Purpose::ALL
            .into_iter()
            .filter(|p| self.contains(*p))
            .map(Purpose::as_str)
            .collect();
        names.sort_unstable();
        names
    }
}

impl FromIterator<Purpose> for PurposeSet {
    fn from_iter<I: IntoIterator<Item = Purpose>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |bits, p| bits | p.bit()))
    }
}

/// A set of message channels, stored as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MessageChannelSet(u8);

impl MessageChannelSet {
    pub fn all() -> Self {
        Self(3)
    }

    pub fn from_bits(bits: i32) -> Self {
        Self((bits & 3) as u8)
    }

    pub fn bits(self) -> i32 {
        i32::from(self.0)
    }

    pub fn contains(self, c: MessageChannel) -> bool {
        self.0 & c.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn names(self) -> Vec<&'static str> {
        let mut names: Vec<_> = MessageChannel::ALL
            .into_iter()
            .filter(|c| self.contains(*c))
            .map(MessageChannel::as_str)
            .collect();
        names.sort_unstable();
        names
    }
}

impl FromIterator<MessageChannel> for MessageChannelSet {
    fn from_iter<I: IntoIterator<Item = MessageChannel>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |bits, c| bits | c.bit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_render_sorted_and_deduplicated() {
        let set: PurposeSet = [Purpose::Utility, Purpose::Marketing, Purpose::Utility]
            .into_iter()
            .collect();
        assert_eq!(set.names(), ["marketing", "utility"]);
        assert_eq!(
            PurposeSet::all().names(),
            ["authentication", "marketing", "utility"]
        );
        let channels: MessageChannelSet = [MessageChannel::Whatsapp, MessageChannel::Sms]
            .into_iter()
            .collect();
        assert_eq!(channels.names(), ["sms", "whatsapp"]);
        assert_eq!(PurposeSet::from_bits(set.bits()), set);
    }
}
