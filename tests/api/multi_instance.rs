//! Two server processes on one PostgreSQL database, each with its own copy
//! of the master key and its own signer state, under concurrent appends to
//! two logs: nothing acknowledged is lost or doubled, seqs have no gap, the
//! checkpoints both signed agree, and an opt-out on one answers on the other.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the server when the test ends, whatever happens.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `DATABASE_URL` and `CONSENT_LEDGER_PG_POOLER` of the test's servers.
type Database = (String, Option<&'static str>);

fn serve(database: &Database, data_dir: &std::path::Path, port: u16) -> Server {
    serve_with(database, data_dir, port, Stdio::null())
}

fn serve_with(
    (url, pooler): &Database,
    data_dir: &std::path::Path,
    port: u16,
    stderr: Stdio,
) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_consent-ledger"))
        .arg("serve")
        .env("DATABASE_URL", url)
        .env("CONSENT_LEDGER_PG_POOLER", pooler.unwrap_or("none"))
        .env("CONSENT_LEDGER_DATA_DIR", data_dir)
        .env("CONSENT_LEDGER_BIND", format!("127.0.0.1:{port}"))
        .env("CONSENT_LEDGER_METRICS_BIND", "off")
        .env("CONSENT_LEDGER_ORIGIN", "ledger.test")
        .env("CONSENT_LEDGER_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("CONSENT_LEDGER_CHECKPOINT_INTERVAL", "200ms")
        .env_remove("CONSENT_LEDGER_MASTER_KEY_FILE")
        .env_remove("CONSENT_LEDGER_SIGNER_STATE_FILE")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("the server starts");
    Server(child)
}

async fn ready(address: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = client.get(format!("{address}/readyz")).send().await;
        if up.is_ok_and(|r| r.status() == StatusCode::OK) {
            return;
        }
        assert!(Instant::now() < deadline, "{address} did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn number(i: usize) -> String {
    format!("+49151{:08}", 10_000_000 + i)
}

#[postgres_only(pgbouncer, flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_database_agree() {
    let dir_a = tempfile::tempdir().expect("dir");
    make_database(dir_a.path());
    let Some(url) = service_database(dir_a.path()) else {
        return; // Not installed and not required: the run said so.
    };
    let dir_b = tempfile::tempdir().expect("dir");
    let (port_a, port_b) = (free_port(), free_port());
    let _a = serve(&url, &dir_a.path().join("data"), port_a);
    let address_a = format!("http://127.0.0.1:{port_a}");
    ready(&address_a).await;
    // The second instance gets a copy of the first one's master key.
    std::fs::create_dir_all(dir_b.path().join("data")).expect("dir");
    std::fs::copy(
        dir_a.path().join("data/master.key"),
        dir_b.path().join("data/master.key"),
    )
    .expect("copy the master key");
    let _b = serve(&url, &dir_b.path().join("data"), port_b);
    let address_b = format!("http://127.0.0.1:{port_b}");
    ready(&address_b).await;
    // An instance with another master key refuses to start.
    let stranger = tempfile::tempdir().expect("dir");
    let mut refused = serve_with(
        &url,
        &stranger.path().join("data"),
        free_port(),
        Stdio::piped(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = refused.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "an instance with another master key kept running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut refused.0.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(
        stderr.contains("does not open this database's canary"),
        "{stderr}"
    );
    let a = TestApp::external(address_a, dir_a);
    let b = TestApp::external(address_b, dir_b);

    let alpha = a.tenant("alpha", "Alpha").await;
    let beta = b.tenant("beta", "Beta").await;

    // 8 clients, each 30 opt-ins alternating instances and logs, with
    // checkpoints asked of both instances along the way.
    let clients = 8;
    let per_client = 30;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (a_addr, b_addr) = (a.address.clone(), b.address.clone());
        let keys = (alpha.collector.clone(), beta.collector.clone());
        let auditors = (alpha.auditor.clone(), beta.auditor.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut acknowledged = Vec::new();
            for i in 0..per_client {
                let n = c * per_client + i;
                let address = if n % 2 == 0 { &a_addr } else { &b_addr };
                let (tenant, key, brand) = if (n / 2) % 2 == 0 {
                    ("alpha", &keys.0, "Alpha")
                } else {
                    ("beta", &keys.1, "Beta")
                };
                let response = http
                    .post(format!("{address}/v1/opt-ins"))
                    .bearer_auth(key)
                    .json(&web_opt_in(&number(n), brand, &["marketing"]))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status(), StatusCode::CREATED);
                let body: serde_json::Value = response.json().await.expect("json");
                acknowledged.push((tenant, body["seq"].as_u64().expect("seq")));
                if i % 10 == 0 {
                    let auditor = if tenant == "alpha" {
                        &auditors.0
                    } else {
                        &auditors.1
                    };
                    let note = http
                        .get(format!("{address}/v1/log/checkpoint"))
                        .bearer_auth(auditor)
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(note.status(), StatusCode::OK);
                }
            }
            acknowledged
        }));
    }
    let mut seqs = std::collections::BTreeMap::<&str, Vec<u64>>::new();
    for task in tasks {
        for (tenant, seq) in task.await.expect("client") {
            seqs.entry(tenant).or_default().push(seq);
        }
    }
    for (tenant, list) in &seqs {
        let unique: BTreeSet<u64> = list.iter().copied().collect();
        assert_eq!(
            unique.len(),
            list.len(),
            "{tenant}: a seq acknowledged twice"
        );
        let expected: BTreeSet<u64> = (0..list.len() as u64).collect();
        assert_eq!(unique, expected, "{tenant}: seqs with a gap");
    }
    // Each log's size is exactly what was acknowledged, seen from both.
    for (t, tenant) in [(&alpha, "alpha"), (&beta, "beta")] {
        for app in [&a, &b] {
            let (status, note) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
            assert_eq!(status, StatusCode::OK);
            let size: usize = note.lines().nth(1).expect("size").parse().expect("size");
            assert_eq!(size, seqs[tenant].len(), "{tenant}");
        }
    }
    // An opt-out on one instance answers on the other at once.
    let opted_out = number(0);
    let recorded = a.opt_out(&alpha, api_opt_out(&opted_out)).await;
    assert_eq!(recorded.status, StatusCode::CREATED, "{}", recorded.body);
    let check = json!({"number": opted_out, "purpose": "marketing", "brand": "Alpha"});
    assert_eq!(b.reason(&alpha, check).await, "opted_out");
    // Every row and every checkpoint either instance signed verifies.
    let (code, out, err) = run_cli(&["verify-db"], Some(&a.data_dir()));
    assert_eq!(code, 0, "{out}{err}");
}
