//! Decision statements (docs/statements.md): a check's answer signed by the
//! log's current key, naming a checkpoint this service signed that holds
//! the entry the decision rests on (one is signed first when none does
//! yet). The decision is made as any check's (`checking`), in its own read
//! snapshot; its statement is made after it, since signing writes.
//! Senders hand statements back for safekeeping (`keep`) and auditors list
//! those of a person's group (`of_identity`).

use super::checking::{self, Ask, Evaluated};
use super::error::{ServiceError, ServiceResult};
use super::signer::Signer;
use crate::domain::identity::Identity;
use crate::domain::problem::Invalid;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::ledger::hash::parse_hash;
use crate::ledger::note;
use crate::ledger::note::Verifier;
use crate::ledger::statement::{
    reference_is_valid, verify_statement, Statement, MAX_REFERENCE_CHARS,
};
use crate::store::log::{self, CheckpointRow};
use crate::store::restore::leaf_hash_at;
use crate::store::statements::{self as kept, NewStatement, StatementRow};
use crate::store::subjects::{group_commitments, newest_commitments_by_hash, newest_subject};
use crate::store::tenants::TenantRow;
use crate::store::DbConn;
use ed25519_dalek::SigningKey;
use std::collections::HashMap;

/// A check's decision, and its statement when the check asked for one.
#[derive(Debug, Clone)]
pub struct Stated {
    pub evaluated: Evaluated,
    pub statement: Option<String>,
}

/// Decides one check and, when it asks, states the decision.
pub fn check(
    conn: &mut DbConn,
    master: &MasterKey,
    signer: &Signer,
    tenant: &TenantRow,
    ask: &Ask,
    now: Timestamp,
) -> ServiceResult<Stated> {
    check_reference(ask)?;
    let evaluated = checking::check_one(conn, master, tenant, ask, now)?;
    let statement = match ask.statement {
        true => {
            let mut stater = Stater::new(conn, master, signer, tenant)?;
            Some(stater.state(conn, &evaluated, ask.reference.as_deref(), now)?)
        }
        false => None,
    };
    Ok(Stated {
        evaluated,
        statement,
    })
}

/// Decides a batch as `checking::check_many` does, handing each item to
/// `each` in order; the items that ask for a statement get one, made once
/// the batch's snapshot has ended (the batch's decisions are then kept
/// until all are stated).
pub fn check_batch<E: From<ServiceError>>(
    conn: &mut DbConn,
    master: &MasterKey,
    signer: &Signer,
    tenant: &TenantRow,
    items: Vec<Result<Ask, E>>,
    now: Timestamp,
    mut each: impl FnMut(usize, Result<Stated, E>),
) -> ServiceResult<()> {
    let items: Vec<Result<Ask, E>> = items
        .into_iter()
        .map(|item| {
            let ask = item?;
            check_reference(&ask).map_err(|e| E::from(e.into()))?;
            Ok(ask)
        })
        .collect();
    // Each item's reference when it asks for a statement.
    let references: Vec<Option<Option<String>>> = items
        .iter()
        .map(|item| match item {
            Ok(ask) if ask.statement => Some(ask.reference.clone()),
            _ => None,
        })
        .collect();
    if references.iter().all(Option::is_none) {
        return checking::check_many(conn, master, tenant, items, now, |index, outcome| {
            each(index, outcome.map(unstated))
        });
    }
    let mut decided: Vec<Result<Evaluated, E>> = Vec::with_capacity(items.len());
    checking::check_many(conn, master, tenant, items, now, |_, outcome| {
        decided.push(outcome)
    })?;
    let mut stater = Stater::new(conn, master, signer, tenant)?;
    let to_state: Vec<&Evaluated> = decided
        .iter()
        .zip(&references)
        .filter_map(|(outcome, reference)| reference.as_ref().and(outcome.as_ref().ok()))
        .collect();
    stater.prefetch(conn, &to_state)?;
    for (index, (outcome, reference)) in decided.into_iter().zip(references).enumerate() {
        let stated = match (outcome, reference) {
            (Ok(evaluated), Some(reference)) => {
                let statement = stater.state(conn, &evaluated, reference.as_deref(), now)?;
                Ok(Stated {
                    evaluated,
                    statement: Some(statement),
                })
            }
            (outcome, _) => outcome.map(unstated),
        };
        each(index, stated);
    }
    Ok(())
}

