//! What a decision reads of an identity's group: with its own few reads
//! (a single check, a subject's report), or from a batch's state read
//! together beforehand.

use crate::domain::access::TenantId;
use crate::domain::decision::{
    self, Closure, ConsentEvent, InboundRecord, Outcome, PendingReview, Question, Standing,
};
use crate::domain::ids::GroupId;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::services::error::ServiceResult;
use crate::store::consent::{
    identity_state, inbound_records, many_identities, IdentityState, ManyIdentities,
};
use crate::store::reviews;
use crate::store::suppression::{group_suppression, suppressed_many};
use crate::store::tenants::TenantRow;
use crate::store::DbConn;
use std::collections::HashMap;

/// What a decision reads of an identity's group.
pub struct GroupRead {
    pub events: Vec<ConsentEvent>,
    pub suppressed_at: Option<Timestamp>,
    /// The group is closed (rule 2).
    pub closure: Option<Closure>,
    pub inbound: Vec<InboundRecord>,
    /// Its messages held for review (only for a tenant that ever held one).
    pub under_review: Vec<PendingReview>,
    /// Whether the tenant holds anything of the identity (a subject, a
    /// window, a suppression).
    pub known: bool,
}

impl GroupRead {
    /// Reads an identity's group with its own reads.
    pub fn read(
        conn: &mut DbConn,
        master: &MasterKey,
        tenant: &TenantRow,
        identity: &str,
    ) -> ServiceResult<Self> {
        let (state, suppressed_at) = read_own(conn, master, &tenant.id, identity)?;
        let inbound = inbound_records(conn, &state.window_subjects)?;
        let under_review = pending_reviews(conn, tenant, &state)?;
        Ok(GroupRead {
            known: state.live_subject().is_some() || suppressed_at.is_some(),
            suppressed_at,
            closure: state.closure(),
            inbound,
            under_review,
            events: state.events,
        })
    }

    /// The decision for one question about this group.
    pub fn decide(&self, question: Question, tenant: &TenantRow, now: Timestamp) -> Outcome<'_> {
        decide(&self.events, question, tenant, self.standing(), now)
    }

    fn standing(&self) -> Standing<'_> {
        Standing {
            suppressed_at: self.suppressed_at,
            closed: self.closure,
            under_review: &self.under_review,
        }
    }
}

/// The messages of an identity's live group held for review: read only
/// for a tenant that ever held one (no other check pays for it).
pub fn pending_reviews(
    conn: &mut DbConn,
    tenant: &TenantRow,
    state: &IdentityState,
) -> ServiceResult<Vec<PendingReview>> {
    let Some(group) = state.live_subject().map(|s| s.group_id) else {
        return Ok(Vec::new());
    };
    if !tenant.reviews_held {
        return Ok(Vec::new());
    }
    let mut found = reviews::waiting_in_groups(conn, &tenant.id, &[group])?;
    Ok(found.remove(&group).unwrap_or_default())
}

/// An identity's group and its latest suppression with their own reads
/// (a single check, a subject's report): the tenant's key derived once,
/// each identity hashed once.
pub fn read_own(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    identity: &str,
) -> ServiceResult<(IdentityState, Option<Timestamp>)> {
    let hasher = master.identity_hasher(tenant);
    let asked = hasher.hash(identity);
    let state = identity_state(conn, tenant, identity, &asked)?;
    let hashes: Vec<String> = state
        .identities
        .iter()
        .map(|i| match i == identity {
            true => asked.clone(),
            false => hasher.hash(i),
        })
        .collect();
    let suppressed_at = group_suppression(conn, tenant, &hashes)?;
    Ok((state, suppressed_at))
}

/// docs/decisions.md's decision, under the tenant's age limit.
pub fn decide<'a>(
    events: &'a [ConsentEvent],
    question: Question,
    tenant: &TenantRow,
    standing: Standing<'_>,
    now: Timestamp,
) -> Outcome<'a> {
    decision::decide(
        events,
        question,
        tenant.policy.max_consent_age_days,
        standing,
        now,
    )
}

