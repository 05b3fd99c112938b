//! Bulk import as an operator runs it (issue 31, docs/import.md):
//!
//!     cargo bench --bench import -- [LINES] [ndjson|csv]
//!
//! (defaults: 1,000,000 lines, NDJSON). Writes a file of LINES records of
//! a CRM export (nine opt-ins of distinct people for one opt-out of an
//! earlier one, captured over the last two years), creates a tenant with
//! the release binary on a fresh data dir (SQLite, every commit synced),
//! then times `consent-ledger import` on the file and reads the import's
//! peak resident memory (the largest child this process waited for).
//! Prints lines/s and peak memory, then checks that the log holds every
//! line (`verify-db`).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const BINARY: &str = env!("CARGO_BIN_EXE_consent-ledger");

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let lines: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let csv = args.get(1).is_some_and(|f| f == "csv");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join(if csv { "crm.csv" } else { "crm.ndjson" });
    let bytes = write_file(&file, lines, csv);
    let data = dir.path().join("data");
    let created = run(&data, &["tenant", "create", "makro", "--brand", "Makro"]);
    assert!(created.status.success(), "tenant create failed");
    let started = Instant::now();
    let imported = run(
        &data,
        &["import", "--tenant", "makro", file.to_str().unwrap()],
    );
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        imported.status.success(),
        "the import failed: {}",
        String::from_utf8_lossy(&imported.stdout)
    );
    let peak = peak_child_rss_mib();
    let verified = run(&data, &["verify-db", "--tenant", "makro"]);
    let report = String::from_utf8_lossy(&verified.stdout).into_owned()
        + &String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "verify-db failed: {report}");
    println!(
        "import of {lines} lines ({}, {:.0} MB): {seconds:.1} s, {:.0} lines/s, peak resident memory {peak:.0} MiB",
        if csv { "CSV" } else { "NDJSON" },
        bytes as f64 / 1e6,
        lines as f64 / seconds,
    );
    println!("verify-db: {}", report.trim().lines().last().unwrap_or(""));
}

fn run(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BINARY)
        .args(["--data-dir", data.to_str().unwrap()])
        .args(args)
        .env("CONSENT_LEDGER_ORIGIN", "bench.ledger.example")
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .expect("the release binary runs")
}

/// The file: its size in bytes.
fn write_file(path: &Path, lines: usize, csv: bool) -> u64 {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    if csv {
        writeln!(out, "type,number,channel,company_name_shown,consent_text,purposes,captured_at,evidence.page_url,evidence.ip,evidence.user_agent,evidence.reason").unwrap();
    }
    // Two years back, a line every few seconds, oldest first.
    let start = chrono::Utc::now() - chrono::Duration::days(730);
    let step = (730 * 86_400_000 / lines.max(1) as i64).max(1);
    for i in 0..lines {
        let at = (start + chrono::Duration::milliseconds(step * i as i64))
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let (kind, person) = match i % 10 {
            9 => ("opt_out", i - 5),
            _ => ("opt_in", i),
        };
        let number = format!("+4915{:09}", 100_000_000 + person);
        let text = "Yes, Makro may send me offers and news on WhatsApp. Reply STOP to end.";
        match (csv, kind) {
            (false, "opt_in") => writeln!(
                out,
                r#"{{"type":"opt_in","number":"{number}","channel":"web","company_name_shown":"Makro","consent_text":"{text}","purposes":["marketing"],"captured_at":"{at}","evidence":{{"page_url":"https://makro.example/newsletter","ip":"203.0.113.7","user_agent":"Mozilla/5.0"}}}}"#
            ),
            (false, _) => writeln!(
                out,
                r#"{{"type":"opt_out","number":"{number}","channel":"api","captured_at":"{at}","evidence":{{"reason":"asked the call centre"}}}}"#
            ),
            (true, "opt_in") => writeln!(
                out,
                "opt_in,{number},web,Makro,{text:?},marketing,{at},https://makro.example/newsletter,203.0.113.7,Mozilla/5.0,"
            ),
            (true, _) => writeln!(out, "opt_out,{number},api,,,,{at},,,,asked the call centre"),
        }
        .unwrap();
    }
    out.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// The peak resident memory of the largest child waited for, in MiB.
fn peak_child_rss_mib() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(ok, 0, "getrusage");
    usage.ru_maxrss as f64 / 1024.0
}
