//! Evidence retention (docs/privacy.md): when a subject's evidence may be
//! deleted. `evidence_retention_days` counts from the later of the last
//! effective opt-out and the expiry of the last opt-in, and only once no
//! consent is current.

use super::decision::{decide, Confirmation, ConsentEvent, EventKind, Question, Reason, Standing};
use super::ids::BrandId;
use super::purpose::{MessageChannel, Purpose};
use super::time::Timestamp;

/// Whether any of the events' consents answers `allowed` now, for any
/// purpose, message channel and brand an opt-in names, or an opt-in still
/// waits for its confirmation.
pub fn consent_is_current(
    events: &[ConsentEvent],
    max_consent_age_days: Option<i64>,
    now: Timestamp,
) -> bool {
    events
        .iter()
        .filter(|e| e.kind == EventKind::OptIn)
        .any(|e| {
            if let Confirmation::Pending { expires_at } = e.confirmation {
                return now < expires_at;
            }
            let Some(brand_id) = e.brand_id else {
                return false;
            };
            asked_by(e, brand_id).any(|question| {
                decide(
                    events,
                    question,
                    max_consent_age_days,
                    Standing::default(),
                    now,
                )
                .reason
                    == Reason::Allowed
            })
        })
}

fn asked_by(event: &ConsentEvent, brand_id: BrandId) -> impl Iterator<Item = Question> + '_ {
    Purpose::ALL
        .iter()
        .filter(|&&p| event.purposes.contains(p))
        .flat_map(move |&purpose| {
            MessageChannel::ALL
                .iter()
                .filter(|&&c| event.message_channels.contains(c))
                .map(move |&channel| Question {
                    purpose,
                    brand_id,
                    channel,
                })
        })
}

/// From when retention counts for a subject: the later of its last
/// effective opt-out and the expiry of its last opt-in (an opt-in that
/// never expires by age ends only by an opt-out; one never confirmed ends
/// when its code expires). `None` while consent is current. A subject
/// whose events give neither (an opt-out that was lifted, alone) counts
/// from its last event.
pub fn retention_starts(
    events: &[ConsentEvent],
    max_consent_age_days: Option<i64>,
    now: Timestamp,
) -> Option<Timestamp> {
    if consent_is_current(events, max_consent_age_days, now) {
        return None;
    }
    let ends = events
        .iter()
        .filter_map(|e| match (e.kind, e.confirmation) {
            (EventKind::OptOut, _) if !e.lifted => Some(e.captured_at),
            (EventKind::OptOut, _) => None,
            (EventKind::OptIn, Confirmation::Pending { expires_at }) => Some(expires_at),
            (EventKind::OptIn, _) => max_consent_age_days.map(|days| e.captured_at.plus_days(days)),
        });
    ends.max()
        .or_else(|| events.iter().map(|e| e.captured_at).max())
}

/// Whether a subject's evidence is due for deletion at `now`.
pub fn retention_due(
    events: &[ConsentEvent],
    max_consent_age_days: Option<i64>,
    retention_days: i64,
    now: Timestamp,
) -> bool {
    retention_starts(events, max_consent_age_days, now)
        .is_some_and(|from| now >= from.plus_days(retention_days))
}

