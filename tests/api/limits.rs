//! Hostile clients (issue 13), in the suite's own process: bodies that
//! never finish, guessing, request rates, connections per address, exports
//! that are never read, auditors polling checkpoints, secrets too short and
//! two channel settings written at once. Loopback only, bounded in time.

use crate::channels::{configured, hub_signature, post_whatsapp, settings, WA_SECRET};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The upper bound of any wait in this file: a server that never answers
/// fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(20);

fn port_of(app: &TestApp) -> u16 {
    app.address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// A raw connection that sent `request` and has read nothing.
async fn send_raw(app: &TestApp, request: &[u8]) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    // A small receive buffer: what the client does not read stays server-side.
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let addr = format!("127.0.0.1:{}", port_of(app)).parse().unwrap();
    let mut stream = socket.connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    stream
}

/// Everything the server sends until it closes the connection.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buffer = [0u8; 64 * 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&bytes).into_owned()
}

#[both]
async fn a_body_that_never_finishes_is_cut_off() {
    let app = spawn_app_with(|a| a.limits.body_timeout = Some("1s".into())).await;
    let t = app.tenant("makro", "Makro").await;
    let request = format!(
        "POST /v1/opt-ins HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"number\":",
        t.collector
    );
    let mut stream = send_raw(&app, request.as_bytes()).await;
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    // A webhook body held open is cut off the same way.
    let put = app.put("/v1/channels", &t.admin, &settings()).await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    let request = format!(
        "POST /webhooks/whatsapp/makro HTTP/1.1\r\nHost: localhost\r\nX-Hub-Signature-256: sha256=00\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{}",
        "x".repeat(5000)
    );
    let mut stream = send_raw(&app, request.as_bytes()).await;
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(log_size(&app, &t).await, 0, "nothing was recorded");
}

async fn log_size(app: &TestApp, t: &Tenant) -> u64 {
    crate::channels::log_size(app, t).await
}

#[both]
async fn guesses_of_any_credential_are_refused_after_thirty_failures_a_minute() {
    let app = spawn_app_with(|a| a.limits.auth_failures_per_minute = Some(30)).await;
    let t = configured(&app).await;
    let wrong_key = format!("clk_0123456789ab_{}", "A".repeat(43));
    let started = Instant::now();
    // Every kind of credential counts against the address's one budget.
    for i in 0..7 {
        let a = app.get("/v1/tenant", &wrong_key).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{i}: {:?}", a.body);
        let a = app
            .post(
                "/v1/tenants",
                "clo_wrong",
                &json!({"id": "x", "brand": "X"}),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{i}: {:?}", a.body);
        let a = app
            .get(
                "/webhooks/whatsapp/makro?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1",
                "",
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{i}: {:?}", a.body);
        let a = post_whatsapp(&app, "makro", b"{}", Some("sha256=00")).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{i}: {:?}", a.body);
    }
    // 28 so far; the budget (30, refilled one per 2 s) runs out within a few more.
    let mut refused = None;
    for extra in 0..6 {
        let a = app.get("/v1/tenant", &wrong_key).await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some((extra, a));
            break;
        }
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{:?}", a.body);
    }
    let (extra, _) = refused.expect("guessing was never refused");
    let refill = started.elapsed().as_secs() as usize / 2 + 1;
    assert!(
        extra >= 2 && extra <= 2 + refill,
        "{extra} more guesses were tried"
    );
    // The budget is spent: even a right credential is not tried now, so a
    // guess cannot be told from a hit.
    let a = app.get("/v1/tenant", &t.admin).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", a.body);
    assert_eq!(a.code(), "rate_limited");
    let wait: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body =
        serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": []})).unwrap();
    let signed = post_whatsapp(&app, "makro", &body, Some(&hub_signature(WA_SECRET, &body))).await;
    assert_eq!(signed.status, StatusCode::TOO_MANY_REQUESTS);
    // What needs no credential still answers.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// Sends `request` until it answers 429 (at most 50 times); the passes and
/// the time that took.
async fn until_refused<F, Fut>(mut request: F) -> (usize, Duration, Answer)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let started = Instant::now();
    for passed in 0..50 {
        let answer = request().await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            return (passed, started.elapsed(), answer);
        }
        assert!(answer.status.is_success(), "{:?}", answer.body);
    }
    panic!("50 requests and no 429");
}

/// Passes a limit of `rate` a second (bursts of twice that) allows in `elapsed`.
fn allowed(rate: u64, elapsed: Duration) -> usize {
    (2 * rate + rate * elapsed.as_secs() + rate) as usize
}

