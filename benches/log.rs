//! Benchmarks of the verifiable log (not timed tests: run them by hand on a
//! quiet machine; the README records the numbers).
//!
//!     cargo bench --bench log -- proofs [ENTRIES]    # proofs served at ENTRIES (default 1,000,000)
//!     cargo bench --bench log -- verify [ENTRIES]    # `verify` of an export of ENTRIES entries
//!
//! `proofs` builds a log of ENTRIES leaves in a temporary SQLite database,
//! starts the service on a free loopback port and times inclusion and
//! consistency proofs over HTTP (and at the store, without HTTP).
//! `verify` writes an export of ENTRIES opted-in entries with openings,
//! signed by a fresh key, then times the offline verifier on it.

use consent_ledger::config::{Secret, Settings, SettingsArgs};
use consent_ledger::domain::time::Timestamp;
use consent_ledger::ledger::commitment::{evidence_commitment, subject_commitment};
use consent_ledger::ledger::entry::{Entry, EntryType, EvidenceOpening, Openings, SubjectOpening};
use consent_ledger::ledger::hash::sha256_hex;
use consent_ledger::ledger::jcs::jcs_string_map;
use consent_ledger::ledger::merkle::{self, Accumulator};
use consent_ledger::ledger::note::{self, Verifier};
use consent_ledger::ledger::verify::verify;
use consent_ledger::services::signer::Signer;
use consent_ledger::startup::{prepare, Application};
use consent_ledger::store::{log, schema::tenants, tenants as tenant_store};
use diesel::prelude::*;
use std::io::Write;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let what = args.first().map(String::as_str).unwrap_or("all");
    let entries: u64 = args
        .get(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    match what {
        "proofs" => proofs(entries),
        "verify" => verify_export(entries),
        "all" => {
            proofs(entries);
            verify_export(entries);
        }
        other => eprintln!("unknown benchmark {other:?}: use proofs or verify"),
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
    format!(
        "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} samples)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
        samples.len()
    )
}

fn proofs(entries: u64) {
    let dir = tempfile::tempdir().unwrap();
    let args = SettingsArgs {
        data_dir: Some(dir.path().join("data")),
        bind: Some("127.0.0.1:0".into()),
        origin: Some("bench.example".into()),
        operator_token: Some(Secret::new("clo_bench".into())),
        ..Default::default()
    };
    let settings = Settings::resolve(&args).unwrap();
    let prepared = prepare(&settings).unwrap();
    let signer = Signer::new(settings.signer_state_file.clone());
    let mut conn = prepared.pool.get().unwrap();
    let created = consent_ledger::services::tenants::create_tenant(
        &mut conn,
        &prepared.master,
        &signer,
        "bench.example",
        &bench_tenant(),
        "Bench",
        Timestamp::now().millis(),
    )
    .unwrap();
    let (_, auditor) = tenant_store::create_api_key(
        &mut conn,
        &bench_tenant(),
        "bench",
        &["auditor".into()],
        None,
        Timestamp::now().millis(),
    )
    .unwrap();

    // The tree's nodes exactly as appends store them, written in big transactions.
    let started = Instant::now();
    diesel::sql_query("PRAGMA synchronous = OFF")
        .execute(&mut **conn)
        .unwrap();
    let mut last = [0u8; 32];
    let batch = 50_000;
    for start in (0..entries).step_by(batch) {
        conn.immediate_transaction(|conn| {
            for i in start..(start + batch as u64).min(entries) {
                last = merkle::hash_leaf(&i.to_be_bytes());
                log::store_leaf(conn, &bench_tenant(), i, last)?;
            }
            Ok::<_, diesel::result::Error>(())
        })
        .unwrap();
    }
    diesel::update(tenants::table.find("bench"))
        .set((
            tenants::tree_size.eq(entries as i64),
            tenants::head_hash.eq(hex::encode(last)),
        ))
        .execute(&mut **conn)
        .unwrap();
    diesel::sql_query("PRAGMA synchronous = FULL")
        .execute(&mut **conn)
        .unwrap();
    signer
        .ensure_checkpoint(&mut conn, &prepared.master, &bench_tenant())
        .unwrap();
    let db_size = std::fs::metadata(dir.path().join("data/consent-ledger.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "proofs: built a log of {entries} leaves in {:.1} s (database {:.0} MiB); verifier key {}",
        started.elapsed().as_secs_f64(),
        db_size as f64 / (1 << 20) as f64,
        created.verifier_key
    );

    // At the store: the O(log n) node reads a proof costs.
    let mut rng = Rng(42);
    let mut inclusion = Vec::new();
    let mut consistency = Vec::new();
    for _ in 0..5_000 {
        let seq = rng.next() % entries;
        let t = Instant::now();
        let proof = log::inclusion_proof(&mut conn, &bench_tenant(), seq, entries).unwrap();
        inclusion.push(t.elapsed());
        assert!(!proof.is_empty() || entries == 1);
        let from = 1 + rng.next() % entries;
        let t = Instant::now();
        log::consistency_proof(&mut conn, &bench_tenant(), from, entries).unwrap();
        consistency.push(t.elapsed());
    }
    println!("proofs: store inclusion   {}", percentiles(inclusion));
    println!("proofs: store consistency {}", percentiles(consistency));
    drop(conn);

    // Over HTTP, one keep-alive client, requests one after another.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = Application::build(settings, prepared).unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::new();
        let mut rng = Rng(7);
        let mut inclusion = Vec::new();
        let mut consistency = Vec::new();
        for round in 0..2_200 {
            let seq = rng.next() % entries;
            let t = Instant::now();
            let r = client
                .get(format!(
                    "{base}/v1/log/proof/inclusion?seq={seq}&size={entries}"
                ))
                .bearer_auth(&auditor)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
            let took = t.elapsed();
            let from = 1 + rng.next() % entries;
            let t = Instant::now();
            let r = client
                .get(format!(
                    "{base}/v1/log/proof/consistency?from={from}&to={entries}"
                ))
                .bearer_auth(&auditor)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
            // The first 200 rounds warm the connection and the caches.
            if round >= 200 {
                inclusion.push(took);
                consistency.push(t.elapsed());
            }
        }
        println!("proofs: HTTP inclusion    {}", percentiles(inclusion));
        // For scale: the same client and server answering /healthz.
        let mut baseline = Vec::new();
        for _ in 0..1_000 {
            let t = Instant::now();
            client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            baseline.push(t.elapsed());
        }
        let mut sorted = baseline.clone();
        sorted.sort();
        let baseline_p99 = sorted[sorted.len() * 99 / 100];
        println!("proofs: HTTP /healthz     {}", percentiles(baseline));
        if baseline_p99 > Duration::from_micros(500) {
            // /healthz does no work: a slow one means other load on the machine.
            println!(
                "proofs: the machine is busy (/healthz p99 {:.3} ms); rerun when it is quiet",
                baseline_p99.as_secs_f64() * 1e3
            );
        }
        println!("proofs: HTTP consistency  {}", percentiles(consistency));
    });
}

