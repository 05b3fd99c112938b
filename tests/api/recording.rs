//! Recording: every channel's evidence, the company-name rule, numbers,
//! timestamps and the entries the service writes.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn opt_in(channel: &str, evidence: Value) -> Value {
    json!({
        "number": NUMBER,
        "channel": channel,
        "company_name_shown": "Makro",
        "consent_text": "Yes, send me offers from Makro on WhatsApp. Reply STOP to end.",
        "purposes": ["marketing"],
        "captured_at": at(-10),
        "evidence": evidence
    })
}

/// Each channel's row: full evidence, and the required keys (or groups).
fn rows() -> Vec<(&'static str, Value, Vec<&'static str>)> {
    vec![
        (
            "sms",
            json!({"message_id": "SM1", "from_number_to": "+4930123456", "body": "JOIN"}),
            vec!["message_id", "from_number_to", "body"],
        ),
        (
            "web",
            json!({"page_url": "https://shop.example/a", "ip": "2001:db8::1", "user_agent": "UA"}),
            vec!["page_url", "ip", "user_agent"],
        ),
        (
            "whatsapp",
            json!({"message_id": "wamid.1", "business_phone_number_id": "1065", "body": "JOIN MAKRO"}),
            vec!["message_id", "business_phone_number_id", "body"],
        ),
        (
            "ivr",
            json!({"call_id": "CA1", "prompt_script": "Press 1 for offers from Makro", "dtmf": "1"}),
            vec!["call_id", "prompt_script", "dtmf"],
        ),
        (
            "paper",
            json!({"document_sha256": "a".repeat(64), "signer_name": "J. Doe", "signed_on": today(), "collected_by": "store-1"}),
            vec![
                "document_sha256",
                "signer_name",
                "signed_on",
                "collected_by",
            ],
        ),
    ]
}

#[both(pgbouncer)]
async fn each_channels_evidence_is_accepted_and_each_missing_key_refused() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    for (channel, evidence, required) in rows() {
        let ok = app.opt_in(&t, opt_in(channel, evidence.clone())).await;
        assert_eq!(ok.status, StatusCode::CREATED, "{channel}: {}", ok.body);
        for key in required {
            let mut partial = evidence.clone();
            partial.as_object_mut().unwrap().remove(key);
            let refused = app.opt_in(&t, opt_in(channel, partial)).await;
            assert_eq!(
                refused.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{channel} without {key}"
            );
            assert_eq!(refused.code(), "invalid_evidence");
            let named = refused.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["code"] == "required" && e["field"].as_str().unwrap().contains(key));
            assert!(named, "{channel} without {key}: {}", refused.body);
        }
    }
    // "a or b": either alternative satisfies the group.
    let button = opt_in(
        "whatsapp",
        json!({"message_id": "w2", "business_phone_number_id": "1065", "button_payload": "OPTIN"}),
    );
    assert_eq!(app.opt_in(&t, button).await.status, StatusCode::CREATED);
    let speech = opt_in(
        "ivr",
        json!({"call_id": "CA2", "prompt_script": "Say yes", "speech_transcript": "yes"}),
    );
    assert_eq!(app.opt_in(&t, speech).await.status, StatusCode::CREATED);
    // A key of another channel's row is refused.
    let foreign = app
        .opt_in(&t, opt_in("sms", json!({"message_id": "SM2", "from_number_to": "+4930123456", "body": "JOIN", "ip": "1.2.3.4"})))
        .await;
    assert_eq!(foreign.code(), "invalid_evidence");
    assert_eq!(
        foreign.field_code("evidence.ip").as_deref(),
        Some("not_allowed_for_channel")
    );
    // Values are strings.
    let typed = app
        .opt_in(
            &t,
            opt_in(
                "ivr",
                json!({"call_id": "CA3", "prompt_script": "p", "dtmf": 1}),
            ),
        )
        .await;
    assert_eq!(
        typed.field_code("evidence.dtmf").as_deref(),
        Some("must_be_string")
    );
    // A paper document_id names an upload, and there is none.
    let doc = app
        .opt_in(&t, opt_in("paper", json!({"document_sha256": "a".repeat(64), "signer_name": "J", "signed_on": today(), "collected_by": "s", "document_id": "doc_0123456789ab"})))
        .await;
    assert_eq!(doc.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(doc.code(), "unknown_document");
    // For paper, captured_at is when the form was signed: the dates agree.
    let stale = opt_in(
        "paper",
        json!({"document_sha256": "a".repeat(64), "signer_name": "J", "signed_on": "2026-01-05", "collected_by": "s"}),
    );
    let refused = app.opt_in(&t, stale).await;
    assert_eq!(refused.code(), "invalid_evidence");
    assert_eq!(
        refused.field_code("evidence.signed_on").as_deref(),
        Some("not_captured_at_date")
    );
}

