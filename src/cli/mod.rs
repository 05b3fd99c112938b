//! The command line (docs/api.md): `serve` (the default), `migrate`,
//! `tenant create`, `key create`, `import`, `export`, `verify`, `verify-db`,
//! `signing-key rotate`, `openapi`; one file per command, and one helper
//! that opens the database, the master key and the signer.

mod backup;
mod export;
mod import;
mod key;
mod open;
mod operator_token;
mod restore_tail;
mod signing_key;
mod tenant;
mod verify;
mod verify_db;
mod verify_online;

use crate::config::{CommonArgs, ServerArgs, Settings, SettingsArgs};
use crate::startup;
use clap::{Parser, Subcommand};
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
    pub common: CommonArgs,
    /// The server's settings, for the bare command (which serves).
    #[command(flatten, next_help_heading = "Server settings")]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default)
    Serve(ServerArgs),
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
    /// Import a file of existing consent (NDJSON, or CSV when named .csv) as backfills; exit 1 naming refused lines
    Import {
        #[arg(long)]
        tenant: String,
        /// The file: one opt-in or opt-out a line (docs/import.md)
        file: PathBuf,
        /// The import's id: a rerun with it records nothing twice [default: the file's SHA-256]
        #[arg(long)]
        id: Option<String>,
        /// all_or_nothing (refuse the file if any line is refused) or valid_lines
        #[arg(long, default_value = "all_or_nothing")]
        mode: String,
        /// Take over an import a killed process left running (without it, after a minute)
        #[arg(long)]
        take_over: bool,
    },
    /// Verify an export, dossier, receipt or decision statement offline; exit 0 verified, 1 failed, 2 unreadable
    Verify {
        /// The file to check ("-" for standard input)
        file: PathBuf,
        /// The log's verifier key: the only thing trusted
        #[arg(long)]
        key: String,
        /// A checkpoint kept from an earlier audit; repeatable
        #[arg(long = "trusted")]
        trusted: Vec<PathBuf>,
        /// With a decision statement: the receipt of its entry at the statement's tree size
        #[arg(long)]
        receipt: Option<PathBuf>,
        /// Also ask the log at this base URL whether it is still consistent with the document
        #[arg(long, requires = "token")]
        from: Option<String>,
        /// An auditor key of the log's tenant, for --from
        #[arg(long, env = "CONSENT_LEDGER_AUDITOR_KEY", hide_env_values = true)]
        token: Option<String>,
    },
    /// Scan the live database like an export; exit 0 clean, 1 tampered
    VerifyDb {
        /// Only this tenant's log [default: every tenant's]
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
    /// Manage the operator token
    OperatorToken {
        #[command(subcommand)]
        command: OperatorTokenCommand,
    },
    /// After restoring an older backup: re-append the entries it lacks from a verified export
    RestoreTail {
        /// A full export (with openings) of the log, newer than the database
        #[arg(long)]
        export: PathBuf,
    },
    /// Copy the SQLite database while the service runs (VACUUM INTO), 0600
    Backup {
        /// The backup file; must not exist
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperatorTokenCommand {
    /// A new operator token replaces the stored one on every instance; printed once
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// New key for one tenant (or all): the current size is signed by the old and the new key
    Rotate {
        /// Only this tenant's key [default: every tenant's]
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
        /// The tenant the key belongs to
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
    let command = cli.command.unwrap_or(Command::Serve(ServerArgs::default()));
    match command {
        Command::Openapi => {
            print!("{}", startup::openapi_json());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Verify {
            file,
            key,
            trusted,
            receipt,
            from,
            token,
        } => {
            let online = from.as_deref().zip(token.as_deref());
            let kept = verify::Kept {
                trusted: &trusted,
                receipt: receipt.as_deref(),
            };
            return Ok(verify::run(&file, &key, kept, online));
        }
        _ => {}
    }
    // The server's settings given after `serve` win over those before it.
    let server = match &command {
        Command::Serve(after) => after.clone().or(cli.server),
        _ => cli.server,
    };
    let settings = Settings::resolve(&SettingsArgs::of(cli.common, server))?;
    match command {
        Command::Import { .. } => crate::telemetry::init_at(settings.log_format, "warn"),
        _ => crate::telemetry::init(settings.log_format),
    }
    match command {
        Command::Openapi | Command::Verify { .. } => unreachable!("handled above"),
        Command::Serve(_) => {
            actix_web::rt::System::new().block_on(startup::serve(settings))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            startup::open_database(&settings)?;
            eprintln!("migrations are current");
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            tenant,
            out,
            no_openings,
        } => export::run(&settings, &tenant, out.as_deref(), no_openings),
        Command::Import {
            tenant,
            file,
            id,
            mode,
            take_over,
        } => {
            let asked = import::Asked {
                tenant: &tenant,
                file: &file,
                id: id.as_deref(),
                mode: &mode,
                take_over,
            };
            import::run(&settings, &asked)
        }
        Command::VerifyDb { tenant } => verify_db::run(&settings, tenant.as_deref()),
        Command::OperatorToken {
            command: OperatorTokenCommand::Rotate,
        } => operator_token::rotate(&settings),
        Command::Backup { out } => backup::run(&settings, &out),
        Command::RestoreTail { export } => restore_tail::run(&settings, &export),
        Command::SigningKey {
            command:
                SigningKeyCommand::Rotate {
                    tenant,
                    compromised,
                },
        } => signing_key::rotate(&settings, tenant.as_deref(), compromised),
        Command::Tenant {
            command: TenantCommand::Create { id, brand },
        } => tenant::create(&settings, &id, &brand),
        Command::Key {
            command:
                KeyCommand::Create {
                    tenant,
                    roles,
                    name,
                    expires_at,
                },
        } => key::create(&settings, &tenant, &roles, &name, expires_at.as_deref()),
    }
}