#[both]
async fn one_key_is_limited_to_its_rate_and_another_key_is_not() {
    let app = spawn_app_with(|a| a.limits.rate_limit_per_key = Some(2)).await;
    let t = app.tenant("makro", "Makro").await;
    let check = json!({"number": NUMBER, "purpose": "marketing"});
    let (passed, elapsed, refused) = until_refused(|| app.check(&t, check.clone())).await;
    assert!(passed <= allowed(2, elapsed), "{passed} in {elapsed:?}");
    assert_eq!(refused.code(), "rate_limited");
    assert!(refused.headers.contains_key("retry-after"));
    // Another key of the same tenant has its own budget.
    let other = app.post("/v1/checks", &t.admin, &check).await;
    assert_eq!(other.status, StatusCode::OK, "{:?}", other.body);
}

#[both]
async fn one_address_is_limited_to_its_rate() {
    let app = spawn_app_with(|a| a.limits.rate_limit_per_address = Some(2)).await;
    let (passed, elapsed, refused) = until_refused(|| app.get("/healthz", "")).await;
    assert!(passed <= allowed(2, elapsed), "{passed} in {elapsed:?}");
    assert_eq!(refused.code(), "rate_limited");
    assert!(refused.headers.contains_key("retry-after"));
}

#[both]
async fn connections_beyond_the_per_address_limit_are_refused_and_closed() {
    let app = spawn_app_with(|a| a.limits.max_connections_per_address = Some(4)).await;
    // Four connections that stay open (keep-alive), each counted once the
    // server answered on it.
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut stream = send_raw(&app, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        let mut start = [0u8; 12];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut start))
            .await
            .expect("answered")
            .expect("read");
        assert_eq!(&start, b"HTTP/1.1 200");
        idle.push(stream);
    }
    let mut fifth = send_raw(&app, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    let answer = read_until_closed(&mut fifth).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    // Once the idle ones close, the address may connect again.
    drop(idle);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = app.get("/healthz", "").await;
        if answer.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", answer.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An opt-in of about 20 KB with its openings.
fn large_opt_in(i: usize) -> Value {
    let mut body = web_opt_in(&format!("+49151{i:08}"), "Makro", &["marketing"]);
    body["consent_text"] = json!(format!(
        "Yes, I want offers from Makro on WhatsApp. {}",
        "Reply STOP to end. ".repeat(450)
    ));
    body["evidence"]["user_agent"] = json!(format!("Mozilla/5.0 {}", "x".repeat(9000)));
    body
}

async fn fill(app: &TestApp, t: &Tenant, entries: usize) {
    let mut pending = futures_util::stream::FuturesUnordered::new();
    for i in 0..entries {
        pending.push(app.opt_in(t, large_opt_in(i)));
        if pending.len() == 8 || i + 1 == entries {
            use futures_util::StreamExt;
            while let Some(answer) = pending.next().await {
                assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
            }
        }
    }
}

/// Waits until none of the eight export slots is held: eight new exports
/// of `request` that nobody reads all start at once (each holds its slot
/// while it stalls, so they cannot take turns), then lets them go.
async fn until_all_export_slots_are_free(app: &TestApp, request: &[u8]) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut held = Vec::new();
        let mut started = 0;
        for _ in 0..8 {
            let mut stream = send_raw(app, request).await;
            let mut start = [0u8; 12];
            tokio::time::timeout(PATIENCE, stream.read_exact(&mut start))
                .await
                .expect("the server answers")
                .expect("read");
            started += usize::from(&start == b"HTTP/1.1 200");
            held.push(stream);
        }
        drop(held);
        if started == 8 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled exports were never all cut off"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[both]
async fn exports_nobody_reads_do_not_starve_other_tenants_and_are_cut_off() {
    let app = spawn_app_with(|a| {
        a.limits.max_exports = Some(8);
        a.limits.max_exports_per_tenant = Some(8);
        a.limits.export_drain_timeout = Some("2s".into());
    })
    .await;
    let a = app.tenant("makro", "Makro").await;
    let b = app.tenant("other", "Other").await;
    fill(&app, &a, 400).await;
    // As many stalled exports as the pool has connections.
    let request = format!(
        "GET /v1/export HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        a.auditor
    );
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut stream = send_raw(&app, request.as_bytes()).await;
        let mut start = [0u8; 12];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut start))
            .await
            .expect("the export starts")
            .expect("read");
        assert_eq!(&start, b"HTTP/1.1 200");
        stalled.push(stream);
    }
    // Another tenant's check and opt-out answer at once.
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let check = quick
        .post(app.url("/v1/checks"))
        .bearer_auth(&b.sender)
        .json(&json!({"number": NUMBER, "purpose": "marketing"}))
        .send()
        .await
        .expect("the check answers while exports stall");
    assert_eq!(check.status(), StatusCode::OK);
    let opt_out = quick
        .post(app.url("/v1/opt-outs"))
        .bearer_auth(&b.collector)
        .json(&api_opt_out(NUMBER))
        .send()
        .await
        .expect("the opt-out answers while exports stall");
    assert_eq!(opt_out.status(), StatusCode::CREATED);
    // A ninth export waits its turn.
    let ninth = app.get("/v1/export", &a.auditor).await;
    assert_eq!(ninth.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(ninth.headers.contains_key("retry-after"));
    // After the drain timeout (2 s) the stalled ones are cut off and their
    // slots freed: a client that reads then gets the whole export.
    let deadline = Instant::now() + PATIENCE;
    let text = loop {
        let (status, text) = app.get_text("/v1/export", &a.auditor).await;
        if status == StatusCode::OK {
            break text;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{text}");
        assert!(
            Instant::now() < deadline,
            "the stalled exports were never cut off"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(text.lines().count(), 402);
    assert!(text.lines().last().unwrap().starts_with("{\"checkpoint\":"));
    // One slot free is not all eight: the stalled exports are cut off one
    // by one, and reading one not yet cut off would let it finish.
    until_all_export_slots_are_free(&app, request.as_bytes()).await;
    // What the stalled clients get is cut short: no checkpoint line.
    for mut stream in stalled {
        let rest = read_until_closed(&mut stream).await;
        assert!(
            !rest.contains("{\"checkpoint\":"),
            "a stalled export was sent whole"
        );
    }
}

#[both]
async fn auditors_polling_checkpoints_during_a_burst_share_them() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let started = Instant::now();
    let appends = async {
        for i in 0..40 {
            app.recorded_opt_in(
                &t,
                web_opt_in(&format!("+49151{i:08}"), "Makro", &["marketing"]),
            )
            .await;
        }
    };
    let polls = (0..4).map(|_| async {
        for _ in 0..30 {
            let (status, _) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
            assert_eq!(status, StatusCode::OK);
        }
    });
    tokio::join!(appends, futures_util::future::join_all(polls));
    let elapsed = started.elapsed();
    // An ask covers everything appended before it.
    let seq = app
        .recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let (_, latest) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    let size: u64 = latest.lines().nth(1).unwrap().parse().unwrap();
    assert_eq!(size, seq + 1);
    // Count the signed checkpoints of the burst.
    let mut signed = 0;
    for size in 1..=40 {
        let (status, _) = app
            .get_text(&format!("/v1/log/checkpoints?size={size}"), &t.auditor)
            .await;
        if status == StatusCode::OK {
            signed += 1;
        }
    }
    // At most one on request per 250 ms, plus the background one per 5 s.
    let bound = (elapsed.as_millis() / 250) as usize + (elapsed.as_secs() / 5) as usize + 2;
    assert!(signed <= bound, "{signed} checkpoints in {elapsed:?}");
}

#[both]
async fn channel_secrets_and_tokens_must_not_be_guessable() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    for field in ["app_secret", "verify_token"] {
        let mut body = settings();
        body["whatsapp"][field] = json!("short-secret");
        let answer = app.put("/v1/channels", &t.admin, &body).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            answer.field_code(&format!("whatsapp.{field}")).as_deref(),
            Some("too_short"),
            "{:?}",
            answer.body
        );
    }
    let mut body = settings();
    body["twilio"]["auth_token"] = json!("0123456789abcde");
    let answer = app.put("/v1/channels", &t.admin, &body).await;
    assert_eq!(
        answer.field_code("twilio.auth_token").as_deref(),
        Some("too_short")
    );
}

