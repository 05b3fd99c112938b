//! `key create --tenant ID --role ROLE… [--name N] [--expires-at T]`: an
//! API key; prints it once.

use super::open::open;
use crate::config::Settings;
use crate::domain::access::TenantId;
use crate::domain::access::{normalised_roles, Role};
use crate::domain::time::Timestamp;
use crate::store::audit::{self, AuditEvent, AuditKind, OPERATOR_CLI};
use crate::store::tenants;
use anyhow::{anyhow, bail, Context};
use serde_json::json;
use std::process::ExitCode;

pub fn create(
    settings: &Settings,
    tenant: &str,
    roles: &[String],
    name: &str,
    expires_at: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let parsed: Vec<Role> = roles
        .iter()
        .map(|r| {
            Role::parse(r).ok_or_else(|| {
                anyhow!("unknown role {r:?}: use admin, collector, sender or auditor")
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let roles =
        normalised_roles(&parsed).ok_or_else(|| anyhow!("a key needs at least one --role"))?;
    let expires_at = expires_at
        .map(|t| {
            Timestamp::parse(t).map_err(|_| anyhow!("--expires-at must be an RFC 3339 date-time"))
        })
        .transpose()?;
    if expires_at.is_some_and(|t| t <= Timestamp::now()) {
        bail!("--expires-at must be in the future");
    }
    let mut conn = open(settings)?.conn;
    let Some(tenant) = TenantId::parse(tenant) else {
        bail!("no tenant {tenant:?}");
    };
    if tenants::find_tenant(&mut conn, &tenant)?.is_none() {
        bail!("no tenant {tenant:?}");
    }
    let tenant = &tenant;
    let (row, key) = tenants::create_api_key(
        &mut conn,
        tenant,
        name,
        &roles,
        expires_at.map(Timestamp::millis),
        Timestamp::now().millis(),
    )
    .context("cannot create the key")?;
    let event = AuditEvent {
        actor: OPERATOR_CLI,
        kind: AuditKind::KeyCreated,
        details: json!({"key_id": row.id, "name": row.name, "roles": row.role_names(), "expires_at": expires_at}),
    };
    audit::record(&mut conn, tenant, &event, Timestamp::now())?;
    let out = json!({"id": row.id, "key": key, "roles": row.role_names()});
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
