//! Outbound events (docs/events.md): an endpoint receives every change of
//! the feed it takes, signed as Standard Webhooks says, at least once, in
//! log order per group, retried with backoff for 24 hours and then listed
//! as failed until retried; an erasure carries the erased identities;
//! endpoints and deliveries reach only the addresses the operator allows;
//! a SIGKILL mid-delivery loses nothing, and two instances never send one
//! event at the same time.

use crate::crash::{crash_app, serve_with};
use crate::helpers::*;
use crate::metrics::{scrape, value};
use base64::Engine;
use consent_ledger::store::events;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    raw: Vec<u8>,
    body: Value,
    answered: u16,
}

#[derive(Default)]
struct Inbox {
    got: Vec<Received>,
    /// Statuses to answer, in turn; 200 once they run out.
    script: VecDeque<u16>,
    /// Every request waits this long before its answer.
    delay: Duration,
    in_flight: HashSet<String>,
    /// A `webhook-id` that arrived while another request of it was open.
    overlaps: Vec<String>,
}

/// A loopback HTTP/1.1 endpoint that records what it is sent.
#[derive(Clone)]
struct Receiver {
    url: String,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let shared = inbox.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, shared.clone()));
            }
        });
        Self { url, inbox }
    }

    fn script(&self, statuses: &[u16]) {
        self.inbox.lock().unwrap().script = statuses.iter().copied().collect();
    }

    fn delay(&self, delay: Duration) {
        self.inbox.lock().unwrap().delay = delay;
    }

    fn got(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().got.clone()
    }

    /// The `webhook-id`s of the requests it holds open now.
    fn in_flight(&self) -> HashSet<String> {
        self.inbox.lock().unwrap().in_flight.clone()
    }

    /// Waits (at most 30 s) until `done` holds of what was received.
    async fn until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.got();
            if done(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "{what}: got {got:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Reads one request, waits the delay, answers the script's next status.
async fn answer(mut stream: TcpStream, inbox: Arc<Mutex<Inbox>>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let (head_end, length) = loop {
        let Ok(n) = stream.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while data.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    let raw = data[head_end..head_end + length].to_vec();
    let id = headers.get("webhook-id").cloned().unwrap_or_default();
    let delay = {
        let mut inbox = inbox.lock().unwrap();
        if !inbox.in_flight.insert(id.clone()) {
            inbox.overlaps.push(id.clone());
        }
        inbox.delay
    };
    tokio::time::sleep(delay).await;
    let status = {
        let mut inbox = inbox.lock().unwrap();
        inbox.in_flight.remove(&id);
        let status = inbox.script.pop_front().unwrap_or(200);
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        inbox.got.push(Received {
            headers,
            raw,
            body,
            answered: status,
        });
        status
    };
    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
    let _ = stream.write_all(reply.as_bytes()).await;
}

/// Standard Webhooks' check, written here apart from the service's: the
/// signature of `id.timestamp.body` under the secret's base64 key.
fn verifies(secret: &str, r: &Received) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").expect("whsec_"))
        .expect("base64");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(r.headers["webhook-id"].as_bytes());
    mac.update(b".");
    mac.update(r.headers["webhook-timestamp"].as_bytes());
    mac.update(b".");
    mac.update(&r.raw);
    let expected = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
    r.headers["webhook-signature"]
        .split(' ')
        .any(|s| s == expected)
}

/// The Standard Webhooks library from PyPI (`standardwebhooks`) verifies
/// the deliveries too, where `CONSENT_LEDGER_STANDARD_WEBHOOKS_PYTHON`
/// names a Python that has it (CI installs it, and sets
/// `CONSENT_LEDGER_REQUIRE_STANDARD_WEBHOOKS=1` so that it must).
fn verified_by_the_reference_library(secret: &str, got: &[Received], dir: &std::path::Path) {
    let Some(python) = std::env::var_os("CONSENT_LEDGER_STANDARD_WEBHOOKS_PYTHON") else {
        assert!(
            std::env::var_os("CONSENT_LEDGER_REQUIRE_STANDARD_WEBHOOKS").is_none(),
            "CONSENT_LEDGER_STANDARD_WEBHOOKS_PYTHON is required"
        );
        eprintln!(
            "skipped: the standardwebhooks library (set CONSENT_LEDGER_STANDARD_WEBHOOKS_PYTHON)"
        );
        return;
    };
    let cases: Vec<Value> = got
        .iter()
        .map(|r| {
            json!({
                "body": String::from_utf8(r.raw.clone()).expect("UTF-8"),
                "headers": {
                    "webhook-id": r.headers["webhook-id"],
                    "webhook-timestamp": r.headers["webhook-timestamp"],
                    "webhook-signature": r.headers["webhook-signature"],
                },
            })
        })
        .collect();
    let file = dir.join("deliveries.json");
    let input = json!({"secret": secret, "cases": cases});
    std::fs::write(&file, input.to_string()).expect("written");
    let script = "import json, sys\n\
from standardwebhooks.webhooks import Webhook\n\
data = json.load(open(sys.argv[1]))\n\
hook = Webhook(data['secret'])\n\
for case in data['cases']:\n    \
print(json.dumps(hook.verify(case['body'], case['headers']), sort_keys=True))\n";
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&file)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verified: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let bodies: Vec<Value> = got.iter().map(|r| r.body.clone()).collect();
    assert_eq!(verified, bodies, "the library verifies each delivery");
}

