//! The hosted pages' use cases (docs/pages.md): the page a visitor asks
//! for, an opt-in given on a form (through `recording.rs::record_opt_in`,
//! unless the form changed since its page was served), and the opt-out
//! page's opt-out. A page records quietly: an erased number is answered as
//! any other (a page never tells whether a number is known).

use super::error::{ServiceError, ServiceResult};
use super::recording::{record_opt_in, Door};
use crate::domain::access::TenantId;
use crate::domain::evidence::Evidence;
use crate::domain::form::{FormDefinition, OPT_OUT};
use crate::domain::identity::Identity;
use crate::domain::number::E164;
use crate::domain::purpose::{CaptureChannel, MessageChannelSet, PurposeSet};
use crate::domain::record::OptInDraft;
use crate::domain::record::{OptOutRecord, Record};
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::store::forms::{self, StoredForm};
use crate::store::tenants::{find_brand, find_tenant, TenantRow};
use crate::store::{append, DbConn, Rejection, StoreError};

/// The tenant and, for an opt-in page, its form; `None` when either is
/// unknown or the form's brand is retired.
pub fn find_page(
    conn: &mut DbConn,
    tenant: &TenantId,
    form: &str,
) -> ServiceResult<Option<(TenantRow, Option<StoredForm>)>> {
    let Some(row) = find_tenant(conn, tenant)? else {
        return Ok(None);
    };
    if form == OPT_OUT {
        return Ok(Some((row, None)));
    }
    let stored = forms::find(conn, tenant, form)?;
    let active = match &stored {
        Some(f) => {
            find_brand(conn, tenant, &f.definition.brand)?.is_some_and(|b| b.retired_at.is_none())
        }
        None => false,
    };
    Ok(active.then_some((row, stored)))
}

/// An opt-in given on a form, ready to record.
pub struct FormOptIn {
    pub row: TenantRow,
    pub definition: FormDefinition,
    pub form_id: String,
    /// The version shown, which `definition` is.
    pub version: i64,
    pub number: E164,
    pub purposes: PurposeSet,
    pub evidence: Evidence,
}

/// What became of a form's opt-in.
pub enum FormOutcome {
    /// Recorded; with the code and click-to-chat link when it must be
    /// confirmed.
    Recorded(Option<(String, Option<String>)>),
    /// The form changed after the post was checked: nothing recorded; the
    /// form as it now stands.
    Changed(StoredForm),
}

/// Records a form's opt-in (collector `form:<id>`, channel `web`, captured
/// `now`), with a code when the tenant requires confirmation for `web`,
/// unless the form has meanwhile changed from the version shown. A form
/// gone meanwhile is refused as not found; an erased number's opt-in
/// captured before the erasure records nothing and is answered as recorded.
pub fn record_form_opt_in(
    conn: &mut DbConn,
    master: &MasterKey,
    opt_in: FormOptIn,
    now: Timestamp,
) -> ServiceResult<FormOutcome> {
    let tenant = opt_in.row.id.clone();
    let current =
        forms::find(conn, &tenant, &opt_in.form_id)?.ok_or(Rejection::NotFound("no such page"))?;
    if current.version != opt_in.version {
        return Ok(FormOutcome::Changed(current));
    }
    let definition = &opt_in.definition;
    let draft = OptInDraft {
        identity: Identity::Number(opt_in.number),
        channel: CaptureChannel::Web,
        company_name_shown: definition.brand.clone(),
        consent_text: definition.consent_text.clone(),
        purposes: opt_in.purposes,
        message_channels: definition.message_channels.iter().copied().collect(),
        captured_at: now,
        language: definition.language.clone(),
        backfill: false,
        evidence: opt_in.evidence,
    };
    let door = Door::Page {
        form_id: &opt_in.form_id,
    };
    match record_opt_in(conn, master, &opt_in.row, (draft, door), None, now) {
        Ok(recorded) => Ok(FormOutcome::Recorded(
            recorded.confirmation.map(|c| (c.code, c.whatsapp_link)),
        )),
        Err(ServiceError::Store(StoreError::Rejected(Rejection::Suppressed))) => {
            Ok(FormOutcome::Recorded(None))
        }
        Err(refused) => Err(refused),
    }
}

/// What the opt-out page's post came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageOptOut {
    /// Recorded, or (an erased number without a newer subject) nothing to
    /// record, answered the same.
    Recorded,
    /// The tenant has no active brand left: there is no page.
    NoActiveBrand,
}

/// Records the opt-out page's opt-out of everything (collector
/// `form:opt-out`, channel `web`, captured `now`); an erased number
/// without a newer subject records nothing and is answered as recorded.
pub fn record_page_opt_out(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    (number, evidence): (E164, Evidence),
    now: Timestamp,
) -> ServiceResult<PageOptOut> {
    let collector = "form:opt-out";
    let record = Record::OptOut(OptOutRecord {
        identity: Identity::Number(number),
        channel: CaptureChannel::Web,
        purposes: PurposeSet::all(),
        message_channels: MessageChannelSet::all(),
        captured_at: now,
        backfill: false,
        evidence,
        lift_class: None,
    });
    let appended = conn.immediate_transaction(|conn| {
        append::append_locked(conn, master, tenant, collector, &record, None, now)
    });
    match appended {
        Ok(appended) => {
            tracing::info!(tenant = %tenant, seq = appended.seq, subject = %appended.subject, collector = %collector, "recorded from a page");
            Ok(PageOptOut::Recorded)
        }
        Err(StoreError::Rejected(Rejection::Suppressed | Rejection::SuppressedNothingToRecord)) => {
            Ok(PageOptOut::Recorded)
        }
        Err(StoreError::Rejected(Rejection::BrandRetired)) => Ok(PageOptOut::NoActiveBrand),
        Err(other) => Err(other.into()),
    }
}
