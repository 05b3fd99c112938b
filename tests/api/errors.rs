//! Bad input gets a precise 4xx problem+json: malformed JSON, unknown
//! fields, wrong types, media types, sizes and routes.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

#[both]
async fn malformed_and_unknown_input_is_named() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let malformed = app
        .post_raw(
            "/v1/opt-ins",
            &t.collector,
            "application/json",
            b"{\"number\": ".to_vec(),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.code(), "malformed_json");
    assert_eq!(malformed.content_type(), "application/problem+json");
    assert_eq!(malformed.body["type"], "/problems/malformed_json");
    assert_eq!(malformed.body["status"], 400);
    assert!(malformed.body["title"].is_string() && malformed.body["detail"].is_string());
    let mut unknown = web_opt_in(NUMBER, "Makro", &["marketing"]);
    unknown["favourite_colour"] = json!("blue");
    let answer = app.opt_in(&t, unknown).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "invalid_request");
    assert_eq!(
        answer.field_code("favourite_colour").as_deref(),
        Some("unknown_field")
    );
    let mut missing = web_opt_in(NUMBER, "Makro", &["marketing"]);
    missing.as_object_mut().unwrap().remove("purposes");
    assert_eq!(
        app.opt_in(&t, missing)
            .await
            .field_code("purposes")
            .as_deref(),
        Some("required")
    );
    let mut empty = web_opt_in(NUMBER, "Makro", &["marketing"]);
    empty["purposes"] = json!([]);
    assert_eq!(
        app.opt_in(&t, empty)
            .await
            .field_code("purposes")
            .as_deref(),
        Some("empty")
    );
    let mut wrong = web_opt_in(NUMBER, "Makro", &["marketing"]);
    wrong["purposes"] = json!(["spam"]);
    assert_eq!(
        app.opt_in(&t, wrong)
            .await
            .field_code("purposes[0]")
            .as_deref(),
        Some("invalid_value")
    );
    let mut api_in = web_opt_in(NUMBER, "Makro", &["marketing"]);
    api_in["channel"] = json!("api");
    assert_eq!(
        app.opt_in(&t, api_in)
            .await
            .field_code("channel")
            .as_deref(),
        Some("invalid_value")
    );
    let mut lang = web_opt_in(NUMBER, "Makro", &["marketing"]);
    lang["language"] = json!("english_GB");
    assert_eq!(
        app.opt_in(&t, lang).await.field_code("language").as_deref(),
        Some("invalid_language_tag")
    );
    let mut long = web_opt_in(NUMBER, "Makro", &["marketing"]);
    long["consent_text"] = json!(format!("Makro {}", "x".repeat(10_000)));
    assert_eq!(
        app.opt_in(&t, long)
            .await
            .field_code("consent_text")
            .as_deref(),
        Some("too_long")
    );
    let unknown_check = app
        .check(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "extra": 1}),
        )
        .await;
    assert_eq!(
        unknown_check.field_code("extra").as_deref(),
        Some("unknown_field")
    );
    let not_utf8 = app
        .post_raw(
            "/v1/checks",
            &t.sender,
            "application/json",
            vec![b'{', 0xff, b'}'],
        )
        .await;
    assert_eq!(not_utf8.status, StatusCode::BAD_REQUEST);
    // None of these refusals recorded anything.
    assert_eq!(app.get("/v1/tenant", &t.admin).await.body["tree_size"], 0);
}