async fn private_app() -> TestApp {
    spawn_app_with(|a| a.event_allow_private = Some(true)).await
}

/// Registers an endpoint; its id and secret.
async fn register(app: &TestApp, t: &Tenant, body: Value) -> (String, String) {
    let made = app.post("/v1/event-endpoints", &t.admin, &body).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let id = made.body["id"].as_str().expect("id").to_owned();
    let secret = made.body["secret"].as_str().expect("secret").to_owned();
    (id, secret)
}

fn seqs(got: &[Received]) -> Vec<u64> {
    got.iter()
        .map(|r| r.body["seq"].as_u64().unwrap())
        .collect()
}

/// Each change goes out once, after it commits, signed so that a Standard
/// Webhooks verifier accepts it, its body the feed's item; the deliveries
/// are listed as delivered, and the registration is audited with the host
/// alone.
#[both(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_gets_each_change_signed_as_standard_webhooks_says() {
    let app = private_app().await;
    let t = app.tenant("makro", "Makro").await;
    app.recorded_opt_in(&t, web_opt_in("+4915100000001", "Makro", &["marketing"]))
        .await;
    let receiver = Receiver::start().await;
    let url = format!("{}?token=hush", receiver.url);
    let (id, secret) = register(&app, &t, json!({"url": url})).await;
    assert!(
        id.starts_with("ep_") && secret.starts_with("whsec_"),
        "{id} {secret}"
    );
    let opt_in = app
        .recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let opt_out = app.recorded_opt_out(&t, api_opt_out(NUMBER)).await;
    let got = receiver.until("two changes", |g| g.len() >= 2).await;
    assert_eq!(
        seqs(&got),
        [opt_in, opt_out],
        "only changes after registration"
    );
    let feed = app.get("/v1/changes?after=c1-1", &t.admin).await;
    for (received, item) in got.iter().zip(feed.body["changes"].as_array().unwrap()) {
        assert!(verifies(&secret, received), "{received:?}");
        assert_eq!(&received.body, item, "the body is the feed's item");
        let seq = received.body["seq"].as_u64().unwrap();
        assert_eq!(
            received.headers["webhook-id"],
            format!("evt_{}_{seq}", &id[3..])
        );
        assert_eq!(received.headers["content-type"], "application/json");
    }
    verified_by_the_reference_library(&secret, &got, &app.scratch());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.got().len(), 2, "each once");
    let listed = app
        .get("/v1/event-deliveries?status=delivered", &t.admin)
        .await;
    let deliveries = listed.body["event_deliveries"].as_array().expect("list");
    assert_eq!(deliveries.len(), 2, "{}", listed.body);
    assert_eq!(deliveries[0]["seq"], opt_out);
    assert_eq!(deliveries[0]["attempts"], 1);
    assert_eq!(deliveries[0]["last_status"], 200);
    let endpoints = app.get("/v1/event-endpoints", &t.admin).await;
    assert_eq!(endpoints.body["event_endpoints"][0]["url"], url);
    assert!(!endpoints.body.to_string().contains("whsec_"));
    let trail = app.get("/v1/audit-events", &t.admin).await.body.to_string();
    assert!(trail.contains("event_endpoint.created"), "{trail}");
    assert!(
        !trail.contains("hush") && !trail.contains("whsec_"),
        "{trail}"
    );
}

