//! The verifiable log's storage: Merkle subtree hashes, the tenants' signing
//! keys and the signed checkpoints.

use super::schema::{checkpoints, entries, merkle_nodes, signing_keys, tenants};
use super::DbConn;
use crate::domain::access::TenantId;
use crate::keys::MasterKey;
use crate::ledger::merkle::{self, Hash, Nodes};
use crate::ledger::note;
use diesel::prelude::*;
use ed25519_dalek::SigningKey;

/// Reads complete-subtree hashes of one tenant's tree.
pub struct DbNodes<'a> {
    pub conn: &'a mut DbConn,
    pub tenant: &'a TenantId,
}

impl Nodes for DbNodes<'_> {
    type Error = diesel::result::Error;

    fn node(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        let bytes: Vec<u8> = crate::the_row!(
            self.conn,
            merkle_nodes::table
                .filter(merkle_nodes::tenant_id.eq(self.tenant))
                .filter(merkle_nodes::level.eq(level as i32))
                .filter(merkle_nodes::idx.eq(index as i64))
                .select(merkle_nodes::hash)
        )?;
        bytes.try_into().map_err(|_| {
            diesel::result::Error::DeserializationError("a Merkle node is not 32 bytes".into())
        })
    }
}

impl DbNodes<'_> {
    /// The leaf hash of entry `index`.
    pub fn leaf(&mut self, index: u64) -> QueryResult<Hash> {
        self.node(0, index)
    }
}

/// Hashes of the upper Merkle levels, kept in memory per process: stored
/// nodes never change, and the upper ones are in every proof. Proofs then
/// read only the lowest levels from the database. Signing and `verify-db`
/// never use it: they read what the database holds.
#[derive(Debug, Default)]
pub struct NodeCache(std::sync::RwLock<NodeMaps>);

#[derive(Debug, Default)]
pub struct NodeMaps {
    by_tenant: std::collections::HashMap<TenantId, std::collections::HashMap<(u32, u64), Hash>>,
    len: usize,
}

/// The lowest level kept in the cache (a 16th of the leaves at most).
const CACHED_FROM_LEVEL: u32 = 4;
/// Most nodes kept (about 100 MiB); past it the cache starts again.
const CACHE_LIMIT: usize = 1_000_000;

impl NodeCache {
    fn get(&self, tenant: &TenantId, level: u32, index: u64) -> Option<Hash> {
        let maps = self.0.read().unwrap_or_else(|p| p.into_inner());
        maps.by_tenant.get(tenant)?.get(&(level, index)).copied()
    }

    fn put(&self, tenant: &TenantId, level: u32, index: u64, hash: Hash) {
        let mut maps = self.0.write().unwrap_or_else(|p| p.into_inner());
        if maps.len >= CACHE_LIMIT {
            maps.by_tenant.clear();
            maps.len = 0;
        }
        let fresh = match maps.by_tenant.get_mut(tenant) {
            Some(map) => map.insert((level, index), hash).is_none(),
            None => {
                let map = std::collections::HashMap::from([((level, index), hash)]);
                maps.by_tenant.insert(tenant.clone(), map);
                true
            }
        };
        maps.len += usize::from(fresh);
    }
}

/// Database reads through the cache.
pub struct CachedNodes<'a> {
    pub conn: &'a mut DbConn,
    pub tenant: &'a TenantId,
    pub cache: &'a NodeCache,
}

impl Nodes for CachedNodes<'_> {
    type Error = diesel::result::Error;

    fn node(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        let mut db = DbNodes {
            conn: self.conn,
            tenant: self.tenant,
        };
        if level < CACHED_FROM_LEVEL {
            return db.node(level, index);
        }
        if let Some(hash) = self.cache.get(self.tenant, level, index) {
            return Ok(hash);
        }
        let hash = db.node(level, index)?;
        self.cache.put(self.tenant, level, index, hash);
        Ok(hash)
    }
}

/// An inclusion proof for serving, through the cache.
pub fn cached_inclusion_proof(
    conn: &mut DbConn,
    cache: &NodeCache,
    tenant: &TenantId,
    index: u64,
    size: u64,
) -> QueryResult<Vec<Hash>> {
    merkle::inclusion_proof(
        &mut CachedNodes {
            conn,
            tenant,
            cache,
        },
        index,
        size,
    )
}

/// A consistency proof for serving, through the cache.
pub fn cached_consistency_proof(
    conn: &mut DbConn,
    cache: &NodeCache,
    tenant: &TenantId,
    from: u64,
    to: u64,
) -> QueryResult<Vec<Hash>> {
    merkle::consistency_proof(
        &mut CachedNodes {
            conn,
            tenant,
            cache,
        },
        from,
        to,
    )
}

