//! `verify FILE --key VKEY --from URL --token KEY`: a receipt checked
//! offline, then against the log's current checkpoint with a consistency
//! proof fetched from it: it passes for an honest log that grew, and fails
//! for a log forked from a restored backup (same signing key, another
//! history). SQLite only: the fork is made from a `backup` file.

use crate::helpers::*;
use reqwest::StatusCode;

fn opt_in(n: usize) -> serde_json::Value {
    web_opt_in(&format!("+4915160000{n:03}"), "Makro", &["marketing"])
}

/// Runs the command off the test's runtime, which also serves the apps.
async fn verify_from(path: &str, vkey: &str, base: &str, token: &str) -> (i32, String, String) {
    let args: Vec<String> = [
        "verify", path, "--key", vkey, "--from", base, "--token", token,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args, None)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_receipt_is_checked_online_against_an_honest_and_a_forked_log() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    for n in 0..3 {
        app.recorded_opt_in(&t, opt_in(n)).await;
    }
    let backup = app.scratch().join("at-3.db");
    let (code, _, err) = run_cli(
        &["backup", "--out", backup.to_str().unwrap()],
        Some(&app.data_dir()),
    );
    assert_eq!(code, 0, "{err}");
    for n in 3..6 {
        app.recorded_opt_in(&t, opt_in(n)).await;
    }
    let receipt = app.get("/v1/entries/4/receipt", &t.auditor).await;
    assert_eq!(receipt.status, StatusCode::OK);
    assert_eq!(receipt.body["tree_size"], 6);
    let vkey = receipt.body["verifier_key"].as_str().unwrap().to_owned();
    let path = write_file(&app.scratch(), "receipt.json", &receipt.body.to_string());

    // The honest log, as it was and after it grew.
    let (code, out, err) = verify_from(&path, &vkey, &app.address, &t.auditor).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("consistent: the log's current checkpoint at tree size 6"),
        "{out}"
    );
    app.recorded_opt_in(&t, opt_in(6)).await;
    let (code, out, err) = verify_from(&path, &vkey, &app.address, &t.auditor).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("at tree size 7 extends it"), "{out}");

    // Credentials the log refuses: the check could not be made (2).
    let (code, _, err) = verify_from(&path, &vkey, &app.address, &t.sender).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("403"), "{err}");
    // Unreachable.
    let (code, _, err) = verify_from(&path, &vkey, "http://127.0.0.1:9", &t.auditor).await;
    assert_eq!(code, 2, "{err}");

    // A fork: the backup of size 3 restored elsewhere, with the same
    // master key (hence the same signing key) and a fresh signer state.
    let forked_dir = app.scratch().join("forked");
    std::fs::create_dir(&forked_dir).unwrap();
    std::fs::copy(&backup, forked_dir.join("consent-ledger.db")).unwrap();
    std::fs::copy(
        app.data_dir().join("master.key"),
        forked_dir.join("master.key"),
    )
    .unwrap();
    let dir = forked_dir.clone();
    let forked = spawn_app_with(move |args| args.data_dir = Some(dir)).await;
    // Smaller than the receipt's tree.
    let (code, out, err) = verify_from(&path, &vkey, &forked.address, &t.auditor).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("fewer than the 6"), "{out}");
    // Grown past it, with another history.
    for n in 100..104 {
        forked.recorded_opt_in(&t, opt_in(n)).await;
    }
    let (code, out, err) = verify_from(&path, &vkey, &forked.address, &t.auditor).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("forked or rewritten"), "{out}");
    // The receipt itself still verifies offline.
    let (code, out, _) = run_cli(&["verify", &path, "--key", &vkey], None);
    assert_eq!(code, 0, "{out}");
}

/// A log impostor on 127.0.0.1: answers every request with what `answer`
/// gives for its path (status line, headers and body, the connection then
/// closed), and keeps the paths it was asked for.
struct Impostor {
    base: String,
    asked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Impostor {
    fn start(answer: impl Fn(&str, &str) -> Vec<u8> + Send + 'static) -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (kept, own) = (asked.clone(), base.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                kept.lock().unwrap().push(path.clone());
                let _ = stream.write_all(&answer(&own, &path));
            }
        });
        Impostor { base, asked }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

