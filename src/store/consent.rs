//! Reads of the consent state (what checks use), the customer-service
//! windows, subjects' histories and entries with their openings.

use super::channels::whatsapp_phone_number_ids;
use super::schema::{
    consent_events, consent_texts, entries, identity_links, legacy_windows, subjects, windows,
};
use super::subjects::{current_or_new_subject, group_members, newest_subject_by_hash, SubjectRow};
use super::{DbConn, StoreError, StoreResult};
use crate::domain::access::TenantId;
use crate::domain::decision::{
    self, Closure, Confirmation, ConsentEvent, EventKind, InboundRecord, Window,
};
use crate::domain::ids::{BrandId, GroupId, SubjectId};
use crate::domain::purpose::{CaptureChannel, MessageChannelSet, PurposeSet};
use crate::domain::record::LiftClass;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::ledger::entry::{EvidenceOpening, Openings, SubjectOpening};
use diesel::prelude::*;
use std::collections::HashMap;

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = consent_events)]
struct ConsentEventRow {
    seq: i64,
    kind: String,
    captured_at: i64,
    channel: String,
    purposes: i32,
    message_channels: i32,
    brand_id: Option<i64>,
    company_name_shown: Option<String>,
    confirmation_required: bool,
    confirmation_expires_at: Option<i64>,
    confirmed_by: Option<i64>,
    lifted_by: Option<i64>,
}

impl ConsentEventRow {
    fn into_event(self) -> ConsentEvent {
        let confirmation = match (self.confirmation_required, self.confirmed_by) {
            (false, _) => Confirmation::NotRequired,
            (true, Some(_)) => Confirmation::Confirmed,
            (true, None) => Confirmation::Pending {
                expires_at: Timestamp::from_millis(self.confirmation_expires_at.unwrap_or(0)),
            },
        };
        ConsentEvent {
            seq: self.seq as u64,
            kind: if self.kind == "opt_in" {
                EventKind::OptIn
            } else {
                EventKind::OptOut
            },
            captured_at: Timestamp::from_millis(self.captured_at),
            channel: CaptureChannel::parse(&self.channel).unwrap_or(CaptureChannel::Api),
            purposes: PurposeSet::from_bits(self.purposes),
            message_channels: MessageChannelSet::from_bits(self.message_channels),
            brand_id: self.brand_id.map(BrandId),
            company_name_shown: self.company_name_shown,
            confirmation,
            lifted: self.lifted_by.is_some(),
        }
    }
}

/// What a decision about one identity reads (docs/decisions.md): the group
/// that answers for it (its newest subject, open, closed or erased), the
/// group's identities, its subjects and its opt-ins and opt-outs.
#[derive(Debug, Default)]
pub struct IdentityState {
    /// The identity's newest subject, whatever its state.
    pub subject: Option<SubjectRow>,
    /// Every identity of the group (the one asked when it has no subject
    /// or its newest subject is erased).
    pub identities: Vec<String>,
    /// The subjects of the group whose windows count: none while the
    /// group is closed or erased.
    pub window_subjects: Vec<SubjectId>,
    /// The group's events; none once erased.
    pub events: Vec<ConsentEvent>,
}

impl IdentityState {
    /// Rule 2 of the decision: the group is closed, resting on this opt-out.
    pub fn closure(&self) -> Option<Closure> {
        self.subject
            .as_ref()
            .filter(|s| s.is_closed())
            .map(|s| closure_of(s.closed_seq, &self.events))
    }

    /// The group that answers for the identity, unless its newest subject
    /// is erased (then it answers as an unknown identity).
    pub fn live_subject(&self) -> Option<&SubjectRow> {
        self.subject.as_ref().filter(|s| !s.is_erased())
    }
}

/// The closure of a closed group: its stored closing opt-out, or (for a
/// group an older version closed without saying which) its latest opt-out
/// of everything.
fn closure_of(closed_seq: Option<i64>, events: &[ConsentEvent]) -> Closure {
    let by = closed_seq.map(|seq| seq as u64).or_else(|| {
        events
            .iter()
            .filter(|e| {
                e.kind == EventKind::OptOut
                    && e.purposes == PurposeSet::all()
                    && e.message_channels == MessageChannelSet::all()
            })
            .map(|e| e.seq)
            .max()
    });
    Closure { by }
}

