//! A tenant's channel settings (docs/webhooks.md): replacing them, and
//! reading them for a webhook. Replacing checks each opt-in match's brand,
//! keeps the secrets a request omits, refuses a business number another
//! tenant uses, and applies the opt-outs kept while a number was not
//! configured, all in one transaction under the log's lock.

use super::dead_letters::apply_letters_for_business;
use super::error::ServiceResult;
use crate::domain::access::TenantId;
use crate::domain::evidence::FieldError;
use crate::domain::problem::{ErrorCode, Invalid};
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::providers::settings::{
    apply_input, BrandLookup, ChannelSettingsInput, StoredSettings, TWILIO_NUMBER,
};
use crate::store::channels::{replace_settings, settings_of};
use crate::store::connection::lock_log;
use crate::store::tenants::TenantRow;
use crate::store::tenants::{find_brand, find_tenant};
use crate::store::DbConn;

/// Replaces a tenant's channel settings with `input`; answers what they
/// became.
pub fn replace(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant_row: &TenantRow,
    input: ChannelSettingsInput,
    now: Timestamp,
) -> ServiceResult<StoredSettings> {
    let tenant = &tenant_row.id;
    let languages = tenant_row.policy.languages;
    // Brands are read first; a brand retired meanwhile only stops the
    // match from recording (the webhook checks again).
    let lookups = brand_lookups(conn, tenant, &input)?;
    let brand = |name: &str| {
        lookups
            .iter()
            .find(|(n, _)| n == name)
            .map_or(BrandLookup::Unknown, |(_, l)| l.clone())
    };
    let kek = master.kek();
    conn.immediate_transaction(|conn| {
        lock_log(conn, tenant)?;
        // The secrets a PUT omits are kept from the settings as they stand
        // under the lock: a concurrent PUT's new secret is never replaced
        // by the one it replaced.
        let previous = settings_of(conn, tenant)?;
        let stored = apply_input(input, Some(&previous), &kek, (tenant, languages), &brand)
            .map_err(|errors| Invalid {
                errors,
                ..Invalid::new(
                    ErrorCode::InvalidRequest,
                    "the channel settings are not valid; `errors` names each field",
                )
            })?;
        let json = serde_json::to_string(&stored).expect("serialisable");
        let taken = replace_settings(conn, tenant, &json, &stored.numbers(), now.millis())?;
        if let Some(number) = taken {
            let field = if number.kind == TWILIO_NUMBER {
                "twilio.numbers"
            } else {
                "whatsapp.phone_numbers"
            };
            return Err(Invalid {
                errors: vec![FieldError::new(field, "number_taken")],
                ..Invalid::new(
                    ErrorCode::InvalidRequest,
                    "a business number is already used by another tenant",
                )
            }
            .into());
        }
        // Opt-outs kept while a number was not configured apply now.
        let applied = apply_letters_for_business(conn, master, tenant, &stored, now)?;
        tracing::info!(
            kept_opt_outs_applied = applied.len(),
            "channel settings replaced"
        );
        Ok(stored)
    })
}

/// What each brand an opt-in match names is, in the order named.
fn brand_lookups(
    conn: &mut DbConn,
    tenant: &TenantId,
    input: &ChannelSettingsInput,
) -> ServiceResult<Vec<(String, BrandLookup)>> {
    let names = input
        .whatsapp
        .iter()
        .flat_map(|w| w.opt_in.iter())
        .chain(input.twilio.iter().flat_map(|t| t.opt_in.iter()))
        .map(|m| m.brand.clone())
        .collect::<Vec<_>>();
    let mut lookups = Vec::new();
    for name in names {
        let lookup = match find_brand(conn, tenant, &name)? {
            Some(b) if b.retired_at.is_none() => BrandLookup::Active(b.name),
            Some(_) => BrandLookup::Retired,
            None => BrandLookup::Unknown,
        };
        lookups.push((name, lookup));
    }
    Ok(lookups)
}

/// A tenant with its channel settings; `None` for an unknown tenant (a
/// webhook answers it exactly as a bad signature).
pub fn of_tenant(
    conn: &mut DbConn,
    tenant: &TenantId,
) -> ServiceResult<Option<(TenantRow, StoredSettings)>> {
    let Some(row) = find_tenant(conn, tenant)? else {
        return Ok(None);
    };
    let mut settings = settings_of(conn, tenant)?;
    super::entry_points::add_matches(conn, tenant, &mut settings)?;
    Ok(Some((row, settings)))
}
