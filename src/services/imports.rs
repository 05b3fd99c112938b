//! Bulk import (SPEC section 14, docs/import.md): a file's lines checked by
//! the API's rules, then recorded through the one recording path
//! (`recording.rs`, `opt_outs.rs`) in groups of [`GROUP`] lines, each group
//! one transaction with the import's progress, so that a rerun after a
//! crash starts where the last group ended and records nothing twice.

use super::error::{ServiceError, ServiceResult};
use super::opt_outs::{record_opt_out, OptedOut};
use super::recording::{record_opt_in, Door};
use crate::domain::ids::BrandId;
pub use crate::domain::import::ImportStanding as Standing;
use crate::domain::import::{self, ImportFormat, ImportItem, ImportMode, LineProblem, ReadLine};
use crate::domain::problem::{ErrorCode, Invalid};
use crate::domain::request::{self, check_not_future, FoundBrand};
use crate::domain::time::{Clock, Timestamp};
use crate::keys::MasterKey;
use crate::store::audit::{self, AuditEvent, AuditKind};
use crate::store::imports::{self, ImportRow, Progress, DONE, REFUSED, RUNNING};
use crate::store::tenants::{find_brand, TenantRow};
use crate::store::{DbConn, Rejection, StoreError};
use std::collections::HashMap;

/// Lines recorded in one transaction.
pub const GROUP: usize = 500;
/// A running import not heard of for this long was cut short (its process
/// died): a rerun takes it over.
pub const STALE_MILLIS: i64 = 60_000;

/// An import as its door describes it.
#[derive(Debug, Clone, Copy)]
pub struct Import<'a> {
    pub tenant: &'a TenantRow,
    /// The client's id (the CLI's default: the file's SHA-256).
    pub id: &'a str,
    pub mode: ImportMode,
    pub format: ImportFormat,
    /// The entries' collector: the admin's key id, or `operator:cli`.
    pub collector: &'a str,
}

/// Where a stored import stands.
fn standing_of(row: &ImportRow) -> Standing {
    Standing {
        id: row.id.clone(),
        status: row.status.clone(),
        read: row.read_lines as u64,
        recorded: row.recorded as u64,
        refused: row.refused as u64,
        refused_lines: serde_json::from_str(&row.refused_lines).unwrap_or_default(),
    }
}

/// What starting an import found.
#[derive(Debug)]
pub enum Started {
    /// Record it (from its first line not done): [`record`].
    Run,
    /// Done before: nothing to record.
    Done(Standing),
    /// Being recorded by another request or process.
    Running,
    /// Refused whole (`all_or_nothing`): nothing recorded.
    Refused(Standing),
}

/// Starts an import (a new one, or one refused or cut short before) and,
/// in `all_or_nothing` mode, checks every line of it (`lines` reads the
/// file from its start). `take_over`: the caller knows that whoever was
/// recording it is gone (the CLI's `--take-over`), else a running import
/// is taken over once it was not heard of for [`STALE_MILLIS`].
pub fn start<I: Iterator<Item = ReadLine>>(
    conn: &mut DbConn,
    import: &Import<'_>,
    lines: impl FnOnce() -> I,
    (now, take_over): (Timestamp, bool),
) -> ServiceResult<Started> {
    let fresh = match begin(conn, import, now, take_over)? {
        Begun::Fresh => true,
        Begun::CutShort => false,
        Begun::Done(standing) => return Ok(Started::Done(standing)),
        Begun::Running => return Ok(Started::Running),
    };
    // An import cut short was checked before its first line was recorded.
    if fresh && import.mode == ImportMode::AllOrNothing {
        let problems = check(conn, import, lines(), now)?;
        if !problems.is_empty() {
            return Ok(Started::Refused(refuse(conn, import, &problems, now)?));
        }
    }
    Ok(Started::Run)
}

/// What taking up an import found.
enum Begun {
    /// New, or refused before: from its first line.
    Fresh,
    /// Cut short: from its first line not done.
    CutShort,
    Done(Standing),
    Running,
}

