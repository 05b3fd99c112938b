//! A log of many real entries, built fast for the service benchmark: the
//! library's own appender (subjects, consent state, entries, Merkle nodes)
//! in transactions of 20,000 with syncing off, then synced. Only the
//! building skips syncs; the service is measured on it with every commit
//! synced.

use consent_ledger::config::{Secret, Settings, SettingsArgs};
use consent_ledger::domain::access::TenantId;
use consent_ledger::domain::evidence::Evidence;
use consent_ledger::domain::identity::Identity;
use consent_ledger::domain::ids::BrandId;
use consent_ledger::domain::number::E164;
use consent_ledger::domain::purpose::{CaptureChannel, MessageChannelSet, Purpose};
use consent_ledger::domain::record::{OptInDraft, OptInRecord, Record};
use consent_ledger::domain::time::Timestamp;
use consent_ledger::services::signer::Signer;
use consent_ledger::startup::prepare;
use consent_ledger::store::append::append_locked;
use consent_ledger::store::tenants as tenant_store;
use diesel::RunQueryDsl;
use std::path::PathBuf;
use std::time::Instant;

/// A data dir holding one tenant `bench` with `entries` opt-ins.
pub struct BuiltLog {
    pub data_dir: PathBuf,
    pub collector: String,
    pub sender: String,
    pub auditor: String,
    pub verifier_key: String,
    pub seconds: f64,
    pub database_mib: f64,
}

/// The number of the `i`th opt-in (the same numbers the load phases use).
pub fn number(i: u64) -> String {
    format!("+49151{:08}", 10_000_000 + i)
}

fn opt_in(i: u64, brand: BrandId, now: Timestamp) -> Record {
    let number = E164::from_canonical(&number(i)).expect("canonical");
    let ip = format!("203.0.{}.{}", (i >> 8) % 256, i % 256);
    Record::OptIn(OptInRecord {
        draft: OptInDraft {
            identity: Identity::Number(number),
            channel: CaptureChannel::Web,
            company_name_shown: "Bench".into(),
            consent_text: "Offers from Bench on WhatsApp. Reply STOP to end.".into(),
            purposes: [Purpose::Marketing].into_iter().collect(),
            message_channels: MessageChannelSet::all(),
            captured_at: now,
            language: None,
            backfill: false,
            evidence: Evidence::from_list(&[
                ("page_url", "https://bench.example/"),
                ("ip", &ip),
                ("user_agent", "bench"),
            ]),
        },
        brand_id: brand,
        confirmation: None,
    })
}

/// Builds the log in `dir` (with the operator token the benchmark uses).
pub fn build(dir: &std::path::Path, operator: &str, entries: u64) -> BuiltLog {
    let data_dir = dir.join("data");
    let args = SettingsArgs {
        data_dir: Some(data_dir.clone()),
        bind: Some("127.0.0.1:0".into()),
        origin: Some("bench.example".into()),
        operator_token: Some(Secret::new(operator.into())),
        ..Default::default()
    };
    let settings = Settings::resolve(&args).expect("settings");
    let prepared = prepare(&settings).expect("prepare");
    let signer = Signer::new(settings.signer_state_file.clone());
    let mut conn = prepared.pool.get().expect("connection");
    let now = Timestamp::now();
    let bench = TenantId::parse("bench").expect("a tenant id");
    let created = consent_ledger::services::tenants::create_tenant(
        &mut conn,
        &prepared.master,
        &signer,
        "bench.example",
        &bench,
        "Bench",
        now.millis(),
    )
    .expect("tenant");
    let key = |conn: &mut _, role: &str| {
        tenant_store::create_api_key(conn, &bench, role, &[role.into()], None, now.millis())
            .expect("key")
            .1
    };
    let (collector, sender, auditor) = (
        key(&mut conn, "collector"),
        key(&mut conn, "sender"),
        key(&mut conn, "auditor"),
    );
    let brand = tenant_store::find_brand(&mut conn, &bench, "Bench")
        .expect("brand")
        .expect("the tenant's brand");
    let started = Instant::now();
    diesel::sql_query("PRAGMA synchronous = OFF")
        .execute(&mut **conn)
        .expect("pragma");
    let batch = 20_000;
    for start in (0..entries).step_by(batch) {
        conn.immediate_transaction(|conn| {
            for i in start..(start + batch as u64).min(entries) {
                let record = opt_in(i, BrandId(brand.id), now);
                append_locked(conn, &prepared.master, &bench, "bench", &record, None, now)?;
            }
            Ok::<_, consent_ledger::store::StoreError>(())
        })
        .expect("appends");
    }
    diesel::sql_query("PRAGMA synchronous = FULL")
        .execute(&mut **conn)
        .expect("pragma");
    signer
        .ensure_checkpoint(&mut conn, &prepared.master, &bench)
        .expect("checkpoint");
    drop(conn);
    drop(prepared);
    let seconds = started.elapsed().as_secs_f64();
    let database_mib = std::fs::metadata(data_dir.join("consent-ledger.db"))
        .map_or(0.0, |m| m.len() as f64 / (1 << 20) as f64);
    BuiltLog {
        data_dir,
        collector,
        sender,
        auditor,
        verifier_key: created.verifier_key,
        seconds,
        database_mib,
    }
}
