//! The authorization matrix (docs/decisions.md and docs/api.md): every operation of
//! the OpenAPI document, and the pages served beside it, called with every
//! kind of credential. No, malformed, unknown, revoked or expired
//! credentials answer 401, a key without the role 403, a key with the role
//! anything but those; another tenant's key acts on its own tenant and is
//! told nothing of the first; webhooks know only their signatures. An
//! operation the table below does not name fails the test, so a new route
//! cannot be forgotten. And credentials are judged before the input: a
//! refused caller gets its 401 or 403 whatever body, query or path it sends.

use crate::channels::{
    configured, fixture, hub_signature, now_secs, settings, sms, twilio_signature, unreadable_stop,
    whatsapp, ACCOUNT_SID, PHONE_NUMBER_ID, TW_NUMBER, TW_SECONDARY, TW_TOKEN, VERIFY_TOKEN,
    WA_PREVIOUS, WA_SECRET, WEBHOOK_URL,
};
use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Who may call an operation.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// Anyone: the `Authorization` header is ignored.
    Public,
    /// The operator token only.
    Operator,
    /// A tenant's API key with one of these roles (`admin` implies all).
    Roles(&'static [&'static str]),
    /// The provider's signature or verify token; API keys count for nothing.
    Signature,
}

use Access::{Operator, Public, Roles, Signature};

const ADMIN: Access = Roles(&["admin"]);
const COLLECTOR: Access = Roles(&["collector"]);
const SENDER: Access = Roles(&["sender"]);
const AUDITOR: Access = Roles(&["auditor"]);
const SUBSCRIBER: Access = Roles(&["subscriber"]);

/// The expected access of every operation (docs/api.md's table).
const TABLE: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Public),
    ("GET", "/readyz", Public),
    ("GET", "/problems/{code}", Public),
    ("POST", "/v1/tenants", Operator),
    ("GET", "/v1/tenant", ADMIN),
    ("PATCH", "/v1/tenant", ADMIN),
    ("GET", "/v1/brands", ADMIN),
    ("POST", "/v1/brands", ADMIN),
    ("POST", "/v1/brands/{name}/retire", ADMIN),
    ("GET", "/v1/keys", ADMIN),
    ("POST", "/v1/keys", ADMIN),
    ("DELETE", "/v1/keys/{id}", ADMIN),
    ("GET", "/v1/channels", ADMIN),
    ("POST", "/v1/entry-points", ADMIN),
    ("PUT", "/v1/ivr-flows/{flow}", ADMIN),
    ("GET", "/v1/entry-points", ADMIN),
    ("GET", "/v1/entry-points/{id}/qr.svg", ADMIN),
    ("GET", "/v1/entry-points/{id}/qr.png", ADMIN),
    ("PUT", "/v1/channels", ADMIN),
    ("POST", "/v1/opt-ins", COLLECTOR),
    ("POST", "/v1/opt-outs", COLLECTOR),
    ("POST", "/v1/interactions", Roles(&["collector", "sender"])),
    ("POST", "/v1/imports", ADMIN),
    ("GET", "/v1/imports/{id}", ADMIN),
    ("GET", "/v1/forms", ADMIN),
    ("POST", "/v1/forms", ADMIN),
    ("GET", "/v1/forms/{id}", ADMIN),
    ("PUT", "/v1/forms/{id}", ADMIN),
    ("GET", "/forms/{tenant}/{form}", Public),
    ("POST", "/forms/{tenant}/{form}", Public),
    ("POST", "/v1/documents", COLLECTOR),
    ("GET", "/v1/documents/{id}", AUDITOR),
    ("POST", "/v1/checks", SENDER),
    ("POST", "/v1/checks/batch", SENDER),
    ("POST", "/v1/statements", SENDER),
    ("POST", "/v1/statements/query", AUDITOR),
    ("GET", "/v1/changes", SUBSCRIBER),
    ("GET", "/v1/changes/key", ADMIN),
    ("POST", "/v1/event-endpoints", ADMIN),
    ("GET", "/v1/event-endpoints", ADMIN),
    ("DELETE", "/v1/event-endpoints/{id}", ADMIN),
    ("GET", "/v1/event-deliveries", ADMIN),
    ("POST", "/v1/event-deliveries/{id}/retry", ADMIN),
    ("POST", "/v1/subjects/query", AUDITOR),
    ("POST", "/v1/subjects/erase", ADMIN),
    ("GET", "/v1/entries/{seq}", AUDITOR),
    ("GET", "/v1/entries/{seq}/receipt", AUDITOR),
    ("GET", "/v1/export", AUDITOR),
    ("POST", "/v1/export/dossier", AUDITOR),
    ("GET", "/v1/log/checkpoint", AUDITOR),
    ("GET", "/v1/log/checkpoints", AUDITOR),
    ("GET", "/v1/log/keys", AUDITOR),
    ("GET", "/v1/log/proof/inclusion", AUDITOR),
    ("GET", "/v1/log/proof/consistency", AUDITOR),
    ("GET", "/v1/dead-letters", ADMIN),
    ("GET", "/v1/audit-events", ADMIN),
    ("GET", "/v1/dead-letters/{id}", ADMIN),
    ("GET", "/v1/reviews", ADMIN),
    ("POST", "/v1/reviews/{id}", ADMIN),
    ("GET", "/webhooks/whatsapp/{tenant}", Signature),
    ("POST", "/webhooks/whatsapp/{tenant}", Signature),
    ("POST", "/webhooks/twilio/{tenant}", Signature),
    ("POST", "/webhooks/twilio-voice/{tenant}/{flow}", Signature),
];

/// Served beside the document's operations, and public.
const UNDOCUMENTED: &[(&str, &str, Access)] =
    &[("GET", "/openapi.json", Public), ("GET", "/docs", Public)];

