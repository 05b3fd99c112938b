//! The decision (docs/decisions.md, exact): may the tenant, as a brand, send a
//! message of a purpose over a channel to a person, now? And the 24-hour
//! customer-service window.

use super::ids::BrandId;
use super::purpose::{CaptureChannel, MessageChannel, MessageChannelSet, Purpose, PurposeSet};
use super::time::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

/// How long an inbound message keeps the customer-service window open.
pub const WINDOW_MILLIS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    OptIn,
    OptOut,
}

/// Where an opt-in stands with double opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    NotRequired,
    Confirmed,
    Pending { expires_at: Timestamp },
}

/// One opt-in or opt-out of a subject, as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEvent {
    pub seq: u64,
    pub kind: EventKind,
    pub captured_at: Timestamp,
    pub channel: CaptureChannel,
    pub purposes: PurposeSet,
    pub message_channels: MessageChannelSet,
    /// The brand an opt-in was given to; `None` for opt-outs (they cover every brand).
    pub brand_id: Option<BrandId>,
    pub company_name_shown: Option<String>,
    pub confirmation: Confirmation,
    /// An `opt_out_lifted` entry cancelled this opt-out.
    pub lifted: bool,
}

impl ConsentEvent {
    fn order_key(&self) -> (Timestamp, u8, u64) {
        let rank = match self.kind {
            EventKind::OptIn => 0,
            EventKind::OptOut => 1,
        };
        (self.captured_at, rank, self.seq)
    }

    fn covers(&self, purpose: Purpose, channel: MessageChannel) -> bool {
        self.purposes.contains(purpose) && self.message_channels.contains(channel)
    }

    fn is_effective_opt_out(&self) -> bool {
        self.kind == EventKind::OptOut && !self.lifted
    }

    fn is_counting_opt_in(&self) -> bool {
        self.kind == EventKind::OptIn
            && matches!(
                self.confirmation,
                Confirmation::NotRequired | Confirmation::Confirmed
            )
    }

    fn is_awaiting_confirmation(&self, now: Timestamp) -> bool {
        self.kind == EventKind::OptIn
            && matches!(self.confirmation, Confirmation::Pending { expires_at } if now < expires_at)
    }
}

/// The decision's reason, exactly as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Allowed,
    OptedOut,
    NoOptIn,
    Expired,
    PurposeNotCovered,
    ChannelNotCovered,
    BrandMismatch,
    Unconfirmed,
    UnderReview,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::OptedOut => "opted_out",
            Reason::NoOptIn => "no_opt_in",
            Reason::Expired => "expired",
            Reason::PurposeNotCovered => "purpose_not_covered",
            Reason::ChannelNotCovered => "channel_not_covered",
            Reason::BrandMismatch => "brand_mismatch",
            Reason::Unconfirmed => "unconfirmed",
            Reason::UnderReview => "under_review",
        }
    }
}

/// What is asked: purpose, brand and message channel.
#[derive(Debug, Clone, Copy)]
pub struct Question {
    pub purpose: Purpose,
    pub brand_id: BrandId,
    pub channel: MessageChannel,
}

/// The reason and the event it rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome<'a> {
    pub reason: Reason,
    pub consent: Option<&'a ConsentEvent>,
}

/// A closed group (docs/decisions.md rule 2): the opt-out that closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closure {
    /// The closing opt-out's seq (`None` only for a group closed by an
    /// older version whose closing opt-out cannot be told).
    pub by: Option<u64>,
}

/// An ambiguous message of the group held for review (docs/webhooks.md, mode
/// `review`), not yet settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingReview {
    /// What it would withdraw.
    pub purposes: PurposeSet,
    pub captured_at: Timestamp,
}

/// What stands above a group's events: the latest erasure on request of
/// any of its identities (rule 1), whether the group is closed (rule 2),
/// and its messages held for review (rule 3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing<'r> {
    pub suppressed_at: Option<Timestamp>,
    pub closed: Option<Closure>,
    pub under_review: &'r [PendingReview],
}