/// Reads [`IdentityState`]: a few indexed lookups, no walk over links.
/// `identity_hash` is the identity's keyed hash (`MasterKey::identity_hasher`).
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn identity_state(
    conn: &mut DbConn,
    tenant: &TenantId,
    identity: &str,
    identity_hash: &str,
) -> QueryResult<IdentityState> {
    let subject = match newest_subject_by_hash(conn, tenant, identity_hash)? {
        Some(live) if !live.is_erased() => live,
        erased_or_none => {
            return Ok(IdentityState {
                subject: erased_or_none,
                identities: vec![identity.to_owned()],
                window_subjects: Vec::new(),
                events: Vec::new(),
            })
        }
    };
    let members = group_members(conn, subject.group_id)?;
    let events = group_events(conn, subject.group_id)?;
    let window_subjects = match subject.is_closed() {
        true => Vec::new(),
        false => members.iter().map(|m| m.id).collect(),
    };
    Ok(IdentityState {
        subject: Some(subject),
        identities: members.into_iter().filter_map(|m| m.identity).collect(),
        window_subjects,
        events,
    })
}

/// The opt-ins and opt-outs of a group, by its id.
pub fn group_events(conn: &mut DbConn, group_id: GroupId) -> QueryResult<Vec<ConsentEvent>> {
    let rows: Vec<ConsentEventRow> = crate::all_rows!(
        conn,
        consent_events::table
            .filter(consent_events::group_id.eq(group_id))
            .select(ConsentEventRow::as_select())
    )?;
    Ok(rows.into_iter().map(ConsentEventRow::into_event).collect())
}

/// How many values one `IN (…)` list names (well under SQLite's limit of
/// bound parameters).
const MANY: usize = 900;

/// The consent state of many identities at once (a batch check), keyed by
/// the identity asked: its group's events, its group's inbound records, its
/// group's identities and whether the group is closed. A few queries per
/// 900 identities.
#[derive(Debug, Default)]
pub struct ManyIdentities {
    pub events: HashMap<String, Vec<ConsentEvent>>,
    pub inbound: HashMap<String, Vec<InboundRecord>>,
    /// The identities of each asked identity's group (absent: only itself).
    pub members: HashMap<String, Vec<String>>,
    /// The asked identities whose group is closed.
    pub closed: HashMap<String, Closure>,
    /// Each asked identity's open group.
    pub groups: HashMap<String, GroupId>,
}

/// An identity's newest subject, as a batch reads it.
struct Newest {
    group_id: GroupId,
    closed: Option<Option<i64>>,
}

/// Reads [`ManyIdentities`] for `asked` (de-duplicated by the caller or
/// not), `hashes` their keyed hashes in the same order
/// (`MasterKey::identity_hasher`: the caller hashes each identity once).
pub fn many_identities(
    conn: &mut DbConn,
    tenant: &TenantId,
    asked: &[&str],
    hashes: &[String],
) -> QueryResult<ManyIdentities> {
    assert_eq!(asked.len(), hashes.len(), "one hash per identity asked");
    let mut out = ManyIdentities::default();
    for (chunk, hashes) in asked.chunks(MANY).zip(hashes.chunks(MANY)) {
        let newest = newest_of_hashes(conn, tenant, hashes)?;
        let mut groups: Vec<GroupId> = newest.values().map(|n| n.group_id).collect();
        groups.sort_unstable();
        groups.dedup();
        let mut events_of: HashMap<GroupId, Vec<ConsentEvent>> = HashMap::new();
        let mut members_of: HashMap<GroupId, Vec<(SubjectId, Option<String>)>> = HashMap::new();
        for part in groups.chunks(MANY) {
            let rows: Vec<(GroupId, ConsentEventRow)> = crate::all_rows!(
                conn,
                consent_events::table
                    .filter(consent_events::group_id.eq_any(part))
                    .select((consent_events::group_id, ConsentEventRow::as_select()))
            )?;
            for (group, row) in rows {
                events_of.entry(group).or_default().push(row.into_event());
            }
            let members: Vec<(GroupId, SubjectId, Option<String>)> = crate::all_rows!(
                conn,
                subjects::table
                    .filter(subjects::group_id.eq_any(part))
                    .filter(subjects::erased_at.is_null())
                    .select((subjects::group_id, subjects::id, subjects::identity))
            )?;
            for (group, id, identity) in members {
                members_of.entry(group).or_default().push((id, identity));
            }
        }
        let inbound_of = windows_of_open_groups(conn, newest.values(), &members_of)?;
        for (identity, hash) in chunk.iter().zip(hashes) {
            let Some(found) = newest.get(hash) else {
                continue;
            };
            let events = events_of.get(&found.group_id).cloned().unwrap_or_default();
            let members = members_of.get(&found.group_id).cloned().unwrap_or_default();
            if let Some(closed_seq) = found.closed {
                out.closed
                    .insert((*identity).to_owned(), closure_of(closed_seq, &events));
            } else {
                out.groups.insert((*identity).to_owned(), found.group_id);
                let records: Vec<InboundRecord> = members
                    .iter()
                    .filter_map(|(id, _)| inbound_of.get(id))
                    .flatten()
                    .cloned()
                    .collect();
                if !records.is_empty() {
                    out.inbound.insert((*identity).to_owned(), records);
                }
            }
            if !events.is_empty() {
                out.events.insert((*identity).to_owned(), events);
            }
            let identities: Vec<String> = members.into_iter().filter_map(|(_, i)| i).collect();
            if identities.len() > 1 || identities.first().is_some_and(|m| m != identity) {
                out.members.insert((*identity).to_owned(), identities);
            }
        }
    }
    Ok(out)
}

