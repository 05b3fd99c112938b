//! Idempotency keys (SPEC section 10): scoped to (tenant, key id, route),
//! kept 24 hours. The key is first inserted `in_progress` in its own
//! transaction; the answer is stored with the write it belongs to.

use super::schema::idempotency_keys as idem;
use super::DbConn;
use diesel::prelude::*;

/// How long a key is remembered.
pub const RETENTION_MILLIS: i64 = 24 * 3600 * 1000;
/// After this long an `in_progress` row is taken over (its request died).
pub const TAKEOVER_MILLIS: i64 = 60 * 1000;

/// Where an idempotency key applies.
#[derive(Debug, Clone)]
pub struct IdempotencyScope {
    pub tenant_id: String,
    pub key_id: String,
    pub route: &'static str,
    pub key: String,
    pub request_sha256: String,
}

/// What to do with a request that carries an idempotency key.
#[derive(Debug, PartialEq, Eq)]
pub enum Begin {
    /// First time (or taken over): do the work.
    Proceed,
    /// Done before: answer this again.
    Replay { status: u16, body: String },
    /// Another request with this key is running.
    InProgress,
    /// The key was used with another body.
    Reused,
}

pub fn begin(conn: &mut DbConn, scope: &IdempotencyScope, now: i64) -> QueryResult<Begin> {
    conn.immediate_transaction(|conn| {
        let found = idem::table
            .filter(idem::tenant_id.eq(&scope.tenant_id))
            .filter(idem::key_id.eq(&scope.key_id))
            .filter(idem::route.eq(scope.route))
            .filter(idem::idempotency_key.eq(&scope.key))
            .select((
                idem::request_sha256,
                idem::state,
                idem::response_status,
                idem::response_body,
                idem::created_at,
                idem::updated_at,
            ))
            .first::<(String, String, Option<i32>, Option<String>, i64, i64)>(conn)
            .optional()?;
        let row = scoped(scope);
        match found {
            Some((_, _, _, _, created_at, _)) if created_at + RETENTION_MILLIS <= now => {
                diesel::delete(row).execute(conn)?;
            }
            Some((hash, _, _, _, _, _)) if hash != scope.request_sha256 => {
                return Ok(Begin::Reused)
            }
            Some((_, state, Some(status), Some(body), _, _)) if state == "done" => {
                return Ok(Begin::Replay {
                    status: status as u16,
                    body,
                })
            }
            Some((_, _, _, _, _, updated_at)) => {
                if updated_at + TAKEOVER_MILLIS > now {
                    return Ok(Begin::InProgress);
                }
                diesel::update(row)
                    .set(idem::updated_at.eq(now))
                    .execute(conn)?;
                return Ok(Begin::Proceed);
            }
            None => {}
        }
        diesel::insert_into(idem::table)
            .values((
                idem::tenant_id.eq(&scope.tenant_id),
                idem::key_id.eq(&scope.key_id),
                idem::route.eq(scope.route),
                idem::idempotency_key.eq(&scope.key),
                idem::request_sha256.eq(&scope.request_sha256),
                idem::state.eq("in_progress"),
                idem::created_at.eq(now),
                idem::updated_at.eq(now),
            ))
            .execute(conn)?;
        Ok(Begin::Proceed)
    })
}

type ScopedRow<'a> = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Filter<
            diesel::dsl::Filter<idem::table, diesel::dsl::Eq<idem::tenant_id, &'a String>>,
            diesel::dsl::Eq<idem::key_id, &'a String>,
        >,
        diesel::dsl::Eq<idem::route, &'static str>,
    >,
    diesel::dsl::Eq<idem::idempotency_key, &'a String>,
>;

fn scoped(scope: &IdempotencyScope) -> ScopedRow<'_> {
    idem::table
        .filter(idem::tenant_id.eq(&scope.tenant_id))
        .filter(idem::key_id.eq(&scope.key_id))
        .filter(idem::route.eq(scope.route))
        .filter(idem::idempotency_key.eq(&scope.key))
}

/// Stores the answer; call inside the transaction of the write it belongs to.
pub fn finish(
    conn: &mut DbConn,
    scope: &IdempotencyScope,
    status: u16,
    body: &str,
    subject_id: Option<i64>,
    now: i64,
) -> QueryResult<()> {
    diesel::update(scoped(scope))
        .set((
            idem::state.eq("done"),
            idem::response_status.eq(i32::from(status)),
            idem::response_body.eq(body),
            idem::subject_id.eq(subject_id),
            idem::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Forgets an `in_progress` key whose request failed, so it can be retried.
pub fn abandon(conn: &mut DbConn, scope: &IdempotencyScope) -> QueryResult<()> {
    diesel::delete(scoped(scope).filter(idem::state.eq("in_progress")))
        .execute(conn)
        .map(|_| ())
}
