//! What the channel webhooks keep: each tenant's settings (secrets sealed by
//! the caller), which business numbers belong to whom, and the message ids
//! already handled.

use super::connection::{lock_shared_rule, SharedRule};
use super::schema::{channel_numbers, channel_settings, webhook_dedup};
use super::{DbConn, StoreError, StoreResult};
use crate::domain::access::TenantId;
use crate::providers::settings::{ChannelNumber, StoredSettings, WHATSAPP_PHONE_NUMBER_ID};
use diesel::prelude::*;

/// The tenant's channel settings (empty when never set).
pub fn settings_of(conn: &mut DbConn, tenant: &TenantId) -> StoreResult<StoredSettings> {
    let stored: Option<String> = crate::one_row!(
        conn,
        channel_settings::table
            .find(tenant)
            .select(channel_settings::settings)
    )?;
    match stored {
        None => Ok(StoredSettings::default()),
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| StoreError::Unreadable(format!("channel settings: {e}"))),
    }
}

/// Replaces the tenant's settings and numbers; call inside a transaction
/// that holds the tenant's log (`lock_log`). Returns the first number
/// another tenant holds (nothing is written then).
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn replace_settings(
    conn: &mut DbConn,
    tenant: &TenantId,
    settings: &str,
    numbers: &[ChannelNumber],
    now: i64,
) -> QueryResult<Option<ChannelNumber>> {
    {
        lock_shared_rule(conn, SharedRule::ChannelNumbers)?;
        for number in numbers {
            let holder: Option<String> = channel_numbers::table
                .find((number.kind, &number.value))
                .select(channel_numbers::tenant_id)
                .first(conn)
                .optional()?;
            if holder.is_some_and(|h| h != tenant.as_str()) {
                return Ok(Some(number.clone()));
            }
        }
        diesel::delete(channel_numbers::table.filter(channel_numbers::tenant_id.eq(tenant)))
            .execute(conn)?;
        let rows: Vec<_> = numbers
            .iter()
            .map(|n| {
                (
                    channel_numbers::kind.eq(n.kind),
                    channel_numbers::value.eq(&n.value),
                    channel_numbers::tenant_id.eq(tenant),
                )
            })
            .collect();
        crate::on_backend!(conn, |c| diesel::insert_into(channel_numbers::table)
            .values(&rows)
            .execute(c))?;
        crate::on_backend!(conn, |c| diesel::insert_into(channel_settings::table)
            .values((
                channel_settings::tenant_id.eq(tenant),
                channel_settings::settings.eq(settings),
                channel_settings::updated_at.eq(now),
            ))
            .on_conflict(channel_settings::tenant_id)
            .do_update()
            .set((
                channel_settings::settings.eq(settings),
                channel_settings::updated_at.eq(now),
            ))
            .execute(c))?;
        Ok(None)
    }
}

/// The tenant's configured WhatsApp phone number ids, in order.
pub fn whatsapp_phone_number_ids(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<Vec<String>> {
    channel_numbers::table
        .filter(channel_numbers::tenant_id.eq(tenant))
        .filter(channel_numbers::kind.eq(WHATSAPP_PHONE_NUMBER_ID))
        .order(channel_numbers::value)
        .select(channel_numbers::value)
        .load(conn)
}

/// Marks a provider message as handled; `false` when it was already (a
/// retry). Call it inside the transaction that records what it means.
pub fn first_delivery(
    conn: &mut DbConn,
    tenant: &TenantId,
    key_hash: &str,
    now: i64,
) -> QueryResult<bool> {
    let inserted = crate::on_backend!(conn, |c| diesel::insert_into(webhook_dedup::table)
        .values((
            webhook_dedup::tenant_id.eq(tenant),
            webhook_dedup::key_hash.eq(key_hash),
            webhook_dedup::seen_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}