#[both]
async fn media_types_sizes_and_routes() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let text = app
        .post_raw("/v1/checks", &t.sender, "text/plain", b"{}".to_vec())
        .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(text.code(), "unsupported_media_type");
    let charset = app
        .post_raw(
            "/v1/checks",
            &t.sender,
            "application/json; charset=utf-8",
            json!({"number": NUMBER, "purpose": "marketing"})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(charset.status, StatusCode::OK);
    let big = format!("{{\"number\":\"{}\"}}", "1".repeat(1024 * 1024));
    let answer = app
        .post_raw(
            "/v1/checks",
            &t.sender,
            "application/json",
            big.into_bytes(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let nowhere = app.get("/v1/nowhere", &t.admin).await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert_eq!(nowhere.content_type(), "application/problem+json");
    let described = app.get("/problems/invalid_number", "").await;
    assert_eq!(described.status, StatusCode::OK);
    assert_eq!(described.body["status"], 422);
    assert_eq!(
        app.get("/problems/nope", "").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/healthz", "").await.body["status"], "ok");
    assert_eq!(app.get("/readyz", "").await.body["status"], "ready");
}

/// A known path with the wrong method answers 405 with `Allow` (docs/api.md), an unknown path 404; neither runs the handler.
#[both]
async fn a_wrong_method_answers_405_with_allow() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let cases = [
        (reqwest::Method::GET, "/v1/opt-ins", "POST"),
        (reqwest::Method::DELETE, "/v1/keys", "GET, POST"),
        (reqwest::Method::GET, "/v1/keys/key_0123456789ab", "DELETE"),
        (reqwest::Method::PUT, "/v1/tenant", "GET, PATCH"),
        (
            reqwest::Method::DELETE,
            "/webhooks/whatsapp/makro",
            "GET, POST",
        ),
        (reqwest::Method::GET, "/v1/dead-letters/7", "GET"),
        // Swagger UI and the document: GET only (they answered 404).
        (reqwest::Method::POST, "/docs", "GET"),
        (reqwest::Method::DELETE, "/docs/", "GET"),
        (reqwest::Method::PUT, "/docs/index.html", "GET"),
        (reqwest::Method::POST, "/openapi.json", "GET"),
        (reqwest::Method::DELETE, "/openapi.json", "GET"),
    ];
    for (method, path, allow) in cases {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&t.admin)
            .send()
            .await
            .unwrap();
        let answer = TestApp::answer(response).await;
        if allow.split(", ").any(|m| m == method.as_str()) {
            assert_ne!(
                answer.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            continue;
        }
        assert_eq!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "method_not_allowed");
        assert_eq!(answer.content_type(), "application/problem+json");
        let mut listed: Vec<&str> = answer.headers["allow"]
            .to_str()
            .unwrap()
            .split(", ")
            .collect();
        listed.sort_unstable();
        let mut expected: Vec<&str> = allow.split(", ").collect();
        expected.sort_unstable();
        assert_eq!(listed, expected, "{method} {path}");
    }
    let nowhere = app
        .client
        .delete(app.url("/v1/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/v1/tenant", &t.admin).await.body["tree_size"], 0);
}

#[both]
async fn swagger_ui_and_the_document_are_served() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = client.get(app.url("/docs")).send().await.unwrap();
    assert!(redirect.status().is_redirection());
    assert_eq!(redirect.headers().get("location").unwrap(), "/docs/");
    let page = client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("swagger"));
    let doc = app.get("/openapi.json", "").await;
    assert_eq!(doc.status, StatusCode::OK);
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    assert_eq!(doc.body, committed);
}

/// PostgreSQL text cannot hold U+0000; JSON can. Every free text the API
/// stores gets a precise answer on both backends, never a 500.
#[both]
async fn nul_characters_in_free_text_never_fail_the_store() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let mut text = web_opt_in(NUMBER, "Makro", &["marketing"]);
    text["consent_text"] = json!("Offers from Makro\u{0} on WhatsApp");
    let mut evidence = web_opt_in(NUMBER, "Makro", &["marketing"]);
    evidence["evidence"]["user_agent"] = json!("Mozilla\u{0}/5.0");
    let mut opt_out = api_opt_out(NUMBER);
    opt_out["evidence"]["reason"] = json!("asked\u{0}");
    let cases = [
        ("/v1/opt-ins", t.collector.clone(), text),
        ("/v1/opt-ins", t.collector.clone(), evidence),
        ("/v1/opt-outs", t.collector.clone(), opt_out),
        ("/v1/brands", t.admin.clone(), json!({"name": "Me\u{0}tro"})),
        (
            "/v1/keys",
            t.admin.clone(),
            json!({"name": "k\u{0}", "roles": ["sender"]}),
        ),
    ];
    let mut failed = Vec::new();
    for (i, (path, key, body)) in cases.into_iter().enumerate() {
        let answer = app.post(path, &key, &body).await;
        if !(answer.status.is_success() || answer.status.is_client_error()) {
            failed.push(format!("case {i} {path}: {}", answer.status));
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
    // A consent text nobody can have read is refused by name.
    let mut text = web_opt_in(NUMBER, "Makro", &["marketing"]);
    text["consent_text"] = json!("Offers from Makro\u{0} on WhatsApp");
    let refused = app.opt_in(&t, text).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.field_code("consent_text").as_deref(),
        Some("control_character")
    );
    // So is a channel prompt that would become one.
    let prompt = json!({"twilio": {
        "auth_token": "secret-token-0123456789",
        "account_sid": "AC00000000000000000000000000000000",
        "webhook_url": "https://hooks.example.com/webhooks/twilio/makro",
        "numbers": ["+4930123456"],
        "opt_in": [{"match": "JOIN", "brand": "Makro", "purposes": ["marketing"],
                    "prompt": "Text JOIN for Makro\u{0} offers"}]
    }});
    let refused = app.put("/v1/channels", &t.admin, &prompt).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.field_code("twilio.opt_in[0].prompt").as_deref(),
        Some("control_character"),
        "{}",
        refused.body
    );
    // A name with a NUL names nothing: an unknown brand, a missing key,
    // brand or tenant.
    let mut brand = prompt.clone();
    brand["twilio"]["opt_in"][0]["brand"] = json!("Ma\u{0}kro");
    brand["twilio"]["opt_in"][0]["prompt"] = json!("Text JOIN for Makro offers");
    let refused = app.put("/v1/channels", &t.admin, &brand).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.field_code("twilio.opt_in[0].brand").as_deref(),
        Some("unknown_brand"),
        "{}",
        refused.body
    );
    let missing = app.delete("/v1/keys/key_%00", &t.admin).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    let missing = app
        .post("/v1/brands/Ma%00kro/retire", &t.admin, &json!({}))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    // A signed-looking webhook makes the lookup happen: it finds nothing,
    // answered as a bad signature (issue 13: tenants cannot be listed).
    let webhook = app
        .client
        .post(app.url("/webhooks/whatsapp/ma%00kro"))
        .header("x-hub-signature-256", "sha256=00")
        .body("{}")
        .send()
        .await
        .expect("webhook");
    assert_eq!(webhook.status(), StatusCode::UNAUTHORIZED);
}

