//! Bulk import (docs/import.md, SPEC section 14): NDJSON and CSV files of
//! existing consent recorded as backfills through the one recording path,
//! by the API (`POST /v1/imports`) and the CLI (`consent-ledger import`);
//! idempotent per (import id, line); every kind of bad input named by its
//! line and problem code; nothing recorded when `all_or_nothing` refuses.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const NDJSON: &str = "application/x-ndjson";

/// The `n`th number of the test's import files.
fn number(n: usize) -> String {
    format!("+49151{:08}", 10_000_000 + n)
}

/// An opt-in line, captured two years ago.
fn opt_in_line(n: usize) -> Value {
    let mut line = web_opt_in(&number(n), "Makro", &["marketing"]);
    line["type"] = json!("opt_in");
    line["captured_at"] = json!(days_ago(730));
    line
}

/// An opt-out line, captured a year ago.
fn opt_out_line(n: usize) -> Value {
    let mut line = api_opt_out(&number(n));
    line["type"] = json!("opt_out");
    line["captured_at"] = json!(days_ago(365));
    line
}

fn ndjson(lines: &[Value]) -> Vec<u8> {
    let mut file = String::new();
    for line in lines {
        file.push_str(&line.to_string());
        file.push('\n');
    }
    file.into_bytes()
}

async fn post_import(app: &TestApp, t: &Tenant, query: &str, kind: &str, file: Vec<u8>) -> Answer {
    app.post_raw(&format!("/v1/imports?{query}"), &t.admin, kind, file)
        .await
}

/// Waits until the import is no longer running; its standing.
async fn finished(app: &TestApp, t: &Tenant, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = app.get(&format!("/v1/imports/{id}"), &t.admin).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        if answer.body["status"] != "running" {
            return answer.body;
        }
        assert!(
            Instant::now() < deadline,
            "import {id} still running: {}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn tree_size(app: &TestApp, t: &Tenant) -> u64 {
    app.get("/v1/tenant", &t.admin).await.body["tree_size"]
        .as_u64()
        .expect("a tree size")
}

/// Every line recorded once, in order, as a backfill by the admin's key;
/// the same import sent again records nothing; decisions follow.
#[both]
async fn an_import_records_each_line_once_whatever_how_often_it_is_sent() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let lines: Vec<Value> = (0..5).map(opt_in_line).chain([opt_out_line(1)]).collect();
    let file = ndjson(&lines);
    let taken = post_import(&app, &t, "id=crm-2024", NDJSON, file.clone()).await;
    assert_eq!(taken.status, StatusCode::ACCEPTED, "{}", taken.body);
    assert_eq!(taken.body, json!({"id": "crm-2024"}));
    let done = finished(&app, &t, "crm-2024").await;
    assert_eq!(
        done,
        json!({"id": "crm-2024", "status": "done", "read": 6, "recorded": 6, "refused": 0, "refused_lines": []})
    );
    assert_eq!(tree_size(&app, &t).await, 6);
    let again = post_import(&app, &t, "id=crm-2024&mode=valid_lines", NDJSON, file).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    assert_eq!(finished(&app, &t, "crm-2024").await, done);
    assert_eq!(tree_size(&app, &t).await, 6, "nothing recorded twice");
    // In the order given, backfilled, by the admin's key.
    let entry = app.get("/v1/entries/5", &t.auditor).await;
    assert_eq!(entry.body["entry"]["type"], "opt_out", "{}", entry.body);
    let admin_key_id = app.get("/v1/keys", &t.admin).await.body["keys"][0]["id"].clone();
    assert_eq!(entry.body["entry"]["collector"], admin_key_id);
    let check =
        |n: usize| json!({"number": number(n), "channel": "whatsapp", "purpose": "marketing"});
    assert_eq!(app.reason(&t, check(0)).await, "allowed");
    assert_eq!(app.reason(&t, check(1)).await, "opted_out");
    // One event in the audit trail for the group of lines, not one a line.
    let trail = app.get("/v1/audit-events?limit=1000", &t.admin).await;
    let events = trail.body["audit_events"].as_array().expect("events");
    let kinds: Vec<&Value> = events.iter().map(|e| &e["kind"]).collect();
    assert!(!kinds.contains(&&json!("backfill")), "{kinds:?}");
    let noted: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "import.recorded")
        .collect();
    assert_eq!(noted.len(), 1, "{}", trail.body);
    assert_eq!(noted[0]["actor"], admin_key_id);
    assert_eq!(
        noted[0]["details"],
        json!({"import": "crm-2024", "lines": [1, 6], "seqs": [0, 5], "recorded": 6})
    );
}

