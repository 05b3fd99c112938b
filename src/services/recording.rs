//! Recording an opt-in, whatever door it comes through (docs/recording.md, docs/webhooks.md and docs/pages.md): the API (a backfill too), a hosted form, a message a provider's
//! signed webhook delivered. One function, so the same rules refuse the
//! same way everywhere: the clock (not ahead of it, not older than 30 days
//! unless backfilled), the brand (exactly an active one), an erased
//! identity (captured before its erasure), double opt-in where the tenant
//! requires it (never for a message from the identity itself). Each door
//! builds its `OptInDraft` and decides what a refusal means to it.

use super::error::ServiceResult;
use crate::domain::access::TenantId;
use crate::domain::confirmation;
use crate::domain::ids::BrandId;
use crate::domain::record::OptInDraft;
use crate::domain::record::{PendingConfirmation, Record};
use crate::domain::request::FoundBrand;
use crate::domain::time::Timestamp;
use crate::keys::{confirmation_code_hash, random_code, MasterKey};
use crate::ledger::entry::EntryType;
use crate::providers::message::Provider;
use crate::store::append::{self, Answer, Appended};
use crate::store::audit::{self, AuditEvent, AuditKind};
use crate::store::channels::settings_of;
use crate::store::idempotency::IdempotencyScope;
use crate::store::tenants::{find_brand, TenantRow};
use crate::store::{DbConn, Rejection, StoreError};

