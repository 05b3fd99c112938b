//! Hosted phone opt-in flows' rows (docs/ivr.md), every version kept.
//! What a flow is and what a call records: `services/ivr.rs`.

use super::schema::ivr_flows;
use super::DbConn;
use crate::domain::access::TenantId;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ivr_flows)]
pub struct FlowRow {
    pub tenant_id: TenantId,
    pub id: String,
    pub version: i64,
    pub definition: String,
    pub created_at: i64,
}

/// A flow's newest version.
pub fn latest(conn: &mut DbConn, tenant: &TenantId, id: &str) -> QueryResult<Option<FlowRow>> {
    ivr_flows::table
        .filter(ivr_flows::tenant_id.eq(tenant))
        .filter(ivr_flows::id.eq(id))
        .order(ivr_flows::version.desc())
        .select(FlowRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut DbConn, row: &FlowRow) -> QueryResult<()> {
    diesel::insert_into(ivr_flows::table)
        .values((
            ivr_flows::tenant_id.eq(&row.tenant_id),
            ivr_flows::id.eq(&row.id),
            ivr_flows::version.eq(row.version),
            ivr_flows::definition.eq(&row.definition),
            ivr_flows::created_at.eq(row.created_at),
        ))
        .execute(conn)
        .map(|_| ())
}
