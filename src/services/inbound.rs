//! Recording an inbound message (docs/messages.md): the delivery's dedup mark,
//! the window, and every entry it causes commit in one transaction under the
//! log's lock, or none do. What cannot be applied is kept as a dead letter
//! (`dead_letters.rs`). What a message means: `providers/message.rs`.

use super::error::ServiceResult;
use super::links::{close_group, link};
use super::recording::{self, record_opt_in, Door};
use crate::domain::access::TenantId;
use crate::domain::confirmation;
use crate::domain::evidence::Evidence;
use crate::domain::identity::Identity;
use crate::domain::policy::AmbiguousMode;
use crate::domain::purpose::CaptureChannel;
use crate::domain::purpose::PurposeSet;
use crate::domain::record::OptInDraft;
use crate::domain::record::{ConfirmRecord, LiftClass, LiftRecord, Record};
use crate::domain::text::is_readable_text;
use crate::domain::time::Timestamp;
use crate::domain::vocabulary::Heard;
use crate::keys::confirmation_code_hash;
use crate::keys::random_bytes;
use crate::keys::MasterKey;
use crate::providers::message::{
    intent, keyword_opt_out, marketing_stop, message_evidence, message_letter, opt_out_purposes,
    preference_evidence, preference_letter, InboundMessage, Intent, Outcome, PreferenceChange,
    Provider, PROVIDER_CLOCK_SKEW_MILLIS,
};
use crate::providers::settings::{OptInMatch, StoredSettings};
use crate::providers::whatsapp_payload::Content;
use crate::store::append::Appended;
use crate::store::channels;
use crate::store::connection::lock_log;
use crate::store::consent::{confirmable_opt_ins, liftable_opt_outs, record_inbound};
use crate::store::dead_letters::{keep, Letter};
use crate::store::links::{contradicts_link, Source};
use crate::store::reviews::{self, seal_message, NewReview, ReviewMessage};
use crate::store::subjects::{current_or_new_subject, current_subject, newest_subject, SubjectRow};
use crate::store::tenants::find_tenant;
use crate::store::tenants::TenantRow;
use crate::store::DbConn;

/// Links the identities a signed WhatsApp message pairs (docs/identities.md),
/// first closing every group the pairing shows changed hands: a number or
/// user id linked, through this WhatsApp Business Account, to another
/// identity of the kind it now arrives with.
fn link_sender(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    message: &InboundMessage,
    captured_at: Timestamp,
    now: Timestamp,
) -> ServiceResult<Vec<u64>> {
    let pairs = message.sender.pairs();
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let waba = message.waba.as_deref().unwrap_or("");
    let evidence = message_evidence(message);
    let source = Source {
        waba,
        captured_at,
        evidence: &evidence,
        collector: message.provider.collector(),
    };
    let mut seqs = Vec::new();
    for (a, b) in &pairs {
        for (arrived, other) in [(a, b), (b, a)] {
            if contradicts_link(conn, tenant, arrived, other, waba)? {
                seqs.extend(close_group(conn, master, tenant, arrived, &source, now)?);
            }
        }
    }
    for (a, b) in &pairs {
        seqs.extend(link(conn, master, tenant, (a, b), &source, now)?);
    }
    Ok(seqs)
}

/// What every message from a known identity does before what it asks
/// for: on WhatsApp, its pairs link; it arrives on its subject (a new one
/// when its group is closed, docs/identities.md) and, on WhatsApp, opens that
/// subject's window; then it confirms what its codes confirm.
fn arrive(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    carrier: (&InboundMessage, &Identity, Timestamp),
    now: Timestamp,
) -> ServiceResult<Vec<u64>> {
    let (message, identity, captured_at) = carrier;
    let mut seqs = Vec::new();
    if message.provider == Provider::WhatsApp {
        seqs.extend(link_sender(
            conn,
            master,
            tenant,
            message,
            captured_at,
            now,
        )?);
    }
    let subject = arrival_subject(conn, master, tenant, message.provider, identity, now)?;
    if let (Provider::WhatsApp, Some(subject)) = (message.provider, subject) {
        let business = Some(message.business.as_str());
        record_inbound(conn, tenant, subject.id, business, captured_at)?;
    }
    seqs.extend(confirm_codes(
        conn,
        master,
        tenant,
        (message, captured_at),
        now,
    )?);
    Ok(seqs)
}

