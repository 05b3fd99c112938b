//! A sweep of hostile input: every field of a valid request of each JSON
//! endpoint replaced, one at a time, by values a careless or hostile client
//! sends (NUL, huge strings and numbers, wrong types, impossible dates).
//! Each answer is a 2xx or a 4xx problem+json that the OpenAPI document
//! describes, never a 500 (on PostgreSQL
//! a NUL or an oversized index key fails the query if it reaches it). Signed
//! webhook payloads mutated the same way are always answered 200.
//! Deterministic and bounded: a few thousand requests per backend.

use crate::channels::{
    configured, fixture, hub_signature, now_secs, post_twilio, post_whatsapp, sms,
    twilio_signature, ACCOUNT_SID, TW_TOKEN, WA_SECRET, WEBHOOK_URL,
};
use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// What replaces a field.
fn hostile_values() -> Vec<Value> {
    vec![
        json!("\u{0}"),
        json!("a\u{0}b"),
        json!("x".repeat(3_000)),
        json!("x".repeat(100_000)),
        json!("\u{202e}\u{1b}[2J"),
        json!("🛒".repeat(2_000)),
        json!(""),
        Value::Null,
        json!(0),
        json!(-1),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1.5),
        json!(1e308),
        json!(true),
        json!([]),
        json!({}),
        json!(["\u{0}"]),
        json!({"a": "\u{0}"}),
        json!("9999-12-31T23:59:59Z"),
        json!("0000-01-01T00:00:00Z"),
        json!("2026-13-45T25:61:61Z"),
        json!(format!("+{}", "9".repeat(40))),
    ]
}

/// The path of every value in `v`: keys and indexes from the root.
fn paths(v: &Value) -> Vec<Vec<Step>> {
    fn walk(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        out.push(here.clone());
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    here.push(Step::Key(k.clone()));
                    walk(child, here, out);
                    here.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    here.push(Step::Index(i));
                    walk(child, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn at_path<'a>(v: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(v, |here, step| match step {
        Step::Key(k) => here.get(k.as_str()),
        Step::Index(i) => here.get(*i),
    })
}

fn replaced(v: &Value, path: &[Step], with: &Value) -> Value {
    let mut copy = v.clone();
    let mut here = &mut copy;
    for step in path {
        here = match step {
            Step::Key(k) => &mut here[k.as_str()],
            Step::Index(i) => &mut here[*i],
        };
    }
    *here = with.clone();
    copy
}

/// Every variant of `body` with one field replaced by one hostile value.
fn variants(body: &Value) -> Vec<(String, Value)> {
    let values = hostile_values();
    let mut out = Vec::new();
    for path in paths(body) {
        for (i, value) in values.iter().enumerate() {
            out.push((
                format!("{path:?} ← value {i}"),
                replaced(body, &path, value),
            ));
        }
        // A valid string with something appended passes the checks that
        // look at its start (a brand named in the text) and reaches the store.
        if let Some(Value::String(valid)) = at_path(body, &path) {
            let tails = ["\u{0}".to_owned(), "\u{7}".to_owned(), "x".repeat(3_000)];
            for (i, tail) in tails.iter().enumerate() {
                let longer = json!(format!("{valid}{tail}"));
                out.push((
                    format!("{path:?} + tail {i}"),
                    replaced(body, &path, &longer),
                ));
            }
        }
    }
    out
}

/// A 2xx, or a 4xx with a problem+json body.
fn acceptable(status: StatusCode, content_type: &str) -> bool {
    status.is_success()
        || (status.is_client_error() && content_type.starts_with("application/problem+json"))
}

