//! The hosted pages in a real browser (docs/pages.md; issue "hosted
//! pages"): headless Chromium, driven through ChromeDriver at a phone's
//! width as a person would use the pages. Screenshots of each page go to
//! `target/browser-screenshots/` (and, with
//! `CONSENT_LEDGER_UPDATE_SCREENSHOTS=1`, to `docs/screenshots/` for the
//! README). Needs Debian's `chromium` and `chromium-driver`;
//! `CONSENT_LEDGER_REQUIRE_BROWSER=1` (CI) makes their absence a failure.

use crate::channels::{configured, entry, text, whatsapp};
use crate::helpers::*;
use crate::pages::{form, form_body};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;
use std::process::{Child, Command, Stdio};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// A phone's viewport (CSS pixels).
const PHONE: (u32, u32) = (390, 844);

/// ChromeDriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts ChromeDriver and waits (at most 20 s) until it answers; `None`
/// when it is not installed and the browser is not required here.
async fn driver() -> Option<Driver> {
    let installed =
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists();
    if !installed {
        let required = std::env::var("CONSENT_LEDGER_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(!required, "chromium and chromedriver are required here");
        say_past_the_runner(
            "the browser test did not run: install Debian's chromium and chromium-driver (CONSENT_LEDGER_REQUIRE_BROWSER=1 makes this a failure)",
        );
        return None;
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    let status = format!("http://127.0.0.1:{port}/status");
    for _ in 0..200 {
        if let Ok(answer) = reqwest::get(&status).await {
            if answer.status().is_success() {
                return Some(driver);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer within 20 s");
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": CHROMIUM, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-dev-shm-usage",
            format!("--window-size={},{}", PHONE.0, PHONE.1)
        ]}),
    );
    // Plain HTTP to ChromeDriver on loopback: no TLS.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session");
    client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("a phone-sized window");
    client
}

/// Saves a screenshot of the page as a test artifact (and for the README
/// when asked).
async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(&[0x89, b'P', b'N', b'G']), "a PNG");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/browser-screenshots");
    std::fs::create_dir_all(&dir).expect("the artifacts folder");
    std::fs::write(dir.join(format!("{name}.png")), &png).expect("the screenshot");
    if std::env::var("CONSENT_LEDGER_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let docs = root.join("docs/screenshots");
        std::fs::create_dir_all(&docs).expect("docs/screenshots");
        std::fs::write(docs.join(format!("{name}.png")), &png).expect("the README's copy");
    }
}

async fn type_number(client: &Client, number: &str) {
    let field = client
        .find(Locator::Id("number"))
        .await
        .expect("the number field");
    field.clear().await.expect("cleared");
    field.send_keys(number).await.expect("typed");
}

async fn submit(client: &Client) {
    let button = client
        .find(Locator::Css("button[type=submit]"))
        .await
        .expect("the button");
    button.click().await.expect("sent");
}

/// The text of an element, waiting (at most 10 s) for the page that has
/// it: a click that posts a form may return before the next page is in.
async fn text_of(client: &Client, css: &str) -> String {
    let found = client
        .wait()
        .at_most(std::time::Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await;
    let Ok(found) = found else {
        let source = client.source().await.unwrap_or_default();
        panic!("{css} is not on the page:\n{source}");
    };
    found.text().await.expect("its text")
}

#[tokio::test]
async fn a_person_opts_in_confirms_and_opts_out_in_a_browser() {
    let Some(driver) = driver().await else {
        return;
    };
    let app = spawn_app_at_manual_clock().await;
    let t = configured(&app).await;
    let patched = app
        .patch(
            "/v1/tenant",
            &t.admin,
            &json!({"require_confirmation_for": ["web"]}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    form(&app, &t, form_body("newsletter")).await;
    let client = browser(&driver).await;

    // The page as a person first sees it.
    client
        .goto(&app.url("/forms/makro/newsletter"))
        .await
        .expect("the page loads");
    assert_eq!(text_of(&client, "h1").await, "Messages from Makro");
    let marketing = client
        .find(Locator::Css("input[name=purpose][value=marketing]"))
        .await
        .expect("the marketing box");
    assert!(!marketing.is_selected().await.unwrap(), "unticked");
    screenshot(&client, "opt-in").await;

    // A wrong number: the error in place, nothing recorded.
    type_number(&client, "12").await;
    marketing.click().await.expect("ticked");
    app.clock.advance(5_000);
    submit(&client).await;
    let error = text_of(&client, "#number-error").await;
    assert_eq!(
        error,
        "This is not a valid mobile number for the country chosen."
    );
    let field = client.find(Locator::Id("number")).await.unwrap();
    assert_eq!(
        field.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    screenshot(&client, "error").await;

    // A good one (the box stays ticked): thanks, and the code to send back.
    type_number(&client, "0151 12345678").await;
    let marketing = client
        .find(Locator::Css("input[name=purpose][value=marketing]"))
        .await
        .unwrap();
    assert!(marketing.is_selected().await.unwrap(), "still ticked");
    submit(&client).await;
    assert!(text_of(&client, "#done")
        .await
        .contains("Your consent has been recorded."));
    let code = text_of(&client, "#code").await;
    assert_eq!(code.len(), 6);
    let link = client
        .find(Locator::Id("confirm-link"))
        .await
        .expect("the click-to-chat link")
        .attr("href")
        .await
        .unwrap()
        .expect("an href");
    assert_eq!(
        link,
        format!("https://wa.me/4930123456?text=CONFIRM%20{code}")
    );
    screenshot(&client, "success").await;

    // In the ledger with what the server captured; unconfirmed until the
    // number itself sends the code.
    let e = entry(&app, &t, 0).await;
    assert_eq!(e["entry"]["collector"], "form:newsletter");
    assert_eq!(e["entry"]["confirmation_required"], true);
    let evidence = &e["openings"]["evidence"]["body"];
    assert_eq!(evidence["ip"], "127.0.0.1");
    assert!(evidence["user_agent"].as_str().unwrap().contains("Chrome"));
    assert_eq!(evidence["form_id"], "newsletter");
    assert_eq!(evidence["form_version"], "1");
    assert_eq!(
        evidence["rendered_html_sha256"].as_str().map(str::len),
        Some(64)
    );
    let check = json!({"number": NUMBER, "purpose": "marketing", "brand": "Makro"});
    assert_eq!(app.reason(&t, check.clone()).await, "unconfirmed");
    let at = app.clock.now().millis() / 1000;
    whatsapp(
        &app,
        &text(
            &NUMBER[1..],
            "wamid.browser",
            &format!("CONFIRM {code}"),
            false,
            at,
        ),
    )
    .await;
    assert_eq!(app.reason(&t, check.clone()).await, "allowed");

    // The opt-out page withdraws it.
    client
        .goto(&app.url("/forms/makro/opt-out"))
        .await
        .expect("the opt-out page");
    type_number(&client, "+4915112345678").await;
    screenshot(&client, "opt-out").await;
    app.clock.advance(5_000);
    submit(&client).await;
    assert!(text_of(&client, "#done").await.starts_with("Done."));
    assert_eq!(app.reason(&t, check).await, "opted_out");
    client.close().await.expect("the browser closes");
}

/// Says something the test runner must not hide (a test that did not run):
/// written to stderr directly, past the runner's capture of `eprintln!` in
/// passing tests.
fn say_past_the_runner(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "NOTE: {text}");
}
