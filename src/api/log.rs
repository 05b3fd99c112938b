//! The verifiable log for auditors (docs/ledger-format.md): checkpoints, keys,
//! inclusion and consistency proofs, and consent receipts.

use super::auth::{self, Caller};
use super::entries::EntryView;
use super::AppState;
use crate::domain::access::TenantId;
use crate::error::{ApiError, Problem};
use crate::ledger::entry::Openings;
use crate::store::audit::AuditKind;
use crate::store::consent::entry_at;
use crate::store::log::{self, CheckpointRow};
use crate::store::DbConn;
use actix_web::middleware::from_fn;
use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

fn note_response(row: CheckpointRow) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(row.note)
}

/// The latest checkpoint, signing one first when the tree grew.
pub async fn fresh_checkpoint(
    state: &AppState,
    tenant: &TenantId,
) -> Result<CheckpointRow, ApiError> {
    // What the checkpoint must cover: the log as this request found it.
    let wanted = match latest_covering(state, tenant, None).await? {
        Ok(current) => return Ok(current),
        Err(size) => size,
    };
    // One signing on request at a time per log, and at most one per
    // `SIGNING_SPACING`: readers polling during a burst share checkpoints
    // instead of each writing one.
    let gate = state.guards.checkpoint_gate(tenant);
    let mut last_signed = gate.lock().await;
    if let Ok(current) = latest_covering(state, tenant, Some(wanted)).await? {
        return Ok(current);
    }
    if let Some(at) = *last_signed {
        tokio::time::sleep_until((at + SIGNING_SPACING).into()).await;
    }
    let master = state.master.clone();
    let signer = state.signer.clone();
    let owned = tenant.to_owned();
    let row = state
        .db(move |conn| Ok(signer.ensure_checkpoint(conn, &master, &owned)?))
        .await?;
    *last_signed = Some(std::time::Instant::now());
    Ok(row)
}

/// The least time between two checkpoints of one log signed on request.
pub const SIGNING_SPACING: std::time::Duration = std::time::Duration::from_millis(250);

/// The latest checkpoint when it covers `size` entries (default: the
/// log's current size), else `Err(size)`.
async fn latest_covering(
    state: &AppState,
    tenant: &TenantId,
    size: Option<u64>,
) -> Result<Result<CheckpointRow, u64>, ApiError> {
    let tenant = tenant.to_owned();
    state
        .db(move |conn| {
            let size = match size {
                Some(size) => size,
                None => log::log_head(conn, &tenant)?.size,
            };
            let latest = log::latest_checkpoint(conn, &tenant)?;
            Ok(latest.filter(|c| c.size as u64 >= size).ok_or(size))
        })
        .await
}