/// The windows of the members of these newest subjects' groups, by
/// subject: windows count only for open groups.
fn windows_of_open_groups<'n>(
    conn: &mut DbConn,
    newest: impl Iterator<Item = &'n Newest>,
    members_of: &HashMap<GroupId, Vec<(SubjectId, Option<String>)>>,
) -> QueryResult<HashMap<SubjectId, Vec<InboundRecord>>> {
    let mut window_subjects: Vec<SubjectId> = newest
        .filter(|n| n.closed.is_none())
        .filter_map(|n| members_of.get(&n.group_id))
        .flatten()
        .map(|(id, _)| *id)
        .collect();
    window_subjects.sort_unstable();
    window_subjects.dedup();
    let mut inbound_of: HashMap<SubjectId, Vec<InboundRecord>> = HashMap::new();
    for part in window_subjects.chunks(MANY) {
        for (subject, record) in window_rows(conn, part)? {
            inbound_of.entry(subject).or_default().push(record);
        }
    }
    Ok(inbound_of)
}

/// The newest subject of each keyed hash that is not erased (an erased
/// newest subject answers as an unknown identity): hash → its group.
fn newest_of_hashes(
    conn: &mut DbConn,
    tenant: &TenantId,
    hashes: &[String],
) -> QueryResult<HashMap<String, Newest>> {
    type Row = (
        Option<String>,
        GroupId,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let rows: Vec<Row> = crate::all_rows!(
        conn,
        subjects::table
            .filter(subjects::tenant_id.eq(tenant))
            .filter(subjects::identity_hash.eq_any(hashes))
            .order(subjects::id.asc())
            .select((
                subjects::identity_hash,
                subjects::group_id,
                subjects::closed_at,
                subjects::closed_seq,
                subjects::erased_at,
            ))
    )?;
    let mut newest: HashMap<String, Option<Newest>> = HashMap::new();
    for (hash, group_id, closed_at, closed_seq, erased_at) in rows {
        let Some(hash) = hash else { continue };
        let found = match erased_at {
            Some(_) => None,
            None => Some(Newest {
                group_id,
                closed: closed_at.map(|_| closed_seq),
            }),
        };
        newest.insert(hash, found);
    }
    Ok(newest
        .into_iter()
        .filter_map(|(hash, found)| found.map(|f| (hash, f)))
        .collect())
}

/// The latest inbound message per subject and business phone number id.
fn window_rows(
    conn: &mut DbConn,
    subject_ids: &[SubjectId],
) -> QueryResult<Vec<(SubjectId, InboundRecord)>> {
    let columns = (
        windows::subject_id,
        windows::phone_number_id,
        windows::last_inbound_at,
    );
    let rows: Vec<(SubjectId, String, i64)> = match subject_ids {
        [] => Vec::new(),
        // One statement diesel keeps prepared, for a single check.
        [only] => crate::all_rows!(
            conn,
            windows::table
                .filter(windows::subject_id.eq(only))
                .select(columns)
        )?,
        _ => crate::all_rows!(
            conn,
            windows::table
                .filter(windows::subject_id.eq_any(subject_ids))
                .select(columns)
        )?,
    };
    Ok(rows
        .into_iter()
        .map(|(subject, id, at)| {
            let record = InboundRecord {
                phone_number_id: (!id.is_empty()).then_some(id),
                last_inbound_at: Timestamp::from_millis(at),
            };
            (subject, record)
        })
        .collect())
}

/// The latest inbound message of any of a group's subjects, per business
/// phone number id.
pub fn inbound_records(
    conn: &mut DbConn,
    subject_ids: &[SubjectId],
) -> QueryResult<Vec<InboundRecord>> {
    Ok(window_rows(conn, subject_ids)?
        .into_iter()
        .map(|(_, record)| record)
        .collect())
}

/// The window of a group (its subjects) for a business number id, and
/// whether that id is certain. `configured` caches the tenant's WhatsApp
/// phone number ids (read only when the check names no id).
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn window_of(
    conn: &mut DbConn,
    tenant: &TenantId,
    subject_ids: &[SubjectId],
    named: Option<&str>,
    now: Timestamp,
    configured: &mut Option<Vec<String>>,
) -> QueryResult<(Window, bool)> {
    let records = inbound_records(conn, subject_ids)?;
    let ids: &[String] = match (named, &*configured) {
        (Some(_), _) => &[],
        (None, Some(ids)) => ids,
        (None, None) => configured.insert(whatsapp_phone_number_ids(conn, tenant)?),
    };
    Ok(decision::window_for(&records, named, ids, now))
}

/// Records an inbound message of a subject (the one the message was
/// recorded on): the window of that id reopens from `at` unless a later
/// message is already known. One upsert, so two first messages at once
/// both count and a late one never moves the window back.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn record_inbound(
    conn: &mut DbConn,
    tenant: &TenantId,
    subject_id: SubjectId,
    phone_number_id: Option<&str>,
    at: Timestamp,
) -> QueryResult<()> {
    use diesel::dsl::sql;
    use diesel::sql_types::BigInt;
    let row = (
        windows::subject_id.eq(subject_id),
        windows::phone_number_id.eq(phone_number_id.unwrap_or("")),
        windows::tenant_id.eq(tenant),
        windows::last_inbound_at.eq(at.millis()),
    );
    let key = (windows::subject_id, windows::phone_number_id);
    let max = if conn.is_postgres() {
        "GREATEST"
    } else {
        "max"
    };
    let later = windows::last_inbound_at.eq(sql::<BigInt>(&format!(
        "{max}(windows.last_inbound_at, excluded.last_inbound_at)"
    )));
    crate::on_backend!(conn, |c| diesel::insert_into(windows::table)
        .values(row)
        .on_conflict(key)
        .do_update()
        .set(later)
        .execute(c))
    .map(|_| ())
}

