//! Faults beyond our own process (docs/operations.md, "When things fail").
//!
//! The database server: two instances take opt-ins and checks on a
//! PostgreSQL cluster of the test's own while every session of their
//! database is ended (`pg_terminate_backend`) in the middle of group
//! commits, then the server is killed (`pg_ctl stop -m immediate`) and
//! started again (`CONSENT_LEDGER_FAULT_ROUNDS=<n>` repeats it). Every
//! answer is a 2xx or a 503 `not_ready`/`busy` with `Retry-After`, never
//! another 5xx; `/readyz` answers 503 while the server is away and 200 once
//! it is back, with no restart of the service; every acknowledged opt-in is
//! in the log once, every request of unknown outcome records once when
//! retried with its key, and `verify-db` passes.
//!
//! The disk: full, read-only (tmpfs mounts; root). The process killed while
//! it signs or migrates. The clock stepped back and forward.

use crate::crash::{
    after_restart, check_export, crash_app, keep_posting, number, retry, serve_with, take_over,
    verify_db, Book, Sent,
};
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

/// Rounds of faults (1; `CONSENT_LEDGER_FAULT_ROUNDS=<n>` for a longer run).
fn rounds() -> usize {
    std::env::var("CONSENT_LEDGER_FAULT_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

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
    let (mut ended, mut back) = (0, Instant::now());
    for _ in 0..rounds() {
        let (more, now) = faults(&cluster, apps).await;
        (ended, back) = (ended + more, now);
    }
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
        "database faults: {rounds} rounds, {ended} sessions ended mid-load, the server killed and restarted each round; \
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
        rounds = rounds(),
    );
}

/// Set (to anything but `0`) in CI: a test that cannot mount a small
/// filesystem fails instead of being skipped.
const REQUIRE_MOUNT_VAR: &str = "CONSENT_LEDGER_REQUIRE_MOUNT";

/// A tmpfs of a few MiB mounted on a directory of its own, so that a test
/// can fill it or turn it read-only; unmounted when dropped. Mounting
/// needs root (or `CAP_SYS_ADMIN`).
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u32) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).expect("mount point");
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0755"),
                "tmpfs",
            ])
            .arg(&path)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Self { path, _dir: dir }),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                let required =
                    std::env::var(REQUIRE_MOUNT_VAR).is_ok_and(|v| !v.is_empty() && v != "0");
                assert!(
                    !required,
                    "{REQUIRE_MOUNT_VAR} is set but no tmpfs mounts: {why}"
                );
                eprintln!("NOTE: no tmpfs mounts here ({why}); the full and read-only disk tests do not run ({REQUIRE_MOUNT_VAR}=1 makes this a failure)");
                None
            }
        }
    }

    /// Fills the filesystem to the last byte with one file; its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        for chunk in [1 << 20, 4096, 1] {
            let block = vec![0u8; chunk];
            while file.write_all(&block).is_ok() {}
        }
        let _ = file.sync_all();
        filler
    }

    fn remount(&self, mode: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.path)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .output();
    }
}

/// Posts new opt-ins until one is refused; each before it is acknowledged.
/// The refused one (which must be 507 `insufficient_storage` with
/// `Retry-After`), to retry later.
async fn post_until_refused(app: &TestApp, t: &Tenant, next: &mut usize, book: &mut Book) -> Sent {
    for _ in 0..5_000 {
        let request = Sent::new(*next);
        *next += 1;
        let answer = retry(app, t, &request).await;
        match answer.status {
            StatusCode::CREATED => book.acknowledge(request.n, answer.body),
            StatusCode::INSUFFICIENT_STORAGE => {
                assert_eq!(answer.code(), "insufficient_storage", "{}", answer.body);
                assert!(answer.headers.contains_key("retry-after"));
                return request;
            }
            other => panic!("opt-in {}: {other} {}", request.n, answer.body),
        }
    }
    panic!("5,000 opt-ins fitted on a full disk");
}