/// Where an opt-in comes from.
#[derive(Debug, Clone, Copy)]
pub enum Door<'a> {
    /// `POST /v1/opt-ins` with this API key (a backfill too).
    Api { key_id: &'a str },
    /// The hosted form with this id.
    Page { form_id: &'a str },
    /// A message from the identity itself, delivered by a provider's signed
    /// webhook.
    Message { provider: Provider },
    /// A caller who pressed the key of this hosted phone flow.
    Ivr { flow: &'a str },
    /// A line of a bulk import (always a backfill), by this collector: the
    /// admin's key id, or `operator:cli`.
    Import { collector: &'a str },
}

impl Door<'_> {
    /// The entry's `collector`.
    pub fn collector(&self) -> String {
        match self {
            Door::Api { key_id } => (*key_id).to_owned(),
            Door::Page { form_id } => format!("form:{form_id}"),
            Door::Message { provider } => provider.collector().to_owned(),
            Door::Import { collector } => (*collector).to_owned(),
            Door::Ivr { flow } => format!("ivr:{flow}"),
        }
    }

    /// Whether each backfill it records is noted in the audit trail on its
    /// own (a bulk import notes each group of lines instead).
    pub(super) fn notes_each_backfill(&self) -> bool {
        !matches!(self, Door::Import { .. })
    }

    /// Whether the tenant's `require_confirmation_for` applies: an opt-in a
    /// provider's signed webhook delivers from the identity itself never
    /// waits.
    fn may_wait(&self) -> bool {
        !matches!(self, Door::Message { .. })
    }
}

/// The code an opt-in that waits for confirmation was given: what the
/// person sends back, and the click-to-chat link (none without a WhatsApp
/// number configured).
#[derive(Debug, Clone)]
pub struct IssuedCode {
    pub code: String,
    pub expires_at: Timestamp,
    pub whatsapp_link: Option<String>,
}

/// A recorded opt-in.
#[derive(Debug, Clone)]
pub struct OptInRecorded {
    pub appended: Appended,
    /// When it waits for confirmation.
    pub confirmation: Option<IssuedCode>,
}

/// The idempotent answer an API request stores with its opt-in.
pub struct Reply<'a> {
    pub scope: &'a IdempotencyScope,
    pub render: &'a dyn Fn(&Appended, Option<&IssuedCode>) -> String,
}

/// Records an opt-in: the clock and brand rules, a code when the tenant
/// requires confirmation for its capture channel (and the door may wait),
/// then the append, which refuses an opt-in captured before its identity's
/// erasure. In the caller's transaction when it holds one (a savepoint).
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant.id))]
pub fn record_opt_in(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantRow,
    (draft, door): (OptInDraft, Door<'_>),
    reply: Option<Reply<'_>>,
    now: Timestamp,
) -> ServiceResult<OptInRecorded> {
    draft.check_clock(now)?;
    let brand = find_brand(conn, &tenant.id, &draft.company_name_shown)?.map(|b| FoundBrand {
        id: BrandId(b.id),
        retired: b.retired_at.is_some(),
        name: b.name,
    });
    let mut opt_in = draft.into_record(brand)?;
    // A backfill imports consent as it was: it never waits.
    let waits = door.may_wait() && !opt_in.backfill;
    let issued = match waits && tenant.policy.requires_confirmation(opt_in.channel) {
        true => {
            let (pending, issued) = new_code(conn, master, &tenant.id, now)?;
            opt_in.confirmation = Some(pending);
            Some(issued)
        }
        false => None,
    };
    let record = Record::OptIn(opt_in);
    let render = |appended: &Appended| {
        reply
            .as_ref()
            .map(|r| (r.render)(appended, issued.as_ref()))
            .unwrap_or_default()
    };
    let answer = reply.as_ref().map(|r| Answer {
        scope: r.scope,
        render: &render,
    });
    let collector = door.collector();
    let noted = record.is_backfill() && door.notes_each_backfill();
    let appended = conn.immediate_transaction(|conn| {
        let appended =
            append::append_locked(conn, master, &tenant.id, &collector, &record, answer, now)?;
        if noted {
            note_backfill(
                conn,
                &tenant.id,
                (&collector, EntryType::OptIn),
                &appended,
                now,
            )?;
        }
        Ok::<_, StoreError>(appended)
    })?;
    match door.notes_each_backfill() {
        true => {
            tracing::info!(tenant = %tenant.id, seq = appended.seq, subject = %appended.subject, collector = %collector, "opt-in recorded")
        }
        // A bulk import logs its progress, not each line.
        false => tracing::debug!(tenant = %tenant.id, seq = appended.seq, "opt-in imported"),
    }
    Ok(OptInRecorded {
        appended,
        confirmation: issued,
    })
}

/// Notes a backfill in the audit trail, in the transaction of its append.
pub fn note_backfill(
    conn: &mut DbConn,
    tenant: &TenantId,
    (collector, kind): (&str, EntryType),
    appended: &Appended,
    now: Timestamp,
) -> Result<(), StoreError> {
    let event = AuditEvent {
        actor: collector,
        kind: AuditKind::Backfill,
        details: serde_json::json!({"seq": appended.seq, "type": kind.as_str(), "subject": appended.subject}),
    };
    audit::record_within(conn, tenant, &event, now)?;
    Ok(())
}

/// A new code for an opt-in that waits for confirmation: what is stored
/// (its keyed hash, when it expires) and what the person is given.
fn new_code(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    now: Timestamp,
) -> ServiceResult<(PendingConfirmation, IssuedCode)> {
    let code = random_code(confirmation::CODE_ALPHABET, confirmation::CODE_LEN);
    let expires_at = confirmation::expires_at(now);
    let settings = settings_of(conn, tenant)?;
    let display = settings
        .whatsapp
        .as_ref()
        .and_then(|w| w.phone_numbers.first())
        .and_then(|p| p.display.clone());
    let issued = IssuedCode {
        whatsapp_link: display.and_then(|d| confirmation::whatsapp_link(&d, &code)),
        expires_at,
        code: code.clone(),
    };
    let pending = PendingConfirmation {
        code_sha256: confirmation_code_hash(master, tenant, &code),
        expires_at,
    };
    Ok((pending, issued))
}

/// Appends an entry a message, a kept letter or a review records, unless
/// its identity is erased and the rules say to record nothing (an opt-in
/// captured before the erasure; an opt-out or a lift while no newer
/// subject exists): `None` then.
pub fn append_unless_suppressed(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    collector: &str,
    record: &Record,
    now: Timestamp,
) -> ServiceResult<Option<Appended>> {
    match append::append_locked(conn, master, tenant, collector, record, None, now) {
        Ok(appended) => Ok(Some(appended)),
        Err(StoreError::Rejected(Rejection::Suppressed | Rejection::SuppressedNothingToRecord)) => {
            Ok(None)
        }
        Err(other) => Err(other.into()),
    }
}
