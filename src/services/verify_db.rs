//! `verify-db`: scans the live database the way `verify` checks an export,
//! checks every stored checkpoint's signature and root, and names the first
//! row that was altered, deleted, inserted or reordered.

use crate::domain::access::TenantId;
use crate::keys::MasterKey;
use crate::ledger::entry::EntryRef;
use crate::ledger::merkle::{self, MemoryTree, Nodes};
use crate::ledger::note::{self, Checkpoint, SignedNote, Verifier};
use crate::ledger::verify::{check_entry, Failure, OpeningView, Place};
use crate::services::signer::Signer;
use crate::store::consent::{entry_range, TextCache};
use crate::store::log::{self, LogHead};
use crate::store::tenants::all_tenant_ids;
use crate::store::DbConn;

/// What a clean scan covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    pub tenant: TenantId,
    pub entries: u64,
    pub checkpoints: u64,
    /// Checkpoints signed only by a key later revoked as compromised: their
    /// roots match the entries, but their signatures prove nothing.
    pub revoked_only: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("{tenant}: {failure}")]
    Failed { tenant: TenantId, failure: Failure },
}

fn failure(tenant: &TenantId, place: Place, what: impl Into<String>) -> ScanError {
    ScanError::Failed {
        tenant: tenant.to_owned(),
        failure: Failure {
            place,
            what: what.into(),
        },
    }
}

/// Rows read per query.
const CHUNK: u64 = 5_000;

/// Scans every tenant (or one), in one read transaction. The signing keys
/// must open with `master` (a key row added behind our back does not), and
/// the log must extend what `signer` records as signed.
pub fn verify_db(
    conn: &mut DbConn,
    only: Option<&str>,
    master: &MasterKey,
    signer: &Signer,
) -> Result<Vec<Scanned>, ScanError> {
    // One snapshot: an append while the live database is scanned is not
    // seen half (a head that counts fewer rows than the table holds).
    conn.snapshot(|conn| {
        let mut ids = all_tenant_ids(conn)?;
        if let Some(one) = only {
            ids.retain(|t| t == one);
        }
        ids.iter()
            .map(|t| scan_tenant(conn, t, master, signer))
            .collect()
    })
}

fn scan_tenant(
    conn: &mut DbConn,
    tenant: &TenantId,
    master: &MasterKey,
    signer: &Signer,
) -> Result<Scanned, ScanError> {
    let LogHead {
        origin,
        size: tree_size,
        head_hash,
    } = log::log_head(conn, tenant)?;
    let (mut tree, last_leaf) = scan_entries(conn, tenant, &origin)?;
    let expected = tree.size();
    // Rows the chunked read cannot reach: far beyond the head, or negative.
    let stray = log::entries_beyond(conn, tenant, expected)?;
    if stray > 0 {
        return Err(failure(
            tenant,
            Place::Seq(expected),
            format!("{stray} row(s) lie outside the log (inserted)"),
        ));
    }
    if expected != tree_size {
        return Err(failure(
            tenant,
            Place::Seq(expected.min(tree_size)),
            format!("the log's head counts {tree_size} entries, the table holds {expected}"),
        ));
    }
    if expected > 0 && head_hash != hex::encode(last_leaf) {
        return Err(failure(
            tenant,
            Place::Seq(expected - 1),
            "the log's head hash is not the last entry's leaf hash",
        ));
    }
    check_nodes(conn, tenant, &mut tree)?;
    let (checkpoints, revoked_only) = check_checkpoints(conn, tenant, &origin, &mut tree, master)?;
    check_signer_state(tenant, &origin, &mut tree, signer)?;
    Ok(Scanned {
        tenant: tenant.to_owned(),
        entries: expected,
        checkpoints,
        revoked_only,
    })
}

