//! The append path's two `UPDATE`s as statements diesel keeps prepared.
//! Diesel prepares each of its own `UPDATE` statements anew on every run
//! (a changeset may skip fields, so it never caches one): in a profile of
//! opt-ins, preparing statements took a tenth of the group leader's time,
//! most of it these two, which every new subject and every entry run. Both
//! backends: binds are written with diesel's placeholders (`?`, `$n`).

use crate::domain::access::TenantId;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Text};
use diesel::QueryResult;

/// `UPDATE tenants SET tree_size, head_hash, head_recorded_at WHERE id`:
/// the log's new head.
#[derive(Debug, Clone, Copy)]
pub struct SetHead<'a> {
    pub tenant: &'a TenantId,
    pub size: i64,
    pub hash: &'a str,
    pub recorded_at: i64,
}

/// `UPDATE subjects SET group_id = id WHERE id`: a new subject in a group
/// of its own.
#[derive(Debug, Clone, Copy)]
pub struct OwnGroup {
    pub subject: i64,
}

impl<DB> QueryFragment<DB> for SetHead<'_>
where
    DB: Backend,
    i64: ToSql<BigInt, DB>,
    str: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE tenants SET tree_size = ");
        out.push_bind_param::<BigInt, _>(&self.size)?;
        out.push_sql(", head_hash = ");
        out.push_bind_param::<Text, _>(self.hash)?;
        out.push_sql(", head_recorded_at = ");
        out.push_bind_param::<BigInt, _>(&self.recorded_at)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Text, _>(self.tenant.as_str())?;
        Ok(())
    }
}

impl<DB> QueryFragment<DB> for OwnGroup
where
    DB: Backend,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE subjects SET group_id = id WHERE id = ");
        out.push_bind_param::<BigInt, _>(&self.subject)?;
        Ok(())
    }
}

// One fixed SQL text each: the statement cache finds them by type.
impl QueryId for SetHead<'_> {
    type QueryId = SetHead<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryId for OwnGroup {
    type QueryId = OwnGroup;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Conn> diesel::RunQueryDsl<Conn> for SetHead<'_> {}
impl<Conn> diesel::RunQueryDsl<Conn> for OwnGroup {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::{subjects, tenants};
    use crate::store::tenant_t;
    use diesel::connection::{Connection, InstrumentationEvent};
    use diesel::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts the statements the connection adds to its cache from now on.
    fn count_statements_cached(conn: &mut crate::store::DbConn) -> Arc<AtomicUsize> {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { .. } = event {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        });
        count
    }

    #[test]
    fn the_head_and_a_subjects_group_are_written_as_diesels_own_updates_would() {
        let (_dir, mut conn) = crate::store::test_db_with_tenant();
        let set = SetHead {
            tenant: &tenant_t(),
            size: 7,
            hash: "ab",
            recorded_at: 1_700_000_000_123,
        };
        let cached = count_statements_cached(&mut conn);
        assert_eq!(crate::execute!(&mut conn, set).unwrap(), 1);
        // Twice: the second run finds the statement prepared.
        assert_eq!(crate::execute!(&mut conn, set).unwrap(), 1);
        assert_eq!(
            cached.load(Ordering::SeqCst),
            1,
            "prepared once, then cached"
        );
        let head: (i64, String, Option<i64>) = tenants::table
            .find("t")
            .select((
                tenants::tree_size,
                tenants::head_hash,
                tenants::head_recorded_at,
            ))
            .first(&mut conn)
            .unwrap();
        assert_eq!(head, (7, "ab".to_owned(), Some(1_700_000_000_123)));
        let other = SetHead {
            tenant: &TenantId::parse("nobody").expect("a tenant id"),
            ..set
        };
        assert_eq!(crate::execute!(&mut conn, other).unwrap(), 0);

        let cached = count_statements_cached(&mut conn);
        for subject in [41, 42] {
            assert_eq!(crate::execute!(&mut conn, OwnGroup { subject }).unwrap(), 0);
        }
        let master = crate::keys::MasterKey::from_bytes([7; 32]);
        let id = crate::store::subjects::insert_subject(
            &mut conn,
            &master,
            &tenant_t(),
            "c",
            None,
            (1, None),
        )
        .unwrap();
        // This statement once, and the subject's insert.
        assert_eq!(
            cached.load(Ordering::SeqCst),
            2,
            "prepared once, then cached"
        );
        let group: i64 = subjects::table
            .find(id)
            .select(subjects::group_id)
            .first(&mut conn)
            .unwrap();
        assert_eq!(group, id.0);
    }
}