impl Standing<'_> {
    /// Only an erasure (or none).
    pub fn suppressed(suppressed_at: Option<Timestamp>) -> Self {
        Self {
            suppressed_at,
            closed: None,
            under_review: &[],
        }
    }
}

/// Decides from a group's events (any order). `max_consent_age_days` is
/// the tenant's setting; `standing` what rules 1 and 2 look at: opt-ins
/// captured at or before the latest erasure on request are ignored, and
/// without a counting one after it the answer is `opted_out`; a closed
/// group answers `opted_out`, resting on the opt-out that closed it. An
/// identity without a subject, or whose newest subject is erased, is
/// `no_opt_in` unless suppressed: pass no events.
pub fn decide<'a>(
    events: &'a [ConsentEvent],
    question: Question,
    max_consent_age_days: Option<i64>,
    standing: Standing<'_>,
    now: Timestamp,
) -> Outcome<'a> {
    let Question {
        purpose,
        brand_id,
        channel,
    } = question;
    let suppressed_at = standing.suppressed_at;
    // Rule 1: opt-ins captured at or before the erasure never count.
    let erased_before = |e: &ConsentEvent| {
        e.kind == EventKind::OptIn && suppressed_at.is_some_and(|at| e.captured_at <= at)
    };
    let events = || events.iter().filter(move |e| !erased_before(e));
    if suppressed_at.is_some() && !events().any(|e| e.is_counting_opt_in()) {
        let opt_out = events()
            .filter(|e| e.is_effective_opt_out() && e.covers(purpose, channel))
            .max_by_key(|e| e.order_key());
        return Outcome {
            reason: Reason::OptedOut,
            consent: opt_out,
        };
    }
    // Rule 2: a closed group rests on the opt-out that closed it, whatever
    // the order of its other events.
    if let Some(closure) = standing.closed {
        let closing = closure.by.and_then(|seq| events().find(|e| e.seq == seq));
        return Outcome {
            reason: Reason::OptedOut,
            consent: closing,
        };
    }
    let governing = events()
        .filter(|e| {
            (e.is_effective_opt_out() && e.covers(purpose, channel))
                || (e.is_counting_opt_in()
                    && e.covers(purpose, channel)
                    && e.brand_id == Some(brand_id))
        })
        .max_by_key(|e| e.order_key());
    if let Some(event) = governing {
        let reason = match event.kind {
            EventKind::OptOut => Reason::OptedOut,
            EventKind::OptIn if reviewed_later(standing.under_review, event, purpose) => {
                Reason::UnderReview
            }
            EventKind::OptIn => match max_consent_age_days {
                Some(days) if now >= event.captured_at.plus_days(days) => Reason::Expired,
                _ => Reason::Allowed,
            },
        };
        // `under_review` rests on no entry: the message it waits on is none.
        let consent = (reason != Reason::UnderReview).then_some(event);
        return Outcome { reason, consent };
    }
    without_governing(events(), question, now)
}

/// Rule 4: no opt-out or counting opt-in governs the question.
fn without_governing<'a>(
    events: impl Iterator<Item = &'a ConsentEvent> + Clone,
    question: Question,
    now: Timestamp,
) -> Outcome<'a> {
    let Question {
        purpose,
        brand_id,
        channel,
    } = question;
    let awaiting = events.clone().any(|e| {
        e.is_awaiting_confirmation(now)
            && e.covers(purpose, channel)
            && e.brand_id == Some(brand_id)
    });
    let counting: Vec<&ConsentEvent> = events.filter(|e| e.is_counting_opt_in()).collect();
    let (reason, consent) = if awaiting {
        (Reason::Unconfirmed, None)
    } else if counting.is_empty() {
        (Reason::NoOptIn, None)
    } else if !counting.iter().any(|e| e.purposes.contains(purpose)) {
        (Reason::PurposeNotCovered, None)
    } else if !counting.iter().any(|e| e.covers(purpose, channel)) {
        (Reason::ChannelNotCovered, None)
    } else {
        let other_brand = counting
            .iter()
            .copied()
            .filter(|e| e.covers(purpose, channel))
            .max_by_key(|e| e.order_key());
        (Reason::BrandMismatch, other_brand)
    };
    Outcome { reason, consent }
}

