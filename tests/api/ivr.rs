//! The hosted phone opt-in (docs/ivr.md, SPEC section 14): a flow saved in
//! versions, and a call end to end through requests shaped and signed as
//! Twilio's Voice webhooks are (over the public URL): the TwiML that reads
//! the prompt and gathers one key, then the key that records an `ivr`
//! opt-in naming the call, once; any other key, or a withheld caller,
//! records nothing.

use crate::channels::{configured, twilio_signature, ACCOUNT_SID, TW_NUMBER, TW_TOKEN};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const PUBLIC_URL: &str = "https://ledger.example.com";
const CALLER: &str = "+4915112345678";
const PROMPT: &str = "Press 1 to get offers from Makro on WhatsApp.";

fn flow() -> Value {
    json!({"brand": "Makro", "purposes": ["marketing"], "message_channels": ["whatsapp"],
           "language": "en-US", "prompt": PROMPT})
}

/// The parameters Twilio posts for an inbound call (with `Digits` once a
/// key was pressed).
fn call(call_sid: &str, from: &str, digits: Option<&str>) -> Vec<(String, String)> {
    let mut params = vec![
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid),
        ("CallStatus", "in-progress"),
        ("Called", TW_NUMBER),
        ("CalledCountry", "DE"),
        ("Caller", from),
        ("CallerCountry", "DE"),
        ("Direction", "inbound"),
        ("From", from),
        ("FromCountry", "DE"),
        ("StirVerstat", "TN-Validation-Passed-A"),
        ("To", TW_NUMBER),
        ("ToCountry", "DE"),
    ];
    if let Some(digits) = digits {
        params.push(("Digits", digits));
        params.push(("FinishedOnKey", ""));
        params.push(("msg", "Gather End"));
    }
    params
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Twilio's own Python library (PyPI `twilio`), where
/// `CONSENT_LEDGER_TWILIO_PYTHON` names a Python that has it (CI installs
/// it and sets `CONSENT_LEDGER_REQUIRE_TWILIO=1` so that it must).
fn twilio_python() -> Option<std::ffi::OsString> {
    let python = std::env::var_os("CONSENT_LEDGER_TWILIO_PYTHON");
    if python.is_none() {
        assert!(
            std::env::var_os("CONSENT_LEDGER_REQUIRE_TWILIO").is_none(),
            "CONSENT_LEDGER_TWILIO_PYTHON is required"
        );
        eprintln!("skipped: Twilio's library (set CONSENT_LEDGER_TWILIO_PYTHON)");
    }
    python
}

/// Runs `script` with Twilio's library on `input` (JSON); its output.
fn with_twilio_library(python: &std::ffi::OsStr, script: &str, input: &Value) -> String {
    let out = std::process::Command::new(python)
        .args(["-c", script, &input.to_string()])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

/// The request's signature: ours, and where Twilio's library is at hand
/// its `RequestValidator`'s, which must be the same.
fn signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let ours = twilio_signature(token, url, params);
    if let Some(python) = twilio_python() {
        let script = "import json, sys\n\
from twilio.request_validator import RequestValidator\n\
d = json.loads(sys.argv[1])\n\
print(RequestValidator(d['token']).compute_signature(d['url'], d['params']))\n";
        let params: serde_json::Map<String, Value> =
            params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let input = json!({"token": token, "url": url, "params": params});
        assert_eq!(with_twilio_library(&python, script, &input), ours);
    }
    ours
}

/// Where Twilio's library is at hand: the TwiML its `VoiceResponse` builds
/// for the flow is, canonicalised, the one we answered.
fn same_as_the_library_builds(ours: &str, action: &str) {
    let Some(python) = twilio_python() else {
        return;
    };
    let script = "import json, sys\n\
from xml.etree.ElementTree import canonicalize\n\
from twilio.twiml.voice_response import VoiceResponse, Gather\n\
d = json.loads(sys.argv[1])\n\
r = VoiceResponse()\n\
g = Gather(num_digits=1, action=d['action'], method='POST', timeout=8)\n\
g.say(d['prompt'], language='en-US')\n\
r.append(g)\n\
r.say('Thank you. Goodbye.', language='en-US')\n\
strip = lambda x: x.split('?>', 1)[1]\n\
print(canonicalize(strip(str(r))) == canonicalize(strip(d['ours'])))\n";
    let input = json!({"action": action, "prompt": PROMPT, "ours": ours});
    assert_eq!(
        with_twilio_library(&python, script, &input),
        "True",
        "{ours}"
    );
}

/// Posts a call's request, signed over the public URL (or with `token`).
async fn post_call(
    app: &TestApp,
    flow: &str,
    params: &[(String, String)],
    token: &str,
) -> (StatusCode, String, String) {
    let path = format!("/webhooks/twilio-voice/makro/{flow}");
    let signature = signature(token, &format!("{PUBLIC_URL}{path}"), params);
    let response = app
        .client
        .post(app.url(&path))
        .header("x-twilio-signature", signature)
        .form(params)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.text().await.expect("a body"))
}

