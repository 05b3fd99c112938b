//! The committed OpenAPI document matches the code (it fails on drift).

#[test]
fn the_committed_openapi_document_is_current() {
    let generated = consent_ledger::startup::openapi_json();
    let committed = include_str!("../../openapi/openapi.json");
    assert!(
        generated == committed,
        "openapi/openapi.json is out of date: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_problem_answer_is_documented() {
    let doc: serde_json::Value =
        serde_json::from_str(&consent_ledger::startup::openapi_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let has_problem = responses.iter().any(|(status, r)| {
                (status.starts_with('4') || status.starts_with('5'))
                    && r["content"].get("application/problem+json").is_some()
            });
            if path != "/healthz" {
                assert!(has_problem, "{method} {path} documents no problem response");
            }
        }
    }
}

/// Every `$ref` names a schema the document holds: a client generator or a
/// fuzzer cannot use a reference that leads nowhere.
#[test]
fn every_reference_resolves() {
    fn refs<'a>(value: &'a serde_json::Value, found: &mut Vec<&'a str>) {
        match value {
            serde_json::Value::Object(map) => {
                for (name, inner) in map {
                    match (name.as_str(), inner.as_str()) {
                        ("$ref", Some(target)) => found.push(target),
                        _ => refs(inner, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| refs(i, found)),
            _ => {}
        }
    }
    let doc: serde_json::Value =
        serde_json::from_str(&consent_ledger::startup::openapi_json()).unwrap();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty(), "the document uses references");
    for target in found {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{target} is not a local reference"));
        assert!(doc.pointer(pointer).is_some(), "{target} leads nowhere");
    }
}

/// The served document, and one request schema of it made whole (its
/// references resolve against the document's components).
struct Served(serde_json::Value);

impl Served {
    async fn of(app: &crate::helpers::TestApp) -> Self {
        let response = app.client.get(app.url("/openapi.json")).send().await;
        Self(
            response
                .unwrap()
                .json()
                .await
                .expect("the document is JSON"),
        )
    }

    /// A component schema; a request that names a person is an `allOf` of
    /// its object and its alternatives: the object.
    fn object(&self, name: &str) -> &serde_json::Value {
        let schema = &self.0["components"]["schemas"][name];
        let object = match schema.get("allOf") {
            Some(parts) => &parts[0],
            None => schema,
        };
        assert!(object["properties"].is_object(), "{name}: {schema}");
        object
    }

    fn property(&self, name: &str, property: &str) -> &serde_json::Value {
        &self.object(name)["properties"][property]
    }

    fn request_body(&self, method: &str, path: &str) -> serde_json::Value {
        let operation = &self.0["paths"][path][method];
        let mut root = operation["requestBody"]["content"]["application/json"]["schema"].clone();
        assert!(root.is_object(), "{method} {path} takes no JSON body");
        root["components"] = self.0["components"].clone();
        root
    }

    /// Why `body` does not match the request schema of `method path`.
    fn refusals(&self, method: &str, path: &str, body: &serde_json::Value) -> Vec<String> {
        let root = self.request_body(method, path);
        let validator = jsonschema::validator_for(&root).expect("a valid schema");
        validator
            .iter_errors(body)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect()
    }
}

/// What the service validates is in the document a client generator or a
/// fuzzer reads: the identity patterns, the enums, the lengths and counts,
/// each capture channel's evidence row, and the header's limit.
#[crate::helpers::both]
async fn the_served_document_describes_what_the_service_validates() {
    let app = crate::helpers::spawn_app().await;
    let doc = Served::of(&app).await;
    let naming_a_person = [
        "OptInRequest",
        "OptOutRequest",
        "InteractionRequest",
        "CheckRequest",
        "SubjectQuery",
        "EraseRequest",
        "DossierRequest",
    ];
    let takes = |schema: &serde_json::Value, value: &str| {
        let validator = jsonschema::validator_for(schema).expect("a valid schema");
        validator.is_valid(&serde_json::json!(value))
    };
    for name in naming_a_person {
        let number = doc.property(name, "number");
        for good in ["+4915112345678", " 0151 1234-5678 ", "(415) 555-2671"] {
            assert!(takes(number, good), "{name}: {good:?} {number}");
        }
        for bad in ["4915112345678a", "+49+151", "", "+"] {
            assert!(!takes(number, bad), "{name}: {bad:?} {number}");
        }
        let user_id = doc.property(name, "user_id");
        for good in ["US.13491208655302741918", "BR.ENT.9f3a"] {
            assert!(takes(user_id, good), "{name}: {good:?} {user_id}");
        }
        for bad in ["us.1349", "US.", "US.ENT.", "US.12-34", "+4915112345678"] {
            assert!(!takes(user_id, bad), "{name}: {bad:?} {user_id}");
        }
        let region = doc.property(name, "region");
        assert!(
            takes(region, "de") && !takes(region, "DEU"),
            "{name}: {region}"
        );
    }
    let schemas = &doc.0["components"]["schemas"];
    assert_eq!(
        schemas["Purpose"]["enum"],
        serde_json::json!(["marketing", "utility", "authentication"])
    );
    assert_eq!(doc.property("OptInRequest", "purposes")["minItems"], 1);
    let channel = &doc.property("OptInRequest", "channel")["enum"];
    assert_eq!(
        channel,
        &serde_json::json!(["sms", "web", "whatsapp", "ivr", "paper"])
    );
    let consent_text = doc.property("OptInRequest", "consent_text");
    assert_eq!(
        (
            consent_text["minLength"].as_u64(),
            consent_text["maxLength"].as_u64()
        ),
        (Some(1), Some(10_000))
    );
    assert_eq!(doc.property("BatchRequest", "checks")["maxItems"], 10_000);
    let tenant_id = doc.property("CreateTenantRequest", "id");
    assert!(
        takes(tenant_id, "makro-de") && !takes(tenant_id, "Makro"),
        "{tenant_id}"
    );
    assert_eq!(doc.property("CreateKeyRequest", "name")["maxLength"], 100);
    assert_eq!(doc.property("CreateKeyRequest", "roles")["minItems"], 1);
    assert_eq!(
        doc.property("TenantPatch", "max_consent_age_days")["maximum"],
        36_500
    );
    assert_eq!(doc.property("EraseRequest", "reason")["maxLength"], 500);
    assert_eq!(schemas["Timestamp"]["format"], "date-time");
    // Each capture channel of an opt-in, with its own evidence row.
    let rows = schemas["OptInRequest"]["allOf"][2]["oneOf"]
        .as_array()
        .expect("evidence rows");
    let web = rows
        .iter()
        .find(|r| r["properties"]["channel"]["enum"][0] == "web")
        .expect("web");
    let required = &web["properties"]["evidence"]["required"];
    assert_eq!(
        required,
        &serde_json::json!(["page_url", "ip", "user_agent"])
    );
    assert_eq!(rows.len(), 5);
    let header = doc.0["paths"]["/v1/opt-ins"]["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .expect("the header");
    assert_eq!(header["schema"]["pattern"], "^[!-~]{1,255}$");
    // Where the setting is described: what never waits for confirmation.
    let setting = doc.property("TenantPatch", "require_confirmation_for");
    let described = setting["description"].as_str().unwrap_or("");
    assert!(
        described.contains("signed webhook") && described.contains("never wait"),
        "{setting}"
    );
}

/// A schema that refuses what the service takes would make a generated
/// client refuse it too: each body here is taken by the service (edge
/// cases: a national number with a lower-case region and whitespace, a
/// parent user id, a brand sent decomposed and longer than 100 code points,
/// tabs and line breaks in a consent text, every evidence row), and each
/// matches the request schema of the served document.
#[crate::helpers::both]
async fn every_body_the_service_takes_matches_its_documented_schema() {
    use crate::helpers::{at, date_at, spawn_app, OPERATOR_TOKEN};
    use serde_json::json;
    let app = spawn_app().await;
    let doc = Served::of(&app).await;
    let t = app.tenant("schema-edges", "Makro").await;
    let decomposed = "Cafe\u{301} Cre\u{300}me";
    let long_decomposed = "e\u{301}".repeat(60);
    let (sha, date) = ("0a".repeat(32), date_at(-60));
    let whatsapp =
        json!({"message_id": "wamid.1", "business_phone_number_id": "1065", "body": "JOIN"});
    let cases: Vec<(&str, &str, &str, serde_json::Value)> = vec![
        (
            "post",
            "/v1/tenants",
            OPERATOR_TOKEN,
            json!({"id": "a-1", "brand": "Zeta GmbH"}),
        ),
        (
            "post",
            "/v1/brands",
            &t.admin,
            json!({"name": "Café Crème"}),
        ),
        (
            "post",
            "/v1/brands",
            &t.admin,
            json!({"name": long_decomposed}),
        ),
        (
            "post",
            "/v1/keys",
            &t.admin,
            json!({"name": "campaign tool ✓", "roles": ["sender", "sender"], "expires_at": at(3600)}),
        ),
        (
            "patch",
            "/v1/tenant",
            &t.admin,
            json!({"max_consent_age_days": 36500, "default_region": "br", "require_confirmation_for": [], "evidence_retention_days": null}),
        ),
        (
            "post",
            "/v1/forms",
            &t.admin,
            json!({"id": "news-letter", "brand": "Makro", "consent_text": "Offers from Makro,\nweekly.", "purposes": ["utility"], "language": "de-AT", "default_region": "at", "privacy_url": "https://shop.example/privacy?x=[1]&y=2#top", "embed_origins": ["https://shop.example:8443"]}),
        ),
        (
            "put",
            "/v1/channels",
            &t.admin,
            json!({
            "whatsapp": {"app_secret": "0123456789abcdef", "verify_token": "verify-token-0123", "phone_numbers": [{"id": "1065", "display": "+49 151"}],
                         "opt_in": [{"match": "JOIN Makro", "brand": "MAKRO", "purposes": ["marketing"], "prompt": "Send JOIN Makro\tfor offers from Makro"}]},
            "twilio": {"auth_token": "0123456789abcdef0123", "account_sid": format!("AC{}", "a".repeat(32)), "webhook_url": "https://x.example/webhooks/twilio/schema-edges", "numbers": [" +1 (415) 555-2671 "]},
            "opt_out_keywords": ["ABMELDEN"], "partial_opt_out": ["marketing"]}),
        ),
        (
            "post",
            "/v1/opt-ins",
            &t.collector,
            json!({"number": " 0151 12345678\t", "region": "de", "channel": "web", "company_name_shown": "Makro",
            "consent_text": "Yes,\tMakro offers.\r\nReply STOP.", "purposes": ["marketing", "marketing"], "message_channels": ["whatsapp", "sms"],
            "captured_at": at(-60), "language": "pt-BR", "backfill": false,
            "evidence": {"page_url": "http://shop.example/a%20b", "ip": "2001:db8::7", "user_agent": "UA", "rendered_html_sha256": sha}}),
        ),
        (
            "post",
            "/v1/opt-ins",
            &t.collector,
            json!({"user_id": "BR.ENT.abc123", "region": null, "channel": "whatsapp", "company_name_shown": decomposed,
            "consent_text": "Yes, offers from Café Crème.", "purposes": ["utility"], "message_channels": ["whatsapp"], "captured_at": at(-60), "evidence": whatsapp}),
        ),
        (
            "post",
            "/v1/opt-ins",
            &t.collector,
            json!({"number": "+4915112345679", "channel": "paper", "company_name_shown": "Makro", "consent_text": "Makro",
            "purposes": ["marketing"], "captured_at": at(-60), "evidence": {"document_sha256": sha, "signer_name": "J. Doe", "signed_on": date, "collected_by": "store 1"}}),
        ),
        (
            "post",
            "/v1/opt-ins",
            &t.collector,
            json!({"number": "+4915112345670", "channel": "ivr", "company_name_shown": "Makro", "consent_text": "Makro",
            "purposes": ["marketing"], "captured_at": at(-60), "evidence": {"call_id": "c1", "prompt_script": "Press 1", "speech_transcript": "yes"}}),
        ),
        (
            "post",
            "/v1/opt-outs",
            &t.collector,
            json!({"number": "+4915112345679", "channel": "whatsapp", "captured_at": at(0),
            "evidence": {"business_phone_number_id": "1065", "preference": "stop"}}),
        ),
        (
            "post",
            "/v1/opt-outs",
            &t.collector,
            json!({"user_id": "US.1349", "channel": "api", "message_channels": ["sms"], "purposes": ["utility"],
            "captured_at": at(0), "evidence": {"reason": "asked by phone"}}),
        ),
        (
            "post",
            "/v1/interactions",
            &t.collector,
            json!({"user_id": "BR.ENT.abc123", "business_phone_number_id": "1065"}),
        ),
        (
            "post",
            "/v1/interactions",
            &t.sender,
            json!({"number": "015112345678", "region": "DE", "received_at": at(-10)}),
        ),
        (
            "post",
            "/v1/checks",
            &t.sender,
            json!({"number": "0151 12345678", "region": "DE", "purpose": "marketing", "brand": "MAKRO", "channel": "sms"}),
        ),
        (
            "post",
            "/v1/checks",
            &t.sender,
            json!({"user_id": "BR.ENT.abc123", "purpose": "utility", "brand": "CAFÉ CRÈME", "business_phone_number_id": "1065"}),
        ),
        (
            "post",
            "/v1/checks/batch",
            &t.sender,
            json!({"checks": [{"number": "+4915112345678", "purpose": "marketing", "brand": "Makro"},
            {"user_id": "BR.ENT.abc123", "purpose": "utility", "brand": "Café Crème", "channel": "whatsapp"}]}),
        ),
        (
            "post",
            "/v1/subjects/query",
            &t.auditor,
            json!({"number": "+49 151 12345678"}),
        ),
        (
            "post",
            "/v1/export/dossier",
            &t.auditor,
            json!({"user_id": "BR.ENT.abc123"}),
        ),
        (
            "post",
            "/v1/subjects/erase",
            &t.admin,
            json!({"number": "(0151) 1234-5678", "region": "de", "reason": "asked in the store, à 10h"}),
        ),
    ];
    for (method, path, key, body) in cases {
        let request = match method {
            "post" => app.client.post(app.url(path)),
            "put" => app.client.put(app.url(path)),
            _ => app.client.patch(app.url(path)),
        };
        let response = request.bearer_auth(key).json(&body).send().await.unwrap();
        let status = response.status();
        let answer = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "{method} {path} {body}: {status} {answer}"
        );
        let refusals = doc.refusals(method, path, &body);
        assert!(
            refusals.is_empty(),
            "{method} {path} {body}: taken, yet {refusals:?}"
        );
    }
}

/// Every operation says what it does: a summary (Swagger UI's one line)
/// and a description.
#[test]
fn every_operation_has_a_summary_and_a_description() {
    let doc: serde_json::Value =
        serde_json::from_str(&consent_ledger::startup::openapi_json()).unwrap();
    let mut bare = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let said = |key: &str| {
                operation[key]
                    .as_str()
                    .is_some_and(|s| !s.trim().is_empty())
            };
            if !said("summary") || !said("description") {
                bare.push(format!("{method} {path}"));
            }
        }
    }
    assert!(
        bare.is_empty(),
        "operations without a summary or description: {bare:?}"
    );
}