/// The subject an arriving identity's message is recorded on: its open
/// subject; a new one when its newest subject's group is closed (any
/// arrival starts a new subject, docs/identities.md) or, on WhatsApp, when it
/// has none (the window it opens belongs to a subject). `None`: an SMS
/// from an identity the tenant does not hold.
fn arrival_subject(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    provider: Provider,
    identity: &Identity,
    now: Timestamp,
) -> ServiceResult<Option<SubjectRow>> {
    let identity = identity.as_str();
    if let Some(open) = current_subject(conn, tenant, identity)? {
        return Ok(Some(open));
    }
    let starts = provider == Provider::WhatsApp
        || newest_subject(conn, master, tenant, identity)?.is_some_and(|s| s.is_closed());
    if !starts {
        return Ok(None);
    }
    Ok(Some(current_or_new_subject(
        conn,
        master,
        tenant,
        identity,
        now.millis(),
    )?))
}

/// Confirms the opt-ins that wait for a code the message carries (docs/pages.md), of each identity the message carries (its number, its user
/// id, its parent id): one `confirmation` entry each, the message as
/// evidence. An opt-in is confirmed only by a message that carries its own
/// identity: by number, never by a message with only a linked user id; by
/// user id, by a message with that user id, with or without a number.
fn confirm_codes(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    (message, captured_at): (&InboundMessage, Timestamp),
    now: Timestamp,
) -> ServiceResult<Vec<u64>> {
    let text = match &message.content {
        Content::Text { body, .. } => body,
        Content::Button { payload, .. } => payload,
        Content::Other => return Ok(Vec::new()),
    };
    let codes = confirmation::candidates(text);
    if codes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes: Vec<String> = codes
        .iter()
        .map(|code| confirmation_code_hash(master, tenant, code))
        .collect();
    let mut seqs = Vec::new();
    for identity in message.sender.identities() {
        let Some(subject) = current_subject(conn, tenant, identity.as_str())? else {
            continue;
        };
        let at = captured_at.millis();
        for confirms in confirmable_opt_ins(conn, subject.id, &hashes, at)? {
            let record = Record::Confirm(ConfirmRecord {
                identity: identity.clone(),
                channel: message.provider.capture_channel(),
                captured_at,
                evidence: message_evidence(message),
                confirms,
            });
            let collector = message.provider.collector();
            seqs.extend(seqs_of(recording::append_unless_suppressed(
                conn, master, tenant, collector, &record, now,
            )?));
        }
    }
    Ok(seqs)
}

/// Records WhatsApp's `user_changed_number` or `user_changed_user_id`: the
/// group of the identity it arrived from is closed (an opt-out of
/// everything, the message as evidence with `system`), and nothing more.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn record_change(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    message: &InboundMessage,
    system: &str,
    now: Timestamp,
) -> ServiceResult<Outcome> {
    conn.immediate_transaction(|conn| -> ServiceResult<Outcome> {
        lock_log(conn, tenant)?;
        let key = master.keyed_hash(tenant, &[message.provider.as_str(), &message.message_id]);
        if !channels::first_delivery(conn, tenant, &key, now.millis())? {
            return Ok(Outcome::Duplicate);
        }
        let Some(identity) = message.sender.recorded_on() else {
            return Ok(Outcome::Recorded { seqs: Vec::new() });
        };
        let captured_at = message
            .captured_at
            .filter(|at| *at <= now.plus_millis(PROVIDER_CLOCK_SKEW_MILLIS))
            .unwrap_or(now);
        let evidence = message_evidence(message).with("system", system);
        let source = Source {
            waba: message.waba.as_deref().unwrap_or(""),
            captured_at,
            evidence: &evidence,
            collector: message.provider.collector(),
        };
        let seqs = close_group(conn, master, tenant, &identity, &source, now)?;
        Ok(Outcome::Recorded {
            seqs: seqs.into_iter().collect(),
        })
    })
}

/// What a message means under the tenant's languages and settings.
fn intent_of<'s>(
    tenant: &TenantRow,
    settings: &'s StoredSettings,
    message: &InboundMessage,
) -> Intent<'s> {
    let languages = tenant.policy.languages;
    intent(message.provider, &message.content, settings, languages)
}