/// Stores the nodes that appending leaf `index` completes (inside the append transaction).
pub fn store_leaf(conn: &mut DbConn, tenant: &TenantId, index: u64, leaf: Hash) -> QueryResult<()> {
    let completed = merkle::nodes_completed_by(&mut DbNodes { conn, tenant }, index, leaf)?;
    let rows: Vec<_> = completed
        .into_iter()
        .map(|(level, idx, hash)| {
            (
                merkle_nodes::tenant_id.eq(tenant),
                merkle_nodes::level.eq(level as i32),
                merkle_nodes::idx.eq(idx as i64),
                merkle_nodes::hash.eq(hash.to_vec()),
            )
        })
        .collect();
    match conn {
        // Row by row on SQLite: one statement that stays prepared (a
        // multi-row insert is prepared anew for each count of rows), and
        // in-process statements cost no round trip.
        DbConn::Sqlite(c) => {
            for row in &rows {
                diesel::insert_into(merkle_nodes::table)
                    .values(row)
                    .execute(c)?;
            }
            Ok(())
        }
        DbConn::Pg(c) => diesel::insert_into(merkle_nodes::table)
            .values(&rows)
            .execute(c)
            .map(|_| ()),
    }
}

/// The root of the tenant's first `size` leaves.
pub fn root_at(conn: &mut DbConn, tenant: &TenantId, size: u64) -> QueryResult<Hash> {
    merkle::root(&mut DbNodes { conn, tenant }, size)
}

pub fn inclusion_proof(
    conn: &mut DbConn,
    tenant: &TenantId,
    index: u64,
    size: u64,
) -> QueryResult<Vec<Hash>> {
    merkle::inclusion_proof(&mut DbNodes { conn, tenant }, index, size)
}

pub fn consistency_proof(
    conn: &mut DbConn,
    tenant: &TenantId,
    from: u64,
    to: u64,
) -> QueryResult<Vec<Hash>> {
    merkle::consistency_proof(&mut DbNodes { conn, tenant }, from, to)
}

/// A tenant's signing key as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub id: i64,
    pub tenant_id: String,
    pub verifier_key: String,
    pub seed_sealed: String,
    pub status: String,
    pub first_size: i64,
    pub last_size: Option<i64>,
    pub created_at: i64,
}

/// The associated data that binds a sealed signing seed to its tenant.
fn seed_aad(tenant: &TenantId) -> Vec<u8> {
    format!("consent-ledger/tenant-seed/v1\n{tenant}").into_bytes()
}

impl SigningKeyRow {
    /// Opens the Ed25519 key; `None` if the master key does not fit.
    pub fn open(&self, master: &MasterKey) -> Option<SigningKey> {
        let seed = master.kek().open(
            &self.seed_sealed,
            &seed_aad(&TenantId::stored(self.tenant_id.clone())),
        )?;
        let seed: [u8; 32] = seed.try_into().ok()?;
        Some(SigningKey::from_bytes(&seed))
    }
}

/// Makes and stores a new current signing key for the tenant, valid from `first_size`.
pub fn insert_signing_key(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    origin: &str,
    first_size: u64,
    now: i64,
) -> QueryResult<(SigningKeyRow, SigningKey)> {
    let seed = crate::keys::random_bytes::<32>();
    let key = SigningKey::from_bytes(&seed);
    let verifier = note::verifier_key(origin, &key.verifying_key().to_bytes());
    let sealed = master.kek().seal(&seed, &seed_aad(tenant));
    let row = crate::on_backend!(conn, |c| diesel::insert_into(signing_keys::table)
        .values((
            signing_keys::tenant_id.eq(tenant),
            signing_keys::verifier_key.eq(&verifier),
            signing_keys::seed_sealed.eq(&sealed),
            signing_keys::status.eq("current"),
            signing_keys::first_size.eq(first_size as i64),
            signing_keys::created_at.eq(now),
        ))
        .returning(SigningKeyRow::as_returning())
        .get_result(c))?;
    Ok((row, key))
}

