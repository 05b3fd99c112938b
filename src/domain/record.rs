//! An event ready to append (docs/recording.md and docs/webhooks.md): an opt-in, an
//! opt-out or a lift, with everything the ledger needs and nothing left to
//! check but what depends on stored state (the brand still active, the
//! clock, the idempotency key). The API, the webhooks and the hosted pages
//! all build these; the store appends them.

use super::evidence::Evidence;
use super::identity::Identity;
use super::ids::BrandId;
use super::purpose::{CaptureChannel, MessageChannelSet, PurposeSet};
use super::time::Timestamp;

/// A pending double opt-in: the code's hash and when it expires.
#[derive(Debug, Clone)]
pub struct PendingConfirmation {
    pub code_sha256: String,
    pub expires_at: Timestamp,
}

/// An opt-in whose request holds; what is left depends on the clock and
/// on the tenant's brands.
#[derive(Debug, Clone)]
pub struct OptInDraft {
    pub identity: Identity,
    pub channel: CaptureChannel,
    /// After NFC: the brand's stored spelling it must equal.
    pub company_name_shown: String,
    pub consent_text: String,
    pub purposes: PurposeSet,
    pub message_channels: MessageChannelSet,
    pub captured_at: Timestamp,
    pub language: Option<String>,
    pub backfill: bool,
    pub evidence: Evidence,
}

/// A validated opt-in, ready to append: its draft, for a brand the tenant
/// has (`draft.company_name_shown` is that brand's stored name).
#[derive(Debug, Clone)]
pub struct OptInRecord {
    pub draft: OptInDraft,
    pub brand_id: BrandId,
    pub confirmation: Option<PendingConfirmation>,
}

impl std::ops::Deref for OptInRecord {
    type Target = OptInDraft;

    fn deref(&self) -> &OptInDraft {
        &self.draft
    }
}

/// A validated opt-out, ready to append.
#[derive(Debug, Clone)]
pub struct OptOutRecord {
    /// Whom it is about: a number or a user id.
    pub identity: Identity,
    pub channel: CaptureChannel,
    pub purposes: PurposeSet,
    pub message_channels: MessageChannelSet,
    pub captured_at: Timestamp,
    pub backfill: bool,
    pub evidence: Evidence,
    /// Which messages may lift it (`None`: none, as for the API and pages).
    pub lift_class: Option<LiftClass>,
}

/// Opt-outs that a later message may lift (docs/webhooks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiftClass {
    /// Recorded from an opt-out keyword or phrase: START, UNSTOP and YES on
    /// the same capture channel lift it.
    Keyword,
    /// WhatsApp's own marketing stop: its `resume` lifts it.
    MarketingPreference,
}

impl LiftClass {
    pub fn as_str(self) -> &'static str {
        match self {
            LiftClass::Keyword => "keyword",
            LiftClass::MarketingPreference => "marketing_preference",
        }
    }
}

/// An `opt_out_lifted` entry: cancels exactly the opt-out `lifts` names.
#[derive(Debug, Clone)]
pub struct LiftRecord {
    /// Whom it is about: a number or a user id.
    pub identity: Identity,
    pub channel: CaptureChannel,
    pub captured_at: Timestamp,
    pub evidence: Evidence,
    pub lifts: u64,
}

/// A `confirmation` entry: the opt-in `confirms` names now counts (docs/pages.md), confirmed by a message from the opt-in's own identity.
#[derive(Debug, Clone)]
pub struct ConfirmRecord {
    pub identity: Identity,
    pub channel: CaptureChannel,
    pub captured_at: Timestamp,
    pub evidence: Evidence,
    pub confirms: u64,
}

/// What is appended.
#[derive(Debug, Clone)]
pub enum Record {
    OptIn(OptInRecord),
    OptOut(OptOutRecord),
    Lift(LiftRecord),
    Confirm(ConfirmRecord),
}

impl Record {
    pub fn identity(&self) -> &Identity {
        match self {
            Record::OptIn(r) => &r.identity,
            Record::OptOut(r) => &r.identity,
            Record::Lift(r) => &r.identity,
            Record::Confirm(r) => &r.identity,
        }
    }

    pub fn captured_at(&self) -> Timestamp {
        match self {
            Record::OptIn(r) => r.captured_at,
            Record::OptOut(r) => r.captured_at,
            Record::Lift(r) => r.captured_at,
            Record::Confirm(r) => r.captured_at,
        }
    }

    /// The channel the person used.
    pub fn channel(&self) -> CaptureChannel {
        match self {
            Record::OptIn(r) => r.channel,
            Record::OptOut(r) => r.channel,
            Record::Lift(r) => r.channel,
            Record::Confirm(r) => r.channel,
        }
    }

    /// Recorded as a backfill (an opt-in or opt-out of another system's past).
    pub fn is_backfill(&self) -> bool {
        match self {
            Record::OptIn(r) => r.backfill,
            Record::OptOut(r) => r.backfill,
            Record::Lift(_) | Record::Confirm(_) => false,
        }
    }

    pub fn evidence(&self) -> &Evidence {
        match self {
            Record::OptIn(r) => &r.evidence,
            Record::OptOut(r) => &r.evidence,
            Record::Lift(r) => &r.evidence,
            Record::Confirm(r) => &r.evidence,
        }
    }
}
