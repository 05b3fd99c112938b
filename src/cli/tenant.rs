//! `tenant create ID --brand NAME`: a tenant with its first brand; prints
//! its admin key once.

use super::open::open;
use crate::config::Settings;
use crate::domain::access::TenantId;
use crate::domain::access::{check_brand_name, BRAND_NAME_RULE, TENANT_ID_RULE};
use crate::domain::time::Timestamp;
use crate::services::tenants::{create_tenant, TenantError};
use crate::store::audit::{self, AuditEvent, AuditKind, OPERATOR_CLI};
use anyhow::{anyhow, bail};
use serde_json::json;
use std::process::ExitCode;

pub fn create(settings: &Settings, id: &str, brand: &str) -> anyhow::Result<ExitCode> {
    let Some(id) = TenantId::parse(id) else {
        bail!("{TENANT_ID_RULE}");
    };
    let id = &id;
    check_brand_name(brand).map_err(|code| anyhow!("--brand: {BRAND_NAME_RULE} ({code})"))?;
    let mut opened = open(settings)?;
    let created = create_tenant(
        &mut opened.conn,
        &opened.master,
        &opened.signer,
        &settings.origin,
        id,
        brand,
        Timestamp::now().millis(),
    )
    .map_err(|e| match e {
        TenantError::Exists => {
            anyhow!("tenant {id:?} exists or existed; tenant ids are never reused")
        }
        other => anyhow!(other),
    })?;
    let event = AuditEvent {
        actor: OPERATOR_CLI,
        kind: AuditKind::TenantCreated,
        details: json!({"brand": brand, "admin_key_id": created.admin_key_id}),
    };
    audit::record(&mut opened.conn, id, &event, Timestamp::now())?;
    let out = json!({
        "tenant": created.tenant,
        "log": created.log,
        "verifier_key": created.verifier_key,
        "admin_key": {"id": created.admin_key_id, "key": created.admin_key, "roles": ["admin"]},
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
