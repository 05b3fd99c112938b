//! Campaign entry points (docs/entry-points.md, SPEC section 14): a phrase
//! with its click-to-chat link and QR codes; the QR code decoded by a
//! decoder written elsewhere (`rqrr`) back to the link, and the phrase
//! sent by WhatsApp recording an opt-in that names the entry point.

use crate::channels::{configured, whatsapp};
use crate::helpers::*;
use crate::identities::{said, From};
use reqwest::StatusCode;
use serde_json::{json, Value};

const POSTER: &str = "poster-berlin";

fn poster() -> Value {
    json!({"id": POSTER, "brand": "Makro", "purposes": ["marketing"],
           "phrase": "Hello Makro poster",
           "prompt": "Scan to get offers from Makro on WhatsApp. Reply STOP to end."})
}

/// The bytes of `path` as the admin reads them, and their media type.
async fn bytes(app: &TestApp, t: &Tenant, path: &str) -> (StatusCode, String, Vec<u8>) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(&t.admin)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.bytes().await.expect("body").to_vec())
}

/// What a QR code in a PNG holds, read by `rqrr`.
fn decode_png(png_bytes: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (width, height) = (info.width as usize, info.height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        pixels[y * info.line_size + x]
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    let (_, content) = grids[0].decode().expect("a readable QR code");
    content
}

#[both]
async fn a_qr_code_decodes_to_its_link_and_its_phrase_records_an_opt_in_naming_it() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let created = app.post("/v1/entry-points", &t.admin, &poster()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let link = "https://wa.me/4930123456?text=Hello%20Makro%20poster";
    assert_eq!(created.body["link"], link);
    let listed = app.get("/v1/entry-points", &t.admin).await;
    assert_eq!(
        listed.body["entry_points"][0]["id"], POSTER,
        "{}",
        listed.body
    );

    let path = format!("/v1/entry-points/{POSTER}/qr.png");
    let (status, kind, png) = bytes(&app, &t, &path).await;
    assert_eq!((status, kind.as_str()), (StatusCode::OK, "image/png"));
    assert_eq!(decode_png(&png), link);
    let path = format!("/v1/entry-points/{POSTER}/qr.svg");
    let (status, kind, svg) = bytes(&app, &t, &path).await;
    assert_eq!((status, kind.as_str()), (StatusCode::OK, "image/svg+xml"));
    assert!(String::from_utf8(svg).unwrap().contains("<svg"));

    // The person scans it and sends the phrase (not as a reply).
    let from = From {
        wa_id: Some("4915112345678"),
        ..From::default()
    };
    whatsapp(&app, &said(from, "wamid.poster", "Hello Makro poster!", 5)).await;
    let check = json!({"number": "+4915112345678", "purpose": "marketing", "brand": "Makro"});
    assert_eq!(app.reason(&t, check).await, "allowed");
    let query = json!({"number": "+4915112345678"});
    let subject = app.post("/v1/subjects/query", &t.auditor, &query).await;
    let opening = &subject.body["history"][0]["openings"];
    assert_eq!(
        opening["evidence"]["body"]["entry_point"], POSTER,
        "{}",
        subject.body
    );
    assert_eq!(
        opening["consent_text"],
        "Scan to get offers from Makro on WhatsApp. Reply STOP to end."
    );
    let trail = app.get("/v1/audit-events", &t.admin).await;
    let kinds: Vec<&Value> = trail.body["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["kind"])
        .collect();
    assert!(kinds.contains(&&json!("entry_point.created")), "{kinds:?}");
}

#[both]
async fn an_entry_point_is_refused_for_what_it_gets_wrong() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let refused = |field: &str, value: Value| {
        let mut body = poster();
        body[field] = value;
        body
    };
    for (field, value, code) in [
        ("phrase", json!("JOINPOSTER"), "one_word"),
        ("phrase", json!("stop all"), "reserved_word"),
        (
            "prompt",
            json!("Scan for offers on WhatsApp."),
            "brand_not_named",
        ),
        ("brand", json!("Nobody"), "unknown_brand"),
        ("id", json!("Poster Berlin"), "invalid_value"),
        ("phone_number_id", json!("999"), "no_whatsapp_number"),
    ] {
        let answer = app
            .post("/v1/entry-points", &t.admin, &refused(field, value))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            answer.body
        );
        assert_eq!(
            answer.field_code(field),
            Some(code.to_owned()),
            "{}",
            answer.body
        );
    }
    let created = app.post("/v1/entry-points", &t.admin, &poster()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let again = app.post("/v1/entry-points", &t.admin, &poster()).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "entry_point_exists")
    );
    let unknown = app.get("/v1/entry-points/nope/qr.png", &t.admin).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // Without a WhatsApp number there is no link to print.
    let bare = app.tenant("metro", "Metro").await;
    let mut body = poster();
    body["brand"] = json!("Metro");
    body["prompt"] = json!("Scan to get offers from Metro on WhatsApp.");
    let none = app.post("/v1/entry-points", &bare.admin, &body).await;
    assert_eq!(
        none.field_code("phone_number_id"),
        Some("no_whatsapp_number".into()),
        "{}",
        none.body
    );
}
