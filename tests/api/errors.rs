//! Bad input gets a precise 4xx problem+json: malformed JSON, unknown
//! fields, wrong types, media types, sizes and routes.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
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

#[tokio::test]
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

#[tokio::test]
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