async fn app_with_flow() -> (TestApp, Tenant) {
    let app = spawn_app_with(|args| args.public_url = Some(PUBLIC_URL.into())).await;
    let t = configured(&app).await;
    let saved = app.put("/v1/ivr-flows/main", &t.admin, &flow()).await;
    assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.body);
    (app, t)
}

#[both]
async fn flows_are_versioned_and_checked() {
    let (app, t) = app_with_flow().await;
    let again = app.put("/v1/ivr-flows/main", &t.admin, &flow()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["version"], 1);
    assert_eq!(again.body["digit"], "1");
    assert_eq!(
        again.body["webhook_url"],
        format!("{PUBLIC_URL}/webhooks/twilio-voice/makro/main")
    );
    let mut changed = flow();
    changed["digit"] = json!("9");
    let second = app.put("/v1/ivr-flows/main", &t.admin, &changed).await;
    assert_eq!(
        (second.status, second.body["version"].clone()),
        (StatusCode::CREATED, json!(2))
    );
    for (field, value, code) in [
        ("prompt", json!("Press 1 for offers."), "brand_not_named"),
        ("brand", json!("Nobody"), "unknown_brand"),
        ("digit", json!("12"), "invalid_value"),
        ("language", json!("not a tag"), "invalid_value"),
    ] {
        let mut body = flow();
        body[field] = value;
        let refused = app.put("/v1/ivr-flows/other", &t.admin, &body).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        assert_eq!(
            refused.field_code(field),
            Some(code.to_owned()),
            "{}",
            refused.body
        );
    }
}

#[both]
async fn a_call_is_recorded_end_to_end_through_signed_requests() {
    let (app, t) = app_with_flow().await;
    let sid = "CA0123456789abcdef0123456789abcdef";
    // The call comes in: the prompt is read and one key gathered.
    let (status, kind, twiml) = post_call(&app, "main", &call(sid, CALLER, None), TW_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{twiml}");
    assert!(kind.starts_with("text/xml"), "{kind}");
    let action = format!("{PUBLIC_URL}/webhooks/twilio-voice/makro/main");
    assert_eq!(
        twiml,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Gather numDigits=\"1\" action=\"{action}\" \
             method=\"POST\" timeout=\"8\"><Say language=\"en-US\">{PROMPT}</Say></Gather>\
             <Say language=\"en-US\">Thank you. Goodbye.</Say></Response>"
        )
    );
    same_as_the_library_builds(&twiml, &action);
    assert_eq!(log_size(&app, &t).await, 0);
    // The caller presses 1: an ivr opt-in for the caller's number.
    let (status, _, goodbye) =
        post_call(&app, "main", &call(sid, CALLER, Some("1")), TW_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{goodbye}");
    assert!(
        goodbye.contains("<Say language=\"en-US\">Thank you. Goodbye.</Say>"),
        "{goodbye}"
    );
    let check = json!({"number": CALLER, "purpose": "marketing", "brand": "Makro"});
    assert_eq!(app.reason(&t, check.clone()).await, "allowed");
    let subject = app
        .post("/v1/subjects/query", &t.auditor, &json!({"number": CALLER}))
        .await;
    let first = &subject.body["history"][0];
    assert_eq!(first["entry"]["collector"], "ivr:main");
    assert_eq!(first["entry"]["channel"], "ivr");
    assert_eq!(first["openings"]["consent_text"], PROMPT);
    assert_eq!(
        first["openings"]["evidence"]["body"],
        json!({"call_id": sid, "dtmf": "1", "prompt_script": PROMPT, "flow": "main",
               "flow_version": "1", "stir_verstat": "TN-Validation-Passed-A"})
    );
    // The same request again (Twilio retries): nothing more.
    post_call(&app, "main", &call(sid, CALLER, Some("1")), TW_TOKEN).await;
    assert_eq!(log_size(&app, &t).await, 1);
    // Another key, a withheld caller: nothing recorded.
    let other = "CAfedcba9876543210fedcba9876543210";
    let (status, _, _) = post_call(
        &app,
        "main",
        &call(other, "+4915187654321", Some("2")),
        TW_TOKEN,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let withheld = "CA11111111111111111111111111111111";
    post_call(
        &app,
        "main",
        &call(withheld, "anonymous", Some("1")),
        TW_TOKEN,
    )
    .await;
    assert_eq!(log_size(&app, &t).await, 1);
    // A forged request and an unknown flow.
    let (status, _, _) =
        post_call(&app, "main", &call(other, CALLER, Some("1")), "wrong-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = post_call(&app, "nope", &call(other, CALLER, None), TW_TOKEN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(log_size(&app, &t).await, 1);
}

async fn log_size(app: &TestApp, t: &Tenant) -> u64 {
    crate::channels::log_size(app, t).await
}