/// An endpoint that takes erasures only gets the erasure, with the erased
/// number itself beside its keyed hash.
#[both(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_is_delivered_with_the_erased_identities() {
    let app = private_app().await;
    let t = app.tenant("makro", "Makro").await;
    let receiver = Receiver::start().await;
    register(&app, &t, json!({"url": receiver.url, "types": ["erasure"]})).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let erased = app
        .post("/v1/subjects/erase", &t.admin, &json!({"number": NUMBER}))
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    let got = receiver.until("the erasure", |g| !g.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got_all = receiver.got();
    assert_eq!(got_all.len(), 1, "erasures only: {got_all:?}");
    let body = &got[0].body;
    assert_eq!(body["type"], "erasure");
    assert_eq!(body["seq"], erased.body["seq"]);
    assert_eq!(body["identities"], json!([]));
    assert_eq!(body["erased_identities"], json!([{"number": NUMBER}]));
    assert_eq!(body["identity_hashes"].as_array().unwrap().len(), 1);
}

/// A failing endpoint is retried with backoff, and the next change of the
/// same person waits for the first; one that fails for 24 hours is listed
/// as failed and sent again when an admin retries it.
#[both(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_in_order_then_kept_as_failed_until_retried() {
    let app = spawn_app_at_manual_clock_with(|a| a.event_allow_private = Some(true)).await;
    let t = app.tenant("makro", "Makro").await;
    let receiver = Receiver::start().await;
    register(&app, &t, json!({"url": receiver.url})).await;
    receiver.script(&[500]);
    let before = scrape(&app).await;
    let first = app
        .recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let second = app.recorded_opt_out(&t, api_opt_out(NUMBER)).await;
    receiver.until("the first attempt", |g| !g.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        seqs(&receiver.got()),
        [first],
        "the opt-out waits for the opt-in"
    );
    let pending = app
        .get("/v1/event-deliveries?status=pending", &t.admin)
        .await;
    let listed = &pending.body["event_deliveries"];
    assert_eq!(listed[1]["seq"], first, "{}", pending.body);
    assert_eq!(listed[1]["last_status"], 500);
    assert_eq!(listed[1]["attempts"], 1);
    app.clock.advance(5_000);
    let got = receiver.until("both delivered", |g| g.len() >= 3).await;
    assert_eq!(seqs(&got), [first, first, second]);
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    assert_eq!(
        got.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 200, 200]
    );

    // A day of failures.
    receiver.script(&[503, 503]);
    let third = app
        .recorded_opt_in(&t, web_opt_in("+4915100000003", "Makro", &["utility"]))
        .await;
    receiver
        .until("the third's first attempt", |g| g.len() >= 4)
        .await;
    app.clock.advance(25 * 3600 * 1000);
    receiver.until("the last attempt", |g| g.len() >= 5).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let failed = app
            .get("/v1/event-deliveries?status=failed", &t.admin)
            .await;
        if failed.body["event_deliveries"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
        {
            break failed.body["event_deliveries"][0].clone();
        }
        assert!(Instant::now() < deadline, "{}", failed.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed["seq"], third);
    assert_eq!(failed["attempts"], 2);
    assert!(failed["next_attempt_at"].is_null());
    // The operator sees it too: the gauge counts this database's
    // deliveries; the attempt counters belong to the test process.
    let after = scrape(&app).await;
    let status = |s| value(&after, "consent_ledger_event_deliveries", &[("status", s)]);
    assert_eq!(status("failed"), 1.0, "{after}");
    assert_eq!(status("pending"), 0.0, "{after}");
    let grew = |o| {
        let series = "consent_ledger_event_attempts_total";
        value(&after, series, &[("outcome", o)]) - value(&before, series, &[("outcome", o)])
    };
    assert!(grew("retry") >= 2.0 && grew("failed") >= 1.0, "{after}");
    assert!(grew("delivered") >= 2.0, "{after}");
    let id = failed["id"].as_str().unwrap();
    let retried = app
        .post(
            &format!("/v1/event-deliveries/{id}/retry"),
            &t.admin,
            &json!({}),
        )
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    assert_eq!(retried.body["status"], "pending");
    let got = receiver.until("the retry", |g| g.len() >= 6).await;
    assert_eq!(got[5].body["seq"], third);
    assert_eq!(got[5].answered, 200);
    let again = app
        .post(
            &format!("/v1/event-deliveries/{id}/retry"),
            &t.admin,
            &json!({}),
        )
        .await;
    // Delivered by now, or still pending: either way not failed.
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.code(), "delivery_not_failed");
    let unknown = app
        .post(
            "/v1/event-deliveries/evt_nope_1/retry",
            &t.admin,
            &json!({}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let trail = app.get("/v1/audit-events", &t.admin).await.body.to_string();
    assert!(trail.contains("event_delivery.retried"), "{trail}");
}

/// Without the operator's leave, an endpoint is https to a public address;
/// link-local and metadata addresses never; types must be known and
/// given; ten endpoints at most; deleting one stops its deliveries.
#[both]
async fn endpoints_reach_only_what_the_operator_allows() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    for (body, field, code) in [
        (
            json!({"url": "http://crm.example.com/hook"}),
            "url",
            "not_https",
        ),
        (
            json!({"url": "https://127.0.0.1/hook"}),
            "url",
            "refused_address",
        ),
        (
            json!({"url": "https://localhost/hook"}),
            "url",
            "refused_address",
        ),
        (
            json!({"url": "https://[fd00:ec2::254]/"}),
            "url",
            "refused_address",
        ),
        (
            json!({"url": "https://10.1.2.3/"}),
            "url",
            "refused_address",
        ),
        (json!({"url": "not a url"}), "url", "not_a_url"),
        (
            json!({"url": "https://crm.example.com/", "types": []}),
            "types",
            "empty",
        ),
    ] {
        let refused = app.post("/v1/event-endpoints", &t.admin, &body).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            refused.field_code(field).as_deref(),
            Some(code),
            "{body}: {}",
            refused.body
        );
    }
    let unknown_type = json!({"url": "https://crm.example.com/", "types": ["opt_in", "bogus"]});
    let refused = app
        .post("/v1/event-endpoints", &t.admin, &unknown_type)
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    let mut ids = Vec::new();
    for n in 0..10 {
        let url = format!("https://crm{n}.example.com/hook");
        ids.push(register(&app, &t, json!({"url": url})).await.0);
    }
    let eleventh = json!({"url": "https://crm.example.com/"});
    let refused = app.post("/v1/event-endpoints", &t.admin, &eleventh).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.code(), "endpoint_limit");
    let gone = app
        .delete(&format!("/v1/event-endpoints/{}", ids[0]), &t.admin)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let again = app
        .delete(&format!("/v1/event-endpoints/{}", ids[0]), &t.admin)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let listed = app.get("/v1/event-endpoints", &t.admin).await;
    assert_eq!(listed.body["event_endpoints"].as_array().unwrap().len(), 9);
    for key in [&t.sender, &t.auditor, &t.collector] {
        let refused = app.get("/v1/event-endpoints", key).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }

    let open = private_app().await;
    let o = open.tenant("makro", "Makro").await;
    register(&open, &o, json!({"url": "http://127.0.0.1:9/hook"})).await;
    for url in ["http://169.254.169.254/latest", "http://[fe80::1]/"] {
        let refused = open
            .post("/v1/event-endpoints", &o.admin, &json!({"url": url}))
            .await;
        assert_eq!(
            refused.field_code("url").as_deref(),
            Some("refused_address"),
            "{url}"
        );
    }
}

