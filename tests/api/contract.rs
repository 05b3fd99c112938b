//! The committed OpenAPI document is a contract generated clients and
//! fuzzers rely on: every operation is called for real, each answer's
//! status must be documented for it, its body must match the documented
//! schema for its content type, and no operation of the document goes
//! uncalled.

use crate::channels::{
    configured, fixture, hub_signature, now_secs, sms, twilio_signature, PHONE_NUMBER_ID, TW_TOKEN,
    VERIFY_TOKEN, WA_SECRET, WEBHOOK_URL,
};
use crate::helpers::*;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Mutex;

/// The document, and the operations whose success was seen.
pub struct Contract {
    document: Value,
    succeeded: Mutex<BTreeSet<(String, String)>>,
}

impl Contract {
    pub fn load() -> Self {
        let path = format!("{}/openapi/openapi.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).expect("openapi/openapi.json");
        Self {
            document: serde_json::from_str(&text).expect("the document is JSON"),
            succeeded: Mutex::new(BTreeSet::new()),
        }
    }

    /// Every (method, path) the document describes.
    fn operations(&self) -> BTreeSet<(String, String)> {
        let mut all = BTreeSet::new();
        for (path, item) in self.document["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("a path item").keys() {
                all.insert((method.to_uppercase(), path.clone()));
            }
        }
        all
    }

    /// Sends a request for the documented `template`, checks its answer
    /// against the document and returns the status and body.
    pub async fn send(&self, template: &str, request: RequestBuilder) -> (StatusCode, String) {
        let request = request.build().expect("a request");
        let method = request.method().as_str().to_owned();
        let response = reqwest::Client::new()
            .execute(request)
            .await
            .expect("the request is answered");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response.text().await.expect("a body");
        self.check(&method, template, status, &content_type, &body);
        (status, body)
    }

    /// Panics unless the answer is one the document describes.
    pub fn check(
        &self,
        method: &str,
        template: &str,
        status: StatusCode,
        content_type: &str,
        body: &str,
    ) {
        if let Some(violation) = self.violation(method, template, status, content_type, body) {
            panic!("{violation}");
        }
    }

    /// How an answer departs from the document, if it does.
    pub fn violation(
        &self,
        method: &str,
        template: &str,
        status: StatusCode,
        content_type: &str,
        body: &str,
    ) -> Option<String> {
        let what = format!("{method} {template} answered {status}");
        let operation = &self.document["paths"][template][method.to_lowercase()];
        if !operation.is_object() {
            return Some(format!("{what}: not in the document"));
        }
        let responses = &operation["responses"];
        let code = status.as_u16();
        let Some(response) = [
            code.to_string(),
            format!("{}XX", code / 100),
            "default".into(),
        ]
        .iter()
        .map(|key| &responses[key.as_str()])
        .find(|r| r.is_object()) else {
            return Some(format!("{what}: status not documented ({body:.300})"));
        };
        let Some(content) = response["content"].as_object() else {
            if !body.is_empty() {
                return Some(format!("{what}: documented without a body: {body:.300}"));
            }
            self.saw(method, template, status);
            return None;
        };
        let media = content_type.split(';').next().unwrap_or("").trim();
        let Some(documented) = content.get(media) else {
            return Some(format!("{what}: content type {media:?} not documented"));
        };
        let instance = if media.ends_with("json") && !media.ends_with("ndjson") {
            match serde_json::from_str(body) {
                Ok(value) => value,
                Err(e) => return Some(format!("{what}: the body is not JSON ({e}): {body:.300}")),
            }
        } else {
            Value::String(body.to_owned())
        };
        let mut root = documented["schema"].clone();
        root["components"] = self.document["components"].clone();
        let validator = jsonschema::validator_for(&root).expect("a valid schema");
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        if !errors.is_empty() {
            return Some(format!(
                "{what}: the body does not match its schema: {errors:?}\n{body:.500}"
            ));
        }
        self.saw(method, template, status);
        None
    }

    fn saw(&self, method: &str, template: &str, status: StatusCode) {
        if status.is_success() {
            self.succeeded
                .lock()
                .unwrap()
                .insert((method.to_owned(), template.to_owned()));
        }
    }

