//! `verify FILE --key VKEY --from URL`: after the offline checks, asks the
//! log at URL for its latest checkpoint (verified with the same key) and a
//! consistency proof from the document's tree to it, so an auditor holding
//! only a receipt learns whether the log has stayed an extension of what
//! the receipt proved, or was forked or rewritten since.
//!
//! The server is not trusted: a redirect is an error (never followed, so the
//! auditor key goes nowhere else), and whatever it sent is shown only with
//! its control characters escaped ([`printable`]), so an answer cannot move
//! the cursor, recolour or rewrite the auditor's terminal.

use crate::ledger::merkle::{self, Hash};
use crate::ledger::note::Verifier;
use crate::ledger::verify::{trusted_checkpoint, Verified};
use serde::Deserialize;
use std::time::Duration;

/// How the online check ended.
pub enum Online {
    /// The log's current checkpoint extends the document's tree.
    Consistent { size: u64 },
    /// It does not: the message says how.
    Inconsistent(String),
    /// The log could not be asked (network, credentials, an unreadable answer).
    Unavailable(String),
}

#[derive(Deserialize)]
struct ProofAnswer {
    from: u64,
    to: u64,
    proof: Vec<String>,
}

/// Asks the log at `base` (e.g. `https://ledger.example.com`) with the
/// auditor key `token`. Every message it returns is [`printable`].
pub fn check(base: &str, token: &str, key: &Verifier, verified: &Verified) -> Online {
    match ask(base, token, key, verified) {
        Online::Inconsistent(why) => Online::Inconsistent(printable(&why)),
        Online::Unavailable(why) => Online::Unavailable(printable(&why)),
        consistent => consistent,
    }
}

/// One `GET` of `path` at `base`: the body of a 2xx answer; a redirect or
/// any other status is an error naming it.
fn get(agent: &ureq::Agent, base: &str, token: &str, path: &str) -> Result<String, String> {
    let mut response = agent
        .get(&format!("{base}{path}"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .map_err(|e| format!("cannot reach {base}: {e}"))?;
    let status = response.status();
    if status.is_redirection() {
        let to = response
            .headers()
            .get("location")
            .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned())
            .unwrap_or_default();
        return Err(format!(
            "{base}{path} answered {status}, a redirect to {to:.300}: not followed; give --from the log's own URL"
        ));
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| format!("cannot read the answer of {base}{path}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{base}{path} answered {status}: {body:.300}"));
    }
    Ok(body)
}

fn ask(base: &str, token: &str, key: &Verifier, verified: &Verified) -> Online {
    let base = base.trim_end_matches('/');
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        // A redirect is answered as it is, never followed.
        .max_redirects(0)
        .build()
        .into();
    let get = |path: &str| get(&agent, base, token, path);
    let note = match get("/v1/log/checkpoint") {
        Ok(note) => note,
        Err(why) => return Online::Unavailable(why),
    };
    let current = match trusted_checkpoint(&note, key) {
        Ok(current) => current,
        Err(why) => {
            return Online::Inconsistent(format!(
                "the log's current checkpoint does not verify with the key: {why}"
            ))
        }
    };
    if current.size < verified.tree_size {
        return Online::Inconsistent(format!(
            "the log's current checkpoint has {} entries, fewer than the {} this document proves",
            current.size, verified.tree_size
        ));
    }
    let path = format!(
        "/v1/log/proof/consistency?from={}&to={}",
        verified.tree_size, current.size
    );
    let answer: ProofAnswer = match get(&path).and_then(|body| {
        serde_json::from_str(&body).map_err(|e| format!("unreadable consistency proof: {e}"))
    }) {
        Ok(answer) => answer,
        Err(why) => return Online::Unavailable(why),
    };
    if (answer.from, answer.to) != (verified.tree_size, current.size) {
        return Online::Inconsistent("the consistency proof is for other sizes".into());
    }
    let proof: Result<Vec<Hash>, _> = answer.proof.iter().map(|h| parse_hash(h)).collect();
    let Ok(proof) = proof else {
        return Online::Inconsistent("the consistency proof holds a malformed hash".into());
    };
    if merkle::verify_consistency(
        verified.tree_size,
        current.size,
        &verified.root,
        &current.root,
        &proof,
    ) {
        Online::Consistent { size: current.size }
    } else {
        Online::Inconsistent(format!(
            "the log's checkpoint at size {} is not an extension of the tree of size {} this \
             document proves: the log was forked or rewritten",
            current.size, verified.tree_size
        ))
    }
}

/// `text` with every control character escaped: C0 (ESC too, so no ANSI
/// escape sequence survives), DEL, C1 and the bidirectional overrides and
/// isolates (which reorder what a terminal shows) become `\u{..}`; a
/// backslash is doubled, so an escape the server wrote itself cannot pass
/// for one of these.
pub fn printable(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        match c {
            '\\' => shown.push_str("\\\\"),
            c if c.is_control() || bidi => shown.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => shown.push(c),
        }
    }
    shown
}

fn parse_hash(text: &str) -> Result<Hash, ()> {
    let bytes = hex::decode(text).map_err(|_| ())?;
    bytes.try_into().map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            printable("\u{1b}[31mred\u{1b}[0m \u{9b}2J\u{7f}\u{7}\n\u{0}"),
            "\\u{1b}[31mred\\u{1b}[0m \\u{9b}2J\\u{7f}\\u{7}\\u{a}\\u{0}"
        );
        assert_eq!(printable("a\u{202e}b\u{2066}"), "a\\u{202e}b\\u{2066}");
        assert_eq!(printable("C:\\u{1b}"), "C:\\\\u{1b}");
        assert_eq!(printable("Grüße, 名前 — ok"), "Grüße, 名前 — ok");
    }
}