/// Rule 3: a message held for review, captured after the governing opt-in,
/// that would withdraw the purpose.
fn reviewed_later(pending: &[PendingReview], opt_in: &ConsentEvent, purpose: Purpose) -> bool {
    pending
        .iter()
        .any(|p| p.purposes.contains(purpose) && p.captured_at > opt_in.captured_at)
}

/// Whether every purpose on every message channel is governed by an
/// effective opt-out (of any brand's opt-ins): what an erasure checks
/// before it records its own opt-out of everything.
pub fn opted_out_of_everything(events: &[ConsentEvent]) -> bool {
    Purpose::ALL.iter().all(|&purpose| {
        MessageChannel::ALL.iter().all(|&channel| {
            events
                .iter()
                .filter(|e| {
                    e.covers(purpose, channel)
                        && (e.is_effective_opt_out() || e.is_counting_opt_in())
                })
                .max_by_key(|e| e.order_key())
                .is_some_and(|e| e.kind == EventKind::OptOut)
        })
    })
}

/// An inbound message's time, per business phone number id (`None`: an
/// interaction recorded without an id, which counts for every id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRecord {
    pub phone_number_id: Option<String>,
    pub last_inbound_at: Timestamp,
}

/// The customer-service window as reported in a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct Window {
    pub open: bool,
    /// When the open window closes; null while it is closed.
    pub closes_at: Option<Timestamp>,
    pub business_phone_number_id: Option<String>,
}

impl Window {
    pub fn closed(business_phone_number_id: Option<String>) -> Self {
        Self {
            open: false,
            closes_at: None,
            business_phone_number_id,
        }
    }

    fn from_latest(latest: Option<Timestamp>, id: Option<String>, now: Timestamp) -> Self {
        match latest.map(|t| t.plus_millis(WINDOW_MILLIS)) {
            Some(closes) if now < closes => Self {
                open: true,
                closes_at: Some(closes),
                business_phone_number_id: id,
            },
            _ => Self::closed(id),
        }
    }
}

/// Whether an inbound record still holds a window open at `now`. A record
/// whose window has closed has no effect on any decision, which is why the
/// housekeeping job may delete it.
pub fn window_still_open(last_inbound_at: Timestamp, now: Timestamp) -> bool {
    now < last_inbound_at.plus_millis(WINDOW_MILLIS)
}