/// Evidence values hold no control characters but line breaks and tabs,
/// like the consent text (issue 13).
#[both]
async fn evidence_with_control_characters_is_refused() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    for bad in ["Mozilla/5.0\u{0}", "Mozilla\u{1b}[2J", "a\u{7f}b"] {
        let mut body = web_opt_in(NUMBER, "Makro", &["marketing"]);
        body["evidence"]["user_agent"] = json!(bad);
        let answer = app.opt_in(&t, body).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        assert_eq!(answer.code(), "invalid_evidence");
        assert_eq!(
            answer.field_code("evidence.user_agent").as_deref(),
            Some("control_character")
        );
    }
    let mut fine = web_opt_in(NUMBER, "Makro", &["marketing"]);
    fine["evidence"]["user_agent"] = json!("Mozilla/5.0\t(line\nbreak)");
    assert_eq!(app.opt_in(&t, fine).await.status, StatusCode::CREATED);
    assert_eq!(app.get("/v1/tenant", &t.admin).await.body["tree_size"], 1);
}

/// Errors say what to do: the values an enum takes, the JSON type a field
/// must have, the `+` an international number starts with, and every
/// missing field at once.
#[both]
async fn errors_say_what_to_do() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let purpose = app
        .check(&t, json!({"number": NUMBER, "purpose": "newsletter"}))
        .await;
    assert_eq!(purpose.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        purpose.field_code("purpose").as_deref(),
        Some("invalid_value")
    );
    let detail = purpose.body["detail"].as_str().unwrap();
    for value in ["marketing", "utility", "authentication"] {
        assert!(detail.contains(value), "{detail}");
    }
    assert!(!detail.contains("newsletter"), "never echoed: {detail}");

    let typed = app
        .check(
            &t,
            json!({"number": 4915112345678_u64, "purpose": "marketing"}),
        )
        .await;
    assert_eq!(typed.field_code("number").as_deref(), Some("invalid_type"));
    let detail = typed.body["detail"].as_str().unwrap();
    assert!(detail.contains("must be a string"), "{detail}");
    assert!(!detail.contains("4915112345678"), "never echoed: {detail}");

    let plus = app
        .check(
            &t,
            json!({"number": "4915112345678", "purpose": "marketing"}),
        )
        .await;
    assert_eq!(plus.code(), "invalid_number");
    let detail = plus.body["detail"].as_str().unwrap();
    assert!(detail.contains("starts with +"), "{detail}");

    let empty = app.opt_in(&t, json!({})).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    let missing: Vec<&str> = empty.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["code"] == "required")
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for field in [
        "channel",
        "company_name_shown",
        "consent_text",
        "purposes",
        "captured_at",
        "evidence",
    ] {
        assert!(
            missing.contains(&field),
            "{field} not named: {}",
            empty.body
        );
    }
    // One missing field is named alone, as before.
    let mut one = web_opt_in(NUMBER, "Makro", &["marketing"]);
    one.as_object_mut().unwrap().remove("consent_text");
    let answer = app.opt_in(&t, one).await;
    assert_eq!(
        answer.body["errors"].as_array().unwrap().len(),
        1,
        "{}",
        answer.body
    );
    assert_eq!(
        answer.field_code("consent_text").as_deref(),
        Some("required")
    );
}

/// A port already taken is named with the setting that moves the service.
#[test]
fn a_taken_port_names_the_setting_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run_cli(
        &["serve", "--bind", &address],
        Some(&dir.path().join("data")),
    );
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("--bind") && stderr.contains("CONSENT_LEDGER_BIND"),
        "{stderr}"
    );
}
