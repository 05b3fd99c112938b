//! The committed OpenAPI document is a contract generated clients and
//! fuzzers rely on: every operation is called for real, each answer's
//! status must be documented for it, its body must match the documented
//! schema for its content type, and no operation of the document goes
//! uncalled.

use crate::channels::{
    configured, hub_signature, now_secs, sms, twilio_signature, unreadable_stop, PHONE_NUMBER_ID,
    TW_TOKEN, VERIFY_TOKEN, WA_SECRET, WEBHOOK_URL,
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

    /// `GET path` with `key` (none when empty), checked as `template`.
    pub async fn get(
        &self,
        app: &TestApp,
        template: &str,
        path: &str,
        key: &str,
    ) -> (StatusCode, String) {
        self.send(template, app.client.get(app.url(path)).bearer_auth(key))
            .await
    }

    /// `POST path` of a JSON body with `key`, checked as `template`.
    pub async fn post(
        &self,
        app: &TestApp,
        template: &str,
        path: &str,
        key: &str,
        body: &Value,
    ) -> (StatusCode, String) {
        let request = app.client.post(app.url(path)).bearer_auth(key).json(body);
        self.send(template, request).await
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
#[both]
async fn every_operation_answers_what_the_document_says() {
    let app = spawn_app().await;
    let c = Contract::load();
    let (app, c) = (&app, &c);
    operations_and_tenants(app, c).await;
    let t = configured(app).await;
    brands_and_keys(app, c, &t).await;
    recording_and_checks(app, c, &t).await;
    ledger_and_log(app, c, &t).await;
    channels_and_webhooks(app, c, &t).await;
    outbound_events(app, c, &t).await;
    imports(app, c, &t).await;
    entry_points(app, c, &t).await;
    phone_flows(app, c, &t).await;
    c.all_called();
}

async fn operations_and_tenants(app: &TestApp, c: &Contract) {
    for path in ["/healthz", "/readyz"] {
        assert_eq!(c.get(app, path, path, "").await.0, StatusCode::OK);
    }
    let problems = "/problems/{code}";
    assert_eq!(
        c.get(app, problems, "/problems/invalid_number", "").await.0,
        StatusCode::OK
    );
    c.get(app, problems, "/problems/nope", "").await;
    let created = |id: &str| json!({"id": id, "brand": "Makro"});
    let tenants = "/v1/tenants";
    c.post(app, tenants, tenants, OPERATOR_TOKEN, &created("contract"))
        .await;
    c.post(app, tenants, tenants, OPERATOR_TOKEN, &created("contract"))
        .await;
    c.post(app, tenants, tenants, "wrong", &created("x")).await;
}

async fn brands_and_keys(app: &TestApp, c: &Contract, t: &Tenant) {
    let (admin, http) = (t.admin.as_str(), &app.client);
    c.get(app, "/v1/tenant", "/v1/tenant", admin).await;
    c.get(app, "/v1/tenant", "/v1/tenant", "").await;
    for body in [
        json!({"max_consent_age_days": 365}),
        json!({"max_consent_age_days": "x"}),
    ] {
        let patch = http
            .patch(app.url("/v1/tenant"))
            .bearer_auth(admin)
            .json(&body);
        c.send("/v1/tenant", patch).await;
    }
    c.get(app, "/v1/brands", "/v1/brands", admin).await;
    for name in ["Metro", "metro"] {
        c.post(
            app,
            "/v1/brands",
            "/v1/brands",
            admin,
            &json!({"name": name}),
        )
        .await;
    }
    let retire = "/v1/brands/{name}/retire";
    for path in ["/v1/brands/Metro/retire", "/v1/brands/Nope/retire"] {
        c.post(app, retire, path, admin, &json!({})).await;
    }
    c.get(app, "/v1/keys", "/v1/keys", admin).await;
    let key = json!({"name": "temp", "roles": ["sender"], "expires_at": at(3600)});
    let (_, made) = c.post(app, "/v1/keys", "/v1/keys", admin, &key).await;
    let key_id = serde_json::from_str::<Value>(&made).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bad_role = json!({"name": "x", "roles": ["boss"]});
    c.post(app, "/v1/keys", "/v1/keys", admin, &bad_role).await;
    for id in [key_id.as_str(), "key_000000000000"] {
        let delete = http
            .delete(app.url(&format!("/v1/keys/{id}")))
            .bearer_auth(admin);
        c.send("/v1/keys/{id}", delete).await;
    }
}

async fn recording_and_checks(app: &TestApp, c: &Contract, t: &Tenant) {
    let other = "+4915112345679";
    let (opt_ins, opt_outs) = ("/v1/opt-ins", "/v1/opt-outs");
    let valid = web_opt_in(NUMBER, "Makro", &["marketing"]);
    c.post(app, opt_ins, opt_ins, &t.collector, &valid).await;
    c.post(
        app,
        opt_ins,
        opt_ins,
        &t.collector,
        &web_opt_in("12", "Makro", &["marketing"]),
    )
    .await;
    c.post(app, opt_ins, opt_ins, &t.sender, &valid).await;
    c.post(app, opt_outs, opt_outs, &t.collector, &api_opt_out(other))
        .await;
    let text = app.client.post(app.url(opt_outs)).bearer_auth(&t.collector);
    c.send(
        opt_outs,
        text.header("content-type", "text/plain").body("{}"),
    )
    .await;
    let interactions = "/v1/interactions";
    let window = json!({"number": NUMBER, "business_phone_number_id": PHONE_NUMBER_ID,
                        "received_at": at(-60)});
    c.post(app, interactions, interactions, &t.sender, &window)
        .await;
    let ahead = json!({"number": NUMBER, "received_at": at(600)});
    c.post(app, interactions, interactions, &t.sender, &ahead)
        .await;
    let checks = "/v1/checks";
    for (number, brand) in [
        (NUMBER, "Makro"),
        (other, "Makro"),
        ("+4915100000000", "Makro"),
        (NUMBER, "Metro"),
        ("nope", "Makro"),
    ] {
        let check = json!({"number": number, "purpose": "marketing", "brand": brand});
        c.post(app, checks, checks, &t.sender, &check).await;
    }
    let batch = json!({"checks": [
        {"number": NUMBER, "purpose": "marketing", "brand": "Makro"},
        {"number": "not a number", "purpose": "marketing", "brand": "Makro"},
        {"number": 4915112345678u64, "purpose": "marketing"},
        {"purpose": "marketing"},
        {"number": other, "purpose": "utility", "brand": "Makro", "channel": "sms"}
    ]});
    let batches = "/v1/checks/batch";
    let (status, answer) = c.post(app, batches, batches, &t.sender, &batch).await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["decisions"][1]["number"], "not a number");
    c.post(app, batches, batches, &t.sender, &json!({"checks": 5}))
        .await;
    // A statement, handed back and listed.
    let stated = json!({"number": NUMBER, "purpose": "marketing", "brand": "Makro",
                        "statement": true, "reference": "contract-1"});
    let (_, answer) = c.post(app, checks, checks, &t.sender, &stated).await;
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let keep = "/v1/statements";
    let kept = json!({"statements": [answer["statement"]]});
    c.post(app, keep, keep, &t.sender, &kept).await;
    c.post(
        app,
        keep,
        keep,
        &t.sender,
        &json!({"statements": ["forged"]}),
    )
    .await;
    let listed = "/v1/statements/query";
    c.post(app, listed, listed, &t.auditor, &json!({"number": NUMBER}))
        .await;
    c.post(app, listed, listed, &t.auditor, &json!({"number": "12"}))
        .await;
    // The change feed, its key, and a cursor that is not one.
    let feed = "/v1/changes";
    c.get(app, feed, "/v1/changes?limit=3", &t.admin).await;
    c.get(app, feed, "/v1/changes?after=c1-1&wait=0", &t.admin)
        .await;
    c.get(app, feed, "/v1/changes?after=nope", &t.admin).await;
    c.get(app, feed, "/v1/changes?wait=31", &t.admin).await;
    c.get(app, "/v1/changes/key", "/v1/changes/key", &t.admin)
        .await;
}

async fn ledger_and_log(app: &TestApp, c: &Contract, t: &Tenant) {
    let auditor = t.auditor.as_str();
    let query = "/v1/subjects/query";
    for number in [NUMBER, "+4915100000000"] {
        c.post(app, query, query, auditor, &json!({"number": number}))
            .await;
    }
    for seq in ["0", "1", "99"] {
        c.get(
            app,
            "/v1/entries/{seq}",
            &format!("/v1/entries/{seq}"),
            auditor,
        )
        .await;
        let receipt = format!("/v1/entries/{seq}/receipt");
        c.get(app, "/v1/entries/{seq}/receipt", &receipt, auditor)
            .await;
    }
    let reads = [
        ("/v1/log/checkpoint", "/v1/log/checkpoint"),
        ("/v1/log/checkpoints", "/v1/log/checkpoints?size=0"),
        ("/v1/log/checkpoints", "/v1/log/checkpoints?size=999"),
        ("/v1/log/keys", "/v1/log/keys"),
        (
            "/v1/log/proof/inclusion",
            "/v1/log/proof/inclusion?seq=0&size=2",
        ),
        (
            "/v1/log/proof/inclusion",
            "/v1/log/proof/inclusion?seq=5&size=2",
        ),
        (
            "/v1/log/proof/consistency",
            "/v1/log/proof/consistency?from=1&to=2",
        ),
        (
            "/v1/log/proof/consistency",
            "/v1/log/proof/consistency?from=3&to=2",
        ),
        ("/v1/export", "/v1/export"),
        ("/v1/export", "/v1/export?size=77"),
    ];
    for (template, path) in reads {
        c.get(app, template, path, auditor).await;
    }
    let dossier = "/v1/export/dossier";
    for number in [json!(NUMBER), json!(5)] {
        c.post(app, dossier, dossier, auditor, &json!({"number": number}))
            .await;
    }
    // Erasure of a number of its own (then again: 404; then a bad one);
    // the erased number's opt-out answers 200 `suppressed`, an opt-in
    // captured before the erasure 422.
    let erased = "+4915100000077";
    app.recorded_opt_in(t, web_opt_in(erased, "Makro", &["marketing"]))
        .await;
    let erase = "/v1/subjects/erase";
    for number in [erased, erased, "12"] {
        c.post(app, erase, erase, &t.admin, &json!({"number": number}))
            .await;
    }
    let (opt_outs, opt_ins) = ("/v1/opt-outs", "/v1/opt-ins");
    c.post(app, opt_outs, opt_outs, &t.collector, &api_opt_out(erased))
        .await;
    let old = web_opt_in(erased, "Makro", &["marketing"]);
    c.post(app, opt_ins, opt_ins, &t.collector, &old).await;
}

/// An ambiguous message listed, then settled once, twice and not at all.
async fn reviews(app: &TestApp, c: &Contract, admin: &str) {
    let message =
        crate::vocabularies::whatsapp_text("+4915133999001", 9001, "Can I cancel my order?");
    crate::channels::whatsapp(app, &message).await;
    let list = "/v1/reviews";
    let (_, page) = c.get(app, list, list, admin).await;
    let page: Value = serde_json::from_str(&page).unwrap();
    let id = page["reviews"][0]["id"]
        .as_str()
        .expect("a review item")
        .to_owned();
    c.get(app, list, "/v1/reviews?limit=0", admin).await;
    let one = "/v1/reviews/{id}";
    let settle = json!({"decision": "not_an_opt_out"});
    for path in [
        format!("/v1/reviews/{id}"),
        format!("/v1/reviews/{id}"),
        "/v1/reviews/rev_000000000000".into(),
    ] {
        c.post(app, one, &path, admin, &settle).await;
    }
}

/// Endpoints registered, refused, listed and deleted; a delivery (to a
/// host that does not resolve here) listed, marked failed in the database
/// as 24 hours of failures would, and retried.
async fn phone_flows(app: &TestApp, c: &Contract, t: &Tenant) {
    let flows = "/v1/ivr-flows/{flow}";
    let flow = json!({"brand": "Makro", "purposes": ["marketing"], "message_channels": ["whatsapp"],
                      "language": "en-US", "prompt": "Press 1 for offers from Makro."});
    for body in [&flow, &flow, &json!({"brand": "Makro"})] {
        let put = app
            .client
            .put(app.url("/v1/ivr-flows/main"))
            .bearer_auth(&t.admin)
            .json(body);
        c.send(flows, put).await;
    }
    // The test app's public URL is its bind address, as configured: port 0.
    let calls = "/webhooks/twilio-voice/{tenant}/{flow}";
    let path = "/webhooks/twilio-voice/makro/main";
    let params: Vec<(String, String)> = [
        ("AccountSid", crate::channels::ACCOUNT_SID),
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("From", "+4915112345678"),
        ("To", crate::channels::TW_NUMBER),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let url = format!("http://127.0.0.1:0{path}");
    for token in [crate::channels::TW_TOKEN, "forged"] {
        let signature = crate::channels::twilio_signature(token, &url, &params);
        let call = app
            .client
            .post(app.url(path))
            .header("x-twilio-signature", signature)
            .form(&params);
        c.send(calls, call).await;
    }
}

async fn entry_points(app: &TestApp, c: &Contract, t: &Tenant) {
    let admin = t.admin.as_str();
    let all = "/v1/entry-points";
    let poster = json!({"id": "contract", "brand": "Makro", "purposes": ["marketing"],
        "phrase": "hello contract poster", "prompt": "Scan for offers from Makro."});
    c.post(app, all, all, admin, &poster).await;
    c.post(app, all, all, admin, &poster).await;
    c.post(app, all, all, admin, &json!({"id": "x"})).await;
    c.get(app, all, all, admin).await;
    for (template, kind) in [
        ("/v1/entry-points/{id}/qr.svg", "svg"),
        ("/v1/entry-points/{id}/qr.png", "png"),
    ] {
        for id in ["contract", "never"] {
            let path = format!("/v1/entry-points/{id}/qr.{kind}");
            c.get(app, template, &path, admin).await;
        }
    }
}

async fn imports(app: &TestApp, c: &Contract, t: &Tenant) {
    let imports = "/v1/imports";
    let send = |query: &str, kind: &str, body: String| {
        app.client
            .post(app.url(&format!("{imports}?{query}")))
            .bearer_auth(&t.admin)
            .header("content-type", kind)
            .body(body)
    };
    let mut line = api_opt_out("+4915177700099");
    line["type"] = json!("opt_out");
    let ndjson = "application/x-ndjson";
    c.send(imports, send("id=contract", ndjson, format!("{line}\n")))
        .await;
    c.send(imports, send("id=contract-bad", ndjson, "{oops\n".into()))
        .await;
    c.send(
        imports,
        send("id=contract", "application/json", "{}".into()),
    )
    .await;
    c.send(imports, send("id=no%20t", "text/csv", "type\n".into()))
        .await;
    let one = "/v1/imports/{id}";
    for path in ["/v1/imports/contract", "/v1/imports/never"] {
        c.get(app, one, path, &t.admin).await;
    }
}

async fn outbound_events(app: &TestApp, c: &Contract, t: &Tenant) {
    use consent_ledger::store::schema::event_deliveries as d;
    use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
    let admin = t.admin.as_str();
    let endpoints = "/v1/event-endpoints";
    let url = json!({"url": "https://crm.example.invalid/hook", "types": ["opt_out"]});
    let (status, made) = c.post(app, endpoints, endpoints, admin, &url).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = serde_json::from_str::<Value>(&made).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.post(
        app,
        endpoints,
        endpoints,
        admin,
        &json!({"url": "http://crm.example.com/"}),
    )
    .await;
    c.get(app, endpoints, endpoints, admin).await;
    app.recorded_opt_out(t, api_opt_out("+4915177700001")).await;
    let deliveries = "/v1/event-deliveries";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let delivery = loop {
        let (_, listed) = c.get(app, deliveries, deliveries, admin).await;
        let listed: Value = serde_json::from_str(&listed).unwrap();
        if let Some(id) = listed["event_deliveries"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no delivery queued");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    c.get(
        app,
        deliveries,
        "/v1/event-deliveries?status=failed&limit=5",
        admin,
    )
    .await;
    c.get(app, deliveries, "/v1/event-deliveries?status=lost", admin)
        .await;
    let retry = "/v1/event-deliveries/{id}/retry";
    let path = format!("/v1/event-deliveries/{delivery}/retry");
    c.post(app, retry, &path, admin, &json!({})).await;
    let mut conn = consent_ledger::store::connection::establish(&app.database_target()).unwrap();
    diesel::update(d::table.filter(d::id.eq(&delivery)))
        .set(d::status.eq("failed"))
        .execute(&mut conn)
        .unwrap();
    let (status, _) = c.post(app, retry, &path, admin, &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let unknown = "/v1/event-deliveries/evt_0_0/retry";
    c.post(app, retry, unknown, admin, &json!({})).await;
    for id in [id.as_str(), "ep_000000000000"] {
        let delete = app
            .client
            .delete(app.url(&format!("/v1/event-endpoints/{id}")))
            .bearer_auth(admin);
        c.send("/v1/event-endpoints/{id}", delete).await;
    }
}

async fn channels_and_webhooks(app: &TestApp, c: &Contract, t: &Tenant) {
    let (admin, http) = (t.admin.as_str(), &app.client);
    c.get(app, "/v1/channels", "/v1/channels", admin).await;
    for body in [crate::channels::settings(), json!({"whatsapp": 1})] {
        c.send(
            "/v1/channels",
            http.put(app.url("/v1/channels"))
                .bearer_auth(admin)
                .json(&body),
        )
        .await;
    }
    let whatsapp = "/webhooks/whatsapp/{tenant}";
    for token in [VERIFY_TOKEN, "wrong"] {
        let path = format!(
            "/webhooks/whatsapp/makro?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
        );
        c.get(app, whatsapp, &path, "").await;
    }
    let body = serde_json::to_vec(&unreadable_stop(now_secs())).unwrap();
    for signature in [Some(hub_signature(WA_SECRET, &body)), None] {
        let mut post = http
            .post(app.url("/webhooks/whatsapp/makro"))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(signature) = signature {
            post = post.header("x-hub-signature-256", signature);
        }
        c.send(whatsapp, post).await;
    }
    let params = sms(NUMBER, "SM00000000000000000000000000000001", "hello");
    let form = serde_urlencoded::to_string(&params).unwrap();
    for signature in [
        twilio_signature(TW_TOKEN, WEBHOOK_URL, &params),
        "bad".into(),
    ] {
        let post = http
            .post(app.url("/webhooks/twilio/makro"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(form.clone());
        c.send("/webhooks/twilio/{tenant}", post).await;
    }
    let json_post = http
        .post(app.url("/webhooks/twilio/makro"))
        .json(&json!({}));
    c.send("/webhooks/twilio/{tenant}", json_post).await;
    let letters = "/v1/dead-letters";
    let (_, page) = c.get(app, letters, letters, admin).await;
    let page: Value = serde_json::from_str(&page).unwrap();
    let id = page["dead_letters"][0]["id"]
        .as_i64()
        .expect("a dead letter");
    c.get(app, letters, "/v1/dead-letters?limit=0", admin).await;
    let one = "/v1/dead-letters/{id}";
    for path in [
        format!("/v1/dead-letters/{id}"),
        "/v1/dead-letters/424242".into(),
    ] {
        c.get(app, one, &path, admin).await;
    }
    reviews(app, c, admin).await;
    let uploads = "/v1/documents";
    let upload = |body: Vec<u8>| {
        app.client
            .post(app.url(uploads))
            .bearer_auth(&t.collector)
            .header("content-type", "application/octet-stream")
            .body(body)
    };
    let (_, kept) = c
        .send(uploads, upload(b"%PDF-1.7\n% contract\n".to_vec()))
        .await;
    let kept: Value = serde_json::from_str(&kept).unwrap();
    c.send(uploads, upload(b"not a scan".to_vec())).await;
    c.send(uploads, upload(vec![b' '; 20 * 1024 * 1024 + 1]))
        .await;
    let document = "/v1/documents/{id}";
    let id = kept["document_id"].as_str().expect("a document id");
    for path in [
        format!("/v1/documents/{id}"),
        "/v1/documents/doc_000000000000".into(),
    ] {
        c.get(app, document, &path, &t.auditor).await;
    }
    let forms = "/v1/forms";
    let newsletter = json!({"id": "newsletter", "brand": "Makro",
        "consent_text": "Yes, I want offers from Makro on WhatsApp.", "purposes": ["marketing"],
        "privacy_url": "https://makro.example/privacy"});
    c.post(app, forms, forms, admin, &newsletter).await;
    c.post(app, forms, forms, admin, &newsletter).await;
    c.post(app, forms, forms, admin, &json!({"id": "x"})).await;
    c.get(app, forms, forms, admin).await;
    let one_form = "/v1/forms/{id}";
    for path in ["/v1/forms/newsletter", "/v1/forms/nope"] {
        c.get(app, one_form, path, admin).await;
    }
    let put = app
        .client
        .put(app.url("/v1/forms/newsletter"))
        .bearer_auth(admin)
        .json(&newsletter);
    c.send(one_form, put).await;
    let page = "/forms/{tenant}/{form}";
    for path in [
        "/forms/makro/newsletter",
        "/forms/makro/opt-out",
        "/forms/makro/nope",
    ] {
        c.send(page, app.client.get(app.url(path))).await;
    }
    let (cookie, token) = crate::authz::page_session(app, "/forms/makro/newsletter").await;
    let bot = format!("token={token}&number=12&website=bot");
    let post_page = |cookie: Option<&str>| {
        let mut request = app
            .client
            .post(app.url("/forms/makro/newsletter"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(bot.clone());
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request
    };
    c.send(page, post_page(Some(&cookie))).await;
    c.send(page, post_page(None)).await;
    let audit = "/v1/audit-events";
    for path in [
        audit,
        "/v1/audit-events?after=2&limit=2",
        "/v1/audit-events?limit=0",
    ] {
        c.get(app, audit, path, admin).await;
    }
}
