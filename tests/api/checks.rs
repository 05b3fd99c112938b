//! `POST /v1/checks` and `/v1/checks/batch`: order, per-item errors, limits, and the window the decision reports.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[both(pgbouncer)]
async fn a_batch_answers_in_order_with_per_item_errors() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let other = "+4915199999999";
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    app.recorded_opt_in(&t, web_opt_in(other, "Makro", &["marketing"]))
        .await;
    app.recorded_opt_out(&t, api_opt_out(other)).await;
    let checks = json!({"checks": [
        {"number": NUMBER, "purpose": "marketing"},
        {"number": "not a number", "purpose": "marketing"},
        {"number": other, "purpose": "marketing"},
        {"number": "015112345678", "purpose": "marketing"},
        {"number": NUMBER, "purpose": "marketing", "brand": "Metro"},
        {"number": NUMBER, "purpose": "newsletters"},
        {"number": NUMBER, "purpose": "marketing", "colour": "red"},
        {"number": "0151 12345678", "region": "DE", "purpose": "utility"},
        {"purpose": "marketing"}
    ]});
    let answer = app.post("/v1/checks/batch", &t.sender, &checks).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let d = answer.body["decisions"].as_array().unwrap();
    assert_eq!(d.len(), 9);
    assert_eq!(d[0]["reason"], "allowed");
    assert_eq!(d[1]["number"], "not a number");
    assert_eq!(d[1]["error"]["code"], "invalid_number");
    assert_eq!(d[1]["error"]["reason"], "not_a_number");
    assert_eq!(d[2]["reason"], "opted_out");
    assert_eq!(d[2]["number"], other);
    assert_eq!(d[3]["error"]["reason"], "missing_region");
    assert_eq!(d[4]["error"]["code"], "unknown_brand");
    assert_eq!(d[5]["error"]["code"], "invalid_request");
    assert_eq!(d[6]["error"]["code"], "invalid_request");
    assert!(d[6]["error"]["detail"].as_str().unwrap().contains("colour"));
    assert_eq!(d[7]["reason"], "purpose_not_covered");
    assert_eq!(d[7]["number"], NUMBER);
    assert_eq!(d[8]["number"], Value::Null);
    assert_eq!(d[8]["error"]["code"], "invalid_request");
    for item in d.iter().filter(|i| i.get("error").is_some()) {
        assert!(item["error"]["detail"].is_string());
        assert!(item.get("reason").is_none());
    }
}

#[both(pgbouncer)]
async fn a_batch_is_bounded() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let empty = app
        .post("/v1/checks/batch", &t.sender, &json!({"checks": []}))
        .await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.body["decisions"], json!([]));
    let item = json!({"number": NUMBER, "purpose": "marketing"});
    let too_many = json!({"checks": vec![item.clone(); 10_001]});
    let answer = app.post("/v1/checks/batch", &t.sender, &too_many).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.field_code("checks").as_deref(), Some("too_many"));
    // 10,000 is allowed (and answered in one snapshot).
    let full = json!({"checks": vec![item; 10_000]});
    let answer = app.post("/v1/checks/batch", &t.sender, &full).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["decisions"].as_array().unwrap().len(), 10_000);
    // Bodies over 4 MiB are refused before parsing.
    let huge = format!("{{\"checks\":[\"{}\"]}}", "x".repeat(4 * 1024 * 1024));
    let answer = app
        .post_raw(
            "/v1/checks/batch",
            &t.sender,
            "application/json",
            huge.into_bytes(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.code(), "payload_too_large");
}