fn http_answer(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    [head.as_bytes(), body].concat()
}

/// A receipt of a log with three entries: its file, its verifier key, and
/// the log's current checkpoint and the (empty) consistency proof to it.
async fn receipt_of_three(app: &TestApp, t: &Tenant) -> (String, String, String, String) {
    for n in 0..3 {
        app.recorded_opt_in(t, opt_in(n)).await;
    }
    let receipt = app.get("/v1/entries/1/receipt", &t.auditor).await;
    assert_eq!(receipt.status, StatusCode::OK);
    let vkey = receipt.body["verifier_key"].as_str().unwrap().to_owned();
    let path = write_file(&app.scratch(), "receipt.json", &receipt.body.to_string());
    let (status, note) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    let (status, proof) = app
        .get_text("/v1/log/proof/consistency?from=3&to=3", &t.auditor)
        .await;
    assert_eq!(status, StatusCode::OK);
    (path, vkey, note, proof)
}

/// A server that redirects is not followed: the check fails naming the
/// redirect, and the place it points to is never asked (with the auditor's
/// key or without). Before, the redirect was followed to a place that
/// served the honest log's checkpoint, and the receipt was reported
/// consistent with whatever answered there.
#[tokio::test]
async fn a_redirect_is_never_followed() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let (path, vkey, note, proof) = receipt_of_three(&app, &t).await;
    let impostor = Impostor::start(move |own, asked| match asked.strip_prefix("/moved") {
        Some(rest) if rest.starts_with("/v1/log/checkpoint") => {
            http_answer("200 OK", &[("Content-Type", "text/plain")], note.as_bytes())
        }
        Some(_) => http_answer(
            "200 OK",
            &[("Content-Type", "application/json")],
            proof.as_bytes(),
        ),
        None => http_answer(
            "302 Found",
            &[("Location", &format!("{own}/moved{asked}"))],
            b"",
        ),
    });
    let (code, out, err) = verify_from(&path, &vkey, &impostor.base, &t.auditor).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(!out.contains("consistent"), "{out}");
    assert!(err.contains("302") && err.contains("not followed"), "{err}");
    assert_eq!(
        impostor.asked(),
        ["/v1/log/checkpoint"],
        "only the first request"
    );
}

/// Whatever the server sends is printed with its control characters
/// escaped: an error body full of ANSI escape sequences (clear the screen,
/// set the window title, recolour), a bell, DEL and the C1 form of CSI
/// reach the terminal as `\u{..}` text. Before, they were printed raw.
#[tokio::test]
async fn what_the_server_sends_is_printed_with_its_control_characters_escaped() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let (path, vkey, _, _) = receipt_of_three(&app, &t).await;
    let hostile = "{\"detail\":\"\u{1b}[2J\u{1b}]0;owned\u{7}\u{1b}[32mconsistent\u{1b}[0m \u{9b}1A\u{7f}\u{202e}txt.exe\"}";
    let body = hostile.as_bytes().to_vec();
    let impostor = Impostor::start(move |_, _| {
        http_answer(
            "503 Service Unavailable",
            &[("Content-Type", "application/problem+json")],
            &body,
        )
    });
    let (code, out, err) = verify_from(&path, &vkey, &impostor.base, &t.auditor).await;
    assert_eq!(code, 2, "{out}{err}");
    for raw in ['\u{1b}', '\u{7}', '\u{7f}', '\u{9b}', '\u{202e}'] {
        assert!(
            !err.contains(raw) && !out.contains(raw),
            "{raw:?} printed raw: {err:?}"
        );
    }
    assert!(err.contains("503"), "{err}");
    assert!(
        err.contains("\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{1b}[32mconsistent"),
        "{err}"
    );
    assert!(err.contains("\\u{9b}1A\\u{7f}\\u{202e}txt.exe"), "{err}");
}