#[both(pgbouncer)]
async fn opt_out_evidence_rows() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let out = |channel: &str, evidence: Value| json!({"number": NUMBER, "channel": channel, "captured_at": at(0), "evidence": evidence});
    for (channel, evidence) in [
        ("sms", json!({"message_id": "SM9", "body": "STOP"})),
        ("whatsapp", json!({"message_id": "wamid.9", "body": "stop"})),
        (
            "whatsapp",
            json!({"business_phone_number_id": "1065", "preference": "stop"}),
        ),
        (
            "web",
            json!({"reason": "unsubscribe link", "page_url": "https://shop.example/u"}),
        ),
        ("ivr", json!({"reason": "pressed 9", "call_id": "CA9"})),
        ("paper", json!({"reason": "letter"})),
        ("api", json!({"reason": "asked the call centre"})),
    ] {
        let answer = app.opt_out(&t, out(channel, evidence.clone())).await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{channel} {evidence}: {}",
            answer.body
        );
    }
    let missing = app.opt_out(&t, out("api", json!({}))).await;
    assert_eq!(missing.code(), "invalid_evidence");
    assert_eq!(
        missing.field_code("evidence.reason").as_deref(),
        Some("required")
    );
    // Opt-outs are never refused for age.
    let mut old = api_opt_out(NUMBER);
    old["captured_at"] = json!(days_ago(400));
    assert_eq!(app.opt_out(&t, old).await.status, StatusCode::CREATED);
}

#[both(pgbouncer)]
async fn the_company_name_must_be_an_active_brand_named_in_the_text() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let with = |shown: &str, text: &str| {
        let mut body = web_opt_in(NUMBER, shown, &["marketing"]);
        body["consent_text"] = json!(text);
        body
    };
    // Case and whole-word: "MAKRO" counts, "Makrone" does not.
    assert_eq!(
        app.opt_in(&t, with("Makro", "Offers from MAKRO, weekly."))
            .await
            .status,
        StatusCode::CREATED
    );
    let not_whole = app
        .opt_in(&t, with("Makro", "Offers from Makrone, weekly."))
        .await;
    assert_eq!(not_whole.code(), "company_name_not_in_text");
    let absent = app.opt_in(&t, with("Makro", "Offers from us.")).await;
    assert_eq!(absent.code(), "company_name_not_in_text");
    // The shown name must be exactly a brand (after NFC), not a case variant.
    let case = app.opt_in(&t, with("MAKRO", "Offers from MAKRO.")).await;
    assert_eq!(case.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(case.code(), "unknown_brand");
    let other = app.opt_in(&t, with("Metro", "Offers from Metro.")).await;
    assert_eq!(other.code(), "unknown_brand");
}

#[both(pgbouncer)]
async fn national_numbers_with_a_region_and_every_invalid_reason() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let mut body = web_opt_in("0151 12345678", "Makro", &["marketing"]);
    body["region"] = json!("de");
    app.recorded_opt_in(&t, body).await;
    // The same person, asked in E.164 and in national form.
    assert_eq!(
        app.reason(&t, json!({"number": NUMBER, "purpose": "marketing"}))
            .await,
        "allowed"
    );
    let national = app
        .check(
            &t,
            json!({"number": "(0151) 1234-5678", "region": "DE", "purpose": "marketing"}),
        )
        .await;
    assert_eq!(national.body["number"], NUMBER);
    assert_eq!(national.body["reason"], "allowed");
    for (number, region, reason) in [
        ("0151 12345678", None, "missing_region"),
        ("0151 12345678", Some("XY"), "invalid_region"),
        ("call me", None, "not_a_number"),
        ("+999 123456789", None, "invalid_country_code"),
        ("+49 1", None, "too_short"),
        ("+49 1511 2345 6789 0123 45", None, "too_long"),
        ("+1 415 055 2671", None, "not_valid_number"),
    ] {
        let mut check = json!({"number": number, "purpose": "marketing"});
        if let Some(region) = region {
            check["region"] = json!(region);
        }
        let answer = app.check(&t, check).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{number}");
        assert_eq!(answer.code(), "invalid_number");
        assert_eq!(
            answer.field_code("number").as_deref(),
            Some(reason),
            "{number}: {}",
            answer.body
        );
        assert!(
            !answer.body.to_string().contains(number),
            "the number is not echoed"
        );
    }
    // The tenant's default region applies to national numbers.
    app.patch("/v1/tenant", &t.admin, &json!({"default_region": "de"}))
        .await;
    let defaulted = app
        .check(
            &t,
            json!({"number": "015112345678", "purpose": "marketing"}),
        )
        .await;
    assert_eq!(defaulted.body["number"], NUMBER);
}