/// What a message withdraws, and how it was heard: what a dead letter
/// keeps of an opt-out until it can be applied.
pub fn withdrawn(
    tenant: &TenantRow,
    settings: &StoredSettings,
    message: &InboundMessage,
) -> Option<(PurposeSet, Heard)> {
    intent_of(tenant, settings, message).withdrawn(settings, tenant.policy.reviews_first())
}

/// Records one inbound message: dedup, window, and what it means. `now`
/// is the server's clock.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant_row.id))]
pub fn record_message(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant_row: &TenantRow,
    settings: &StoredSettings,
    message: &InboundMessage,
    now: Timestamp,
) -> ServiceResult<Outcome> {
    let tenant = &tenant_row.id;
    let intent = intent_of(tenant_row, settings, message);
    let withdrawn = intent.withdrawn(settings, tenant_row.policy.reviews_first());
    conn.immediate_transaction(|conn| -> ServiceResult<Outcome> {
        // The log first: the rows written below reference the tenant, and
        // on PostgreSQL that share lock taken before the log's would
        // deadlock with another writer of this log.
        lock_log(conn, tenant)?;
        let key = master.keyed_hash(tenant, &[message.provider.as_str(), &message.message_id]);
        if !channels::first_delivery(conn, tenant, &key, now.millis())? {
            return Ok(Outcome::Duplicate);
        }
        let letter = |reason: &'static str| Letter {
            provider: message.provider,
            reason,
            business: Some(&message.business),
            payload: message_letter(message, withdrawn),
            waits_for: None,
        };
        // A provider clock ahead of ours, or no readable time at all: an
        // opt-out (or a plain message) counts from now rather than not at
        // all; what restores consent waits for an admin.
        let captured_at = match message.captured_at {
            Some(at) if at <= now.plus_millis(PROVIDER_CLOCK_SKEW_MILLIS) => at,
            unusable => {
                if matches!(intent, Intent::OptIn(_) | Intent::Lift) {
                    let reason = match unusable {
                        Some(_) => "timestamp_in_future",
                        None => "invalid_timestamp",
                    };
                    return Ok(keep(conn, master, tenant, letter(reason), now)?);
                }
                now
            }
        };
        let Some(identity) = message.sender.recorded_on() else {
            if withdrawn.is_some() {
                return Ok(keep(conn, master, tenant, letter("unknown_sender"), now)?);
            }
            return Ok(Outcome::Recorded { seqs: Vec::new() });
        };
        let carrier = (message, &identity, captured_at);
        let mut seqs = arrive(conn, master, tenant, carrier, now)?;
        let arrival = Arrival {
            message,
            identity,
            captured_at,
        };
        match record_intent(conn, master, (tenant_row, settings), &arrival, &intent, now)? {
            Ok(more) => {
                seqs.extend(more);
                Ok(Outcome::Recorded { seqs })
            }
            Err(reason) => Ok(keep(conn, master, tenant, letter(reason), now)?),
        }
    })
}

/// A message whose sender and time are known.
struct Arrival<'a> {
    message: &'a InboundMessage,
    identity: Identity,
    captured_at: Timestamp,
}

