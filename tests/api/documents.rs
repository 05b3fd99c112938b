//! Evidence documents (docs/recording.md): scans of signed paper forms,
//! uploaded by collectors, read by auditors, named by paper opt-ins (which
//! must carry their hash), kept per tenant, deleted with their group.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Digest;

/// A small but real-looking PDF.
fn pdf(marker: &str) -> Vec<u8> {
    format!("%PDF-1.7\n% signed paper form {marker}\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
        .into_bytes()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn upload(app: &TestApp, key: &str, bytes: Vec<u8>) -> Answer {
    app.post_raw("/v1/documents", key, "application/octet-stream", bytes)
        .await
}

async fn uploaded(app: &TestApp, t: &Tenant, bytes: Vec<u8>) -> (String, String) {
    let answer = upload(app, &t.collector, bytes).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let id = answer.body["document_id"].as_str().expect("id").to_owned();
    let sha = answer.body["sha256"].as_str().expect("sha256").to_owned();
    (id, sha)
}

/// A paper opt-in for `number` naming a document by id and hash.
fn paper_opt_in(number: &str, document_id: &str, sha256: &str) -> Value {
    json!({
        "number": number,
        "channel": "paper",
        "company_name_shown": "Makro",
        "consent_text": "Yes, send me offers from Makro on WhatsApp. Reply STOP to end.",
        "purposes": ["marketing"],
        "captured_at": at(-10),
        "evidence": {"document_sha256": sha256, "signer_name": "Jana Novak",
            "signed_on": today(), "collected_by": "store 12", "document_id": document_id}
    })
}

async fn fetch(app: &TestApp, key: &str, id: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/v1/documents/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .expect("request")
}

#[both]
async fn a_scan_is_kept_and_read_back_by_auditors_only() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let bytes = pdf("one");
    let (id, sha) = uploaded(&app, &t, bytes.clone()).await;
    assert!(id.starts_with("doc_") && id.len() == 16, "{id}");
    assert_eq!(sha, sha256_hex(&bytes));
    let read = fetch(&app, &t.auditor, &id).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.headers()["content-type"], "application/pdf");
    assert_eq!(read.headers()["cache-control"], "no-store");
    assert_eq!(read.bytes().await.expect("body").to_vec(), bytes);
    // JPEG and PNG are told by their content, whatever the request says.
    let jpeg = [&[0xFF, 0xD8, 0xFF, 0xE0][..], b"\x00\x10JFIF scan"].concat();
    let (jpeg_id, _) = uploaded(&app, &t, jpeg).await;
    let read = fetch(&app, &t.auditor, &jpeg_id).await;
    assert_eq!(read.headers()["content-type"], "image/jpeg");
    let png = [
        &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A][..],
        b"IHDR",
    ]
    .concat();
    let answer = app
        .post_raw("/v1/documents", &t.collector, "application/pdf", png)
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let png_id = answer.body["document_id"].as_str().unwrap().to_owned();
    assert_eq!(
        fetch(&app, &t.auditor, &png_id).await.headers()["content-type"],
        "image/png"
    );
    // Roles and tenants.
    for key in [&t.collector, &t.sender] {
        assert_eq!(fetch(&app, key, &id).await.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(
        upload(&app, &t.auditor, pdf("x")).await.status,
        StatusCode::FORBIDDEN
    );
    let other = app.tenant("metro", "Metro").await;
    assert_eq!(
        fetch(&app, &other.auditor, &id).await.status(),
        StatusCode::NOT_FOUND
    );
    for missing in ["doc_000000000000", "doc_x", "abc"] {
        assert_eq!(
            fetch(&app, &t.auditor, missing).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    // Reading a document is in the audit trail.
    let trail = app.get("/v1/audit-events", &t.admin).await;
    let read_events = trail.body["audit_events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "document.read")
        .count();
    assert_eq!(read_events, 3);
}

#[both]
async fn what_is_not_a_pdf_jpeg_or_png_or_is_too_large_is_refused() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    for bytes in [
        b"<html>scan</html>".to_vec(),
        b"GIF89a....".to_vec(),
        Vec::new(),
    ] {
        let refused = upload(&app, &t.collector, bytes).await;
        assert_eq!(
            refused.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{}",
            refused.body
        );
        assert_eq!(refused.code(), "unsupported_media_type");
    }
    let mut large = pdf("large");
    large.resize(20 * 1024 * 1024 + 1, b' ');
    let refused = upload(&app, &t.collector, large).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Exactly 20 MiB is kept.
    let mut limit = pdf("limit");
    limit.resize(20 * 1024 * 1024, b' ');
    let (id, _) = uploaded(&app, &t, limit).await;
    let read = fetch(&app, &t.auditor, &id).await;
    assert_eq!(read.bytes().await.unwrap().len(), 20 * 1024 * 1024);
}

#[both]
async fn a_retried_upload_keeps_one_document() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let send = || async {
        let response = app
            .client
            .post(app.url("/v1/documents"))
            .bearer_auth(&t.collector)
            .header("idempotency-key", "scan-77")
            .body(pdf("retried"))
            .send()
            .await
            .expect("request");
        let replayed = response.headers().get("idempotent-replayed").is_some();
        let body: Value = response.json().await.expect("json");
        (replayed, body)
    };
    let (first_replayed, first) = send().await;
    let (again_replayed, again) = send().await;
    assert!(!first_replayed && again_replayed);
    assert_eq!(first, again, "the same document id");
}

#[both]
async fn a_paper_opt_in_names_its_document_by_hash() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let (id, sha) = uploaded(&app, &t, pdf("form")).await;
    let wrong = app
        .opt_in(&t, paper_opt_in(NUMBER, &id, &"a".repeat(64)))
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong.body
    );
    assert_eq!(wrong.code(), "invalid_evidence");
    assert_eq!(
        wrong.field_code("evidence.document_sha256").as_deref(),
        Some("document_mismatch")
    );
    let unknown = app
        .opt_in(&t, paper_opt_in(NUMBER, "doc_0123456789ab", &sha))
        .await;
    assert_eq!(unknown.code(), "unknown_document", "{}", unknown.body);
    let other = app.tenant("metro", "Metro").await;
    let (theirs, their_sha) = uploaded(&app, &other, pdf("metro")).await;
    let foreign = app
        .opt_in(&t, paper_opt_in(NUMBER, &theirs, &their_sha))
        .await;
    assert_eq!(
        foreign.code(),
        "unknown_document",
        "another tenant's document"
    );
    assert_eq!(
        app.get("/v1/log/checkpoint", &t.auditor).await.status,
        StatusCode::OK
    );
    let recorded = app.opt_in(&t, paper_opt_in(NUMBER, &id, &sha)).await;
    assert_eq!(recorded.status, StatusCode::CREATED, "{}", recorded.body);
    assert_eq!(recorded.body["seq"], 0, "nothing refused was recorded");
    let check = json!({"number": NUMBER, "purpose": "marketing", "brand": "Makro"});
    assert_eq!(app.reason(&t, check).await, "allowed");
}

