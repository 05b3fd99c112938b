//! Reads of the consent state (what checks use), the customer-service
//! windows, subjects' histories and entries with their openings.

use super::channels::whatsapp_phone_number_ids;
use super::schema::{consent_events, consent_texts, entries, identity_links, subjects, windows};
use super::subjects::{group_identities, newest_subject, SubjectRow};
use super::DbConn;
use crate::domain::decision::{self, Confirmation, ConsentEvent, EventKind, InboundRecord, Window};
use crate::domain::ids::BrandId;
use crate::domain::purpose::{CaptureChannel, MessageChannelSet, PurposeSet};
use crate::domain::time::Timestamp;
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

/// What a decision about one identity reads (SPEC section 2): the group
/// that answers for it (its newest subject that is not erased, open or
/// closed), the group's identities and the group's opt-ins and opt-outs.
#[derive(Debug, Default)]
pub struct IdentityState {
    pub subject: Option<SubjectRow>,
    /// Every identity of the group (the one asked when it has no subject).
    pub identities: Vec<String>,
    pub events: Vec<ConsentEvent>,
}

/// Reads [`IdentityState`]: three indexed lookups, no walk over links.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn identity_state(
    conn: &mut DbConn,
    tenant: &str,
    identity: &str,
) -> QueryResult<IdentityState> {
    let Some(subject) = newest_subject(conn, tenant, identity)? else {
        return Ok(IdentityState {
            subject: None,
            identities: vec![identity.to_owned()],
            events: Vec::new(),
        });
    };
    let identities = group_identities(conn, subject.group_id)?;
    let events = group_events(conn, subject.group_id)?;
    Ok(IdentityState {
        subject: Some(subject),
        identities,
        events,
    })
}

/// The identities of the group that answers for `identity` (only itself
/// when it has no subject): whose windows count for it.
pub fn identities_of_group(
    conn: &mut DbConn,
    tenant: &str,
    identity: &str,
) -> QueryResult<Vec<String>> {
    match newest_subject(conn, tenant, identity)? {
        Some(subject) => group_identities(conn, subject.group_id),
        None => Ok(vec![identity.to_owned()]),
    }
}

/// The opt-ins and opt-outs of a group, by its id.
pub fn group_events(conn: &mut DbConn, group_id: i64) -> QueryResult<Vec<ConsentEvent>> {
    let rows: Vec<ConsentEventRow> = crate::all_rows!(
        conn,
        consent_events::table
            .filter(consent_events::group_id.eq(group_id))
            .select(ConsentEventRow::as_select())
    )?;
    Ok(rows.into_iter().map(ConsentEventRow::into_event).collect())
}

/// How many identities one `IN (…)` list names (well under SQLite's limit
/// of bound parameters).
const MANY: usize = 900;

/// The consent state of many identities at once (a batch check), keyed by
/// the identity asked: its group's events, its group's inbound records and
/// its group's identities. A few queries per 900 identities.
#[derive(Debug, Default)]
pub struct ManyIdentities {
    pub events: HashMap<String, Vec<ConsentEvent>>,
    pub inbound: HashMap<String, Vec<InboundRecord>>,
    /// The identities of each asked identity's group (absent: only itself).
    pub members: HashMap<String, Vec<String>>,
}

/// Reads [`ManyIdentities`] for `asked` (de-duplicated by the caller or not).
pub fn many_identities(
    conn: &mut DbConn,
    tenant: &str,
    asked: &[&str],
) -> QueryResult<ManyIdentities> {
    let mut out = ManyIdentities::default();
    for chunk in asked.chunks(MANY) {
        // Each identity's newest subject that is not erased.
        let found: Vec<(Option<String>, i64, i64)> = crate::all_rows!(
            conn,
            subjects::table
                .filter(subjects::tenant_id.eq(tenant))
                .filter(subjects::identity.eq_any(chunk))
                .filter(subjects::erased_at.is_null())
                .order(subjects::id.asc())
                .select((subjects::identity, subjects::id, subjects::group_id))
        )?;
        let mut group_of: HashMap<String, i64> = HashMap::new();
        for (identity, _, group) in found {
            if let Some(identity) = identity {
                group_of.insert(identity, group);
            }
        }
        let mut groups: Vec<i64> = group_of.values().copied().collect();
        groups.sort_unstable();
        groups.dedup();
        let mut events_of: HashMap<i64, Vec<ConsentEvent>> = HashMap::new();
        let mut members_of: HashMap<i64, Vec<String>> = HashMap::new();
        for part in groups.chunks(MANY) {
            let rows: Vec<(i64, ConsentEventRow)> = crate::all_rows!(
                conn,
                consent_events::table
                    .filter(consent_events::group_id.eq_any(part))
                    .select((consent_events::group_id, ConsentEventRow::as_select()))
            )?;
            for (group, row) in rows {
                events_of.entry(group).or_default().push(row.into_event());
            }
            let members: Vec<(i64, Option<String>)> = crate::all_rows!(
                conn,
                subjects::table
                    .filter(subjects::group_id.eq_any(part))
                    .filter(subjects::erased_at.is_null())
                    .select((subjects::group_id, subjects::identity))
            )?;
            for (group, identity) in members {
                members_of.entry(group).or_default().extend(identity);
            }
        }
        let mut wanted: Vec<&str> = chunk.to_vec();
        wanted.extend(members_of.values().flatten().map(String::as_str));
        wanted.sort_unstable();
        wanted.dedup();
        let mut inbound_of: HashMap<String, Vec<InboundRecord>> = HashMap::new();
        for part in wanted.chunks(MANY) {
            for (identity, record) in inbound_rows(conn, tenant, part)? {
                inbound_of.entry(identity).or_default().push(record);
            }
        }
        for identity in chunk {
            let members = match group_of.get(*identity) {
                Some(group) => {
                    if let Some(events) = events_of.get(group) {
                        out.events.insert((*identity).to_owned(), events.clone());
                    }
                    members_of.get(group).cloned().unwrap_or_default()
                }
                None => vec![(*identity).to_owned()],
            };
            let records: Vec<InboundRecord> = members
                .iter()
                .filter_map(|m| inbound_of.get(m))
                .flatten()
                .cloned()
                .collect();
            if !records.is_empty() {
                out.inbound.insert((*identity).to_owned(), records);
            }
            if members.len() > 1 || members.first().is_some_and(|m| m != identity) {
                out.members.insert((*identity).to_owned(), members);
            }
        }
    }
    Ok(out)
}