/// CSV: a header line, one column per field, arrays space-separated,
/// `evidence.<key>` columns, quoted cells with commas and line breaks.
#[both]
async fn a_csv_import_reads_fields_lists_and_evidence_columns() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let when = days_ago(400);
    let file = format!(
        "type,number,channel,company_name_shown,consent_text,purposes,message_channels,captured_at,evidence.page_url,evidence.ip,evidence.user_agent,evidence.reason\n\
         opt_in,{},web,Makro,\"Yes, Makro may send me offers,\nand news\",marketing utility,whatsapp sms,{when},https://shop.example/a,203.0.113.7,Mozilla/5.0,\n\
         opt_out,{},api,,,marketing,,{when},,,,a letter\n",
        number(0),
        number(0),
    );
    let taken = post_import(
        &app,
        &t,
        "id=paper-forms",
        "text/csv; charset=utf-8",
        file.into_bytes(),
    )
    .await;
    assert_eq!(taken.status, StatusCode::ACCEPTED, "{}", taken.body);
    let done = finished(&app, &t, "paper-forms").await;
    assert_eq!(done["recorded"], 2, "{done}");
    let check = |purpose: &str, channel: &str| json!({"number": number(0), "channel": channel, "purpose": purpose});
    assert_eq!(
        app.reason(&t, check("marketing", "whatsapp")).await,
        "opted_out"
    );
    assert_eq!(app.reason(&t, check("utility", "sms")).await, "allowed");
    let opt_in = app
        .post(
            "/v1/subjects/query",
            &t.auditor,
            &json!({"number": number(0)}),
        )
        .await;
    let text = opt_in.body["history"][0]["openings"]["consent_text"].clone();
    assert_eq!(
        text, "Yes, Makro may send me offers,\nand news",
        "{}",
        opt_in.body
    );
}

/// The bad lines of NDJSON: not JSON, an unknown brand, a number that does
/// not parse, not UTF-8, a wrong field, a file cut inside its last line.
fn bad_ndjson() -> Vec<u8> {
    let mut unknown_brand = opt_in_line(2);
    unknown_brand["company_name_shown"] = json!("Nobody");
    unknown_brand["consent_text"] = json!("Yes, Nobody may write");
    let mut bad_number = opt_in_line(3);
    bad_number["number"] = json!("+49 not a number");
    let mut wrong_field = opt_out_line(6);
    wrong_field["purposes"] = json!("marketing");
    let mut file = Vec::new();
    file.extend(ndjson(&[opt_in_line(0)]));
    file.extend(b"{\"type\":\"opt_in\",\n");
    file.extend(ndjson(&[unknown_brand, bad_number]));
    file.extend(b"{\"type\":\"opt_out\",\"reason\":\"caf\xe9\"}\n");
    file.extend(ndjson(&[opt_out_line(5), wrong_field]));
    let last = opt_in_line(7).to_string();
    file.extend(&last.as_bytes()[..last.len() / 2]);
    file
}

/// Line → code of the bad lines of [`bad_ndjson`].
const BAD_LINES: [(u64, &str); 6] = [
    (2, "malformed_line"),
    (3, "unknown_brand"),
    (4, "invalid_number"),
    (5, "invalid_encoding"),
    (7, "invalid_request"),
    (8, "truncated_line"),
];