#[both]
async fn a_concurrent_settings_write_never_restores_a_replaced_secret() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    const NEW: &str = "a-new-app-secret-after-rotation";
    let payload =
        serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": []})).unwrap();
    for round in 0..15 {
        let reset = app.put("/v1/channels", &t.admin, &settings()).await;
        assert_eq!(reset.status, StatusCode::OK);
        let mut rotate = settings();
        rotate["whatsapp"]["app_secret"] = json!(NEW);
        rotate["whatsapp"]["previous_app_secret"] = json!("");
        // Another admin changes keywords and leaves the secrets as they are.
        let mut keywords = settings();
        keywords["whatsapp"]["app_secret"] = Value::Null;
        keywords["whatsapp"]["previous_app_secret"] = Value::Null;
        keywords["opt_out_keywords"] = json!(["ARRET", "BAJA", "PARAR"]);
        let (a, b) = tokio::join!(
            app.put("/v1/channels", &t.admin, &rotate),
            app.put("/v1/channels", &t.admin, &keywords)
        );
        assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
        let signed =
            post_whatsapp(&app, "makro", &payload, Some(&hub_signature(NEW, &payload))).await;
        assert_eq!(
            signed.status,
            StatusCode::OK,
            "round {round}: the new secret was lost"
        );
        let old = post_whatsapp(
            &app,
            "makro",
            &payload,
            Some(&hub_signature(WA_SECRET, &payload)),
        )
        .await;
        assert_eq!(old.status, StatusCode::UNAUTHORIZED, "round {round}");
    }
}

