//! Opt-outs heard in the person's own language (docs/messages.md), measured
//! through both webhooks on a corpus of our own (`tests/corpus/`): at
//! least 95% of each language's opt-out messages are recorded as opt-outs,
//! and at most 1% of ordinary customer-service messages opt out silently
//! (recorded as an opt-out and not listed in `GET /v1/reviews`). Also: a
//! language the tenant did not enable is not read, and an opt-out names
//! the rule, language and vocabulary version that heard it.

use crate::channels::*;
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};

const LANGUAGES: [&str; 8] = ["en", "fr", "es", "pt", "de", "it", "nl", "id"];

/// The corpus lines of a file: neither blank nor a `#` comment.
fn corpus_lines(name: &str) -> Vec<String> {
    let path = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// One message of the corpus: its language, its words, and whether a
/// person meant to opt out.
struct Sample {
    language: String,
    text: String,
    opt_out: bool,
}

/// The messages of a corpus: `""` the first one, `"holdout/"` the one
/// written after the vocabularies were tuned on the first.
fn corpus(set: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for language in LANGUAGES {
        let lines = corpus_lines(&format!("{set}opt_outs/{language}.txt"));
        assert!(
            lines.len() >= 30,
            "{language}: {} opt-out messages",
            lines.len()
        );
        samples.extend(lines.into_iter().map(|text| Sample {
            language: language.to_owned(),
            text,
            opt_out: true,
        }));
    }
    let ordinary = corpus_lines(&format!("{set}ordinary.txt"));
    assert!(ordinary.len() >= 96, "{} ordinary messages", ordinary.len());
    for line in ordinary {
        let (language, text) = line.split_once('\t').expect("`code<TAB>message`");
        assert!(LANGUAGES.contains(&language), "{language}");
        samples.push(Sample {
            language: language.to_owned(),
            text: text.to_owned(),
            opt_out: false,
        });
    }
    samples
}

/// A distinct valid German mobile number per sample.
fn number_of(index: usize) -> String {
    format!("+49151{:08}", 20_000_000 + index)
}

/// The ids of every review item waiting, walked page by page.
async fn review_ids(app: &TestApp, t: &Tenant) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/reviews?limit=1000&after={a}"),
            None => "/v1/reviews?limit=1000".to_owned(),
        };
        let page = app.get(&path, &t.admin).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for item in page.body["reviews"].as_array().expect("reviews") {
            ids.insert(item["id"].as_str().expect("id").to_owned());
        }
        match page.body["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return ids,
        }
    }
}

/// How a channel delivers a sample.
#[derive(Clone, Copy)]
enum Door {
    WhatsApp,
    Sms,
}

async fn deliver(app: &TestApp, door: Door, number: &str, index: usize, text: &str) {
    match door {
        Door::WhatsApp => {
            let payload = super::vocabularies::whatsapp_text(number, index, text);
            whatsapp(app, &payload).await;
        }
        Door::Sms => twilio(app, &sms(number, &format!("SM{index:032}"), text)).await,
    }
}

pub(crate) fn whatsapp_text(number: &str, index: usize, body: &str) -> Value {
    text(
        number.trim_start_matches('+'),
        &format!("wamid.corpus{index}"),
        body,
        false,
        now_secs(),
    )
}

/// Runs the corpus through one door: each sample from its own number, which
/// opted in to marketing first; then one batch check reads who opted out.
async fn measure(door: Door) {
    let mut samples = corpus("");
    samples.extend(corpus("holdout/"));
    let app = spawn_app().await;
    let t = configured(&app).await;
    for (i, sample) in samples.iter().enumerate() {
        let number = number_of(i);
        app.recorded_opt_in(&t, web_opt_in(&number, "Makro", &["marketing"]))
            .await;
        deliver(&app, door, &number, i, &sample.text).await;
    }
    let checks: Vec<Value> = (0..samples.len())
        .map(|i| json!({"number": number_of(i), "purpose": "marketing", "brand": "Makro", "channel": "whatsapp"}))
        .collect();
    let batch = app
        .post("/v1/checks/batch", &t.sender, &json!({ "checks": checks }))
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
    let decisions = batch.body["decisions"].as_array().expect("decisions");
    let listed = review_ids(&app, &t).await;
    // language → (opt-outs heard, opt-outs, ordinary silently opted out, ordinary)
    let mut table: BTreeMap<&str, (usize, usize, usize, usize)> = BTreeMap::new();
    let mut missed = Vec::new();
    let mut silent = Vec::new();
    for (sample, decision) in samples.iter().zip(decisions) {
        let opted_out = decision["reason"] == "opted_out";
        let row = table.entry(sample.language.as_str()).or_default();
        if sample.opt_out {
            row.1 += 1;
            if opted_out {
                row.0 += 1;
            } else {
                missed.push(format!("{}: {}", sample.language, sample.text));
            }
        } else {
            row.3 += 1;
            let seq = decision["consent"]["seq"].as_u64();
            let reviewed = seq.is_some_and(|s| listed.contains(&s.to_string()));
            if opted_out && !reviewed {
                row.2 += 1;
                silent.push(format!("{}: {}", sample.language, sample.text));
            }
        }
    }
    let mut report = String::from("| language | opt-outs heard | recall | ordinary | silent opt-outs |\n|---|---|---|---|---|\n");
    for (language, (heard, of, quiet, ordinary)) in &table {
        report.push_str(&format!(
            "| {language} | {heard}/{of} | {:.1}% | {ordinary} | {quiet} |\n",
            100.0 * *heard as f64 / *of as f64
        ));
    }
    let ordinary: usize = table.values().map(|r| r.3).sum();
    let quiet: usize = table.values().map(|r| r.2).sum();
    eprintln!("{report}missed: {missed:#?}\nsilent: {silent:#?}");
    for (language, (heard, of, _, _)) in &table {
        assert!(
            *heard as f64 >= 0.95 * *of as f64,
            "{language}: recall {heard}/{of} under 95%\n{report}missed: {missed:#?}"
        );
    }
    assert!(
        quiet as f64 <= 0.01 * ordinary as f64,
        "{quiet} of {ordinary} ordinary messages opted out silently: {silent:#?}\n{report}"
    );
}