/// The server SIGKILLed while its endpoint is slow to answer: after a
/// restart every change is delivered at least once, none lost.
#[both(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_delivery_loses_no_event() {
    let mut app = crash_app();
    let env = [("CONSENT_LEDGER_EVENT_ALLOW_PRIVATE", "true")];
    let server = serve_with(&mut app, 0, &env).await;
    let t = app.tenant("makro", "Makro").await;
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(400));
    register(&app, &t, json!({"url": receiver.url})).await;
    let mut recorded = Vec::new();
    for n in 0..12 {
        let number = format!("+49151000{n:05}");
        recorded.push(
            app.recorded_opt_in(&t, web_opt_in(&number, "Makro", &["marketing"]))
                .await,
        );
    }
    // Killed while deliveries wait for their answers.
    receiver.until("a first delivery", |g| !g.is_empty()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let open = loop {
        let open = receiver.in_flight();
        if !open.is_empty() {
            break open;
        }
        assert!(Instant::now() < deadline, "no second round of deliveries");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    server.crash();
    let before = receiver.got().len();
    receiver.delay(Duration::ZERO);
    let server = serve_with(&mut app, 1, &env).await;
    let want: HashSet<u64> = recorded.iter().copied().collect();
    // Every change arrives, and each whose answer the killed server never
    // read arrives again.
    let got = receiver
        .until("every change, after the restart", |g| {
            let seen: HashSet<u64> = seqs(g).into_iter().collect();
            let again =
                |id: &String| g.iter().filter(|r| &r.headers["webhook-id"] == id).count() >= 2;
            want.is_subset(&seen) && open.iter().all(again)
        })
        .await;
    eprintln!(
        "events kill test: {} changes, {before} answered before the kill, {} requests in all",
        recorded.len(),
        got.len()
    );
    server.crash();
}

/// Two instances on one database (SQLite: two services on one file) share
/// the deliveries: every change once, never the same one from both at once.
#[both(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_never_send_one_event_at_once() {
    let app = private_app().await;
    let other = app.second_instance().await;
    let t = app.tenant("makro", "Makro").await;
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(150));
    register(&app, &t, json!({"url": receiver.url})).await;
    let mut recorded = Vec::new();
    for n in 0..20 {
        let number = format!("+49151000{n:05}");
        let instance = if n % 2 == 0 { &app } else { &other };
        recorded.push(
            instance
                .recorded_opt_in(&t, web_opt_in(&number, "Makro", &["marketing"]))
                .await,
        );
    }
    let got = receiver
        .until("all twenty", |g| g.len() >= recorded.len())
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut delivered = seqs(&receiver.got());
    delivered.sort_unstable();
    assert_eq!(delivered, recorded, "each once: {got:?}");
    assert!(
        receiver.inbox.lock().unwrap().overlaps.is_empty(),
        "sent twice at once"
    );

    // A delivery held by one instance is neither due nor to be taken for
    // any other, whatever the timing of their rounds.
    receiver.delay(Duration::from_secs(3));
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let held = loop {
        if let Some(id) = receiver.in_flight().into_iter().next() {
            break id;
        }
        assert!(Instant::now() < deadline, "the delivery is not sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let mut conn =
        consent_ledger::store::connection::establish(&app.database_target()).expect("a connection");
    let now = chrono::Utc::now().timestamp_millis();
    let row = events::delivery(&mut conn, &tenant_id("makro"), &held)
        .unwrap()
        .expect("the held delivery");
    assert!(row.leased_until.is_some_and(|until| until > now));
    let due = events::due(&mut conn, now, 100).unwrap();
    assert!(
        due.iter().all(|d| d.id != held),
        "a held delivery is not due"
    );
    assert!(
        !events::claim(&mut conn, &row, now, now + 15_000).unwrap(),
        "a held delivery is not taken twice"
    );
}