/// Records an interaction (docs/recording.md): the window of the identity's
/// open subject (a new subject when it has none, as for any arrival)
/// reopens from `at`. Returns the subjects of its group, whose windows
/// count for it.
pub fn record_interaction(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    identity: &str,
    phone_number_id: Option<&str>,
    (at, now): (Timestamp, Timestamp),
) -> QueryResult<Vec<SubjectId>> {
    let subject = current_or_new_subject(conn, master, tenant, identity, now.millis())?;
    record_inbound(conn, tenant, subject.id, phone_number_id, at)?;
    Ok(group_members(conn, subject.group_id)?
        .into_iter()
        .map(|m| m.id)
        .collect())
}

/// Moves, once, the windows an older version kept by identity for an
/// identity that holds no open subject (it wrote, but nothing was recorded
/// of it, or its group was closed or erased since): each one still open
/// goes to the identity's open subject, a new one if need be, as a
/// message arriving now would. The rest were moved by the migration.
/// Returns how many moved.
pub fn move_legacy_windows(
    conn: &mut DbConn,
    master: &MasterKey,
    now: Timestamp,
) -> StoreResult<usize> {
    let tenants: Vec<TenantId> = legacy_windows::table
        .select(legacy_windows::tenant_id)
        .distinct()
        .order(legacy_windows::tenant_id)
        .load(conn)?;
    let mut moved = 0;
    for tenant in tenants {
        moved += conn.immediate_transaction(|conn| {
            super::connection::lock_log(conn, &tenant)?;
            let rows: Vec<(String, String, i64)> = legacy_windows::table
                .filter(legacy_windows::tenant_id.eq(&tenant))
                .select((
                    legacy_windows::identity,
                    legacy_windows::phone_number_id,
                    legacy_windows::last_inbound_at,
                ))
                .load(conn)?;
            let mut moved = 0;
            for (identity, id, at) in rows {
                let at = Timestamp::from_millis(at);
                if decision::window_still_open(at, now) {
                    let subject =
                        current_or_new_subject(conn, master, &tenant, &identity, now.millis())?;
                    let id = Some(id.as_str()).filter(|id| !id.is_empty());
                    record_inbound(conn, &tenant, subject.id, id, at)?;
                    moved += 1;
                }
            }
            diesel::delete(legacy_windows::table.filter(legacy_windows::tenant_id.eq(&tenant)))
                .execute(conn)?;
            Ok::<_, StoreError>(moved)
        })?;
    }
    Ok(moved)
}

