//! `verify FILE --key VKEY --from URL`: after the offline checks, asks the
//! log at URL for its latest checkpoint (verified with the same key) and a
//! consistency proof from the document's tree to it, so an auditor holding
//! only a receipt learns whether the log has stayed an extension of what
//! the receipt proved, or was forked or rewritten since.

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
/// auditor key `token`.
pub fn check(base: &str, token: &str, key: &Verifier, verified: &Verified) -> Online {
    let base = base.trim_end_matches('/');
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let get = |path: &str| -> Result<String, String> {
        let mut response = agent
            .get(&format!("{base}{path}"))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .map_err(|e| format!("cannot reach {base}: {e}"))?;
        let status = response.status();
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
    };
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

fn parse_hash(text: &str) -> Result<Hash, ()> {
    let bytes = hex::decode(text).map_err(|_| ())?;
    bytes.try_into().map_err(|_| ())
}
