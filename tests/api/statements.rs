//! Decision statements (docs/statements.md): a check with `"statement":
//! true` answers its decision as a note signed by the log's key, naming a
//! signed checkpoint that holds the entry it rests on; the offline verifier
//! and `consent-ledger verify` check it with the verifier key alone.

use crate::helpers::*;
use consent_ledger::ledger::note::{open_checkpoint, Verifier};
use consent_ledger::ledger::statement::{verify_statement, Statement};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn log_key(app: &TestApp, t: &Tenant) -> Verifier {
    let key = app.get("/v1/tenant", &t.admin).await.body["verifier_key"].clone();
    Verifier::parse(key.as_str().expect("a verifier key")).expect("it parses")
}

/// The statement of an answer, verified with the log's key.
fn stated(answer: &Value, key: &Verifier) -> Statement {
    let note = answer["statement"].as_str().expect("a statement");
    verify_statement(note, key).expect("the statement verifies")
}

/// A stated check of `NUMBER` for marketing, without a reference.
async fn stated_check(app: &TestApp, t: &Tenant) -> Answer {
    let check = json!({"number": NUMBER, "purpose": "marketing", "statement": true});
    app.check(t, check).await
}

#[both]
async fn a_statement_names_its_entry_in_a_signed_tree_and_verifies_offline() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let key = log_key(&app, &t).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let check = json!({"number": NUMBER, "purpose": "marketing", "statement": true,
                       "reference": "campaign-42/msg-7"});
    let answer = app.check(&t, check).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["reason"], "allowed");
    let statement = stated(&answer.body, &key);
    assert_eq!(statement.origin, "ledger.test/makro");
    assert_eq!(
        (statement.purpose.as_str(), statement.channel.as_str()),
        ("marketing", "whatsapp")
    );
    assert_eq!(statement.brand.as_deref(), Some("Makro"));
    assert_eq!(statement.reason, "allowed");
    assert_eq!(statement.reference.as_deref(), Some("campaign-42/msg-7"));
    // The entry the answer rests on, with its leaf hash as the log holds it.
    let seq = answer.body["consent"]["seq"].as_u64().expect("a seq");
    let (stated_seq, leaf) = statement.entry.expect("an entry");
    assert_eq!(stated_seq, seq);
    let entry = app.get(&format!("/v1/entries/{seq}"), &t.auditor).await;
    assert_eq!(entry.body["leaf_hash"], hex::encode(leaf));
    // The person only by the subject commitment.
    let report = app
        .post("/v1/subjects/query", &t.auditor, &json!({"number": NUMBER}))
        .await;
    assert_eq!(
        statement.commitment.as_deref(),
        report.body["subject"].as_str()
    );
    assert!(!answer.body["statement"].as_str().unwrap().contains(NUMBER));
    // A checkpoint the service signed, holding the entry, with that root.
    assert!(statement.tree_size > seq);
    let (status, note) = app
        .get_text(
            &format!("/v1/log/checkpoints?size={}", statement.tree_size),
            &t.auditor,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let checkpoint = open_checkpoint(&note, &key).expect("the checkpoint verifies");
    assert_eq!(checkpoint.root, statement.root);
    // The decision time, canonical.
    assert!(
        statement.decided_at.ends_with('Z'),
        "{}",
        statement.decided_at
    );
    // Without `statement`, none.
    let plain = app
        .check(&t, json!({"number": NUMBER, "purpose": "marketing"}))
        .await;
    assert!(plain.body.get("statement").is_none(), "{}", plain.body);
}

#[both]
async fn a_decision_that_rests_on_nothing_is_stated_with_dashes() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let key = log_key(&app, &t).await;
    let answer = stated_check(&app, &t).await;
    assert_eq!(answer.body["reason"], "no_opt_in");
    let statement = stated(&answer.body, &key);
    assert_eq!(statement.entry, None);
    assert_eq!(statement.commitment, None);
    assert_eq!(statement.reference, None);
    // The latest signed checkpoint: the new log's, of size 0.
    assert_eq!(statement.tree_size, 0);
    let note = answer.body["statement"].as_str().unwrap();
    assert!(
        note.contains("\n-\nmarketing whatsapp Makro\nno_opt_in\n- -\n"),
        "{note}"
    );
}

