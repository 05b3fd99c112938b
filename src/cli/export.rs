//! `export --tenant ID [--out FILE] [--no-openings]`: a tenant's export
//! (NDJSON) with a fresh checkpoint.

use super::open::open;
use crate::config::Settings;
use crate::domain::access::TenantId;
use crate::services::export::{write_export, ExportSpec};
use crate::store::{log, tenants};
use anyhow::{anyhow, Context};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

pub fn run(
    settings: &Settings,
    tenant: &str,
    out: Option<&Path>,
    no_openings: bool,
) -> anyhow::Result<ExitCode> {
    let opened = open(settings)?;
    let (mut conn, master, signer) = (opened.conn, opened.master, opened.signer);
    let row = TenantId::parse(tenant)
        .map(|id| tenants::find_tenant(&mut conn, &id))
        .transpose()?
        .flatten()
        .ok_or_else(|| anyhow!("no tenant {tenant:?}"))?;
    let tenant = &row.id;
    let checkpoint = signer.ensure_checkpoint(&mut conn, &master, tenant)?;
    let spec = ExportSpec {
        tenant: tenant.clone(),
        origin: row.origin,
        tree_size: checkpoint.size as u64,
        checkpoint_note: checkpoint.note,
        verifier_key: log::key_for_size(&mut conn, tenant, checkpoint.size as u64)?.verifier_key,
        openings: !no_openings,
    };
    let mut writer: Box<dyn Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    conn.snapshot(|conn| write_export(conn, &spec, &mut writer))?;
    eprintln!("exported {} entries of {}", spec.tree_size, spec.origin);
    Ok(ExitCode::SUCCESS)
}