/// Takes up an import: a new one, or one refused or cut short before.
fn begin(
    conn: &mut DbConn,
    import: &Import<'_>,
    now: Timestamp,
    take_over: bool,
) -> ServiceResult<Begun> {
    let tenant = &import.tenant.id;
    let begun = conn.immediate_transaction(|conn| {
        let row = imports::find(conn, tenant, import.id)?;
        let how = (import.mode.as_str(), import.collector);
        match row {
            None => imports::insert(conn, &new_row(import, now))?,
            Some(row) if row.status == DONE => return Ok(Begun::Done(standing_of(&row))),
            Some(row) if row.status == REFUSED => {
                imports::resume(conn, tenant, import.id, how, now.millis())?;
                let from_the_start = Progress {
                    status: RUNNING,
                    next_line: 0,
                    read_lines: 0,
                    recorded: 0,
                    refused: 0,
                    refused_lines: "[]",
                    updated_at: now.millis(),
                };
                imports::save(conn, (tenant, import.id), row.next_line, &from_the_start)?;
            }
            Some(row)
                if row.status == RUNNING
                    && !take_over
                    && now.millis() - row.updated_at < STALE_MILLIS =>
            {
                return Ok(Begun::Running)
            }
            Some(row) => {
                imports::resume(conn, tenant, import.id, how, now.millis())?;
                // Cut short before its first group (while checked, say):
                // from the start.
                if row.next_line > 0 {
                    return Ok(Begun::CutShort);
                }
            }
        }
        Ok::<_, diesel::result::Error>(Begun::Fresh)
    })?;
    Ok(begun)
}

fn new_row(import: &Import<'_>, now: Timestamp) -> ImportRow {
    ImportRow {
        tenant_id: import.tenant.id.clone(),
        id: import.id.to_owned(),
        mode: import.mode.as_str().to_owned(),
        format: import.format.as_str().to_owned(),
        collector: import.collector.to_owned(),
        status: RUNNING.to_owned(),
        next_line: 0,
        read_lines: 0,
        recorded: 0,
        refused: 0,
        refused_lines: "[]".to_owned(),
        created_at: now.millis(),
        updated_at: now.millis(),
    }
}

/// Where an import stands, if the tenant has it.
pub fn standing(
    conn: &mut DbConn,
    tenant: &TenantRow,
    id: &str,
) -> ServiceResult<Option<Standing>> {
    Ok(imports::find(conn, &tenant.id, id)?.map(|row| standing_of(&row)))
}

/// The tenant's brands by name, looked up once each.
struct Brands(HashMap<String, Option<FoundBrand>>);

impl Brands {
    fn find(
        &mut self,
        conn: &mut DbConn,
        tenant: &TenantRow,
        name: &str,
    ) -> ServiceResult<Option<FoundBrand>> {
        if let Some(found) = self.0.get(name) {
            return Ok(found.clone());
        }
        let found = find_brand(conn, &tenant.id, name)?.map(|b| FoundBrand {
            id: BrandId(b.id),
            retired: b.retired_at.is_some(),
            name: b.name,
        });
        // A file naming ever other brands keeps memory flat all the same.
        if self.0.len() >= 1_000 {
            self.0.clear();
        }
        self.0.insert(name.to_owned(), found.clone());
        Ok(found)
    }
}

/// Checks every line by the rules that need no change to the log (the
/// request's, the brand's, the clock's): the refused lines, in order.
fn check(
    conn: &mut DbConn,
    import: &Import<'_>,
    lines: impl Iterator<Item = ReadLine>,
    now: Timestamp,
) -> ServiceResult<Vec<LineProblem>> {
    let mut brands = Brands(HashMap::new());
    let region = import.tenant.policy.default_region();
    let mut problems = Vec::new();
    for (line, read) in lines {
        let item = read.and_then(|object| import::item_of(line, object, region));
        let checked = match item {
            Err(problem) => Err(problem),
            Ok(ImportItem::OptIn(draft)) => {
                let brand = brands.find(conn, import.tenant, &draft.company_name_shown)?;
                draft
                    .check_clock(now)
                    .and_then(|()| draft.into_record(brand).map(|_| ()))
                    .map_err(|invalid| LineProblem::refused(line, invalid))
            }
            Ok(ImportItem::OptOut(record)) => check_not_future(record.captured_at, now)
                .map_err(|invalid| LineProblem::refused(line, invalid)),
        };
        if let Err(problem) = checked {
            problems.push(problem);
        }
    }
    Ok(problems)
}

