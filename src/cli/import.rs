//! `import --tenant ID FILE [--id ID] [--mode M]`: a file of existing
//! consent (NDJSON, or CSV by its `.csv` name) recorded as backfills by
//! `operator:cli`, with a progress bar; exits 1 naming the refused lines.

use super::open::open;
use crate::config::Settings;
use crate::domain::access::TenantId;
use crate::domain::import::{self, is_import_id, ImportFormat, ImportMode, ReadLine};
use crate::domain::time::Clock;
use crate::services::imports::{self as service, Import, Standing, Started};
use crate::store::audit::OPERATOR_CLI;
use crate::store::tenants;
use anyhow::{anyhow, bail, Context};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::ExitCode;

/// What the command line names.
pub struct Asked<'a> {
    pub tenant: &'a str,
    pub file: &'a Path,
    pub id: Option<&'a str>,
    pub mode: &'a str,
    /// The process that was recording it is known to be gone.
    pub take_over: bool,
}

pub fn run(settings: &Settings, asked: &Asked<'_>) -> anyhow::Result<ExitCode> {
    let mode = ImportMode::parse(asked.mode)
        .ok_or_else(|| anyhow!("--mode is all_or_nothing or valid_lines"))?;
    let id = match asked.id {
        Some(id) if is_import_id(id) => id.to_owned(),
        Some(_) => bail!("--id is 1 to 128 letters, digits, '.', '_', ':' or '-'"),
        None => file_sha256(asked.file)?,
    };
    let name = asked
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let format = ImportFormat::of_file_name(name);
    let opened = open(settings)?;
    let (mut conn, master) = (opened.conn, opened.master);
    let row = TenantId::parse(asked.tenant)
        .map(|id| tenants::find_tenant(&mut conn, &id))
        .transpose()?
        .flatten()
        .ok_or_else(|| anyhow!("no tenant {:?}", asked.tenant))?;
    let import = Import {
        tenant: &row,
        id: &id,
        mode,
        format,
        collector: OPERATOR_CLI,
    };
    let clock = Clock::system();
    let lines = || read(asked.file, format);
    let mut failed_to_read = None;
    let started = service::start(
        &mut conn,
        &import,
        || {
            lines()
                .map_err(|e| failed_to_read = Some(e))
                .into_iter()
                .flatten()
        },
        (clock.now(), asked.take_over),
    )?;
    if let Some(e) = failed_to_read {
        return Err(e);
    }
    match started {
        Started::Run => {}
        Started::Done(standing) => {
            eprintln!("import {id} was done before: nothing recorded now");
            return Ok(report(&standing));
        }
        Started::Refused(standing) => {
            eprintln!("import {id} refused (all_or_nothing): nothing recorded");
            return Ok(report(&standing));
        }
        Started::Running => bail!(
            "import {id} is being recorded by another process; run this again once it is done, or {} s after it stopped, or with --take-over if it was killed",
            service::STALE_MILLIS / 1000
        ),
    }
    let bar = indicatif::ProgressBar::new(count_lines(asked.file)?);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} lines, {per_sec}, {eta} left",
        )
        .expect("a valid template"),
    );
    let mut shown = |standing: &Standing| bar.set_position(standing.read);
    let lines = lines()?;
    let standing = service::record(&mut conn, &master, &import, lines, (&clock, &mut shown))?;
    bar.finish_and_clear();
    Ok(report(&standing))
}

/// Prints where the import stands (JSON on standard output, each refused
/// line on standard error): exit 0 when none was refused, else 1.
fn report(standing: &Standing) -> ExitCode {
    let out = serde_json::to_string(standing).expect("a standing serialises");
    println!("{out}");
    for problem in &standing.refused_lines {
        eprintln!(
            "line {}: {}: {}",
            problem.line, problem.code, problem.detail
        );
    }
    if standing.refused > standing.refused_lines.len() as u64 {
        eprintln!(
            "(and {} more refused lines)",
            standing.refused - standing.refused_lines.len() as u64
        );
    }
    match standing.refused {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

fn read(path: &Path, format: ImportFormat) -> anyhow::Result<impl Iterator<Item = ReadLine>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(import::lines(
        format,
        BufReader::with_capacity(1 << 16, file),
    ))
}

/// The file's SHA-256 in hex: the import's id when none is given.
fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// Line breaks in the file (the progress bar's length).
fn count_lines(path: &Path) -> anyhow::Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut lines = 0;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(lines);
        }
        lines += memchr::memchr_iter(b'\n', chunk).count() as u64;
        let n = chunk.len();
        reader.consume(n);
    }
}