/// What another tenant's key with the right role must get when it names
/// the first tenant's resources: 404, never 403 (docs/decisions.md).
fn cross_tenant_status(template: &str) -> Option<u16> {
    match template {
        "/v1/keys/{id}"
        | "/v1/brands/{name}/retire"
        | "/v1/dead-letters/{id}"
        | "/v1/reviews/{id}"
        | "/v1/documents/{id}"
        | "/v1/forms/{id}"
        | "/v1/subjects/query"
        | "/v1/subjects/erase"
        | "/v1/event-endpoints/{id}"
        | "/v1/event-deliveries/{id}/retry"
        | "/v1/imports/{id}"
        | "/v1/entry-points/{id}/qr.svg"
        | "/v1/entry-points/{id}/qr.png" => Some(404),
        // An unknown number's dossier is B's log's header and checkpoint.
        "/v1/export/dossier" => Some(200),
        _ => None,
    }
}

const NUMBER_B: &str = "+4915187654321";
const NEVER_TENANT: &str = "never-created";
const B_WA_SECRET: &str = "b0b0c9f5d2a4e6b8c7d9e0f1a2b3c4d5";
const B_VERIFY_TOKEN: &str = "b-verify-token-2026";
const B_PHONE_NUMBER_ID: &str = "206540352242922";
const B_TW_TOKEN: &str = "b08e7d6c5b4a39281706f5e4d3c2b1a0";
const B_ACCOUNT_SID: &str = "ACfedcba9876543210fedcba9876543210";
const B_TW_NUMBER: &str = "+4930999888";
const B_WEBHOOK_URL: &str = "https://hooks.example.com/webhooks/twilio/borealis";

/// One operation of the table.
#[derive(Debug, Clone)]
struct Route {
    method: Method,
    template: String,
    access: Access,
}

impl Route {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

/// The operations of the OpenAPI document with their access, and the
/// undocumented public pages; panics on an operation the table lacks, a
/// line of the table the document lacks, or a security requirement the
/// table contradicts.
fn routes() -> Vec<Route> {
    let document = serde_json::to_value(consent_ledger::startup::openapi_document())
        .expect("the document serialises");
    let mut routes = Vec::new();
    let mut unknown = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let method = method.to_uppercase();
            let Some((_, _, access)) = TABLE.iter().find(|(m, p, _)| *m == method && p == path)
            else {
                unknown.push(format!("{method} {path}"));
                continue;
            };
            let scheme = operation["security"][0]
                .as_object()
                .and_then(|o| o.keys().next().cloned());
            let documented = match access {
                Public | Signature => None,
                Operator => Some("operator"),
                Roles(_) => Some("bearer"),
            };
            assert_eq!(
                scheme.as_deref(),
                documented,
                "{method} {path}: the document's security requirement contradicts the table"
            );
            routes.push(Route {
                method: method.parse().expect("a method"),
                template: path.clone(),
                access: *access,
            });
        }
    }
    assert!(
        unknown.is_empty(),
        "operations of the OpenAPI document with no expected access in authz.rs's TABLE: {unknown:?}"
    );
    let stale: Vec<_> = TABLE
        .iter()
        .filter(|(m, p, _)| !routes.iter().any(|r| r.method == *m && r.template == *p))
        .collect();
    assert!(
        stale.is_empty(),
        "lines of TABLE not in the document: {stale:?}"
    );
    for (method, path, access) in UNDOCUMENTED {
        routes.push(Route {
            method: method.parse().expect("a method"),
            template: (*path).to_owned(),
            access: *access,
        });
    }
    routes
}

/// Whose key it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    A,
    B,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Not a credential: missing, malformed, unknown, revoked or expired.
    Invalid,
    /// The operator token.
    OperatorToken,
    /// A valid API key of a tenant with one role.
    Key(Holder, &'static str),
}

struct Credential {
    name: String,
    authorization: Option<String>,
    kind: Kind,
}

/// What a cell must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Status(u16),
    /// Tenant A's key with the role (or the operator): not 401/403, no 5xx.
    Granted,
    /// Tenant B's key with the role: acts on B (not 401/403, no 5xx, the
    /// given status if any) and shows nothing of A.
    OwnTenant(Option<u16>),
}

fn expect(route: &Route, kind: &Kind) -> Expect {
    match (route.access, kind) {
        (Public, _) => Expect::Status(200),
        // API keys are no credential for a webhook: refused as unsigned.
        (Signature, _) if route.method == Method::GET => Expect::Status(403),
        (Signature, _) => Expect::Status(401),
        (Operator, Kind::OperatorToken) => Expect::Granted,
        (Operator, Kind::Key(..)) => Expect::Status(403),
        (Operator, Kind::Invalid) => Expect::Status(401),
        (Roles(_), Kind::Invalid | Kind::OperatorToken) => Expect::Status(401),
        (Roles(allowed), Kind::Key(holder, role)) => {
            if *role == "admin" || allowed.contains(role) {
                match holder {
                    Holder::A => Expect::Granted,
                    Holder::B => Expect::OwnTenant(cross_tenant_status(&route.template)),
                }
            } else {
                Expect::Status(403)
            }
        }
    }
}

