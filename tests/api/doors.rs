//! One recording path (`services/recording.rs`): an opt-in is recorded the
//! same way whatever door it comes through (the API, a backfill, a bulk
//! import, a hosted page, a WhatsApp message), so the same rules refuse it everywhere: a
//! retired brand, an identity erased after the opt-in was captured, a
//! capture older than 30 days (unless backfilled).

use crate::channels::{configured, log_size, settings, whatsapp};
use crate::helpers::*;
use crate::identities::{said, From};
use crate::pages::{browser, form, form_body, get_page, post_page, token_of};
use reqwest::StatusCode;
use serde_json::{json, Value};

const NUMBER: &str = "+4915112345678";
const WA_ID: &str = "4915112345678";

/// An opt-in by the API for `brand`, captured `ago` seconds ago.
fn api_opt_in(brand: &str, ago: i64, backfill: bool) -> Value {
    let mut body = web_opt_in(NUMBER, brand, &["marketing"]);
    body["consent_text"] = json!(format!("Yes, offers from {brand} on WhatsApp."));
    body["captured_at"] = json!(at(-ago));
    if backfill {
        body["backfill"] = json!(true);
    }
    body
}

/// The same opt-in as the one line of a bulk import: the code the line is
/// refused with (when checked before recording, or when recorded).
async fn imported(app: &TestApp, t: &Tenant, mut line: Value, id: &str) -> String {
    line["type"] = json!("opt_in");
    let path = format!("/v1/imports?id={id}");
    let file = format!("{line}\n").into_bytes();
    let answer = app
        .post_raw(&path, &t.admin, "application/x-ndjson", file)
        .await;
    if answer.status == StatusCode::UNPROCESSABLE_ENTITY {
        assert_eq!(answer.code(), "import_refused", "{}", answer.body);
        return answer.body["errors"][0]["code"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    for _ in 0..600 {
        let standing = app.get(&format!("/v1/imports/{id}"), &t.admin).await.body;
        if standing["status"] == "done" {
            return standing["refused_lines"][0]["code"]
                .as_str()
                .unwrap_or("recorded")
                .to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("import {id} not done");
}

fn number_only() -> From<'static> {
    From {
        wa_id: Some(WA_ID),
        ..From::default()
    }
}

/// A tenant with a second brand, Metro, that a WhatsApp match and a form
/// name.
async fn with_metro(app: &TestApp) -> Tenant {
    let t = configured(app).await;
    app.add_brand(&t, "Metro").await;
    let mut channels = settings();
    channels["whatsapp"]["opt_in"].as_array_mut().unwrap().push(
        json!({"match": "JOIN METRO", "brand": "Metro", "purposes": ["marketing"],
                     "prompt": "Send JOIN METRO to get offers from Metro on WhatsApp."}),
    );
    let put = app.put("/v1/channels", &t.admin, &channels).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let mut body = form_body("metro");
    body["brand"] = json!("Metro");
    body["consent_text"] = json!("Yes, I want offers from Metro on WhatsApp.");
    form(app, &t, body).await;
    t
}

/// A retired brand refuses an opt-in at every door, and nothing is
/// recorded.
#[both]
async fn a_retired_brand_is_refused_at_every_door() {
    let app = spawn_app_at_manual_clock().await;
    let t = with_metro(&app).await;
    // The page was served while Metro was active.
    let client = browser();
    let path = "/forms/makro/metro";
    let (_, page) = get_page(&client, &app, path).await;
    let token = token_of(&page);
    let retired = app
        .post("/v1/brands/Metro/retire", &t.admin, &json!({}))
        .await;
    assert_eq!(retired.status, StatusCode::OK, "{}", retired.body);
    let size = log_size(&app, &t).await;

    let api = app.opt_in(&t, api_opt_in("Metro", 60, false)).await;
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", api.body);
    assert_eq!(api.code(), "brand_retired");
    let backfill = app
        .post(
            "/v1/opt-ins",
            &t.admin,
            &api_opt_in("Metro", 40 * 86_400, true),
        )
        .await;
    assert_eq!(
        backfill.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        backfill.body
    );
    assert_eq!(backfill.code(), "brand_retired");
    let line = api_opt_in("Metro", 40 * 86_400, false);
    assert_eq!(imported(&app, &t, line, "retired").await, "brand_retired");
    whatsapp(&app, &said(number_only(), "wamid.metro", "JOIN METRO", 30)).await;
    app.clock.advance(5_000);
    let fields = [
        ("token", token.as_str()),
        ("region", "DE"),
        ("number", "015112345678"),
        ("purpose", "marketing"),
    ];
    let (status, _) = post_page(&client, &app, path, &fields).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(log_size(&app, &t).await, size, "nothing recorded");
    let check = json!({"number": NUMBER, "purpose": "marketing", "brand": "Metro"});
    assert_eq!(app.reason(&t, check).await, "no_opt_in");
}

/// An opt-in captured before its identity's erasure is refused at every
/// door that can carry an older capture time: the API, a backfill, a bulk
/// import and a message written before the erasure.
#[both]
async fn an_opt_in_captured_before_an_erasure_is_refused_at_every_door() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    app.recorded_opt_in(&t, api_opt_in("Makro", 600, false))
        .await;
    let erased = app
        .post("/v1/subjects/erase", &t.admin, &json!({"number": NUMBER}))
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    let size = log_size(&app, &t).await;
    let api = app.opt_in(&t, api_opt_in("Makro", 300, false)).await;
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", api.body);
    assert_eq!(api.code(), "suppressed");
    let backfill = app
        .post(
            "/v1/opt-ins",
            &t.admin,
            &api_opt_in("Makro", 40 * 86_400, true),
        )
        .await;
    assert_eq!(backfill.code(), "suppressed", "{}", backfill.body);
    let line = api_opt_in("Makro", 40 * 86_400, false);
    assert_eq!(imported(&app, &t, line, "erased").await, "suppressed");
    // Written before the erasure, delivered after it.
    let late = said(number_only(), "wamid.late", "JOIN MAKRO", 300);
    whatsapp(&app, &late).await;
    assert_eq!(log_size(&app, &t).await, size, "nothing recorded");
    let check = json!({"number": NUMBER, "purpose": "marketing", "brand": "Makro"});
    assert_eq!(app.reason(&t, check).await, "opted_out");
}

/// A capture older than 30 days is refused by the API and by a message,
/// and taken only as an admin's backfill.
#[both]
async fn a_capture_older_than_thirty_days_is_taken_only_as_a_backfill() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let old = 31 * 86_400;
    let api = app.opt_in(&t, api_opt_in("Makro", old, false)).await;
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", api.body);
    assert_eq!(api.code(), "captured_at_too_old");
    let message = said(number_only(), "wamid.old", "JOIN MAKRO", old);
    whatsapp(&app, &message).await;
    assert_eq!(log_size(&app, &t).await, 0, "nothing recorded");
    let backfill = app
        .post("/v1/opt-ins", &t.admin, &api_opt_in("Makro", old, true))
        .await;
    assert_eq!(backfill.status, StatusCode::CREATED, "{}", backfill.body);
    assert_eq!(log_size(&app, &t).await, 1);
}