/// Reads every entry from seq 0 in chunks, checking each like `verify`
/// does; returns the tree of their leaves and the last leaf.
fn scan_entries(
    conn: &mut DbConn,
    tenant: &TenantId,
    origin: &str,
) -> Result<(MemoryTree, [u8; 32]), ScanError> {
    let mut tree = MemoryTree::new();
    let mut expected: u64 = 0;
    let mut last_leaf = [0u8; 32];
    let mut last_at = None;
    let mut texts = TextCache::new();
    loop {
        // Read past the head too: a row inserted beyond it is tampering.
        let rows = entry_range(conn, tenant, expected, expected + CHUNK, &mut texts)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            if row.seq != expected {
                return Err(failure(
                    tenant,
                    Place::Seq(expected),
                    "the row is missing (deleted)",
                ));
            }
            let place = Place::Seq(expected);
            let entry: EntryRef<'_> = serde_json::from_str(&row.canonical_json).map_err(|e| {
                failure(
                    tenant,
                    place.clone(),
                    format!("the stored entry is not a valid entry: {e}"),
                )
            })?;
            if entry.seq != row.seq {
                return Err(failure(
                    tenant,
                    place,
                    format!(
                        "the row holds the entry of seq {} (rows reordered)",
                        entry.seq
                    ),
                ));
            }
            if entry.canonical_json() != row.canonical_json {
                return Err(failure(
                    tenant,
                    place,
                    "the stored bytes are not the entry's canonical form (altered)",
                ));
            }
            let view = OpeningView::of(&row.openings);
            let openings = (!row.openings.erased).then_some(&view);
            let leaf = check_entry(&entry, &row.leaf_hash, openings, origin)
                .map(|checked| checked.leaf)
                .map_err(|what| failure(tenant, place.clone(), what))?;
            let expected_prev = if expected == 0 { [0; 32] } else { last_leaf };
            if entry.prev != hex::encode(expected_prev) {
                return Err(failure(tenant, place, "prev is not the previous entry's leaf hash (a row was altered, inserted or removed before it)"));
            }
            if last_at.is_some_and(|t| entry.recorded_at < t) {
                return Err(failure(tenant, place, "recorded_at decreases"));
            }
            tree.push(leaf);
            last_leaf = leaf;
            last_at = Some(entry.recorded_at);
            expected += 1;
        }
    }
    Ok((tree, last_leaf))
}

/// The log extends what this instance's signer state file records as signed.
fn check_signer_state(
    tenant: &TenantId,
    origin: &str,
    tree: &mut MemoryTree,
    signer: &Signer,
) -> Result<(), ScanError> {
    match signer.last_signed(origin) {
        Ok(Some((size, root))) => {
            if size > tree.size() {
                return Err(failure(
                    tenant,
                    Place::Checkpoint,
                    format!("the signer state file records size {size} as signed; the log holds {} entries (entries were removed)", tree.size()),
                ));
            }
            if merkle::root(tree, size).ok() != Some(root) {
                return Err(failure(
                    tenant,
                    Place::Checkpoint,
                    format!("the tree at size {size} differs from the one the signer state file records as signed"),
                ));
            }
        }
        Ok(None) => {}
        Err(e) => {
            return Err(failure(tenant, Place::Checkpoint, e.to_string()));
        }
    }
    Ok(())
}

/// Every stored Merkle node equals the one recomputed from the entries.
fn check_nodes(
    conn: &mut DbConn,
    tenant: &TenantId,
    tree: &mut MemoryTree,
) -> Result<(), ScanError> {
    let mut after: (i32, i64) = (-1, -1);
    let mut count: u64 = 0;
    loop {
        let rows = log::node_page(conn, tenant, after, CHUNK as i64)?;
        if rows.is_empty() {
            break;
        }
        for (level, idx, hash) in rows {
            if !(0..64).contains(&level) || idx < 0 {
                return Err(failure(
                    tenant,
                    Place::Checkpoint,
                    format!(
                        "a Merkle node row has an impossible position (level {level}, index {idx})"
                    ),
                ));
            }
            let first_leaf = (idx as u64).checked_shl(level as u32).unwrap_or(u64::MAX);
            let recomputed = tree.node(level as u32, idx as u64).map_err(|_| {
                failure(tenant, Place::Seq(first_leaf), format!("a Merkle node (level {level}, index {idx}) covers entries that do not exist"))
            })?;
            if hash.as_slice() != recomputed {
                return Err(failure(tenant, Place::Seq(first_leaf), format!("the stored Merkle node (level {level}, index {idx}) differs from the entries")));
            }
            after = (level, idx);
            count += 1;
        }
    }
    let size = tree.size();
    let expected: u64 = (0..64).map(|level| size >> level).sum();
    if count != expected {
        return Err(failure(
            tenant,
            Place::Seq(size),
            format!("{count} Merkle nodes stored, {expected} expected"),
        ));
    }
    Ok(())
}