/// Keeps an import refused whole (`all_or_nothing`): nothing recorded.
fn refuse(
    conn: &mut DbConn,
    import: &Import<'_>,
    problems: &[LineProblem],
    now: Timestamp,
) -> ServiceResult<Standing> {
    let listed = &problems[..problems.len().min(import::MAX_LISTED)];
    let refused_lines = serde_json::to_string(listed).expect("problems serialise");
    let progress = Progress {
        status: REFUSED,
        next_line: 0,
        read_lines: 0,
        recorded: 0,
        refused: problems.len() as i64,
        refused_lines: &refused_lines,
        updated_at: now.millis(),
    };
    if !imports::save(conn, (&import.tenant.id, import.id), 0, &progress)? {
        return Err(Rejection::ImportTakenOver.into());
    }
    Ok(Standing {
        id: import.id.to_owned(),
        status: REFUSED.to_owned(),
        read: 0,
        recorded: 0,
        refused: problems.len() as u64,
        refused_lines: listed.to_vec(),
    })
}

/// Records the lines not done yet, group after group; `progress` hears of
/// each group once it committed. Ends the import `done`.
pub fn record(
    conn: &mut DbConn,
    master: &MasterKey,
    import: &Import<'_>,
    lines: impl Iterator<Item = ReadLine>,
    (clock, progress): (&Clock, &mut dyn FnMut(&Standing)),
) -> ServiceResult<Standing> {
    let row = imports::find(conn, &import.tenant.id, import.id)?
        .ok_or(StoreError::Rejected(Rejection::NotFound("no such import")))?;
    let mut state = Recording {
        next_line: row.next_line as u64,
        standing: standing_of(&row),
    };
    let mut group = Vec::with_capacity(GROUP);
    let mut lines = lines
        .filter(|(line, _)| *line >= row.next_line as u64)
        .peekable();
    while lines.peek().is_some() {
        group.extend(lines.by_ref().take(GROUP));
        let last = lines.peek().is_none();
        state.commit(
            conn,
            master,
            import,
            std::mem::take(&mut group),
            (clock.now(), last),
        )?;
        progress(&state.standing);
    }
    if state.standing.status != DONE {
        state.commit(conn, master, import, Vec::new(), (clock.now(), true))?;
        progress(&state.standing);
    }
    Ok(state.standing)
}

/// An import being recorded: the first line not done, and its standing.
struct Recording {
    next_line: u64,
    standing: Standing,
}

impl Recording {
    /// Records a group of lines and the import's progress in one
    /// transaction (`last`: the import is done with it).
    fn commit(
        &mut self,
        conn: &mut DbConn,
        master: &MasterKey,
        import: &Import<'_>,
        group: Vec<ReadLine>,
        (now, last): (Timestamp, bool),
    ) -> ServiceResult<()> {
        let before = (self.next_line, self.standing.clone());
        let done = conn.immediate_transaction(|conn| {
            let mut noted = Noted::default();
            for (line, read) in group {
                self.standing.read += 1;
                self.next_line = line + 1;
                let region = import.tenant.policy.default_region();
                let item = read.and_then(|object| import::item_of(line, object, region));
                match item.map(|item| record_item(conn, master, import, item, now)) {
                    Ok(Ok(seq)) => {
                        self.standing.recorded += 1;
                        noted.add(line, seq);
                    }
                    Ok(Err(ServiceError::Invalid(invalid))) => {
                        self.refuse(LineProblem::refused(line, invalid))
                    }
                    Ok(Err(ServiceError::Store(StoreError::Rejected(refusal)))) => {
                        match refused_line(&refusal) {
                            Some(invalid) => self.refuse(LineProblem::refused(line, invalid)),
                            None => return Err(StoreError::Rejected(refusal).into()),
                        }
                    }
                    Ok(Err(failure)) => return Err(failure),
                    Err(problem) => self.refuse(problem),
                }
            }
            noted.write(conn, import, now)?;
            if last {
                self.standing.status = DONE.to_owned();
            }
            self.save(conn, import, (before.0, now))
        });
        if done.is_err() {
            (self.next_line, self.standing) = before;
        }
        done
    }

