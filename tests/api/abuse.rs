//! The held-body flood (issue 13) against the real binary, so that its
//! memory can be measured apart from the suite's: hundreds of connections
//! each start a webhook body of almost 3 MiB and never finish it. Loopback
//! only, bounded in count and time.

use crate::channels::configured;
use crate::helpers::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The service in a child process, killed when dropped.
pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) app: TestApp,
    pub(crate) log: Arc<Mutex<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `consent-ledger serve` on a fresh data dir and a free port.
pub(crate) fn serve(env: &[(&str, &str)]) -> Served {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_consent-ledger"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("CONSENT_LEDGER_METRICS_BIND", "off")
        .env("CONSENT_LEDGER_DATA_DIR", dir.path().join("data"))
        .env("CONSENT_LEDGER_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("CONSENT_LEDGER_ORIGIN", "ledger.test")
        .env("NO_COLOR", "1")
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut port = None;
    for line in lines.by_ref() {
        let line = line.expect("log line");
        if line.contains("listening") {
            port = line
                .split("port=")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|digits| digits.parse::<u16>().ok());
            break;
        }
    }
    let port = port.expect("the service said where it listens");
    // Keep reading the log so the child never blocks on a full pipe.
    let log = Arc::new(Mutex::new(String::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut kept = kept.lock().unwrap();
            kept.push_str(&line);
            kept.push('\n');
        }
    });
    Served {
        child,
        app: TestApp::external(format!("http://127.0.0.1:{port}"), dir),
        log,
    }
}

/// The child's peak resident memory so far, in KiB.
fn peak_rss_kib(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Opens a connection that declares a body of almost 3 MiB on `path` and
/// sends `sent` bytes of it (or as much as the server takes in 3 s).
async fn hold_body(port: u16, path: String, sent: Arc<Vec<u8>>) -> Option<tokio::net::TcpStream> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: {}\r\n\r\n",
        3 * 1024 * 1024 - 1
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.write_all(&sent)).await;
    Some(stream)
}

#[tokio::test]
async fn a_flood_of_held_webhook_bodies_leaves_memory_bounded_and_the_service_up() {
    let served = serve(&[
        ("CONSENT_LEDGER_BODY_MEMORY_MIB", "16"),
        ("CONSENT_LEDGER_BODY_TIMEOUT", "10s"),
    ]);
    let app = &served.app;
    configured(app).await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let before = peak_rss_kib(&served.child);
    let sent = Arc::new(vec![b' '; 5 * 1024 * 1024 / 2]);
    // Half to a tenant that does not exist, half to one with WhatsApp (a
    // signature header, so its body is read to check it).
    let held = futures_util::future::join_all((0..200).map(|i| {
        let path = if i % 2 == 0 {
            "/webhooks/whatsapp/nobody".to_owned()
        } else {
            "/webhooks/whatsapp/makro".to_owned()
        };
        hold_body(port, path, sent.clone())
    }))
    .await;
    let opened = held.iter().filter(|s| s.is_some()).count();
    // The service still answers another client (another loopback address)
    // while the bodies are held.
    let health = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap()
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz answers during the flood");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    let grown_mib = peak_rss_kib(&served.child).saturating_sub(before) / 1024;
    let threads = std::fs::read_to_string(format!("/proc/{}/status", served.child.id()))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .unwrap_or_default()
        .to_owned();
    eprintln!("{threads}");
    eprintln!(
        "held-body flood: {opened} connections with 2.5 MiB each; peak RSS grew {grown_mib} MiB"
    );
    // 200 × 2.5 MiB would be 500 MiB; the bodies may take 16 MiB, and
    // each connection's buffers some more.
    assert!(grown_mib < 128, "peak RSS grew {grown_mib} MiB");
    drop(held);
    let log = served.log.lock().unwrap().clone();
    assert!(
        log.contains("authentication failed") && log.contains("client=127.0.0.1"),
        "a refused signature is logged with the client's address"
    );
}
