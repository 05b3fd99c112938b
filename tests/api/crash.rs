//! Crash safety of the real binary: concurrent opt-ins with an
//! `Idempotency-Key`, the server SIGKILLed at a random moment, several
//! rounds. Afterwards every acknowledged append is in the log exactly once,
//! every request whose outcome was unknown records once when retried with
//! its key, seqs have no gap, `verify-db` passes on each crashed database,
//! and every checkpoint handed out before a crash is still stored and
//! consistent with the final one.
//!
//! A request killed after its key was stored `in_progress` but before its
//! append committed answers 409 `idempotency_in_progress` until the key is
//! taken over (docs/api.md, 60 s): the test shows such a request
//! recorded nothing, waits that window out once at the end, and retries.
//! `CRASH_SEED=<n>` replays the random delays of a run (the seed is printed);
//! `CONSENT_LEDGER_CRASH_ROUNDS=100` is the longer run of the README.

use crate::helpers::*;
use consent_ledger::ledger::merkle;
use consent_ledger::ledger::note::{open_checkpoint, Verifier};
use consent_ledger::store::idempotency::TAKEOVER_MILLIS;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rounds in the suite; `CONSENT_LEDGER_CRASH_ROUNDS=<n>` runs more (the
/// longer run of the README's figures: 100).
const ROUNDS: usize = 6;

fn rounds() -> usize {
    std::env::var("CONSENT_LEDGER_CRASH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(ROUNDS)
}
const CLIENTS: usize = 16;
/// The server is killed this long (ms) after the clients start.
const KILL_AFTER_MS: (u64, u64) = (200, 1500);
/// Upper bound for a start, a readiness wait or one request.
const PATIENCE: Duration = Duration::from_secs(60);

/// A small deterministic generator (SplitMix64): the run's delays from its seed.
struct Rng(u64);

impl Rng {
    fn seeded() -> (Self, u64) {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock after 1970")
                    .as_nanos() as u64
            });
        (Self(seed), seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// The server process; killed (SIGKILL) when dropped, so a failing test
/// leaves nothing running.
pub(crate) struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    /// SIGKILL; the server must still have been running.
    pub(crate) fn crash(mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "the server exited by itself ({status}): {}",
                log_of(&self.log)
            );
        }
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Starts `consent-ledger serve` on the app's data dir (and database) and a
/// free loopback port; points `app` at it once it answers `/readyz`.
async fn serve(app: &mut TestApp, start: usize) -> Server {
    serve_with(app, start, &[]).await
}

/// [`serve`] with more settings in its environment.
pub(crate) async fn serve_with(app: &mut TestApp, start: usize, env: &[(&str, &str)]) -> Server {
    let log = app.scratch().join(format!("serve-{start}.log"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_consent-ledger"));
    command
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("CONSENT_LEDGER_METRICS_BIND", "off")
        .env("CONSENT_LEDGER_DATA_DIR", app.data_dir())
        .env("CONSENT_LEDGER_ORIGIN", "ledger.test")
        .env("CONSENT_LEDGER_OPERATOR_TOKEN", OPERATOR_TOKEN)
        // Background signing often, so kills land in it too.
        .env("CONSENT_LEDGER_CHECKPOINT_INTERVAL", "200ms")
        .env("CONSENT_LEDGER_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env_remove("DATABASE_URL")
        .env_remove("CONSENT_LEDGER_CONFIG")
        .env_remove("CONSENT_LEDGER_MASTER_KEY_FILE")
        .env_remove("CONSENT_LEDGER_SIGNER_STATE_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    // The caller's settings over the defaults above.
    command.envs(env.iter().copied());
    if let Some((url, pooler)) = service_database(&app.scratch()) {
        command.env("DATABASE_URL", url);
        if let Some(pooler) = pooler {
            command.env("CONSENT_LEDGER_PG_POOLER", pooler);
        }
    }
    let mut server = Server {
        child: command.spawn().expect("the server starts"),
        log,
    };
    let port = listening_port(&mut server).await;
    app.address = format!("http://127.0.0.1:{port}");
    // A new client: the old one's pooled connections died with the server.
    app.client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("client");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ready = app.client.get(app.url("/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "not ready: {}",
            log_of(&server.log)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The port from the server's "listening" log line.
async fn listening_port(server: &mut Server) -> u16 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        for line in log_of(&server.log).lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if event["fields"]["message"] == "consent-ledger listening" {
                return event["fields"]["port"].as_u64().expect("port") as u16;
            }
        }
        if let Some(status) = server.child.try_wait().expect("try_wait") {
            panic!("the server exited ({status}): {}", log_of(&server.log));
        }
        assert!(Instant::now() < deadline, "no listening line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One opt-in: its number is used by no other request, its key and body
/// never change, so a retry is the same request.
#[derive(Clone)]
pub(crate) struct Sent {
    pub(crate) n: usize,
    key: String,
    body: Value,
}

impl Sent {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            n,
            key: format!("crash-{n}"),
            body: web_opt_in(&number(n), "Makro", &["marketing"]),
        }
    }
}

pub(crate) fn number(n: usize) -> String {
    format!("+49151{:08}", 20_000_000 + n)
}

/// What a client learnt of one request.
pub(crate) enum Outcome {
    /// 201 with this body (`seq`, `leaf_hash`, …).
    Acknowledged(Value),
    /// No answer, or a retryable 503: recorded or not, nobody knows.
    Unknown,
    Unexpected(StatusCode, String),
}

/// Posts new opt-ins one after the other until `stop`.
pub(crate) async fn keep_posting(
    client: reqwest::Client,
    url: String,
    collector: String,
    next: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Vec<(Sent, Outcome)> {
    let mut sent = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let request = Sent::new(next.fetch_add(1, Ordering::SeqCst));
        let response = client
            .post(&url)
            .bearer_auth(&collector)
            .header("Idempotency-Key", &request.key)
            .json(&request.body)
            .send()
            .await;
        let outcome = match response {
            Err(_) => Outcome::Unknown,
            Ok(response) => {
                let status = response.status();
                let retry_after = response.headers().contains_key("retry-after");
                match response.text().await {
                    Err(_) => Outcome::Unknown,
                    Ok(text) if status == StatusCode::CREATED => {
                        Outcome::Acknowledged(serde_json::from_str(&text).expect("a 201's JSON"))
                    }
                    // Retryable, and says when: anything else is a defect.
                    Ok(_) if status == StatusCode::SERVICE_UNAVAILABLE && retry_after => {
                        Outcome::Unknown
                    }
                    Ok(text) => Outcome::Unexpected(status, text),
                }
            }
        };
        sent.push((request, outcome));
    }
    sent
}

/// What the test knows of the log.
#[derive(Default)]
pub(crate) struct Book {
    /// Number index → the 201 body that acknowledged it.
    pub(crate) acknowledged: BTreeMap<usize, Value>,
    /// Outcome unknown, to retry with the same key after the restart.
    pub(crate) unknown: Vec<Sent>,
    /// Answered 409 `idempotency_in_progress` after a crash: retried once
    /// the key can be taken over (`TAKEOVER_MILLIS` after this instant).
    pub(crate) in_progress: Vec<(Sent, Instant)>,
    /// Signed checkpoints fetched before each crash.
    pub(crate) kept: Vec<String>,
    /// The 201 bodies of the last round, to replay a few after the crash.
    pub(crate) last_round: Vec<(Sent, Value)>,
    pub(crate) sent: usize,
    pub(crate) acknowledged_at_once: usize,
    pub(crate) unknown_total: usize,
    pub(crate) replayed: usize,
    pub(crate) recorded_on_retry: usize,
    pub(crate) taken_over: usize,
}

impl Book {
    /// Files what a client learnt of one request.
    pub(crate) fn file(&mut self, request: Sent, outcome: Outcome) {
        self.sent += 1;
        match outcome {
            Outcome::Acknowledged(body) => {
                self.acknowledged_at_once += 1;
                self.last_round.push((request.clone(), body.clone()));
                self.acknowledge(request.n, body);
            }
            Outcome::Unknown => {
                self.unknown_total += 1;
                self.unknown.push(request);
            }
            Outcome::Unexpected(status, text) => {
                panic!("opt-in {}: {status} {text}", request.n)
            }
        }
    }

    pub(crate) fn acknowledge(&mut self, n: usize, body: Value) {
        assert!(body["seq"].is_u64(), "{body}");
        let before = self.acknowledged.insert(n, body);
        assert!(before.is_none(), "number {n} acknowledged twice");
    }
}

/// One round of load; the server is SIGKILLed after a random delay.
async fn load_and_crash(
    app: &TestApp,
    t: &Tenant,
    server: Server,
    rng: &mut Rng,
    next: &Arc<AtomicUsize>,
    book: &mut Book,
) -> Instant {
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(keep_posting(
                app.client.clone(),
                app.url("/v1/opt-ins"),
                t.collector.clone(),
                next.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let started = Instant::now();
    let kill_after = Duration::from_millis(rng.between(KILL_AFTER_MS.0, KILL_AFTER_MS.1));
    // A checkpoint at a random moment of the load, before the kill.
    tokio::time::sleep(Duration::from_millis(
        rng.between(0, kill_after.as_millis() as u64 / 2),
    ))
    .await;
    let (status, note) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK, "{note}");
    book.kept.push(note);
    tokio::time::sleep(kill_after.saturating_sub(started.elapsed())).await;
    stop.store(true, Ordering::SeqCst);
    server.crash();
    let killed = Instant::now();
    book.last_round.clear();
    for client in clients {
        for (request, outcome) in client.await.expect("client task") {
            book.file(request, outcome);
        }
    }
    killed
}

/// `verify-db` on the database as the crash left it; the entries it counted.
pub(crate) fn verify_db(app: &TestApp) -> u64 {
    let (code, out, err) = run_cli(&["verify-db"], Some(&app.data_dir()));
    assert_eq!(code, 0, "verify-db: {out}{err}");
    // "makro: N entries and M checkpoints verified"
    out.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("verify-db said {out}"))
}

fn replayed(answer: &Answer) -> bool {
    answer
        .headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

pub(crate) async fn retry(app: &TestApp, t: &Tenant, request: &Sent) -> Answer {
    app.post_with(
        "/v1/opt-ins",
        &t.collector,
        &request.body,
        &[("Idempotency-Key", request.key.as_str())],
    )
    .await
}

/// After a restart: nothing acknowledged went missing, answers replay, and
/// every request of unknown outcome is retried with its key.
pub(crate) async fn after_restart(
    app: &TestApp,
    t: &Tenant,
    book: &mut Book,
    entries: u64,
    killed: Instant,
) {
    let size = app.get("/v1/tenant", &t.admin).await.body["tree_size"].clone();
    assert_eq!(
        size,
        json!(entries),
        "the restarted server sees what verify-db saw"
    );
    if let Some(last) = book
        .acknowledged
        .values()
        .map(|b| b["seq"].as_u64().unwrap())
        .max()
    {
        assert!(
            last < entries,
            "acknowledged seq {last} lost: the log holds {entries}"
        );
    }
    // Acknowledged answers replay exactly.
    for (request, first) in book.last_round.iter().step_by(16).take(8) {
        let again = retry(app, t, request).await;
        assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
        assert!(replayed(&again), "opt-in {} recorded twice", request.n);
        assert_eq!(&again.body, first);
    }
    for request in std::mem::take(&mut book.unknown) {
        let answer = retry(app, t, &request).await;
        match answer.status {
            StatusCode::CREATED if replayed(&answer) => book.replayed += 1,
            StatusCode::CREATED => book.recorded_on_retry += 1,
            StatusCode::CONFLICT if answer.code() == "idempotency_in_progress" => {
                // Killed between its key and its append: nothing recorded.
                let query = app
                    .post(
                        "/v1/subjects/query",
                        &t.auditor,
                        &json!({"number": number(request.n)}),
                    )
                    .await;
                assert_eq!(
                    query.status,
                    StatusCode::NOT_FOUND,
                    "opt-in {}: {}",
                    request.n,
                    query.body
                );
                book.in_progress.push((request, killed));
                continue;
            }
            other => panic!("retry of opt-in {}: {other} {}", request.n, answer.body),
        }
        book.acknowledge(request.n, answer.body);
    }
}

/// Waits until the `in_progress` keys can be taken over, then retries them:
/// each records now, for the first time.
pub(crate) async fn take_over(app: &TestApp, t: &Tenant, book: &mut Book) {
    let Some(latest) = book.in_progress.iter().map(|(_, killed)| *killed).max() else {
        return;
    };
    let takeover = Duration::from_millis(TAKEOVER_MILLIS as u64 + 250);
    tokio::time::sleep((latest + takeover).saturating_duration_since(Instant::now())).await;
    for (request, _) in std::mem::take(&mut book.in_progress) {
        let answer = retry(app, t, &request).await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "opt-in {}: {}",
            request.n,
            answer.body
        );
        assert!(
            !replayed(&answer),
            "opt-in {} was in progress, yet done",
            request.n
        );
        book.taken_over += 1;
        book.acknowledge(request.n, answer.body);
    }
}

/// The export: seqs 0..n without a gap, one entry per number, each
/// acknowledged one at its seq with its leaf hash, and nothing else.
pub(crate) async fn check_export(app: &TestApp, t: &Tenant, book: &Book) -> (String, String) {
    let (status, export) = app.get_text("/v1/export", &t.auditor).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let size = lines[0]["tree_size"].as_u64().unwrap();
    let entries = &lines[1..lines.len() - 1];
    assert_eq!(entries.len() as u64, size);
    let mut by_number: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (i, line) in entries.iter().enumerate() {
        assert_eq!(
            line["entry"]["seq"],
            json!(i),
            "a gap or a reordering at {i}"
        );
        let e164 = line["openings"]["subject"]["e164"]
            .as_str()
            .expect("an opened subject");
        by_number.entry(e164.to_owned()).or_default().push(i as u64);
    }
    for (n, acked) in &book.acknowledged {
        let seq = acked["seq"].as_u64().unwrap();
        let seqs = by_number.remove(&number(*n)).unwrap_or_default();
        assert_eq!(
            seqs,
            [seq],
            "opt-in {n}: acknowledged at {seq}, found at {seqs:?}"
        );
        assert_eq!(
            entries[seq as usize]["leaf_hash"], acked["leaf_hash"],
            "opt-in {n}"
        );
    }
    assert!(
        by_number.is_empty(),
        "entries nobody acknowledged: {by_number:?}"
    );
    let checkpoint = lines.last().unwrap()["checkpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    (export, checkpoint)
}

/// Each kept checkpoint is still stored, and the final tree extends it:
/// by a consistency proof from the API, and by the offline verifier.
async fn check_kept(app: &TestApp, t: &Tenant, book: &Book, export: &str, last: &str) {
    let vkey = app.get("/v1/tenant", &t.admin).await.body["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let verifier = Verifier::parse(&vkey).unwrap();
    let last = open_checkpoint(last, &verifier).expect("the final checkpoint");
    let mut trusted = Vec::new();
    let mut previous = 0;
    for (i, note) in book.kept.iter().enumerate() {
        let kept = open_checkpoint(note, &verifier).expect("a kept checkpoint");
        assert!(
            kept.size >= previous,
            "checkpoint {i} went back to {}",
            kept.size
        );
        previous = kept.size;
        let (status, stored) = app
            .get_text(
                &format!("/v1/log/checkpoints?size={}", kept.size),
                &t.auditor,
            )
            .await;
        assert_eq!((status, stored.as_str()), (StatusCode::OK, note.as_str()));
        let path = format!(
            "/v1/log/proof/consistency?from={}&to={}",
            kept.size, last.size
        );
        let c = app.get(&path, &t.auditor).await;
        assert_eq!(c.status, StatusCode::OK, "{}", c.body);
        let proof = hashes_of(&c.body["proof"]);
        assert!(
            merkle::verify_consistency(kept.size, last.size, &kept.root, &last.root, &proof),
            "checkpoint {i} (size {}) is not consistent with size {}",
            kept.size,
            last.size
        );
        trusted.push(write_file(&app.scratch(), &format!("kept-{i}.note"), note));
    }
    let path = write_file(&app.scratch(), "export.ndjson", export);
    let mut args = vec!["verify", path.as_str(), "--key", vkey.as_str()];
    for file in &trusted {
        args.extend(["--trusted", file.as_str()]);
    }
    let (code, out, err) = run_cli(&args, None);
    assert_eq!(code, 0, "verify: {out}{err}");
}

/// Where the log really was (the PostgreSQL suite falls back to SQLite
/// when no cluster starts).
fn backend(app: &TestApp) -> &'static str {
    match app.database_target() {
        consent_ledger::config::DatabaseTarget::Postgres(_) => "PostgreSQL",
        _ => "SQLite",
    }
}

/// The test's own data dir (and, on PostgreSQL, its own database), kept
/// across the server's restarts.
pub(crate) fn crash_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    make_database(dir.path());
    TestApp::external(String::new(), dir)
}

#[both(pgbouncer, flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_under_concurrent_appends_loses_and_doubles_nothing() {
    let begun = Instant::now();
    let (mut rng, seed) = Rng::seeded();
    eprintln!("crash test: CRASH_SEED={seed}");
    let mut app = crash_app();
    let mut server = serve(&mut app, 0).await;
    let t = app.tenant("makro", "Makro").await;
    let next = Arc::new(AtomicUsize::new(0));
    let mut book = Book::default();
    let rounds = rounds();
    for round in 1..=rounds {
        let killed = load_and_crash(&app, &t, server, &mut rng, &next, &mut book).await;
        let entries = verify_db(&app);
        server = serve(&mut app, round).await;
        after_restart(&app, &t, &mut book, entries, killed).await;
    }
    take_over(&app, &t, &mut book).await;
    let (export, last) = check_export(&app, &t, &book).await;
    check_kept(&app, &t, &book, &export, &last).await;
    server.crash();
    let entries = verify_db(&app);
    assert_eq!(entries as usize, book.acknowledged.len());
    eprintln!(
        "crash test ({backend}): {rounds} rounds of {CLIENTS} clients, {sent} requests sent, \
         {at_once} acknowledged at once, {unknown} maybe (after the restart {replayed} replayed, \
         {fresh} recorded on retry, {taken} recorded after the {takeover} s takeover), \
         {kept} checkpoints kept and consistent, final log {entries} entries, lost=0, doubled=0, \
         {secs:.1} s",
        backend = backend(&app),
        sent = book.sent,
        at_once = book.acknowledged_at_once,
        unknown = book.unknown_total,
        replayed = book.replayed,
        fresh = book.recorded_on_retry,
        taken = book.taken_over,
        takeover = TAKEOVER_MILLIS / 1000,
        kept = book.kept.len(),
        secs = begun.elapsed().as_secs_f64(),
    );
}
