//! The change feed (SPEC section 13, docs/changes.md): a log's consent
//! changes in log order from a cursor. Every entry but `identity_linked`
//! is a change; an opt-out that closed its group reads as `group_closed`.
//! Appends to one log commit in seq order under the log's lock, so a page
//! never skips an entry that a later read would find before it.

use super::error::ServiceResult;
use crate::domain::access::TenantId;
use crate::domain::change::{Change, ChangeType, Cursor, FeedIdentity};
use crate::domain::identity::Identity;
use crate::domain::ids::{GroupId, SubjectId};
use crate::domain::problem::Invalid;
use crate::ledger::entry::{Entry, EntryType};
use crate::store::changes::{self, FeedEntry, SubjectPlace};
use crate::store::log::log_head;
use crate::store::DbConn;
use std::collections::HashMap;

/// A page of the feed: its changes, and where the next page starts (after
/// the last entry read, a change or not).
#[derive(Debug, Clone)]
pub struct FeedPage {
    pub changes: Vec<Change>,
    /// The group of each change's subject, in the same order.
    pub groups: Vec<GroupId>,
    pub next: Cursor,
}

/// The changes among the next `limit` entries of the log after `after`.
/// A cursor beyond the log's end is refused: no answer of ours names one
/// (a log restored from an older backup is shorter than the cursors its
/// subscribers hold; they must start again).
pub fn read(
    conn: &mut DbConn,
    tenant: &TenantId,
    after: Cursor,
    limit: i64,
) -> ServiceResult<FeedPage> {
    if after.0 > log_head(conn, tenant)?.size {
        return Err(Invalid::request_field(
            "after",
            "out_of_range",
            "the cursor is beyond the end of this log",
        )
        .into());
    }
    let rows = changes::entries_from(conn, tenant, after.0 as i64, limit)?;
    let next = rows.last().map_or(after, |r| Cursor(r.seq as u64 + 1));
    let entries = rows
        .into_iter()
        .map(|row| Ok((parse(&row)?, row.subject_id)))
        .collect::<ServiceResult<Vec<_>>>()?;
    let (changes, groups) = Described::load(conn, tenant, &entries)?
        .changes(entries)
        .into_iter()
        .unzip();
    Ok(FeedPage {
        changes,
        groups,
        next,
    })
}

fn parse(row: &FeedEntry) -> Result<Entry, diesel::result::Error> {
    serde_json::from_str(&row.canonical_json)
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
}

/// What the feed tells of a page's entries besides the entries themselves.
struct Described {
    places: HashMap<SubjectId, SubjectPlace>,
    identities: HashMap<GroupId, Vec<FeedIdentity>>,
    brands: HashMap<i64, String>,
    erased: HashMap<i64, String>,
}

impl Described {
    fn load(
        conn: &mut DbConn,
        tenant: &TenantId,
        entries: &[(Entry, SubjectId)],
    ) -> ServiceResult<Self> {
        let subjects: Vec<SubjectId> = entries.iter().map(|(_, s)| *s).collect();
        let places: HashMap<SubjectId, SubjectPlace> = changes::places_of(conn, &subjects)?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let groups: Vec<GroupId> = places.values().map(|p| p.group_id).collect();
        let mut identities: HashMap<GroupId, Vec<FeedIdentity>> = HashMap::new();
        for (group, stored) in changes::identities_of(conn, &groups)? {
            if let Some(identity) = stored.as_deref().and_then(Identity::from_stored) {
                identities
                    .entry(group)
                    .or_default()
                    .push((&identity).into());
            }
        }
        let seqs_of = |kind: EntryType| -> Vec<i64> {
            entries
                .iter()
                .filter(|(e, _)| e.kind == kind)
                .map(|(e, _)| e.seq as i64)
                .collect()
        };
        let brands = changes::brands_of(conn, tenant, &seqs_of(EntryType::OptIn))?;
        let erased = changes::erased_hashes_of(conn, tenant, &seqs_of(EntryType::Erasure))?;
        Ok(Self {
            places,
            identities,
            brands: brands.into_iter().collect(),
            erased: erased.into_iter().collect(),
        })
    }

    fn changes(&self, entries: Vec<(Entry, SubjectId)>) -> Vec<(Change, GroupId)> {
        entries
            .into_iter()
            .filter_map(|(entry, subject)| self.change(entry, subject))
            .collect()
    }

    /// The entry as a change, with its subject's group; `None` for an entry
    /// that changes no consent.
    fn change(&self, entry: Entry, subject: SubjectId) -> Option<(Change, GroupId)> {
        let place = self.places.get(&subject);
        let seq = entry.seq as i64;
        let kind = match entry.kind {
            EntryType::IdentityLinked => return None,
            EntryType::OptOut if place.is_some_and(|p| p.closed_seq == Some(seq)) => {
                ChangeType::GroupClosed
            }
            EntryType::OptOut => ChangeType::OptOut,
            EntryType::OptIn => ChangeType::OptIn,
            EntryType::OptOutLifted => ChangeType::OptOutLifted,
            EntryType::Confirmation => ChangeType::Confirmation,
            EntryType::Erasure => ChangeType::Erasure,
        };
        let identities = place
            .and_then(|p| self.identities.get(&p.group_id))
            .cloned()
            .unwrap_or_default();
        let identity_hashes = (kind == ChangeType::Erasure)
            .then(|| self.erased.get(&seq).cloned().into_iter().collect());
        let group = place.map_or(subject.own_group(), |p| p.group_id);
        let change = Change {
            cursor: Cursor(entry.seq + 1),
            seq: entry.seq,
            kind,
            identities,
            purposes: entry.purposes,
            message_channels: entry.message_channels,
            brand: self.brands.get(&seq).cloned(),
            captured_at: entry.captured_at,
            recorded_at: entry.recorded_at,
            identity_hashes,
        };
        Some((change, group))
    }
}
