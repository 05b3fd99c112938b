//! The hosted phone opt-in (docs/ivr.md): flows saved as versions, like
//! forms, and a call whose caller pressed the flow's key recorded as an
//! `ivr` opt-in through the one recording path, once per call.

use super::error::ServiceResult;
use super::recording::{record_opt_in, Door};
use crate::domain::access::TenantId;
use crate::domain::evidence::{Evidence, FieldError};
use crate::domain::identity::Identity;
use crate::domain::ivr::{flow_problems, is_flow_id, IvrFlowInput};
use crate::domain::problem::{ErrorCode, Invalid};
use crate::domain::purpose::CaptureChannel;
use crate::domain::record::OptInDraft;
use crate::domain::text::contains_whole_word;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::providers::twilio::Call;
use crate::store::channels;
use crate::store::connection::lock_log;
use crate::store::ivr_flows::{self, FlowRow};
use crate::store::tenants::{find_brand, TenantRow};
use crate::store::DbConn;

/// A flow's definition at a version.
#[derive(Debug, Clone)]
pub struct Flow {
    pub id: String,
    pub version: i64,
    pub definition: IvrFlowInput,
}

fn invalid(errors: Vec<FieldError>) -> Invalid {
    Invalid {
        errors,
        ..Invalid::new(
            ErrorCode::InvalidRequest,
            "the flow is not valid; `errors` names each field",
        )
    }
}

/// Saves a flow: a new version when its definition changed (`true`), the
/// current one when it did not.
pub fn save(
    conn: &mut DbConn,
    tenant: &TenantId,
    (id, mut input): (&str, IvrFlowInput),
    now: Timestamp,
) -> ServiceResult<(Flow, bool)> {
    let mut errors: Vec<FieldError> = flow_problems(&input)
        .into_iter()
        .map(|(field, code)| FieldError::new(field, code))
        .collect();
    if !is_flow_id(id) {
        errors.push(FieldError::new("flow", "invalid_value"));
    }
    match find_brand(conn, tenant, &input.brand)? {
        Some(b) if b.retired_at.is_none() => {
            if !contains_whole_word(&input.prompt, &b.name) {
                errors.push(FieldError::new("prompt", "brand_not_named"));
            }
            input.brand = b.name;
        }
        Some(_) => errors.push(FieldError::new("brand", "brand_retired")),
        None => errors.push(FieldError::new("brand", "unknown_brand")),
    }
    if !errors.is_empty() {
        return Err(invalid(errors).into());
    }
    input.purposes.sort_by_key(|p| p.as_str());
    input.purposes.dedup();
    input.message_channels.sort_by_key(|c| c.as_str());
    input.message_channels.dedup();
    conn.immediate_transaction(|conn| {
        let latest = ivr_flows::latest(conn, tenant, id)?;
        if let Some(flow) = latest.as_ref().and_then(flow_of) {
            if flow.definition == input {
                return Ok((flow, false));
            }
        }
        let row = FlowRow {
            tenant_id: tenant.clone(),
            id: id.to_owned(),
            version: latest.map_or(1, |l| l.version + 1),
            definition: serde_json::to_string(&input).expect("a flow serialises"),
            created_at: now.millis(),
        };
        ivr_flows::insert(conn, &row)?;
        Ok((flow_of(&row).expect("just written"), true))
    })
}

fn flow_of(row: &FlowRow) -> Option<Flow> {
    Some(Flow {
        id: row.id.clone(),
        version: row.version,
        definition: serde_json::from_str(&row.definition).ok()?,
    })
}

/// A flow at its current version, if the tenant has it.
pub fn current(conn: &mut DbConn, tenant: &TenantId, id: &str) -> ServiceResult<Option<Flow>> {
    Ok(ivr_flows::latest(conn, tenant, id)?
        .as_ref()
        .and_then(flow_of))
}

/// Records a call's opt-in when its caller pressed the flow's key: the
/// entry's seq, or `None` when nothing is recorded (another key, a
/// withheld caller, the same call again, or a refusal by the rules).
pub fn record_call(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantRow,
    (flow, call): (&Flow, &Call),
    now: Timestamp,
) -> ServiceResult<Option<u64>> {
    let definition = &flow.definition;
    let (Some(caller), Some(digits)) = (&call.caller, &call.digits) else {
        return Ok(None);
    };
    if *digits != definition.digit {
        return Ok(None);
    }
    conn.immediate_transaction(|conn| {
        lock_log(conn, &tenant.id)?;
        let key = master.keyed_hash(&tenant.id, &["twilio-voice", &call.call_id]);
        if !channels::first_delivery(conn, &tenant.id, &key, now.millis())? {
            return Ok(None);
        }
        let version = flow.version.to_string();
        let mut evidence = vec![
            ("call_id", call.call_id.as_str()),
            ("dtmf", digits.as_str()),
            ("prompt_script", definition.prompt.as_str()),
            ("flow", flow.id.as_str()),
            ("flow_version", version.as_str()),
        ];
        if let Some(verstat) = &call.stir_verstat {
            evidence.push(("stir_verstat", verstat));
        }
        let draft = OptInDraft {
            identity: Identity::Number(caller.clone()),
            channel: CaptureChannel::Ivr,
            company_name_shown: definition.brand.clone(),
            consent_text: definition.prompt.clone(),
            purposes: definition.purposes.iter().copied().collect(),
            message_channels: definition.message_channels.iter().copied().collect(),
            captured_at: now,
            language: None,
            backfill: false,
            evidence: Evidence::from_list(&evidence),
        };
        let door = Door::Ivr { flow: &flow.id };
        match record_opt_in(conn, master, tenant, (draft, door), None, now) {
            Ok(recorded) => Ok(Some(recorded.appended.seq)),
            Err(refused) if refused.is_refusal() => {
                let code = refused.refusal_code().unwrap_or_default();
                tracing::info!(tenant = %tenant.id, refused = %code, "a phone opt-in the rules refuse: nothing recorded");
                Ok(None)
            }
            Err(failed) => Err(failed),
        }
    })
}
