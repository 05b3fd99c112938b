//! Saving a hosted opt-in form (docs/pages.md): a new form, or a new
//! version of one when its definition changed. The definition's brand must
//! be exactly (after NFC) an active brand of the tenant.

use super::error::ServiceResult;
use crate::domain::access::TenantId;
use crate::domain::form::FormInput;
use crate::domain::problem::{ErrorCode, Invalid};
use crate::store::forms::{self, StoredForm};
use crate::store::tenants::find_brand;
use crate::store::DbConn;

/// Checks a definition and saves it: a new form (`replace` false: 409 when
/// the id exists), or a new version of it.
pub fn save(
    conn: &mut DbConn,
    tenant: &TenantId,
    input: FormInput,
    replace: bool,
    now: i64,
) -> ServiceResult<StoredForm> {
    let id = input.id.clone();
    let (brand, mut definition) = input.parse()?;
    let found = find_brand(conn, tenant, &brand)?.filter(|b| b.retired_at.is_none());
    let Some(found) = found.filter(|b| b.name == brand) else {
        return Err(Invalid::field(
            ErrorCode::UnknownBrand,
            "brand",
            "unknown_brand",
            "`brand` must be exactly (after NFC) an active brand of this tenant",
        )
        .into());
    };
    definition.brand = found.name;
    Ok(forms::save(conn, tenant, &id, &definition, replace, now)?)
}