#[both]
async fn an_opt_out_is_stated_as_what_the_decision_rests_on() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let key = log_key(&app, &t).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    // The tree is signed at size 1 before the opt-out: the statement must
    // sign a newer one to hold it.
    app.get_text("/v1/log/checkpoint", &t.auditor).await;
    app.recorded_opt_out(&t, api_opt_out(NUMBER)).await;
    let answer = stated_check(&app, &t).await;
    assert_eq!(answer.body["reason"], "opted_out");
    let statement = stated(&answer.body, &key);
    assert_eq!(statement.reason, "opted_out");
    assert_eq!(statement.entry.map(|(seq, _)| seq), Some(1));
    assert_eq!(statement.tree_size, 2);
}

#[both]
async fn batch_items_are_stated_when_they_ask() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let key = log_key(&app, &t).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let batch = json!({"checks": [
        {"number": NUMBER, "purpose": "marketing", "statement": true, "reference": "a-1"},
        {"number": NUMBER, "purpose": "marketing"},
        {"number": "+4915199999999", "purpose": "marketing", "statement": true},
        {"number": NUMBER, "purpose": "marketing", "statement": true, "reference": "has space"},
        {"number": "12", "purpose": "marketing", "statement": true},
    ]});
    let answer = app.post("/v1/checks/batch", &t.sender, &batch).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let items = answer.body["decisions"].as_array().unwrap();
    let first = stated(&items[0], &key);
    assert_eq!(
        (first.reason.as_str(), first.reference.as_deref()),
        ("allowed", Some("a-1"))
    );
    // What a batch reads together is what a single check reads.
    let (seq, leaf) = first.entry.expect("an entry");
    let entry = app.get(&format!("/v1/entries/{seq}"), &t.auditor).await;
    assert_eq!(entry.body["leaf_hash"], hex::encode(leaf));
    let single = stated(&stated_check(&app, &t).await.body, &key);
    assert_eq!(first.commitment, single.commitment);
    assert!(first.commitment.is_some());
    assert!(items[1].get("statement").is_none(), "{}", items[1]);
    assert_eq!(stated(&items[2], &key).reason, "no_opt_in");
    assert_eq!(items[3]["error"]["code"], "invalid_request");
    assert!(
        items[3]["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("reference"),
        "{}",
        items[3]
    );
    assert_eq!(items[4]["error"]["code"], "invalid_number");
}

#[both]
async fn a_reference_is_checked_and_needs_a_statement() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    for (check, why) in [
        (
            json!({"number": NUMBER, "purpose": "marketing", "statement": true, "reference": "x".repeat(129)}),
            "printable ASCII",
        ),
        (
            json!({"number": NUMBER, "purpose": "marketing", "statement": true, "reference": "naïve"}),
            "printable ASCII",
        ),
        (
            json!({"number": NUMBER, "purpose": "marketing", "reference": "a-1"}),
            "\"statement\": true",
        ),
    ] {
        let answer = app.check(&t, check).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            answer.field_code("reference").as_deref(),
            Some("invalid_value")
        );
        assert!(
            answer.body["detail"].as_str().unwrap().contains(why),
            "{}",
            answer.body
        );
    }
}

#[both]
async fn the_command_line_verifies_a_statement_and_refuses_an_altered_one() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let key = log_key(&app, &t).await.to_verifier_key();
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let answer = stated_check(&app, &t).await;
    let note = answer.body["statement"].as_str().unwrap();
    let dir = app.scratch();
    let good = write_file(&dir, "statement.txt", note);
    let (code, out, err) = run_cli(&["verify", &good, "--key", &key], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("verified: decision statement of ledger.test/makro: allowed for marketing whatsapp Makro"),
        "{out}"
    );
    let altered = write_file(
        &dir,
        "altered.txt",
        &note.replace("\nallowed\n", "\nopted_out\n"),
    );
    let (code, out, _) = run_cli(&["verify", &altered, "--key", &key], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("statement:"), "{out}");
}

/// Set (to anything but `0`) in CI: a Go toolchain or `sumdb/note` that is
/// missing fails the cross-check instead of skipping it.
const REQUIRE_GO_VAR: &str = "CONSENT_LEDGER_REQUIRE_GO";

/// `tests/go/verify_note` built with Debian's Go and its
/// `golang.org/x/mod/sumdb/note` (`apt-get install golang-go
/// golang-golang-x-mod-dev`), or why not.
fn go_note_verifier(dir: &std::path::Path) -> Result<std::path::PathBuf, String> {
    let program = dir.join("verify_note");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/go/verify_note/main.go");
    let built = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&program)
        .arg(source)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOFLAGS", "")
        .output()
        .map_err(|e| format!("go did not run: {e}"))?;
    if !built.status.success() {
        return Err(format!(
            "go build failed: {}",
            String::from_utf8_lossy(&built.stderr)
        ));
    }
    Ok(program)
}