fn unstated(evaluated: Evaluated) -> Stated {
    Stated {
        evaluated,
        statement: None,
    }
}

/// A `reference` goes with a statement, and is printable ASCII.
fn check_reference(ask: &Ask) -> Result<(), Invalid> {
    let Some(reference) = &ask.reference else {
        return Ok(());
    };
    if !ask.statement {
        return Err(Invalid::request_field(
            "reference",
            "invalid_value",
            "`reference` names a statement: send it with `\"statement\": true`",
        ));
    }
    if !reference_is_valid(reference) {
        return Err(Invalid::request_field(
            "reference",
            "invalid_value",
            format!(
                "`reference` is 1 to {MAX_REFERENCE_CHARS} printable ASCII characters without spaces"
            ),
        ));
    }
    Ok(())
}

/// What statements of one request share: the log's key, opened once, and
/// the newest checkpoint known to hold what they rest on.
struct Stater<'a> {
    master: &'a MasterKey,
    signer: &'a Signer,
    tenant: &'a TenantRow,
    key: SigningKey,
    checkpoint: CheckpointRow,
    /// A batch's leaf hashes (hex) by seq, and its identities' newest
    /// commitments, read together beforehand (`prefetch`).
    leaves: Option<HashMap<u64, String>>,
    commitments: Option<HashMap<String, String>>,
}

impl<'a> Stater<'a> {
    fn new(
        conn: &mut DbConn,
        master: &'a MasterKey,
        signer: &'a Signer,
        tenant: &'a TenantRow,
    ) -> ServiceResult<Self> {
        let key = log::current_signing_key(conn, &tenant.id)?
            .open(master)
            .ok_or(super::signer::SignError::Key)?;
        let checkpoint = match log::latest_checkpoint(conn, &tenant.id)? {
            Some(checkpoint) => checkpoint,
            None => signer.ensure_checkpoint(conn, master, &tenant.id)?,
        };
        Ok(Self {
            master,
            signer,
            tenant,
            key,
            checkpoint,
            leaves: None,
            commitments: None,
        })
    }

    /// Reads what the statements of these decisions need in a few
    /// queries, and signs first the checkpoint they all rest in.
    fn prefetch(&mut self, conn: &mut DbConn, decided: &[&Evaluated]) -> ServiceResult<()> {
        let tenant = &self.tenant.id;
        let seqs: Vec<u64> = decided
            .iter()
            .filter_map(|e| e.consent.as_ref().map(|c| c.seq))
            .collect();
        if seqs.iter().any(|&seq| seq >= self.checkpoint.size as u64) {
            self.checkpoint = self.signer.ensure_checkpoint(conn, self.master, tenant)?;
        }
        let hashes: Vec<String> = decided
            .iter()
            .map(|e| self.master.identity_hash(tenant, e.identity.as_str()))
            .collect();
        self.leaves = Some(log::leaf_hashes_at(conn, tenant, &seqs)?);
        self.commitments = Some(newest_commitments_by_hash(conn, tenant, &hashes)?);
        Ok(())
    }

    /// The leaf hash (hex) at `seq`, from the batch's or on its own.
    fn leaf_at(&self, conn: &mut DbConn, seq: u64) -> ServiceResult<Option<String>> {
        Ok(match &self.leaves {
            Some(leaves) => leaves.get(&seq).cloned(),
            None => leaf_hash_at(conn, &self.tenant.id, seq)?,
        })
    }

    /// The commitment of the identity's newest subject, if it has one.
    fn commitment_of(&self, conn: &mut DbConn, identity: &str) -> ServiceResult<Option<String>> {
        let tenant = &self.tenant.id;
        Ok(match &self.commitments {
            Some(known) => known
                .get(&self.master.identity_hash(tenant, identity))
                .cloned(),
            None => newest_subject(conn, self.master, tenant, identity)?.map(|s| s.commitment),
        })
    }

