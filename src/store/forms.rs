//! Hosted forms (docs/pages.md): each form's current version and all its
//! versions, immutable.

use super::schema::{form_versions, forms};
use super::{can_name_a_row, DbConn, Rejection, StoreError, StoreResult};
use crate::domain::access::TenantId;
use crate::domain::form::FormDefinition;
use diesel::prelude::*;

/// A form as it stands: its current version.
#[derive(Debug, Clone)]
pub struct StoredForm {
    pub id: String,
    pub version: i64,
    pub definition: FormDefinition,
    pub created_at: i64,
    pub updated_at: i64,
}

fn read_definition(text: &str) -> StoreResult<FormDefinition> {
    serde_json::from_str(text).map_err(|e| StoreError::Unreadable(format!("a form: {e}")))
}

/// Saves a form: a new one (`replace` false; `Rejected(Conflict)` when the
/// id exists) or a new version of one (`replace` true;
/// `Rejected(NotFound)` when it does not exist). A definition equal to the
/// current one makes no new version. Returns the form as it stands.
pub fn save(
    conn: &mut DbConn,
    tenant: &TenantId,
    id: &str,
    definition: &FormDefinition,
    replace: bool,
    now: i64,
) -> StoreResult<StoredForm> {
    conn.immediate_transaction(|conn| {
        let current = find(conn, tenant, id)?;
        let version = match (&current, replace) {
            (Some(_), false) => return Err(StoreError::Rejected(Rejection::FormExists)),
            (None, true) => return Err(StoreError::Rejected(Rejection::NotFound("no such form"))),
            (Some(form), true) if form.definition == *definition => return Ok(form.clone()),
            (Some(form), true) => form.version + 1,
            (None, false) => 1,
        };
        let text = serde_json::to_string(definition).expect("a form serialises");
        diesel::insert_into(form_versions::table)
            .values((
                form_versions::tenant_id.eq(tenant),
                form_versions::form_id.eq(id),
                form_versions::version.eq(version),
                form_versions::definition.eq(&text),
                form_versions::created_at.eq(now),
            ))
            .execute(conn)?;
        if version == 1 {
            diesel::insert_into(forms::table)
                .values((
                    forms::tenant_id.eq(tenant),
                    forms::id.eq(id),
                    forms::version.eq(version),
                    forms::created_at.eq(now),
                    forms::updated_at.eq(now),
                ))
                .execute(conn)?;
        } else {
            diesel::update(forms::table.find((tenant, id)))
                .set((forms::version.eq(version), forms::updated_at.eq(now)))
                .execute(conn)?;
        }
        Ok(find(conn, tenant, id)?.expect("just saved"))
    })
}

/// A tenant's form, at its current version.
pub fn find(conn: &mut DbConn, tenant: &TenantId, id: &str) -> StoreResult<Option<StoredForm>> {
    if !can_name_a_row(id) {
        return Ok(None);
    }
    let found: Option<(i64, i64, i64, String)> = forms::table
        .inner_join(
            form_versions::table.on(form_versions::tenant_id
                .eq(forms::tenant_id)
                .and(form_versions::form_id.eq(forms::id))
                .and(form_versions::version.eq(forms::version))),
        )
        .filter(forms::tenant_id.eq(tenant))
        .filter(forms::id.eq(id))
        .select((
            forms::version,
            forms::created_at,
            forms::updated_at,
            form_versions::definition,
        ))
        .first(conn)
        .optional()?;
    found
        .map(|(version, created_at, updated_at, text)| {
            Ok(StoredForm {
                id: id.to_owned(),
                version,
                definition: read_definition(&text)?,
                created_at,
                updated_at,
            })
        })
        .transpose()
}

/// A tenant's forms, by id.
pub fn list(conn: &mut DbConn, tenant: &TenantId) -> StoreResult<Vec<StoredForm>> {
    let ids: Vec<String> = forms::table
        .filter(forms::tenant_id.eq(tenant))
        .order(forms::id)
        .select(forms::id)
        .load(conn)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(find(conn, tenant, &id)?);
    }
    Ok(out)
}