/// Go's `sumdb/note`, an implementation outside this project, opens a
/// statement with the log's verifier key and reads the same ten lines; a
/// statement altered after signing it refuses.
#[tokio::test]
async fn go_sumdb_note_verifies_a_statement() {
    let app = spawn_app().await;
    let verifier = match go_note_verifier(&app.scratch()) {
        Ok(program) => program,
        Err(why) if std::env::var(REQUIRE_GO_VAR).is_ok_and(|v| !v.is_empty() && v != "0") => {
            panic!("{REQUIRE_GO_VAR} is set but the Go verifier did not build: {why}")
        }
        Err(why) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "NOTE: statements are not cross-checked with Go's sumdb/note ({why}); {REQUIRE_GO_VAR}=1 makes this a failure"
            );
            return;
        }
    };
    let t = app.tenant("makro", "Makro").await;
    let key = log_key(&app, &t).await.to_verifier_key();
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let answer = app
        .check(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "statement": true, "reference": "go-1"}),
        )
        .await;
    let note = answer.body["statement"].as_str().unwrap().to_owned();
    let file = write_file(&app.scratch(), "statement.txt", &note);
    let out = std::process::Command::new(&verifier)
        .args([&key, &file])
        .output()
        .expect("the Go verifier runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        Some(text.as_str()),
        note.split("\n\n")
            .next()
            .map(|t| format!("{t}\n"))
            .as_deref()
    );
    assert!(text.starts_with("consent-ledger decision v1\nledger.test/makro\n"));
    assert!(text.ends_with("\ngo-1\n"), "{text}");
    let altered = write_file(
        &app.scratch(),
        "altered.txt",
        &note.replace("\ngo-1\n", "\ngo-2\n"),
    );
    let out = std::process::Command::new(&verifier)
        .args([&key, &altered])
        .output()
        .expect("the Go verifier runs");
    assert_eq!(out.status.code(), Some(1));
}

/// The entry's receipt at the statement's tree size proves the entry is in
/// the tree the statement names; a size that does not hold the entry, or
/// that no checkpoint was signed at, is refused.
#[both]
async fn a_receipt_at_the_statements_size_proves_its_entry() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let key = log_key(&app, &t).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let answer = stated_check(&app, &t).await.body;
    let statement = stated(&answer, &key);
    let statement_note = answer["statement"].as_str().unwrap().to_owned();
    let size = statement.tree_size;
    // The log grows and is signed again: the receipt stays at the size asked.
    app.recorded_opt_in(&t, web_opt_in("+4915199999999", "Makro", &["marketing"]))
        .await;
    app.get_text("/v1/log/checkpoint", &t.auditor).await;
    let (seq, leaf) = statement.entry.expect("an entry");
    let receipt = app
        .get(
            &format!("/v1/entries/{seq}/receipt?size={size}"),
            &t.auditor,
        )
        .await;
    assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.body);
    assert_eq!(receipt.body["tree_size"], size);
    assert_eq!(receipt.body["leaf_hash"], hex::encode(leaf));
    let vkey = key.to_verifier_key();
    let path = write_file(
        &app.scratch(),
        "receipt.json",
        &serde_json::to_string(&receipt.body).unwrap(),
    );
    let (code, out, err) = run_cli(&["verify", &path, "--key", &vkey], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("at tree size {size}")), "{out}");
    // The statement with its receipt, and the checkpoint of that size an
    // auditor kept: the entry is in the tree the statement names.
    let note = write_file(&app.scratch(), "statement.txt", &statement_note);
    let (_, kept) = app
        .get_text(&format!("/v1/log/checkpoints?size={size}"), &t.auditor)
        .await;
    let kept = write_file(&app.scratch(), "kept.txt", &kept);
    let args = [
        "verify",
        &note,
        "--key",
        &vkey,
        "--receipt",
        &path,
        "--trusted",
        &kept,
    ];
    let (code, out, err) = run_cli(&args, None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("the receipt proves the entry at seq {seq} in that tree, the same as 1 trusted checkpoint")),
        "{out}"
    );
    // The receipt of another entry, or at another size, does not back it.
    app.get_text("/v1/log/checkpoint", &t.auditor).await;
    let elsewhere = app.get("/v1/entries/1/receipt", &t.auditor).await;
    let elsewhere = write_file(
        &app.scratch(),
        "elsewhere.json",
        &serde_json::to_string(&elsewhere.body).unwrap(),
    );
    let (code, out, _) = run_cli(
        &["verify", &note, "--key", &vkey, "--receipt", &elsewhere],
        None,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not the statement's entry"), "{out}");
    // Trusted checkpoints without the receipt are not silently passed over.
    let (code, _, err) = run_cli(&["verify", &note, "--key", &vkey, "--trusted", &kept], None);
    assert_eq!(code, 2);
    assert!(err.contains("give --receipt"), "{err}");
    let latest = app
        .get(&format!("/v1/entries/{seq}/receipt"), &t.auditor)
        .await;
    assert_eq!(latest.body["tree_size"], 2);
    let below = app
        .get(&format!("/v1/entries/{seq}/receipt?size={seq}"), &t.auditor)
        .await;
    assert_eq!(
        below.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        below.body
    );
    assert_eq!(below.field_code("size").as_deref(), Some("invalid_value"));
    let unsigned = app
        .get(&format!("/v1/entries/{seq}/receipt?size=7"), &t.auditor)
        .await;
    assert_eq!(unsigned.status, StatusCode::NOT_FOUND, "{}", unsigned.body);
}

