//! How long hearing a message takes (docs/messages.md): every message of the
//! test corpus (`tests/corpus/`, both sets, all eight languages) read under
//! every language and the tenant's own keywords, as a webhook reads it.
//! Not a timed test: run it by hand on a quiet machine; the README records
//! the numbers.
//!
//!     cargo bench --bench vocabulary -- [ROUNDS]    # default 200 rounds over the corpus
//!
//! The vocabularies are parsed and indexed first (at start, as the service
//! does), then each message is timed alone: normalisation, the keyword,
//! phrase, lift and ambiguity look-ups of each enabled language.

use consent_ledger::domain::vocabulary::{self, hear, LanguageSet, OwnKeywords};
use std::time::{Duration, Instant};

fn corpus() -> Vec<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut files = Vec::new();
    for set in ["", "holdout/"] {
        for language in ["en", "fr", "es", "pt", "de", "it", "nl", "id"] {
            files.push(format!("{root}/{set}opt_outs/{language}.txt"));
        }
        files.push(format!("{root}/{set}ordinary.txt"));
    }
    files
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| l.split_once('\t').map_or(l, |(_, m)| m).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let started = Instant::now();
    vocabulary::load();
    let load = started.elapsed();
    let messages = corpus();
    let languages = LanguageSet::default();
    let own = OwnKeywords::new(["ARRET", "BAJA"]);
    let mut times: Vec<Duration> = Vec::with_capacity(messages.len() * rounds);
    let mut opt_outs = 0usize;
    for _ in 0..rounds {
        for message in &messages {
            let at = Instant::now();
            let meaning = hear(message, languages, &own);
            times.push(at.elapsed());
            opt_outs += usize::from(meaning != vocabulary::Meaning::Other);
        }
    }
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "vocabularies parsed and indexed in {load:?}; {} messages x {rounds} rounds ({} heard as an opt-out, a lift or ambiguous)",
        messages.len(),
        opt_outs / rounds
    );
    println!(
        "per message: mean {mean:?}, p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        at(0.999),
        times[times.len() - 1]
    );
}