/// Forgets the windows of these subjects (a closed or erased group's).
pub fn forget_windows(conn: &mut DbConn, subject_ids: &[SubjectId]) -> QueryResult<usize> {
    diesel::delete(windows::table.filter(windows::subject_id.eq_any(subject_ids))).execute(conn)
}

/// An entry as stored, with what opens it.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub seq: u64,
    pub canonical_json: String,
    pub leaf_hash: String,
    pub openings: Openings,
}

type EntryColumns = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// Consent texts already read (an export reads each text once).
pub type TextCache = std::collections::HashMap<String, String>;

fn load_entries(
    conn: &mut DbConn,
    tenant: &TenantId,
    filter: EntryFilter,
    texts: &mut TextCache,
) -> QueryResult<Vec<StoredEntry>> {
    let query = entries::table
        .inner_join(subjects::table)
        .filter(entries::tenant_id.eq(tenant))
        .select((
            entries::seq,
            entries::canonical_json,
            entries::leaf_hash,
            entries::evidence_salt,
            entries::evidence_jcs,
            entries::consent_text_sha256,
            subjects::identity,
            subjects::salt,
            subjects::erased_at,
        ))
        .order(entries::seq.asc())
        .into_boxed();
    let query = match filter {
        EntryFilter::Seq(seq) => query.filter(entries::seq.eq(seq)),
        EntryFilter::Group(id) => query.filter(subjects::group_id.eq(id)),
        EntryFilter::Range { from, to } => query
            .filter(entries::seq.ge(from))
            .filter(entries::seq.lt(to)),
    };
    let rows: Vec<EntryColumns> = query.load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for (seq, canonical_json, leaf_hash, ev_salt, ev_jcs, text_hash, identity, salt, erased_at) in
        rows
    {
        let erased = erased_at.is_some();
        let subject = match (erased, identity, salt) {
            (false, Some(identity), Some(salt)) => Some(SubjectOpening::of(identity, salt)),
            _ => None,
        };
        let evidence = match (erased, ev_salt, ev_jcs) {
            (false, Some(salt), Some(body)) => serde_json::from_str(&body)
                .ok()
                .map(|body| EvidenceOpening { salt, body }),
            _ => None,
        };
        let consent_text = match (erased, text_hash) {
            (false, Some(hash)) => match texts.get(&hash) {
                Some(text) => Some(text.clone()),
                None => {
                    let text: Option<String> = consent_texts::table
                        .filter(consent_texts::tenant_id.eq(tenant))
                        .filter(consent_texts::sha256.eq(&hash))
                        .select(consent_texts::body)
                        .first(conn)
                        .optional()?;
                    if let Some(text) = &text {
                        texts.insert(hash, text.clone());
                    }
                    text
                }
            },
            _ => None,
        };
        let linked = match canonical_json.contains(r#""type":"identity_linked""#) {
            true => Some(linked_opening(conn, tenant, seq)?),
            false => None,
        };
        out.push(StoredEntry {
            seq: seq as u64,
            canonical_json,
            leaf_hash,
            openings: Openings {
                subject,
                evidence,
                consent_text,
                erased,
                linked,
            },
        });
    }
    Ok(out)
}

/// The opening of the other identity of an `identity_linked` entry; `None`
/// once that subject is erased.
fn linked_opening(
    conn: &mut DbConn,
    tenant: &TenantId,
    seq: i64,
) -> QueryResult<Option<SubjectOpening>> {
    let found: Option<(Option<String>, Option<String>, Option<i64>)> = identity_links::table
        .inner_join(subjects::table.on(subjects::id.eq(identity_links::linked_subject_id)))
        .filter(identity_links::tenant_id.eq(tenant))
        .filter(identity_links::seq.eq(seq))
        .select((subjects::identity, subjects::salt, subjects::erased_at))
        .first(conn)
        .optional()?;
    Ok(match found {
        Some((Some(identity), Some(salt), None)) => Some(SubjectOpening::of(identity, salt)),
        _ => None,
    })
}