/// Retries `request` until it is recorded (the disk has room again).
async fn until_recorded(app: &TestApp, t: &Tenant, request: &Sent, book: &mut Book) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = retry(app, t, request).await;
        match answer.status {
            StatusCode::CREATED => return book.acknowledge(request.n, answer.body),
            StatusCode::INSUFFICIENT_STORAGE => {}
            other => panic!("opt-in {}: {other} {}", request.n, answer.body),
        }
        assert!(
            Instant::now() < deadline,
            "appends did not resume: {}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks and reads still answer: the first acknowledged number is allowed,
/// and the checkpoint answers (200, or 507 when signing a new one would
/// write to the disk).
async fn reads_still_answer(app: &TestApp, t: &Tenant) {
    let check = json!({"number": number(0), "channel": "whatsapp", "purpose": "marketing"});
    let answer = app.check(t, check).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["allowed"], true, "{}", answer.body);
    let checkpoint = app.get("/v1/log/checkpoint", &t.auditor).await;
    assert!(
        checkpoint.status == StatusCode::OK
            || (checkpoint.status == StatusCode::INSUFFICIENT_STORAGE
                && checkpoint.code() == "insufficient_storage"),
        "{} {}",
        checkpoint.status,
        checkpoint.body
    );
}

/// The SQLite data dir on a small filesystem that fills while the service
/// runs: appends answer 507 and resume by themselves once there is room,
/// checks answer throughout, nothing acknowledged is lost.
///
/// The signer state file on a filesystem of its own that turns read-only:
/// no checkpoint is signed (507) while it cannot be recorded there, appends
/// and checks go on, and signing resumes once it is writable. (Linux
/// refuses to remount read-only a filesystem with files open for writing,
/// as the database's are: a data dir turned read-only under the service,
/// as the kernel does after a disk error, answers SQLite's
/// `SQLITE_READONLY`, which `src/error.rs`'s tests map to 507.)
///
/// And a service started on a read-only data dir refuses to start, naming
/// the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_or_read_only_disk_refuses_writes_and_loses_nothing() {
    let (Some(disk), Some(state_disk)) = (SmallDisk::mount(24), SmallDisk::mount(1)) else {
        return;
    };
    let data = disk.path.join("data");
    let state = state_disk.path.join("signer.state");
    let app = spawn_app_with(|a| {
        a.data_dir = Some(data.clone());
        a.database_url = None;
        a.signer_state_file = Some(state.clone());
        // Only requests sign, so that the test knows when.
        a.checkpoint_interval = Some("1h".into());
    })
    .await;
    let t = app.tenant("makro", "Makro").await;
    let (mut next, mut book) = (0, Book::default());
    for _ in 0..5 {
        let request = Sent::new(next);
        next += 1;
        until_recorded(&app, &t, &request, &mut book).await;
    }

    let filler = disk.fill();
    let refused = post_until_refused(&app, &t, &mut next, &mut book).await;
    reads_still_answer(&app, &t).await;
    std::fs::remove_file(&filler).expect("room again");
    until_recorded(&app, &t, &refused, &mut book).await;

    signing_waits_for_its_state_file(&app, &t, &state_disk, &mut next, &mut book).await;
    check_export(&app, &t, &book).await;
    let (code, out, err) = tokio::task::block_in_place(|| run_cli(&["verify-db"], Some(&data)));
    assert_eq!(code, 0, "verify-db: {out}{err}");
    let entries = book.acknowledged.len();
    assert!(out.contains(&format!("makro: {entries} entries")), "{out}");
    a_read_only_data_dir_is_refused_at_start();
}

/// The state file's disk read-only: checkpoints answer 507 and none is
/// stored for the new size, appends go on; writable again, the checkpoint
/// is signed and recorded.
async fn signing_waits_for_its_state_file(
    app: &TestApp,
    t: &Tenant,
    state_disk: &SmallDisk,
    next: &mut usize,
    book: &mut Book,
) {
    let signed = app.get("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    state_disk.remount("ro");
    let request = Sent::new(*next);
    *next += 1;
    until_recorded(app, t, &request, book).await;
    let size = book.acknowledged.len();
    let refused = app.get("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(
        refused.status,
        StatusCode::INSUFFICIENT_STORAGE,
        "{}",
        refused.body
    );
    assert_eq!(refused.code(), "insufficient_storage");
    let stored = app
        .get(&format!("/v1/log/checkpoints?size={size}"), &t.auditor)
        .await;
    assert_eq!(
        stored.status,
        StatusCode::NOT_FOUND,
        "signed without its state file"
    );
    reads_still_answer(app, t).await;
    state_disk.remount("rw");
    let (status, note) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK, "{note}");
    assert!(note.contains(&format!("\n{size}\n")), "{note}");
    let kept = std::fs::read_to_string(state_disk.path.join("signer.state")).expect("state");
    assert!(kept.contains(&format!("\"size\": {size}")), "{kept}");
}

