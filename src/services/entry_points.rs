//! Campaign entry points (docs/entry-points.md): defining one (its phrase
//! checked by the rules of the channel settings' opt-in matches, plus two
//! words or more), listing them with their links, and the opt-in matches
//! they add to a webhook's settings.

use super::error::ServiceResult;
use crate::domain::access::TenantId;
use crate::domain::entry_point::{
    click_to_chat_link, has_two_words, is_entry_point_id, EntryPoint, EntryPointInput,
};
use crate::domain::evidence::FieldError;
use crate::domain::problem::{ErrorCode, Invalid};
use crate::domain::purpose::Purpose;
use crate::domain::time::Timestamp;
use crate::providers::settings::{check_opt_in_match, BrandLookup, OptInMatch, StoredSettings};
use crate::store::channels::settings_of;
use crate::store::entry_points::{self, EntryPointRow};
use crate::store::tenants::{find_brand, TenantRow};
use crate::store::DbConn;

/// The most entry points one tenant keeps.
pub const MAX_ENTRY_POINTS: usize = 1_000;

fn invalid(errors: Vec<FieldError>) -> Invalid {
    Invalid {
        errors,
        ..Invalid::new(
            ErrorCode::InvalidRequest,
            "the entry point is not valid; `errors` names each field",
        )
    }
}

/// Defines an entry point: 201's body, or why not (422; 409 for an id
/// the tenant has).
pub fn create(
    conn: &mut DbConn,
    tenant: &TenantRow,
    input: EntryPointInput,
    now: Timestamp,
) -> ServiceResult<EntryPoint> {
    let settings = settings_of(conn, &tenant.id)?;
    let checked = check(conn, tenant, &settings, &input)?;
    let row = EntryPointRow {
        tenant_id: tenant.id.clone(),
        id: input.id,
        brand: checked.brand,
        purposes: serde_json::to_string(&checked.purposes).expect("purposes serialise"),
        phrase: input.phrase,
        prompt: input.prompt,
        phone_number_id: input.phone_number_id,
        created_at: now.millis(),
    };
    conn.immediate_transaction(|conn| {
        if entry_points::find(conn, &tenant.id, &row.id)?.is_some() {
            return Err(Invalid::new(
                ErrorCode::EntryPointExists,
                "the tenant has an entry point with this id",
            )
            .into());
        }
        if entry_points::list(conn, &tenant.id)?.len() >= MAX_ENTRY_POINTS {
            return Err(invalid(vec![FieldError::new("id", "too_many")]).into());
        }
        entry_points::insert(conn, &row)?;
        Ok::<_, super::error::ServiceError>(())
    })?;
    Ok(view(&settings, row).expect("checked to have a link"))
}

/// An input checked: the match as it will be heard.
fn check(
    conn: &mut DbConn,
    tenant: &TenantRow,
    settings: &StoredSettings,
    input: &EntryPointInput,
) -> ServiceResult<OptInMatch> {
    let mut errors = Vec::new();
    if !is_entry_point_id(&input.id) {
        errors.push(FieldError::new("id", "invalid_value"));
    }
    if !has_two_words(&input.phrase) {
        errors.push(FieldError::new("phrase", "one_word"));
    }
    let number = display_number(settings, input.phone_number_id.as_deref());
    if number.is_none() {
        errors.push(FieldError::new("phone_number_id", "no_whatsapp_number"));
    }
    let lookup = match find_brand(conn, &tenant.id, &input.brand)? {
        Some(b) if b.retired_at.is_none() => BrandLookup::Active(b.name),
        Some(_) => BrandLookup::Retired,
        None => BrandLookup::Unknown,
    };
    let m = OptInMatch {
        match_text: input.phrase.clone(),
        brand: input.brand.clone(),
        purposes: input.purposes.clone(),
        message_channels: None,
        prompt: input.prompt.clone(),
        entry_point: Some(input.id.clone()),
    };
    let hearing = (tenant.policy.languages, &settings.own_keywords());
    let checked = check_opt_in_match(&m, hearing, &|_| lookup.clone()).map_err(|found| {
        found.into_iter().map(|e| match e.field.as_str() {
            "match" => FieldError::new("phrase", e.code),
            _ => e,
        })
    });
    match checked {
        Ok(checked) if errors.is_empty() => Ok(checked),
        Ok(_) => Err(invalid(errors).into()),
        Err(found) => {
            errors.extend(found);
            Err(invalid(errors).into())
        }
    }
}

/// The display form of the WhatsApp number an entry point's link opens:
/// `phone_number_id`'s, or the tenant's first.
fn display_number<'s>(settings: &'s StoredSettings, id: Option<&str>) -> Option<&'s str> {
    let numbers = &settings.whatsapp.as_ref()?.phone_numbers;
    let number = match id {
        Some(id) => numbers.iter().find(|n| n.id == id)?,
        None => numbers.first()?,
    };
    number.display.as_deref()
}

/// A stored entry point with its link (`None` when its WhatsApp number is
/// no longer configured).
fn view(settings: &StoredSettings, row: EntryPointRow) -> Option<EntryPoint> {
    let number = display_number(settings, row.phone_number_id.as_deref())?;
    Some(EntryPoint {
        link: click_to_chat_link(number, &row.phrase)?,
        purposes: serde_json::from_str::<Vec<Purpose>>(&row.purposes).unwrap_or_default(),
        id: row.id,
        brand: row.brand,
        phrase: row.phrase,
        prompt: row.prompt,
        phone_number_id: row.phone_number_id,
    })
}

/// The tenant's entry points that have a link (their WhatsApp number is
/// configured), oldest first.
pub fn list(conn: &mut DbConn, tenant: &TenantId) -> ServiceResult<Vec<EntryPoint>> {
    let settings = settings_of(conn, tenant)?;
    let rows = entry_points::list(conn, tenant)?;
    Ok(rows
        .into_iter()
        .filter_map(|r| view(&settings, r))
        .collect())
}

/// One entry point, if the tenant has it with a link.
pub fn find(conn: &mut DbConn, tenant: &TenantId, id: &str) -> ServiceResult<Option<EntryPoint>> {
    let settings = settings_of(conn, tenant)?;
    let row = entry_points::find(conn, tenant, id)?;
    Ok(row.and_then(|r| view(&settings, r)))
}

/// Adds the tenant's entry points to the WhatsApp opt-in matches a webhook
/// hears (after the channel settings' own, which win a tie).
pub fn add_matches(
    conn: &mut DbConn,
    tenant: &TenantId,
    settings: &mut StoredSettings,
) -> ServiceResult<()> {
    let Some(whatsapp) = settings.whatsapp.as_mut() else {
        return Ok(());
    };
    for row in entry_points::list(conn, tenant)? {
        whatsapp.opt_in.push(OptInMatch {
            match_text: row.phrase,
            brand: row.brand,
            purposes: serde_json::from_str(&row.purposes).unwrap_or_default(),
            message_channels: None,
            prompt: row.prompt,
            entry_point: Some(row.id),
        });
    }
    Ok(())
}