/// Erasure deletes the documents of every subject of the group: here a
/// number and a user id, each with its own paper form, joined by a signed
/// message; another person's document stays.
#[both]
async fn erasure_deletes_the_documents_of_the_group() {
    use crate::channels::{configured, whatsapp};
    use crate::identities::{number_and_user, said};
    let app = spawn_app().await;
    let t = configured(&app).await;
    let (erased_doc, erased_sha) = uploaded(&app, &t, pdf("erased")).await;
    let (linked_doc, linked_sha) = uploaded(&app, &t, pdf("linked")).await;
    let (kept_doc, kept_sha) = uploaded(&app, &t, pdf("kept")).await;
    let other_number = "+4915199990000";
    let user_id = "DE.4242424242";
    app.recorded_opt_in(&t, paper_opt_in(NUMBER, &erased_doc, &erased_sha))
        .await;
    let mut by_user = paper_opt_in(NUMBER, &linked_doc, &linked_sha);
    by_user.as_object_mut().unwrap().remove("number");
    by_user["user_id"] = json!(user_id);
    app.recorded_opt_in(&t, by_user).await;
    app.recorded_opt_in(&t, paper_opt_in(other_number, &kept_doc, &kept_sha))
        .await;
    whatsapp(
        &app,
        &said(number_and_user(&NUMBER[1..], user_id), "wamid.doc", "hi", 5),
    )
    .await;
    let query = app
        .post("/v1/subjects/query", &t.auditor, &json!({"number": NUMBER}))
        .await;
    assert_eq!(
        query.body["group"].as_array().map(Vec::len),
        Some(2),
        "{}",
        query.body
    );
    let erased = app
        .post("/v1/subjects/erase", &t.admin, &json!({"number": NUMBER}))
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    for doc in [&erased_doc, &linked_doc] {
        assert_eq!(
            fetch(&app, &t.auditor, doc).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        fetch(&app, &t.auditor, &kept_doc).await.status(),
        StatusCode::OK
    );
    if app.database_url().is_some() {
        return; // PostgreSQL: the tables are vacuumed; no file to read here.
    }
    // Its bytes are gone from the SQLite file too.
    let bytes = std::fs::read(app.data_dir().join("consent-ledger.db")).expect("db file");
    let marker = b"signed paper form erased";
    assert!(
        !bytes.windows(marker.len()).any(|w| w == marker),
        "the erased scan's bytes remain in the database file"
    );
}

/// A read of `id` on a raw connection with a small receive buffer that
/// takes nothing after the answer's head (returned with the connection):
/// what the server sends stays on its side.
async fn stalled_read(app: &TestApp, key: &str, id: &str) -> (String, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let address = app.address.trim_start_matches("http://").parse().unwrap();
    let mut stream = socket.connect(address).await.expect("connect");
    let request = format!(
        "GET /v1/documents/{id} HTTP/1.1\r\nHost: ledger.test\r\nAuthorization: Bearer {key}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut byte))
            .await
            .expect("an answer in time")
            .expect("read");
        assert_eq!(
            n,
            1,
            "closed before the head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    (String::from_utf8_lossy(&head).into_owned(), stream)
}

/// The upper bound of any wait here.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads `id` until it answers 200 (the memory it needs is free again),
/// for at most [`PATIENCE`]; returns the body.
async fn read_once_free(app: &TestApp, key: &str, id: &str) -> Vec<u8> {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let response = fetch(app, key, id).await;
        if response.status() == StatusCode::OK {
            return response.bytes().await.expect("body").to_vec();
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            std::time::Instant::now() < deadline,
            "the memory was never given back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// 24 auditors reading one 20 MiB document at once do not cost 24 copies
/// of it: a read holds its document against the memory budget of bodies
/// (`CONSENT_LEDGER_BODY_MEMORY_MIB`, here 24 MiB) until it is sent, and a
/// read beyond the budget is refused, 503 `overloaded` with `Retry-After`,
/// before anything is loaded. The memory comes back when the reader goes.
/// Before, every read loaded the whole document (24 readers: 480 MiB).
#[both]
async fn reads_of_a_large_document_stay_within_the_memory_budget() {
    let app = spawn_app_with(|a| a.limits.body_memory_mib = Some(24)).await;
    let t = app.tenant("makro", "Makro").await;
    let mut scan = pdf("large");
    scan.resize(20 << 20, b' ');
    let (id, _) = uploaded(&app, &t, scan.clone()).await;
    // One reader that takes nothing: its answer began, so it holds 20 MiB
    // (the kernel takes at most its send buffer, 4 MiB by default, of it).
    let (head, stalled) = stalled_read(&app, &t.auditor, &id).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-length: 20971520"), "{head}");
    // 23 more at once: each is refused, none loaded.
    let reads =
        (0..23).map(|_| async { TestApp::answer(fetch(&app, &t.auditor, &id).await).await });
    for answer in futures_util::future::join_all(reads).await {
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "a 24th copy was loaded"
        );
        assert_eq!(answer.code(), "overloaded");
        assert_eq!(answer.headers["retry-after"], "1");
    }
    drop(stalled);
    assert_eq!(read_once_free(&app, &t.auditor, &id).await, scan);
}

/// A reader that stops taking a document is cut off after the drain
/// timeout (`CONSENT_LEDGER_EXPORT_DRAIN_TIMEOUT`, as for exports): its
/// connection ends short of the document and the memory is free again,
/// while the reader still holds its connection open.
#[both]
async fn a_reader_that_stops_reading_is_cut_off() {
    use tokio::io::AsyncReadExt;
    let app = spawn_app_with(|a| {
        a.limits.body_memory_mib = Some(24);
        a.limits.export_drain_timeout = Some("1s".into());
    })
    .await;
    let t = app.tenant("makro", "Makro").await;
    let mut scan = pdf("stalled");
    scan.resize(20 << 20, b' ');
    let (id, _) = uploaded(&app, &t, scan.clone()).await;
    let (head, mut stalled) = stalled_read(&app, &t.auditor, &id).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(read_once_free(&app, &t.auditor, &id).await, scan);
    let mut got = 0usize;
    let mut buffer = vec![0u8; 1 << 16];
    let read_all = tokio::time::timeout(PATIENCE, async {
        while let Ok(n @ 1..) = stalled.read(&mut buffer).await {
            got += n;
        }
    });
    assert!(read_all.await.is_ok(), "the connection was never ended");
    assert!(
        got < scan.len(),
        "the stalled reader got it all ({got} bytes)"
    );
}

/// A PDF of `bytes` bytes.
fn pdf_of(marker: &str, bytes: usize) -> Vec<u8> {
    let mut scan = pdf(marker);
    scan.resize(bytes, b' ');
    scan
}

/// How many idempotency keys are taken (in progress or answered).
fn keys_taken(app: &TestApp) -> i64 {
    use consent_ledger::store::connection::establish;
    use consent_ledger::store::schema::idempotency_keys as idem;
    use diesel::{QueryDsl, RunQueryDsl};
    let mut conn = establish(&app.database_target()).unwrap();
    idem::table.count().get_result(&mut conn).unwrap()
}

/// Each tenant's documents share a storage quota
/// (`CONSENT_LEDGER_DOCUMENT_QUOTA_MIB`, here 1 MiB): an upload that would
/// pass it is 507 `document_quota_exceeded` and keeps nothing, also when
/// uploads race for the last space (held at the write gate until all six
/// are read, then let go together); what still fits is kept, and another
/// tenant has its own quota. Before, there was no quota.
#[both]
async fn each_tenant_has_a_storage_quota_for_documents() {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let hooks = consent_ledger::startup::Hooks {
        write_gate: Some(gate.clone()),
        ..Default::default()
    };
    let app = spawn_app_hooked(|a| a.document_quota_mib = Some(1), hooks).await;
    let t = app.tenant("makro", "Makro").await;
    let other = app.tenant("metro", "Metro").await;
    const KIB: usize = 1024;
    uploaded(&app, &t, pdf_of("first", 400 * KIB)).await;
    // Six at once for the 624 KiB left: one fits.
    let racing: Vec<_> = (0..6)
        .map(|n| {
            let request = app
                .client
                .post(app.url("/v1/documents"))
                .bearer_auth(&t.collector)
                .header("idempotency-key", format!("race-{n}"))
                .body(pdf_of(&format!("race {n}"), 400 * KIB));
            tokio::spawn(async move { TestApp::answer(request.send().await.unwrap()).await })
        })
        .collect();
    let deadline = std::time::Instant::now() + PATIENCE;
    while keys_taken(&app) < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "the uploads never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    gate.add_permits(6);
    let mut kept = 0;
    for answer in racing {
        let answer = answer.await.unwrap();
        if answer.status == StatusCode::CREATED {
            kept += 1;
            continue;
        }
        assert_eq!(
            answer.status,
            StatusCode::INSUFFICIENT_STORAGE,
            "{}",
            answer.body
        );
        assert_eq!(answer.content_type(), "application/problem+json");
        assert_eq!(answer.code(), "document_quota_exceeded");
    }
    assert_eq!(kept, 1, "uploads past the quota were kept");
    // 224 KiB left: 225 KiB does not fit, 224 KiB does, then nothing.
    let refused = upload(&app, &t.collector, pdf_of("just over", 225 * KIB)).await;
    assert_eq!(
        refused.code(),
        "document_quota_exceeded",
        "{}",
        refused.body
    );
    uploaded(&app, &t, pdf_of("exactly", 224 * KIB)).await;
    let refused = upload(&app, &t.collector, pdf("one more")).await;
    assert_eq!(refused.status, StatusCode::INSUFFICIENT_STORAGE);
    // Another tenant's quota is its own.
    uploaded(&app, &other, pdf_of("metro", 1024 * KIB)).await;
    let described = app.get("/problems/document_quota_exceeded", "").await;
    assert_eq!(described.status, StatusCode::OK);
    assert_eq!(described.body["status"], 507);
}

/// A document no entry names is deleted by housekeeping a day after its
/// upload (docs/recording.md): the one a paper opt-in names stays, an unnamed
/// one stays for its first 24 hours and is gone after them, and a paper
/// opt-in that names it then is refused as `unknown_document`. Run on the
/// app's clock, as the background job runs. Before, unnamed uploads were
/// kept for ever.
#[both]
async fn documents_no_entry_names_are_purged_after_a_day() {
    use crate::retention::run_housekeeping;
    use consent_ledger::services::housekeeping::Budget;
    const HOUR: i64 = 3_600_000;
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    let (named, named_sha) = uploaded(&app, &t, pdf("named")).await;
    let (unnamed, unnamed_sha) = uploaded(&app, &t, pdf("unnamed")).await;
    let mut paper = paper_opt_in(NUMBER, &named, &named_sha);
    paper["captured_at"] = json!(app.at(-10));
    app.recorded_opt_in(&t, paper).await;
    app.clock.advance(12 * HOUR);
    let (younger, _) = uploaded(&app, &t, pdf("younger")).await;
    let status = |id: String| {
        let app = &app;
        let auditor = t.auditor.clone();
        async move { fetch(app, &auditor, &id).await.status() }
    };

    // A second short of a day: everything is kept.
    app.clock.advance(12 * HOUR - 1_000);
    assert_eq!(run_housekeeping(&app, Budget::default()).documents, 0);
    for id in [&named, &unnamed, &younger] {
        assert_eq!(status(id.clone()).await, StatusCode::OK);
    }
    // A day and a second: the unnamed upload is gone, nothing else.
    app.clock.advance(2_000);
    assert_eq!(run_housekeeping(&app, Budget::default()).documents, 1);
    assert_eq!(status(unnamed.clone()).await, StatusCode::NOT_FOUND);
    assert_eq!(status(named.clone()).await, StatusCode::OK);
    assert_eq!(status(younger.clone()).await, StatusCode::OK);
    let mut late = paper_opt_in("+4915199990000", &unnamed, &unnamed_sha);
    late["captured_at"] = json!(app.at(-10));
    let refused = app.opt_in(&t, late).await;
    assert_eq!(refused.code(), "unknown_document", "{}", refused.body);
    // The younger one a day after its own upload; the named one for ever.
    app.clock.advance(12 * HOUR);
    assert_eq!(run_housekeeping(&app, Budget::default()).documents, 1);
    assert_eq!(status(younger).await, StatusCode::NOT_FOUND);
    app.clock.advance(1_000 * HOUR);
    assert_eq!(run_housekeeping(&app, Budget::default()).documents, 0);
    assert_eq!(status(named).await, StatusCode::OK);
}
