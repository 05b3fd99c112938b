//! Channels that record by themselves (docs/webhooks.md): settings, the
//! webhooks' handshake and signatures, and the helpers that post payloads
//! shaped like the providers' documented ones (`tests/fixtures/whatsapp/`).
//! What the messages mean: `inbound.rs`.

use crate::helpers::*;
use base64::Engine;
use hmac::{KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};

pub(crate) const WA_SECRET: &str = "3b1e0c9f5d2a4e6b8c7d9e0f1a2b3c4d";
pub(crate) const WA_PREVIOUS: &str = "old-app-secret-2026";
pub(crate) const VERIFY_TOKEN: &str = "verify-me-please";
pub(crate) const PHONE_NUMBER_ID: &str = "106540352242922";
pub(crate) const TW_TOKEN: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a0";
pub(crate) const TW_SECONDARY: &str = "secondary-token-2026";
pub(crate) const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub(crate) const TW_NUMBER: &str = "+4930123456";
pub(crate) const WEBHOOK_URL: &str = "https://hooks.example.com/webhooks/twilio/makro";

pub(crate) fn settings() -> Value {
    json!({
        "whatsapp": {
            "app_secret": WA_SECRET,
            "previous_app_secret": WA_PREVIOUS,
            "verify_token": VERIFY_TOKEN,
            "phone_numbers": [{"id": PHONE_NUMBER_ID, "display": "+4930123456"}],
            "opt_in": [
                {"match": "JOIN MAKRO", "brand": "Makro", "purposes": ["marketing"],
                 "prompt": "Send JOIN MAKRO to get offers from Makro on WhatsApp."},
                {"match": "JOIN", "brand": "Makro", "purposes": ["marketing"],
                 "prompt": "Reply JOIN to get offers from Makro."},
                {"match": "optin_marketing_yes", "brand": "Makro", "purposes": ["marketing"],
                 "prompt": "Tap to get offers from Makro on WhatsApp."},
                {"match": "OPTIN_UTILITY", "brand": "Makro", "purposes": ["utility"],
                 "prompt": "Tap to get order updates from Makro on WhatsApp."}
            ]
        },
        "twilio": {
            "auth_token": TW_TOKEN,
            "secondary_auth_token": TW_SECONDARY,
            "account_sid": ACCOUNT_SID,
            "webhook_url": WEBHOOK_URL,
            "numbers": [TW_NUMBER],
            "opt_in": [{"match": "JOIN", "brand": "Makro", "purposes": ["marketing"],
                        "message_channels": ["sms"],
                        "prompt": "Text JOIN to get offers from Makro. Reply STOP to end."}]
        },
        "opt_out_keywords": ["ARRET", "BAJA"],
        "partial_opt_out": ["marketing"]
    })
}

/// A WhatsApp business number the tenant does not have until
/// [`configure_other_number`] adds it.
pub(crate) const OTHER_PHONE_NUMBER_ID: &str = "999999999999999";

/// The payload sent to [`OTHER_PHONE_NUMBER_ID`].
pub(crate) fn to_other_number(mut payload: Value) -> Value {
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] =
        json!(OTHER_PHONE_NUMBER_ID);
    payload
}

/// Adds [`OTHER_PHONE_NUMBER_ID`] to the tenant's WhatsApp numbers: what was
/// kept for it applies.
pub(crate) async fn configure_other_number(app: &TestApp, t: &Tenant) -> Value {
    let mut body = settings();
    body["whatsapp"]["phone_numbers"] = json!([
        {"id": PHONE_NUMBER_ID, "display": "+4930123456"},
        {"id": OTHER_PHONE_NUMBER_ID, "display": "+4930123457"}
    ]);
    let put = app.put("/v1/channels", &t.admin, &body).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    body
}