fn codes_of(lines: &Value) -> Vec<(u64, String)> {
    lines
        .as_array()
        .expect("refused lines")
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().unwrap(),
                l["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn expected_codes() -> Vec<(u64, String)> {
    BAD_LINES.iter().map(|(l, c)| (*l, c.to_string())).collect()
}

/// `all_or_nothing` (the default): each bad line named with its code,
/// nothing recorded; never a value of the file in the answer.
#[both]
async fn all_or_nothing_names_every_bad_line_and_records_nothing() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let refused = post_import(&app, &t, "id=bad", NDJSON, bad_ndjson()).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.code(), "import_refused");
    let named: Vec<(u64, String)> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let line = e["field"].as_str().unwrap().trim_start_matches("line ");
            (
                line.parse().unwrap(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(named, expected_codes(), "{}", refused.body);
    assert_eq!(tree_size(&app, &t).await, 0, "nothing half-recorded");
    let standing = app.get("/v1/imports/bad", &t.admin).await.body;
    assert_eq!(standing["status"], "refused");
    assert_eq!(
        (standing["recorded"].clone(), standing["refused"].clone()),
        (json!(0), json!(6))
    );
    assert_eq!(codes_of(&standing["refused_lines"]), expected_codes());
    for hidden in ["not a number", "Nobody", "caf"] {
        assert!(
            !standing.to_string().contains(hidden),
            "{hidden} echoed: {standing}"
        );
    }
    // Fixed and sent again with the same id, it is recorded.
    let fixed = ndjson(&[opt_in_line(0), opt_out_line(5)]);
    let taken = post_import(&app, &t, "id=bad", NDJSON, fixed).await;
    assert_eq!(taken.status, StatusCode::ACCEPTED, "{}", taken.body);
    assert_eq!(
        finished(&app, &t, "bad").await,
        json!({"id": "bad", "status": "done", "read": 2, "recorded": 2, "refused": 0, "refused_lines": []})
    );
    assert_eq!(tree_size(&app, &t).await, 2);
}

/// `valid_lines`: the good lines recorded, the bad ones listed.
#[both]
async fn valid_lines_records_the_good_lines_and_lists_the_others() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let taken = post_import(&app, &t, "id=some&mode=valid_lines", NDJSON, bad_ndjson()).await;
    assert_eq!(taken.status, StatusCode::ACCEPTED, "{}", taken.body);
    let done = finished(&app, &t, "some").await;
    assert_eq!(done["status"], "done");
    assert_eq!(
        (done["read"].clone(), done["recorded"].clone()),
        (json!(8), json!(2)),
        "{done}"
    );
    assert_eq!(codes_of(&done["refused_lines"]), expected_codes());
    assert_eq!(tree_size(&app, &t).await, 2);
}

/// CSV's own bad lines: another number of fields than the header, a cell
/// that is not UTF-8, a file cut inside a quoted cell, an unknown column.
#[both]
async fn csv_problems_are_named_by_line() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let header = "type,number,channel,captured_at,evidence.reason\n";
    let good = |n: usize| format!("opt_out,{},api,{},letter\n", number(n), days_ago(9));
    let mut file = header.as_bytes().to_vec();
    file.extend(good(0).as_bytes());
    file.extend(b"opt_out,+4915112345678,api\n");
    file.extend(b"opt_out,+4915112345678,api,2024-01-01T00:00:00Z,caf\xe9\n");
    file.extend(good(1).as_bytes());
    file.extend(format!("opt_out,{},api,{},\"a letter", number(2), days_ago(9)).as_bytes());
    let refused = post_import(&app, &t, "id=csv-bad", "text/csv", file).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    let standing = app.get("/v1/imports/csv-bad", &t.admin).await.body;
    assert_eq!(
        codes_of(&standing["refused_lines"]),
        vec![
            (3, "malformed_line".to_owned()),
            (4, "invalid_encoding".to_owned()),
            (6, "truncated_line".to_owned()),
        ],
        "{standing}"
    );
    let unknown = post_import(
        &app,
        &t,
        "id=csv-col",
        "text/csv",
        b"type,phone\nopt_out,1\n".to_vec(),
    )
    .await;
    assert_eq!(
        unknown.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown.body
    );
    assert_eq!(
        unknown.body["errors"][0],
        json!({"field": "line 1", "code": "malformed_line"})
    );
    assert_eq!(tree_size(&app, &t).await, 0);
}