/// Every stored checkpoint is signed by a key of the tenant valid for its
/// size (a retired or revoked key up to its `last_size`), names the
/// tenant's origin, and commits to the recomputed root. Returns how many
/// were checked, and how many of them only a revoked key signed: those
/// were signed before the rotation that revoked it (the rotation's own
/// checkpoint, signed by the new key too, covers their entries), so they
/// are not a failure, but their signatures prove nothing.
fn check_checkpoints(
    conn: &mut DbConn,
    tenant: &TenantId,
    origin: &str,
    tree: &mut MemoryTree,
    master: &MasterKey,
) -> Result<(u64, u64), ScanError> {
    let keys = log::signing_keys_of(conn, tenant)?;
    for key in &keys {
        let opens = key
            .open(master)
            .map(|k| note::verifier_key(origin, &k.verifying_key().to_bytes()));
        if opens.as_deref() != Some(key.verifier_key.as_str()) {
            return Err(failure(
                tenant,
                Place::Checkpoint,
                format!("signing key {} does not open with the master key into its verifier key (a key row was forged)", key.id),
            ));
        }
    }
    let verifiers: Vec<(Verifier, u64, Option<u64>, bool)> = keys
        .iter()
        .filter_map(|k| {
            Verifier::parse(&k.verifier_key).ok().map(|v| {
                let revoked = k.status == "revoked";
                (
                    v,
                    k.first_size as u64,
                    k.last_size.map(|s| s as u64),
                    revoked,
                )
            })
        })
        .collect();
    let mut revoked_only = 0;
    let rows = log::all_checkpoints(conn, tenant)?;
    for row in &rows {
        let bad = |what: String| {
            failure(
                tenant,
                Place::Checkpoint,
                format!("stored checkpoint {} (size {}): {what}", row.id, row.size),
            )
        };
        let note = SignedNote::parse(&row.note).map_err(|e| bad(e.to_string()))?;
        let body = Checkpoint::parse(&note.text).map_err(|e| bad(e.to_string()))?;
        if body.origin != origin
            || body.size != row.size as u64
            || body.root.as_slice() != row.root.as_slice()
        {
            return Err(bad("its note does not match its row".into()));
        }
        let signed_by = |by_revoked: bool| {
            verifiers.iter().any(|(v, first, last, revoked)| {
                *revoked == by_revoked
                    && body.size >= *first
                    && last.is_none_or(|l| body.size <= l)
                    && note.verify(v).is_ok()
            })
        };
        if !signed_by(false) {
            if !signed_by(true) {
                return Err(bad(
                    "not signed by a key of this log valid for its size".into()
                ));
            }
            revoked_only += 1;
        }
        if body.size > tree.size() {
            return Err(bad(format!("the log holds only {} entries", tree.size())));
        }
        let root = merkle::root(tree, body.size).map_err(|e| bad(e.to_string()))?;
        if root != body.root {
            return Err(bad("its root is not the root of the entries".into()));
        }
    }
    if !rows.iter().any(|r| r.size == 0) {
        return Err(failure(
            tenant,
            Place::Checkpoint,
            "the size-0 checkpoint signed at creation is missing",
        ));
    }
    Ok((rows.len() as u64, revoked_only))
}
