//! The audit trail (docs/privacy.md): per tenant, append-only, numbered from
//! 1 without gaps in the order events commit (the tenant's row of
//! `audit_heads` is locked while one is written). What it says is chosen by
//! the callers, who never put a number, key, salt, secret or evidence body
//! in it.

use super::schema::{audit_events, audit_heads};
use super::DbConn;
use crate::domain::access::TenantId;
use crate::domain::time::Timestamp;
use diesel::prelude::*;

/// What happened, as the trail names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    TenantCreated,
    KeyCreated,
    KeyRevoked,
    BrandCreated,
    BrandRetired,
    FormSaved,
    ChannelsChanged,
    SettingsChanged,
    ExportRead,
    DossierRead,
    OpeningsRead,
    DeadLetterRead,
    DocumentRead,
    SubjectErased,
    Backfill,
    AuthenticationFailed,
    RoleRefused,
    SignatureFailed,
    SigningKeyRotated,
    ReviewsRead,
    ReviewSettled,
    StatementsRead,
    ChangesRead,
    ChangesKeyRead,
    EventEndpointCreated,
    EventEndpointDeleted,
    EventDeliveryRetried,
    ImportRecorded,
    EntryPointCreated,
    IvrFlowSaved,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::TenantCreated => "tenant.created",
            AuditKind::KeyCreated => "key.created",
            AuditKind::KeyRevoked => "key.revoked",
            AuditKind::BrandCreated => "brand.created",
            AuditKind::BrandRetired => "brand.retired",
            AuditKind::FormSaved => "form.saved",
            AuditKind::ChannelsChanged => "channels.changed",
            AuditKind::SettingsChanged => "settings.changed",
            AuditKind::ExportRead => "export.read",
            AuditKind::DossierRead => "dossier.read",
            AuditKind::OpeningsRead => "openings.read",
            AuditKind::DeadLetterRead => "dead_letter.read",
            AuditKind::DocumentRead => "document.read",
            AuditKind::SubjectErased => "subject.erased",
            AuditKind::Backfill => "backfill",
            AuditKind::AuthenticationFailed => "authentication.failed",
            AuditKind::RoleRefused => "authorization.refused",
            AuditKind::SignatureFailed => "webhook.signature_failed",
            AuditKind::SigningKeyRotated => "signing_key.rotated",
            AuditKind::ReviewsRead => "reviews.read",
            AuditKind::ReviewSettled => "review.settled",
            AuditKind::StatementsRead => "statements.read",
            AuditKind::ChangesRead => "changes.read",
            AuditKind::ChangesKeyRead => "changes_key.read",
            AuditKind::EventEndpointCreated => "event_endpoint.created",
            AuditKind::EventEndpointDeleted => "event_endpoint.deleted",
            AuditKind::EventDeliveryRetried => "event_delivery.retried",
            AuditKind::ImportRecorded => "import.recorded",
            AuditKind::EntryPointCreated => "entry_point.created",
            AuditKind::IvrFlowSaved => "ivr_flow.saved",
        }
    }
}

/// The actor of what the operator does with the command line.
pub const OPERATOR_CLI: &str = "operator:cli";

/// One event to record: who (a key id, `operator`, `system:retention`,
/// `webhook:whatsapp`, …), what, and its details (a JSON object).
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub actor: &'a str,
    pub kind: AuditKind,
    pub details: serde_json::Value,
}

/// A recorded event.
#[derive(Debug, Clone, Queryable)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub kind: String,
    pub details: String,
}

/// Records an event in its own transaction; returns its number.
pub fn record(
    conn: &mut DbConn,
    tenant: &TenantId,
    event: &AuditEvent<'_>,
    now: Timestamp,
) -> QueryResult<i64> {
    conn.immediate_transaction(|conn| record_within(conn, tenant, event, now))
}

/// Records an event inside a transaction the caller holds, so that it
/// commits (or not) with what it tells of.
pub fn record_within(
    conn: &mut DbConn,
    tenant: &TenantId,
    event: &AuditEvent<'_>,
    now: Timestamp,
) -> QueryResult<i64> {
    crate::on_backend!(conn, |c| diesel::insert_into(audit_heads::table)
        .values((
            audit_heads::tenant_id.eq(tenant),
            audit_heads::size.eq(1i64)
        ))
        .on_conflict(audit_heads::tenant_id)
        .do_update()
        .set(audit_heads::size.eq(audit_heads::size + 1i64))
        .execute(c))?;
    let seq: i64 = audit_heads::table
        .find(tenant)
        .select(audit_heads::size)
        .first(conn)?;
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::tenant_id.eq(tenant),
            audit_events::seq.eq(seq),
            audit_events::at.eq(now.millis()),
            audit_events::actor.eq(event.actor),
            audit_events::kind.eq(event.kind.as_str()),
            audit_events::details.eq(event.details.to_string()),
        ))
        .execute(conn)?;
    Ok(seq)
}

/// Up to `limit` events of a tenant numbered above `after`, in order.
pub fn list(
    conn: &mut DbConn,
    tenant: &TenantId,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    audit_events::table
        .filter(audit_events::tenant_id.eq(tenant))
        .filter(audit_events::seq.gt(after))
        .order(audit_events::seq)
        .limit(limit)
        .select((
            audit_events::seq,
            audit_events::at,
            audit_events::actor,
            audit_events::kind,
            audit_events::details,
        ))
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tenant_t;

    #[test]
    fn events_are_numbered_per_tenant_without_gaps() {
        let (_dir, mut conn) = crate::store::test_db_with_tenant();
        let event = |kind| AuditEvent {
            actor: "key_0123456789ab",
            kind,
            details: serde_json::json!({"name": "x"}),
        };
        let now = Timestamp::from_millis(1_000);
        assert_eq!(
            record(&mut conn, &tenant_t(), &event(AuditKind::KeyCreated), now).unwrap(),
            1
        );
        assert_eq!(
            record(&mut conn, &tenant_t(), &event(AuditKind::KeyRevoked), now).unwrap(),
            2
        );
        // A write that fails with its transaction leaves no gap.
        let failed: QueryResult<()> = conn.immediate_transaction(|conn| {
            record_within(conn, &tenant_t(), &event(AuditKind::BrandCreated), now)?;
            Err(diesel::result::Error::RollbackTransaction)
        });
        assert!(failed.is_err());
        assert_eq!(
            record(&mut conn, &tenant_t(), &event(AuditKind::BrandRetired), now).unwrap(),
            3
        );
        let rows = list(&mut conn, &tenant_t(), 1, 10).unwrap();
        let kinds: Vec<(i64, &str)> = rows.iter().map(|r| (r.seq, r.kind.as_str())).collect();
        assert_eq!(kinds, [(2, "key.revoked"), (3, "brand.retired")]);
        assert_eq!(rows[0].details, r#"{"name":"x"}"#);
    }
}
