//! Evidence documents (docs/recording.md): stored whole in the database, tied
//! to the subjects whose paper opt-ins or opt-outs name them, deleted with
//! their group on erasure, and a day after their upload when no entry
//! names them (housekeeping).

use super::schema::{document_subjects, documents};
use super::{can_name_a_row, DbConn, Rejection, StoreError, StoreResult};
use crate::domain::access::TenantId;
use crate::domain::document::MediaType;
use crate::domain::ids::SubjectId;
use crate::domain::record::Record;
use diesel::prelude::*;

/// A document to keep.
pub struct NewDocument<'a> {
    pub id: &'a str,
    pub sha256: &'a str,
    pub media_type: MediaType,
    pub body: &'a [u8],
}

/// Keeps a document (inside the caller's transaction) unless the tenant's
/// documents would then take more than `quota` bytes: `false`, and nothing
/// kept. Uploads to one tenant take turns here (SQLite: the write lock;
/// PostgreSQL: a transaction-scoped advisory lock per tenant, the
/// transaction's first statement), so two cannot both fit the last space.
pub fn insert(
    conn: &mut DbConn,
    tenant: &TenantId,
    document: &NewDocument<'_>,
    quota: i64,
    now: i64,
) -> QueryResult<bool> {
    if let DbConn::Pg(c) = conn {
        use diesel::sql_types::{Integer, Text};
        diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind::<Integer, _>(QUOTA_LOCK)
            .bind::<Text, _>(tenant.as_str())
            .execute(c)?;
    }
    let size = document.body.len() as i64;
    if used(conn, tenant)?.saturating_add(size) > quota {
        return Ok(false);
    }
    diesel::insert_into(documents::table)
        .values((
            documents::tenant_id.eq(tenant),
            documents::id.eq(document.id),
            documents::sha256.eq(document.sha256),
            documents::media_type.eq(document.media_type.as_str()),
            documents::size.eq(size),
            documents::body.eq(document.body),
            documents::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(true)
}

/// The first key of the advisory locks of tenants' document quotas (the
/// second is the tenant id's `hashtext`); two-key locks never meet the
/// one-key locks of `connection.rs`.
const QUOTA_LOCK: i32 = 0x646f_6373;

/// The bytes a tenant's documents take.
pub fn used(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<i64> {
    use diesel::dsl::sql;
    use diesel::sql_types::BigInt;
    documents::table
        .filter(documents::tenant_id.eq(tenant))
        .select(sql::<BigInt>("CAST(COALESCE(SUM(size), 0) AS BIGINT)"))
        .first(conn)
}

/// What is known of a stored document without reading its bytes.
pub struct DocumentInfo {
    pub media_type: String,
    pub sha256: String,
    /// Its length in bytes.
    pub size: i64,
}

/// One of the tenant's documents, without its bytes.
pub fn info(conn: &mut DbConn, tenant: &TenantId, id: &str) -> QueryResult<Option<DocumentInfo>> {
    if !can_name_a_row(id) {
        return Ok(None);
    }
    let found: Option<(String, String, i64)> = documents::table
        .find((tenant, id))
        .select((documents::media_type, documents::sha256, documents::size))
        .first(conn)
        .optional()?;
    Ok(found.map(|(media_type, sha256, size)| DocumentInfo {
        media_type,
        sha256,
        size,
    }))
}

/// The bytes of one of the tenant's documents (`None` once it is deleted).
pub fn body(conn: &mut DbConn, tenant: &TenantId, id: &str) -> QueryResult<Option<Vec<u8>>> {
    if !can_name_a_row(id) {
        return Ok(None);
    }
    documents::table
        .find((tenant, id))
        .select(documents::body)
        .first(conn)
        .optional()
}

/// Checks the document an opt-in's or opt-out's evidence names (it must be
/// the tenant's, and have the evidence's `document_sha256` when that is
/// given) and ties it to the subject (inside the append's transaction).
pub fn attach_named(
    conn: &mut DbConn,
    tenant: &TenantId,
    record: &Record,
    subject_id: SubjectId,
) -> StoreResult<()> {
    let evidence = record.evidence();
    let Some(id) = evidence.get("document_id") else {
        return Ok(());
    };
    let sha256: Option<String> = match can_name_a_row(id) {
        true => documents::table
            .find((tenant, id))
            .select(documents::sha256)
            .first(conn)
            .optional()?,
        false => None,
    };
    let Some(sha256) = sha256 else {
        return Err(StoreError::Rejected(Rejection::UnknownDocument));
    };
    if evidence
        .get("document_sha256")
        .is_some_and(|named| named != sha256)
    {
        return Err(StoreError::Rejected(Rejection::DocumentMismatch));
    }
    crate::on_backend!(conn, |c| diesel::insert_into(document_subjects::table)
        .values((
            document_subjects::tenant_id.eq(tenant),
            document_subjects::document_id.eq(id),
            document_subjects::subject_id.eq(subject_id),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(())
}

/// Deletes the documents tied to a subject (erasure), and the ties.
pub fn delete_of_subject(
    conn: &mut DbConn,
    tenant: &TenantId,
    subject_id: SubjectId,
) -> QueryResult<usize> {
    let ids: Vec<String> = document_subjects::table
        .filter(document_subjects::tenant_id.eq(tenant))
        .filter(document_subjects::subject_id.eq(subject_id))
        .select(document_subjects::document_id)
        .load(conn)?;
    diesel::delete(
        document_subjects::table
            .filter(document_subjects::tenant_id.eq(tenant))
            .filter(document_subjects::document_id.eq_any(&ids)),
    )
    .execute(conn)?;
    diesel::delete(
        documents::table
            .filter(documents::tenant_id.eq(tenant))
            .filter(documents::id.eq_any(&ids)),
    )
    .execute(conn)
}

/// An uploaded document that no entry names is kept this long (a day), for
/// the paper opt-in that will name it.
pub const UNNAMED_KEPT_MILLIS: i64 = 86_400_000;

/// No entry names the document: no subject is tied to it.
const UNNAMED: &str = "NOT EXISTS (SELECT 1 FROM document_subjects s \
     WHERE s.tenant_id = documents.tenant_id AND s.document_id = documents.id)";

/// Deletes up to `limit` of the documents uploaded before `before` that no
/// entry names, oldest first; returns how many. Each tenant's are deleted
/// in one transaction under its log's lock and checked again there, so an
/// append that names one either committed first (and the document stays)
/// or finds it gone (`unknown_document`).
pub fn purge_unnamed(conn: &mut DbConn, before: i64, limit: i64) -> QueryResult<usize> {
    use diesel::dsl::sql;
    use diesel::sql_types::Bool;
    let found: Vec<(TenantId, String)> = documents::table
        .filter(documents::created_at.lt(before))
        .filter(sql::<Bool>(UNNAMED))
        .order(documents::created_at)
        .select((documents::tenant_id, documents::id))
        .limit(limit)
        .load(conn)?;
    let mut by_tenant: std::collections::BTreeMap<TenantId, Vec<String>> = Default::default();
    for (tenant, id) in found {
        by_tenant.entry(tenant).or_default().push(id);
    }
    let mut deleted = 0;
    for (tenant, ids) in by_tenant {
        deleted += conn.immediate_transaction(|conn| {
            super::connection::lock_log(conn, &tenant)?;
            diesel::delete(
                documents::table
                    .filter(documents::tenant_id.eq(&tenant))
                    .filter(documents::id.eq_any(&ids))
                    .filter(documents::created_at.lt(before))
                    .filter(sql::<Bool>(UNNAMED)),
            )
            .execute(conn)
        })?;
    }
    Ok(deleted)
}