/// A start on a data dir whose filesystem is read-only fails, naming it.
fn a_read_only_data_dir_is_refused_at_start() {
    let Some(disk) = SmallDisk::mount(1) else {
        return;
    };
    let data = disk.path.join("data");
    std::fs::create_dir(&data).expect("data dir");
    disk.remount("ro");
    let settings =
        consent_ledger::config::Settings::resolve(&consent_ledger::config::SettingsArgs {
            data_dir: Some(data.clone()),
            origin: Some("ledger.test".into()),
            ..Default::default()
        })
        .expect("settings");
    let why = match consent_ledger::startup::prepare(&settings) {
        Ok(_) => panic!("a service started on a read-only data dir"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        why.contains(&data.display().to_string()) && why.contains("Read-only file system"),
        "{why}"
    );
}

/// One signed checkpoint, opened with the tenant's verifier key.
async fn checkpoint(app: &TestApp, t: &Tenant) -> consent_ledger::ledger::note::Checkpoint {
    use consent_ledger::ledger::note::{open_checkpoint, Verifier};
    let key = app.get("/v1/tenant", &t.admin).await.body["verifier_key"]
        .as_str()
        .expect("a verifier key")
        .to_owned();
    let (status, note) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK, "{note}");
    open_checkpoint(&note, &Verifier::parse(&key).unwrap()).expect("a valid checkpoint")
}

/// Whether `later` extends `earlier`, by the log's consistency proof.
async fn extends(
    app: &TestApp,
    t: &Tenant,
    earlier: &consent_ledger::ledger::note::Checkpoint,
    later: &consent_ledger::ledger::note::Checkpoint,
) -> bool {
    let path = format!(
        "/v1/log/proof/consistency?from={}&to={}",
        earlier.size, later.size
    );
    let proof = app.get(&path, &t.auditor).await;
    assert_eq!(proof.status, StatusCode::OK, "{}", proof.body);
    consent_ledger::ledger::merkle::verify_consistency(
        earlier.size,
        later.size,
        &earlier.root,
        &later.root,
        &hashes_of(&proof.body["proof"]),
    )
}

/// The server's clock stepped back an hour, then forward a day, while it
/// serves: `recorded_at` never decreases, opt-ins captured a minute ago by
/// the stepped clock are taken, and every checkpoint extends the one
/// before it.
#[both(pgbouncer)]
async fn a_clock_stepped_back_and_forward_keeps_the_log_in_order() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    let mut times = Vec::new();
    let mut checkpoints = Vec::new();
    for (step, n) in [(0, 0), (-3_600_000, 1), (86_400_000, 2)] {
        app.clock.advance(step);
        for k in 0..3 {
            let mut body = web_opt_in(&number(n * 10 + k), "Makro", &["marketing"]);
            body["captured_at"] = json!(app.at(-60));
            let answer = app.opt_in(&t, body).await;
            assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
            times.push(answer.body["recorded_at"].as_str().unwrap().to_owned());
        }
        checkpoints.push(checkpoint(&app, &t).await);
    }
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "recorded_at went back");
    // Held at the last time while the clock was behind, then the clock's.
    assert_eq!(times[3], times[2]);
    assert_eq!(times[8], app.at(0));
    for pair in checkpoints.windows(2) {
        assert!(pair[1].size > pair[0].size);
        assert!(extends(&app, &t, &pair[0], &pair[1]).await);
    }
    verify_db_passes(&app).await;
}

