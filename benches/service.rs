//! The service as a user runs it, measured over loopback (issue "Performance"):
//!
//!     cargo bench --bench service [SECONDS]    # each phase; default 8
//!
//! Starts the release binary (`consent-ledger serve`) on a fresh data dir
//! (SQLite, every commit synced), drives it with 32 keep-alive connections
//! from this process and prints one table: the trivial route (`/healthz`,
//! no database), durable opt-ins, single checks, batch checks of 10,000
//! numbers, and the server's peak resident memory; each HTTP figure also as
//! a ratio to the trivial route measured in the same run. Then the same on
//! PostgreSQL when it is installed (a throwaway cluster with fsync and
//! synchronous commit on). The client shares the machine with the server,
//! which is why the ratio is the figure to compare across machines.

#[path = "../tests/api/postgres.rs"]
mod postgres;

use serde_json::{json, Value};
use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 32;
const OPERATOR: &str = "clo_bench-operator-token-0123456789abcdefghijklmn";
const BATCH: usize = 10_000;

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .find_map(|a| a.parse().ok())
        .unwrap_or(8);
    let phase = Duration::from_secs(seconds);
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
        }
        None => println!("\nPostgreSQL is not installed: only SQLite was measured"),
    }
}

/// The server process, stopped when dropped.
struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(url: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_consent-ledger"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CONSENT_LEDGER_DATA_DIR", dir.path().join("data"))
            .env("CONSENT_LEDGER_BIND", format!("127.0.0.1:{port}"))
            .env("CONSENT_LEDGER_ORIGIN", "bench.example")
            .env("CONSENT_LEDGER_OPERATOR_TOKEN", OPERATOR)
            .env("CONSENT_LEDGER_RATE_LIMIT_PER_ADDRESS", "0")
            .env("CONSENT_LEDGER_RATE_LIMIT_PER_KEY", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = url {
            command.env("DATABASE_URL", url);
        }
        let child = command.spawn().expect("the release binary starts");
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
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

/// Requests per second and latency percentiles of one phase.
struct Load {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `request` from `CONNECTIONS` tasks for `phase`; each call gets a
/// fresh sequence number and says whether it succeeded.
async fn drive<F, Fut>(phase: Duration, request: F) -> Load
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + phase;
    let tasks: Vec<_> = (0..CONNECTIONS)
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

fn number(i: u64) -> String {
    format!("+49151{:08}", 10_000_000 + i)
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
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("client");
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
            async move {
                let captured = chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string();
                let body = json!({"number": number(i), "channel": "web",
                    "company_name_shown": "Bench", "consent_text": "Offers from Bench",
                    "purposes": ["marketing"], "captured_at": captured,
                    "evidence": {"page_url": "https://bench.example/", "ip": "203.0.113.7",
                                 "user_agent": "bench"}});
                post(&http, &url, &key, &body).await.0 == 201
            }
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
    // Batches of 10,000: a few at once, for the same time.
    let batches = {
        let url = format!("{base}/v1/checks/batch");
        let started = Instant::now();
        let mut done = 0usize;
        while started.elapsed() < phase {
            let round: Vec<_> = (0..4)
                .map(|r| {
                    let (http, url, key) = (http.clone(), url.clone(), sender.clone());
                    tokio::spawn(async move {
                        let checks: Vec<Value> = (0..BATCH as u64)
                            .map(|i| {
                                json!({"number": number((r * 7_919 + i) % recorded.max(1)),
                                       "purpose": "marketing", "brand": "Bench"})
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
    };
    let rss = server.peak_rss_mib();

    println!(
        "\n{name}, {CONNECTIONS} connections, {}s per phase\n",
        phase.as_secs()
    );
    println!("| what | per second | p50 | p99 | ratio to /healthz |");
    println!("|---|---|---|---|---|");
    let row = |what: &str, l: &Load| {
        println!(
            "| {what} | {:.0} | {:.2} ms | {:.2} ms | {:.1}% |",
            l.per_second,
            l.p50_ms,
            l.p99_ms,
            100.0 * l.per_second / trivial.per_second
        );
    };
    row("`GET /healthz` (no database)", &trivial);
    row("`POST /v1/checks`", &checks);
    row("`POST /v1/opt-ins`, durable", &appends);
    println!("| `POST /v1/checks/batch` of {BATCH}, 4 at once | {batches:.0} numbers | | | |");
    println!(
        "| peak resident memory of the server, after {recorded} entries | {rss:.0} MiB | | | |"
    );
}