enum EntryFilter {
    Seq(i64),
    Group(GroupId),
    Range { from: i64, to: i64 },
}

/// One entry of the tenant's log.
pub fn entry_at(
    conn: &mut DbConn,
    tenant: &TenantId,
    seq: u64,
) -> QueryResult<Option<StoredEntry>> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    Ok(load_entries(conn, tenant, EntryFilter::Seq(seq), &mut TextCache::new())?.pop())
}

/// Entries `[from, to)` in seq order.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn entry_range(
    conn: &mut DbConn,
    tenant: &TenantId,
    from: u64,
    to: u64,
    texts: &mut TextCache,
) -> QueryResult<Vec<StoredEntry>> {
    load_entries(
        conn,
        tenant,
        EntryFilter::Range {
            from: from as i64,
            to: to as i64,
        },
        texts,
    )
}

/// Every entry of a group's subjects (erased ones too), oldest first.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn group_history(
    conn: &mut DbConn,
    tenant: &TenantId,
    group_id: GroupId,
) -> QueryResult<Vec<StoredEntry>> {
    load_entries(
        conn,
        tenant,
        EntryFilter::Group(group_id),
        &mut TextCache::new(),
    )
}

/// The effective opt-outs of the group of the identity's open subject that a message
/// captured at `before` may lift: of that class, recorded on that capture
/// channel, captured strictly earlier (a START never undoes a later STOP,
/// and an opt-out wins a tie), in seq order.
pub fn liftable_opt_outs(
    conn: &mut DbConn,
    tenant: &TenantId,
    identity: &str,
    class: LiftClass,
    channel: CaptureChannel,
    before: i64,
) -> QueryResult<Vec<u64>> {
    let seqs: Vec<i64> = consent_events::table
        .inner_join(subjects::table.on(subjects::group_id.eq(consent_events::group_id)))
        .filter(subjects::tenant_id.eq(tenant))
        .filter(subjects::identity.eq(identity))
        .filter(subjects::erased_at.is_null())
        .filter(subjects::closed_at.is_null())
        .filter(consent_events::kind.eq("opt_out"))
        .filter(consent_events::lift_class.eq(class.as_str()))
        .filter(consent_events::channel.eq(channel.as_str()))
        .filter(consent_events::lifted_by.is_null())
        .filter(consent_events::captured_at.lt(before))
        .order(consent_events::seq)
        .select(consent_events::seq)
        .load(conn)?;
    Ok(seqs.into_iter().map(|s| s as u64).collect())
}

/// The opt-ins of an identity's open subject that wait for one of these
/// codes (by their keyed hashes) and whose code has not expired at `at`,
/// in seq order. Only the opt-in's own subject: a linked identity never
/// confirms (docs/pages.md).
pub fn confirmable_opt_ins(
    conn: &mut DbConn,
    subject_id: SubjectId,
    code_hashes: &[String],
    at: i64,
) -> QueryResult<Vec<u64>> {
    let seqs: Vec<i64> = consent_events::table
        .filter(consent_events::subject_id.eq(subject_id))
        .filter(consent_events::kind.eq("opt_in"))
        .filter(consent_events::confirmation_required.eq(true))
        .filter(consent_events::confirmed_by.is_null())
        .filter(consent_events::confirmation_code_sha256.eq_any(code_hashes))
        .filter(consent_events::confirmation_expires_at.gt(at))
        .order(consent_events::seq)
        .select(consent_events::seq)
        .load(conn)?;
    Ok(seqs.into_iter().map(|s| s as u64).collect())
}

/// Whether the opt-out at `seq` is in force in the group `group`: recorded
/// there and not lifted.
pub fn opt_out_is_effective(
    conn: &mut DbConn,
    tenant: &TenantId,
    seq: i64,
    group: GroupId,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        consent_events::table
            .filter(consent_events::tenant_id.eq(tenant))
            .filter(consent_events::seq.eq(seq))
            .filter(consent_events::group_id.eq(group))
            .filter(consent_events::kind.eq("opt_out"))
            .filter(consent_events::lifted_by.is_null()),
    ))
    .get_result(conn)
}