pub(crate) async fn configured(app: &TestApp) -> Tenant {
    let t = app.tenant("makro", "Makro").await;
    let answer = app.put("/v1/channels", &t.admin, &settings()).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    t
}

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A documented payload shape with its times moved to `at` (unix seconds).
/// A STOP none of whose identities parses (a user id that is not one, and
/// no number): the only kind of opt-out kept as an `unknown_sender` dead
/// letter (docs/identities.md).
pub(crate) fn unreadable_stop(at: i64) -> Value {
    let mut stop = fixture("bsuid_only", at);
    stop["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] =
        json!("de.1502576394655843");
    stop
}

pub(crate) fn fixture(name: &str, at: i64) -> Value {
    let path = format!(
        "{}/tests/fixtures/whatsapp/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut value: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let v = &mut value["entry"][0]["changes"][0]["value"];
    for list in ["messages", "user_preferences", "statuses"] {
        if let Some(items) = v[list].as_array_mut() {
            for item in items {
                item["timestamp"] = if list == "user_preferences" {
                    json!(at)
                } else {
                    json!(at.to_string())
                };
            }
        }
    }
    value
}

/// A text message from `wa_id`, optionally a reply to a business message.
pub(crate) fn text(wa_id: &str, id: &str, body: &str, reply: bool, at: i64) -> Value {
    let mut value = fixture(if reply { "text_reply" } else { "text" }, at);
    let v = &mut value["entry"][0]["changes"][0]["value"];
    v["contacts"][0]["wa_id"] = json!(wa_id);
    let message = &mut v["messages"][0];
    message["from"] = json!(wa_id);
    message["id"] = json!(id);
    message["text"]["body"] = json!(body);
    value
}

pub(crate) fn hub_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) async fn post_whatsapp(
    app: &TestApp,
    tenant: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Answer {
    let mut request = app
        .client
        .post(app.url(&format!("/webhooks/whatsapp/{tenant}")))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// Posts a payload signed with the app secret; expects 200.
pub(crate) async fn whatsapp(app: &TestApp, payload: &Value) {
    let body = serde_json::to_vec(payload).expect("json");
    let answer = post_whatsapp(app, "makro", &body, Some(&hub_signature(WA_SECRET, &body))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
}

pub(crate) async fn log_size(app: &TestApp, t: &Tenant) -> u64 {
    let (status, note) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    note.lines()
        .nth(1)
        .expect("size line")
        .parse()
        .expect("size")
}

pub(crate) async fn entry(app: &TestApp, t: &Tenant, seq: u64) -> Value {
    let answer = app.get(&format!("/v1/entries/{seq}"), &t.auditor).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.body
}

pub(crate) async fn reason_for(
    app: &TestApp,
    t: &Tenant,
    number: &str,
    purpose: &str,
    channel: &str,
) -> String {
    app.reason(
        t,
        json!({"number": number, "purpose": purpose, "brand": "Makro", "channel": channel}),
    )
    .await
}

pub(crate) fn twilio_signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_owned();
    for (k, v) in &sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).expect("key");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// An inbound SMS with every parameter Twilio usually sends.
pub(crate) fn sms(from: &str, sid: &str, body: &str) -> Vec<(String, String)> {
    [
        ("ToCountry", "DE"),
        ("ToState", ""),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("ToCity", ""),
        ("FromZip", ""),
        ("SmsSid", sid),
        ("FromState", ""),
        ("SmsStatus", "received"),
        ("FromCity", ""),
        ("Body", body),
        ("FromCountry", "DE"),
        ("To", TW_NUMBER),
        ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"),
        ("ToZip", ""),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub(crate) async fn post_twilio(
    app: &TestApp,
    params: &[(String, String)],
    signature: Option<&str>,
) -> (StatusCode, String, String) {
    let body = serde_urlencoded::to_string(params).expect("form");
    let mut request = app
        .client
        .post(app.url("/webhooks/twilio/makro"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(signature) = signature {
        request = request.header("x-twilio-signature", signature);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

pub(crate) async fn twilio(app: &TestApp, params: &[(String, String)]) {
    let signature = twilio_signature(TW_TOKEN, WEBHOOK_URL, params);
    let (status, content_type, body) = post_twilio(app, params, Some(&signature)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(content_type.starts_with("text/xml"), "{content_type}");
    assert!(body.ends_with("<Response/>"), "{body}");
}

#[both]
async fn settings_keep_secrets_sealed_and_follow_the_rules() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let answer = app.get("/v1/channels", &t.admin).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = &answer.body;
    assert_eq!(body["whatsapp"]["app_secret"], Value::Null);
    assert_eq!(body["whatsapp"]["app_secret_set"], true);
    assert_eq!(body["whatsapp"]["previous_app_secret_set"], true);
    assert_eq!(body["whatsapp"]["verify_token_set"], true);
    assert_eq!(body["twilio"]["auth_token"], Value::Null);
    assert_eq!(body["twilio"]["secondary_auth_token_set"], true);
    assert_eq!(body["twilio"]["numbers"], json!([TW_NUMBER]));
    assert_eq!(body["partial_opt_out"], json!(["marketing"]));
    let shown = body.to_string();
    for secret in [WA_SECRET, WA_PREVIOUS, VERIFY_TOKEN, TW_TOKEN, TW_SECONDARY] {
        assert!(!shown.contains(secret), "a secret was returned");
    }
    // Only admins.
    assert_eq!(
        app.get("/v1/channels", &t.collector).await.status,
        StatusCode::FORBIDDEN
    );

    // Omitted secrets are kept; "" clears the previous app secret.
    let mut again = settings();
    for key in ["app_secret", "verify_token"] {
        again["whatsapp"]
            .as_object_mut()
            .expect("object")
            .remove(key);
    }
    again["whatsapp"]["previous_app_secret"] = json!("");
    again["twilio"]["auth_token"] = Value::Null;
    let answer = app.put("/v1/channels", &t.admin, &again).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["whatsapp"]["app_secret_set"], true);
    assert_eq!(answer.body["whatsapp"]["previous_app_secret_set"], false);
    let stop = text("4915112345678", "wamid.kept", "STOP", false, now_secs());
    let body = serde_json::to_vec(&stop).expect("json");
    let old = post_whatsapp(
        &app,
        "makro",
        &body,
        Some(&hub_signature(WA_PREVIOUS, &body)),
    )
    .await;
    assert_eq!(
        old.status,
        StatusCode::UNAUTHORIZED,
        "the cleared secret no longer signs"
    );
    whatsapp(&app, &stop).await;

    // The rules of section 7.
    let mut bad = settings();
    bad["whatsapp"]["opt_in"][0]["match"] = json!("Stop");
    bad["whatsapp"]["opt_in"][1]["prompt"] = json!("Reply JOIN to get offers.");
    bad["whatsapp"]["opt_in"][2]["brand"] = json!("Nobody");
    bad["twilio"]["opt_in"][0]["match"] = json!("unstop");
    bad["twilio"]["account_sid"] = json!("AC-nope");
    let answer = app.put("/v1/channels", &t.admin, &bad).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "invalid_request");
    assert_eq!(
        answer.field_code("whatsapp.opt_in[0].match").as_deref(),
        Some("reserved_word")
    );
    assert_eq!(
        answer.field_code("whatsapp.opt_in[1].prompt").as_deref(),
        Some("brand_not_named")
    );
    assert_eq!(
        answer.field_code("whatsapp.opt_in[2].brand").as_deref(),
        Some("unknown_brand")
    );
    assert_eq!(
        answer.field_code("twilio.opt_in[0].match").as_deref(),
        Some("reserved_word")
    );
    assert_eq!(
        answer.field_code("twilio.account_sid").as_deref(),
        Some("invalid_value")
    );
    let mut unknown = settings();
    unknown["whatsapp"]["webhook"] = json!("x");
    let answer = app.put("/v1/channels", &t.admin, &unknown).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A business number belongs to one tenant.
    let other = app.tenant("other", "Other").await;
    let mut taken = settings();
    for m in taken["whatsapp"]["opt_in"].as_array_mut().expect("array") {
        m["brand"] = json!("Other");
        m["prompt"] = json!("Offers from Other");
    }
    taken["twilio"]["opt_in"] = json!([]);
    taken["twilio"]["numbers"] = json!(["+4930999999"]);
    let answer = app.put("/v1/channels", &other.admin, &taken).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        answer.body
    );
    assert_eq!(
        answer.field_code("whatsapp.phone_numbers").as_deref(),
        Some("number_taken")
    );
    // A retired brand takes no new matches.
    app.add_brand(&t, "OldCo").await;
    let retired = app
        .post("/v1/brands/OldCo/retire", &t.admin, &json!({}))
        .await;
    assert_eq!(retired.status, StatusCode::OK, "{:?}", retired.body);
    let mut old_brand = settings();
    old_brand["twilio"]["opt_in"][0]["brand"] = json!("OldCo");
    old_brand["twilio"]["opt_in"][0]["prompt"] = json!("Text JOIN for OldCo offers");
    let answer = app.put("/v1/channels", &t.admin, &old_brand).await;
    assert_eq!(
        answer.field_code("twilio.opt_in[0].brand").as_deref(),
        Some("brand_retired")
    );
}

#[both]
async fn the_whatsapp_handshake_needs_the_verify_token() {
    let app = spawn_app().await;
    configured(&app).await;
    let get = |query: String| {
        let client = app.client.clone();
        let url = app.url(&format!("/webhooks/whatsapp/makro?{query}"));
        async move {
            let response = client.get(url).send().await.expect("request");
            let status = response.status();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (status, content_type, response.text().await.expect("body"))
        }
    };
    let (status, content_type, body) = get(format!(
        "hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/plain"));
    assert_eq!(body, "1158201444");
    let (status, _, _) =
        get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1".into()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = get(format!(
        "hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"
    ))
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let response =
        app.client
            .get(app.url(
                "/webhooks/whatsapp/nobody?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1",
            ))
            .send()
            .await
            .expect("request");
    // An unknown tenant answers as a wrong token does (issue 13).
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[both]
async fn an_invalid_signature_gets_401_and_records_nothing() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let size = log_size(&app, &t).await;
    let stop = text("4915112345678", "wamid.sig", "STOP", false, now_secs());
    let body = serde_json::to_vec(&stop).expect("json");
    for signature in [
        None,
        Some(hub_signature("not-the-secret", &body)),
        Some("sha256=zz".to_owned()),
        Some(hub_signature(WA_SECRET, b"another body")),
    ] {
        let answer = post_whatsapp(&app, "makro", &body, signature.as_deref()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.code(), "unauthorized");
    }
    assert_eq!(log_size(&app, &t).await, size);
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "allowed"
    );
    // The previous app secret still signs during rotation.
    let answer = post_whatsapp(
        &app,
        "makro",
        &body,
        Some(&hub_signature(WA_PREVIOUS, &body)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "opted_out"
    );
}

#[both]
async fn twilio_requests_are_signed_over_the_configured_url() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    app.recorded_opt_in(
        &t,
        json!({"number": NUMBER, "channel": "web", "company_name_shown": "Makro",
               "consent_text": "Yes, Makro may text me.", "purposes": ["marketing"],
               "message_channels": ["sms"], "captured_at": at(-3600),
               "evidence": {"page_url": "https://makro.example/join", "ip": "203.0.113.7",
                            "user_agent": "Mozilla/5.0"}}),
    )
    .await;
    let size = log_size(&app, &t).await;
    let params = sms(NUMBER, "SM0000000000000000000000000000sig1", "STOP");
    for signature in [
        None,
        Some(twilio_signature("wrong-token", WEBHOOK_URL, &params)),
        Some(twilio_signature(
            TW_TOKEN,
            "https://evil.example/webhooks/twilio/makro",
            &params,
        )),
        Some("not base64!".to_owned()),
    ] {
        let (status, _, _) = post_twilio(&app, &params, signature.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // A tampered parameter breaks the signature.
    let signature = twilio_signature(TW_TOKEN, WEBHOOK_URL, &params);
    let mut tampered = params.clone();
    tampered
        .iter_mut()
        .find(|(k, _)| k == "Body")
        .expect("Body")
        .1 = "JOIN".into();
    let (status, _, _) = post_twilio(&app, &tampered, Some(&signature)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Another account or another number, even signed: refused.
    for (name, value) in [
        ("AccountSid", "ACffffffffffffffffffffffffffffffff"),
        ("To", "+4930999999"),
    ] {
        let mut other = params.clone();
        other.iter_mut().find(|(k, _)| k == name).expect("param").1 = value.into();
        let signature = twilio_signature(TW_TOKEN, WEBHOOK_URL, &other);
        let (status, _, _) = post_twilio(&app, &other, Some(&signature)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
    }
    assert_eq!(log_size(&app, &t).await, size);
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "sms").await,
        "allowed"
    );
    // The secondary token, with the default port written out.
    let signature = twilio_signature(
        TW_SECONDARY,
        "https://hooks.example.com:443/webhooks/twilio/makro",
        &params,
    );
    let (status, content_type, body) = post_twilio(&app, &params, Some(&signature)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/xml"));
    assert_eq!(
        body,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>"
    );
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "sms").await,
        "opted_out"
    );
    let e = entry(&app, &t, size).await;
    assert_eq!(e["entry"]["collector"], "webhook:twilio");
    assert_eq!(e["entry"]["channel"], "sms");
    assert_eq!(
        e["openings"]["evidence"]["body"]["from_number_to"],
        TW_NUMBER
    );
    assert_eq!(
        e["openings"]["evidence"]["body"]["message_id"],
        "SM0000000000000000000000000000sig1"
    );
    // START lifts the SMS keyword opt-out.
    twilio(
        &app,
        &sms(NUMBER, "SM0000000000000000000000000000sig2", "start"),
    )
    .await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "sms").await,
        "allowed"
    );
    // WhatsApp through Twilio is not this channel: ignored.
    let size = log_size(&app, &t).await;
    twilio(
        &app,
        &sms(
            "whatsapp:+4915112345678",
            "SM0000000000000000000000000000wa01",
            "STOP",
        ),
    )
    .await;
    assert_eq!(log_size(&app, &t).await, size);
}

/// Webhook bodies may be 3 MiB (docs/api.md), Twilio's too; larger
/// ones answer 413 and record nothing.
#[both]
async fn twilio_bodies_up_to_three_mebibytes_are_read() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    // A long STOP (Twilio joins segments of long messages into one Body).
    let mut params = sms(NUMBER, "SM0000000000000000000000000000big1", "STOP");
    params.push(("AddOns".to_owned(), "x".repeat(512 * 1024)));
    twilio(&app, &params).await;
    assert_eq!(
        app.reason(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "channel": "sms"})
        )
        .await,
        "opted_out"
    );
    let mut huge = sms(NUMBER, "SM0000000000000000000000000000big2", "START");
    huge.push(("AddOns".to_owned(), "x".repeat(3 * 1024 * 1024)));
    let signature = twilio_signature(TW_TOKEN, WEBHOOK_URL, &huge);
    let (status, content_type, _) = post_twilio(&app, &huge, Some(&signature)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(content_type.starts_with("application/problem+json"));
    assert_eq!(
        app.reason(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "channel": "sms"})
        )
        .await,
        "opted_out"
    );
}

