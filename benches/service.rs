//! The service as a user runs it, measured over loopback (issue "Performance"):
//!
//!     cargo bench --bench service -- [SECONDS] [ENTRIES] [CONNECTIONS]
//!
//! (defaults: 8 s per phase, 1,000,000 entries, 32 connections). Starts the
//! release binary (`consent-ledger serve`) on a fresh data dir (SQLite,
//! every commit synced), drives it with that many keep-alive connections
//! from this process and prints one table: the trivial route (`/healthz`,
//! no database), durable opt-ins, single checks, batch checks of 10,000
//! numbers, and the server's peak resident memory; each HTTP figure also as
//! a ratio to the trivial route measured in the same run. Then the same on
//! PostgreSQL when it is installed (a throwaway cluster with fsync and
//! synchronous commit on). The client shares the machine with the server,
//! which is why the ratio is the figure to compare across machines. Then
//! the same through PgBouncer in transaction mode, when it is installed
//! (`CONSENT_LEDGER_PG_POOLER=transaction`), beside the direct figures.
//!
//! Then a log of ENTRIES real opt-ins (0 skips it): built by the library's
//! appender, served by the release binary, which is measured on it (proofs,
//! checks, appends, its peak resident memory), then exported and verified
//! by the command-line tools.

#[path = "support/million.rs"]
mod million;
#[path = "../tests/api/postgres.rs"]
mod postgres;

use serde_json::{json, Value};
use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keep-alive connections the load comes from (the third argument; 32).
static CONNECTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(32);

fn connections() -> usize {
    CONNECTIONS.load(Ordering::Relaxed)
}
/// Whether the server reaches PostgreSQL through a transaction-mode pooler.
static POOLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

const OPERATOR: &str = "clo_bench-operator-token-0123456789abcdefghijklmn";
const BATCH: usize = 10_000;
/// A command the server is started under, for profiling (its peak memory
/// is then the wrapper's).
const WRAP_VAR: &str = "CONSENT_LEDGER_BENCH_WRAP";

fn main() {
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.parse().ok())
        .collect();
    let phase = Duration::from_secs(numbers.first().copied().unwrap_or(8));
    let entries = numbers.get(1).copied().unwrap_or(1_000_000);
    if let Some(&n) = numbers.get(2) {
        CONNECTIONS.store(n.max(1) as usize, Ordering::Relaxed);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(measure("SQLite", None, phase));
    std::env::set_var(postgres::DURABLE_VAR, "1");
    match postgres::cluster() {
        Some(cluster) => {
            let url = cluster.new_database();
            runtime.block_on(measure("PostgreSQL", Some(url), phase));
            if let Some(bouncer) = postgres::bouncer() {
                let url = bouncer.url_for(&cluster.new_database());
                POOLED.store(true, Ordering::Relaxed);
                let name = "PostgreSQL through PgBouncer (transaction mode)";
                runtime.block_on(measure(name, Some(url), phase));
                POOLED.store(false, Ordering::Relaxed);
            }
        }
        None => println!("\nPostgreSQL is not installed: only SQLite was measured"),
    }
    if entries > 0 {
        runtime.block_on(at_scale(entries, phase));
    }
}