/// A request without its `Authorization` header.
#[derive(Debug, Clone)]
struct Request {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Request {
    fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            content_type: None,
            body: Vec::new(),
            headers: Vec::new(),
        }
    }

    fn with_body(mut self, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = Some(content_type);
        self.body = body.into();
        self
    }

    fn json(method: Method, path: impl Into<String>, value: &Value) -> Self {
        Self::new(method, path).with_body("application/json", value.to_string())
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Everything the caller said, for telling echoes from leaks.
    fn said(&self, authorization: Option<&str>) -> String {
        let headers: Vec<String> = self.headers.iter().map(|(_, v)| v.clone()).collect();
        format!(
            "{} {} {} {}",
            self.path,
            String::from_utf8_lossy(&self.body),
            headers.join(" "),
            authorization.unwrap_or("")
        )
        .to_lowercase()
    }
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Reply {
    fn code(&self) -> String {
        serde_json::from_str::<Value>(&self.text)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

async fn send(app: &TestApp, request: &Request, authorization: Option<&str>) -> Reply {
    let mut builder = app
        .client
        .request(request.method.clone(), app.url(&request.path));
    if let Some(value) = authorization {
        builder = builder.header("authorization", value);
    }
    if let Some(content_type) = request.content_type {
        builder = builder
            .header("content-type", content_type)
            .body(request.body.clone());
    }
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    let response = builder.send().await.expect("the request is answered");
    Reply {
        status: response.status(),
        headers: response.headers().clone(),
        text: response.text().await.expect("a body"),
    }
}

/// Tenant A (`makro`) with data of every kind, tenant B (`borealis`) with
/// channels of its own, and A's keys that no longer work.
struct World {
    a: Tenant,
    b: Tenant,
    /// A's and B's keys with the role `subscriber`.
    subscribers: [String; 2],
    a_seq: u64,
    dead_letter: i64,
    /// A document of A.
    document: String,
    /// A key of A that refused requests must not revoke.
    victim: String,
    revoked: String,
    expired: String,
    /// What B's key must never be shown: A's ids, names, number, data.
    markers: Vec<String>,
    /// B's log id, which B's reads of its log must show.
    b_log: String,
}

fn key_id(key: &str) -> String {
    format!("key_{}", &key[4..16])
}

/// B's channel settings: A's with every secret, id and name replaced.
fn b_settings() -> Value {
    let text = settings()
        .to_string()
        .replace(WA_SECRET, B_WA_SECRET)
        .replace(WA_PREVIOUS, "b-old-app-secret-2026")
        .replace(VERIFY_TOKEN, B_VERIFY_TOKEN)
        .replace(TW_TOKEN, B_TW_TOKEN)
        .replace(TW_SECONDARY, "b-secondary-token-2026")
        .replace(ACCOUNT_SID, B_ACCOUNT_SID)
        .replace(PHONE_NUMBER_ID, B_PHONE_NUMBER_ID)
        .replace(TW_NUMBER, B_TW_NUMBER)
        .replace("Makro", "Borealis")
        .replace("MAKRO", "BOREALIS")
        .replace("makro", "borealis");
    serde_json::from_str(&text).expect("json")
}

/// Sets the world up on an app with a manual clock, which it moves past
/// the expiring key's `expires_at`.
async fn world(app: &TestApp) -> World {
    let a = configured(app).await;
    app.add_brand(&a, "Aldebaran").await;
    let b = app.tenant("borealis", "Borealis").await;
    let put = app.put("/v1/channels", &b.admin, &b_settings()).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);

    let recorded = app
        .opt_in(&a, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    assert_eq!(recorded.status, StatusCode::CREATED, "{}", recorded.body);
    let a_seq = recorded.body["seq"].as_u64().expect("seq");
    let opted_out = app.opt_out(&a, api_opt_out("+4915112340000")).await;
    assert_eq!(opted_out.status, StatusCode::CREATED, "{}", opted_out.body);
    whatsapp(app, &unreadable_stop(now_secs() - 30)).await;
    let letters = app.get("/v1/dead-letters", &a.admin).await;
    let dead_letter = letters.body["dead_letters"][0]["id"]
        .as_i64()
        .expect("a dead letter");

    let made = app
        .post("/v1/forms", &a.admin, &form_json("newsletter", "Makro"))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let scan = b"%PDF-1.7\n% A's signed form\n".to_vec();
    let kept = app
        .post_raw("/v1/documents", &a.collector, "application/pdf", scan)
        .await;
    assert_eq!(kept.status, StatusCode::CREATED, "{}", kept.body);
    let document = kept.body["document_id"].as_str().expect("id").to_owned();

    let subscribers = [
        app.new_key(&a.admin, &["subscriber"]).await,
        app.new_key(&b.admin, &["subscriber"]).await,
    ];
    let victim = key_id(&app.new_key(&a.admin, &["sender"]).await);
    let revoked = app.new_key(&a.admin, &["admin"]).await;
    assert_eq!(app.get("/v1/tenant", &revoked).await.status, StatusCode::OK);
    let gone = app
        .delete(&format!("/v1/keys/{}", key_id(&revoked)), &a.admin)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.body);
    let expiring = json!({"name": "expiring", "roles": ["admin"], "expires_at": app.at(60)});
    let made = app.post("/v1/keys", &a.admin, &expiring).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let expired = made.body["key"].as_str().expect("key").to_owned();
    assert_eq!(app.get("/v1/tenant", &expired).await.status, StatusCode::OK);
    app.clock.advance(120_000);

    // A's tenant id (also in its log id, brand and webhook URL), its
    // other brand, number, channel secrets and ids, key ids, the leaf
    // hashes and subject commitments of its entries, its verifier key.
    let mut markers: Vec<String> = [
        "makro",
        "Aldebaran",
        &NUMBER[1..],
        WA_SECRET,
        VERIFY_TOKEN,
        TW_TOKEN,
        ACCOUNT_SID,
        PHONE_NUMBER_ID,
        "DE.1502576394655843",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    markers.push(document.clone());
    for answer in [&recorded, &opted_out] {
        for field in ["leaf_hash", "subject"] {
            markers.push(answer.body[field].as_str().expect(field).to_owned());
        }
    }
    let tenant = app.get("/v1/tenant", &a.admin).await;
    markers.push(
        tenant.body["verifier_key"]
            .as_str()
            .expect("key")
            .to_owned(),
    );
    let keys = app.get("/v1/keys", &a.admin).await;
    for key in keys.body["keys"].as_array().expect("keys") {
        markers.push(key["id"].as_str().expect("id").to_owned());
    }
    let history = app
        .post("/v1/subjects/query", &a.auditor, &json!({"number": NUMBER}))
        .await;
    let (status, export) = app.get_text("/v1/export", &a.auditor).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    for item in history.body["history"].as_array().expect("history") {
        let leaf = item["leaf_hash"].as_str().expect("leaf");
        // The markers are what A's own answers show.
        assert!(export.contains(leaf), "A's export shows its leaf {leaf}");
        markers.push(leaf.to_owned());
    }
    let b_log = app.get("/v1/tenant", &b.admin).await.body["log"]
        .as_str()
        .expect("B's log")
        .to_owned();
    World {
        a,
        b,
        subscribers,
        a_seq,
        dead_letter,
        document,
        victim,
        revoked,
        expired,
        markers,
        b_log,
    }
}

fn credentials(w: &World) -> Vec<Credential> {
    let bearer = |key: &str| Some(format!("Bearer {key}"));
    let invalid = |name: &str, authorization: Option<String>| Credential {
        name: name.to_owned(),
        authorization,
        kind: Kind::Invalid,
    };
    let mut all = vec![
        invalid("no Authorization header", None),
        invalid("Bearer nonsense", bearer("nonsense")),
        invalid("Basic credentials", Some("Basic YWRtaW46YWRtaW4=".into())),
        invalid("an empty Bearer", Some("Bearer".into())),
        invalid(
            "a well-formed key never issued",
            bearer(&format!("clk_000000000000_{}", "A".repeat(43))),
        ),
        invalid(
            "A's admin key id with another secret",
            bearer(&format!("{}{}", &w.a.admin[..17], "A".repeat(43))),
        ),
        invalid("A's admin key without a scheme", Some(w.a.admin.clone())),
        invalid(
            "A's admin key under the Token scheme",
            Some(format!("Token {}", w.a.admin)),
        ),
        invalid("A's revoked admin key", bearer(&w.revoked)),
        invalid("A's expired admin key", bearer(&w.expired)),
        Credential {
            name: "the operator token".into(),
            authorization: bearer(OPERATOR_TOKEN),
            kind: Kind::OperatorToken,
        },
    ];
    let tenants = [(Holder::A, &w.a), (Holder::B, &w.b)];
    for ((holder, t), subscriber) in tenants.into_iter().zip(&w.subscribers) {
        for (role, key) in [
            ("admin", &t.admin),
            ("collector", &t.collector),
            ("sender", &t.sender),
            ("auditor", &t.auditor),
            ("subscriber", subscriber),
        ] {
            all.push(Credential {
                name: format!("{holder:?}'s {role} key"),
                authorization: bearer(key),
                kind: Kind::Key(holder, role),
            });
        }
    }
    all
}

/// A signed WhatsApp notification for A (or B, `b`).
fn whatsapp_body(b: bool) -> Vec<u8> {
    let mut payload = fixture("text", now_secs() - 30);
    if b {
        payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] =
            json!(B_PHONE_NUMBER_ID);
    }
    serde_json::to_vec(&payload).expect("json")
}

/// An inbound SMS for A (or B), and its signature.
fn twilio_form(b: bool, sid: &str) -> (String, String) {
    let mut params = sms(if b { NUMBER_B } else { NUMBER }, sid, "hello");
    if b {
        for (name, value) in params.iter_mut() {
            match name.as_str() {
                "To" => *value = B_TW_NUMBER.into(),
                "AccountSid" => *value = B_ACCOUNT_SID.into(),
                _ => {}
            }
        }
    }
    let signature = if b {
        twilio_signature(B_TW_TOKEN, B_WEBHOOK_URL, &params)
    } else {
        twilio_signature(TW_TOKEN, WEBHOOK_URL, &params)
    };
    (
        serde_urlencoded::to_string(&params).expect("form"),
        signature,
    )
}

fn handshake(tenant: &str, token: &str) -> Request {
    Request::new(
        Method::GET,
        format!(
            "/webhooks/whatsapp/{tenant}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
        ),
    )
}

/// A valid request for the route: what A's keys send, or B's (`by_b`:
/// writes of B's own data, lookups of A's ids and number). A `fresh`
/// (granted) call gets a resource of its own to create, retire or revoke.
async fn input(
    app: &TestApp,
    w: &World,
    route: &Route,
    by_b: bool,
    fresh: bool,
    n: usize,
) -> Request {
    let (number, brand, phone_id) = if by_b {
        (NUMBER_B, "Borealis", B_PHONE_NUMBER_ID)
    } else {
        (NUMBER, "Makro", PHONE_NUMBER_ID)
    };
    let method = route.method.clone();
    let post = |path: &str, value: Value| Request::json(Method::POST, path, &value);
    let check = json!({"number": NUMBER, "purpose": "marketing", "brand": brand});
    match (method.as_str(), route.template.as_str()) {
        ("GET", "/problems/{code}") => Request::new(method, "/problems/invalid_number"),
        ("POST", "/v1/tenants") => {
            let id = if fresh {
                format!("granted-{n}")
            } else {
                NEVER_TENANT.into()
            };
            post("/v1/tenants", json!({"id": id, "brand": "Granted"}))
        }
        ("PATCH", "/v1/tenant") => {
            Request::json(method, "/v1/tenant", &json!({"max_consent_age_days": 365}))
        }
        ("POST", "/v1/brands") => {
            let name = if fresh {
                format!("Granted {n}")
            } else {
                "Never Created".into()
            };
            post("/v1/brands", json!({"name": name}))
        }
        ("POST", "/v1/brands/{name}/retire") => {
            let name = if fresh && !by_b {
                let name = format!("Retired {n}");
                app.add_brand(&w.a, &name).await;
                name
            } else {
                "Aldebaran".into()
            };
            Request::new(method, format!("/v1/brands/{name}/retire"))
        }
        ("POST", "/v1/keys") => post("/v1/keys", json!({"name": "authz", "roles": ["sender"]})),
        ("DELETE", "/v1/keys/{id}") => {
            let id = if fresh && !by_b {
                key_id(&app.new_key(&w.a.admin, &["sender"]).await)
            } else {
                w.victim.clone()
            };
            Request::new(method, format!("/v1/keys/{id}"))
        }
        ("PUT", "/v1/channels") => Request::json(
            method,
            "/v1/channels",
            &if by_b { b_settings() } else { settings() },
        ),
        ("POST", "/v1/opt-ins") => post("/v1/opt-ins", web_opt_in(number, brand, &["marketing"])),
        ("POST", "/v1/opt-outs") => post("/v1/opt-outs", api_opt_out(number)),
        ("POST", "/v1/interactions") => post(
            "/v1/interactions",
            json!({"number": number, "business_phone_number_id": phone_id, "received_at": at(-60)}),
        ),
        ("POST", "/v1/imports") => {
            let mut line = api_opt_out(number);
            line["type"] = json!("opt_out");
            Request::new(method, format!("/v1/imports?id=authz-{n}"))
                .with_body("application/x-ndjson", format!("{line}\n"))
        }
        ("POST", "/v1/entry-points") => post(
            "/v1/entry-points",
            json!({"id": format!("authz-{n}"), "brand": brand, "purposes": ["marketing"],
                   "phrase": format!("hello poster {n}"),
                   "prompt": format!("Scan for offers from {brand} on WhatsApp.")}),
        ),
        ("PUT", "/v1/ivr-flows/{flow}") => Request::json(
            method,
            "/v1/ivr-flows/main",
            &json!({"brand": brand, "purposes": ["marketing"], "message_channels": ["whatsapp"],
                    "language": "en-US", "prompt": format!("Press 1 for offers from {brand}.")}),
        ),
        ("POST", "/webhooks/twilio-voice/{tenant}/{flow}") => {
            Request::new(method, "/webhooks/twilio-voice/makro/main").with_body(
                "application/x-www-form-urlencoded",
                format!(
                "AccountSid={ACCOUNT_SID}&CallSid=CA{n:032}&From=%2B4915112345678&To=%2B4930123456"
            ),
            )
        }
        // No such entry point: the right role is told 404.
        ("GET", "/v1/entry-points/{id}/qr.svg") => {
            Request::new(method, "/v1/entry-points/never/qr.svg")
        }
        ("GET", "/v1/entry-points/{id}/qr.png") => {
            Request::new(method, "/v1/entry-points/never/qr.png")
        }
        // No such import: the right role is told 404.
        ("GET", "/v1/imports/{id}") => Request::new(method, "/v1/imports/never"),
        ("POST", "/v1/checks") => post("/v1/checks", check),
        ("POST", "/v1/checks/batch") => post("/v1/checks/batch", json!({"checks": [check]})),
        ("POST", "/v1/statements") => post("/v1/statements", json!({"statements": []})),
        ("POST", "/v1/statements/query") => post("/v1/statements/query", json!({"number": NUMBER})),
        ("POST", "/v1/subjects/query") => post("/v1/subjects/query", json!({"number": NUMBER})),
        ("POST", "/v1/subjects/erase") => {
            // A's admin erases a number of its own recorded for the call;
            // everyone else names A's number, which must survive.
            let erased = if fresh && !by_b {
                let own = format!("+4915100{n:06}");
                let opt_in = web_opt_in(&own, "Makro", &["marketing"]);
                let recorded = app.post("/v1/opt-ins", &w.a.collector, &opt_in).await;
                assert_eq!(recorded.status, StatusCode::CREATED, "{}", recorded.body);
                own
            } else {
                NUMBER.into()
            };
            post("/v1/subjects/erase", json!({"number": erased}))
        }
        ("POST", "/v1/export/dossier") => post("/v1/export/dossier", json!({"number": NUMBER})),
        ("GET", "/v1/entries/{seq}") => Request::new(method, format!("/v1/entries/{}", w.a_seq)),
        ("GET", "/v1/entries/{seq}/receipt") => {
            Request::new(method, format!("/v1/entries/{}/receipt", w.a_seq))
        }
        ("GET", "/v1/log/checkpoints") => Request::new(method, "/v1/log/checkpoints?size=1"),
        ("GET", "/v1/log/proof/inclusion") => {
            Request::new(method, "/v1/log/proof/inclusion?seq=0&size=2")
        }
        ("GET", "/v1/log/proof/consistency") => {
            Request::new(method, "/v1/log/proof/consistency?from=1&to=2")
        }
        ("GET", "/v1/dead-letters/{id}") => {
            Request::new(method, format!("/v1/dead-letters/{}", w.dead_letter))
        }
        // No such item: the right role is told 404, before any state.
        ("POST", "/v1/reviews/{id}") => post(
            "/v1/reviews/rev_000000000000",
            json!({"decision": "opt_out"}),
        ),
        ("GET", "/v1/forms/{id}") => Request::new(method, "/v1/forms/newsletter"),
        ("POST", "/v1/event-endpoints") => post(
            "/v1/event-endpoints",
            json!({"url": "https://crm.example.invalid/hook"}),
        ),
        // No such endpoint or delivery: the right role is told 404.
        ("DELETE", "/v1/event-endpoints/{id}") => {
            Request::new(method, "/v1/event-endpoints/ep_000000000000")
        }
        ("POST", "/v1/event-deliveries/{id}/retry") => {
            Request::new(method, "/v1/event-deliveries/evt_000000000000_0/retry")
        }
        ("POST", "/v1/forms") => {
            let id = match (fresh, by_b) {
                (_, true) => format!("b-form-{n}"),
                (true, false) => format!("granted-{n}"),
                (false, false) => "newsletter".into(),
            };
            post("/v1/forms", form_json(&id, brand))
        }
        ("PUT", "/v1/forms/{id}") => Request::json(
            method,
            "/v1/forms/newsletter",
            &form_json("newsletter", brand),
        ),
        ("GET", "/forms/{tenant}/{form}") => Request::new(method, "/forms/makro/newsletter"),
        ("POST", "/forms/{tenant}/{form}") => {
            // A page's own cookie and token, and the trap field filled: the
            // page thanks the bot and records nothing.
            let (cookie, token) = page_session(app, "/forms/makro/newsletter").await;
            Request::new(method, "/forms/makro/newsletter")
                .with_body(
                    "application/x-www-form-urlencoded",
                    format!("token={token}&number=12&website=bot"),
                )
                .header("cookie", cookie)
        }
        ("POST", "/v1/documents") => Request::new(method, "/v1/documents")
            .with_body("application/pdf", format!("%PDF-1.7\n% upload {n}\n")),
        ("GET", "/v1/documents/{id}") => {
            Request::new(method, format!("/v1/documents/{}", w.document))
        }
        // Webhooks as a caller with an API key would send them: unsigned.
        ("GET", "/webhooks/whatsapp/{tenant}") => handshake("makro", "not-the-token"),
        ("POST", "/webhooks/whatsapp/{tenant}") => Request::new(method, "/webhooks/whatsapp/makro")
            .with_body("application/json", whatsapp_body(false)),
        ("POST", "/webhooks/twilio/{tenant}") => Request::new(method, "/webhooks/twilio/makro")
            .with_body(
                "application/x-www-form-urlencoded",
                twilio_form(false, &format!("SM{n:032}")).0,
            ),
        (
            "GET",
            path @ ("/healthz"
            | "/readyz"
            | "/openapi.json"
            | "/docs"
            | "/v1/tenant"
            | "/v1/brands"
            | "/v1/keys"
            | "/v1/channels"
            | "/v1/export"
            | "/v1/log/checkpoint"
            | "/v1/log/keys"
            | "/v1/dead-letters"
            | "/v1/forms"
            | "/v1/audit-events"
            | "/v1/reviews"
            | "/v1/changes"
            | "/v1/changes/key"
            | "/v1/event-endpoints"
            | "/v1/event-deliveries"
            | "/v1/entry-points"),
        ) => Request::new(method, path),
        (m, p) => panic!("authz.rs has no request for {m} {p}: add one to `input`"),
    }
}

/// A form's definition for `brand`.
fn form_json(id: &str, brand: &str) -> Value {
    json!({"id": id, "brand": brand,
        "consent_text": format!("Yes, I want offers from {brand} on WhatsApp."),
        "purposes": ["marketing"], "privacy_url": "https://example.com/privacy"})
}

/// A page's cookie (`name=value`) and token, as a browser that loaded it
/// holds them.
pub(crate) async fn page_session(app: &TestApp, path: &str) -> (String, String) {
    let response = app.client.get(app.url(path)).send().await.expect("request");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("a cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    let page = response.text().await.expect("html");
    let marker = "name=\"token\" value=\"";
    let start = page.find(marker).expect("a token") + marker.len();
    let token = page[start..].split('"').next().expect("token").to_owned();
    (cookie, token)
}

/// The webhooks' own credentials: signatures and verify tokens, right,
/// wrong, another tenant's, at another tenant's or an unknown tenant's URL.
fn signature_cells(route: &Route) -> Vec<(String, Request, Expect)> {
    let sid = |n: u32| format!("SM{n:032}");
    let unsigned = |tenant: &str, b: bool| match route.template.as_str() {
        "/webhooks/whatsapp/{tenant}" => {
            Request::new(Method::POST, format!("/webhooks/whatsapp/{tenant}"))
                .with_body("application/json", whatsapp_body(b))
        }
        _ => Request::new(Method::POST, format!("/webhooks/twilio/{tenant}")).with_body(
            "application/x-www-form-urlencoded",
            twilio_form(b, &sid(if b { 2 } else { 1 })).0,
        ),
    };
    let signed = |tenant: &str, b: bool| {
        let request = unsigned(tenant, b);
        match route.template.as_str() {
            "/webhooks/whatsapp/{tenant}" => {
                let secret = if b { B_WA_SECRET } else { WA_SECRET };
                let signature = hub_signature(secret, &request.body);
                request.header("x-hub-signature-256", signature)
            }
            _ => {
                let signature = twilio_form(b, &sid(if b { 2 } else { 1 })).1;
                request.header("x-twilio-signature", signature)
            }
        }
    };
    let bad_header = match route.template.as_str() {
        "/webhooks/whatsapp/{tenant}" => {
            ("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
        }
        _ => (
            "x-twilio-signature",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned(),
        ),
    };
    let cell = |name: &str, request: Request, expect: Expect| (name.to_owned(), request, expect);
    if route.method == Method::GET {
        return vec![
            cell(
                "A's verify token",
                handshake("makro", VERIFY_TOKEN),
                Expect::Granted,
            ),
            cell(
                "a wrong verify token",
                handshake("makro", "guess"),
                Expect::Status(403),
            ),
            cell(
                "no verify token",
                Request::new(
                    Method::GET,
                    "/webhooks/whatsapp/makro?hub.mode=subscribe&hub.challenge=1",
                ),
                Expect::Status(403),
            ),
            cell(
                "B's verify token at A's URL",
                handshake("makro", B_VERIFY_TOKEN),
                Expect::Status(403),
            ),
            cell(
                "A's verify token at B's URL",
                handshake("borealis", VERIFY_TOKEN),
                Expect::Status(403),
            ),
            cell(
                "A's verify token at an unknown tenant's URL",
                handshake("nosuch", VERIFY_TOKEN),
                Expect::Status(403),
            ),
            cell(
                "B's verify token at B's URL",
                handshake("borealis", B_VERIFY_TOKEN),
                Expect::OwnTenant(Some(200)),
            ),
        ];
    }
    vec![
        cell("A's signature", signed("makro", false), Expect::Granted),
        cell(
            "no signature",
            unsigned("makro", false),
            Expect::Status(401),
        ),
        cell(
            "a wrong signature",
            unsigned("makro", false).header(bad_header.0, bad_header.1),
            Expect::Status(401),
        ),
        cell(
            "B's signature at A's URL",
            signed("makro", true),
            Expect::Status(401),
        ),
        cell(
            "A's signature at B's URL",
            signed("borealis", false),
            Expect::Status(401),
        ),
        cell(
            "A's signature at an unknown tenant's URL",
            signed("nosuch", false),
            Expect::Status(401),
        ),
        cell(
            "B's signature at B's URL",
            signed("borealis", true),
            Expect::OwnTenant(Some(200)),
        ),
    ]
}

/// Checks one answer; returns what is wrong with it.
fn judge(
    route: &Route,
    credential: &str,
    request: &Request,
    authorization: Option<&str>,
    expect: Expect,
    reply: &Reply,
    markers: &[String],
) -> Vec<String> {
    let status = reply.status.as_u16();
    let what = format!(
        "{} [{} {}] with {credential}: expected {expect:?}, got {status} {:.300}",
        route.name(),
        request.method,
        request.path,
        reply.text
    );
    let mut wrong = Vec::new();
    let refused = matches!(status, 401 | 403);
    match expect {
        Expect::Status(expected) if status != expected => wrong.push(what.clone()),
        Expect::Status(401) if matches!(route.access, Roles(_) | Operator) => {
            let challenge = reply.headers.contains_key("www-authenticate");
            if reply.code() != "unauthorized" || !challenge {
                wrong.push(format!(
                    "{what}: not an `unauthorized` problem with WWW-Authenticate"
                ));
            }
        }
        Expect::Status(403)
            if matches!(route.access, Roles(_) | Operator) && reply.code() != "forbidden" =>
        {
            wrong.push(format!("{what}: not a `forbidden` problem"));
        }
        Expect::Granted | Expect::OwnTenant(None) if refused || status >= 500 => {
            wrong.push(what.clone())
        }
        Expect::OwnTenant(Some(expected)) if status != expected => wrong.push(what.clone()),
        _ => {}
    }
    // Nothing of A that the caller did not say itself (the public pages
    // are the same for everyone, and their examples may name anything).
    if expect != Expect::Granted && !matches!(route.access, Public) {
        let said = request.said(authorization);
        let answer = reply.text.to_lowercase();
        let leaked: Vec<&String> = markers
            .iter()
            .filter(|m| {
                let m = m.to_lowercase();
                answer.contains(&m) && !said.contains(m.trim_start_matches("key_"))
            })
            .collect();
        if !leaked.is_empty() {
            wrong.push(format!("{what}: shows A's {leaked:?}"));
        }
    }
    wrong
}

/// A's settings, brands, keys (but when they were last used), channels,
/// dead letters and log size.
async fn state_of(app: &TestApp, t: &Tenant) -> Value {
    let mut state = Vec::new();
    for path in [
        "/v1/tenant",
        "/v1/brands",
        "/v1/keys",
        "/v1/channels",
        "/v1/dead-letters",
    ] {
        let answer = app.get(path, &t.admin).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        let mut body = answer.body;
        if let Some(keys) = body["keys"].as_array_mut() {
            for key in keys {
                key.as_object_mut().expect("a key").remove("last_used_at");
            }
        }
        state.push(body);
    }
    Value::Array(state)
}

/// An app on a manual clock that answers every failed authentication of
/// the matrix (the per-address budget is tested in `limits`).
async fn spawn_authz_app() -> TestApp {
    spawn_app_at_manual_clock_with(|a| {
        a.limits.auth_failures_per_minute = Some(1_000_000);
        a.limits.page_posts_per_minute = Some(1_000_000);
    })
    .await
}

/// Every route × every credential, and the webhooks × their signatures.
#[both]
async fn every_route_answers_each_credential_as_the_table_says() {
    let app = spawn_authz_app().await;
    let w = world(&app).await;
    let routes = routes();
    let credentials = credentials(&w);
    let before = state_of(&app, &w.a).await;

    // Refusals, public pages and B's calls first; A's granted calls, which
    // change A, once A's state is known to be untouched by the others.
    let mut granted = Vec::new();
    let mut failures = Vec::new();
    let (mut cells, mut n) = (0, 0);
    for route in &routes {
        for credential in &credentials {
            let expect = expect(route, &credential.kind);
            n += 1;
            if expect == Expect::Granted {
                granted.push((
                    route,
                    credential.name.clone(),
                    credential.authorization.clone(),
                    n,
                ));
                continue;
            }
            let by_b = matches!(credential.kind, Kind::Key(Holder::B, _));
            let request = input(&app, &w, route, by_b, by_b, n).await;
            let authorization = credential.authorization.as_deref();
            let reply = send(&app, &request, authorization).await;
            cells += 1;
            failures.extend(judge(
                route,
                &credential.name,
                &request,
                authorization,
                expect,
                &reply,
                &w.markers,
            ));
            let reads_own_log = [
                "/v1/tenant",
                "/v1/log/checkpoint",
                "/v1/log/keys",
                "/v1/export",
                "/v1/export/dossier",
            ];
            if matches!(expect, Expect::OwnTenant(_))
                && reads_own_log.contains(&route.template.as_str())
                && !reply.text.contains(&w.b_log)
            {
                failures.push(format!(
                    "{} with {}: does not show B's log {}: {:.300}",
                    route.name(),
                    credential.name,
                    w.b_log,
                    reply.text
                ));
            }
        }
        if matches!(route.access, Signature) {
            for (name, request, expect) in signature_cells(route) {
                if expect == Expect::Granted {
                    granted.push((route, name, None, 0));
                    continue;
                }
                let reply = send(&app, &request, None).await;
                cells += 1;
                failures.extend(judge(
                    route, &name, &request, None, expect, &reply, &w.markers,
                ));
            }
        }
    }
    let after = state_of(&app, &w.a).await;
    if before != after {
        failures.push(format!(
            "refused calls or B's calls changed A:\nbefore {before}\nafter  {after}"
        ));
    }
    let created = app
        .post(
            "/v1/tenants",
            OPERATOR_TOKEN,
            &json!({"id": NEVER_TENANT, "brand": "Never"}),
        )
        .await;
    if created.status != StatusCode::CREATED {
        failures.push(format!("a refused call created the tenant {NEVER_TENANT}"));
    }

    for (route, name, authorization, n) in granted {
        let request = if authorization.is_none() && matches!(route.access, Signature) {
            signature_cells(route)
                .into_iter()
                .find(|(cell, _, _)| *cell == name)
                .expect("the cell")
                .1
        } else {
            input(&app, &w, route, false, true, n).await
        };
        let reply = send(&app, &request, authorization.as_deref()).await;
        cells += 1;
        failures.extend(judge(
            route,
            &name,
            &request,
            authorization.as_deref(),
            Expect::Granted,
            &reply,
            &w.markers,
        ));
    }
    println!(
        "authz matrix: {} routes × {} credentials, {cells} cells",
        routes.len(),
        credentials.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The invalid variants of a route's valid request: bodies, queries and
/// path parameters that its extractors refuse.
fn invalid_inputs(route: &Route, valid: &Request) -> Vec<(&'static str, Request)> {
    let with = |path: &str| Request {
        path: path.to_owned(),
        ..valid.clone()
    };
    let body = |content_type: &'static str, text: &str| {
        Request::new(valid.method.clone(), valid.path.clone()).with_body(content_type, text)
    };
    match route.template.as_str() {
        "/v1/dead-letters" => vec![(
            "a query that is not a number",
            with("/v1/dead-letters?limit=x"),
        )],
        "/v1/audit-events" => vec![(
            "a query that is not a number",
            with("/v1/audit-events?after=x"),
        )],
        "/v1/export" => vec![("a query that is not a number", with("/v1/export?size=x"))],
        "/v1/log/checkpoints" => vec![(
            "a query that is not a number",
            with("/v1/log/checkpoints?size=x"),
        )],
        "/v1/log/proof/inclusion" => vec![(
            "a query that is not a number",
            with("/v1/log/proof/inclusion?seq=x&size=2"),
        )],
        "/v1/log/proof/consistency" => vec![(
            "a query that is not a number",
            with("/v1/log/proof/consistency?from=x&to=2"),
        )],
        "/v1/dead-letters/{id}" => {
            vec![("an id that is not a number", with("/v1/dead-letters/abc"))]
        }
        "/v1/reviews" => vec![("a limit that is not a number", with("/v1/reviews?limit=x"))],
        "/v1/reviews/{id}" => vec![(
            "a decision that is not one",
            body("application/json", r#"{"decision":"maybe"}"#),
        )],
        "/v1/entries/{seq}" => vec![("a seq that is not a number", with("/v1/entries/abc"))],
        "/v1/documents" => vec![("a body that is no document", body("text/plain", "hello"))],
        "/v1/forms/{id}" if route.method == Method::GET => {
            vec![("an id that is no form id", with("/v1/forms/NOPE!"))]
        }
        "/v1/documents/{id}" => vec![("an id of the wrong form", with("/v1/documents/nonsense"))],
        "/v1/entries/{seq}/receipt" => vec![(
            "a seq that is not a number",
            with("/v1/entries/abc/receipt"),
        )],
        "/v1/keys/{id}" => vec![("a key id of the wrong form", with("/v1/keys/nonsense"))],
        "/v1/brands/{name}/retire" => {
            vec![("a brand name of blanks", with("/v1/brands/%20/retire"))]
        }
        "/webhooks/whatsapp/{tenant}" if route.method == Method::POST => {
            vec![("malformed JSON", body("application/json", "{"))]
        }
        // Twilio's 415 for a body that is not a form comes first by design
        // (documented); a form that does not parse is judged after the signature.
        "/webhooks/twilio/{tenant}" => vec![(
            "a form that does not parse",
            body("application/x-www-form-urlencoded", "%%%=&&="),
        )],
        _ if valid.content_type == Some("application/json") => vec![
            (
                "an unknown field",
                body("application/json", r#"{"unexpected": true}"#),
            ),
            ("malformed JSON", body("application/json", "{")),
            ("a text/plain body", body("text/plain", "hello")),
        ],
        _ => Vec::new(),
    }
}

/// Credentials are judged before the input (docs/api.md: 401 no or bad
/// credentials, 403 wrong role): a caller that may not call an operation
/// learns nothing from it, not even what its body, query or path is
/// missing, and gets the same answer whatever input it sends.
#[both]
async fn credentials_are_judged_before_the_input() {
    let app = spawn_authz_app().await;
    let w = world(&app).await;
    let routes = routes();
    let credentials = credentials(&w);
    let mut failures = Vec::new();
    let mut cells = 0;
    for (n, route) in routes.iter().enumerate() {
        for credential in &credentials {
            let expect = expect(route, &credential.kind);
            if !matches!(expect, Expect::Status(401 | 403)) {
                continue;
            }
            let by_b = matches!(credential.kind, Kind::Key(Holder::B, _));
            let valid = input(&app, &w, route, by_b, false, n).await;
            let authorization = credential.authorization.as_deref();
            for (what, request) in invalid_inputs(route, &valid) {
                let reply = send(&app, &request, authorization).await;
                cells += 1;
                let name = format!("{} and {what}", credential.name);
                failures.extend(judge(
                    route,
                    &name,
                    &request,
                    authorization,
                    expect,
                    &reply,
                    &w.markers,
                ));
            }
        }
    }
    println!("authz input order: {cells} cells");
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
