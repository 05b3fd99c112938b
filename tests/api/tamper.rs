//! Changing the database behind the service's back: `verify-db` names the
//! first bad row, on either backend (a restored older copy: `restore.rs`);
//! holding its log's lock from outside: the service gives up with 503.

use crate::helpers::*;
use consent_ledger::config::DatabaseTarget;
use consent_ledger::store::connection::establish;
use diesel::RunQueryDsl;
use reqwest::StatusCode;

/// A log of six entries with a signed checkpoint, clean under `verify-db`.
pub async fn signed_log() -> (TestApp, Tenant) {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    for i in 0..6 {
        let number = format!("+49151000000{i:02}");
        app.recorded_opt_in(&t, web_opt_in(&number, "Makro", &["marketing"]))
            .await;
    }
    assert_eq!(
        app.get("/v1/log/checkpoint", &t.auditor).await.status,
        StatusCode::OK
    );
    let (code, out, err) = run_cli(&["verify-db"], Some(&app.data_dir()));
    assert_eq!(code, 0, "clean before tampering: {out}{err}");
    assert!(
        out.contains("makro: 6 entries and 2 checkpoints verified"),
        "{out}"
    );
    (app, t)
}

fn try_tamper(app: &TestApp, sql: &[&str]) -> Result<(), diesel::result::Error> {
    let mut conn = establish(&app.database_target()).unwrap();
    for statement in sql {
        diesel::sql_query(*statement).execute(&mut conn)?;
    }
    Ok(())
}

/// The SQL for 32 zero bytes, a newline and disabling the checkpoint
/// guard, in the dialect of the app's database.
struct Dialect {
    zero_hash: &'static str,
    newline: &'static str,
    drop_checkpoint_guard: &'static str,
}

fn dialect(app: &TestApp) -> Dialect {
    match app.database_target() {
        DatabaseTarget::Sqlite(_) => Dialect {
            zero_hash: "zeroblob(32)",
            newline: "char(10)",
            drop_checkpoint_guard: "DROP TRIGGER checkpoints_append_only_update",
        },
        DatabaseTarget::Postgres(_) => Dialect {
            zero_hash: "decode(repeat('00', 32), 'hex')",
            newline: "chr(10)",
            drop_checkpoint_guard: "ALTER TABLE checkpoints DISABLE TRIGGER checkpoints_guard",
        },
    }
}

pub fn tamper(app: &TestApp, sql: &[&str]) {
    try_tamper(app, sql).unwrap();
}

fn verify_db_fails_at(app: &TestApp, expected: &str) {
    let (code, out, err) = run_cli(&["verify-db", "--tenant", "makro"], Some(&app.data_dir()));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.starts_with(&format!("makro: {expected}")),
        "expected {expected:?}, got {out}"
    );
}

#[both]
async fn an_altered_entry_is_named() {
    let (app, _) = signed_log().await;
    tamper(&app, &["UPDATE entries SET canonical_json = replace(canonical_json, '\"marketing\"', '\"utility\"') WHERE seq = 3"]);
    verify_db_fails_at(&app, "seq 3: ");
}

#[both]
async fn an_altered_entry_with_a_recomputed_leaf_hash_breaks_the_chain() {
    let (app, _) = signed_log().await;
    // Change the entry and its stored leaf hash consistently: the next
    // entry's prev (and the signed root) still give it away.
    tamper(&app, &["UPDATE entries SET canonical_json = replace(canonical_json, '\"marketing\"', '\"utility\"') WHERE seq = 2"]);
    let mut conn = establish(&app.database_target()).unwrap();
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        canonical_json: String,
    }
    let row: Row = diesel::sql_query("SELECT canonical_json FROM entries WHERE seq = 2")
        .get_result(&mut conn)
        .unwrap();
    let leaf = hex::encode(consent_ledger::ledger::merkle::hash_leaf(
        row.canonical_json.as_bytes(),
    ));
    diesel::sql_query(format!(
        "UPDATE entries SET leaf_hash = '{leaf}' WHERE seq = 2"
    ))
    .execute(&mut conn)
    .unwrap();
    verify_db_fails_at(&app, "seq 3: prev");
}

#[both]
async fn a_deleted_entry_is_named() {
    let (app, _) = signed_log().await;
    tamper(
        &app,
        &[
            "DELETE FROM consent_events WHERE seq = 2",
            "DELETE FROM entries WHERE seq = 2",
        ],
    );
    verify_db_fails_at(&app, "seq 2: the row is missing");
}

#[both]
async fn an_inserted_entry_is_named() {
    let (app, _) = signed_log().await;
    // A copy of entry 5 appended as seq 6, behind the head's back.
    tamper(&app, &["INSERT INTO entries SELECT tenant_id, 6, leaf_hash, replace(canonical_json, '\"seq\":5', '\"seq\":6'), subject_id, evidence_salt, evidence_jcs, consent_text_sha256 FROM entries WHERE seq = 5"]);
    verify_db_fails_at(&app, "seq 6: ");
}

#[both]
async fn an_entry_inserted_in_the_middle_is_named() {
    let (app, _) = signed_log().await;
    // Shift entries 2.. up by one and put a copy of entry 1 at seq 2.
    tamper(&app, &[
        "UPDATE entries SET seq = -seq - 1 WHERE seq >= 2",
        "UPDATE entries SET seq = -seq WHERE seq < 0",
        "INSERT INTO entries SELECT tenant_id, 2, leaf_hash, canonical_json, subject_id, evidence_salt, evidence_jcs, consent_text_sha256 FROM entries WHERE seq = 1",
    ]);
    verify_db_fails_at(&app, "seq 2: ");
}

