//! The audit trail (docs/privacy.md): `GET /v1/audit-events` (admin), per
//! tenant, append-only and numbered without gaps, with everything the spec
//! lists, and never a number, key, salt, secret or evidence body in it.

use crate::channels::{hub_signature, settings, WA_PREVIOUS, WA_SECRET};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const NUMBER: &str = "+4915199887766";
const AGENT: &str = "AuditProbe/1.0 (evidence body)";

/// Every event of a tenant's trail, walked page by page (`limit`).
async fn trail(app: &TestApp, admin: &str, limit: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .get(
                &format!("/v1/audit-events?after={after}&limit={limit}"),
                admin,
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let got = page.body["audit_events"].as_array().unwrap().clone();
        assert!(got.len() <= limit);
        events.extend(got);
        match page.body["next_after"].as_i64() {
            Some(next) => after = next,
            None => return events,
        }
    }
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

#[both]
async fn the_trail_records_what_the_spec_lists_and_nothing_secret() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let other = app.tenant("metro", "Metro").await;
    let mut secrets: Vec<String> = vec![
        NUMBER.into(),
        NUMBER[1..].into(),
        AGENT.into(),
        WA_SECRET.into(),
        WA_PREVIOUS.into(),
        OPERATOR_TOKEN.into(),
    ];
    for key in [&t.admin, &t.collector, &t.sender, &t.auditor] {
        secrets.push(key.clone());
    }
    let start = trail(&app, &t.admin, 100).await.len();

    // Keys, brands, channels, settings.
    let key = app.new_key(&t.admin, &["auditor"]).await;
    secrets.push(key.clone());
    let key_id = format!("key_{}", &key[4..16]);
    let revoked = app.delete(&format!("/v1/keys/{key_id}"), &t.admin).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    app.add_brand(&t, "Makro Pro").await;
    let retired = app
        .post("/v1/brands/Makro%20Pro/retire", &t.admin, &json!({}))
        .await;
    assert_eq!(retired.status, StatusCode::OK, "{}", retired.body);
    let put = app.put("/v1/channels", &t.admin, &settings()).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let patched = app
        .patch(
            "/v1/tenant",
            &t.admin,
            &json!({"evidence_retention_days": 365}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);

    // A backfill, and reads of openings.
    let mut opt_in = web_opt_in(NUMBER, "Makro", &["marketing"]);
    opt_in["captured_at"] = json!(days_ago(90));
    opt_in["backfill"] = json!(true);
    opt_in["evidence"]["user_agent"] = json!(AGENT);
    let backfilled = app.post("/v1/opt-ins", &t.admin, &opt_in).await;
    assert_eq!(
        backfilled.status,
        StatusCode::CREATED,
        "{}",
        backfilled.body
    );
    let seq = backfilled.body["seq"].as_u64().unwrap();
    let entry = app.get(&format!("/v1/entries/{seq}"), &t.auditor).await;
    secrets.push(
        entry.body["openings"]["subject"]["salt"]
            .as_str()
            .unwrap()
            .into(),
    );
    secrets.push(
        entry.body["openings"]["evidence"]["salt"]
            .as_str()
            .unwrap()
            .into(),
    );
    let receipt = app
        .get(&format!("/v1/entries/{seq}/receipt"), &t.auditor)
        .await;
    assert_eq!(receipt.status, StatusCode::OK);
    let query = app
        .post("/v1/subjects/query", &t.auditor, &json!({"number": NUMBER}))
        .await;
    assert_eq!(query.status, StatusCode::OK);
    let (status, _) = app.get_text("/v1/export", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get_text("/v1/export?openings=none", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post_text("/v1/export/dossier", &t.auditor, &json!({"number": NUMBER}))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Failures: a known key with a wrong secret, a key without the role, a
    // forged webhook.
    let wrong = format!(
        "{}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &t.sender[..17]
    );
    let bad = app.get("/v1/keys", &wrong).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let refused = app.get("/v1/keys", &t.sender).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#.to_vec();
    let forged = app
        .client
        .post(app.url("/webhooks/whatsapp/makro"))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            hub_signature("not-the-secret", &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // The erasure, with the admin's reason.
    let erased = app
        .post(
            "/v1/subjects/erase",
            &t.admin,
            &json!({"number": NUMBER, "reason": "ticket 4711"}),
        )
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);

    let events = trail(&app, &t.admin, 3).await;
    assert_eq!(
        kinds(&events[start..]),
        [
            "key.created",
            "key.revoked",
            "brand.created",
            "brand.retired",
            "channels.changed",
            "settings.changed",
            "backfill",
            "openings.read",
            "openings.read",
            "openings.read",
            "export.read",
            "export.read",
            "dossier.read",
            "authentication.failed",
            "authorization.refused",
            "webhook.signature_failed",
            "subject.erased",
        ]
    );
    // Numbered from 1 without gaps; the same walked with any page size.
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], i as u64 + 1, "{event}");
    }
    assert_eq!(trail(&app, &t.admin, 1000).await, events);
    assert_eq!(events[0]["kind"], "tenant.created");
    assert_eq!(events[0]["actor"], "operator");

    let admin_id = format!("key_{}", &t.admin[4..16]);
    let by_kind = |kind: &str| -> Vec<&Value> {
        events[start..]
            .iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    };
    let created = by_kind("key.created")[0];
    assert_eq!(created["actor"], admin_id);
    assert_eq!(created["details"]["key_id"], key_id);
    assert_eq!(created["details"]["roles"], json!(["auditor"]));
    let channels = &by_kind("channels.changed")[0]["details"];
    assert_eq!(
        channels["whatsapp"]["app_secret"],
        Value::Null,
        "{channels}"
    );
    assert_eq!(channels["whatsapp"]["app_secret_set"], true, "{channels}");
    let setting = &by_kind("settings.changed")[0]["details"];
    assert_eq!(setting["changed"], json!(["evidence_retention_days"]));
    assert_eq!(setting["evidence_retention_days"], 365);
    assert_eq!(by_kind("backfill")[0]["details"]["seq"], seq);
    let reads: Vec<&Value> = by_kind("openings.read")
        .iter()
        .map(|e| &e["details"]["via"])
        .collect();
    assert_eq!(
        reads,
        [&json!("entry"), &json!("receipt"), &json!("subjects/query")]
    );
    let exports: Vec<&Value> = by_kind("export.read")
        .iter()
        .map(|e| &e["details"]["openings"])
        .collect();
    assert_eq!(exports, [&json!(true), &json!(false)]);
    assert_eq!(
        by_kind("dossier.read")[0]["details"]["subject"],
        backfilled.body["subject"]
    );
    let failed = by_kind("authentication.failed")[0];
    assert_eq!(failed["actor"], "unauthenticated");
    assert_eq!(
        failed["details"]["key_id"],
        format!("key_{}", &t.sender[4..16])
    );
    assert_eq!(failed["details"]["refused"], "wrong_secret");
    assert_eq!(failed["details"]["route"], "GET /v1/keys");
    let refusal = by_kind("authorization.refused")[0];
    assert_eq!(refusal["actor"], format!("key_{}", &t.sender[4..16]));
    assert_eq!(
        by_kind("webhook.signature_failed")[0]["actor"],
        "webhook:whatsapp"
    );
    let erasure = by_kind("subject.erased")[0];
    assert_eq!(erasure["actor"], admin_id);
    assert_eq!(erasure["details"]["seq"], erased.body["seq"]);
    assert_eq!(erasure["details"]["subject"], backfilled.body["subject"]);
    assert_eq!(erasure["details"]["reason"], "request");
    assert_eq!(erasure["details"]["note"], "ticket 4711");

    // Nothing secret in it.
    let text = serde_json::to_string(&events).unwrap();
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{secret:?} is in the audit trail"
        );
    }

    // Per tenant: the other tenant sees its own creation only.
    // Per tenant: the other tenant's trail holds its creation and its three
    // keys, nothing of this one's.
    assert_eq!(start, 4);
    assert_eq!(
        kinds(&trail(&app, &other.admin, 100).await),
        [
            "tenant.created",
            "key.created",
            "key.created",
            "key.created"
        ]
    );
}

#[both]
async fn paging_is_checked() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    for query in ["limit=0", "limit=1001", "limit=-1"] {
        let answer = app
            .get(&format!("/v1/audit-events?{query}"), &t.admin)
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(answer.field_code("limit").as_deref(), Some("out_of_range"));
    }
    let past_the_end = app.get("/v1/audit-events?after=1000000", &t.admin).await;
    assert_eq!(past_the_end.status, StatusCode::OK);
    assert_eq!(
        past_the_end.body,
        json!({"audit_events": [], "next_after": null})
    );
}