/// The window of an identity from its group's inbound records (as
/// [`window_of`] reads them), for a business number id, and whether that
/// id is certain.
pub fn window_from(
    conn: &mut DbConn,
    tenant: &str,
    records: &[InboundRecord],
    named: Option<&str>,
    now: Timestamp,
    configured: &mut Option<Vec<String>>,
) -> QueryResult<(Window, bool)> {
    let ids: &[String] = match (named, &*configured) {
        (Some(_), _) => &[],
        (None, Some(ids)) => ids,
        (None, None) => configured.insert(whatsapp_phone_number_ids(conn, tenant)?),
    };
    Ok(decision::window_for(records, named, ids, now))
}

/// The latest inbound message per identity and business phone number id.
fn inbound_rows(
    conn: &mut DbConn,
    tenant: &str,
    identities: &[&str],
) -> QueryResult<Vec<(String, InboundRecord)>> {
    let columns = (
        windows::identity,
        windows::phone_number_id,
        windows::last_inbound_at,
    );
    let rows: Vec<(String, String, i64)> = match identities {
        // One statement diesel keeps prepared, for a single check.
        [only] => crate::all_rows!(
            conn,
            windows::table
                .filter(windows::tenant_id.eq(tenant))
                .filter(windows::identity.eq(only))
                .select(columns)
        )?,
        _ => crate::all_rows!(
            conn,
            windows::table
                .filter(windows::tenant_id.eq(tenant))
                .filter(windows::identity.eq_any(identities))
                .select(columns)
        )?,
    };
    Ok(rows
        .into_iter()
        .map(|(identity, id, at)| {
            let record = InboundRecord {
                phone_number_id: (!id.is_empty()).then_some(id),
                last_inbound_at: Timestamp::from_millis(at),
            };
            (identity, record)
        })
        .collect())
}

/// The latest inbound message of any of a group's identities, per business
/// phone number id.
pub fn inbound_records(
    conn: &mut DbConn,
    tenant: &str,
    identities: &[String],
) -> QueryResult<Vec<InboundRecord>> {
    let refs: Vec<&str> = identities.iter().map(String::as_str).collect();
    Ok(inbound_rows(conn, tenant, &refs)?
        .into_iter()
        .map(|(_, record)| record)
        .collect())
}

/// The window of a group (its identities) for a business number id, and
/// whether that id is certain. `configured` caches the tenant's WhatsApp
/// phone number ids (read only when the check names no id).
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn window_of(
    conn: &mut DbConn,
    tenant: &str,
    identities: &[String],
    named: Option<&str>,
    now: Timestamp,
    configured: &mut Option<Vec<String>>,
) -> QueryResult<(Window, bool)> {
    let records = inbound_records(conn, tenant, identities)?;
    window_from(conn, tenant, &records, named, now, configured)
}

/// Records an inbound message of an identity: the window of that id
/// reopens from `at` unless a later message is already known. One upsert,
/// so two first messages at once both count and a late one never moves
/// the window back.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn record_inbound(
    conn: &mut DbConn,
    tenant: &str,
    identity: &str,
    phone_number_id: Option<&str>,
    at: Timestamp,
) -> QueryResult<()> {
    use diesel::dsl::sql;
    use diesel::sql_types::BigInt;
    let row = (
        windows::tenant_id.eq(tenant),
        windows::identity.eq(identity),
        windows::phone_number_id.eq(phone_number_id.unwrap_or("")),
        windows::last_inbound_at.eq(at.millis()),
    );
    let key = (
        windows::tenant_id,
        windows::identity,
        windows::phone_number_id,
    );
    let later = |max: &str| {
        windows::last_inbound_at.eq(sql::<BigInt>(&format!(
            "{max}(windows.last_inbound_at, excluded.last_inbound_at)"
        )))
    };
    match conn {
        DbConn::Sqlite(c) => diesel::insert_into(windows::table)
            .values(row)
            .on_conflict(key)
            .do_update()
            .set(later("max"))
            .execute(c),
        DbConn::Pg(c) => diesel::insert_into(windows::table)
            .values(row)
            .on_conflict(key)
            .do_update()
            .set(later("GREATEST"))
            .execute(c),
    }
    .map(|_| ())
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
    tenant: &str,
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
    tenant: &str,
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
    Group(i64),
    Range { from: i64, to: i64 },
}

/// One entry of the tenant's log.
pub fn entry_at(conn: &mut DbConn, tenant: &str, seq: u64) -> QueryResult<Option<StoredEntry>> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    Ok(load_entries(conn, tenant, EntryFilter::Seq(seq), &mut TextCache::new())?.pop())
}

/// Entries `[from, to)` in seq order.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn entry_range(
    conn: &mut DbConn,
    tenant: &str,
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
    tenant: &str,
    group_id: i64,
) -> QueryResult<Vec<StoredEntry>> {
    load_entries(
        conn,
        tenant,
        EntryFilter::Group(group_id),
        &mut TextCache::new(),
    )
}