/// A sender hands its statements back; an auditor lists a person's, also
/// after the person was erased; a forged or foreign statement refuses the
/// whole request, and a statement handed twice is kept once.
#[both]
async fn statements_are_kept_for_the_sender_and_listed_for_auditors() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let other = app.tenant("other", "Other").await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let first = stated_check(&app, &t).await.body["statement"].clone();
    app.recorded_opt_out(&t, api_opt_out(NUMBER)).await;
    let second = stated_check(&app, &t).await.body["statement"].clone();
    let unknown = app
        .check(
            &t,
            json!({"number": "+4915199999999", "purpose": "marketing", "statement": true}),
        )
        .await
        .body["statement"]
        .clone();
    let kept = app
        .post(
            "/v1/statements",
            &t.sender,
            &json!({"statements": [first, second, unknown, first]}),
        )
        .await;
    assert_eq!(kept.status, StatusCode::CREATED, "{}", kept.body);
    assert_eq!(kept.body, json!({"stored": 4}));
    // Refused whole: a statement altered, or of another log.
    let altered = second
        .as_str()
        .unwrap()
        .replace("\nopted_out\n", "\nallowed\n");
    let foreign = app
        .check(
            &other,
            json!({"number": NUMBER, "purpose": "marketing", "statement": true}),
        )
        .await
        .body["statement"]
        .clone();
    for (bad, at) in [(json!(altered), 1), (foreign, 1), (json!("not a note"), 1)] {
        let refused = app
            .post(
                "/v1/statements",
                &t.sender,
                &json!({"statements": [first, bad]}),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        let field = format!("statements[{at}]");
        assert_eq!(
            refused.field_code(&field).as_deref(),
            Some("invalid_statement")
        );
    }
    // The person's two, oldest decision first; the unknown number's is not theirs.
    let listed = app
        .post(
            "/v1/statements/query",
            &t.auditor,
            &json!({"number": NUMBER}),
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let notes: Vec<&Value> = listed.body["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["statement"])
        .collect();
    assert_eq!(notes, vec![&first, &second]);
    // A sender does not read them back.
    let sender = app
        .post(
            "/v1/statements/query",
            &t.sender,
            &json!({"number": NUMBER}),
        )
        .await;
    assert_eq!(sender.status, StatusCode::FORBIDDEN);
    // Erased, the person's statements stay: they name only the commitment.
    let erased = app
        .post("/v1/subjects/erase", &t.admin, &json!({"number": NUMBER}))
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    let after = app
        .post(
            "/v1/statements/query",
            &t.auditor,
            &json!({"number": NUMBER}),
        )
        .await;
    assert_eq!(after.body["statements"].as_array().unwrap().len(), 2);
    // The other tenant holds none of them.
    let theirs = app
        .post(
            "/v1/statements/query",
            &other.auditor,
            &json!({"number": NUMBER}),
        )
        .await;
    assert_eq!(theirs.body, json!({"statements": []}));
    // Each listing is in the audit trail.
    let trail = app.get("/v1/audit-events", &t.admin).await;
    let reads = trail.body["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "statements.read")
        .count();
    assert_eq!(reads, 2, "{}", trail.body);
}
