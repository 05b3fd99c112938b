//! Hosted forms and pages (docs/pages.md) over plain HTTP: forms and
//! their versions, the opt-in page with its server-captured evidence, the
//! bots it turns away, double opt-in from the page, and the opt-out page.
//! The same pages in a real browser: `tests/browser/`.

use crate::channels::{configured, entry, log_size, text, whatsapp};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Digest;

pub(crate) fn form_body(id: &str) -> Value {
    json!({
        "id": id,
        "brand": "Makro",
        "consent_text": "Yes, I want offers and order updates from Makro on WhatsApp. Reply STOP to end.",
        "purposes": ["marketing", "utility"],
        "language": "en",
        "default_region": "DE",
        "privacy_url": "https://makro.example/privacy"
    })
}

pub(crate) async fn form(app: &TestApp, t: &Tenant, body: Value) -> Value {
    let made = app.post("/v1/forms", &t.admin, &body).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    made.body
}

/// A browser-like client of its own: it keeps cookies.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .user_agent("PagesTest/1.0 (phone)")
        .build()
        .expect("a client")
}

/// The token field of a served page.
pub(crate) fn token_of(page: &str) -> String {
    let marker = "name=\"token\" value=\"";
    let start = page.find(marker).expect("a token field") + marker.len();
    page[start..]
        .split('"')
        .next()
        .expect("the token")
        .to_owned()
}

pub(crate) async fn get_page(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
) -> (reqwest::header::HeaderMap, String) {
    let response = client.get(app.url(path)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let headers = response.headers().clone();
    (headers, response.text().await.expect("html"))
}

pub(crate) async fn post_page(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let response = client
        .post(app.url(path))
        .form(fields)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.text().await.expect("html"))
}

#[both]
async fn forms_have_immutable_versions() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let made = form(&app, &t, form_body("newsletter")).await;
    assert_eq!(made["version"], 1);
    let page_url = made["page_url"].as_str().expect("page_url");
    assert!(page_url.ends_with("/forms/makro/newsletter"), "{page_url}");
    let same = app
        .put("/v1/forms/newsletter", &t.admin, &form_body("newsletter"))
        .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert_eq!(same.body["version"], 1, "nothing changed");
    let mut changed = form_body("newsletter");
    changed["consent_text"] = json!("Yes, send me offers from Makro on WhatsApp.");
    let next = app.put("/v1/forms/newsletter", &t.admin, &changed).await;
    assert_eq!(next.body["version"], 2);
    let listed = app.get("/v1/forms", &t.admin).await;
    assert_eq!(listed.body["forms"][0]["version"], 2);
    let again = app
        .post("/v1/forms", &t.admin, &form_body("newsletter"))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "form_exists");
    let mut other_brand = form_body("other");
    other_brand["brand"] = json!("Metro");
    other_brand["consent_text"] = json!("Offers from Metro.");
    let refused = app.post("/v1/forms", &t.admin, &other_brand).await;
    assert_eq!(refused.code(), "unknown_brand");
    let reserved = app.post("/v1/forms", &t.admin, &form_body("opt-out")).await;
    assert_eq!(reserved.field_code("id").as_deref(), Some("invalid_value"));
    let mismatch = app
        .put("/v1/forms/other", &t.admin, &form_body("newsletter"))
        .await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY);
    let missing = app
        .put("/v1/forms/nope", &t.admin, &form_body("nope"))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let metro = app.tenant("metro", "Metro").await;
    let theirs = app.get("/v1/forms/newsletter", &metro.admin).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
}

