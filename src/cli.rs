//! The command line: `serve` (default), `migrate`, `tenant create`,
//! `key create`, `openapi`.

use crate::api::auth::Role;
use crate::api::keys::normalise_roles;
use crate::api::tenants::{check_brand_name, valid_tenant_id};
use crate::config::{Settings, SettingsArgs};
use crate::domain::time::Timestamp;
use crate::ledger::note::Verifier;
use crate::ledger::verify::{self, trusted_checkpoint, VerifyError};
use crate::services::export::{write_export, ExportSpec};
use crate::services::signer::Signer;
use crate::services::tenants::{create_tenant, TenantError};
use crate::services::verify_db::{verify_db, ScanError};
use crate::startup;
use crate::store::log;
use crate::store::tenants;
use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "consent-ledger",
    version,
    about = "Opt-in consent ledger for WhatsApp Business and SMS messaging"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default)
    Serve,
    /// Run pending database migrations and exit
    Migrate,
    /// Manage tenants
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage API keys
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Write a tenant's export (NDJSON) with a fresh checkpoint
    Export {
        #[arg(long)]
        tenant: String,
        /// Where to write it [default: standard output]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Leave the openings out (integrity-only audit)
        #[arg(long)]
        no_openings: bool,
    },
    /// Verify an export, dossier or receipt offline; exit 0 verified, 1 failed, 2 unreadable
    Verify {
        /// The file to check ("-" for standard input)
        file: PathBuf,
        /// The log's verifier key: the only thing trusted
        #[arg(long)]
        key: String,
        /// A checkpoint kept from an earlier audit; repeatable
        #[arg(long = "trusted")]
        trusted: Vec<PathBuf>,
    },
    /// Scan the live database like an export; exit 0 clean, 1 tampered
    VerifyDb {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Manage the tenants' checkpoint signing keys
    SigningKey {
        #[command(subcommand)]
        command: SigningKeyCommand,
    },
    /// Print the OpenAPI document
    Openapi,
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// New key for one tenant (or all): the current size is signed by the old and the new key
    Rotate {
        #[arg(long)]
        tenant: Option<String>,
        /// The old key is compromised: mark it revoked instead of retired
        #[arg(long)]
        compromised: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with its first brand; prints its admin key once
    Create {
        /// Tenant id: lowercase letters, digits and inner hyphens
        id: String,
        /// The first brand (company name shown to people)
        #[arg(long)]
        brand: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key; prints it once
    Create {
        #[arg(long)]
        tenant: String,
        /// admin, collector, sender or auditor; repeat for several
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// What the key is for
        #[arg(long, default_value = "cli")]
        name: String,
        /// RFC 3339 time when the key stops working
        #[arg(long)]
        expires_at: Option<String>,
    },
}

/// Runs a parsed command line; the exit code on success.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = cli.command.unwrap_or(Command::Serve);
    match command {
        Command::Openapi => {
            print!("{}", startup::openapi_json());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Verify { file, key, trusted } => return Ok(verify_file(&file, &key, &trusted)),
        _ => {}
    }
    let settings = Settings::resolve(&cli.settings)?;
    crate::telemetry::init(settings.log_format);
    match command {
        Command::Openapi | Command::Verify { .. } => unreachable!("handled above"),
        Command::Serve => {
            actix_web::rt::System::new().block_on(startup::serve(settings))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let (_, _) = startup::open_database(&settings)?;
            eprintln!("migrations are current");
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            tenant,
            out,
            no_openings,
        } => {
            let (pool, master) = startup::open_database(&settings)?;
            let mut conn = pool.get()?;
            let row = tenants::find_tenant(&mut conn, &tenant)?
                .ok_or_else(|| anyhow!("no tenant {tenant:?}"))?;
            let signer = Signer::new(settings.signer_state_file.clone());
            let checkpoint = signer.ensure_checkpoint(&mut conn, &master, &tenant)?;
            let spec = ExportSpec {
                tenant: tenant.clone(),
                origin: row.origin,
                tree_size: checkpoint.size as u64,
                checkpoint_note: checkpoint.note,
                verifier_key: log::key_for_size(&mut conn, &tenant, checkpoint.size as u64)?
                    .verifier_key,
                openings: !no_openings,
            };
            let mut writer: Box<dyn Write> = match &out {
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
        Command::VerifyDb { tenant } => {
            let (pool, master) = startup::open_database(&settings)?;
            let mut conn = pool.get()?;
            let signer = Signer::new(settings.signer_state_file.clone());
            match verify_db(&mut conn, tenant.as_deref(), &master, &signer) {
                Ok(scanned) => {
                    if tenant.is_some() && scanned.is_empty() {
                        bail!("no tenant {:?}", tenant.unwrap_or_default());
                    }
                    for s in scanned {
                        let revoked = match s.revoked_only {
                            0 => String::new(),
                            n => format!(" ({n} signed only by a revoked key: their roots match the entries, their signatures prove nothing)"),
                        };
                        println!(
                            "{}: {} entries and {} checkpoints verified{revoked}",
                            s.tenant, s.entries, s.checkpoints
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(ScanError::Failed { tenant, failure }) => {
                    println!("{tenant}: {failure}");
                    Ok(ExitCode::from(1))
                }
                Err(other) => Err(other.into()),
            }
        }
        Command::SigningKey {
            command:
                SigningKeyCommand::Rotate {
                    tenant,
                    compromised,
                },
        } => {
            let (pool, master) = startup::open_database(&settings)?;
            let mut conn = pool.get()?;
            let ids: Vec<String> = match tenant {
                Some(id) => {
                    tenants::find_tenant(&mut conn, &id)?
                        .ok_or_else(|| anyhow!("no tenant {id:?}"))?;
                    vec![id]
                }
                None => tenants::all_tenant_ids(&mut conn)?,
            };
            let signer = Signer::new(settings.signer_state_file.clone());
            for id in ids {
                let (verifier_key, checkpoint) =
                    signer.rotate(&mut conn, &master, &id, compromised)?;
                println!(
                    "{id}: new verifier key {verifier_key} (size {} signed by both keys)",
                    checkpoint.size
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenant {
            command: TenantCommand::Create { id, brand },
        } => {
            if !valid_tenant_id(&id) {
                bail!("a tenant id is 1 to 64 lowercase letters, digits and inner hyphens");
            }
            check_brand_name(&brand, "brand").map_err(|e| anyhow!(e.detail))?;
            let (pool, master) = startup::open_database(&settings)?;
            let mut conn = pool.get()?;
            let signer = Signer::new(settings.signer_state_file.clone());
            let created = create_tenant(
                &mut conn,
                &master,
                &signer,
                &settings.origin,
                &id,
                &brand,
                Timestamp::now().millis(),
            )
            .map_err(|e| match e {
                TenantError::Exists => {
                    anyhow!("tenant {id:?} exists or existed; tenant ids are never reused")
                }
                other => anyhow!(other),
            })?;
            let out = json!({
                "tenant": created.tenant,
                "log": created.log,
                "verifier_key": created.verifier_key,
                "admin_key": {"id": created.admin_key_id, "key": created.admin_key, "roles": ["admin"]},
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Key {
            command:
                KeyCommand::Create {
                    tenant,
                    roles,
                    name,
                    expires_at,
                },
        } => {
            let parsed: Vec<Role> = roles
                .iter()
                .map(|r| {
                    Role::parse(r).ok_or_else(|| {
                        anyhow!("unknown role {r:?}: use admin, collector, sender or auditor")
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            let roles = normalise_roles(&parsed).map_err(|e| anyhow!(e.detail))?;
            let expires_at = expires_at
                .map(|t| {
                    Timestamp::parse(&t)
                        .map_err(|_| anyhow!("--expires-at must be an RFC 3339 date-time"))
                })
                .transpose()?;
            if expires_at.is_some_and(|t| t <= Timestamp::now()) {
                bail!("--expires-at must be in the future");
            }
            let (pool, _) = startup::open_database(&settings)?;
            let mut conn = pool.get()?;
            if tenants::find_tenant(&mut conn, &tenant)?.is_none() {
                bail!("no tenant {tenant:?}");
            }
            let (row, key) = tenants::create_api_key(
                &mut conn,
                &tenant,
                &name,
                &roles,
                expires_at.map(Timestamp::millis),
                Timestamp::now().millis(),
            )
            .context("cannot create the key")?;
            let out = json!({"id": row.id, "key": key, "roles": row.role_names()});
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `verify`: 0 verified, 1 a check failed (`seq N: …`), 2 unreadable input or bad key.
fn verify_file(file: &std::path::Path, key: &str, trusted: &[PathBuf]) -> ExitCode {
    let key = match Verifier::parse(key) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("error: --key: {e}");
            return ExitCode::from(2);
        }
    };
    let mut kept = Vec::new();
    for path in trusted {
        let note = match std::fs::read_to_string(path) {
            Ok(note) => note,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        match trusted_checkpoint(&note, &key) {
            Ok(t) => kept.push(t),
            Err(e) => {
                println!(
                    "checkpoint: the trusted checkpoint {} does not verify: {e}",
                    path.display()
                );
                return ExitCode::from(1);
            }
        }
    }
    let input: Box<dyn std::io::BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::with_capacity(1 << 20, std::io::stdin()))
    } else {
        match std::fs::File::open(file) {
            Ok(f) => Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    };
    match verify::verify(input, &key, &kept) {
        Ok(v) => {
            let kind = match v.kind {
                verify::DocumentKind::Export => "export",
                verify::DocumentKind::Dossier => "dossier",
                verify::DocumentKind::Receipt => "receipt",
            };
            println!(
                "verified: {kind} of {} at tree size {}, {} entries ({} opened)",
                v.log, v.tree_size, v.entries, v.opened
            );
            ExitCode::SUCCESS
        }
        Err(VerifyError::Failed(failure)) => {
            println!("{failure}");
            ExitCode::from(1)
        }
        Err(VerifyError::Unreadable(why)) => {
            eprintln!("error: unreadable input: {why}");
            ExitCode::from(2)
        }
    }
}
