//! A subject's report (docs/privacy.md): the decision for every brand,
//! purpose and message channel of the group an identity belongs to, its
//! subjects and its whole history, from one snapshot.

use super::group::{decide, pending_reviews, read_own};
use crate::domain::decision::{ConsentEvent, Question, Reason, Standing};
use crate::domain::identity::Identity;
use crate::domain::ids::BrandId;
use crate::domain::purpose::{MessageChannel, Purpose};
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::services::error::ServiceResult;
use crate::store::consent::{group_history, StoredEntry};
use crate::store::subjects::{group_holds_entries, group_members};
use crate::store::tenants::{list_brands, BrandRow, TenantRow};
use crate::store::{DbConn, Rejection};

/// The consents of the person an identity belongs to (its newest group).
#[derive(Debug)]
pub struct Report {
    /// The subject commitment of the identity asked.
    pub subject: String,
    /// The subject commitments of the whole group, oldest first.
    pub group: Vec<String>,
    pub consents: Vec<SubjectConsent>,
    /// Every entry of the group's subjects, oldest first.
    pub history: Vec<StoredEntry>,
}

/// The decision for one brand, purpose and message channel.
#[derive(Debug)]
pub struct SubjectConsent {
    pub purpose: Purpose,
    pub brand: String,
    pub channel: MessageChannel,
    pub reason: Reason,
    /// The event the reason rests on, if any.
    pub consent: Option<ConsentEvent>,
}

/// Reports on the newest group of an identity: erased, or holding no
/// entry, it answers as an unknown identity (never an older group).
pub fn report_subject(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantRow,
    identity: &Identity,
    now: Timestamp,
) -> ServiceResult<Report> {
    let unknown = || Rejection::NotFound("this number or user id has no subject in this tenant");
    // One snapshot: the consents and the history agree.
    conn.snapshot(|conn| {
        let (state, suppressed_at) = read_own(conn, master, &tenant.id, identity.as_str())?;
        let found = state.live_subject().ok_or_else(unknown)?;
        let (group_id, subject) = (found.group_id, found.commitment.clone());
        if !group_holds_entries(conn, group_id)? {
            return Err(unknown().into());
        }
        let group = group_members(conn, group_id)?
            .into_iter()
            .map(|m| m.commitment)
            .collect();
        let under_review = pending_reviews(conn, tenant, &state)?;
        let standing = Standing {
            suppressed_at,
            closed: state.closure(),
            under_review: &under_review,
        };
        let brands = list_brands(conn, &tenant.id)?;
        let consents = consents_of(&state.events, &brands, tenant, standing, now);
        let history = group_history(conn, &tenant.id, group_id)?;
        Ok(Report {
            subject,
            group,
            consents,
            history,
        })
    })
}

/// The decision for every purpose and message channel of each active
/// brand, and of each retired one the person opted in to.
fn consents_of(
    events: &[ConsentEvent],
    brands: &[BrandRow],
    tenant: &TenantRow,
    standing: Standing<'_>,
    now: Timestamp,
) -> Vec<SubjectConsent> {
    let relevant = brands.iter().filter(|b| {
        b.retired_at.is_none() || events.iter().any(|e| e.brand_id == Some(BrandId(b.id)))
    });
    let mut consents = Vec::new();
    for brand in relevant {
        for purpose in Purpose::ALL {
            for channel in MessageChannel::ALL {
                let question = Question {
                    purpose,
                    brand_id: BrandId(brand.id),
                    channel,
                };
                let outcome = decide(events, question, tenant, standing, now);
                consents.push(SubjectConsent {
                    purpose,
                    brand: brand.name.clone(),
                    channel,
                    reason: outcome.reason,
                    consent: outcome.consent.cloned(),
                });
            }
        }
    }
    consents
}