pub fn current_signing_key(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<SigningKeyRow> {
    signing_keys::table
        .filter(signing_keys::tenant_id.eq(tenant))
        .filter(signing_keys::status.eq("current"))
        .select(SigningKeyRow::as_select())
        .first(conn)
}

/// Every key of the tenant, current first, then newest first.
pub fn signing_keys_of(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<Vec<SigningKeyRow>> {
    let mut rows: Vec<SigningKeyRow> = signing_keys::table
        .filter(signing_keys::tenant_id.eq(tenant))
        .order(signing_keys::id.desc())
        .select(SigningKeyRow::as_select())
        .load(conn)?;
    rows.sort_by_key(|k| k.status != "current");
    Ok(rows)
}

/// The key that signs checkpoints of `size`: the current one when its range
/// covers it, else the retired key whose range does (never a revoked one).
pub fn key_for_size(conn: &mut DbConn, tenant: &TenantId, size: u64) -> QueryResult<SigningKeyRow> {
    let keys = signing_keys_of(conn, tenant)?;
    let covers = |k: &SigningKeyRow| {
        k.status != "revoked"
            && k.first_size as u64 <= size
            && k.last_size.is_none_or(|l| size <= l as u64)
    };
    keys.iter()
        .find(|k| covers(k))
        .cloned()
        .map_or_else(|| current_signing_key(conn, tenant), Ok)
}

/// Marks the current key retired (or revoked) at `last_size`.
pub fn retire_signing_key(
    conn: &mut DbConn,
    id: i64,
    last_size: u64,
    revoked: bool,
) -> QueryResult<()> {
    diesel::update(signing_keys::table.find(id))
        .set((
            signing_keys::status.eq(if revoked { "revoked" } else { "retired" }),
            signing_keys::last_size.eq(Some(last_size as i64)),
        ))
        .execute(conn)
        .map(|_| ())
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = checkpoints)]
pub struct CheckpointRow {
    pub id: i64,
    pub tenant_id: String,
    pub size: i64,
    pub root: Vec<u8>,
    pub note: String,
    pub created_at: i64,
}

/// The newest checkpoint (the largest size; the latest note of that size).
pub fn latest_checkpoint(
    conn: &mut DbConn,
    tenant: &TenantId,
) -> QueryResult<Option<CheckpointRow>> {
    checkpoints::table
        .filter(checkpoints::tenant_id.eq(tenant))
        .order((checkpoints::size.desc(), checkpoints::id.desc()))
        .select(CheckpointRow::as_select())
        .first(conn)
        .optional()
}

/// The latest note of one size.
pub fn checkpoint_of_size(
    conn: &mut DbConn,
    tenant: &TenantId,
    size: u64,
) -> QueryResult<Option<CheckpointRow>> {
    checkpoints::table
        .filter(checkpoints::tenant_id.eq(tenant))
        .filter(checkpoints::size.eq(size as i64))
        .order(checkpoints::id.desc())
        .select(CheckpointRow::as_select())
        .first(conn)
        .optional()
}

/// Every stored checkpoint of the tenant, in signing order.
pub fn all_checkpoints(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<Vec<CheckpointRow>> {
    checkpoints::table
        .filter(checkpoints::tenant_id.eq(tenant))
        .order(checkpoints::id.asc())
        .select(CheckpointRow::as_select())
        .load(conn)
}

pub fn insert_checkpoint(
    conn: &mut DbConn,
    tenant: &TenantId,
    size: u64,
    root: &Hash,
    note: &str,
    now: i64,
) -> QueryResult<CheckpointRow> {
    crate::on_backend!(conn, |c| diesel::insert_into(checkpoints::table)
        .values((
            checkpoints::tenant_id.eq(tenant),
            checkpoints::size.eq(size as i64),
            checkpoints::root.eq(root.to_vec()),
            checkpoints::note.eq(note),
            checkpoints::created_at.eq(now),
        ))
        .returning(CheckpointRow::as_returning())
        .get_result(c))
}

/// A log's head: its origin, size and the last entry's leaf hash (hex).
#[derive(Debug, Clone)]
pub struct LogHead {
    pub origin: String,
    pub size: u64,
    pub head_hash: String,
}

/// The head of the tenant's log.
pub fn log_head(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<LogHead> {
    let (origin, size, head_hash) = tenants::table
        .find(tenant)
        .select((tenants::origin, tenants::tree_size, tenants::head_hash))
        .first::<(String, i64, String)>(conn)?;
    Ok(LogHead {
        origin,
        size: size as u64,
        head_hash,
    })
}

/// The tenants whose log grew past its latest checkpoint (two queries,
/// whatever the number of tenants).
pub fn grown_logs(conn: &mut DbConn) -> QueryResult<Vec<TenantId>> {
    let sizes: Vec<(TenantId, i64)> = tenants::table
        .select((tenants::id, tenants::tree_size))
        .order(tenants::id)
        .load(conn)?;
    let signed: std::collections::HashMap<String, Option<i64>> = checkpoints::table
        .group_by(checkpoints::tenant_id)
        .select((checkpoints::tenant_id, diesel::dsl::max(checkpoints::size)))
        .load::<(String, Option<i64>)>(conn)?
        .into_iter()
        .collect();
    Ok(sizes
        .into_iter()
        .filter(|(tenant, size)| {
            signed
                .get(tenant.as_str())
                .copied()
                .flatten()
                .is_none_or(|s| s < *size)
        })
        .map(|(tenant, _)| tenant)
        .collect())
}

/// How many entry rows lie at or beyond `from`, or below 0: rows a scan
/// that stopped at `from` did not read (inserted behind the log's back).
pub fn entries_beyond(conn: &mut DbConn, tenant: &TenantId, from: u64) -> QueryResult<i64> {
    entries::table
        .filter(entries::tenant_id.eq(tenant))
        .filter(entries::seq.ge(from as i64).or(entries::seq.lt(0)))
        .count()
        .get_result(conn)
}

/// A page of stored Merkle nodes `(level, index, hash)` after `after`, in
/// (level, index) order.
pub fn node_page(
    conn: &mut DbConn,
    tenant: &TenantId,
    after: (i32, i64),
    limit: i64,
) -> QueryResult<Vec<(i32, i64, Vec<u8>)>> {
    merkle_nodes::table
        .filter(merkle_nodes::tenant_id.eq(tenant))
        .filter(
            merkle_nodes::level.gt(after.0).or(merkle_nodes::level
                .eq(after.0)
                .and(merkle_nodes::idx.gt(after.1))),
        )
        .order((merkle_nodes::level.asc(), merkle_nodes::idx.asc()))
        .limit(limit)
        .select((merkle_nodes::level, merkle_nodes::idx, merkle_nodes::hash))
        .load(conn)
}

/// The logs at a glance, for the metrics (no tenant named).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOverview {
    pub logs: i64,
    pub entries: i64,
    /// Entries beyond each log's latest checkpoint, summed.
    pub unsigned: i64,
    /// The oldest latest-checkpoint time among logs with unsigned entries.
    pub oldest_waiting_since: Option<i64>,
}

/// Every log's size against its latest checkpoint.
pub fn overview(conn: &mut DbConn) -> QueryResult<LogOverview> {
    let sizes: Vec<(String, i64)> = tenants::table
        .select((tenants::id, tenants::tree_size))
        .load(conn)?;
    let signed: Vec<(String, Option<i64>, Option<i64>)> = checkpoints::table
        .group_by(checkpoints::tenant_id)
        .select((
            checkpoints::tenant_id,
            diesel::dsl::max(checkpoints::size),
            diesel::dsl::max(checkpoints::created_at),
        ))
        .load(conn)?;
    let signed: std::collections::HashMap<String, (i64, i64)> = signed
        .into_iter()
        .map(|(tenant, size, at)| (tenant, (size.unwrap_or(0), at.unwrap_or(0))))
        .collect();
    let mut overview = LogOverview {
        logs: sizes.len() as i64,
        ..LogOverview::default()
    };
    for (tenant, size) in sizes {
        overview.entries += size;
        let (signed_size, signed_at) = signed.get(&tenant).copied().unwrap_or((0, 0));
        if size > signed_size {
            overview.unsigned += size - signed_size;
            overview.oldest_waiting_since = Some(
                overview
                    .oldest_waiting_since
                    .map_or(signed_at, |t| t.min(signed_at)),
            );
        }
    }
    Ok(overview)
}

/// The leaf hashes (hex) stored at `seqs`, those the log has, by seq; read
/// in chunks of a few hundred.
pub fn leaf_hashes_at(
    conn: &mut DbConn,
    tenant: &TenantId,
    seqs: &[u64],
) -> QueryResult<std::collections::HashMap<u64, String>> {
    let mut found = std::collections::HashMap::with_capacity(seqs.len());
    for chunk in seqs.chunks(500) {
        let wanted: Vec<i64> = chunk.iter().map(|&s| s as i64).collect();
        let rows: Vec<(i64, String)> = entries::table
            .filter(entries::tenant_id.eq(tenant))
            .filter(entries::seq.eq_any(wanted))
            .select((entries::seq, entries::leaf_hash))
            .load(conn)?;
        found.extend(rows.into_iter().map(|(seq, leaf)| (seq as u64, leaf)));
    }
    Ok(found)
}