/// The consent state of a batch's identities, read in a few queries.
pub struct Prefetched {
    state: ManyIdentities,
    /// Identity asked → the latest erasure on request of its group.
    suppressed: HashMap<String, Timestamp>,
    /// Identity asked → its group's messages held for review.
    under_review: HashMap<String, Vec<PendingReview>>,
}

impl Prefetched {
    /// Whether the tenant holds any state of this identity.
    pub fn knows(&self, identity: &str) -> bool {
        self.state.events.contains_key(identity)
            || self.state.closed.contains_key(identity)
            || self.state.inbound.contains_key(identity)
            || self.suppressed.contains_key(identity)
    }

    /// The group of an asked identity.
    pub fn group(&self, identity: &str) -> GroupRead {
        GroupRead {
            events: self.state.events.get(identity).cloned().unwrap_or_default(),
            suppressed_at: self.suppressed.get(identity).copied(),
            closure: self.state.closed.get(identity).copied(),
            inbound: self
                .state
                .inbound
                .get(identity)
                .cloned()
                .unwrap_or_default(),
            under_review: self.under_review.get(identity).cloned().unwrap_or_default(),
            known: self.knows(identity),
        }
    }

    /// Reads the state of `asked` (sorted, without duplicates): each
    /// identity is hashed once, for its subjects and its suppression.
    pub fn read(
        conn: &mut DbConn,
        master: &MasterKey,
        tenant_row: &TenantRow,
        asked: &[&str],
    ) -> ServiceResult<Self> {
        let tenant = &tenant_row.id;
        let hasher = master.identity_hasher(tenant);
        let asked_hashes: Vec<String> = asked.iter().map(|i| hasher.hash(i)).collect();
        let state = many_identities(conn, tenant, asked, &asked_hashes)?;
        let group_of = |identity: &str| -> Vec<String> {
            match state.members.get(identity) {
                Some(members) => members.clone(),
                None => vec![identity.to_owned()],
            }
        };
        let mut all: Vec<String> = asked.iter().flat_map(|i| group_of(i)).collect();
        all.sort_unstable();
        all.dedup();
        // A member asked too was hashed already.
        let hashes: Vec<String> = all
            .iter()
            .map(|m| match asked.binary_search(&m.as_str()) {
                Ok(at) => asked_hashes[at].clone(),
                Err(_) => hasher.hash(m),
            })
            .collect();
        let found = suppressed_many(conn, tenant, &hashes)?;
        let erased: HashMap<&str, i64> = all
            .iter()
            .zip(&hashes)
            .filter_map(|(i, h)| found.get(h).map(|&at| (i.as_str(), at)))
            .collect();
        let suppressed = asked
            .iter()
            .filter_map(|i| {
                let latest = group_of(i)
                    .iter()
                    .filter_map(|m| erased.get(m.as_str()))
                    .max()
                    .copied();
                latest.map(|at| ((*i).to_owned(), Timestamp::from_millis(at)))
            })
            .collect();
        let under_review = match tenant_row.reviews_held {
            true => pending_in_batch(conn, tenant, &state)?,
            false => HashMap::new(),
        };
        Ok(Self {
            state,
            suppressed,
            under_review,
        })
    }
}

/// The messages held for review of each asked identity's open group.
fn pending_in_batch(
    conn: &mut DbConn,
    tenant: &TenantId,
    state: &ManyIdentities,
) -> ServiceResult<HashMap<String, Vec<PendingReview>>> {
    let mut groups: Vec<GroupId> = state.groups.values().copied().collect();
    groups.sort_unstable();
    groups.dedup();
    let mut pending = HashMap::new();
    for part in groups.chunks(500) {
        pending.extend(reviews::waiting_in_groups(conn, tenant, part)?);
    }
    Ok(state
        .groups
        .iter()
        .filter_map(|(identity, group)| Some((identity.clone(), pending.get(group)?.clone())))
        .collect())
}