/// docs/decisions.md: the window reported is the named id's, or the tenant's
/// only configured id's; with several configured and none named, the
/// latest of any, but no free-form reply is allowed.
#[both(pgbouncer)]
async fn the_window_follows_the_configured_whatsapp_numbers() {
    use crate::channels::{settings, PHONE_NUMBER_ID};
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let configure = |ids: &[&str]| {
        let mut body = settings();
        body["whatsapp"]["phone_numbers"] = ids
            .iter()
            .enumerate()
            .map(|(i, id)| json!({"id": id, "display": format!("+493012345{i}")}))
            .collect();
        body
    };
    let put = app
        .put("/v1/channels", &t.admin, &configure(&[PHONE_NUMBER_ID]))
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let check = json!({"number": NUMBER, "purpose": "utility"});
    // One configured id and no message: that id's (closed) window.
    let answer = app.check(&t, check.clone()).await;
    assert_eq!(
        answer.body["window"],
        json!({"open": false, "closes_at": null, "business_phone_number_id": PHONE_NUMBER_ID})
    );
    let wrote = app
        .post(
            "/v1/interactions",
            &t.sender,
            &json!({"number": NUMBER, "business_phone_number_id": PHONE_NUMBER_ID,
                    "received_at": at(-60)}),
        )
        .await;
    assert_eq!(wrote.status, StatusCode::OK, "{}", wrote.body);
    let answer = app.check(&t, check.clone()).await;
    assert_eq!(answer.body["window"]["open"], true);
    assert_eq!(answer.body["session_reply_allowed"], true);
    // A second configured id the person never wrote to: with no id named,
    // the latest window is reported, but a free-form reply is not allowed.
    let put = app
        .put(
            "/v1/channels",
            &t.admin,
            &configure(&[PHONE_NUMBER_ID, "206540352242999"]),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let answer = app.check(&t, check.clone()).await;
    assert_eq!(answer.body["window"]["open"], true);
    assert_eq!(
        answer.body["window"]["business_phone_number_id"],
        PHONE_NUMBER_ID
    );
    assert_eq!(answer.body["session_reply_allowed"], false);
    let mut named = check.clone();
    named["business_phone_number_id"] = json!("206540352242999");
    let answer = app.check(&t, named).await;
    assert_eq!(answer.body["window"]["open"], false);
    assert_eq!(answer.body["session_reply_allowed"], false);
    // The same in a batch.
    let batch = app
        .post("/v1/checks/batch", &t.sender, &json!({"checks": [check]}))
        .await;
    assert_eq!(batch.body["decisions"][0]["session_reply_allowed"], false);
}

/// A batch reads its numbers together; every item must still answer
/// exactly what the same single check answers: opted in, opted out,
/// erased (suppressed), unknown, with an open window or a window of
/// another business number, national numbers, duplicates and errors.
#[both(pgbouncer)]
async fn every_batch_item_answers_what_a_single_check_answers() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    app.add_brand(&t, "Metro").await;
    let numbers: Vec<String> = (0..8).map(|i| format!("+4915170000{i:03}")).collect();
    for n in &numbers[..6] {
        app.recorded_opt_in(&t, web_opt_in(n, "Makro", &["marketing"]))
            .await;
    }
    app.recorded_opt_out(&t, api_opt_out(&numbers[1])).await;
    let erased = app
        .post(
            "/v1/subjects/erase",
            &t.admin,
            &json!({"number": numbers[2]}),
        )
        .await;
    assert_eq!(erased.status, StatusCode::CREATED);
    for (n, id) in [
        (&numbers[3], json!(null)),
        (&numbers[4], json!("106540352242922")),
        (&numbers[6], json!(null)),
    ] {
        let mut interaction = json!({"number": n, "received_at": at(-30)});
        if !id.is_null() {
            interaction["business_phone_number_id"] = id;
        }
        let answer = app
            .post("/v1/interactions", &t.collector, &interaction)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let mut checks = Vec::new();
    for n in &numbers {
        for brand in ["Makro", "Metro"] {
            checks.push(json!({"number": n, "purpose": "marketing", "brand": brand}));
            checks
                .push(json!({"number": n, "purpose": "utility", "brand": brand, "channel": "sms"}));
            checks.push(json!({"number": n, "purpose": "marketing", "brand": brand,
                               "business_phone_number_id": "106540352242922"}));
        }
    }
    checks.push(json!({"number": "0151 70000000", "region": "DE", "purpose": "marketing", "brand": "Makro"}));
    checks.push(json!({"number": numbers[0], "purpose": "marketing", "brand": "Makro"}));
    checks.push(json!({"number": "not a number", "purpose": "marketing", "brand": "Makro"}));
    // Shaped like E.164 but not a valid number, known or not; with a region.
    checks.push(json!({"number": "+4900000000", "purpose": "marketing", "brand": "Makro"}));
    checks.push(json!({"number": "+999123456789", "purpose": "marketing", "brand": "Makro"}));
    checks.push(
        json!({"number": numbers[0], "region": "DE", "purpose": "marketing", "brand": "Makro"}),
    );
    checks.push(
        json!({"number": numbers[0], "region": "XX", "purpose": "marketing", "brand": "Makro"}),
    );
    checks.push(json!({"number": "+4900000000", "purpose": "marketing", "brand": "Nobody"}));
    checks.push(json!({"number": numbers[0], "purpose": "marketing", "brand": "Nobody"}));
    checks.push(json!({"number": numbers[0], "purpose": "nothing"}));
    let batch = app
        .post("/v1/checks/batch", &t.sender, &json!({"checks": checks}))
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
    let decisions = batch.body["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), checks.len());
    let mut reasons = std::collections::BTreeSet::new();
    for (check, in_batch) in checks.iter().zip(decisions) {
        let single = app.check(&t, check.clone()).await;
        if single.status == StatusCode::OK {
            assert_eq!(in_batch, &single.body, "{check}");
            reasons.insert(single.body["reason"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(in_batch["error"]["code"], single.body["code"], "{check}");
            assert_eq!(
                in_batch["error"]["reason"].as_str(),
                single.field_code("number").as_deref(),
                "{check}"
            );
        }
    }
    let seen: Vec<&str> = reasons.iter().map(String::as_str).collect();
    assert_eq!(
        seen,
        [
            "allowed",
            "brand_mismatch",
            "no_opt_in",
            "opted_out",
            "purpose_not_covered"
        ]
    );
    assert!(decisions.iter().any(|d| d["window"]["open"] == true));
}

/// A number sent in canonical E.164 is looked up as it is, and still
/// checked against the numbering plan when the tenant holds nothing of it.
#[both(pgbouncer)]
async fn canonical_numbers_the_tenant_does_not_hold_are_still_validated() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let known = app
        .check(&t, json!({"number": NUMBER, "purpose": "marketing"}))
        .await;
    assert_eq!(known.body["reason"], "allowed", "{}", known.body);
    for invalid in ["+4912", "+999123456789", "+1000"] {
        let answer = app
            .check(&t, json!({"number": invalid, "purpose": "marketing"}))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{invalid}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "invalid_number", "{invalid}");
    }
    let valid_unknown = app
        .check(
            &t,
            json!({"number": "+4915199999998", "purpose": "marketing"}),
        )
        .await;
    assert_eq!(
        valid_unknown.body["reason"], "no_opt_in",
        "{}",
        valid_unknown.body
    );
}

/// A batch item's error echoes what was sent: a `user_id` that is present
/// even as null, else the `number` (null when missing or when the item is
/// not an object).
#[both(pgbouncer)]
async fn batch_errors_echo_the_item_as_sent() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let checks = json!({"checks": [
        {"user_id": null, "purpose": "marketing"},
        {"number": 4915112345678u64, "purpose": "marketing"},
        5,
        {"user_id": "DE.1", "number": NUMBER, "purpose": "marketing"}
    ]});
    let answer = app.post("/v1/checks/batch", &t.sender, &checks).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let d = answer.body["decisions"].as_array().unwrap();
    assert_eq!(d.len(), 4);
    assert!(d[0].get("user_id").is_some_and(Value::is_null), "{}", d[0]);
    assert!(d[0].get("number").is_none(), "{}", d[0]);
    assert_eq!(d[1]["number"], 4915112345678u64);
    assert!(d[2].get("number").is_some_and(Value::is_null), "{}", d[2]);
    assert_eq!(d[3]["user_id"], "DE.1");
    for item in d {
        assert!(item["error"]["code"].is_string(), "{item}");
    }
}