fn verify_export(entries: u64) {
    let dir = tempfile::tempdir().unwrap();
    // BENCH_EXPORT keeps the file (to profile the CLI on it).
    let path = std::env::var_os("BENCH_EXPORT").map_or_else(
        || dir.path().join("export.ndjson"),
        std::path::PathBuf::from,
    );
    let origin = "bench.example/verify";
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let vkey = note::verifier_key(origin, &key.verifying_key().to_bytes());
    let text = "Yes, I want offers from Makro on WhatsApp. Reply STOP to end.";
    let text_hash = sha256_hex(text.as_bytes());
    let started = Instant::now();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    writeln!(out, "{{\"format\":\"consent-ledger-export/v1\",\"log\":\"{origin}\",\"tree_size\":{entries},\"verifier_key\":\"{vkey}\"}}").unwrap();
    let mut acc = Accumulator::new();
    let mut prev = [0u8; 32];
    let mut rng = Rng(99);
    let base = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
    for seq in 0..entries {
        let e164 = format!("+49151{:08}", seq % 100_000_000);
        let subject_salt = hex::encode(rng.next().to_be_bytes().repeat(4));
        let evidence_salt = hex::encode(rng.next().to_be_bytes().repeat(4));
        let ip = format!("203.0.{}.{}", (seq >> 8) % 256, seq % 256);
        let body = [
            ("page_url", "https://shop.example/newsletter"),
            ("ip", ip.as_str()),
            (
                "user_agent",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
            ),
        ];
        let at = base.plus_millis(seq as i64 * 10);
        let mut entry = Entry::new(
            EntryType::OptIn,
            origin,
            seq,
            &hex::encode(prev),
            at,
            &subject_commitment(&subject_salt, &e164),
            "key_3f9a1c2b4d5e",
        );
        entry.channel = Some("web".into());
        entry.captured_at = Some(at);
        entry.purposes = Some(vec!["marketing".into(), "utility".into()]);
        entry.message_channels = Some(vec!["whatsapp".into()]);
        entry.company_name_shown = Some("Makro".into());
        entry.language = Some("en".into());
        entry.evidence_sha256 = Some(evidence_commitment(&evidence_salt, &jcs_string_map(body)));
        entry.consent_text_sha256 = Some(text_hash.clone());
        let canonical = entry.canonical_json();
        let leaf = merkle::hash_leaf(canonical.as_bytes());
        let openings = Openings {
            subject: Some(SubjectOpening::number(e164, subject_salt)),
            evidence: Some(EvidenceOpening {
                salt: evidence_salt,
                body: body
                    .iter()
                    .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                    .collect(),
            }),
            consent_text: Some(text.into()),
            erased: false,
            linked: None,
        };
        write!(
            out,
            "{{\"entry\":{canonical},\"leaf_hash\":\"{}\",\"openings\":",
            hex::encode(leaf)
        )
        .unwrap();
        serde_json::to_writer(&mut out, &openings).unwrap();
        out.write_all(b"}\n").unwrap();
        acc.push(leaf);
        prev = leaf;
    }
    let checkpoint = note::sign_note(
        &note::checkpoint_body(origin, entries, &acc.root()),
        origin,
        &key,
    );
    serde_json::to_writer(&mut out, &serde_json::json!({ "checkpoint": checkpoint })).unwrap();
    out.write_all(b"\n").unwrap();
    out.flush().unwrap();
    drop(out);
    let bytes = std::fs::metadata(&path).unwrap().len();
    println!(
        "verify: wrote an export of {entries} entries ({:.0} MiB) in {:.1} s",
        bytes as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    // In process (the library), then the command users run.
    let verifier = Verifier::parse(&vkey).unwrap();
    let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path).unwrap());
    let t = Instant::now();
    let verified = verify(file, &verifier, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!((verified.entries, verified.opened), (entries, entries));
    println!(
        "verify: library: {:.0} entries/s",
        entries as f64 / t.elapsed().as_secs_f64()
    );
    let mut rates = Vec::new();
    for run in 1..=5 {
        let t = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_consent-ledger"))
            .args(["verify", path.to_str().unwrap(), "--key", &vkey])
            .output()
            .unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        rates.push(entries as f64 / secs);
        println!(
            "verify: CLI run {run}: {secs:.2} s = {:.0} entries/s",
            entries as f64 / secs
        );
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "verify: CLI over {} runs: median {:.0}, best {:.0} entries/s on {} threads",
        rates.len(),
        rates[rates.len() / 2],
        rates[rates.len() - 1],
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}

/// The benchmark's tenant.
fn bench_tenant() -> consent_ledger::domain::access::TenantId {
    consent_ledger::domain::access::TenantId::parse("bench").expect("a tenant id")
}