/// The server process, stopped when dropped.
struct Server {
    child: Child,
    base: String,
    /// The data dir's temporary parent, when the server made it.
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // The whole process group: a wrapper's server too.
        // SAFETY: kill(2) with the group this process made for the server.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(url: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let mut server = Self::start_on(&dir.path().join("data"), url);
        server._dir = Some(dir);
        server
    }

    /// The server on `data_dir`, which outlives it.
    fn start_on(data_dir: &std::path::Path, url: Option<&str>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let binary = env!("CARGO_BIN_EXE_consent-ledger");
        // A profiler may wrap the server: WRAP_VAR="heaptrack -o /tmp/h".
        let wrapper = std::env::var(WRAP_VAR).unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CONSENT_LEDGER_DATA_DIR", data_dir)
            .env("CONSENT_LEDGER_BIND", format!("127.0.0.1:{port}"))
            .env("CONSENT_LEDGER_METRICS_BIND", "off")
            .env("CONSENT_LEDGER_ORIGIN", "bench.example")
            .env("CONSENT_LEDGER_OPERATOR_TOKEN", OPERATOR)
            .env("CONSENT_LEDGER_RATE_LIMIT_PER_ADDRESS", "0")
            .env("CONSENT_LEDGER_RATE_LIMIT_PER_KEY", "0")
            // All the load comes from one address.
            .env(
                "CONSENT_LEDGER_MAX_CONNECTIONS_PER_ADDRESS",
                (2 * connections()).max(128).to_string(),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = url {
            command.env("DATABASE_URL", url);
        }
        if POOLED.load(Ordering::Relaxed) {
            command.env("CONSENT_LEDGER_PG_POOLER", "transaction");
        }
        let child = command.spawn().expect("the release binary starts");
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: None,
        }
    }

    /// The most resident memory the process has had (VmHWM), in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

/// One HTTP row of a table: rate, latencies and the share of the trivial
/// route measured in the same run.
fn print_row(what: &str, l: &Load, trivial: &Load) {
    println!(
        "| {what} | {:.0} | {:.2} ms | {:.2} ms | {:.1}% |",
        l.per_second,
        l.p50_ms,
        l.p99_ms,
        100.0 * l.per_second / trivial.per_second
    );
}