    fn refuse(&mut self, problem: LineProblem) {
        self.standing.refused += 1;
        if self.standing.refused_lines.len() < import::MAX_LISTED {
            self.standing.refused_lines.push(problem);
        }
    }

    /// Writes the import's progress, unless another recorder took the
    /// import over since its first line not done was `from` (then the
    /// whole group rolls back: no line is recorded by both).
    fn save(
        &self,
        conn: &mut DbConn,
        import: &Import<'_>,
        (from, now): (u64, Timestamp),
    ) -> ServiceResult<()> {
        let refused_lines =
            serde_json::to_string(&self.standing.refused_lines).expect("problems serialise");
        let progress = Progress {
            status: &self.standing.status,
            next_line: self.next_line as i64,
            read_lines: self.standing.read as i64,
            recorded: self.standing.recorded as i64,
            refused: self.standing.refused as i64,
            refused_lines: &refused_lines,
            updated_at: now.millis(),
        };
        let key = (&import.tenant.id, import.id);
        match imports::save(conn, key, from as i64, &progress)? {
            true => Ok(()),
            false => Err(Rejection::ImportTakenOver.into()),
        }
    }
}

/// What a group of lines recorded, noted in the audit trail as one event
/// (`import.recorded`) rather than a `backfill` event a line.
#[derive(Default)]
struct Noted {
    lines: Option<(u64, u64)>,
    seqs: Option<(u64, u64)>,
    recorded: u64,
}

impl Noted {
    fn add(&mut self, line: u64, seq: Option<u64>) {
        self.recorded += 1;
        self.lines = Some((self.lines.map_or(line, |l| l.0), line));
        if let Some(seq) = seq {
            self.seqs = Some((self.seqs.map_or(seq, |s| s.0), seq));
        }
    }

    fn write(&self, conn: &mut DbConn, import: &Import<'_>, now: Timestamp) -> ServiceResult<()> {
        if self.recorded == 0 {
            return Ok(());
        }
        let event = AuditEvent {
            actor: import.collector,
            kind: AuditKind::ImportRecorded,
            details: serde_json::json!({
                "import": import.id,
                "lines": self.lines.map(|(a, b)| [a, b]),
                "seqs": self.seqs.map(|(a, b)| [a, b]),
                "recorded": self.recorded,
            }),
        };
        audit::record_within(conn, &import.tenant.id, &event, now)?;
        Ok(())
    }
}

/// Records one line through the path every door takes (in the group's
/// transaction: a savepoint, so that a refused line leaves the others):
/// the seq of its entry (none for an opt-out of an erased identity,
/// which records nothing and stays opted out).
fn record_item(
    conn: &mut DbConn,
    master: &MasterKey,
    import: &Import<'_>,
    item: ImportItem,
    now: Timestamp,
) -> ServiceResult<Option<u64>> {
    let door = Door::Import {
        collector: import.collector,
    };
    match item {
        ImportItem::OptIn(draft) => {
            let recorded = record_opt_in(conn, master, import.tenant, (draft, door), None, now)?;
            Ok(Some(recorded.appended.seq))
        }
        ImportItem::OptOut(record) => {
            let by = (&import.tenant.id, door);
            match record_opt_out(conn, master, by, record, None, now)? {
                OptedOut::Recorded(appended) => Ok(Some(appended.seq)),
                OptedOut::Suppressed => Ok(None),
            }
        }
    }
}