#[both(pgbouncer)]
async fn timestamps_in_other_offsets_and_precisions_are_canonicalised() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let base = chrono::Utc::now() - chrono::Duration::hours(1);
    let plus_two = base.with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap());
    let input = format!("{}.123456789+02:00", plus_two.format("%Y-%m-%dT%H:%M:%S"));
    let expected = format!("{}.123Z", base.format("%Y-%m-%dT%H:%M:%S"));
    let mut body = web_opt_in(NUMBER, "Makro", &["marketing"]);
    body["captured_at"] = json!(input);
    let seq = app.recorded_opt_in(&t, body).await;
    let entry = app.get(&format!("/v1/entries/{seq}"), &t.auditor).await;
    assert_eq!(entry.body["entry"]["captured_at"], expected.as_str());
    let d = app
        .check(&t, json!({"number": NUMBER, "purpose": "marketing"}))
        .await;
    assert_eq!(d.body["consent"]["captured_at"], expected.as_str());
    // No fraction and a negative offset.
    let minus = base.with_timezone(&chrono::FixedOffset::west_opt(5 * 3600 + 30 * 60).unwrap());
    let mut body = web_opt_in(NUMBER, "Makro", &["utility"]);
    body["captured_at"] = json!(minus.format("%Y-%m-%dT%H:%M:%S-05:30").to_string());
    let seq = app.recorded_opt_in(&t, body).await;
    let entry = app.get(&format!("/v1/entries/{seq}"), &t.auditor).await;
    assert_eq!(
        entry.body["entry"]["captured_at"],
        format!("{}.000Z", base.format("%Y-%m-%dT%H:%M:%S"))
    );
    // Refused: no offset, ten fraction digits, a date only, the future, too old.
    for bad in [
        "2026-11-20T10:00:00",
        "2026-11-20T10:00:00.1234567890Z",
        "2026-11-20",
    ] {
        let mut body = web_opt_in(NUMBER, "Makro", &["marketing"]);
        body["captured_at"] = json!(bad);
        let answer = app.opt_in(&t, body).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(
            answer.field_code("captured_at").as_deref(),
            Some("invalid_timestamp"),
            "{bad}"
        );
    }
    let mut future = web_opt_in(NUMBER, "Makro", &["marketing"]);
    future["captured_at"] = json!(at(120));
    assert_eq!(app.opt_in(&t, future).await.code(), "captured_at_in_future");
    let mut old = web_opt_in(NUMBER, "Makro", &["marketing"]);
    old["captured_at"] = json!(days_ago(31));
    assert_eq!(
        app.opt_in(&t, old.clone()).await.code(),
        "captured_at_too_old"
    );
    // Backfill needs the admin role.
    old["backfill"] = json!(true);
    let collector = app.opt_in(&t, old.clone()).await;
    assert_eq!(collector.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.post("/v1/opt-ins", &t.admin, &old).await.status,
        StatusCode::CREATED
    );
}

