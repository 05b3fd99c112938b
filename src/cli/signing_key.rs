//! `signing-key rotate [--tenant ID] [--compromised]`: a new checkpoint key;
//! the current size is signed by the old and the new key.

use super::open::open;
use crate::config::Settings;
use crate::domain::access::TenantId;
use crate::domain::time::Timestamp;
use crate::store::audit::{self, AuditEvent, AuditKind, OPERATOR_CLI};
use crate::store::tenants;
use anyhow::anyhow;
use std::process::ExitCode;

pub fn rotate(
    settings: &Settings,
    tenant: Option<&str>,
    compromised: bool,
) -> anyhow::Result<ExitCode> {
    let opened = open(settings)?;
    let (mut conn, master, signer) = (opened.conn, opened.master, opened.signer);
    let ids: Vec<TenantId> = match tenant {
        Some(id) => {
            let found = TenantId::parse(id)
                .map(|t| tenants::find_tenant(&mut conn, &t))
                .transpose()?
                .flatten();
            vec![found.ok_or_else(|| anyhow!("no tenant {id:?}"))?.id]
        }
        None => tenants::all_tenant_ids(&mut conn)?,
    };
    for id in ids {
        let (verifier_key, checkpoint) = signer.rotate(&mut conn, &master, &id, compromised)?;
        let event = AuditEvent {
            actor: OPERATOR_CLI,
            kind: AuditKind::SigningKeyRotated,
            details: serde_json::json!({
                "verifier_key": verifier_key,
                "size": checkpoint.size,
                "compromised": compromised,
            }),
        };
        audit::record(&mut conn, &id, &event, Timestamp::now())?;
        println!(
            "{id}: new verifier key {verifier_key} (size {} signed by both keys)",
            checkpoint.size
        );
    }
    Ok(ExitCode::SUCCESS)
}
