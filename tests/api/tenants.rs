//! Tenants, brands, keys, roles (401/403) and tenant isolation (404).

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

#[both]
async fn creating_a_tenant_hands_out_its_log_verifier_key_and_admin_key() {
    let app = spawn_app().await;
    let created = app
        .post(
            "/v1/tenants",
            OPERATOR_TOKEN,
            &json!({"id": "makro", "brand": "Makro"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["tenant"], "makro");
    assert_eq!(created.body["log"], "ledger.test/makro");
    let vkey = created.body["verifier_key"].as_str().unwrap();
    let parts: Vec<&str> = vkey.split('+').collect();
    assert_eq!(parts[0], "ledger.test/makro");
    assert_eq!(parts[1].len(), 8);
    assert!(
        parts[2].starts_with('A'),
        "base64 of 0x01 ‖ key starts with A"
    );
    let key = created.body["admin_key"]["key"].as_str().unwrap();
    let id = created.body["admin_key"]["id"].as_str().unwrap();
    assert_eq!(created.body["admin_key"]["roles"], json!(["admin"]));
    assert!(key.starts_with(&id.replace("key_", "clk_")));
    assert_eq!(key.len(), 60);
    // Ids are never reused.
    let again = app
        .post(
            "/v1/tenants",
            OPERATOR_TOKEN,
            &json!({"id": "makro", "brand": "Other"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "tenant_exists");
    let bad = app
        .post(
            "/v1/tenants",
            OPERATOR_TOKEN,
            &json!({"id": "Makro!", "brand": "Makro"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.field_code("id").as_deref(), Some("invalid_value"));
    let settings = app.get("/v1/tenant", key).await;
    assert_eq!(settings.status, StatusCode::OK);
    assert_eq!(settings.body["verifier_key"], vkey);
    assert_eq!(settings.body["tree_size"], 0);
}

#[both]
async fn only_the_operator_creates_tenants() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let body = json!({"id": "other", "brand": "Other"});
    let with_admin = app.post("/v1/tenants", &t.admin, &body).await;
    assert_eq!(with_admin.status, StatusCode::FORBIDDEN);
    let unknown_key = format!("clk_000000000000_{}", "A".repeat(43));
    let unknown = app.post("/v1/tenants", &unknown_key, &body).await;
    assert_eq!(
        unknown.status,
        StatusCode::UNAUTHORIZED,
        "an unknown key is bad credentials"
    );
    let wrong = app.post("/v1/tenants", "clo_wrong", &body).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.headers.get("www-authenticate").unwrap(), "Bearer");
    let none = app
        .client
        .post(app.url("/v1/tenants"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
}

#[both]
async fn roles_gate_every_operation() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let opt_in = web_opt_in(NUMBER, "Makro", &["marketing"]);
    let check = json!({"number": NUMBER, "purpose": "marketing"});
    let interaction = json!({"number": NUMBER});
    let query = json!({"number": NUMBER});
    // (key, path, body, expected status)
    let cases = [
        (&t.sender, "/v1/opt-ins", &opt_in, StatusCode::FORBIDDEN),
        (&t.auditor, "/v1/opt-ins", &opt_in, StatusCode::FORBIDDEN),
        (&t.collector, "/v1/opt-ins", &opt_in, StatusCode::CREATED),
        (&t.admin, "/v1/opt-ins", &opt_in, StatusCode::CREATED),
        (&t.collector, "/v1/checks", &check, StatusCode::FORBIDDEN),
        (&t.auditor, "/v1/checks", &check, StatusCode::FORBIDDEN),
        (&t.sender, "/v1/checks", &check, StatusCode::OK),
        (
            &t.auditor,
            "/v1/interactions",
            &interaction,
            StatusCode::FORBIDDEN,
        ),
        (&t.sender, "/v1/interactions", &interaction, StatusCode::OK),
        (
            &t.collector,
            "/v1/interactions",
            &interaction,
            StatusCode::OK,
        ),
        (
            &t.sender,
            "/v1/subjects/query",
            &query,
            StatusCode::FORBIDDEN,
        ),
        (&t.auditor, "/v1/subjects/query", &query, StatusCode::OK),
        (
            &t.collector,
            "/v1/keys",
            &json!({"name": "x", "roles": ["sender"]}),
            StatusCode::FORBIDDEN,
        ),
        (
            &t.collector,
            "/v1/brands",
            &json!({"name": "Metro"}),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (key, path, body, expected) in cases {
        let answer = app.post(path, key, body).await;
        assert_eq!(answer.status, expected, "{path}: {}", answer.body);
        if expected == StatusCode::FORBIDDEN {
            assert_eq!(answer.code(), "forbidden");
            assert_eq!(answer.content_type(), "application/problem+json");
        }
    }
    assert_eq!(
        app.get("/v1/entries/0", &t.sender).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/v1/entries/0", &t.auditor).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/v1/tenant", &t.auditor).await.status,
        StatusCode::FORBIDDEN
    );
    // 401: none, garbage, a well-formed but unknown key, a tampered secret.
    let none = app
        .client
        .post(app.url("/v1/checks"))
        .json(&check)
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.post("/v1/checks", "nonsense", &check).await.status,
        StatusCode::UNAUTHORIZED
    );
    let unknown = format!("clk_000000000000_{}", "A".repeat(43));
    assert_eq!(
        app.post("/v1/checks", &unknown, &check).await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut tampered = t.sender.clone();
    let last = if tampered.ends_with('A') { 'B' } else { 'A' };
    tampered.pop();
    tampered.push(last);
    let answer = app.post("/v1/checks", &tampered, &check).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.code(), "unauthorized");
}

#[both]
async fn tenants_never_see_each_other() {
    let app = spawn_app().await;
    let a = app.tenant("alpha", "Alpha").await;
    let b = app.tenant("beta", "Beta").await;
    app.recorded_opt_in(&a, web_opt_in(NUMBER, "Alpha", &["marketing"]))
        .await;
    // B's entry 0 does not exist even though A's does.
    assert_eq!(
        app.get("/v1/entries/0", &b.auditor).await.status,
        StatusCode::NOT_FOUND
    );
    let query = app
        .post("/v1/subjects/query", &b.auditor, &json!({"number": NUMBER}))
        .await;
    assert_eq!(query.status, StatusCode::NOT_FOUND);
    // B cannot name A's brand, nor see A's consent.
    let d = app
        .check(
            &b,
            json!({"number": NUMBER, "purpose": "marketing", "brand": "Alpha"}),
        )
        .await;
    assert_eq!(d.code(), "unknown_brand");
    assert_eq!(
        app.reason(&b, json!({"number": NUMBER, "purpose": "marketing"}))
            .await,
        "no_opt_in"
    );
    // B cannot revoke or retire A's things: 404, not 403.
    let a_keys = app.get("/v1/keys", &a.admin).await;
    let a_key_id = a_keys.body["keys"][0]["id"].as_str().unwrap().to_owned();
    let revoke = app.delete(&format!("/v1/keys/{a_key_id}"), &b.admin).await;
    assert_eq!(revoke.status, StatusCode::NOT_FOUND);
    let retire = app
        .post("/v1/brands/Alpha/retire", &b.admin, &json!({}))
        .await;
    assert_eq!(retire.status, StatusCode::NOT_FOUND);
    // B's key listing holds only B's keys.
    let b_keys = app.get("/v1/keys", &b.admin).await;
    assert!(b_keys.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["id"] != a_key_id.as_str()));
    // Subjects are per tenant: the same number has different pseudonyms.
    let b_seq = app
        .recorded_opt_in(&b, web_opt_in(NUMBER, "Beta", &["marketing"]))
        .await;
    let a_entry = app.get("/v1/entries/0", &a.auditor).await;
    let b_entry = app.get(&format!("/v1/entries/{b_seq}"), &b.auditor).await;
    assert_ne!(
        a_entry.body["entry"]["subject"],
        b_entry.body["entry"]["subject"]
    );
    assert_ne!(
        a_entry.body["openings"]["subject"]["salt"],
        b_entry.body["openings"]["subject"]["salt"]
    );
}

#[both]
async fn keys_are_listed_without_secrets_and_revoked_at_once() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let made = app
        .post(
            "/v1/keys",
            &t.admin,
            &json!({"name": "campaigns", "roles": ["sender", "sender", "auditor"]}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED);
    assert_eq!(made.body["roles"], json!(["sender", "auditor"]));
    let key = made.body["key"].as_str().unwrap().to_owned();
    let id = made.body["id"].as_str().unwrap().to_owned();
    let check = json!({"number": NUMBER, "purpose": "marketing"});
    assert_eq!(
        app.post("/v1/checks", &key, &check).await.status,
        StatusCode::OK
    );
    let listed = app.get("/v1/keys", &t.admin).await;
    let text = listed.body.to_string();
    assert!(!text.contains(&key[17..]), "no secret in listings");
    let entry = listed.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["name"], "campaigns");
    assert_eq!(entry["roles"], json!(["sender", "auditor"]));
    assert_eq!(
        app.delete(&format!("/v1/keys/{id}"), &t.admin).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.post("/v1/checks", &key, &check).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.delete("/v1/keys/key_000000000000", &t.admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Refused: no roles, unknown role, expiry in the past.
    let none = app
        .post("/v1/keys", &t.admin, &json!({"name": "x", "roles": []}))
        .await;
    assert_eq!(none.field_code("roles").as_deref(), Some("empty"));
    let unknown = app
        .post(
            "/v1/keys",
            &t.admin,
            &json!({"name": "x", "roles": ["root"]}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    let past = app
        .post(
            "/v1/keys",
            &t.admin,
            &json!({"name": "x", "roles": ["sender"], "expires_at": at(-10)}),
        )
        .await;
    assert_eq!(
        past.field_code("expires_at").as_deref(),
        Some("in_the_past")
    );
}

/// An expiring key works until its `expires_at`, and from then on answers
/// 401 like a revoked one (docs/api.md).
#[both]
async fn an_expiring_key_works_until_it_expires() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    let check = json!({"number": NUMBER, "purpose": "marketing"});
    let soon = app
        .post(
            "/v1/keys",
            &t.admin,
            &json!({"name": "x", "roles": ["sender"], "expires_at": app.at(3600)}),
        )
        .await;
    assert_eq!(soon.status, StatusCode::CREATED, "{}", soon.body);
    let key = soon.body["key"].as_str().unwrap();
    assert_eq!(
        app.post("/v1/checks", key, &check).await.status,
        StatusCode::OK
    );
    app.clock.advance(3_599_999);
    assert_eq!(
        app.post("/v1/checks", key, &check).await.status,
        StatusCode::OK
    );
    app.clock.advance(1);
    let expired = app.post("/v1/checks", key, &check).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED, "{}", expired.body);
    assert_eq!(expired.code(), "unauthorized");
    // The other keys, without an expiry, still work.
    assert_eq!(app.check(&t, check).await.status, StatusCode::OK);
}

/// `last_used_at` is set on first use and moved at most once a minute.
#[both]
async fn last_used_at_moves_at_most_once_a_minute() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    let check = json!({"number": NUMBER, "purpose": "marketing"});
    let sender_id = |keys: &serde_json::Value| {
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["roles"] == json!(["sender"]))
            .unwrap()["last_used_at"]
            .clone()
    };
    // Written outside the request: wait for it, bounded.
    let wait_for = |expected: String| {
        let app = &app;
        let t = &t;
        async move {
            for _ in 0..100 {
                let keys = app.get("/v1/keys", &t.admin).await;
                if sender_id(&keys.body) == json!(expected) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("last_used_at never became {expected}");
        }
    };
    let first_use = app.at(0);
    assert_eq!(app.check(&t, check.clone()).await.status, StatusCode::OK);
    wait_for(first_use.clone()).await;
    app.clock.advance(61_000);
    assert_eq!(app.check(&t, check).await.status, StatusCode::OK);
    wait_for(app.at(0)).await;
}

#[both]
async fn the_last_admin_key_cannot_be_revoked() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let keys = app.get("/v1/keys", &t.admin).await;
    let admin_id = keys.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["roles"] == json!(["admin"]))
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .unwrap();
    let refused = app.delete(&format!("/v1/keys/{admin_id}"), &t.admin).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.code(), "last_admin_key");
    let second = app.new_key(&t.admin, &["admin"]).await;
    assert_eq!(
        app.delete(&format!("/v1/keys/{admin_id}"), &second)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/v1/tenant", &t.admin).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// An expiring admin key does not count as the tenant's last admin: the
/// last admin key without an expiry cannot be revoked (it would leave the
/// tenant without an admin once the other expires).
#[both]
async fn the_last_admin_key_without_an_expiry_cannot_be_revoked() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let made = app
        .post(
            "/v1/keys",
            &t.admin,
            &json!({"name": "temp admin", "roles": ["admin"], "expires_at": at(3600)}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let expiring = made.body["key"].as_str().unwrap().to_owned();
    let keys = app.get("/v1/keys", &t.admin).await;
    let permanent_id = keys.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["roles"] == json!(["admin"]) && k["expires_at"].is_null())
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .unwrap();
    let refused = app
        .delete(&format!("/v1/keys/{permanent_id}"), &expiring)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.code(), "last_admin_key");
    // The expiring one may go: the permanent one stays.
    let expiring_id = made.body["id"].as_str().unwrap();
    let revoked = app
        .delete(&format!("/v1/keys/{expiring_id}"), &t.admin)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
}

/// Secrets shown once are never cached, and no answer is sniffed as
/// another content type (issue 13).
#[both]
async fn answers_carry_no_store_and_nosniff() {
    let app = spawn_app().await;
    let created = app
        .post(
            "/v1/tenants",
            OPERATOR_TOKEN,
            &json!({"id": "makro", "brand": "Makro"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.headers["cache-control"], "no-store");
    let admin = created.body["admin_key"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = admin.as_str();
    let key = app
        .post(
            "/v1/keys",
            admin,
            &json!({"name": "k", "roles": ["sender"]}),
        )
        .await;
    assert_eq!(key.headers["cache-control"], "no-store");
    for answer in [
        created,
        key,
        app.get("/healthz", "").await,
        app.get("/v1/nowhere", "").await,
        app.get("/v1/keys", admin).await,
    ] {
        assert_eq!(answer.headers["x-content-type-options"], "nosniff");
    }
}

#[both]
async fn brands_are_unique_case_insensitively_and_validated() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    app.add_brand(&t, "Makro Cash & Carry").await;
    let dup = app
        .post("/v1/brands", &t.admin, &json!({"name": "MAKRO"}))
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.code(), "brand_exists");
    for bad in ["", " Makro", &"x".repeat(101), "Tab\tName"] {
        let answer = app
            .post("/v1/brands", &t.admin, &json!({"name": bad}))
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
    }
    let list = app.get("/v1/brands", &t.admin).await;
    let names: Vec<&str> = list.body["brands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Makro", "Makro Cash & Carry"]);
    assert_eq!(
        app.post("/v1/brands/nope/retire", &t.admin, &json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[both]
async fn tenant_settings_are_validated() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let ok = app
        .patch(
            "/v1/tenant",
            &t.admin,
            &json!({"default_region": "br", "evidence_retention_days": 365}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["default_region"], "BR");
    assert_eq!(ok.body["evidence_retention_days"], 365);
    assert_eq!(ok.body["max_consent_age_days"], serde_json::Value::Null);
    for (body, field) in [
        (json!({"default_region": "XX"}), "default_region"),
        (json!({"max_consent_age_days": 0}), "max_consent_age_days"),
        (
            json!({"evidence_retention_days": -1}),
            "evidence_retention_days",
        ),
        (json!({"colour": "blue"}), "colour"),
    ] {
        let answer = app.patch("/v1/tenant", &t.admin, &body).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(answer.field_code(field).is_some(), "{}", answer.body);
    }
    let api = app
        .patch(
            "/v1/tenant",
            &t.admin,
            &json!({"require_confirmation_for": ["web", "api"]}),
        )
        .await;
    assert_eq!(
        api.field_code("require_confirmation_for").as_deref(),
        Some("invalid_value"),
        "opt-ins are never captured through `api`"
    );
    let confirm = app
        .patch(
            "/v1/tenant",
            &t.admin,
            &json!({"require_confirmation_for": ["web", "sms", "web"]}),
        )
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert_eq!(
        confirm.body["require_confirmation_for"],
        json!(["sms", "web"])
    );
    let unchanged = app.get("/v1/tenant", &t.admin).await;
    assert_eq!(unchanged.body["default_region"], "BR");
}