    /// Panics unless every operation of the document succeeded at least once.
    fn all_called(&self) {
        let seen = self.succeeded.lock().unwrap().clone();
        let missing: Vec<_> = self.operations().difference(&seen).cloned().collect();
        assert!(
            missing.is_empty(),
            "operations never answered 2xx: {missing:?}"
        );
    }
}

/// A tenant with channels, an opt-in, an opt-out and a dead letter, and
/// every operation of the document called on it, successes and refusals.
#[tokio::test]
async fn every_operation_answers_what_the_document_says() {
    let app = spawn_app().await;
    let c = Contract::load();
    let http = &app.client;
    let url = |path: &str| app.url(path);

    // Operations and problems.
    for path in ["/healthz", "/readyz", "/problems/invalid_number"] {
        let template = if path.starts_with("/problems") {
            "/problems/{code}"
        } else {
            path
        };
        assert_eq!(
            c.send(template, http.get(url(path))).await.0,
            StatusCode::OK
        );
    }
    c.send("/problems/{code}", http.get(url("/problems/nope")))
        .await;

    // Tenants.
    let created = |id: &str| json!({"id": id, "brand": "Makro"});
    c.send(
        "/v1/tenants",
        http.post(url("/v1/tenants"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&created("contract")),
    )
    .await;
    c.send(
        "/v1/tenants",
        http.post(url("/v1/tenants"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&created("contract")),
    )
    .await;
    c.send(
        "/v1/tenants",
        http.post(url("/v1/tenants"))
            .bearer_auth("wrong")
            .json(&created("x")),
    )
    .await;
    let t = configured(&app).await;
    let admin = t.admin.as_str();
    c.send("/v1/tenant", http.get(url("/v1/tenant")).bearer_auth(admin))
        .await;
    c.send(
        "/v1/tenant",
        http.patch(url("/v1/tenant"))
            .bearer_auth(admin)
            .json(&json!({"max_consent_age_days": 365})),
    )
    .await;
    c.send(
        "/v1/tenant",
        http.patch(url("/v1/tenant"))
            .bearer_auth(admin)
            .json(&json!({"max_consent_age_days": "x"})),
    )
    .await;
    c.send("/v1/tenant", http.get(url("/v1/tenant"))).await;

    // Brands and keys.
    c.send("/v1/brands", http.get(url("/v1/brands")).bearer_auth(admin))
        .await;
    c.send(
        "/v1/brands",
        http.post(url("/v1/brands"))
            .bearer_auth(admin)
            .json(&json!({"name": "Metro"})),
    )
    .await;
    c.send(
        "/v1/brands",
        http.post(url("/v1/brands"))
            .bearer_auth(admin)
            .json(&json!({"name": "metro"})),
    )
    .await;
    c.send(
        "/v1/brands/{name}/retire",
        http.post(url("/v1/brands/Metro/retire")).bearer_auth(admin),
    )
    .await;
    c.send(
        "/v1/brands/{name}/retire",
        http.post(url("/v1/brands/Nope/retire")).bearer_auth(admin),
    )
    .await;
    c.send("/v1/keys", http.get(url("/v1/keys")).bearer_auth(admin))
        .await;
    let (_, made) = c
        .send(
            "/v1/keys",
            http.post(url("/v1/keys"))
                .bearer_auth(admin)
                .json(&json!({"name": "temp", "roles": ["sender"], "expires_at": at(3600)})),
        )
        .await;
    let key_id = serde_json::from_str::<Value>(&made).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.send(
        "/v1/keys",
        http.post(url("/v1/keys"))
            .bearer_auth(admin)
            .json(&json!({"name": "x", "roles": ["boss"]})),
    )
    .await;
    c.send(
        "/v1/keys/{id}",
        http.delete(url(&format!("/v1/keys/{key_id}")))
            .bearer_auth(admin),
    )
    .await;
    c.send(
        "/v1/keys/{id}",
        http.delete(url("/v1/keys/key_000000000000"))
            .bearer_auth(admin),
    )
    .await;

    // Recording.
    let other = "+4915112345679";
    c.send(
        "/v1/opt-ins",
        http.post(url("/v1/opt-ins"))
            .bearer_auth(&t.collector)
            .json(&web_opt_in(NUMBER, "Makro", &["marketing"])),
    )
    .await;
    c.send(
        "/v1/opt-ins",
        http.post(url("/v1/opt-ins"))
            .bearer_auth(&t.collector)
            .json(&web_opt_in("12", "Makro", &["marketing"])),
    )
    .await;
    c.send(
        "/v1/opt-ins",
        http.post(url("/v1/opt-ins"))
            .bearer_auth(&t.sender)
            .json(&web_opt_in(NUMBER, "Makro", &["marketing"])),
    )
    .await;
    c.send(
        "/v1/opt-outs",
        http.post(url("/v1/opt-outs"))
            .bearer_auth(&t.collector)
            .json(&api_opt_out(other)),
    )
    .await;
    c.send(
        "/v1/opt-outs",
        http.post(url("/v1/opt-outs"))
            .bearer_auth(&t.collector)
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await;
    let interaction = json!({"number": NUMBER, "business_phone_number_id": PHONE_NUMBER_ID, "received_at": at(-60)});
    c.send(
        "/v1/interactions",
        http.post(url("/v1/interactions"))
            .bearer_auth(&t.sender)
            .json(&interaction),
    )
    .await;
    c.send(
        "/v1/interactions",
        http.post(url("/v1/interactions"))
            .bearer_auth(&t.sender)
            .json(&json!({"number": NUMBER, "received_at": at(600)})),
    )
    .await;

    // Checks.
    for number in [NUMBER, other, "+4915100000000"] {
        c.send(
            "/v1/checks",
            http.post(url("/v1/checks"))
                .bearer_auth(&t.sender)
                .json(&json!({"number": number, "purpose": "marketing", "brand": "Makro"})),
        )
        .await;
    }
    c.send(
        "/v1/checks",
        http.post(url("/v1/checks"))
            .bearer_auth(&t.sender)
            .json(&json!({"number": NUMBER, "purpose": "marketing", "brand": "Metro"})),
    )
    .await;
    c.send(
        "/v1/checks",
        http.post(url("/v1/checks"))
            .bearer_auth(&t.sender)
            .json(&json!({"number": "nope", "purpose": "marketing"})),
    )
    .await;
    let batch = json!({"checks": [
        {"number": NUMBER, "purpose": "marketing", "brand": "Makro"},
        {"number": "not a number", "purpose": "marketing", "brand": "Makro"},
        {"number": 4915112345678u64, "purpose": "marketing"},
        {"purpose": "marketing"},
        {"number": other, "purpose": "utility", "brand": "Makro", "channel": "sms"}
    ]});
    let (status, answer) = c
        .send(
            "/v1/checks/batch",
            http.post(url("/v1/checks/batch"))
                .bearer_auth(&t.sender)
                .json(&batch),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["decisions"][1]["number"],
        "not a number"
    );
    c.send(
        "/v1/checks/batch",
        http.post(url("/v1/checks/batch"))
            .bearer_auth(&t.sender)
            .json(&json!({"checks": 5})),
    )
    .await;

    // The ledger and the log.
    let auditor = t.auditor.as_str();
    c.send(
        "/v1/subjects/query",
        http.post(url("/v1/subjects/query"))
            .bearer_auth(auditor)
            .json(&json!({"number": NUMBER})),
    )
    .await;
    c.send(
        "/v1/subjects/query",
        http.post(url("/v1/subjects/query"))
            .bearer_auth(auditor)
            .json(&json!({"number": "+4915100000000"})),
    )
    .await;
    for seq in ["0", "1", "99"] {
        c.send(
            "/v1/entries/{seq}",
            http.get(url(&format!("/v1/entries/{seq}")))
                .bearer_auth(auditor),
        )
        .await;
        c.send(
            "/v1/entries/{seq}/receipt",
            http.get(url(&format!("/v1/entries/{seq}/receipt")))
                .bearer_auth(auditor),
        )
        .await;
    }
    c.send(
        "/v1/log/checkpoint",
        http.get(url("/v1/log/checkpoint")).bearer_auth(auditor),
    )
    .await;
    c.send(
        "/v1/log/checkpoints",
        http.get(url("/v1/log/checkpoints?size=0"))
            .bearer_auth(auditor),
    )
    .await;
    c.send(
        "/v1/log/checkpoints",
        http.get(url("/v1/log/checkpoints?size=999"))
            .bearer_auth(auditor),
    )
    .await;
    c.send(
        "/v1/log/keys",
        http.get(url("/v1/log/keys")).bearer_auth(auditor),
    )
    .await;
    c.send(
        "/v1/log/proof/inclusion",
        http.get(url("/v1/log/proof/inclusion?seq=0&size=2"))
            .bearer_auth(auditor),
    )
    .await;
    c.send(
        "/v1/log/proof/inclusion",
        http.get(url("/v1/log/proof/inclusion?seq=5&size=2"))
            .bearer_auth(auditor),
    )
    .await;
    c.send(
        "/v1/log/proof/consistency",
        http.get(url("/v1/log/proof/consistency?from=1&to=2"))
            .bearer_auth(auditor),
    )
    .await;
    c.send(
        "/v1/log/proof/consistency",
        http.get(url("/v1/log/proof/consistency?from=3&to=2"))
            .bearer_auth(auditor),
    )
    .await;
    c.send(
        "/v1/export",
        http.get(url("/v1/export")).bearer_auth(auditor),
    )
    .await;
    c.send(
        "/v1/export",
        http.get(url("/v1/export?size=77")).bearer_auth(auditor),
    )
    .await;
    c.send(
        "/v1/export/dossier",
        http.post(url("/v1/export/dossier"))
            .bearer_auth(auditor)
            .json(&json!({"number": NUMBER})),
    )
    .await;
    c.send(
        "/v1/export/dossier",
        http.post(url("/v1/export/dossier"))
            .bearer_auth(auditor)
            .json(&json!({"number": 5})),
    )
    .await;

    // Channels, webhooks and dead letters.
    c.send(
        "/v1/channels",
        http.get(url("/v1/channels")).bearer_auth(admin),
    )
    .await;
    c.send(
        "/v1/channels",
        http.put(url("/v1/channels"))
            .bearer_auth(admin)
            .json(&crate::channels::settings()),
    )
    .await;
    c.send(
        "/v1/channels",
        http.put(url("/v1/channels"))
            .bearer_auth(admin)
            .json(&json!({"whatsapp": 1})),
    )
    .await;
    let handshake = |token: &str| {
        http.get(url(&format!(
            "/webhooks/whatsapp/makro?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
        )))
    };
    let whatsapp = "/webhooks/whatsapp/{tenant}";
    assert_eq!(
        c.send(whatsapp, handshake(VERIFY_TOKEN)).await.0,
        StatusCode::OK
    );
    c.send(whatsapp, handshake("wrong")).await;
    let kept = fixture("bsuid_only", now_secs());
    let body = serde_json::to_vec(&kept).unwrap();
    let signed = http
        .post(url("/webhooks/whatsapp/makro"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", hub_signature(WA_SECRET, &body))
        .body(body.clone());
    assert_eq!(c.send(whatsapp, signed).await.0, StatusCode::OK);
    let unsigned = http
        .post(url("/webhooks/whatsapp/makro"))
        .header("content-type", "application/json")
        .body(body);
    c.send(whatsapp, unsigned).await;
    let twilio = "/webhooks/twilio/{tenant}";
    let params = sms(NUMBER, "SM00000000000000000000000000000001", "hello");
    let form = serde_urlencoded::to_string(&params).unwrap();
    let post_form = |signature: &str| {
        http.post(url("/webhooks/twilio/makro"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature.to_owned())
            .body(form.clone())
    };
    let signature = twilio_signature(TW_TOKEN, WEBHOOK_URL, &params);
    assert_eq!(
        c.send(twilio, post_form(&signature)).await.0,
        StatusCode::OK
    );
    c.send(twilio, post_form("bad")).await;
    c.send(
        twilio,
        http.post(url("/webhooks/twilio/makro")).json(&json!({})),
    )
    .await;
    let (_, page) = c
        .send(
            "/v1/dead-letters",
            http.get(url("/v1/dead-letters")).bearer_auth(admin),
        )
        .await;
    let id = serde_json::from_str::<Value>(&page).unwrap()["dead_letters"][0]["id"]
        .as_i64()
        .expect("a dead letter");
    c.send(
        "/v1/dead-letters",
        http.get(url("/v1/dead-letters?limit=0")).bearer_auth(admin),
    )
    .await;
    c.send(
        "/v1/dead-letters/{id}",
        http.get(url(&format!("/v1/dead-letters/{id}")))
            .bearer_auth(admin),
    )
    .await;
    c.send(
        "/v1/dead-letters/{id}",
        http.get(url("/v1/dead-letters/424242")).bearer_auth(admin),
    )
    .await;

    c.all_called();
}
