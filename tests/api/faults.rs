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

use crate::crash::{
    after_restart, check_export, keep_posting, number, retry, take_over, verify_db, Book, Sent,
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
