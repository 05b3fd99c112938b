//! Admin writes that race each other: on PostgreSQL (read committed, several
//! connections) as on SQLite, every request gets its precise answer, never a
//! 500, and the invariant behind the refusal holds afterwards.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// How many copies of one request race.
const RACERS: usize = 8;

/// Sends the requests at once; answers in the order given.
async fn race(app: &TestApp, requests: Vec<(Method, String, String, Value)>) -> Vec<Answer> {
    let mut tasks = Vec::new();
    for (method, path, key, body) in requests {
        let client = app.client.clone();
        let url = app.url(&path);
        tasks.push(tokio::spawn(async move {
            let mut request = client.request(method.clone(), url).bearer_auth(key);
            if method != Method::DELETE {
                request = request.json(&body);
            }
            TestApp::answer(request.send().await.expect("request")).await
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    answers
}

fn statuses(answers: &[Answer]) -> Vec<u16> {
    let mut s: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    s.sort_unstable();
    s
}

#[both(pgbouncer)]
async fn one_tenant_id_raced_is_created_once() {
    let app = spawn_app().await;
    let requests = (0..RACERS)
        .map(|i| {
            (
                Method::POST,
                "/v1/tenants".to_owned(),
                OPERATOR_TOKEN.to_owned(),
                json!({"id": "makro", "brand": format!("Makro {i}")}),
            )
        })
        .collect();
    let answers = race(&app, requests).await;
    let mut expected = vec![201];
    expected.extend(vec![409; RACERS - 1]);
    assert_eq!(statuses(&answers), expected, "{:?}", bodies(&answers));
    for refused in answers.iter().filter(|a| a.status == StatusCode::CONFLICT) {
        assert_eq!(refused.code(), "tenant_exists");
    }
    // The winner's admin key works, and its brand is the only one.
    let winner = answers
        .iter()
        .find(|a| a.status == StatusCode::CREATED)
        .expect("one created");
    let admin = winner.body["admin_key"]["key"].as_str().expect("key");
    let brands = app.get("/v1/brands", admin).await;
    assert_eq!(brands.status, StatusCode::OK);
    assert_eq!(brands.body["brands"].as_array().map(Vec::len), Some(1));
}

#[both(pgbouncer)]
async fn one_brand_raced_is_added_once() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let requests = (0..RACERS)
        .map(|i| {
            // The same name up to case: one brand.
            let name = if i % 2 == 0 { "Metro" } else { "METRO" };
            (
                Method::POST,
                "/v1/brands".to_owned(),
                t.admin.clone(),
                json!({"name": name}),
            )
        })
        .collect();
    let answers = race(&app, requests).await;
    let mut expected = vec![201];
    expected.extend(vec![409; RACERS - 1]);
    assert_eq!(statuses(&answers), expected, "{:?}", bodies(&answers));
    let brands = app.get("/v1/brands", &t.admin).await;
    assert_eq!(brands.body["brands"].as_array().map(Vec::len), Some(2));
}

#[both(pgbouncer)]
async fn revoking_every_admin_key_at_once_leaves_one() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let mut admins = vec![t.admin.clone()];
    for _ in 1..RACERS {
        admins.push(app.new_key(&t.admin, &["admin"]).await);
    }
    // Each admin key revokes itself, all at once.
    let requests = admins
        .iter()
        .map(|key| {
            let id = key_id(key);
            (
                Method::DELETE,
                format!("/v1/keys/{id}"),
                key.clone(),
                Value::Null,
            )
        })
        .collect();
    let answers = race(&app, requests).await;
    let mut expected = vec![204; RACERS - 1];
    expected.push(409);
    assert_eq!(statuses(&answers), expected, "{:?}", bodies(&answers));
    let refused = answers
        .iter()
        .position(|a| a.status == StatusCode::CONFLICT)
        .expect("one refused");
    assert_eq!(answers[refused].code(), "last_admin_key");
    // The key that was refused is the one still working.
    let survivor = &admins[refused];
    assert_eq!(app.get("/v1/keys", survivor).await.status, StatusCode::OK);
    for (i, key) in admins.iter().enumerate() {
        if i != refused {
            assert_eq!(
                app.get("/v1/keys", key).await.status,
                StatusCode::UNAUTHORIZED
            );
        }
    }
}

#[both(pgbouncer)]
async fn one_business_number_raced_by_two_tenants_goes_to_one() {
    let app = spawn_app().await;
    let mut tenants = Vec::new();
    for i in 0..RACERS {
        tenants.push(
            app.tenant(&format!("tenant{i}"), &format!("Brand{i}"))
                .await,
        );
    }
    let requests = tenants
        .iter()
        .map(|t| {
            (
                Method::PUT,
                "/v1/channels".to_owned(),
                t.admin.clone(),
                json!({"twilio": {
                    "auth_token": "secret-token-0123456789",
                    "account_sid": "AC00000000000000000000000000000000",
                    "webhook_url": "https://hooks.example.com/webhooks/twilio/x",
                    "numbers": ["+4930123456"],
                    "opt_in": []
                }}),
            )
        })
        .collect();
    let answers = race(&app, requests).await;
    let mut expected = vec![200];
    expected.extend(vec![422; RACERS - 1]);
    assert_eq!(statuses(&answers), expected, "{:?}", bodies(&answers));
    for refused in answers
        .iter()
        .filter(|a| a.status == StatusCode::UNPROCESSABLE_ENTITY)
    {
        assert_eq!(
            refused.field_code("twilio.numbers").as_deref(),
            Some("number_taken"),
            "{}",
            refused.body
        );
    }
    // Only the winner holds it: its settings show the number.
    let winner = answers
        .iter()
        .position(|a| a.status == StatusCode::OK)
        .expect("one saved");
    for (i, t) in tenants.iter().enumerate() {
        let shown = app.get("/v1/channels", &t.admin).await;
        let numbers = &shown.body["twilio"]["numbers"];
        if i == winner {
            assert_eq!(numbers, &json!(["+4930123456"]));
        } else {
            assert!(numbers.is_null(), "{}", shown.body);
        }
    }
}

fn bodies(answers: &[Answer]) -> Vec<String> {
    answers.iter().map(|a| a.body.to_string()).collect()
}

/// `key_<12 hex>` from `clk_<12 hex>_…`.
fn key_id(key: &str) -> String {
    format!("key_{}", &key[4..16])
}

/// Webhooks, API appends and interactions on one tenant at once: on
/// PostgreSQL a writer that wrote rows referencing the tenant before it
/// locked the log could deadlock with another, and two first messages of one
/// number could both try to open its window. Every request is answered 2xx
/// and recorded.
#[both(pgbouncer)]
async fn webhooks_and_appends_on_one_tenant_all_record() {
    use crate::channels::{configured, hub_signature, now_secs, text, WA_SECRET};
    let app = spawn_app().await;
    let t = configured(&app).await;
    let now = now_secs();
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        // Half the messages come from one number, so its window is raced too.
        let wa_id = if i % 2 == 0 {
            "4915112345678".to_owned()
        } else {
            format!("49151200000{i:02}")
        };
        let payload = text(
            &wa_id,
            &format!("wamid.race.{i}"),
            "JOIN MAKRO",
            true,
            now - 5,
        );
        let body = serde_json::to_vec(&payload).expect("json");
        let signature = hub_signature(WA_SECRET, &body);
        let request = app
            .client
            .post(app.url("/webhooks/whatsapp/makro"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body);
        tasks.push(tokio::spawn(async move {
            request.send().await.expect("webhook").status()
        }));
        // The person's window, told by the API while webhooks open it.
        let interaction = app
            .client
            .post(app.url("/v1/interactions"))
            .bearer_auth(&t.sender)
            .json(&json!({"number": "+4915112345678",
                          "business_phone_number_id": crate::channels::PHONE_NUMBER_ID}));
        tasks.push(tokio::spawn(async move {
            interaction.send().await.expect("interaction").status()
        }));
        let client = app.client.clone();
        let url = app.url("/v1/opt-ins");
        let collector = t.collector.clone();
        let number = format!("+49151300000{i:02}");
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(collector)
                .json(&web_opt_in(&number, "Makro", &["marketing"]))
                .send()
                .await
                .expect("opt-in")
                .status()
        }));
    }
    for task in tasks {
        let status = task.await.expect("task");
        assert!(status.is_success(), "{status}");
    }
    let (status, note) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    let size: usize = note.lines().nth(1).expect("size").parse().expect("number");
    assert_eq!(size, 2 * RACERS, "{note}");
}

