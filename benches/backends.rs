//! Append and check throughput on SQLite and on PostgreSQL, side by side
//! (not a timed test: run it by hand on a quiet machine; the README records
//! the numbers).
//!
//!     cargo bench --bench backends [APPENDS] [CHECKS]    # defaults 2,000 and 10,000
//!
//! For each backend the service runs in this process on a free loopback
//! port (SQLite in a temporary directory; PostgreSQL 15 on a throwaway
//! cluster started as the test suite starts it, but with fsync and
//! synchronous commits on, as SQLite syncs every commit); 4 keep-alive
//! clients record
//! APPENDS web opt-ins into one log, then ask CHECKS single checks; then one
//! client asks up to 5,000 checks one after the other (latency unloaded).

// The pooler of the suite's cluster is not measured here (`service` does).
#[allow(dead_code)]
#[path = "../tests/api/postgres.rs"]
mod postgres;

use consent_ledger::config::{Secret, Settings, SettingsArgs};
use consent_ledger::startup::{prepare, Application};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const CLIENTS: usize = 4;
const OPERATOR: &str = "clo_bench-operator-token-0123456789abcdefghijklmn";

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.replace(['_', ','], "").parse().ok())
        .collect();
    let appends = args.first().copied().unwrap_or(2_000);
    let checks = args.get(1).copied().unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run("sqlite", None, appends, checks));
    // Both backends durable: SQLite syncs every commit (synchronous=FULL).
    std::env::set_var(postgres::DURABLE_VAR, "1");
    match postgres::cluster() {
        Some(cluster) => {
            let url = cluster.new_database();
            runtime.block_on(run("postgresql", Some(url), appends, checks));
        }
        None => println!("backends: PostgreSQL is not installed; only SQLite was measured"),
    }
}

fn percentile(sorted: &[Duration], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

async fn run(name: &str, url: Option<String>, appends: usize, checks: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let args = SettingsArgs {
        data_dir: Some(dir.path().join("data")),
        bind: Some("127.0.0.1:0".into()),
        metrics_bind: Some("off".into()),
        origin: Some("bench.example".into()),
        operator_token: Some(Secret::new(OPERATOR.into())),
        database_url: url.map(Secret::new),
        ..Default::default()
    };
    let settings = Settings::resolve(&args).expect("settings");
    let prepared = prepare(&settings).expect("prepare");
    let app = Application::build(settings, prepared).expect("build");
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(OPERATOR)
        .json(&json!({"id": "bench", "brand": "Bench"}))
        .send()
        .await
        .expect("tenant")
        .json()
        .await
        .expect("json");
    let admin = created["admin_key"]["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let key = |role: &'static str| {
        let http = http.clone();
        let base = base.clone();
        let admin = admin.clone();
        async move {
            let made: Value = http
                .post(format!("{base}/v1/keys"))
                .bearer_auth(&admin)
                .json(&json!({"name": role, "roles": [role]}))
                .send()
                .await
                .expect("key")
                .json()
                .await
                .expect("json");
            made["key"].as_str().expect("key").to_owned()
        }
    };
    let collector = key("collector").await;
    let sender = key("sender").await;
    let number = |i: usize| format!("+49151{:08}", 10_000_000 + i);

    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (http, base, collector) = (http.clone(), base.clone(), collector.clone());
        tasks.push(tokio::spawn(async move {
            for i in (c..appends).step_by(CLIENTS) {
                let captured = chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string();
                let r = http
                    .post(format!("{base}/v1/opt-ins"))
                    .bearer_auth(&collector)
                    .json(&json!({"number": number(i), "channel": "web",
                        "company_name_shown": "Bench", "consent_text": "Offers from Bench",
                        "purposes": ["marketing"], "captured_at": captured,
                        "evidence": {"page_url": "https://bench.example/", "ip": "203.0.113.7",
                                     "user_agent": "bench"}}))
                    .send()
                    .await
                    .expect("append");
                assert_eq!(r.status(), reqwest::StatusCode::CREATED);
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    let append_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (http, base, sender) = (http.clone(), base.clone(), sender.clone());
        tasks.push(tokio::spawn(async move {
            let numbers = (c..checks).step_by(CLIENTS).map(|i| number(i % appends));
            ask_checks(&http, &base, &sender, numbers).await
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("client"));
    }
    let check_secs = started.elapsed().as_secs_f64();
    latencies.sort();

    println!(
        "backends: {name:<10} appends {:>6.0}/s ({appends} by {CLIENTS} clients), checks {:>6.0}/s (p50 {:.2} ms, p99 {:.2} ms, {checks} by {CLIENTS} clients)",
        appends as f64 / append_secs,
        checks as f64 / check_secs,
        percentile(&latencies, 50),
        percentile(&latencies, 99),
    );

    // One client asking one check after the other: the latency a sender
    // sees when the service is not saturated.
    let numbers = (0..checks.min(5_000)).map(|i| number(i % appends));
    let mut alone = ask_checks(&http, &base, &sender, numbers).await;
    alone.sort();
    println!(
        "backends: {name:<10} one client: check p50 {:.2} ms, p99 {:.2} ms ({} checks)",
        percentile(&alone, 50),
        percentile(&alone, 99),
        alone.len(),
    );
    server.abort();
}

/// Asks one check per number, one after the other; how long each took.
async fn ask_checks(
    http: &reqwest::Client,
    base: &str,
    sender: &str,
    numbers: impl Iterator<Item = String>,
) -> Vec<Duration> {
    let mut took = Vec::new();
    for number in numbers {
        let t = Instant::now();
        let r = http
            .post(format!("{base}/v1/checks"))
            .bearer_auth(sender)
            .json(&json!({"number": number, "purpose": "marketing"}))
            .send()
            .await
            .expect("check");
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        r.bytes().await.expect("body");
        took.push(t.elapsed());
    }
    took
}