/// Read the latest checkpoint
///
/// The signed note of the log's current size and root hash.
#[utoipa::path(
    tag = "log",
    responses(
        (status = 200, description = "The latest signed checkpoint (C2SP signed note), signed now if the tree grew", content_type = "text/plain", body = String),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Signing refused: the database is not a consistent extension of what was signed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/log/checkpoint", wrap = "from_fn(auth::auditor)")]
pub async fn latest_checkpoint(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    Ok(note_response(
        fresh_checkpoint(&state, &caller.tenant.id).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SizeQuery {
    /// A tree size with a stored checkpoint.
    pub size: u64,
}

/// Read a checkpoint by size
///
/// The signed note of the log at an earlier size.
#[utoipa::path(
    tag = "log",
    params(SizeQuery),
    responses(
        (status = 200, description = "The stored checkpoint of that size", content_type = "text/plain", body = String),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/log/checkpoints", wrap = "from_fn(auth::auditor)")]
pub async fn checkpoint_by_size(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<SizeQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant.id.clone();
    let size = query.size;
    let row = state
        .db(move |conn| Ok(log::checkpoint_of_size(conn, &tenant, size)?))
        .await?
        .ok_or_else(|| ApiError::not_found("no checkpoint of this size was signed"))?;
    Ok(note_response(row))
}

/// One signing key of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogKey {
    pub verifier_key: String,
    /// `current`, `retired` or `revoked`.
    pub status: String,
    /// The first tree size it signs.
    pub first_size: u64,
    /// The last tree size it may sign (retired and revoked keys).
    pub last_size: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogKeys {
    /// Current first.
    pub keys: Vec<LogKey>,
}

/// List the log's verifier keys
///
/// Every verifier key that ever signed the tenant's checkpoints, with when it
/// was used.
#[utoipa::path(
    tag = "log",
    responses(
        (status = 200, description = "The log's signing keys with their statuses and size ranges", body = LogKeys),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/log/keys", wrap = "from_fn(auth::auditor)")]
pub async fn keys(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant.id.clone();
    let rows = state
        .db(move |conn| Ok(log::signing_keys_of(conn, &tenant)?))
        .await?;
    Ok(HttpResponse::Ok().json(LogKeys {
        keys: rows
            .into_iter()
            .map(|k| LogKey {
                verifier_key: k.verifier_key,
                status: k.status,
                first_size: k.first_size as u64,
                last_size: k.last_size.map(|s| s as u64),
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    pub seq: u64,
    /// Default: the latest checkpoint's size (signed first if the tree grew).
    pub size: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProof {
    pub seq: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    /// RFC 9162 2.1.3 audit path, hex.
    pub proof: Vec<String>,
}

fn hexes(hashes: Vec<[u8; 32]>) -> Vec<String> {
    hashes.into_iter().map(hex::encode).collect()
}

fn current_size(conn: &mut DbConn, tenant: &TenantId) -> Result<u64, ApiError> {
    Ok(log::log_head(conn, tenant)?.size)
}

/// Prove an entry is in the log
///
/// An inclusion proof of one entry at a size (RFC 9162).
#[utoipa::path(
    tag = "log",
    params(InclusionQuery),
    responses(
        (status = 200, description = "The inclusion proof of entry `seq` in the tree of `size`", body = InclusionProof),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/log/proof/inclusion", wrap = "from_fn(auth::auditor)")]
pub async fn inclusion_proof(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<InclusionQuery>,
) -> Result<HttpResponse, ApiError> {
    let size = match query.size {
        Some(size) => size,
        None => fresh_checkpoint(&state, &caller.tenant.id).await?.size as u64,
    };
    let seq = query.seq;
    let tenant = caller.tenant.id.clone();
    let cache = state.nodes.clone();
    let proof = state
        // No transaction: the nodes of every size up to the log's size are
        // committed with it and never change.
        .db(move |conn| {
            let current = current_size(conn, &tenant)?;
            if seq >= size || size > current {
                return Err(ApiError::invalid_field(
                    "seq",
                    "out_of_range",
                    format!("need seq < size ≤ {current} (the log's size)"),
                ));
            }
            let leaf = log::DbNodes {
                conn,
                tenant: &tenant,
            }
            .leaf(seq)?;
            let proof = log::cached_inclusion_proof(conn, &cache, &tenant, seq, size)?;
            Ok(InclusionProof {
                seq,
                tree_size: size,
                leaf_hash: hex::encode(leaf),
                proof: hexes(proof),
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(proof))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    pub from: u64,
    pub to: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    /// RFC 9162 2.1.4 proof, hex; empty when from is 0 or equal to to.
    pub proof: Vec<String>,
}

/// Prove the log only grew
///
/// A consistency proof between two sizes (RFC 9162).
#[utoipa::path(
    tag = "log",
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "The consistency proof between two tree sizes", body = ConsistencyProof),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/log/proof/consistency", wrap = "from_fn(auth::auditor)")]
pub async fn consistency_proof(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ConsistencyQuery>,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = (query.from, query.to);
    let tenant = caller.tenant.id.clone();
    let cache = state.nodes.clone();
    let proof = state
        // No transaction: as for inclusion proofs.
        .db(move |conn| {
            let current = current_size(conn, &tenant)?;
            if from > to || to > current {
                return Err(ApiError::invalid_field(
                    "from",
                    "out_of_range",
                    format!("need 0 ≤ from ≤ to ≤ {current} (the log's size)"),
                ));
            }
            Ok(ConsistencyProof {
                from,
                to,
                proof: hexes(log::cached_consistency_proof(
                    conn, &cache, &tenant, from, to,
                )?),
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(proof))
}

/// A consent receipt (exact format).
#[derive(Debug, Serialize, ToSchema)]
pub struct Receipt {
    /// `consent-ledger-receipt/v1`
    pub format: &'static str,
    #[schema(value_type = crate::ledger::entry::Entry)]
    pub entry: Box<RawValue>,
    pub leaf_hash: String,
    pub tree_size: u64,
    pub inclusion_proof: Vec<String>,
    /// The signed checkpoint of `tree_size`.
    pub checkpoint: String,
    pub verifier_key: String,
    pub openings: Openings,
}

/// Get a receipt
///
/// A signed consent receipt: the entry, its inclusion proof and a checkpoint,
/// verifiable offline.
#[utoipa::path(
    tag = "log",
    params(("seq" = u64, Path, description = "0-based index in the tenant's log"), ReceiptQuery),
    responses(
        (status = 200, description = "The entry with its openings, proved against the checkpoint of `size`, or the latest (signed first if none covers it)", body = Receipt),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/entries/{seq}/receipt", wrap = "from_fn(auth::auditor)")]
pub async fn receipt(
    state: web::Data<AppState>,
    caller: Caller,
    seq: web::Path<String>,
    query: web::Query<ReceiptQuery>,
) -> Result<HttpResponse, ApiError> {
    let seq: u64 = seq
        .parse()
        .map_err(|_| ApiError::not_found("no entry with this seq"))?;
    if seq >= current_size_of(&state, &caller.tenant.id).await? {
        return Err(ApiError::not_found("no entry with this seq"));
    }
    let checkpoint = match query.size {
        Some(size) => signed_at(&state, &caller.tenant.id, seq, size).await?,
        None => fresh_checkpoint(&state, &caller.tenant.id).await?,
    };
    let tenant = caller.tenant.id.clone();
    let receipt = state
        .db(move |conn| {
            conn.snapshot(|conn| {
                let size = checkpoint.size as u64;
                let stored = entry_at(conn, &tenant, seq)?
                    .ok_or_else(|| ApiError::not_found("no entry with this seq"))?;
                let proof = log::inclusion_proof(conn, &tenant, seq, size)?;
                let verifier_key = log::key_for_size(conn, &tenant, size)?.verifier_key;
                let view = EntryView::try_from(stored)?;
                Ok(Receipt {
                    format: "consent-ledger-receipt/v1",
                    entry: view.entry,
                    leaf_hash: view.leaf_hash,
                    tree_size: size,
                    inclusion_proof: hexes(proof),
                    checkpoint: checkpoint.note,
                    verifier_key,
                    openings: view.openings,
                })
            })
        })
        .await?;
    tracing::info!(tenant = %caller.tenant.id, key_id = %caller.key_id, seq, "receipt issued with openings");
    let details = serde_json::json!({"via": "receipt", "seq": seq});
    caller.note(&state, AuditKind::OpeningsRead, details).await;
    Ok(HttpResponse::Ok().json(receipt))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReceiptQuery {
    /// The tree size of a checkpoint the log signed that holds the entry
    /// (a decision statement's, docs/statements.md); default: the latest.
    pub size: Option<u64>,
}

/// The stored checkpoint of `size`, which must hold the entry at `seq`.
async fn signed_at(
    state: &AppState,
    tenant: &TenantId,
    seq: u64,
    size: u64,
) -> Result<CheckpointRow, ApiError> {
    if size <= seq {
        return Err(ApiError::invalid_field(
            "size",
            "invalid_value",
            format!(
                "the tree of size {size} does not hold the entry at seq {seq}: `size` is above it"
            ),
        ));
    }
    let tenant = tenant.to_owned();
    state
        .db(move |conn| Ok(log::checkpoint_of_size(conn, &tenant, size)?))
        .await?
        .ok_or_else(|| ApiError::not_found("no checkpoint of this size was signed"))
}

async fn current_size_of(state: &AppState, tenant: &TenantId) -> Result<u64, ApiError> {
    let tenant = tenant.to_owned();
    state.db(move |conn| current_size(conn, &tenant)).await
}