#[both]
async fn the_corpus_is_heard_through_the_whatsapp_webhook() {
    measure(Door::WhatsApp).await;
}

#[both]
async fn the_corpus_is_heard_through_the_twilio_webhook() {
    measure(Door::Sms).await;
}

#[both]
async fn a_language_the_tenant_did_not_enable_is_not_read() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let patched = app
        .patch("/v1/tenant", &t.admin, &json!({"languages": ["de"]}))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        patched.body["languages"],
        json!(["en", "de"]),
        "English is always on"
    );
    let (pt, de) = ("+4915122000001", "+4915122000002");
    for n in [pt, de] {
        app.recorded_opt_in(&t, web_opt_in(n, "Makro", &["marketing"]))
            .await;
    }
    whatsapp(
        &app,
        &whatsapp_text(pt, 1, "não quero mais receber mensagens"),
    )
    .await;
    whatsapp(
        &app,
        &whatsapp_text(de, 2, "ich möchte keine Nachrichten mehr"),
    )
    .await;
    assert_eq!(
        reason_for(&app, &t, pt, "marketing", "whatsapp").await,
        "allowed"
    );
    assert_eq!(
        reason_for(&app, &t, de, "marketing", "whatsapp").await,
        "opted_out"
    );
    // Enabled again (null: every language), Portuguese is heard.
    let patched = app
        .patch("/v1/tenant", &t.admin, &json!({"languages": null}))
        .await;
    assert_eq!(patched.body["languages"], json!(LANGUAGES));
    whatsapp(
        &app,
        &whatsapp_text(pt, 3, "não quero mais receber mensagens"),
    )
    .await;
    assert_eq!(
        reason_for(&app, &t, pt, "marketing", "whatsapp").await,
        "opted_out"
    );
    // An unknown language is refused.
    let refused = app
        .patch("/v1/tenant", &t.admin, &json!({"languages": ["xx"]}))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
}

#[both]
async fn an_opt_out_names_the_rule_language_and_vocabulary_that_heard_it() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let cases = [
        ("+4915122000011", "SAIR", "keyword", Some("pt")),
        (
            "+4915122000012",
            "je ne veux plus recevoir vos messages",
            "phrase",
            Some("fr"),
        ),
        (
            "+4915122000013",
            "Can I cancel my order?",
            "ambiguous",
            Some("en"),
        ),
        // The tenant's own keyword: no vocabulary heard it.
        ("+4915122000014", "Nomore4me!", "keyword", None),
    ];
    let mut own = settings();
    own["opt_out_keywords"] = json!(["NOMORE4ME"]);
    let put = app.put("/v1/channels", &t.admin, &own).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    for (i, (number, words, rule, language)) in cases.into_iter().enumerate() {
        app.recorded_opt_in(&t, web_opt_in(number, "Makro", &["marketing"]))
            .await;
        whatsapp(&app, &whatsapp_text(number, 100 + i, words)).await;
        let answer = app
            .check(
                &t,
                json!({"number": number, "purpose": "marketing", "brand": "Makro"}),
            )
            .await;
        assert_eq!(answer.body["reason"], "opted_out", "{words}");
        let seq = answer.body["consent"]["seq"].as_u64().expect("seq");
        let e = entry(&app, &t, seq).await;
        let evidence = &e["openings"]["evidence"]["body"];
        assert_eq!(evidence["rule"], rule, "{words}: {evidence}");
        assert_eq!(
            evidence["language"].as_str(),
            language,
            "{words}: {evidence}"
        );
        assert_eq!(
            evidence["vocabulary_version"].is_string(),
            language.is_some(),
            "{words}: {evidence}"
        );
        assert_eq!(evidence["body"], words);
        assert_eq!(e["entry"]["collector"], "webhook:whatsapp");
    }
}

#[both]
async fn an_opt_in_match_that_a_vocabulary_hears_is_refused() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let with_match = |text: &str| {
        let mut s = settings();
        s["whatsapp"]["opt_in"] = json!([{"match": text, "brand": "Makro", "purposes": ["marketing"],
            "prompt": "Send it to get offers from Makro on WhatsApp."}]);
        s
    };
    for reserved in [
        "SAIR",
        "cadastrar",
        "stop texting me",
        "Abmelden",
        "UNREG ALL please",
    ] {
        let answer = app
            .put("/v1/channels", &t.admin, &with_match(reserved))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{reserved}: {}",
            answer.body
        );
        assert_eq!(
            answer.field_code("whatsapp.opt_in[0].match").as_deref(),
            Some("reserved_word"),
            "{reserved}"
        );
    }
    // With Portuguese off, SAIR is an ordinary word.
    app.patch("/v1/tenant", &t.admin, &json!({"languages": ["en"]}))
        .await;
    let answer = app.put("/v1/channels", &t.admin, &with_match("SAIR")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}