#[both]
async fn the_opt_in_page_records_what_the_server_saw() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    form(&app, &t, form_body("newsletter")).await;
    let client = browser();
    let path = "/forms/makro/newsletter";
    let (headers, page) = get_page(&client, &app, path).await;
    assert!(headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("SameSite=Strict"));
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(page.contains("Messages from Makro"));
    assert!(page.contains("Yes, I want offers and order updates from Makro on WhatsApp."));
    assert!(!page.contains("checked"), "no box is ticked");
    assert!(page.contains("value=\"\""), "no number is pre-filled");
    let token = token_of(&page);
    app.clock.advance(5_000);
    let (status, refused) = post_page(
        &client,
        &app,
        path,
        &[
            ("token", &token),
            ("region", "DE"),
            ("number", "12"),
            ("purpose", "marketing"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.contains("This is not a valid mobile number"),
        "{refused}"
    );
    assert!(refused.contains("aria-invalid=\"true\""));
    let (status, unticked) = post_page(
        &client,
        &app,
        path,
        &[
            ("token", &token),
            ("region", "DE"),
            ("number", "015112345678"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unticked.contains("Tick at least one box."));
    assert_eq!(log_size(&app, &t).await, 0, "nothing recorded yet");
    let (status, done) = post_page(
        &client,
        &app,
        path,
        &[
            ("token", &token),
            ("region", "DE"),
            ("number", "015112345678"),
            ("purpose", "marketing"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done.contains("Your consent has been recorded."));
    let e = entry(&app, &t, 0).await;
    assert_eq!(e["entry"]["type"], "opt_in");
    assert_eq!(e["entry"]["channel"], "web");
    assert_eq!(e["entry"]["collector"], "form:newsletter");
    assert_eq!(e["entry"]["purposes"], json!(["marketing"]));
    assert_eq!(e["entry"]["language"], "en");
    assert_eq!(e["openings"]["subject"]["e164"], NUMBER);
    let evidence = &e["openings"]["evidence"]["body"];
    assert_eq!(evidence["form_id"], "newsletter");
    assert_eq!(evidence["form_version"], "1");
    assert_eq!(evidence["ip"], "127.0.0.1");
    assert_eq!(evidence["user_agent"], "PagesTest/1.0 (phone)");
    assert!(evidence["page_url"].as_str().unwrap().ends_with(path));
    // The hash is of the page every visitor is shown (its token blanked).
    let blanked = page.replace(&token, "");
    let sha = hex::encode(sha2::Sha256::digest(blanked.as_bytes()));
    assert_eq!(evidence["rendered_html_sha256"], sha);
    let check = json!({"number": NUMBER, "purpose": "marketing", "brand": "Makro"});
    assert_eq!(app.reason(&t, check).await, "allowed");
}

#[both]
async fn bots_and_other_sites_record_nothing() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    form(&app, &t, form_body("newsletter")).await;
    let path = "/forms/makro/newsletter";
    let client = browser();
    let (_, page) = get_page(&client, &app, path).await;
    let token = token_of(&page);
    let fields = |extra: &[(&'static str, &'static str)]| {
        let mut all = vec![
            ("region", "DE"),
            ("number", "015112345678"),
            ("purpose", "marketing"),
        ];
        all.extend_from_slice(extra);
        all
    };
    // Faster than a person reads.
    let mut fast = fields(&[]);
    fast.push(("token", &token));
    let (status, body) = post_page(&client, &app, path, &fast).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("take a moment"), "{body}");
    app.clock.advance(5_000);
    // The trap field a person never sees, filled: a thank-you, and nothing.
    let mut trapped = fields(&[("website", "https://spam.example")]);
    trapped.push(("token", &token));
    let (status, body) = post_page(&client, &app, path, &trapped).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Thank you"));
    // Another site's post: no cookie.
    let mut foreign = fields(&[]);
    foreign.push(("token", &token));
    let (status, _) = post_page(&reqwest::Client::new(), &app, path, &foreign).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A forged token.
    let (status, _) = post_page(&client, &app, path, &{
        let mut forged = fields(&[]);
        forged.push(("token", "1.abc"));
        forged
    })
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // After two hours the page has expired.
    app.clock.advance(2 * 3600 * 1000);
    let (status, _) = post_page(&client, &app, path, &{
        let mut late = fields(&[]);
        late.push(("token", &token));
        late
    })
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(log_size(&app, &t).await, 0, "nothing recorded");
    // An unknown form, tenant or retired brand: no page.
    for missing in [
        "/forms/makro/nope",
        "/forms/nobody/newsletter",
        "/forms/Bad!/x",
    ] {
        let answer = client.get(app.url(missing)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{missing}");
    }
}

#[both]
async fn a_page_may_be_framed_only_by_its_embed_origins() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let mut body = form_body("embedded");
    body["embed_origins"] = json!(["https://shop.makro.example"]);
    form(&app, &t, body).await;
    let (headers, _) = get_page(&browser(), &app, "/forms/makro/embedded").await;
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("frame-ancestors https://shop.makro.example"),
        "{policy}"
    );
    assert!(headers.get("x-frame-options").is_none());
}

#[both]
async fn a_page_opt_in_waits_for_its_code_when_the_tenant_asks() {
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
    let mut body = form_body("newsletter");
    body["language"] = json!("pt-BR");
    body["default_region"] = json!("BR");
    form(&app, &t, body).await;
    let client = browser();
    let path = "/forms/makro/newsletter";
    let (_, page) = get_page(&client, &app, path).await;
    assert!(page.contains("lang=\"pt-BR\""));
    assert!(
        page.contains("Concordo e quero receber"),
        "the page's words in Portuguese"
    );
    assert!(page.contains("<option value=\"BR\" selected>"));
    app.clock.advance(5_000);
    let token = token_of(&page);
    let (status, done) = post_page(
        &client,
        &app,
        path,
        &[
            ("token", &token),
            ("number", "11 98765-4321"),
            ("purpose", "marketing"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let code_start = done.find("id=\"code\">").expect("a code") + "id=\"code\">".len();
    let code = &done[code_start..code_start + 6];
    assert!(done.contains(&format!("https://wa.me/4930123456?text=CONFIRM%20{code}")));
    let number = "+5511987654321";
    let check = json!({"number": number, "purpose": "marketing", "brand": "Makro"});
    assert_eq!(app.reason(&t, check.clone()).await, "unconfirmed");
    let at = app.clock.now().millis() / 1000;
    whatsapp(
        &app,
        &text(
            &number[1..],
            "wamid.page",
            &format!("CONFIRM {code}"),
            false,
            at,
        ),
    )
    .await;
    assert_eq!(app.reason(&t, check).await, "allowed");
}

#[both]
async fn the_opt_out_page_answers_the_same_for_any_number() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let path = "/forms/makro/opt-out?lang=de";
    let mut answers = Vec::new();
    for number in [NUMBER, "+4915199998888"] {
        let client = browser();
        let (_, page) = get_page(&client, &app, path).await;
        assert!(page.contains("Nachrichten abbestellen"));
        assert!(page.contains("Makro"));
        let token = token_of(&page);
        app.clock.advance(5_000);
        let (status, done) = post_page(
            &client,
            &app,
            path,
            &[("token", &token), ("number", number)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{done}");
        answers.push(done);
    }
    assert_eq!(answers[0], answers[1], "the same answer, known or not");
    let check = json!({"number": NUMBER, "purpose": "marketing", "brand": "Makro"});
    assert_eq!(app.reason(&t, check).await, "opted_out");
    let e = entry(&app, &t, 1).await;
    assert_eq!(e["entry"]["type"], "opt_out");
    assert_eq!(e["entry"]["collector"], "form:opt-out");
    assert_eq!(e["entry"]["channel"], "web");
    assert_eq!(e["entry"]["purposes"].as_array().map(Vec::len), Some(3));
    assert_eq!(e["entry"]["message_channels"], json!(["sms", "whatsapp"]));
    assert_eq!(e["openings"]["evidence"]["body"]["reason"], "opt-out page");
    // Too fast for a person, or the trap field filled: nothing recorded.
    let client = browser();
    let (_, page) = get_page(&client, &app, path).await;
    let token = token_of(&page);
    let before = log_size(&app, &t).await;
    let fields = [("token", token.as_str()), ("number", "+4915100001111")];
    let (status, body) = post_page(&client, &app, path, &fields).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("Bitte lesen Sie den Text in Ruhe"), "{body}");
    app.clock.advance(5_000);
    let trapped = [
        ("token", token.as_str()),
        ("number", "+4915100001111"),
        ("website", "x"),
    ];
    let (status, body) = post_page(&client, &app, path, &trapped).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, answers[0], "thanked like anyone");
    // A bad number: the page again.
    let bad = [("token", token.as_str()), ("number", "12")];
    let (status, _) = post_page(&client, &app, path, &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(log_size(&app, &t).await, before, "nothing recorded");
}

/// A client that keeps cookies and comes, through the test app's trusted
/// proxy (127.0.0.1), from `address`.
fn browser_at(address: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", address.parse().expect("a header value"));
    reqwest::Client::builder()
        .cookie_store(true)
        .user_agent("PagesTest/1.0 (phone)")
        .default_headers(headers)
        .build()
        .expect("a client")
}

/// An app on a manual clock that believes `X-Forwarded-For` from the
/// loopback address, so a test's clients can come from many addresses.
async fn app_behind_proxy(page_posts_per_minute: Option<u32>) -> TestApp {
    spawn_app_at_manual_clock_with(|a| {
        a.trusted_proxies = Some("127.0.0.1/32".into());
        a.limits.page_posts_per_minute = page_posts_per_minute;
    })
    .await
}

/// Serves `path` to `client`, lets `wait_millis` pass on the app's clock,
/// then posts `fields` with the page's token.
async fn serve_and_post(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    wait_millis: i64,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let (_, page) = get_page(client, app, path).await;
    let token = token_of(&page);
    app.clock.advance(wait_millis);
    let mut all = vec![("token", token.as_str())];
    all.extend_from_slice(fields);
    post_page(client, app, path, &all).await
}

/// The opt-out page from the victim's own address: 200, and opted out.
async fn victim_opts_out(app: &TestApp, t: &Tenant, address: &str) {
    let path = "/forms/makro/opt-out";
    let fields = [("number", NUMBER)];
    let (status, done) = serve_and_post(&browser_at(address), app, path, 5_000, &fields).await;
    assert_eq!(status, StatusCode::OK, "the victim's opt-out: {done}");
    let check = json!({"number": NUMBER, "purpose": "marketing", "brand": "Makro"});
    assert_eq!(app.reason(t, check).await, "opted_out");
}

/// docs/pages.md: the opt-out page is limited per address only; the
/// forms' limits per page and per (tenant, number) cannot be filled by
/// junk or by another tenant's form. Before, 200 junk posts from as many
/// addresses filled the opt-out page's per-page count, and five posts of
/// the victim's number to another tenant's form its global per-number
/// count: the victim's own opt-out then answered 429.
#[both]
async fn one_hostile_client_cannot_stop_a_victims_opt_out() {
    let app = app_behind_proxy(None).await;
    let t = app.tenant("makro", "Makro").await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let path = "/forms/makro/opt-out";
    // Junk from 200 addresses: too fast, a bad number, the trap field.
    let mut junk = Vec::new();
    for i in 0..200 {
        let client = browser_at(&format!("198.51.100.{}", 1 + i));
        let (status, _) = match i % 3 {
            0 => serve_and_post(&client, &app, path, 0, &[("number", NUMBER)]).await,
            1 => serve_and_post(&client, &app, path, 5_000, &[("number", "12")]).await,
            _ => {
                let trap = [("number", "+4915100001111"), ("website", "x")];
                serve_and_post(&client, &app, path, 5_000, &trap).await
            }
        };
        junk.push(status.as_u16());
    }
    victim_opts_out(&app, &t, "203.0.113.10").await;
    let expected: Vec<u16> = (0..200).map(|i| [422, 422, 200][i % 3]).collect();
    assert_eq!(junk, expected, "each junk post answered as itself");
    // The victim's number, posted to another tenant's own form.
    let evil = app.tenant("evil", "Evil").await;
    let mut body = form_body("grab");
    body["brand"] = json!("Evil");
    body["consent_text"] = json!("Yes, offers from Evil.");
    form(&app, &evil, body).await;
    let mut statuses = Vec::new();
    for i in 0..7 {
        let client = browser_at(&format!("192.0.2.{}", 1 + i));
        let fields = [("number", NUMBER), ("purpose", "marketing")];
        let (status, _) = serve_and_post(&client, &app, "/forms/evil/grab", 5_000, &fields).await;
        statuses.push(status.as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 429, 429],
        "evil's own count"
    );
    victim_opts_out(&app, &t, "203.0.113.11").await;
    // And a person opting in on makro's own form is not refused either.
    form(&app, &t, form_body("newsletter")).await;
    let fields = [("number", NUMBER), ("purpose", "marketing")];
    let client = browser_at("203.0.113.12");
    let (status, done) =
        serve_and_post(&client, &app, "/forms/makro/newsletter", 5_000, &fields).await;
    assert_eq!(status, StatusCode::OK, "{done}");
}

/// An opt-in form's per-page limit counts only posts that passed the token,
/// the fill time and the number's parsing: junk from many addresses does
/// not close the page (before, 200 junk posts filled its 120 a minute).
#[both]
async fn junk_from_many_addresses_does_not_close_a_form() {
    let app = app_behind_proxy(None).await;
    let t = app.tenant("makro", "Makro").await;
    form(&app, &t, form_body("newsletter")).await;
    let path = "/forms/makro/newsletter";
    let mut junk = Vec::new();
    for i in 0..200 {
        let client = browser_at(&format!("198.51.100.{}", 1 + i));
        let (wait, number) = if i % 2 == 0 {
            (0, NUMBER)
        } else {
            (5_000, "12")
        };
        let fields = [("number", number), ("purpose", "marketing")];
        let (status, _) = serve_and_post(&client, &app, path, wait, &fields).await;
        junk.push(status.as_u16());
    }
    assert_eq!(log_size(&app, &t).await, 0);
    let fields = [("number", NUMBER), ("purpose", "marketing")];
    let client = browser_at("203.0.113.10");
    let (status, done) = serve_and_post(&client, &app, path, 5_000, &fields).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(log_size(&app, &t).await, 1);
    assert!(junk.iter().all(|s| *s == 422), "{junk:?}");
}

/// Posts for one number on one tenant's form are limited (5 an hour); the
/// same number on the opt-out page never is.
#[both]
async fn posts_for_one_number_are_limited_on_the_forms_only() {
    let app = app_behind_proxy(None).await;
    let t = app.tenant("makro", "Makro").await;
    form(&app, &t, form_body("newsletter")).await;
    let mut statuses = Vec::new();
    for i in 0..7 {
        let client = browser_at(&format!("192.0.2.{}", 1 + i));
        let fields = [("number", NUMBER), ("purpose", "marketing")];
        let path = "/forms/makro/newsletter";
        let (status, _) = serve_and_post(&client, &app, path, 5_000, &fields).await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    for i in 0..7 {
        victim_opts_out(&app, &t, &format!("192.0.2.{}", 101 + i)).await;
    }
}

/// The pages' per-address limit counts an IPv6 client by its /64 (one
/// host usually has the whole /64 to pick addresses from); before, each
/// address had its own count.
#[both]
async fn the_opt_out_page_is_limited_per_address_and_ipv6_per_64() {
    let app = app_behind_proxy(Some(2)).await;
    app.tenant("makro", "Makro").await;
    let path = "/forms/makro/opt-out";
    let fields = [("number", NUMBER)];
    let mut statuses = Vec::new();
    for address in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"] {
        let (status, _) = serve_and_post(&browser_at(address), &app, path, 5_000, &fields).await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429], "one /64, two posts a minute");
    let (status, _) =
        serve_and_post(&browser_at("2001:db8:1:3::1"), &app, path, 5_000, &fields).await;
    assert_eq!(status, StatusCode::OK, "another /64");
}

/// A page open while its form is changed: the post records nothing and
/// shows the current page (422, `form_changed`) with a token for it;
/// sent again, it records what the person was then shown. Before, the
/// post recorded the new wording as what the person agreed to.
#[both]
async fn a_post_for_a_form_that_changed_records_nothing_and_shows_the_current_page() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    form(&app, &t, form_body("newsletter")).await;
    let client = browser();
    let path = "/forms/makro/newsletter";
    let (_, page) = get_page(&client, &app, path).await;
    let old_text = "Yes, I want offers and order updates from Makro on WhatsApp.";
    assert!(page.contains(old_text));
    let mut changed = form_body("newsletter");
    let new_text = "Yes, Makro may send me offers, order updates and partner deals on WhatsApp.";
    changed["consent_text"] = json!(new_text);
    let put = app.put("/v1/forms/newsletter", &t.admin, &changed).await;
    assert_eq!(put.body["version"], 2, "{}", put.body);
    app.clock.advance(5_000);
    let fields = [
        ("token", token_of(&page)),
        ("region", "DE".to_owned()),
        ("number", "015112345678".to_owned()),
        ("purpose", "marketing".to_owned()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, current) = post_page(&client, &app, path, &fields).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{current}");
    assert!(current.contains("data-code=\"form_changed\""), "{current}");
    assert!(current.contains("This form has changed since you opened it."));
    assert!(current.contains(new_text) && !current.contains(old_text));
    assert!(
        !current.contains("checked"),
        "the boxes are to be ticked again"
    );
    assert!(
        current.contains("value=\"015112345678\""),
        "the number typed stays"
    );
    assert_eq!(log_size(&app, &t).await, 0, "nothing recorded");
    // The old token stays refused; the new page's token records version 2.
    let (status, _) = post_page(&client, &app, path, &fields).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    app.clock.advance(5_000);
    let token = token_of(&current);
    let mut again = fields.clone();
    again[0] = ("token", token.as_str());
    let (status, done) = post_page(&client, &app, path, &again).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let e = entry(&app, &t, 0).await;
    assert_eq!(e["openings"]["consent_text"], new_text);
    assert_eq!(e["openings"]["evidence"]["body"]["form_version"], "2");
}

/// Every field of a form changes what its page shows or what its opt-ins
/// record, so every change makes a new version; an unchanged definition
/// (whatever the order of its lists) makes none.
#[both]
async fn every_change_to_a_form_makes_a_new_version() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    app.add_brand(&t, "Metro").await;
    let mut body = form_body("newsletter");
    form(&app, &t, body.clone()).await;
    let changes: [(&str, Value); 8] = [
        ("consent_text", json!("Yes, offers from Makro on WhatsApp.")),
        ("purposes", json!(["marketing"])),
        ("message_channels", json!(["whatsapp", "sms"])),
        ("language", json!("de")),
        ("default_region", json!("AT")),
        ("privacy_url", json!("https://makro.example/privacy-2")),
        ("embed_origins", json!(["https://shop.makro.example"])),
        ("brand", json!("Metro")),
    ];
    let mut version = 1;
    for (field, value) in changes {
        body[field] = value;
        if field == "brand" {
            body["consent_text"] = json!("Yes, offers from Metro on WhatsApp.");
        }
        let put = app.put("/v1/forms/newsletter", &t.admin, &body).await;
        version += 1;
        assert_eq!(put.body["version"], version, "{field}: {}", put.body);
    }
    body["message_channels"] = json!(["sms", "whatsapp"]);
    let same = app.put("/v1/forms/newsletter", &t.admin, &body).await;
    assert_eq!(
        same.body["version"], version,
        "the same lists in another order"
    );
}