#[both]
async fn swapped_entries_are_named() {
    let (app, _) = signed_log().await;
    tamper(
        &app,
        &[
            "UPDATE entries SET seq = 100 WHERE seq = 1",
            "UPDATE entries SET seq = 1 WHERE seq = 4",
            "UPDATE entries SET seq = 4 WHERE seq = 100",
        ],
    );
    verify_db_fails_at(&app, "seq 1: the row holds the entry of seq 4");
}

#[both]
async fn altered_evidence_and_merkle_nodes_are_named() {
    let (app, _) = signed_log().await;
    tamper(&app, &["UPDATE entries SET evidence_jcs = replace(evidence_jcs, '203.0.113.7', '203.0.113.8') WHERE seq = 4"]);
    verify_db_fails_at(&app, "seq 4: evidence opening");
    let (app, _) = signed_log().await;
    let zero = dialect(&app).zero_hash;
    tamper(
        &app,
        &[&format!(
            "UPDATE merkle_nodes SET hash = {zero} WHERE level = 1 AND idx = 1"
        )],
    );
    verify_db_fails_at(&app, "seq 2: the stored Merkle node");
}

#[both]
async fn a_forged_checkpoint_is_named() {
    let (app, _) = signed_log().await;
    // The triggers refuse to change a checkpoint; an attacker drops them first.
    let refused = try_tamper(&app, &["UPDATE checkpoints SET note = replace(note, 'ledger.test', 'ledger.evil') WHERE size = 6"]);
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    let Dialect {
        newline: nl,
        drop_checkpoint_guard,
        ..
    } = dialect(&app);
    tamper(&app, &[
        drop_checkpoint_guard,
        &format!("UPDATE checkpoints SET note = replace(note, {nl} || '6' || {nl}, {nl} || '7' || {nl}), size = 7 WHERE size = 6"),
    ]);
    let (code, out, _) = run_cli(&["verify-db"], Some(&app.data_dir()));
    assert_eq!(code, 1);
    assert!(out.starts_with("makro: checkpoint: "), "{out}");
}

#[both]
async fn a_row_far_beyond_the_head_is_named() {
    let (app, _) = signed_log().await;
    tamper(&app, &["INSERT INTO entries SELECT tenant_id, 100000, leaf_hash, canonical_json, subject_id, evidence_salt, evidence_jcs, consent_text_sha256 FROM entries WHERE seq = 5"]);
    verify_db_fails_at(&app, "seq 6: 1 row(s) lie outside the log");
}

#[both]
async fn a_forged_signing_key_row_is_named() {
    let (app, _) = signed_log().await;
    // A key row the master key never sealed (an attacker's own key).
    tamper(&app, &["INSERT INTO signing_keys (tenant_id, verifier_key, seed_sealed, status, first_size, created_at) VALUES ('makro', 'ledger.test/makro+00000000+AQ==', '00', 'retired', 0, 0)"]);
    verify_db_fails_at(&app, "checkpoint: signing key");
}

#[both]
async fn a_rewritten_tree_is_never_signed_again() {
    let (app, t) = signed_log().await;
    // Rewrite the node over entries 0-3 below the stored checkpoint, then
    // grow the log: the next checkpoint would not extend the stored one.
    let zero = dialect(&app).zero_hash;
    tamper(
        &app,
        &[&format!(
            "UPDATE merkle_nodes SET hash = {zero} WHERE level = 2 AND idx = 0"
        )],
    );
    // This instance's state file would catch it too; a fresh instance (no
    // state file) must refuse on the stored checkpoint alone.
    std::fs::remove_file(app.data_dir().join("signer.state")).unwrap();
    app.recorded_opt_in(&t, web_opt_in("+4915199999999", "Makro", &["utility"]))
        .await;
    let refused = app.get("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(refused.code(), "signing_refused");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("rewritten"),
        "{}",
        refused.body
    );
}

/// Another writer holds the log (here: a session outside the service) for
/// longer than the service waits (10 s): the append answers 503 `busy`,
/// writes nothing, and goes through once the log is free.
#[both]
async fn a_log_held_too_long_answers_busy_and_writes_nothing() {
    use diesel::connection::SimpleConnection;
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let mut holder = establish(&app.database_target()).unwrap();
    let hold = match app.database_target() {
        DatabaseTarget::Sqlite(_) => "BEGIN IMMEDIATE",
        DatabaseTarget::Postgres(_) => {
            "BEGIN; SELECT id FROM tenants WHERE id = 'makro' FOR UPDATE"
        }
    };
    holder.batch_execute(hold).unwrap();
    let refused = app.opt_out(&t, api_opt_out(NUMBER)).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    assert_eq!(refused.code(), "busy");
    holder.batch_execute("ROLLBACK").unwrap();
    drop(holder);
    let (status, note) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        note.lines().nth(1),
        Some("0"),
        "nothing was appended: {note}"
    );
    let seq = app.recorded_opt_out(&t, api_opt_out(NUMBER)).await;
    assert_eq!(seq, 0);
}