#[both]
async fn no_field_of_any_json_request_can_make_a_500() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let evidence_sms =
        json!({"message_id": "SM1", "from_number_to": "+4930123456", "body": "JOIN"});
    let opt_in = |channel: &str, evidence: Value| {
        json!({
            "number": NUMBER,
            "region": "DE",
            "channel": channel,
            "company_name_shown": "Makro",
            "consent_text": "Yes, send me offers from Makro on WhatsApp. Reply STOP to end.",
            "purposes": ["marketing", "utility"],
            "message_channels": ["whatsapp", "sms"],
            "captured_at": at(-10),
            "evidence": evidence
        })
    };
    let check = json!({"number": NUMBER, "region": "DE", "purpose": "marketing", "brand": "Makro",
                       "channel": "whatsapp", "business_phone_number_id": "106540352242922"});
    let requests: Vec<(Method, &str, &str, Value)> = vec![
        (
            Method::POST,
            "/v1/opt-ins",
            &t.collector,
            opt_in("sms", evidence_sms),
        ),
        (
            Method::POST,
            "/v1/opt-ins",
            &t.collector,
            opt_in(
                "ivr",
                json!({"call_id": "CA1", "prompt_script": "Press 1 for Makro", "dtmf": "1"}),
            ),
        ),
        (
            Method::POST,
            "/v1/opt-ins",
            &t.collector,
            opt_in(
                "paper",
                json!({"document_sha256": "a".repeat(64), "signer_name": "J. Doe",
                       "signed_on": today(), "collected_by": "store-1"}),
            ),
        ),
        (
            Method::POST,
            "/v1/opt-outs",
            &t.collector,
            json!({"number": NUMBER, "channel": "api", "purposes": ["marketing"],
                   "message_channels": ["whatsapp"], "captured_at": at(0),
                   "evidence": {"reason": "asked the call centre"}}),
        ),
        (
            Method::POST,
            "/v1/interactions",
            &t.sender,
            json!({"number": NUMBER, "region": "DE", "business_phone_number_id": "106540352242922",
                   "received_at": at(-60)}),
        ),
        (Method::POST, "/v1/checks", &t.sender, check.clone()),
        (
            Method::POST,
            "/v1/checks/batch",
            &t.sender,
            json!({"checks": [check.clone(), check]}),
        ),
        (
            Method::POST,
            "/v1/subjects/query",
            &t.auditor,
            json!({"number": NUMBER}),
        ),
        (
            Method::POST,
            "/v1/export/dossier",
            &t.auditor,
            json!({"number": NUMBER}),
        ),
        (
            Method::POST,
            "/v1/brands",
            &t.admin,
            json!({"name": "Metro"}),
        ),
        (
            Method::POST,
            "/v1/keys",
            &t.admin,
            json!({"name": "k", "roles": ["sender"], "expires_at": at(3_600)}),
        ),
        (
            Method::PATCH,
            "/v1/tenant",
            &t.admin,
            json!({"max_consent_age_days": 365, "default_region": "DE",
                   "evidence_retention_days": 30}),
        ),
        (
            Method::PUT,
            "/v1/channels",
            &t.admin,
            crate::channels::settings(),
        ),
    ];
    let mut sent = 0;
    let mut failures = Vec::new();
    let contract = crate::contract::Contract::load();
    for (method, path, key, body) in &requests {
        // The unmutated request is valid: the sweep starts from real requests.
        let answer = send(&app, method.clone(), path, key, body).await;
        assert!(
            answer.status.is_success(),
            "{path}: {} {}",
            answer.status,
            answer.body
        );
        for (what, variant) in variants(body) {
            let answer = send(&app, method.clone(), path, key, &variant).await;
            sent += 1;
            if !acceptable(answer.status, answer.content_type()) {
                let body = answer.body.to_string();
                failures.push(format!(
                    "{method} {path} {what}: {} {body:.200}",
                    answer.status
                ));
            }
            // And the answer is one the OpenAPI document describes.
            let text = answer.body.to_string();
            let violation = contract.violation(
                method.as_str(),
                path,
                answer.status,
                answer.content_type(),
                &text,
            );
            if let Some(violation) = violation {
                failures.push(format!("{what}: {violation}"));
            }
        }
    }
    none_failed(sent, &failures);
}

async fn send(app: &TestApp, method: Method, path: &str, key: &str, body: &Value) -> Answer {
    let response = app
        .client
        .request(method, app.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("request");
    TestApp::answer(response).await
}

#[both]
async fn signed_webhooks_are_answered_200_whatever_they_carry() {
    let app = spawn_app().await;
    configured(&app).await;
    let now = now_secs();
    let mut failures = Vec::new();
    let mut sent = 0;
    for name in [
        "text_reply",
        "button",
        "interactive",
        "user_preferences",
        "bsuid_text",
    ] {
        let payload = fixture(name, now - 30);
        for (n, (what, variant)) in variants(&payload).into_iter().enumerate() {
            // Each variant a new message, so that deduplication hides nothing.
            let variant = fresh_ids(variant, &payload, &format!("{name}.{n}"));
            let body = serde_json::to_vec(&variant).expect("json");
            let signature = hub_signature(WA_SECRET, &body);
            let answer = post_whatsapp(&app, "makro", &body, Some(&signature)).await;
            sent += 1;
            if answer.status != StatusCode::OK {
                failures.push(format!("{name} {what}: {}", answer.status));
            }
        }
    }
    // Twilio: every parameter replaced by each hostile string.
    let strings: Vec<String> = hostile_values()
        .into_iter()
        .map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        })
        .filter(|s| s.len() < 10_000)
        .collect();
    let base = sms("+4915112345678", "SM0", "JOIN");
    for i in 0..base.len() {
        for (j, s) in strings.iter().enumerate() {
            let mut params = base.clone();
            for (k, v) in params.iter_mut() {
                if k == "MessageSid" || k == "SmsSid" || k == "SmsMessageSid" {
                    *v = format!("SM{i}x{j}");
                }
            }
            params[i].1 = s.clone();
            let signature = twilio_signature(TW_TOKEN, WEBHOOK_URL, &params);
            let (status, _, _) = post_twilio(&app, &params, Some(&signature)).await;
            sent += 1;
            // AccountSid and To must match the tenant: 401 then, else 200.
            let tenant_field = params[i].0 == "AccountSid" || params[i].0 == "To";
            let expected = if tenant_field && *s != ACCOUNT_SID {
                status == StatusCode::OK || status == StatusCode::UNAUTHORIZED
            } else {
                status == StatusCode::OK
            };
            if !expected {
                failures.push(format!("twilio {} ← {j}: {status}", params[i].0));
            }
        }
    }
    none_failed(sent, &failures);
}

/// Many requests were sent and none failed; else every failure, listed.
fn none_failed(sent: usize, failures: &[String]) {
    assert!(sent > 1_000, "{sent} requests");
    assert!(
        failures.is_empty(),
        "{} of {sent}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Gives every message id the fixture's own id still holds a unique value,
/// so that deduplication hides nothing (a hostile id stays as it is).
fn fresh_ids(mut payload: Value, fixture: &Value, tag: &str) -> Value {
    const MESSAGES: &str = "/entry/0/changes/0/value/messages";
    let original = |i: usize| fixture.pointer(&format!("{MESSAGES}/{i}/id")).cloned();
    if let Some(messages) = payload.pointer_mut(MESSAGES).and_then(Value::as_array_mut) {
        for (i, m) in messages.iter_mut().enumerate() {
            if m.get("id").is_some() && m.get("id").cloned() == original(i) {
                m["id"] = json!(format!("wamid.{tag}.{i}"));
            }
        }
    }
    payload
}
