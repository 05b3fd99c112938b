//! Decision statements kept for senders (docs/statements.md): each stored
//! once per tenant by its SHA-256, found by the subject commitment it
//! names. Which statements are accepted: `services/statements.rs`.

use super::schema::statements;
use super::DbConn;
use crate::domain::access::TenantId;
use diesel::prelude::*;

/// A statement to keep.
pub struct NewStatement<'a> {
    pub sha256: &'a str,
    pub commitment: Option<&'a str>,
    pub decided_at: &'a str,
    pub note: &'a str,
}

/// A kept statement.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = statements)]
pub struct StatementRow {
    pub note: String,
    pub received_at: i64,
}

/// Keeps each statement once (one already kept stays as it was).
pub fn keep(
    conn: &mut DbConn,
    tenant: &TenantId,
    kept: &[NewStatement<'_>],
    received_at: i64,
) -> QueryResult<()> {
    for statement in kept {
        crate::on_backend!(conn, |c| diesel::insert_into(statements::table)
            .values((
                statements::tenant_id.eq(tenant),
                statements::sha256.eq(statement.sha256),
                statements::commitment.eq(statement.commitment),
                statements::decided_at.eq(statement.decided_at),
                statements::note.eq(statement.note),
                statements::received_at.eq(received_at),
            ))
            .on_conflict_do_nothing()
            .execute(c))?;
    }
    Ok(())
}

/// The statements that name one of `commitments`, oldest decision first.
pub fn naming(
    conn: &mut DbConn,
    tenant: &TenantId,
    commitments: &[String],
) -> QueryResult<Vec<StatementRow>> {
    statements::table
        .filter(statements::tenant_id.eq(tenant))
        .filter(statements::commitment.eq_any(commitments))
        .order((statements::decided_at.asc(), statements::sha256.asc()))
        .select(StatementRow::as_select())
        .load(conn)
}