/// Appends what a message asks for; `Err` names why it must be kept as a
/// dead letter instead.
fn record_intent(
    conn: &mut DbConn,
    master: &MasterKey,
    (tenant_row, settings): (&TenantRow, &StoredSettings),
    arrival: &Arrival<'_>,
    intent: &Intent<'_>,
    now: Timestamp,
) -> ServiceResult<Result<Vec<u64>, &'static str>> {
    let tenant = &tenant_row.id;
    let provider = arrival.message.provider;
    let collector = provider.collector();
    let evidence = message_evidence(arrival.message);
    let identity = arrival.identity.clone();
    let seqs = match intent {
        Intent::OptOut { full, heard } => {
            let purposes = opt_out_purposes(*full, settings);
            let evidence = heard_evidence(evidence, heard);
            let opt_out =
                keyword_opt_out(provider, identity, purposes, arrival.captured_at, evidence);
            seqs_of(recording::append_unless_suppressed(
                conn, master, tenant, collector, &opt_out, now,
            )?)
        }
        Intent::Ambiguous(heard) => {
            let purposes = opt_out_purposes(false, settings);
            let ambiguous = Ambiguous {
                arrival,
                heard,
                purposes,
            };
            match tenant_row.policy.ambiguous {
                AmbiguousMode::OptOut => opt_out_for_review(conn, master, tenant, &ambiguous, now)?,
                AmbiguousMode::Review => {
                    hold_for_review(conn, master, tenant, &ambiguous, now)?;
                    Vec::new()
                }
            }
        }
        Intent::Lift => {
            let lift = Lift {
                class: LiftClass::Keyword,
                channel: provider.capture_channel(),
                captured_at: arrival.captured_at,
                evidence,
            };
            lift_opt_outs(conn, master, tenant, collector, &identity, &lift, now)?
        }
        Intent::OptIn(m) => {
            if !is_readable_text(&m.prompt) {
                // Saved before prompts were checked: it cannot be a consent text.
                return Ok(Err("unreadable_prompt"));
            }
            // An entry point's phrase names it: which poster, package or receipt.
            let evidence = match &m.entry_point {
                Some(id) => evidence.with("entry_point", id),
                None => evidence,
            };
            let opt_in = OptInFromMessage {
                matched: m,
                provider,
                identity,
                captured_at: arrival.captured_at,
                evidence,
            };
            record_message_opt_in(conn, master, tenant, &opt_in, now)?
        }
        Intent::Nothing => Vec::new(),
    };
    Ok(Ok(seqs))
}

/// An ambiguous message: a keyword among other words, and no phrase.
struct Ambiguous<'a> {
    arrival: &'a Arrival<'a>,
    heard: &'a Heard,
    /// What it withdraws (the tenant's partial opt-out purposes).
    purposes: PurposeSet,
}

impl Ambiguous<'_> {
    /// The evidence an opt-out of it carries.
    fn evidence(&self) -> Evidence {
        heard_evidence(message_evidence(self.arrival.message), self.heard)
    }

    /// What its review item keeps sealed.
    fn sealed(&self, master: &MasterKey, tenant: &TenantId) -> String {
        let text = match &self.arrival.message.content {
            Content::Text { body, .. } => body.clone(),
            Content::Button { payload, .. } => payload.clone(),
            Content::Other => String::new(),
        };
        let message = ReviewMessage {
            text,
            identity: self.arrival.identity.as_str().to_owned(),
            provider: self.arrival.message.provider.as_str().to_owned(),
            evidence: self.evidence().fields().clone(),
        };
        seal_message(master, tenant, &message)
    }
}

/// The message's evidence with how its opt-out was heard (docs/messages.md:
/// `rule`, `language`, `vocabulary_version`).
fn heard_evidence(evidence: Evidence, heard: &Heard) -> Evidence {
    heard
        .evidence()
        .into_iter()
        .fold(evidence, |e, (key, value)| e.with(key, value))
}

/// Mode `opt_out`: an ambiguous message is an opt-out of the partial
/// purposes, listed for review under its seq (unless its identity is
/// erased and nothing is recorded).
fn opt_out_for_review(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    ambiguous: &Ambiguous<'_>,
    now: Timestamp,
) -> ServiceResult<Vec<u64>> {
    let arrival = ambiguous.arrival;
    let provider = arrival.message.provider;
    let opt_out = keyword_opt_out(
        provider,
        arrival.identity.clone(),
        ambiguous.purposes,
        arrival.captured_at,
        ambiguous.evidence(),
    );
    let seqs = seqs_of(recording::append_unless_suppressed(
        conn,
        master,
        tenant,
        provider.collector(),
        &opt_out,
        now,
    )?);
    if let Some(seq) = seqs.first() {
        let id = seq.to_string();
        let item = (id.as_str(), AmbiguousMode::OptOut, Some(*seq));
        keep_review(conn, master, tenant, ambiguous, item, now)?;
    }
    Ok(seqs)
}