/// Whether a group's evidence is due for deletion at `now`: by its events,
/// or, for a group of links alone, `retention_days` after its last link's
/// `captured_at` (docs/privacy.md).
pub fn group_retention_due(
    events: &[ConsentEvent],
    last_link_at: Option<Timestamp>,
    max_consent_age_days: Option<i64>,
    retention_days: i64,
    now: Timestamp,
) -> bool {
    if events.is_empty() {
        return last_link_at.is_some_and(|at| now >= at.plus_days(retention_days));
    }
    retention_due(events, max_consent_age_days, retention_days, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::purpose::{CaptureChannel, PurposeSet};

    fn t(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn event(seq: u64, kind: EventKind, at: &str) -> ConsentEvent {
        ConsentEvent {
            seq,
            kind,
            captured_at: t(at),
            channel: CaptureChannel::Api,
            purposes: [Purpose::Marketing].into_iter().collect(),
            message_channels: [MessageChannel::Whatsapp].into_iter().collect(),
            brand_id: (kind == EventKind::OptIn).then_some(BrandId(1)),
            company_name_shown: None,
            confirmation: Confirmation::NotRequired,
            lifted: false,
        }
    }

    const NOW: &str = "2026-06-01T00:00:00Z";

    #[test]
    fn current_consent_is_never_due() {
        let events = [event(0, EventKind::OptIn, "2020-01-01T00:00:00Z")];
        assert_eq!(retention_starts(&events, None, t(NOW)), None);
        assert!(!retention_due(&events, None, 1, t(NOW)));
    }

    #[test]
    fn counts_from_the_last_effective_opt_out() {
        let events = [
            event(0, EventKind::OptIn, "2026-01-01T00:00:00Z"),
            event(1, EventKind::OptOut, "2026-02-01T00:00:00Z"),
        ];
        assert_eq!(
            retention_starts(&events, None, t(NOW)),
            Some(t("2026-02-01T00:00:00Z"))
        );
        assert!(retention_due(&events, None, 30, t("2026-03-03T00:00:00Z")));
        assert!(!retention_due(&events, None, 30, t("2026-03-02T23:59:59Z")));
        // A lifted opt-out brings the consent back: nothing is due.
        let mut lifted = events.clone();
        lifted[1].lifted = true;
        assert_eq!(retention_starts(&lifted, None, t(NOW)), None);
    }

    #[test]
    fn counts_from_the_expiry_of_the_last_opt_in_when_later() {
        // Opted in, then out, with a 365-day age: the expiry of the opt-in
        // (2027-01-01) is later than the opt-out.
        let events = [
            event(0, EventKind::OptIn, "2026-01-01T00:00:00Z"),
            event(1, EventKind::OptOut, "2026-02-01T00:00:00Z"),
        ];
        let later = t("2027-06-01T00:00:00Z");
        assert_eq!(
            retention_starts(&events, Some(365), later),
            Some(t("2027-01-01T00:00:00Z"))
        );
        // Expired by age alone: counts from the expiry, deletes nothing before.
        let expired = [event(0, EventKind::OptIn, "2025-01-01T00:00:00Z")];
        assert_eq!(
            retention_starts(&expired, Some(100), t(NOW)),
            Some(t("2025-04-11T00:00:00Z"))
        );
        assert!(!retention_due(&expired, Some(100), 500, t(NOW)));
        assert!(retention_due(&expired, Some(100), 400, t(NOW)));
    }

    #[test]
    fn a_pending_confirmation_keeps_and_then_counts_from_its_expiry() {
        let mut pending = event(0, EventKind::OptIn, "2026-05-31T00:00:00Z");
        pending.confirmation = Confirmation::Pending {
            expires_at: t("2026-06-01T00:00:00Z"),
        };
        assert_eq!(
            retention_starts(
                std::slice::from_ref(&pending),
                None,
                t("2026-05-31T12:00:00Z")
            ),
            None
        );
        assert_eq!(
            retention_starts(std::slice::from_ref(&pending), None, t(NOW)),
            Some(t(NOW))
        );
    }

    #[test]
    fn an_opt_out_without_any_opt_in_counts_from_itself() {
        let events = [event(3, EventKind::OptOut, "2026-02-01T00:00:00Z")];
        assert_eq!(
            retention_starts(&events, Some(30), t(NOW)),
            Some(t("2026-02-01T00:00:00Z"))
        );
        let mut lifted = events.clone();
        lifted[0].lifted = true;
        assert_eq!(
            retention_starts(&lifted, Some(30), t(NOW)),
            Some(t("2026-02-01T00:00:00Z"))
        );
    }

    #[test]
    fn another_brand_s_current_consent_keeps_the_subject() {
        let mut other = event(2, EventKind::OptIn, "2026-03-01T00:00:00Z");
        other.brand_id = Some(BrandId(2));
        other.purposes = [Purpose::Utility].into_iter().collect::<PurposeSet>();
        let events = [
            event(0, EventKind::OptIn, "2026-01-01T00:00:00Z"),
            event(1, EventKind::OptOut, "2026-02-01T00:00:00Z"),
            other,
        ];
        assert_eq!(retention_starts(&events, None, t(NOW)), None);
    }

    #[test]
    fn a_group_of_links_alone_counts_from_its_last_link() {
        let link = Some(t("2026-01-01T00:00:00.000Z"));
        let due = |now: &str| group_retention_due(&[], link, None, 30, t(now));
        assert!(!due("2026-01-30T23:59:59.999Z"));
        assert!(due("2026-01-31T00:00:00.000Z"));
        assert!(!group_retention_due(
            &[],
            None,
            None,
            30,
            t("2027-01-01T00:00:00.000Z")
        ));
        // With events, the events decide, whatever the links.
        let opted_in = [event(1, EventKind::OptIn, "2026-01-01T00:00:00.000Z")];
        assert!(!group_retention_due(
            &opted_in,
            link,
            None,
            30,
            t("2027-01-01T00:00:00.000Z")
        ));
    }
}