/// `consent-ledger serve` on a fresh data dir and database, killed
/// (SIGKILL) `after` its start: in the middle of generating its keys or
/// migrating its schema, or once listening.
async fn start_and_kill(app: &TestApp, after: Duration) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_consent-ledger"));
    command
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("CONSENT_LEDGER_METRICS_BIND", "off")
        .env("CONSENT_LEDGER_DATA_DIR", app.data_dir())
        .env("CONSENT_LEDGER_ORIGIN", "ledger.test")
        .env("CONSENT_LEDGER_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env_remove("DATABASE_URL")
        .env_remove("CONSENT_LEDGER_CONFIG")
        .env_remove("CONSENT_LEDGER_MASTER_KEY_FILE")
        .env_remove("CONSENT_LEDGER_SIGNER_STATE_FILE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some((url, pooler)) = service_database(&app.scratch()) {
        command.env("DATABASE_URL", url);
        command.env("CONSENT_LEDGER_PG_POOLER", pooler.unwrap_or("none"));
    }
    let mut child = command.spawn().expect("the server starts");
    tokio::time::sleep(after).await;
    let _ = child.kill();
    child.wait().expect("reaped");
}

/// The server started on what a kill left in `app`'s data dir and
/// database: it records an opt-in and signs it, and `verify-db` passes.
async fn comes_up_whole(app: &mut TestApp, left: &str) {
    let server = serve_with(app, 1, &[]).await;
    let t = app.tenant("makro", "Makro").await;
    let answer = app
        .opt_in(&t, web_opt_in(&number(0), "Makro", &["marketing"]))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::CREATED,
        "{left}: {}",
        answer.body
    );
    let (status, note) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK, "{left}: {note}");
    server.crash();
    let entries = tokio::task::block_in_place(|| verify_db(app));
    assert_eq!(entries, 1, "{left}");
}

/// SIGKILL during a first start, at moments spread over the time a first
/// start takes (keys, schema migrations, the first listening): the next
/// start comes up on what the kill left, records, and `verify-db` passes.
#[both(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_migrating_the_next_start_comes_up_whole() {
    // How long a first start takes here, to the answering /readyz.
    let mut app = crash_app();
    let begun = Instant::now();
    let server = serve_with(&mut app, 0, &[]).await;
    let first_start = begun.elapsed();
    server.crash();
    let all = migrations_applied(&app);
    let mut left = Vec::new();
    for k in 0..8u32 {
        let mut app = crash_app();
        start_and_kill(&app, first_start * k / 8).await;
        left.push(migrations_applied(&app));
        comes_up_whole(&mut app, &format!("killed {k}/8 into a first start")).await;
    }
    eprintln!(
        "killed during a first start of {} ms: migrations applied when killed {left:?} of {all}",
        first_start.as_millis()
    );
}

/// How many schema migrations the app's database holds (0: none, or no
/// database yet).
fn migrations_applied(app: &TestApp) -> i64 {
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let query = "SELECT COUNT(*) AS n FROM __diesel_schema_migrations";
    let counted = match app.database_url() {
        Some(url) => diesel::pg::PgConnection::establish(&url)
            .ok()
            .and_then(|mut c| diesel::sql_query(query).get_result::<Count>(&mut c).ok()),
        None => {
            let path = app.data_dir().join("consent-ledger.db");
            path.exists()
                .then(|| {
                    diesel::sqlite::SqliteConnection::establish(&path.display().to_string()).ok()
                })
                .flatten()
                .and_then(|mut c| diesel::sql_query(query).get_result::<Count>(&mut c).ok())
        }
    };
    counted.map_or(0, |c| c.n)
}

/// What a SIGKILL in the middle of migrating leaves, at every point: on
/// SQLite each migration commits by itself (so a kill inside one leaves the
/// schema as it was before it); on PostgreSQL all of them commit together
/// (`store/connection.rs`), so a kill leaves none or all. For each number
/// of migrations a kill could leave applied, the next start completes the
/// schema, records, signs, and `verify-db` passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_left_between_any_two_migrations_is_completed_at_the_next_start() {
    use consent_ledger::store::connection::SQLITE_MIGRATIONS;
    use diesel::Connection;
    use diesel_migrations::MigrationHarness;
    let total = {
        let mut probe = diesel::sqlite::SqliteConnection::establish(":memory:").unwrap();
        probe.pending_migrations(SQLITE_MIGRATIONS).unwrap().len()
    };
    assert!(total > 1);
    for applied in 0..total {
        let mut app = crash_app();
        std::fs::create_dir_all(app.data_dir()).expect("data dir");
        let path = app.data_dir().join("consent-ledger.db");
        let mut conn =
            diesel::sqlite::SqliteConnection::establish(&path.display().to_string()).unwrap();
        for _ in 0..applied {
            conn.run_next_migration(SQLITE_MIGRATIONS).unwrap();
        }
        drop(conn);
        comes_up_whole(&mut app, &format!("{applied} of {total} migrations left")).await;
    }
}