/// An ambiguous message kept as a dead letter (its business number was not
/// the tenant's) and applied since as an opt-out at `seq`: listed for
/// review under that seq, as if it had been recorded on arrival.
pub fn list_applied_ambiguous(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    ((message, identity, captured_at), heard, purposes): (
        (&InboundMessage, Identity, Timestamp),
        Heard,
        PurposeSet,
    ),
    seq: u64,
    now: Timestamp,
) -> ServiceResult<()> {
    let arrival = Arrival {
        message,
        identity,
        captured_at,
    };
    let ambiguous = Ambiguous {
        arrival: &arrival,
        heard: &heard,
        purposes,
    };
    let id = seq.to_string();
    let item = (id.as_str(), AmbiguousMode::OptOut, Some(seq));
    keep_review(conn, master, tenant, &ambiguous, item, now).map(|_| ())
}

/// Mode `review`: an ambiguous message records nothing; it is listed for
/// review under a new `rev_` id, and checks answer `under_review` until it
/// is settled.
fn hold_for_review(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    ambiguous: &Ambiguous<'_>,
    now: Timestamp,
) -> ServiceResult<()> {
    let id = format!("rev_{}", hex::encode(random_bytes::<6>()));
    let item = (id.as_str(), AmbiguousMode::Review, None);
    if keep_review(conn, master, tenant, ambiguous, item, now)? {
        reviews::mark_held(conn, tenant)?;
    }
    Ok(())
}

/// Keeps a review item on the sender's current subject; nothing (`false`)
/// for an SMS from an identity the tenant does not hold (it has no consent
/// a review could protect, and no subject is made to keep its number).
fn keep_review(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    ambiguous: &Ambiguous<'_>,
    (id, mode, opt_out_seq): (&str, AmbiguousMode, Option<u64>),
    now: Timestamp,
) -> ServiceResult<bool> {
    let identity = ambiguous.arrival.identity.as_str();
    let Some(subject) = current_subject(conn, tenant, identity)? else {
        return Ok(false);
    };
    let sealed = ambiguous.sealed(master, tenant);
    let item = NewReview {
        id,
        mode: mode.as_str(),
        subject: subject.id,
        group: subject.group_id,
        opt_out_seq,
        purposes: ambiguous.purposes.bits(),
        captured_at: ambiguous.arrival.captured_at.millis(),
        received_at: now.millis(),
        message_sealed: &sealed,
    };
    reviews::insert(conn, tenant, item)?;
    tracing::info!(
        review = id,
        mode = mode.as_str(),
        "an ambiguous message is listed for review"
    );
    Ok(true)
}

/// The seqs an append gave (none when it recorded nothing).
fn seqs_of(appended: Option<Appended>) -> Vec<u64> {
    appended.into_iter().map(|a| a.seq).collect()
}

/// What a lifting message carries.
struct Lift {
    class: LiftClass,
    channel: CaptureChannel,
    captured_at: Timestamp,
    evidence: Evidence,
}

/// Lifts every effective opt-out of that class, channel and earlier time:
/// one `opt_out_lifted` entry each, in seq order.
fn lift_opt_outs(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    collector: &str,
    identity: &Identity,
    lift: &Lift,
    now: Timestamp,
) -> ServiceResult<Vec<u64>> {
    let mut seqs = Vec::new();
    let liftable = liftable_opt_outs(
        conn,
        tenant,
        identity.as_str(),
        lift.class,
        lift.channel,
        lift.captured_at.millis(),
    )?;
    for lifts in liftable {
        let record = Record::Lift(LiftRecord {
            identity: identity.clone(),
            channel: lift.channel,
            captured_at: lift.captured_at,
            evidence: lift.evidence.clone(),
            lifts,
        });
        seqs.extend(seqs_of(recording::append_unless_suppressed(
            conn, master, tenant, collector, &record, now,
        )?));
    }
    Ok(seqs)
}

/// An opt-in a message matched.
struct OptInFromMessage<'a> {
    matched: &'a OptInMatch,
    provider: Provider,
    identity: Identity,
    captured_at: Timestamp,
    evidence: Evidence,
}

