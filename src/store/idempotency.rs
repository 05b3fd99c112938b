//! Idempotency keys (docs/api.md): scoped to (tenant, key id, route),
//! kept 24 hours. The key is first inserted `in_progress` in its own
//! transaction; the answer is stored with the write it belongs to.

use super::schema::idempotency_keys as idem;
use super::DbConn;
use crate::domain::access::TenantId;
use crate::domain::ids::SubjectId;
use diesel::prelude::*;

/// How long a key is remembered.
pub const RETENTION_MILLIS: i64 = 24 * 3600 * 1000;
/// After this long an `in_progress` row is taken over (its request died).
pub const TAKEOVER_MILLIS: i64 = 60 * 1000;

/// How a record stored before the upgrade to keyed hashes marks its plain
/// SHA-256 of the body (the migration adds it).
const LEGACY_PREFIX: &str = "sha256:";

/// Where an idempotency key applies.
#[derive(Debug, Clone)]
pub struct IdempotencyScope {
    pub tenant_id: TenantId,
    pub key_id: String,
    pub route: &'static str,
    pub key: String,
    /// The tenant's keyed hash of the body (what is stored).
    pub request_sha256: String,
    /// What a record stored before keyed hashes holds for the same body
    /// (`sha256:` and its plain hash): it still matches its retry until
    /// it expires.
    legacy_hash: String,
    /// Random per request: only the request that holds the key may finish or abandon it.
    pub owner: String,
}