/// Waits until the server answers `/readyz` (at most a minute).
async fn until_ready(http: &reqwest::Client, base: &str) {
    let ready = Instant::now();
    while http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(
            ready.elapsed() < Duration::from_secs(60),
            "the service did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Requests per second and latency percentiles of one phase.
struct Load {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `request` from [`connections`] tasks for `phase`; each call gets a
/// fresh sequence number and says whether it succeeded.
async fn drive<F, Fut>(phase: Duration, request: F) -> Load
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + phase;
    let tasks: Vec<_> = (0..connections())
        .map(|_| {
            let (request, next) = (request.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    assert!(request(i).await, "a request failed");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a client task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let at = |p: usize| all[(all.len() * p / 100).min(all.len() - 1)].as_secs_f64() * 1e3;
    Load {
        per_second: all.len() as f64 / elapsed,
        p50_ms: at(50),
        p99_ms: at(99),
    }
}

use million::number;

/// A web opt-in of the `i`th number, captured now.
fn opt_in_body(i: u64) -> Value {
    let captured = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    json!({"number": number(i), "channel": "web",
        "company_name_shown": "Bench", "consent_text": "Offers from Bench",
        "purposes": ["marketing"], "captured_at": captured,
        "evidence": {"page_url": "https://bench.example/", "ip": "203.0.113.7",
                     "user_agent": "bench"}})
}

async fn post(http: &reqwest::Client, url: &str, key: &str, body: &Value) -> (u16, Value) {
    let response = http
        .post(url)
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn measure(name: &str, url: Option<String>, phase: Duration) {
    let server = Server::start(url.as_deref());
    let base = server.base.clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections())
        .build()
        .expect("client");
    until_ready(&http, &base).await;
    let (_, created) = post(
        &http,
        &format!("{base}/v1/tenants"),
        OPERATOR,
        &json!({"id": "bench", "brand": "Bench"}),
    )
    .await;
    let admin = created["admin_key"]["key"]
        .as_str()
        .expect("admin key")
        .to_owned();
    let key = |role: &'static str| {
        let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
        async move {
            let (_, made) = post(
                &http,
                &format!("{base}/v1/keys"),
                &admin,
                &json!({"name": role, "roles": [role]}),
            )
            .await;
            made["key"].as_str().expect("key").to_owned()
        }
    };
    let collector = key("collector").await;
    let sender = key("sender").await;

    let trivial = {
        let (http, url) = (http.clone(), format!("{base}/healthz"));
        drive(phase, move |_| {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.is_ok_and(|r| r.status() == 200) }
        })
        .await
    };
    let appends = {
        let (http, url) = (http.clone(), format!("{base}/v1/opt-ins"));
        drive(phase, move |i| {
            let (http, url, key) = (http.clone(), url.clone(), collector.clone());
            async move { post(&http, &url, &key, &opt_in_body(i)).await.0 == 201 }
        })
        .await
    };
    let recorded = (appends.per_second * phase.as_secs_f64()) as u64;
    let checks = {
        let (http, url, key) = (http.clone(), format!("{base}/v1/checks"), sender.clone());
        drive(phase, move |i| {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            async move {
                let body = json!({"number": number(i % recorded.max(1)), "purpose": "marketing",
                    "brand": "Bench"});
                let (status, answer) = post(&http, &url, &key, &body).await;
                status == 200 && answer["allowed"] == true
            }
        })
        .await
    };
    // Batches of 10,000: a few at once, for the same time; then the same
    // with a decision statement asked for every item.
    let batches = batch_phase(&http, &base, &sender, recorded, phase, false).await;
    let stated = batch_phase(&http, &base, &sender, recorded, phase, true).await;
    let rss = server.peak_rss_mib();

    println!(
        "\n{name}, {} connections, {}s per phase\n",
        connections(),
        phase.as_secs()
    );
    println!("| what | per second | p50 | p99 | ratio to /healthz |");
    println!("|---|---|---|---|---|");
    let row = |what: &str, l: &Load| print_row(what, l, &trivial);
    row("`GET /healthz` (no database)", &trivial);
    row("`POST /v1/checks`", &checks);
    row("`POST /v1/opt-ins`, durable", &appends);
    println!("| `POST /v1/checks/batch` of {BATCH}, 4 at once | {batches:.0} numbers | | | |");
    println!(
        "| the same, each item with `\"statement\": true` | {stated:.0} numbers ({:.1}x the time) | | | |",
        batches / stated.max(1.0)
    );
    println!(
        "| peak resident memory of the server, after {recorded} entries | {rss:.0} MiB | | | |"
    );
}

/// Numbers per second of batches of 10,000 checks, 4 at once, for `phase`;
/// each item asking for a decision statement when `stated`.
async fn batch_phase(
    http: &reqwest::Client,
    base: &str,
    sender: &str,
    recorded: u64,
    phase: Duration,
    stated: bool,
) -> f64 {
    let url = format!("{base}/v1/checks/batch");
    let started = Instant::now();
    let mut done = 0usize;
    while started.elapsed() < phase {
        let round: Vec<_> = (0..4)
            .map(|r| {
                let (http, url, key) = (http.clone(), url.clone(), sender.to_owned());
                tokio::spawn(async move {
                    let checks: Vec<Value> = (0..BATCH as u64)
                        .map(|i| {
                            json!({"number": number((r * 7_919 + i) % recorded.max(1)),
                                   "purpose": "marketing", "brand": "Bench", "statement": stated})
                        })
                        .collect();
                    let (status, answer) =
                        post(&http, &url, &key, &json!({"checks": checks})).await;
                    assert_eq!(status, 200, "{answer}");
                    answer["decisions"].as_array().map_or(0, Vec::len)
                })
            })
            .collect();
        for task in round {
            done += task.await.expect("a batch");
        }
    }
    done as f64 / started.elapsed().as_secs_f64()
}

/// The load phases of a server on a log of `entries` opt-ins, then its
/// export and verification by the command-line tools.
async fn at_scale(entries: u64, phase: Duration) {
    let dir = tempfile::tempdir().expect("dir");
    let built = million::build(dir.path(), OPERATOR, entries);
    println!(
        "\nSQLite, a log of {entries} opt-ins (built in {:.0} s by the library's appender, database {:.0} MiB), {} connections, {}s per phase\n",
        built.seconds,
        built.database_mib,
        connections(),
        phase.as_secs()
    );
    let data_dir = built.data_dir.clone();
    let server = Server::start_on(&data_dir, None);
    let base = server.base.clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections())
        .build()
        .expect("client");
    until_ready(&http, &base).await;
    let client = http.clone();
    let get = move |path: String, key: Option<String>| {
        let http = client.clone();
        async move {
            let mut request = http.get(path);
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            request.send().await.is_ok_and(|r| r.status() == 200)
        }
    };
    let trivial = {
        let (get, url) = (get.clone(), format!("{base}/healthz"));
        drive(phase, move |_| get(url.clone(), None)).await
    };
    let spread = move |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % entries;
    let inclusion = {
        let (get, base, key) = (get.clone(), base.clone(), built.auditor.clone());
        drive(phase, move |i| {
            let url = format!(
                "{base}/v1/log/proof/inclusion?seq={}&size={entries}",
                spread(i)
            );
            get(url, Some(key.clone()))
        })
        .await
    };
    let consistency = {
        let (get, base, key) = (get.clone(), base.clone(), built.auditor.clone());
        drive(phase, move |i| {
            let from = 1 + spread(i);
            let url = format!("{base}/v1/log/proof/consistency?from={from}&to={entries}");
            get(url, Some(key.clone()))
        })
        .await
    };
    let checks = {
        let (http, url, key) = (
            http.clone(),
            format!("{base}/v1/checks"),
            built.sender.clone(),
        );
        drive(phase, move |i| {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            async move {
                let body =
                    json!({"number": number(spread(i)), "purpose": "marketing", "brand": "Bench"});
                let (status, answer) = post(&http, &url, &key, &body).await;
                status == 200 && answer["allowed"] == true
            }
        })
        .await
    };
    let appends = {
        let (http, url, key) = (
            http.clone(),
            format!("{base}/v1/opt-ins"),
            built.collector.clone(),
        );
        drive(phase, move |i| {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            async move { post(&http, &url, &key, &opt_in_body(entries + i)).await.0 == 201 }
        })
        .await
    };
    let rss = server.peak_rss_mib();
    drop(server);
    let (export_seconds, verify_rates) = export_and_verify(&data_dir, &built.verifier_key);
    println!("| what (log of {entries} entries) | per second | p50 | p99 | ratio to /healthz |");
    println!("|---|---|---|---|---|");
    let row = |what: &str, l: &Load| print_row(what, l, &trivial);
    row("`GET /healthz` (no database)", &trivial);
    row("`GET /v1/log/proof/inclusion`", &inclusion);
    row("`GET /v1/log/proof/consistency`", &consistency);
    row("`POST /v1/checks`", &checks);
    row("`POST /v1/opt-ins`, durable", &appends);
    println!("| peak resident memory of the server on this log | {rss:.0} MiB | | | |");
    println!(
        "| `consent-ledger export` of the log, with openings | {:.0} entries | | | |",
        entries as f64 / export_seconds
    );
    println!(
        "| `consent-ledger verify` of that export, median of {} runs on {} threads | {:.0} entries | | | |",
        verify_rates.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        verify_rates[verify_rates.len() / 2]
    );
}

/// Exports the `bench` log of `data_dir` with openings, then verifies the
/// export three times: the export's seconds and the verifier's entries per
/// second, sorted.
fn export_and_verify(data_dir: &std::path::Path, verifier_key: &str) -> (f64, Vec<f64>) {
    let file = data_dir.join("export.ndjson");
    let cli = |args: &[&str]| {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_consent-ledger"))
            .args(args)
            .env_clear()
            .env("CONSENT_LEDGER_DATA_DIR", data_dir)
            .output()
            .expect("the command runs");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let path = file.to_str().expect("a UTF-8 path");
    let (export_seconds, _) = cli(&["export", "--tenant", "bench", "--out", path]);
    let entries = std::io::BufRead::lines(std::io::BufReader::new(
        std::fs::File::open(&file).expect("the export"),
    ))
    .map_while(Result::ok)
    .filter(|l| l.starts_with("{\"entry\""))
    .count() as f64;
    let mut rates: Vec<f64> = (0..3)
        .map(|_| entries / cli(&["verify", path, "--key", verifier_key]).0)
        .collect();
    rates.sort_by(f64::total_cmp);
    (export_seconds, rates)
}