#[both(pgbouncer)]
async fn entries_chain_commit_and_open() {
    use sha2::{Digest, Sha256};
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let mut body = web_opt_in(NUMBER, "Makro", &["utility", "marketing", "utility"]);
    body["language"] = json!("en");
    body["message_channels"] = json!(["whatsapp", "sms", "whatsapp"]);
    let first = app.opt_in(&t, body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = app.opt_out(&t, api_opt_out(NUMBER)).await;
    assert_eq!(second.body["seq"], 1);
    assert_eq!(
        first.body["subject"], second.body["subject"],
        "one pseudonym per person"
    );
    let e0 = app.get("/v1/entries/0", &t.auditor).await;
    let e1 = app.get("/v1/entries/1", &t.auditor).await;
    assert_eq!(e0.status, StatusCode::OK);
    let entry = &e0.body["entry"];
    assert_eq!(entry["v"], 1);
    assert_eq!(entry["log"], t.log.as_str());
    assert_eq!(t.log, "ledger.test/makro");
    assert_eq!(entry["seq"], 0);
    assert_eq!(entry["prev"], "0".repeat(64));
    assert_eq!(entry["type"], "opt_in");
    assert_eq!(entry["purposes"], json!(["marketing", "utility"]));
    assert_eq!(entry["message_channels"], json!(["sms", "whatsapp"]));
    assert_eq!(entry["language"], "en");
    assert!(entry.get("backfill").is_none() && entry.get("confirmation_required").is_none());
    assert_eq!(entry["collector"].as_str().unwrap().len(), 16);
    assert!(entry["collector"].as_str().unwrap().starts_with("key_"));
    assert_eq!(e1.body["entry"]["prev"], e0.body["leaf_hash"]);
    assert_eq!(e0.body["leaf_hash"], first.body["leaf_hash"]);
    assert_eq!(entry["recorded_at"], first.body["recorded_at"]);
    // The leaf hash is SHA-256(0x00 ‖ JCS(entry)): recompute it from the entry.
    let canonical = serde_jcs::to_string(entry).unwrap();
    let mut leaf = Sha256::new();
    leaf.update([0u8]);
    leaf.update(canonical.as_bytes());
    assert_eq!(
        hex::encode(leaf.finalize()),
        e0.body["leaf_hash"].as_str().unwrap()
    );
    // The openings open the commitments.
    let openings = &e0.body["openings"];
    assert_eq!(openings["erased"], false);
    assert_eq!(openings["subject"]["e164"], NUMBER);
    let salt = openings["subject"]["salt"].as_str().unwrap();
    assert_eq!(salt.len(), 64);
    let subject = Sha256::digest(format!("consent-ledger/subject/v1\n{salt}\n{NUMBER}"));
    assert_eq!(hex::encode(subject), entry["subject"].as_str().unwrap());
    let ev_salt = openings["evidence"]["salt"].as_str().unwrap();
    assert_ne!(ev_salt, salt, "each evidence object has its own salt");
    assert_eq!(openings["evidence"]["body"], body["evidence"]);
    let ev_jcs = serde_jcs::to_string(&openings["evidence"]["body"]).unwrap();
    let evidence = Sha256::digest(format!("consent-ledger/evidence/v1\n{ev_salt}\n{ev_jcs}"));
    assert_eq!(
        hex::encode(evidence),
        entry["evidence_sha256"].as_str().unwrap()
    );
    assert_eq!(openings["consent_text"], body["consent_text"]);
    let text_hash = Sha256::digest(body["consent_text"].as_str().unwrap().as_bytes());
    assert_eq!(
        hex::encode(text_hash),
        entry["consent_text_sha256"].as_str().unwrap()
    );
    // The opt-out's defaults: all purposes and message channels.
    assert_eq!(
        e1.body["entry"]["purposes"],
        json!(["authentication", "marketing", "utility"])
    );
    assert_eq!(
        e1.body["entry"]["message_channels"],
        json!(["sms", "whatsapp"])
    );
    assert_eq!(e1.body["openings"]["consent_text"], Value::Null);
    // Unknown seq.
    assert_eq!(
        app.get("/v1/entries/2", &t.auditor).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/entries/abc", &t.auditor).await.status,
        StatusCode::NOT_FOUND
    );
}

#[both(pgbouncer)]
async fn subject_query_reports_consents_and_history() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let mut out = api_opt_out(NUMBER);
    out["message_channels"] = json!(["sms"]);
    app.recorded_opt_out(&t, out).await;
    let report = app
        .post("/v1/subjects/query", &t.auditor, &json!({"number": NUMBER}))
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    assert_eq!(report.body["number"], NUMBER);
    assert_eq!(report.body["history"].as_array().unwrap().len(), 2);
    assert_eq!(
        report.body["history"][0]["entry"]["subject"],
        report.body["subject"]
    );
    let consents = report.body["consents"].as_array().unwrap();
    assert_eq!(consents.len(), 6, "3 purposes x 1 brand x 2 channels");
    let status = |purpose: &str, channel: &str| {
        consents
            .iter()
            .find(|c| c["purpose"] == purpose && c["message_channel"] == channel)
            .map(|c| c["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(status("marketing", "whatsapp"), "allowed");
    assert_eq!(status("marketing", "sms"), "opted_out");
    assert_eq!(status("utility", "whatsapp"), "purpose_not_covered");
    let unknown = app
        .post(
            "/v1/subjects/query",
            &t.auditor,
            &json!({"number": "+4915199999999"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let wrong_role = app
        .post("/v1/subjects/query", &t.sender, &json!({"number": NUMBER}))
        .await;
    assert_eq!(wrong_role.status, StatusCode::FORBIDDEN);
}

/// `recorded_at` is max(server now, the previous entry's): a clock stepped
/// back (NTP, a VM restored) never makes the log's times run backwards.
#[both(pgbouncer)]
async fn recorded_at_never_decreases_when_the_clock_steps_back() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    let start = app.at(0);
    let mut body = web_opt_in(NUMBER, "Makro", &["marketing"]);
    body["captured_at"] = json!(app.at(-3600));
    let first = app.opt_in(&t, body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["recorded_at"], start);
    app.clock.advance(-600_000);
    let mut out = api_opt_out(NUMBER);
    out["captured_at"] = json!(app.at(-60));
    let second = app.opt_out(&t, out.clone()).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    assert_eq!(
        second.body["recorded_at"], start,
        "held at the previous entry's"
    );
    let entry = app.get("/v1/entries/1", &t.auditor).await;
    assert_eq!(entry.body["entry"]["recorded_at"], start);
    // Once the clock passes it again, entries carry the clock's time.
    app.clock.advance(900_000);
    let third = app.opt_out(&t, out).await;
    assert_eq!(third.body["recorded_at"], app.at(0));
}