    /// The statement of one decision, as a signed note.
    fn state(
        &mut self,
        conn: &mut DbConn,
        evaluated: &Evaluated,
        reference: Option<&str>,
        now: Timestamp,
    ) -> ServiceResult<String> {
        let tenant = &self.tenant.id;
        let entry = match &evaluated.consent {
            Some(event) => {
                if event.seq >= self.checkpoint.size as u64 {
                    self.checkpoint = self.signer.ensure_checkpoint(conn, self.master, tenant)?;
                }
                let leaf = self
                    .leaf_at(conn, event.seq)?
                    .as_deref()
                    .and_then(parse_hash)
                    .ok_or_else(|| missing_entry(event.seq))?;
                Some((event.seq, leaf))
            }
            None => None,
        };
        let commitment = self.commitment_of(conn, evaluated.identity.as_str())?;
        let statement = Statement {
            origin: self.tenant.origin.clone(),
            tree_size: self.checkpoint.size as u64,
            root: super::signer::root_of(&self.checkpoint),
            commitment,
            purpose: evaluated.purpose.as_str().to_owned(),
            channel: evaluated.channel.as_str().to_owned(),
            brand: Some(evaluated.brand.clone()),
            reason: evaluated.reason.as_str().to_owned(),
            entry,
            decided_at: now.to_string(),
            reference: reference.map(str::to_owned),
        };
        Ok(note::sign_note(
            &statement.text(),
            &self.tenant.origin,
            &self.key,
        ))
    }
}

/// The decision rests on an entry the log does not hold: the store is
/// inconsistent (never a client's fault).
fn missing_entry(seq: u64) -> ServiceError {
    ServiceError::Store(crate::store::StoreError::Unreadable(format!(
        "the entry at seq {seq} a decision rests on is not in the log"
    )))
}

/// Most statements one request hands back.
pub const MAX_KEPT: usize = 1_000;

/// Keeps the statements a sender hands back, each once; all or none: each
/// must be a statement of this tenant's log signed by one of its keys that
/// is not revoked, and the first that is not refuses the request, named
/// by its index. Returns how many were handed.
pub fn keep(
    conn: &mut DbConn,
    tenant: &TenantRow,
    notes: &[String],
    now: Timestamp,
) -> ServiceResult<usize> {
    if notes.len() > MAX_KEPT {
        return Err(Invalid::request_field(
            "statements",
            "too_many",
            format!("at most {MAX_KEPT} statements at once"),
        )
        .into());
    }
    let keys: Vec<Verifier> = log::signing_keys_of(conn, &tenant.id)?
        .iter()
        .filter(|k| k.status != "revoked")
        .filter_map(|k| Verifier::parse(&k.verifier_key).ok())
        .collect();
    let mut read = Vec::with_capacity(notes.len());
    for (index, note) in notes.iter().enumerate() {
        let checked = keys.iter().map(|key| verify_statement(note, key));
        let mut why = String::from("the log has no key");
        let mut found = None;
        for outcome in checked {
            match outcome {
                Ok(statement) => {
                    found = Some(statement);
                    break;
                }
                Err(e) => why = e.to_string(),
            }
        }
        let statement = found.ok_or_else(|| {
            Invalid::request_field(
                &format!("statements[{index}]"),
                "invalid_statement",
                format!(
                    "`statements[{index}]` is not a decision statement of this log signed by one of its keys ({why}); nothing was kept"
                ),
            )
        })?;
        read.push((crate::ledger::hash::sha256_hex(note.as_bytes()), statement));
    }
    let new: Vec<NewStatement<'_>> = read
        .iter()
        .zip(notes)
        .map(|((sha256, statement), note)| NewStatement {
            sha256,
            commitment: statement.commitment.as_deref(),
            decided_at: &statement.decided_at,
            note,
        })
        .collect();
    conn.immediate_transaction(|conn| kept::keep(conn, &tenant.id, &new, now.millis()))?;
    Ok(notes.len())
}

/// The kept statements of an identity's newest group (every subject of it,
/// erased or not: a statement outlives an erasure), oldest decision first;
/// none when the tenant holds nothing of the identity.
pub fn of_identity(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantRow,
    identity: &Identity,
) -> ServiceResult<Vec<StatementRow>> {
    let Some(subject) = newest_subject(conn, master, &tenant.id, identity.as_str())? else {
        return Ok(Vec::new());
    };
    let commitments = group_commitments(conn, subject.group_id)?;
    Ok(kept::naming(conn, &tenant.id, &commitments)?)
}