/// Records a matched opt-in through the one recording path
/// (`recording::record_opt_in`): a message that the rules refuse (a brand
/// retired since the match was saved, a message older than 30 days, an
/// identity erased after it was written) records nothing.
fn record_message_opt_in(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    opt_in: &OptInFromMessage<'_>,
    now: Timestamp,
) -> ServiceResult<Vec<u64>> {
    let m = opt_in.matched;
    let Some(row) = find_tenant(conn, tenant)? else {
        return Ok(Vec::new());
    };
    let message_channels = match &m.message_channels {
        Some(list) => list.iter().copied().collect(),
        None => [opt_in.provider.message_channel()].into_iter().collect(),
    };
    let draft = OptInDraft {
        identity: opt_in.identity.clone(),
        channel: opt_in.provider.capture_channel(),
        company_name_shown: m.brand.clone(),
        consent_text: m.prompt.clone(),
        purposes: m.purposes.iter().copied().collect(),
        message_channels,
        captured_at: opt_in.captured_at,
        language: None,
        backfill: false,
        evidence: opt_in.evidence.clone(),
    };
    let door = Door::Message {
        provider: opt_in.provider,
    };
    match record_opt_in(conn, master, &row, (draft, door), None, now) {
        Ok(recorded) => Ok(vec![recorded.appended.seq]),
        Err(refused) if refused.is_refusal() => {
            let code = refused.refusal_code().unwrap_or_default();
            tracing::info!(tenant = %tenant, refused = %code, "an opt-in by message the rules refuse: nothing recorded");
            Ok(Vec::new())
        }
        Err(failed) => Err(failed),
    }
}

/// Records WhatsApp's marketing stop (an opt-out of marketing on WhatsApp)
/// or resume (lifts every effective stop of that kind).
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn record_preference(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    dedup: &[&str],
    change: &PreferenceChange,
    now: Timestamp,
) -> ServiceResult<Outcome> {
    let value = if change.stop { "stop" } else { "resume" };
    conn.immediate_transaction(|conn| -> ServiceResult<Outcome> {
        lock_log(conn, tenant)?; // first, as in record_message
        let key = master.keyed_hash(tenant, dedup);
        if !channels::first_delivery(conn, tenant, &key, now.millis())? {
            return Ok(Outcome::Duplicate);
        }
        let letter = |reason: &'static str| Letter {
            provider: Provider::WhatsApp,
            reason,
            business: Some(&change.business),
            payload: preference_letter(change, Some(change.captured_at)),
            waits_for: None,
        };
        let mut captured_at = change.captured_at;
        if captured_at > now.plus_millis(PROVIDER_CLOCK_SKEW_MILLIS) {
            if !change.stop {
                return Ok(keep(
                    conn,
                    master,
                    tenant,
                    letter("timestamp_in_future"),
                    now,
                )?);
            }
            captured_at = now;
        }
        let Some(identity) = change.sender.recorded_on() else {
            if change.stop {
                return Ok(keep(conn, master, tenant, letter("unknown_sender"), now)?);
            }
            return Ok(Outcome::Recorded { seqs: Vec::new() });
        };
        let collector = Provider::WhatsApp.collector();
        let evidence = preference_evidence(&change.business, value);
        let seqs = if change.stop {
            let record = marketing_stop(identity, captured_at, evidence);
            seqs_of(recording::append_unless_suppressed(
                conn, master, tenant, collector, &record, now,
            )?)
        } else {
            let lift = Lift {
                class: LiftClass::MarketingPreference,
                channel: CaptureChannel::Whatsapp,
                captured_at,
                evidence,
            };
            lift_opt_outs(conn, master, tenant, collector, &identity, &lift, now)?
        };
        Ok(Outcome::Recorded { seqs })
    })
}

#[cfg(test)]
mod tests {
    use crate::keys::MasterKey;

    #[test]
    fn dedup_keys_are_keyed_per_tenant() {
        let master = MasterKey::from_bytes([1; 32]);
        let a = master.keyed_hash("a", &["whatsapp", "wamid.1"]);
        assert_eq!(a, master.keyed_hash("a", &["whatsapp", "wamid.1"]));
        assert_ne!(a, master.keyed_hash("b", &["whatsapp", "wamid.1"]));
        assert_ne!(a, master.keyed_hash("a", &["twilio", "wamid.1"]));
        assert_ne!(
            a,
            MasterKey::from_bytes([2; 32]).keyed_hash("a", &["whatsapp", "wamid.1"])
        );
        assert!(!a.contains("wamid"));
    }
}
