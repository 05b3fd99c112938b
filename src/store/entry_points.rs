//! Campaign entry points' rows (docs/entry-points.md). What they are and
//! when one is taken: `services/entry_points.rs`.

use super::schema::entry_points;
use super::DbConn;
use crate::domain::access::TenantId;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = entry_points)]
pub struct EntryPointRow {
    pub tenant_id: TenantId,
    pub id: String,
    pub brand: String,
    pub purposes: String,
    pub phrase: String,
    pub prompt: String,
    pub phone_number_id: Option<String>,
    pub created_at: i64,
}

pub fn find(conn: &mut DbConn, tenant: &TenantId, id: &str) -> QueryResult<Option<EntryPointRow>> {
    entry_points::table
        .find((tenant, id))
        .select(EntryPointRow::as_select())
        .first(conn)
        .optional()
}

/// The tenant's entry points, oldest first.
pub fn list(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<Vec<EntryPointRow>> {
    entry_points::table
        .filter(entry_points::tenant_id.eq(tenant))
        .order((entry_points::created_at, entry_points::id))
        .select(EntryPointRow::as_select())
        .load(conn)
}

pub fn insert(conn: &mut DbConn, row: &EntryPointRow) -> QueryResult<()> {
    diesel::insert_into(entry_points::table)
        .values((
            entry_points::tenant_id.eq(&row.tenant_id),
            entry_points::id.eq(&row.id),
            entry_points::brand.eq(&row.brand),
            entry_points::purposes.eq(&row.purposes),
            entry_points::phrase.eq(&row.phrase),
            entry_points::prompt.eq(&row.prompt),
            entry_points::phone_number_id.eq(&row.phone_number_id),
            entry_points::created_at.eq(row.created_at),
        ))
        .execute(conn)
        .map(|_| ())
}