/// What a SIGKILL in the middle of signing can leave: the signer state
/// file already records the new size (it is written before the checkpoint's
/// transaction commits), the checkpoint row is not there, and a temporary
/// file lies beside the state file. The next start signs that same tree,
/// every stored checkpoint verifies, and the log is whole.
#[both(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_signing_the_next_start_signs_the_same_tree() {
    let mut app = crash_app();
    let only_on_request = [("CONSENT_LEDGER_CHECKPOINT_INTERVAL", "1h")];
    let server = serve_with(&mut app, 0, &only_on_request).await;
    let t = app.tenant("makro", "Makro").await;
    for n in 0..5 {
        if n == 3 {
            let signed = checkpoint(&app, &t).await;
            assert_eq!(signed.size, 3);
        }
        let answer = app
            .opt_in(&t, web_opt_in(&number(n), "Makro", &["marketing"]))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    // The root at size 5, from the last entry's audit path.
    let path = "/v1/log/proof/inclusion?seq=4&size=5";
    let inclusion = app.get(path, &t.auditor).await;
    assert_eq!(inclusion.status, StatusCode::OK, "{}", inclusion.body);
    let root = consent_ledger::ledger::merkle::root_from_inclusion(
        &hash_of_hex(inclusion.body["leaf_hash"].as_str().unwrap()),
        4,
        5,
        &hashes_of(&inclusion.body["proof"]),
    )
    .expect("a root");
    server.crash();

    // As the kill left it: size 5 recorded as signed, no checkpoint of it.
    let state_file = app.data_dir().join("signer.state");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    let logs = state["logs"].as_object_mut().expect("the state's logs");
    assert_eq!(logs.len(), 1);
    for signed in logs.values_mut() {
        assert_eq!(signed["size"], 3);
        *signed = json!({"size": 5, "root": hex::encode(root)});
    }
    std::fs::write(&state_file, state.to_string()).unwrap();
    std::fs::write(state_file.with_extension("tmp"), "{\"logs\": {\"cut off").unwrap();

    let server = serve_with(&mut app, 1, &only_on_request).await;
    let signed = checkpoint(&app, &t).await;
    assert_eq!((signed.size, signed.root), (5, root));
    server.crash();
    let entries = tokio::task::block_in_place(|| verify_db(&app));
    assert_eq!(entries, 5);
}

/// On PostgreSQL the data dir holds only the master key and the signer
/// state, and nothing keeps a file in it open, so it can turn read-only
/// under the running service: appends and checks go on (the log is on the
/// database server), a checkpoint that would sign answers 507 and none is
/// stored, and signing resumes once the data dir is writable again.
#[postgres_only(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_turned_read_only_while_serving_stops_only_signing() {
    let Some(disk) = SmallDisk::mount(4) else {
        return;
    };
    let data = disk.path.join("data");
    let app = spawn_app_with(|a| {
        a.data_dir = Some(data.clone());
        a.checkpoint_interval = Some("1h".into());
    })
    .await;
    if app.database_url().is_none() && service_database(&app.scratch()).is_none() {
        return; // PostgreSQL not installed and not required: the run said so.
    }
    let t = app.tenant("makro", "Makro").await;
    let (mut next, mut book) = (0, Book::default());
    let request = Sent::new(next);
    next += 1;
    until_recorded(&app, &t, &request, &mut book).await;
    assert_eq!(checkpoint(&app, &t).await.size, 1);

    disk.remount("ro");
    let request = Sent::new(next);
    until_recorded(&app, &t, &request, &mut book).await;
    let refused = app.get("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(
        refused.status,
        StatusCode::INSUFFICIENT_STORAGE,
        "{}",
        refused.body
    );
    let stored = app.get("/v1/log/checkpoints?size=2", &t.auditor).await;
    assert_eq!(
        stored.status,
        StatusCode::NOT_FOUND,
        "signed without its state file"
    );
    reads_still_answer(&app, &t).await;
    disk.remount("rw");
    assert_eq!(checkpoint(&app, &t).await.size, 2);
    check_export(&app, &t, &book).await;
}
