//! Reads of the consent state (what checks use), the customer-service
//! windows, subjects' histories and entries with their openings.

use super::channels::whatsapp_phone_number_ids;
use super::schema::{consent_events, consent_texts, entries, subjects, windows};
use super::DbConn;
use crate::domain::decision::{self, Confirmation, ConsentEvent, EventKind, InboundRecord, Window};
use crate::domain::ids::BrandId;
use crate::domain::number::E164;
use crate::domain::purpose::{CaptureChannel, MessageChannelSet, PurposeSet};
use crate::domain::time::Timestamp;
use crate::ledger::entry::{EvidenceOpening, Openings, SubjectOpening};
use diesel::prelude::*;

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

/// The opt-ins and opt-outs of the number's current subject (none when the
/// number has no current subject). One indexed lookup.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn subject_events(
    conn: &mut DbConn,
    tenant: &str,
    number: &E164,
) -> QueryResult<Vec<ConsentEvent>> {
    let rows: Vec<ConsentEventRow> = consent_events::table
        .inner_join(subjects::table)
        .filter(subjects::tenant_id.eq(tenant))
        .filter(subjects::e164.eq(number.as_str()))
        .filter(subjects::erased_at.is_null())
        .select(ConsentEventRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(ConsentEventRow::into_event).collect())
}

/// The opt-ins and opt-outs of one subject, by its id.
pub fn events_of_subject(conn: &mut DbConn, subject_id: i64) -> QueryResult<Vec<ConsentEvent>> {
    let rows: Vec<ConsentEventRow> = consent_events::table
        .filter(consent_events::subject_id.eq(subject_id))
        .select(ConsentEventRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(ConsentEventRow::into_event).collect())
}

/// How many numbers one `IN (…)` list names (well under SQLite's limit of
/// bound parameters).
const MANY: usize = 900;

/// The consent state of many numbers at once (a batch check): the events
/// of each number's current subject, and each number's inbound records,
/// keyed by the number. A few queries for the whole list.
#[derive(Debug, Default)]
pub struct ManyNumbers {
    pub events: std::collections::HashMap<String, Vec<ConsentEvent>>,
    pub inbound: std::collections::HashMap<String, Vec<InboundRecord>>,
}

/// Reads [`ManyNumbers`] for `numbers` (E.164, de-duplicated by the caller
/// or not), `MANY` numbers per query.
pub fn many_numbers(conn: &mut DbConn, tenant: &str, numbers: &[&str]) -> QueryResult<ManyNumbers> {
    let mut out = ManyNumbers::default();
    for chunk in numbers.chunks(MANY) {
        let rows: Vec<(Option<String>, ConsentEventRow)> = consent_events::table
            .inner_join(subjects::table)
            .filter(subjects::tenant_id.eq(tenant))
            .filter(subjects::e164.eq_any(chunk))
            .filter(subjects::erased_at.is_null())
            .select((subjects::e164, ConsentEventRow::as_select()))
            .load(conn)?;
        for (number, row) in rows {
            if let Some(number) = number {
                out.events.entry(number).or_default().push(row.into_event());
            }
        }
        let windows: Vec<(String, String, i64)> = windows::table
            .filter(windows::tenant_id.eq(tenant))
            .filter(windows::e164.eq_any(chunk))
            .select((
                windows::e164,
                windows::phone_number_id,
                windows::last_inbound_at,
            ))
            .load(conn)?;
        for (number, id, at) in windows {
            out.inbound.entry(number).or_default().push(InboundRecord {
                phone_number_id: (!id.is_empty()).then_some(id),
                last_inbound_at: Timestamp::from_millis(at),
            });
        }
    }
    Ok(out)
}

/// The window of a number from its inbound records (as [`window_of`]
/// reads them), for a business number id, and whether that id is certain.
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

/// The latest inbound message per business phone number id.
pub fn inbound_records(
    conn: &mut DbConn,
    tenant: &str,
    number: &E164,
) -> QueryResult<Vec<InboundRecord>> {
    let rows: Vec<(String, i64)> = windows::table
        .filter(windows::tenant_id.eq(tenant))
        .filter(windows::e164.eq(number.as_str()))
        .select((windows::phone_number_id, windows::last_inbound_at))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, at)| InboundRecord {
            phone_number_id: (!id.is_empty()).then_some(id),
            last_inbound_at: Timestamp::from_millis(at),
        })
        .collect())
}

/// The window of a number for a business number id, and whether that id is
/// certain. `configured` caches the tenant's WhatsApp phone number ids
/// (read only when the check names no id).
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn window_of(
    conn: &mut DbConn,
    tenant: &str,
    number: &E164,
    named: Option<&str>,
    now: Timestamp,
    configured: &mut Option<Vec<String>>,
) -> QueryResult<(Window, bool)> {
    let records = inbound_records(conn, tenant, number)?;
    window_from(conn, tenant, &records, named, now, configured)
}

/// Records an inbound message: the window of that id reopens from `at`
/// unless a later message is already known. One upsert, so two first
/// messages of a number at once both count and a late one never moves the
/// window back.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn record_inbound(
    conn: &mut DbConn,
    tenant: &str,
    number: &E164,
    phone_number_id: Option<&str>,
    at: Timestamp,
) -> QueryResult<()> {
    use diesel::dsl::sql;
    use diesel::sql_types::BigInt;
    let row = (
        windows::tenant_id.eq(tenant),
        windows::e164.eq(number.as_str()),
        windows::phone_number_id.eq(phone_number_id.unwrap_or("")),
        windows::last_inbound_at.eq(at.millis()),
    );
    let key = (windows::tenant_id, windows::e164, windows::phone_number_id);
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

/// A number's current subject: its id and commitment.
pub fn current_subject(
    conn: &mut DbConn,
    tenant: &str,
    number: &E164,
) -> QueryResult<Option<(i64, String)>> {
    subjects::table
        .filter(subjects::tenant_id.eq(tenant))
        .filter(subjects::e164.eq(number.as_str()))
        .filter(subjects::erased_at.is_null())
        .select((subjects::id, subjects::commitment))
        .first(conn)
        .optional()
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
            subjects::e164,
            subjects::salt,
            subjects::erased_at,
        ))
        .order(entries::seq.asc())
        .into_boxed();
    let query = match filter {
        EntryFilter::Seq(seq) => query.filter(entries::seq.eq(seq)),
        EntryFilter::Subject(id) => query.filter(entries::subject_id.eq(id)),
        EntryFilter::Range { from, to } => query
            .filter(entries::seq.ge(from))
            .filter(entries::seq.lt(to)),
    };
    let rows: Vec<EntryColumns> = query.load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for (seq, canonical_json, leaf_hash, ev_salt, ev_jcs, text_hash, e164, salt, erased_at) in rows
    {
        let erased = erased_at.is_some();
        let subject = match (erased, e164, salt) {
            (false, Some(e164), Some(salt)) => Some(SubjectOpening::number(e164, salt)),
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
        out.push(StoredEntry {
            seq: seq as u64,
            canonical_json,
            leaf_hash,
            openings: Openings {
                subject,
                evidence,
                consent_text,
                erased,
                linked: None,
            },
        });
    }
    Ok(out)
}

enum EntryFilter {
    Seq(i64),
    Subject(i64),
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

/// Every entry of a subject, oldest first.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn subject_history(
    conn: &mut DbConn,
    tenant: &str,
    subject_id: i64,
) -> QueryResult<Vec<StoredEntry>> {
    load_entries(
        conn,
        tenant,
        EntryFilter::Subject(subject_id),
        &mut TextCache::new(),
    )
}