impl IdempotencyScope {
    pub fn new(
        tenant_id: &TenantId,
        key_id: &str,
        route: &'static str,
        key: &str,
        (keyed_hash, plain_sha256): (&str, &str),
    ) -> Self {
        Self {
            tenant_id: tenant_id.to_owned(),
            key_id: key_id.to_owned(),
            route,
            key: key.to_owned(),
            request_sha256: keyed_hash.to_owned(),
            legacy_hash: format!("{LEGACY_PREFIX}{plain_sha256}"),
            owner: hex::encode(crate::keys::random_bytes::<16>()),
        }
    }
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

#[tracing::instrument(level = "debug", skip_all, fields(tenant = %scope.tenant_id, route = scope.route))]
pub fn begin(conn: &mut DbConn, scope: &IdempotencyScope, now: i64) -> QueryResult<Begin> {
    conn.immediate_transaction(|conn| {
        // Two requests with one key on two instances: one waits for the other.
        super::connection::lock_log(conn, &scope.tenant_id)?;
        type Found = (String, String, Option<i32>, Option<String>, i64, i64);
        let found: Option<Found> = crate::one_row!(
            conn,
            scoped(scope).select((
                idem::request_sha256,
                idem::state,
                idem::response_status,
                idem::response_body,
                idem::created_at,
                idem::updated_at,
            ))
        )?;
        let row = scoped(scope);
        match found {
            Some((_, _, _, _, created_at, _)) if created_at + RETENTION_MILLIS <= now => {
                crate::execute!(conn, diesel::delete(row))?;
            }
            Some((hash, _, _, _, _, _))
                if hash != scope.request_sha256 && hash != scope.legacy_hash =>
            {
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
                crate::execute!(
                    conn,
                    diesel::update(row)
                        .set((idem::updated_at.eq(now), idem::owner.eq(&scope.owner)))
                )?;
                return Ok(Begin::Proceed);
            }
            None => {}
        }
        crate::execute!(
            conn,
            diesel::insert_into(idem::table).values((
                idem::tenant_id.eq(&scope.tenant_id),
                idem::key_id.eq(&scope.key_id),
                idem::route.eq(scope.route),
                idem::idempotency_key.eq(&scope.key),
                idem::request_sha256.eq(&scope.request_sha256),
                idem::owner.eq(&scope.owner),
                idem::state.eq("in_progress"),
                idem::created_at.eq(now),
                idem::updated_at.eq(now),
            ))
        )?;
        Ok(Begin::Proceed)
    })
}

type ScopedRow<'a> = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Filter<
            diesel::dsl::Filter<idem::table, diesel::dsl::Eq<idem::tenant_id, &'a TenantId>>,
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

/// Stores the answer; call inside the transaction of the write it belongs
/// to. `false`: another request took the key over, and the write must roll back.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %scope.tenant_id, route = scope.route))]
pub fn finish(
    conn: &mut DbConn,
    scope: &IdempotencyScope,
    status: u16,
    body: &str,
    subject_id: Option<SubjectId>,
    now: i64,
) -> QueryResult<bool> {
    crate::execute!(
        conn,
        diesel::update(
            scoped(scope)
                .filter(idem::owner.eq(&scope.owner))
                .filter(idem::state.eq("in_progress")),
        )
        .set((
            idem::state.eq("done"),
            idem::response_status.eq(i32::from(status)),
            idem::response_body.eq(body),
            idem::subject_id.eq(subject_id.map(|s| s.0)),
            idem::updated_at.eq(now),
        ))
    )
    .map(|n| n == 1)
}

/// What a key holds now, for a request that lost it to a takeover: the
/// answer of the request that finished it, or `InProgress`.
pub fn current(conn: &mut DbConn, scope: &IdempotencyScope) -> QueryResult<Begin> {
    let found: Option<(String, String, Option<i32>, Option<String>)> = crate::one_row!(
        conn,
        scoped(scope).select((
            idem::request_sha256,
            idem::state,
            idem::response_status,
            idem::response_body,
        ))
    )?;
    Ok(match found {
        Some((hash, _, _, _)) if hash != scope.request_sha256 => Begin::Reused,
        Some((_, state, Some(status), Some(body))) if state == "done" => Begin::Replay {
            status: status as u16,
            body,
        },
        _ => Begin::InProgress,
    })
}

/// Forgets the keys kept longer than 24 hours (answers, and `in_progress`
/// rows of requests that died), the oldest first and at most `limit` in
/// one transaction. Returns how many were forgotten.
#[tracing::instrument(level = "debug", skip_all)]
pub fn purge_expired(conn: &mut DbConn, now: i64, limit: i64) -> QueryResult<usize> {
    conn.immediate_transaction(|conn| {
        let expired: Vec<(String, String, String, String)> = idem::table
            .filter(idem::created_at.le(now - RETENTION_MILLIS))
            .order(idem::created_at)
            .limit(limit)
            .select((
                idem::tenant_id,
                idem::key_id,
                idem::route,
                idem::idempotency_key,
            ))
            .load(conn)?;
        for (tenant_id, key_id, route, key) in &expired {
            crate::execute!(
                conn,
                diesel::delete(
                    idem::table
                        .filter(idem::tenant_id.eq(tenant_id))
                        .filter(idem::key_id.eq(key_id))
                        .filter(idem::route.eq(route))
                        .filter(idem::idempotency_key.eq(key)),
                )
            )?;
        }
        Ok(expired.len())
    })
}

/// Forgets an `in_progress` key whose request failed, so it can be retried.
pub fn abandon(conn: &mut DbConn, scope: &IdempotencyScope) -> QueryResult<()> {
    crate::execute!(
        conn,
        diesel::delete(
            scoped(scope)
                .filter(idem::owner.eq(&scope.owner))
                .filter(idem::state.eq("in_progress")),
        )
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::tenants;
    use crate::store::tenant_t;

    fn db() -> (tempfile::TempDir, DbConn) {
        crate::store::test_db_with_tenant()
    }

    fn scope(body: &str) -> IdempotencyScope {
        IdempotencyScope::new(
            &tenant_t(),
            "key_1",
            "opt-ins",
            "k",
            (&format!("keyed-{body}"), body),
        )
    }

    /// A record stored before the upgrade (its plain hash, marked by the
    /// migration) still matches its retry, which replays it; another body
    /// is still refused.
    #[test]
    fn a_plain_hash_stored_before_the_upgrade_still_matches_its_retry() {
        let (_dir, mut conn) = db();
        let old =
            IdempotencyScope::new(&tenant_t(), "key_1", "opt-ins", "k", ("sha256:a", "unused"));
        assert_eq!(begin(&mut conn, &old, 1_000).unwrap(), Begin::Proceed);
        assert!(finish(&mut conn, &old, 201, "{}", None, 1_001).unwrap());
        assert_eq!(
            begin(&mut conn, &scope("a"), 2_000).unwrap(),
            Begin::Replay {
                status: 201,
                body: "{}".into()
            }
        );
        assert_eq!(begin(&mut conn, &scope("b"), 2_000).unwrap(), Begin::Reused);
        let stored: String = idem::table
            .select(idem::request_sha256)
            .first(&mut conn)
            .unwrap();
        assert_eq!(stored, "sha256:a");
    }

    #[test]
    fn a_key_is_replayed_reused_or_in_progress() {
        let (_dir, mut conn) = db();
        let first = scope("a");
        assert_eq!(begin(&mut conn, &first, 1_000).unwrap(), Begin::Proceed);
        // A second request with the same body while the first runs.
        assert_eq!(
            begin(&mut conn, &scope("a"), 2_000).unwrap(),
            Begin::InProgress
        );
        assert_eq!(begin(&mut conn, &scope("b"), 2_000).unwrap(), Begin::Reused);
        assert!(finish(&mut conn, &first, 201, "{}", None, 3_000).unwrap());
        assert_eq!(
            begin(&mut conn, &scope("a"), 4_000).unwrap(),
            Begin::Replay {
                status: 201,
                body: "{}".into()
            }
        );
        // After 24 hours the key is forgotten.
        assert_eq!(
            begin(&mut conn, &scope("b"), 1_000 + RETENTION_MILLIS).unwrap(),
            Begin::Proceed
        );
    }

    #[test]
    fn a_taken_over_key_belongs_to_the_new_request_only() {
        let (_dir, mut conn) = db();
        let stalled = scope("a");
        assert_eq!(begin(&mut conn, &stalled, 0).unwrap(), Begin::Proceed);
        let retry = scope("a");
        assert_eq!(
            begin(&mut conn, &retry, TAKEOVER_MILLIS).unwrap(),
            Begin::Proceed
        );
        // The stalled request can neither finish nor abandon the retry's key.
        assert!(!finish(&mut conn, &stalled, 201, "stale", None, TAKEOVER_MILLIS + 1).unwrap());
        abandon(&mut conn, &stalled).unwrap();
        assert!(finish(&mut conn, &retry, 201, "fresh", None, TAKEOVER_MILLIS + 2).unwrap());
        assert_eq!(
            begin(&mut conn, &scope("a"), TAKEOVER_MILLIS + 3).unwrap(),
            Begin::Replay {
                status: 201,
                body: "fresh".into()
            }
        );
    }

    #[test]
    fn keys_older_than_a_day_are_purged_in_batches() {
        let (_dir, mut conn) = db();
        for (i, at) in [0, 1, 2, RETENTION_MILLIS].into_iter().enumerate() {
            let key = format!("k{i}");
            let scope = IdempotencyScope::new(&tenant_t(), "key_1", "opt-ins", &key, ("h", "a"));
            assert_eq!(begin(&mut conn, &scope, at).unwrap(), Begin::Proceed);
        }
        let now = RETENTION_MILLIS + 2;
        assert_eq!(purge_expired(&mut conn, now, 2).unwrap(), 2);
        assert_eq!(purge_expired(&mut conn, now, 2).unwrap(), 1);
        assert_eq!(purge_expired(&mut conn, now, 2).unwrap(), 0);
        let left: Vec<String> = idem::table
            .select(idem::idempotency_key)
            .load(&mut conn)
            .unwrap();
        assert_eq!(left, vec!["k3"], "a key younger than a day stays");
    }

    /// The stalled request's append rolls back whole, whether the retry
    /// has finished (the stalled one then answers the retry's answer) or not.
    #[test]
    fn an_append_whose_key_was_taken_over_records_nothing() {
        use crate::domain::evidence::Evidence;
        use crate::domain::number::E164;
        use crate::domain::purpose::{CaptureChannel, MessageChannelSet, PurposeSet};
        use crate::domain::time::Timestamp;
        use crate::store::append::{self, Answer, OptOutRecord, Record};
        let (_dir, mut conn) = db();
        let record = Record::OptOut(OptOutRecord {
            identity: E164::from_canonical("+4915112345678").unwrap().into(),
            channel: CaptureChannel::Api,
            purposes: PurposeSet::all(),
            message_channels: MessageChannelSet::all(),
            captured_at: Timestamp::from_millis(0),
            backfill: false,
            evidence: Evidence::from_pairs([("reason", "test")]),
            lift_class: None,
        });
        let render = |_: &append::Appended| "{}".to_owned();
        let stalled = scope("a");
        assert_eq!(begin(&mut conn, &stalled, 0).unwrap(), Begin::Proceed);
        let retry = scope("a");
        assert_eq!(
            begin(&mut conn, &retry, TAKEOVER_MILLIS).unwrap(),
            Begin::Proceed
        );
        let at = Timestamp::from_millis(TAKEOVER_MILLIS + 1);
        // An append under `scope`, in its own transaction.
        let master = crate::keys::MasterKey::from_bytes([7; 32]);
        let append_under = |conn: &mut DbConn, scope: &IdempotencyScope| {
            let answer = Some(Answer {
                scope,
                render: &render,
            });
            conn.immediate_transaction(|conn| {
                append::append_locked(conn, &master, &tenant_t(), "key_1", &record, answer, at)
            })
        };
        let lost = append_under(&mut conn, &stalled);
        assert!(matches!(
            lost,
            Err(crate::store::StoreError::Rejected(
                crate::store::Rejection::IdempotencyLost
            ))
        ));
        let size = |conn: &mut DbConn| -> i64 {
            tenants::table
                .find("t")
                .select(tenants::tree_size)
                .first(conn)
                .unwrap()
        };
        assert_eq!(size(&mut conn), 0, "the stalled append rolled back");
        assert_eq!(current(&mut conn, &stalled).unwrap(), Begin::InProgress);
        let done = append_under(&mut conn, &retry);
        assert_eq!(done.unwrap().seq, 0);
        assert_eq!(size(&mut conn), 1);
        assert_eq!(
            current(&mut conn, &stalled).unwrap(),
            Begin::Replay {
                status: 201,
                body: "{}".into()
            }
        );
    }
}