/// The read transactions behind a subject report, a batch of checks, a
/// receipt or an export see one snapshot on either backend: a write another
/// connection commits in between is not seen until the transaction ends.
#[both(pgbouncer)]
async fn a_snapshot_read_sees_nothing_committed_meanwhile() {
    use consent_ledger::store::connection::establish;
    use consent_ledger::store::schema::tenants;
    use diesel::prelude::*;
    let app = spawn_app().await;
    app.tenant("makro", "Makro").await;
    let mut reader = establish(&app.database_target()).expect("reader");
    let mut writer = establish(&app.database_target()).expect("writer");
    let age = |conn: &mut consent_ledger::store::DbConn| {
        tenants::table
            .find("makro")
            .select(tenants::max_consent_age_days)
            .first::<Option<i64>>(conn)
    };
    let (inside, later) = reader
        .snapshot(|conn| {
            let before = age(conn)?;
            diesel::update(tenants::table.find("makro"))
                .set(tenants::max_consent_age_days.eq(Some(7)))
                .execute(&mut writer)?;
            let after = age(conn)?;
            Ok::<_, diesel::result::Error>((before == after, after))
        })
        .expect("snapshot");
    assert!(inside, "the snapshot saw a commit made during it");
    assert_eq!(later, None);
    assert_eq!(age(&mut reader).expect("read"), Some(7));
}
