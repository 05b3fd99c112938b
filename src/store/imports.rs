//! Bulk imports' rows (docs/import.md): where each import stands. What is
//! recorded and when: `services/imports.rs`.

use super::schema::imports;
use super::DbConn;
use crate::domain::access::TenantId;
use diesel::prelude::*;

/// Being recorded (or cut short by a crash: a rerun completes it).
pub const RUNNING: &str = "running";
/// Every line recorded or refused.
pub const DONE: &str = "done";
/// Refused whole (`all_or_nothing`): nothing recorded.
pub const REFUSED: &str = "refused";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = imports)]
pub struct ImportRow {
    pub tenant_id: TenantId,
    pub id: String,
    pub mode: String,
    pub format: String,
    pub collector: String,
    pub status: String,
    pub next_line: i64,
    pub read_lines: i64,
    pub recorded: i64,
    pub refused: i64,
    pub refused_lines: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Where an import stands, as written after each group of lines.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = imports)]
pub struct Progress<'a> {
    pub status: &'a str,
    pub next_line: i64,
    pub read_lines: i64,
    pub recorded: i64,
    pub refused: i64,
    pub refused_lines: &'a str,
    pub updated_at: i64,
}

pub fn find(conn: &mut DbConn, tenant: &TenantId, id: &str) -> QueryResult<Option<ImportRow>> {
    imports::table
        .find((tenant, id))
        .select(ImportRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut DbConn, row: &ImportRow) -> QueryResult<()> {
    diesel::insert_into(imports::table)
        .values((
            imports::tenant_id.eq(&row.tenant_id),
            imports::id.eq(&row.id),
            imports::mode.eq(&row.mode),
            imports::format.eq(&row.format),
            imports::collector.eq(&row.collector),
            imports::status.eq(&row.status),
            imports::next_line.eq(row.next_line),
            imports::read_lines.eq(row.read_lines),
            imports::recorded.eq(row.recorded),
            imports::refused.eq(row.refused),
            imports::refused_lines.eq(&row.refused_lines),
            imports::created_at.eq(row.created_at),
            imports::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Takes up an import again: its mode and collector now, running.
pub fn resume(
    conn: &mut DbConn,
    tenant: &TenantId,
    id: &str,
    (mode, collector): (&str, &str),
    now: i64,
) -> QueryResult<()> {
    diesel::update(imports::table.find((tenant, id)))
        .set((
            imports::mode.eq(mode),
            imports::collector.eq(collector),
            imports::status.eq(RUNNING),
            imports::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Writes an import's progress if its first line not done is still
/// `from` (else another recorder moved it on): whether it did.
pub fn save(
    conn: &mut DbConn,
    (tenant, id): (&TenantId, &str),
    from: i64,
    progress: &Progress<'_>,
) -> QueryResult<bool> {
    diesel::update(imports::table.find((tenant, id)))
        .filter(imports::next_line.eq(from))
        .set(progress)
        .execute(conn)
        .map(|n| n == 1)
}