/// The webhooks answer an unknown tenant, or one without that channel,
/// exactly as they answer a bad signature or verify token: tenant ids
/// cannot be listed without credentials (issue 13).
#[both]
async fn unknown_tenants_look_like_bad_signatures() {
    let app = spawn_app().await;
    configured(&app).await;
    app.tenant("bare", "Bare").await;
    let body = serde_json::to_vec(&fixture("text", now_secs())).expect("json");
    let handshake = |tenant: &str| {
        app.url(&format!(
            "/webhooks/whatsapp/{tenant}?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1"
        ))
    };
    let twilio_post = |tenant: &str| {
        app.client
            .post(app.url(&format!("/webhooks/twilio/{tenant}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", "guess")
            .body("From=%2B4915112345678&Body=STOP")
    };
    let answers = |tenant: &'static str| {
        let app = &app;
        let body = body.clone();
        let handshake = handshake(tenant);
        let twilio = twilio_post(tenant);
        async move {
            let signed = post_whatsapp(app, tenant, &body, Some("sha256=00")).await;
            let unsigned = post_whatsapp(app, tenant, &body, None).await;
            let hello = TestApp::answer(app.client.get(handshake).send().await.unwrap()).await;
            let sms = TestApp::answer(twilio.send().await.unwrap()).await;
            [signed, unsigned, hello, sms].map(|a| (a.status, a.body))
        }
    };
    let known = answers("makro").await;
    assert_eq!(
        known.iter().map(|(s, _)| s.as_u16()).collect::<Vec<_>>(),
        vec![401, 401, 403, 401]
    );
    for tenant in ["nosuch", "bare"] {
        assert_eq!(answers(tenant).await, known, "{tenant}");
    }
}