/// What the opt-out page recorded as the address of a post sent with
/// these `X-Forwarded-For` lines (in this order), or its status when it
/// recorded nothing.
async fn address_recorded(
    app: &TestApp,
    t: &Tenant,
    forwarded_for: &[&str],
) -> Result<String, StatusCode> {
    use crate::pages::{browser, get_page, token_of};
    let client = browser();
    let path = "/forms/makro/opt-out";
    let (_, page) = get_page(&client, app, path).await;
    app.clock.advance(5_000);
    let mut request = client
        .post(app.url(path))
        .form(&[("token", token_of(&page).as_str()), ("number", NUMBER)]);
    for line in forwarded_for {
        // Each its own header line, as a client and then a proxy send them.
        request = request.header("x-forwarded-for", *line);
    }
    let answer = request.send().await.expect("request");
    if answer.status() != StatusCode::OK {
        return Err(answer.status());
    }
    let seq = log_size(app, t).await - 1;
    let e = crate::channels::entry(app, t, seq).await;
    Ok(e["openings"]["evidence"]["body"]["ip"]
        .as_str()
        .expect("an ip")
        .to_owned())
}

/// docs/pages.md and `CONSENT_LEDGER_TRUSTED_PROXIES`: every
/// `X-Forwarded-For` line is read, as one list from the right, and an
/// IPv4-mapped IPv6 address is its IPv4 address, for the proxy and for
/// the hops. Before, only the first line (the one the client wrote) was
/// read, and a mapped hop or peer was an address of its own.
#[both]
async fn the_client_is_read_from_every_forwarded_for_line_and_mapped_addresses_are_ipv4() {
    let app = spawn_app_at_manual_clock_with(|a| {
        a.trusted_proxies = Some("127.0.0.1/32".into());
        a.limits.page_posts_per_minute = Some(1);
    })
    .await;
    let t = app.tenant("makro", "Makro").await;
    // The client wrote a line of its own; the proxy appended the one it saw.
    let seen = address_recorded(&app, &t, &["203.0.113.66", "198.51.100.7"]).await;
    assert_eq!(seen.as_deref(), Ok("198.51.100.7"));
    let seen = address_recorded(&app, &t, &["203.0.113.66", "198.51.100.8, 127.0.0.1"]).await;
    assert_eq!(seen.as_deref(), Ok("198.51.100.8"), "a trusted hop skipped");
    // A mapped hop is its IPv4 address, and its limit is that address's.
    let seen = address_recorded(&app, &t, &["::ffff:198.51.100.9"]).await;
    assert_eq!(seen.as_deref(), Ok("198.51.100.9"));
    let again = address_recorded(&app, &t, &["198.51.100.9"]).await;
    assert_eq!(
        again,
        Err(StatusCode::TOO_MANY_REQUESTS),
        "one address, one post a minute"
    );
    // A listener on both stacks sees the loopback proxy as ::ffff:127.0.0.1:
    // it is still the trusted 127.0.0.1.
    let dual = spawn_app_at_manual_clock_with(|a| {
        a.bind = Some("[::]:0".into());
        a.trusted_proxies = Some("127.0.0.1/32".into());
    })
    .await;
    let t = dual.tenant("makro", "Makro").await;
    let seen = address_recorded(&dual, &t, &["198.51.100.10"]).await;
    assert_eq!(seen.as_deref(), Ok("198.51.100.10"));
}