/// The window of one business number, and whether that number is certain
/// (a free-form reply is only ever allowed on a known business number).
/// Only records whose window is still open count: a closed window answers
/// as if it had never opened.
pub fn window_for(
    records: &[InboundRecord],
    named: Option<&str>,
    configured: &[String],
    now: Timestamp,
) -> (Window, bool) {
    let open: Vec<&InboundRecord> = records
        .iter()
        .filter(|r| window_still_open(r.last_inbound_at, now))
        .collect();
    let records = open.as_slice();
    let single_seen = {
        let mut ids = records.iter().filter_map(|r| r.phone_number_id.as_deref());
        let first = ids.next();
        match first {
            Some(f) if ids.all(|i| i == f) => Some(Some(f)),
            Some(_) => None,
            None => Some(None),
        }
    };
    let target: Option<Option<&str>> = match (named, configured) {
        (Some(id), _) => Some(Some(id)),
        (None, [only]) => Some(Some(only.as_str())),
        (None, []) => single_seen,
        (None, _) => None,
    };
    match target {
        Some(id) => {
            let latest = records
                .iter()
                .filter(|r| r.phone_number_id.is_none() || r.phone_number_id.as_deref() == id)
                .map(|r| r.last_inbound_at)
                .max();
            (
                Window::from_latest(latest, id.map(str::to_owned), now),
                true,
            )
        }
        None => {
            let latest = records.iter().max_by_key(|r| r.last_inbound_at);
            let window = Window::from_latest(
                latest.map(|r| r.last_inbound_at),
                latest.and_then(|r| r.phone_number_id.clone()),
                now,
            );
            (window, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAKRO: BrandId = BrandId(1);
    const METRO: BrandId = BrandId(2);

    fn t(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn opt_in(
        seq: u64,
        at: &str,
        purposes: &[Purpose],
        channels: &[MessageChannel],
        brand: BrandId,
    ) -> ConsentEvent {
        ConsentEvent {
            seq,
            kind: EventKind::OptIn,
            captured_at: t(at),
            channel: CaptureChannel::Web,
            purposes: purposes.iter().copied().collect(),
            message_channels: channels.iter().copied().collect(),
            brand_id: Some(brand),
            company_name_shown: Some(format!("brand{brand}")),
            confirmation: Confirmation::NotRequired,
            lifted: false,
        }
    }

    fn opt_out(
        seq: u64,
        at: &str,
        purposes: &[Purpose],
        channels: &[MessageChannel],
    ) -> ConsentEvent {
        ConsentEvent {
            seq,
            kind: EventKind::OptOut,
            captured_at: t(at),
            channel: CaptureChannel::Api,
            purposes: purposes.iter().copied().collect(),
            message_channels: channels.iter().copied().collect(),
            brand_id: None,
            company_name_shown: None,
            confirmation: Confirmation::NotRequired,
            lifted: false,
        }
    }

    use MessageChannel::{Sms, Whatsapp};
    use Purpose::{Authentication, Marketing, Utility};

    const NOW: &str = "2026-11-22T12:00:00Z";

    fn ask(
        events: &[ConsentEvent],
        purpose: Purpose,
        brand: BrandId,
        channel: MessageChannel,
    ) -> (Reason, Option<u64>) {
        let q = Question {
            purpose,
            brand_id: brand,
            channel,
        };
        let out = decide(events, q, None, Standing::default(), t(NOW));
        (out.reason, out.consent.map(|e| e.seq))
    }

    #[test]
    fn allowed_rests_on_the_governing_opt_in() {
        let events = [opt_in(
            3,
            "2026-11-20T10:00:00Z",
            &[Marketing],
            &[Whatsapp],
            MAKRO,
        )];
        assert_eq!(
            ask(&events, Marketing, MAKRO, Whatsapp),
            (Reason::Allowed, Some(3))
        );
    }

    #[test]
    fn no_events_is_no_opt_in() {
        assert_eq!(
            ask(&[], Marketing, MAKRO, Whatsapp),
            (Reason::NoOptIn, None)
        );
    }

    #[test]
    fn an_opt_out_covers_every_brand() {
        let events = [
            opt_in(0, "2026-11-20T10:00:00Z", &[Marketing], &[Whatsapp], MAKRO),
            opt_in(1, "2026-11-20T10:00:00Z", &[Marketing], &[Whatsapp], METRO),
            opt_out(2, "2026-11-21T10:00:00Z", &[Marketing], &[Whatsapp]),
        ];
        assert_eq!(
            ask(&events, Marketing, MAKRO, Whatsapp),
            (Reason::OptedOut, Some(2))
        );
        assert_eq!(
            ask(&events, Marketing, METRO, Whatsapp),
            (Reason::OptedOut, Some(2))
        );
    }

    #[test]
    fn order_is_by_captured_at_not_by_seq() {
        // A backfilled older opt-in (higher seq) never overrides a newer opt-out.
        let events = [
            opt_out(
                0,
                "2026-11-21T10:00:00Z",
                &Purpose::ALL,
                &MessageChannel::ALL,
            ),
            opt_in(1, "2026-11-01T10:00:00Z", &[Marketing], &[Whatsapp], MAKRO),
        ];
        assert_eq!(
            ask(&events, Marketing, MAKRO, Whatsapp),
            (Reason::OptedOut, Some(0))
        );
        // A newer opt-in after an opt-out counts again.
        let events = [
            opt_out(
                0,
                "2026-11-01T10:00:00Z",
                &Purpose::ALL,
                &MessageChannel::ALL,
            ),
            opt_in(1, "2026-11-21T10:00:00Z", &[Marketing], &[Whatsapp], MAKRO),
        ];
        assert_eq!(
            ask(&events, Marketing, MAKRO, Whatsapp),
            (Reason::Allowed, Some(1))
        );
    }

    #[test]
    fn an_opt_out_wins_a_tie() {
        let events = [
            opt_out(0, "2026-11-21T10:00:00Z", &[Marketing], &[Whatsapp]),
            opt_in(1, "2026-11-21T10:00:00Z", &[Marketing], &[Whatsapp], MAKRO),
        ];
        assert_eq!(
            ask(&events, Marketing, MAKRO, Whatsapp),
            (Reason::OptedOut, Some(0))
        );
    }

    #[test]
    fn a_lifted_opt_out_no_longer_counts() {
        let mut out = opt_out(1, "2026-11-21T10:00:00Z", &[Marketing], &[Whatsapp]);
        out.lifted = true;
        let events = [
            opt_in(0, "2026-11-20T10:00:00Z", &[Marketing], &[Whatsapp], MAKRO),
            out,
        ];
        assert_eq!(
            ask(&events, Marketing, MAKRO, Whatsapp),
            (Reason::Allowed, Some(0))
        );
    }

    #[test]
    fn an_opt_out_of_another_purpose_or_channel_does_not_count() {
        let events = [
            opt_in(
                0,
                "2026-11-20T10:00:00Z",
                &[Marketing, Utility],
                &[Whatsapp, Sms],
                MAKRO,
            ),
            opt_out(1, "2026-11-21T10:00:00Z", &[Marketing], &[Sms]),
        ];
        assert_eq!(
            ask(&events, Marketing, MAKRO, Whatsapp),
            (Reason::Allowed, Some(0))
        );
        assert_eq!(
            ask(&events, Marketing, MAKRO, Sms),
            (Reason::OptedOut, Some(1))
        );
        assert_eq!(
            ask(&events, Utility, MAKRO, Sms),
            (Reason::Allowed, Some(0))
        );
    }

    #[test]
    fn coverage_reasons_in_order() {
        let events = [opt_in(
            0,
            "2026-11-20T10:00:00Z",
            &[Marketing],
            &[Whatsapp],
            MAKRO,
        )];
        assert_eq!(
            ask(&events, Utility, MAKRO, Whatsapp),
            (Reason::PurposeNotCovered, None)
        );
        assert_eq!(
            ask(&events, Authentication, METRO, Sms),
            (Reason::PurposeNotCovered, None)
        );
        assert_eq!(
            ask(&events, Marketing, MAKRO, Sms),
            (Reason::ChannelNotCovered, None)
        );
        assert_eq!(
            ask(&events, Marketing, METRO, Sms),
            (Reason::ChannelNotCovered, None)
        );
        assert_eq!(
            ask(&events, Marketing, METRO, Whatsapp),
            (Reason::BrandMismatch, Some(0))
        );
    }

    #[test]
    fn brand_mismatch_names_the_newest_other_brand_opt_in() {
        let events = [
            opt_in(0, "2026-11-21T10:00:00Z", &[Marketing], &[Whatsapp], MAKRO),
            opt_in(1, "2026-11-20T10:00:00Z", &[Marketing], &[Whatsapp], MAKRO),
            opt_in(2, "2026-11-19T10:00:00Z", &[Marketing], &[Sms], MAKRO),
        ];
        assert_eq!(
            ask(&events, Marketing, METRO, Whatsapp),
            (Reason::BrandMismatch, Some(0))
        );
    }

    #[test]
    fn only_opt_outs_and_nothing_covering_is_no_opt_in() {
        let events = [opt_out(
            0,
            "2026-11-21T10:00:00Z",
            &[Marketing],
            &[Whatsapp],
        )];
        assert_eq!(
            ask(&events, Utility, MAKRO, Whatsapp),
            (Reason::NoOptIn, None)
        );
    }

    #[test]
    fn expiry_counts_from_captured_at() {
        let events = [opt_in(
            0,
            "2026-11-12T12:00:00Z",
            &[Marketing],
            &[Whatsapp],
            MAKRO,
        )];
        let q = Question {
            purpose: Marketing,
            brand_id: MAKRO,
            channel: Whatsapp,
        };
        assert_eq!(
            decide(&events, q, Some(10), Standing::default(), t(NOW)).reason,
            Reason::Expired
        );
        assert_eq!(
            decide(
                &events,
                q,
                Some(10),
                Standing::default(),
                t("2026-11-22T11:59:59.999Z")
            )
            .reason,
            Reason::Allowed
        );
        assert_eq!(
            decide(&events, q, Some(11), Standing::default(), t(NOW)).reason,
            Reason::Allowed
        );
        assert_eq!(
            decide(&events, q, None, Standing::default(), t(NOW)).reason,
            Reason::Allowed
        );
        // Expired still names the governing opt-in.
        assert_eq!(
            decide(&events, q, Some(10), Standing::default(), t(NOW))
                .consent
                .map(|e| e.seq),
            Some(0)
        );
    }

    #[test]
    fn confirmation_rules() {
        let mut pending = opt_in(0, "2026-11-22T11:00:00Z", &[Marketing], &[Whatsapp], MAKRO);
        pending.confirmation = Confirmation::Pending {
            expires_at: t("2026-11-23T11:00:00Z"),
        };
        assert_eq!(
            ask(std::slice::from_ref(&pending), Marketing, MAKRO, Whatsapp),
            (Reason::Unconfirmed, None)
        );
        // An expired code is ignored entirely.
        pending.confirmation = Confirmation::Pending {
            expires_at: t("2026-11-22T11:30:00Z"),
        };
        assert_eq!(
            ask(std::slice::from_ref(&pending), Marketing, MAKRO, Whatsapp),
            (Reason::NoOptIn, None)
        );
        // Confirmed keeps its own captured_at: an opt-out in between still wins.
        pending.confirmation = Confirmation::Confirmed;
        let events = [
            pending,
            opt_out(1, "2026-11-22T11:10:00Z", &[Marketing], &[Whatsapp]),
        ];
        assert_eq!(
            ask(&events, Marketing, MAKRO, Whatsapp),
            (Reason::OptedOut, Some(1))
        );
    }

    fn rec(id: Option<&str>, at: &str) -> InboundRecord {
        InboundRecord {
            phone_number_id: id.map(str::to_owned),
            last_inbound_at: t(at),
        }
    }

    #[test]
    fn window_opens_for_24_hours_from_the_message() {
        let records = [rec(Some("A"), "2026-11-21T13:00:00Z")];
        let (w, certain) = window_for(&records, Some("A"), &[], t(NOW));
        assert!(w.open && certain);
        assert_eq!(w.closes_at, Some(t("2026-11-22T13:00:00Z")));
        let (w, _) = window_for(&records, Some("A"), &[], t("2026-11-22T13:00:00Z"));
        assert_eq!(w, Window::closed(Some("A".into())));
        let (w, _) = window_for(&records, Some("B"), &[], t(NOW));
        assert!(!w.open);
    }

    #[test]
    fn an_interaction_without_id_counts_for_every_id() {
        let records = [
            rec(None, "2026-11-22T10:00:00Z"),
            rec(Some("A"), "2026-11-22T09:00:00Z"),
        ];
        let (w, _) = window_for(&records, Some("B"), &[], t(NOW));
        assert!(w.open);
        assert_eq!(w.closes_at, Some(t("2026-11-23T10:00:00Z")));
        assert_eq!(w.business_phone_number_id.as_deref(), Some("B"));
    }

    #[test]
    fn without_a_named_id() {
        let records = [
            rec(Some("A"), "2026-11-22T09:00:00Z"),
            rec(Some("B"), "2026-11-22T10:00:00Z"),
        ];
        // The tenant's only id.
        let (w, certain) = window_for(&records, None, &["A".into()], t(NOW));
        assert_eq!(
            (w.open, w.business_phone_number_id.as_deref(), certain),
            (true, Some("A"), true)
        );
        // Several configured: the latest window of any, never certain.
        let (w, certain) = window_for(&records, None, &["A".into(), "B".into()], t(NOW));
        assert_eq!(
            (w.open, w.business_phone_number_id.as_deref(), certain),
            (true, Some("B"), false)
        );
        // None configured, several seen: same.
        let (_, certain) = window_for(&records, None, &[], t(NOW));
        assert!(!certain);
        // None configured, one seen: that one.
        let (w, certain) = window_for(&records[..1], None, &[], t(NOW));
        assert_eq!(
            (w.open, w.business_phone_number_id.as_deref(), certain),
            (true, Some("A"), true)
        );
        let (w, certain) = window_for(&[], None, &[], t(NOW));
        assert_eq!((w, certain), (Window::closed(None), true));
    }

    /// A closed window answers as if it had never opened, so deleting it
    /// (the housekeeping job) changes no decision.
    #[test]
    fn a_closed_window_has_no_effect() {
        let stale_a = rec(Some("A"), "2026-11-20T09:00:00Z");
        let open_b = rec(Some("B"), "2026-11-22T10:00:00Z");
        // A closed window of A does not make B uncertain.
        let (w, certain) = window_for(&[stale_a.clone(), open_b.clone()], None, &[], t(NOW));
        assert_eq!(
            (w.open, w.business_phone_number_id.as_deref(), certain),
            (true, Some("B"), true)
        );
        let cases: [&[InboundRecord]; 3] = [
            &[stale_a.clone(), open_b.clone()],
            std::slice::from_ref(&stale_a),
            &[
                stale_a.clone(),
                rec(None, "2026-11-19T00:00:00Z"),
                open_b.clone(),
            ],
        ];
        let configured: [&[String]; 3] =
            [&[], &["A".to_owned()], &["A".to_owned(), "B".to_owned()]];
        for records in cases {
            let purged: Vec<InboundRecord> = records
                .iter()
                .filter(|r| window_still_open(r.last_inbound_at, t(NOW)))
                .cloned()
                .collect();
            for ids in configured {
                for named in [None, Some("A"), Some("B")] {
                    assert_eq!(
                        window_for(records, named, ids, t(NOW)),
                        window_for(&purged, named, ids, t(NOW)),
                        "{records:?} {named:?} {ids:?}"
                    );
                }
            }
        }
    }

    /// Rule 1: an erased (suppressed) identity answers `opted_out` until an
    /// opt-in captured after its erasure; older opt-ins never count again.
    #[test]
    fn a_suppressed_identity_is_opted_out_until_a_later_opt_in() {
        let q = Question {
            purpose: Marketing,
            brand_id: MAKRO,
            channel: Whatsapp,
        };
        let erased = Some(t("2026-11-21T00:00:00Z"));
        // No subject at all: suppressed, so opted out (not no_opt_in).
        assert_eq!(
            decide(&[], q, None, Standing::suppressed(erased), t(NOW)).reason,
            Reason::OptedOut
        );
        assert_eq!(
            decide(&[], q, None, Standing::default(), t(NOW)).reason,
            Reason::NoOptIn
        );
        // An opt-in captured before (or at) the erasure is ignored.
        let before = [opt_in(
            1,
            "2026-11-21T00:00:00Z",
            &[Marketing],
            &[Whatsapp],
            MAKRO,
        )];
        let out = decide(&before, q, None, Standing::suppressed(erased), t(NOW));
        assert_eq!(
            (out.reason, out.consent.map(|e| e.seq)),
            (Reason::OptedOut, None)
        );
        // One captured after counts.
        let after = [opt_in(
            2,
            "2026-11-21T00:00:00.001Z",
            &[Marketing],
            &[Whatsapp],
            MAKRO,
        )];
        assert_eq!(
            decide(&after, q, None, Standing::suppressed(erased), t(NOW)).reason,
            Reason::Allowed
        );
        // Only opt-outs after it: opted out, resting on the opt-out.
        let outs = [opt_out(
            3,
            "2026-11-21T10:00:00Z",
            &[Marketing],
            &[Whatsapp],
        )];
        let out = decide(&outs, q, None, Standing::suppressed(erased), t(NOW));
        assert_eq!(
            (out.reason, out.consent.map(|e| e.seq)),
            (Reason::OptedOut, Some(3))
        );
    }

    /// Rule 1 counts only opt-ins that count: one awaiting confirmation, or
    /// whose code expired unconfirmed, does not end the suppression.
    #[test]
    fn after_an_erasure_only_a_counting_opt_in_ends_the_suppression() {
        let q = Question {
            purpose: Marketing,
            brand_id: MAKRO,
            channel: Whatsapp,
        };
        let erased = Standing::suppressed(Some(t("2026-11-21T00:00:00Z")));
        let mut pending = opt_in(4, "2026-11-21T10:00:00Z", &[Marketing], &[Whatsapp], MAKRO);
        pending.confirmation = Confirmation::Pending {
            expires_at: t("2026-11-22T10:00:00Z"),
        };
        let mut expired = pending.clone();
        expired.confirmation = Confirmation::Pending {
            expires_at: t("2026-11-21T11:00:00Z"),
        };
        for events in [[pending.clone()], [expired]] {
            assert_eq!(
                decide(&events, q, None, erased, t(NOW)).reason,
                Reason::OptedOut,
                "{events:?}"
            );
        }
        let mut confirmed = pending;
        confirmed.confirmation = Confirmation::Confirmed;
        assert_eq!(
            decide(&[confirmed], q, None, erased, t(NOW)).reason,
            Reason::Allowed
        );
    }

    /// Rule 2: a closed group answers `opted_out` on the opt-out that closed
    /// it, even when an opt-in was captured after the closing message.
    #[test]
    fn a_closed_group_rests_on_its_closing_opt_out_whatever_the_order() {
        let q = Question {
            purpose: Marketing,
            brand_id: MAKRO,
            channel: Whatsapp,
        };
        let events = [
            opt_in(1, "2026-11-20T10:00:00Z", &[Marketing], &[Whatsapp], MAKRO),
            opt_out(
                2,
                "2026-11-21T10:00:00Z",
                &Purpose::ALL,
                &MessageChannel::ALL,
            ),
            opt_in(3, "2026-11-21T10:00:01Z", &[Marketing], &[Whatsapp], MAKRO),
        ];
        let open = decide(&events, q, None, Standing::default(), t(NOW));
        assert_eq!(
            (open.reason, open.consent.map(|e| e.seq)),
            (Reason::Allowed, Some(3))
        );
        let closed = Standing {
            suppressed_at: None,
            closed: Some(Closure { by: Some(2) }),
            under_review: &[],
        };
        for purpose in Purpose::ALL {
            for channel in MessageChannel::ALL {
                let q = Question {
                    purpose,
                    brand_id: METRO,
                    channel,
                };
                let out = decide(&events, q, None, closed, t(NOW));
                assert_eq!(
                    (out.reason, out.consent.map(|e| e.seq)),
                    (Reason::OptedOut, Some(2))
                );
            }
        }
    }

    #[test]
    fn opted_out_of_everything_needs_every_purpose_and_channel() {
        let all = [opt_out(
            1,
            "2026-11-20T10:00:00Z",
            &Purpose::ALL,
            &MessageChannel::ALL,
        )];
        assert!(opted_out_of_everything(&all));
        assert!(!opted_out_of_everything(&[]));
        let marketing = [opt_out(
            1,
            "2026-11-20T10:00:00Z",
            &[Marketing],
            &MessageChannel::ALL,
        )];
        assert!(!opted_out_of_everything(&marketing));
        // A later opt-in of any brand reopens what it covers.
        let reopened = [
            all[0].clone(),
            opt_in(2, "2026-11-20T11:00:00Z", &[Utility], &[Sms], METRO),
        ];
        assert!(!opted_out_of_everything(&reopened));
        // A lifted opt-out no longer counts.
        let mut lifted = all[0].clone();
        lifted.lifted = true;
        assert!(!opted_out_of_everything(&[lifted]));
    }
}