/// A refusal decided on stored state when the line was recorded, as the
/// API would answer it; `None` for one no line can meet.
fn refused_line(refusal: &Rejection) -> Option<Invalid> {
    match refusal {
        Rejection::BrandRetired => Some(request::brand_retired()),
        Rejection::UnknownDocument => Some(request::unknown_document()),
        Rejection::DocumentMismatch => Some(request::document_mismatch()),
        Rejection::CapturedInFuture => Some(Invalid::new(
            ErrorCode::CapturedAtInFuture,
            "`captured_at` is more than 60 seconds after the server's clock",
        )),
        Rejection::Suppressed => Some(Invalid::new(
            ErrorCode::Suppressed,
            "this number or user id was erased after `captured_at`",
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{tenant_t, test_db_with_tenant};

    /// `n` opt-out lines of distinct numbers, numbered from 1.
    fn lines(n: u64) -> impl Iterator<Item = ReadLine> {
        (1..=n).map(|line| {
            let object = serde_json::json!({
                "type": "opt_out", "number": format!("+4915112{line:06}"), "channel": "api",
                "captured_at": "2025-01-01T00:00:00Z", "evidence": {"reason": "a letter"},
            });
            match object {
                serde_json::Value::Object(object) => (line, Ok(object)),
                _ => unreachable!(),
            }
        })
    }

    fn size(conn: &mut DbConn) -> i64 {
        crate::store::tenants::find_tenant(conn, &tenant_t())
            .unwrap()
            .unwrap()
            .tree_size
    }

    /// Two recorders of one import (a takeover while the first still
    /// runs): the one that finds the import moved on rolls its group back,
    /// so no line is recorded twice.
    #[test]
    fn a_recorder_whose_import_was_taken_over_records_nothing_more() {
        let (dir, mut first) = test_db_with_tenant();
        let target = crate::config::DatabaseTarget::Sqlite(dir.path().join("t.db"));
        let mut second = crate::store::connection::establish(&target).unwrap();
        let tenant = crate::store::tenants::find_tenant(&mut first, &tenant_t())
            .unwrap()
            .unwrap();
        let master = MasterKey::from_bytes([7; 32]);
        let clock = Clock::manual(Timestamp::from_millis(1_800_000_000_000));
        let import = Import {
            tenant: &tenant,
            id: "crm",
            mode: ImportMode::ValidLines,
            format: ImportFormat::Ndjson,
            collector: "operator:cli",
        };
        let total = 3 * GROUP as u64;
        let started = start(&mut first, &import, || lines(total), (clock.now(), false));
        assert!(matches!(started.unwrap(), Started::Run));
        // After the first recorder's first group, a second takes it over
        // and records the rest.
        let mut groups = 0;
        let mut took_over = |_: &Standing| {
            groups += 1;
            if groups == 1 {
                let taken = start(&mut second, &import, || lines(total), (clock.now(), true));
                assert!(matches!(taken.unwrap(), Started::Run));
                let mut quiet = |_: &Standing| {};
                let done = record(
                    &mut second,
                    &master,
                    &import,
                    lines(total),
                    (&clock, &mut quiet),
                );
                // Its counts go on from the first recorder's group.
                assert_eq!(done.unwrap().recorded, total);
            }
        };
        let first_run = record(
            &mut first,
            &master,
            &import,
            lines(total),
            (&clock, &mut took_over),
        );
        match first_run {
            Err(ServiceError::Store(StoreError::Rejected(Rejection::ImportTakenOver))) => {}
            other => panic!("the first recorder went on: {other:?}"),
        }
        assert_eq!(size(&mut first), total as i64, "each line once");
        let standing = standing(&mut first, &tenant, "crm").unwrap().unwrap();
        assert_eq!((standing.status.as_str(), standing.read), ("done", total));
    }
}
