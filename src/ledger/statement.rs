//! Decision statements (docs/statements.md): a check's answer as a C2SP
//! signed note, signed by the log's key, naming the checkpoint that holds
//! the entry the decision rests on. The text is exactly ten lines, each
//! ending in `\n`:
//!
//! ```text
//! consent-ledger decision v1
//! <log origin>
//! <tree size>
//! <root hash, base64>
//! <subject commitment, hex, or ->
//! <purpose> <channel> <brand, or ->
//! <reason>
//! <seq> <leaf hash, hex>   (or "- -")
//! <decision time, canonical RFC 3339>
//! <sender's reference, or ->
//! ```

use super::merkle::Hash;
use super::note::{NoteError, SignedNote, Verifier};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

/// The first line of every statement.
pub const HEADER: &str = "consent-ledger decision v1";

/// The longest `reference` a sender may give.
pub const MAX_REFERENCE_CHARS: usize = 128;

/// What a statement says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub origin: String,
    pub tree_size: u64,
    pub root: Hash,
    /// The subject commitment (hex) of the identity asked, if it has one.
    pub commitment: Option<String>,
    pub purpose: String,
    pub channel: String,
    pub brand: Option<String>,
    pub reason: String,
    /// The seq and leaf hash of the entry the decision rests on.
    pub entry: Option<(u64, Hash)>,
    /// The decision time, canonical.
    pub decided_at: String,
    pub reference: Option<String>,
}