/// What the request itself gets wrong: its media type, id, mode, size,
/// role; an unknown import is 404.
#[both]
async fn a_bad_import_request_is_refused_precisely() {
    let app = spawn_app_with(|args| args.limits.import_max_mib = Some(1)).await;
    let t = app.tenant("makro", "Makro").await;
    let file = ndjson(&[opt_in_line(0)]);
    let json = post_import(&app, &t, "id=a", "application/json", file.clone()).await;
    assert_eq!(
        (json.status, json.code()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let id = post_import(&app, &t, "id=a%20b", NDJSON, file.clone()).await;
    assert_eq!(
        (id.status, id.field_code("id")),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_value".into())
        )
    );
    let no_id = post_import(&app, &t, "mode=valid_lines", NDJSON, file.clone()).await;
    assert_eq!(
        no_id.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        no_id.body
    );
    let mode = post_import(&app, &t, "id=a&mode=some", NDJSON, file.clone()).await;
    assert_eq!(
        mode.field_code("mode"),
        Some("invalid_value".into()),
        "{}",
        mode.body
    );
    let big = vec![b'\n'; (1 << 20) + 1];
    let large = post_import(&app, &t, "id=big", NDJSON, big).await;
    assert_eq!(
        (large.status, large.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let collector = app
        .post_raw("/v1/imports?id=a", &t.collector, NDJSON, file)
        .await;
    assert_eq!(collector.status, StatusCode::FORBIDDEN);
    let unknown = app.get("/v1/imports/never", &t.admin).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(tree_size(&app, &t).await, 0);
}

/// The CLI: a progress bar's worth of lines by `operator:cli`, the file's
/// SHA-256 as the id, exit 1 naming refused lines, and a run killed half
/// way completed by the next with nothing recorded twice.
#[both(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_imports_a_file_and_completes_one_cut_short() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let dir = app.scratch();
    let lines: Vec<Value> = (0..6000).map(opt_in_line).collect();
    let path = dir.join("crm.ndjson");
    std::fs::write(&path, ndjson(&lines)).unwrap();
    let path = path.display().to_string();
    let data_dir = app.data_dir();
    let mut child = cli_command(&["import", "--tenant", "makro", &path], Some(&data_dir))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary runs");
    let id = sha256_of_file(&path);
    // Killed once some groups are in, long before the end.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let standing = app.get(&format!("/v1/imports/{id}"), &t.admin).await;
        let read = standing.body["read"].as_u64().unwrap_or(0);
        if read >= 500 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended early"
        );
        assert!(Instant::now() < deadline, "no progress: {}", standing.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let cut = app.get(&format!("/v1/imports/{id}"), &t.admin).await.body;
    assert_eq!(cut["status"], "running", "{cut}");
    let cut_at = cut["read"].as_u64().unwrap();
    assert!(cut_at < 6000, "{cut}");
    assert_eq!(tree_size(&app, &t).await, cut["recorded"].as_u64().unwrap());
    // Without --take-over another run waits for the first.
    let args = ["import", "--tenant", "makro", &path];
    let (code, _, err) = tokio::task::block_in_place(|| run_cli(&args, Some(&data_dir)));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--take-over"), "{err}");
    let args = ["import", "--tenant", "makro", &path, "--take-over"];
    let (code, out, err) = tokio::task::block_in_place(|| run_cli(&args, Some(&data_dir)));
    assert_eq!(code, 0, "{err}");
    let done: Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(
        (done["status"].clone(), done["recorded"].clone()),
        (json!("done"), json!(6000)),
        "{done}"
    );
    assert_eq!(tree_size(&app, &t).await, 6000, "each line once");
    let first = app.get("/v1/entries/0", &t.auditor).await;
    assert_eq!(first.body["entry"]["collector"], "operator:cli");
    // A file with bad lines: exit 1, each named; nothing recorded.
    let bad = dir.join("bad.ndjson");
    std::fs::write(&bad, bad_ndjson()).unwrap();
    let bad = bad.display().to_string();
    let args = ["import", "--tenant", "makro", &bad];
    let (code, _, err) = tokio::task::block_in_place(|| run_cli(&args, Some(&data_dir)));
    assert_eq!(code, 1, "{err}");
    for (line, problem) in BAD_LINES {
        assert!(
            err.contains(&format!("line {line}: {problem}")),
            "line {line}: {err}"
        );
    }
    assert_eq!(tree_size(&app, &t).await, 6000);
}

fn sha256_of_file(path: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}
