//! Faults of the database server under load (docs/operations.md,
//! "When the database goes away"): two instances take opt-ins and checks
//! on a PostgreSQL cluster of the test's own while every session of their
//! database is ended (`pg_terminate_backend`) in the middle of group
//! commits, and then the server is killed (`pg_ctl stop -m immediate`) and
//! started again.
//!
//! Meanwhile every answer is a 2xx or a 503 `not_ready`/`busy` with
//! `Retry-After`, never another 5xx; `/readyz` answers 503 while the server
//! is away and 200 once it is back, with no restart of the service.
//! Afterwards every acknowledged opt-in is in the log once, every request
//! of unknown outcome records once when retried with its key, and
//! `verify-db` passes.

use crate::crash::{after_restart, check_export, keep_posting, number, take_over, verify_db, Book};
use crate::helpers::*;
use crate::postgres::{own_cluster, OwnCluster};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WRITERS: usize = 8;
const CHECKERS: usize = 2;
const DATABASE: &str = "faults";

/// What the checking clients were answered, by status and problem code.
#[derive(Default, Debug)]
struct Checked {
    allowed_or_not: usize,
    retry_later: usize,
}

/// Checks numbers that are being opted in until `stop`; panics on any
/// answer but 200 or a retryable 503 that says when to retry.
async fn keep_checking(
    client: reqwest::Client,
    url: String,
    sender: String,
    stop: Arc<AtomicBool>,
) -> Checked {
    let mut checked = Checked::default();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let body =
            json!({"number": number(n % 200), "channel": "whatsapp", "purpose": "marketing"});
        n += 1;
        let response = client
            .post(&url)
            .bearer_auth(&sender)
            .json(&body)
            .send()
            .await
            .expect("the instance answers");
        let status = response.status();
        let retry_after = response.headers().contains_key("retry-after");
        let text = response.text().await.expect("a body");
        match status {
            StatusCode::OK => checked.allowed_or_not += 1,
            StatusCode::SERVICE_UNAVAILABLE
                if retry_after && (text.contains("\"not_ready\"") || text.contains("\"busy\"")) =>
            {
                checked.retry_later += 1
            }
            other => panic!("a check answered {other} (Retry-After: {retry_after}): {text}"),
        }
    }
    checked
}

/// Waits until `/readyz` answers `want` (each probe waits 2 s at most for
/// the database).
async fn readiness(app: &TestApp, want: StatusCode) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = app.get("/readyz", "").await;
        if answer.status == want {
            if want == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(answer.code(), "not_ready", "{}", answer.body);
                assert!(answer.headers.contains_key("retry-after"));
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {}: {}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The faults, in order, while the clients run: sessions ended three
/// times, then the server killed until both instances say they are not
/// ready, then started again until both say they are. When it came back.
async fn faults(cluster: &OwnCluster, apps: [&TestApp; 2]) -> (usize, Instant) {
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut ended = 0;
    for _ in 0..3 {
        ended += tokio::task::block_in_place(|| cluster.terminate_sessions(DATABASE));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::task::block_in_place(|| cluster.kill());
    for app in apps {
        readiness(app, StatusCode::SERVICE_UNAVAILABLE).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| cluster.start());
    let back = Instant::now();
    for app in apps {
        readiness(app, StatusCode::OK).await;
    }
    // Both take opt-ins again, as they are.
    tokio::time::sleep(Duration::from_millis(800)).await;
    (ended, back)
}

#[postgres_only(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_server_cut_off_and_killed_loses_nothing_acknowledged() {
    let begun = Instant::now();
    let Some(cluster) = own_cluster() else {
        return; // Not installed and not required: the run said so.
    };
    let url = cluster.new_database(DATABASE);
    let a = spawn_app_on(&url, |_| {}).await;
    let data = a.data_dir();
    let b = spawn_app_on(&url, move |args| args.data_dir = Some(data)).await;
    let t = a.tenant("makro", "Makro").await;

    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let apps = [&a, &b];
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let app = apps[i % 2];
            let (client, url) = (app.client.clone(), app.url("/v1/opt-ins"));
            tokio::spawn(keep_posting(
                client,
                url,
                t.collector.clone(),
                next.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let checkers: Vec<_> = (0..CHECKERS)
        .map(|i| {
            let app = apps[i % 2];
            let (client, url) = (app.client.clone(), app.url("/v1/checks"));
            tokio::spawn(keep_checking(client, url, t.sender.clone(), stop.clone()))
        })
        .collect();
    let (ended, back) = faults(&cluster, apps).await;
    stop.store(true, Ordering::SeqCst);

    let mut book = Book::default();
    for writer in writers {
        for (request, outcome) in writer.await.expect("a writer") {
            book.file(request, outcome);
        }
    }
    let mut checked = Checked::default();
    for checker in checkers {
        let c = checker.await.expect("a checker");
        checked.allowed_or_not += c.allowed_or_not;
        checked.retry_later += c.retry_later;
    }
    let at_once = book.acknowledged_at_once;
    assert!(at_once > 0 && checked.allowed_or_not > 0, "{checked:?}");
    // Opt-ins are acknowledged after the server came back, by both.
    for app in apps {
        let n = next.fetch_add(1, Ordering::SeqCst);
        let answer = app
            .opt_in(&t, web_opt_in(&number(n), "Makro", &["marketing"]))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        book.acknowledge(n, answer.body);
    }

    let entries = tokio::task::block_in_place(|| verify_db(&a));
    after_restart(&a, &t, &mut book, entries, back).await;
    take_over(&a, &t, &mut book).await;
    check_export(&a, &t, &book).await;
    let entries = tokio::task::block_in_place(|| verify_db(&a));
    assert_eq!(entries as usize, book.acknowledged.len());
    eprintln!(
        "database faults: {ended} sessions ended mid-load, the server killed and restarted; \
         {sent} opt-ins sent, {at_once} acknowledged at once, {unknown} maybe (then {replayed} \
         replayed, {fresh} recorded on retry, {taken} after the takeover); {checks} checks \
         answered, {later} told to retry; final log {entries} entries, lost=0, doubled=0, \
         {secs:.1} s",
        sent = book.sent,
        unknown = book.unknown_total,
        replayed = book.replayed,
        fresh = book.recorded_on_retry,
        taken = book.taken_over,
        checks = checked.allowed_or_not,
        later = checked.retry_later,
        secs = begun.elapsed().as_secs_f64(),
    );
}
