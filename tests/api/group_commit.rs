//! Group commit (`store/group_commit.rs`): concurrent appends to one log
//! share one transaction, each in its own savepoint; a write that fails
//! fails alone and leaves nothing behind; every answer comes after the
//! commit, so what was answered 201 is there for any other connection.

use crate::helpers::*;
use consent_ledger::startup::Hooks;
use consent_ledger::store::group_commit::Gate;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

const NUMBERS: [&str; 3] = ["+4915155501001", "+4915155501002", "+4915155501003"];
const UNKNOWN_DOCUMENT_NUMBER: &str = "+4915155501004";

/// A paper opt-in naming a document the tenant does not have: refused
/// under the log's lock, after its subject was made.
fn paper_opt_in_naming_no_document(number: &str) -> Value {
    json!({
        "number": number,
        "channel": "paper",
        "company_name_shown": "Makro",
        "consent_text": "Yes, send me offers from Makro on WhatsApp. Reply STOP to end.",
        "purposes": ["marketing"],
        "captured_at": at(-10),
        "evidence": {"document_sha256": "a".repeat(64), "signer_name": "Jana Novak",
            "signed_on": today(), "collected_by": "store 12",
            "document_id": "doc_0123456789ab"}
    })
}

/// How many subjects and entries the database holds, read on a connection
/// of its own.
fn stored_counts(app: &TestApp) -> (i64, i64) {
    use consent_ledger::store::connection::establish;
    use consent_ledger::store::schema::{entries, subjects};
    use diesel::{QueryDsl, RunQueryDsl};
    let mut conn = establish(&app.database_target()).unwrap();
    let subjects: i64 = subjects::table.count().get_result(&mut conn).unwrap();
    let entries: i64 = entries::table.count().get_result(&mut conn).unwrap();
    (subjects, entries)
}

/// Sends an opt-in without waiting for its answer.
fn send_opt_in(app: &TestApp, t: &Tenant, body: &Value) -> tokio::task::JoinHandle<Answer> {
    let request = app
        .client
        .post(app.url("/v1/opt-ins"))
        .bearer_auth(&t.collector)
        .json(body);
    tokio::spawn(async move { TestApp::answer(request.send().await.unwrap()).await })
}

async fn until_queued(gate: &Gate, n: usize) {
    for _ in 0..400 {
        if gate.queued() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{} of {n} writes were queued", gate.queued());
}

#[both(pgbouncer)]
async fn queued_appends_commit_together_and_a_failing_one_fails_alone() {
    let gate = Arc::new(Gate::default());
    let hooks = Hooks {
        group_gate: Some(gate.clone()),
        ..Hooks::default()
    };
    let app = spawn_app_hooked(|_| {}, hooks).await;
    let t = app.tenant("makro", "Makro").await;
    let mut bodies: Vec<Value> = NUMBERS
        .iter()
        .map(|n| web_opt_in(n, "Makro", &["marketing"]))
        .collect();
    // The failing write sits between good ones in the same group.
    bodies.insert(1, paper_opt_in_naming_no_document(UNKNOWN_DOCUMENT_NUMBER));
    let sent: Vec<_> = bodies
        .into_iter()
        .map(|body| send_opt_in(&app, &t, &body))
        .collect();
    // All four wait in the log's queue while the gate is shut; nothing is
    // answered and nothing is stored.
    until_queued(&gate, 4).await;
    assert!(sent.iter().all(|s| !s.is_finished()));
    assert_eq!(stored_counts(&app), (0, 0));
    gate.open();
    let mut answers = Vec::new();
    for s in sent {
        answers.push(s.await.unwrap());
    }
    let refused = answers.remove(1);
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.code(), "unknown_document");
    let mut seqs: Vec<u64> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
            a.body["seq"].as_u64().unwrap()
        })
        .collect();
    seqs.sort();
    assert_eq!(
        seqs,
        [0, 1, 2],
        "one log, no gap where the refused write was"
    );
    // The refused write's subject was rolled back with its savepoint.
    assert_eq!(stored_counts(&app), (3, 3));
    for number in NUMBERS {
        let check = app
            .check(
                &t,
                json!({"number": number, "purpose": "marketing", "brand": "Makro"}),
            )
            .await;
        assert_eq!(check.body["allowed"], true, "{}", check.body);
    }
    let check = app
        .check(
            &t,
            json!({"number": UNKNOWN_DOCUMENT_NUMBER, "purpose": "marketing", "brand": "Makro"}),
        )
        .await;
    assert_eq!(check.body["allowed"], false, "{}", check.body);
    verify_db_passes(&app).await;
}

#[both(pgbouncer)]
async fn many_concurrent_appends_each_get_their_own_entry() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let sent: Vec<_> = (0..40)
        .map(|i| {
            let body = web_opt_in(
                &format!("+49151555{:05}", 20_000 + i),
                "Makro",
                &["marketing"],
            );
            send_opt_in(&app, &t, &body)
        })
        .collect();
    let mut seqs = Vec::new();
    for s in sent {
        let answer = s.await.unwrap();
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        seqs.push(answer.body["seq"].as_u64().unwrap());
        // Answered only once committed: another connection sees it.
        assert!(stored_counts(&app).1 as u64 > *seqs.last().unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (0..40).collect::<Vec<u64>>());
    verify_db_passes(&app).await;
}
