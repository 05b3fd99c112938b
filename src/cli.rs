//! The command line: `serve` (default), `migrate`, `tenant create`,
//! `key create`, `openapi`.

use crate::api::auth::Role;
use crate::api::keys::normalise_roles;
use crate::api::tenants::{check_brand_name, valid_tenant_id};
use crate::config::{Settings, SettingsArgs};
use crate::domain::time::Timestamp;
use crate::signer::Signer;
use crate::startup;
use crate::store::{tenants, Rejection, StoreError};
use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use serde_json::json;

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
    /// Print the OpenAPI document
    Openapi,
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

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Openapi = command {
        print!("{}", startup::openapi_json());
        return Ok(());
    }
    let settings = Settings::resolve(&cli.settings)?;
    crate::telemetry::init(settings.log_format);
    match command {
        Command::Openapi => unreachable!("handled above"),
        Command::Serve => actix_web::rt::System::new().block_on(startup::serve(settings)),
        Command::Migrate => {
            let (_, _) = startup::open_database(&settings)?;
            eprintln!("migrations are current");
            Ok(())
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
            let created =
                tenants::create_tenant(&mut conn, &master, &signer, &settings.origin, &id, &brand)
                    .map_err(|e| match e {
                        StoreError::Rejected(Rejection::TenantExists) => {
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
            Ok(())
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
            )
            .context("cannot create the key")?;
            let out = json!({"id": row.id, "key": key, "roles": row.role_names()});
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
    }
}