/// Why a text is not a statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a decision statement: {0}")]
pub struct Unreadable(pub &'static str);

/// Whether `reference` may stand in a statement: 1 to 128 printable
/// ASCII characters, no spaces.
pub fn reference_is_valid(reference: &str) -> bool {
    !reference.is_empty()
        && reference.len() <= MAX_REFERENCE_CHARS
        && reference.bytes().all(|b| b.is_ascii_graphic())
}

/// Why a statement does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
    #[error("the note: {0}")]
    Note(#[from] NoteError),
    #[error("the statement is of the log {statement:?}, the key of {key:?}")]
    OtherLog { statement: String, key: String },
}

/// Checks a signed statement with the log's verifier key (its name is the
/// log's origin) and reads it.
pub fn verify_statement(note: &str, key: &Verifier) -> Result<Statement, StatementError> {
    let signed = SignedNote::parse(note)?;
    let statement = Statement::parse(&signed.text)?;
    if statement.origin != key.name {
        return Err(StatementError::OtherLog {
            statement: statement.origin,
            key: key.name.clone(),
        });
    }
    signed.verify(key)?;
    Ok(statement)
}

fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

impl Statement {
    /// The note's text, ten lines each ending in `\n`.
    pub fn text(&self) -> String {
        let entry = match &self.entry {
            Some((seq, leaf)) => format!("{seq} {}", hex::encode(leaf)),
            None => "- -".to_owned(),
        };
        format!(
            "{HEADER}\n{}\n{}\n{}\n{}\n{} {} {}\n{}\n{entry}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            BASE64.encode(self.root),
            or_dash(self.commitment.as_deref()),
            self.purpose,
            self.channel,
            or_dash(self.brand.as_deref()),
            self.reason,
            self.decided_at,
            or_dash(self.reference.as_deref()),
        )
    }

    /// Reads a statement's text (the note without its signatures).
    pub fn parse(text: &str) -> Result<Self, Unreadable> {
        let body = text
            .strip_suffix('\n')
            .ok_or(Unreadable("no final newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [header, origin, size, root, commitment, question, reason, entry, decided_at, reference] =
            lines[..]
        else {
            return Err(Unreadable("a statement has ten lines"));
        };
        if header != HEADER {
            return Err(Unreadable(
                "the first line is not `consent-ledger decision v1`",
            ));
        }
        let tree_size = size.parse().map_err(|_| Unreadable("the tree size"))?;
        let root = BASE64
            .decode(root)
            .ok()
            .and_then(|r| Hash::try_from(r.as_slice()).ok())
            .ok_or(Unreadable("the root hash"))?;
        let mut asked = question.splitn(3, ' ');
        let (Some(purpose), Some(channel), Some(brand)) =
            (asked.next(), asked.next(), asked.next())
        else {
            return Err(Unreadable("the purpose, channel and brand line"));
        };
        let entry = match entry.split_once(' ') {
            Some(("-", "-")) => None,
            Some((seq, leaf)) => {
                let seq = seq.parse().map_err(|_| Unreadable("the entry's seq"))?;
                let leaf = hex::decode(leaf)
                    .ok()
                    .and_then(|l| Hash::try_from(l.as_slice()).ok())
                    .ok_or(Unreadable("the entry's leaf hash"))?;
                Some((seq, leaf))
            }
            None => return Err(Unreadable("the entry line")),
        };
        let dash = |value: &str| (value != "-").then(|| value.to_owned());
        Ok(Self {
            origin: origin.to_owned(),
            tree_size,
            root,
            commitment: dash(commitment),
            purpose: purpose.to_owned(),
            channel: channel.to_owned(),
            brand: dash(brand),
            reason: reason.to_owned(),
            entry,
            decided_at: decided_at.to_owned(),
            reference: dash(reference),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Statement {
        Statement {
            origin: "ledger.example.com/makro".into(),
            tree_size: 8,
            root: [7; 32],
            commitment: Some("ab".repeat(32)),
            purpose: "marketing".into(),
            channel: "whatsapp".into(),
            brand: Some("Makro Deutschland".into()),
            reason: "allowed".into(),
            entry: Some((3, [9; 32])),
            decided_at: "2026-12-07T10:00:00.000Z".into(),
            reference: Some("campaign-42/msg-7".into()),
        }
    }

    #[test]
    fn the_text_is_ten_lines_and_reads_back() {
        let statement = example();
        let text = statement.text();
        assert_eq!(text.matches('\n').count(), 10);
        assert!(text.starts_with("consent-ledger decision v1\nledger.example.com/makro\n8\n"));
        assert!(text.contains("\nmarketing whatsapp Makro Deutschland\nallowed\n3 0909"));
        assert!(text.ends_with("\n2026-12-07T10:00:00.000Z\ncampaign-42/msg-7\n"));
        assert_eq!(Statement::parse(&text), Ok(statement));
    }

    #[test]
    fn what_is_missing_is_a_dash() {
        let statement = Statement {
            commitment: None,
            brand: None,
            entry: None,
            reference: None,
            ..example()
        };
        let text = statement.text();
        assert!(text.contains("\n-\nmarketing whatsapp -\nallowed\n- -\n"));
        assert!(text.ends_with("Z\n-\n"));
        assert_eq!(Statement::parse(&text), Ok(statement));
    }

    #[test]
    fn other_texts_are_refused() {
        let text = example().text();
        assert!(Statement::parse(&text.replace("decision v1", "decision v2")).is_err());
        assert!(Statement::parse(text.trim_end()).is_err());
        assert!(Statement::parse(&format!("{text}extra\n")).is_err());
        assert!(Statement::parse(&text.replace("\n8\n", "\neight\n")).is_err());
    }

    #[test]
    fn a_signed_statement_verifies_with_its_logs_key_only() {
        use ed25519_dalek::SigningKey;
        let origin = "ledger.example.com/makro";
        let key = SigningKey::from_bytes(&[5; 32]);
        let verifier = crate::ledger::note::verifier_key(origin, &key.verifying_key().to_bytes());
        let verifier = Verifier::parse(&verifier).unwrap();
        let note = crate::ledger::note::sign_note(&example().text(), origin, &key);
        assert_eq!(verify_statement(&note, &verifier), Ok(example()));
        let altered = note.replace("allowed", "opted_out");
        assert!(matches!(
            verify_statement(&altered, &verifier),
            Err(StatementError::Note(_))
        ));
        let other = SigningKey::from_bytes(&[6; 32]);
        let stranger = crate::ledger::note::sign_note(&example().text(), origin, &other);
        assert!(verify_statement(&stranger, &verifier).is_err());
        let elsewhere = Statement {
            origin: "ledger.example.com/other".into(),
            ..example()
        };
        let moved = crate::ledger::note::sign_note(&elsewhere.text(), origin, &key);
        assert!(matches!(
            verify_statement(&moved, &verifier),
            Err(StatementError::OtherLog { .. })
        ));
    }

    #[test]
    fn references_are_printable_ascii_without_spaces() {
        assert!(reference_is_valid("order-17:msg/3"));
        assert!(!reference_is_valid(""));
        assert!(!reference_is_valid("with space"));
        assert!(!reference_is_valid("naïve"));
        assert!(!reference_is_valid(&"x".repeat(129)));
        assert!(reference_is_valid(&"x".repeat(128)));
    }
}
