//! A strict reader for entries already in their RFC 8785 form: one pass
//! that checks the bytes are exactly what [`EntryRef::canonical_json`] would
//! write (keys sorted, no whitespace, canonical numbers and timestamps,
//! strings without escapes) and borrows the fields. The verifier then hashes
//! the bytes as they are instead of parsing and re-serialising them. Any
//! other input returns `None`, and the caller takes the general path.

use super::entry::{EntryRef, EntryType};
use super::jcs::needs_escape;
use crate::domain::time::Timestamp;
use std::borrow::Cow;

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn eat(&mut self, expected: &[u8]) -> Option<()> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.pos..self.pos + expected.len())? == expected {
            self.pos += expected.len();
            Some(())
        } else {
            None
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// A string with nothing to escape (the only strings this path takes).
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b"\"")?;
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let len = memchr::memchr(b'"', &bytes[start..])?;
        if needs_escape(&bytes[start..start + len]) {
            return None;
        }
        self.pos = start + len + 1;
        Some(&self.text[start..start + len])
    }

    /// A non-negative integer as JCS writes it: no sign, no leading zero.
    fn integer(&mut self) -> Option<u64> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits = &bytes[start..self.pos];
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') || digits.len() > 16 {
            return None;
        }
        self.text[start..self.pos].parse().ok()
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.eat(b"true").is_some() {
            Some(true)
        } else {
            self.eat(b"false").map(|_| false)
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` exactly.
    fn timestamp(&mut self) -> Option<Timestamp> {
        let text = self.string()?;
        let b = text.as_bytes();
        let shaped = b.len() == 24
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'.'
            && b[23] == b'Z';
        if !shaped {
            return None;
        }
        Timestamp::parse(text).ok()
    }

    fn strings(&mut self) -> Option<Vec<Cow<'a, str>>> {
        self.eat(b"[")?;
        let mut out = Vec::with_capacity(3);
        if self.eat(b"]").is_some() {
            return Some(out);
        }
        loop {
            out.push(Cow::Borrowed(self.string()?));
            if self.eat(b"]").is_some() {
                return Some(out);
            }
            self.eat(b",")?;
        }
    }
}

/// Every entry key, sorted.
const KEYS: [&str; 22] = [
    "backfill",
    "captured_at",
    "channel",
    "collector",
    "company_name_shown",
    "confirmation_required",
    "confirms",
    "consent_text_sha256",
    "evidence_sha256",
    "language",
    "lifts",
    "linked",
    "log",
    "message_channels",
    "prev",
    "purposes",
    "reason",
    "recorded_at",
    "seq",
    "subject",
    "type",
    "v",
];

/// Reads a canonical entry at the start of `text`; returns it and where it
/// ends. `None` when the bytes are not exactly canonical.
pub fn read_canonical_entry(text: &str) -> Option<(EntryRef<'_>, usize)> {
    let mut c = Cursor { text, pos: 0 };
    c.eat(b"{")?;
    let mut entry = empty_entry();
    // Required keys seen: v, log, seq, prev, recorded_at, type, subject, collector.
    let mut required = 0u8;
    // Keys come sorted (UTF-16 order; all are ASCII, so byte order) and
    // each at most once: walk the known keys in that order.
    let mut next_key = 0;
    loop {
        let key = c.string()?;
        let offset = KEYS[next_key..].iter().position(|k| *k == key)?;
        let index = next_key + offset;
        next_key = index + 1;
        c.eat(b":")?;
        required |= read_value(&mut c, index, &mut entry)?;
        if c.eat(b"}").is_some() {
            break;
        }
        c.eat(b",")?;
    }
    (required == 255).then_some((entry, c.pos))
}

/// An entry with every field unset, to be read into.
fn empty_entry<'a>() -> EntryRef<'a> {
    EntryRef {
        v: 0,
        log: Cow::Borrowed(""),
        seq: 0,
        prev: Cow::Borrowed(""),
        recorded_at: Timestamp::from_millis(0),
        kind: EntryType::Erasure,
        subject: Cow::Borrowed(""),
        collector: Cow::Borrowed(""),
        channel: None,
        captured_at: None,
        evidence_sha256: None,
        purposes: None,
        message_channels: None,
        company_name_shown: None,
        consent_text_sha256: None,
        language: None,
        backfill: None,
        confirmation_required: None,
        confirms: None,
        lifts: None,
        linked: None,
        reason: None,
    }
}

/// Reads the value of the key `KEYS[index]` into `entry`; returns the bit
/// of a required key (0 for an optional one).
#[inline]
fn read_value<'a>(c: &mut Cursor<'a>, index: usize, entry: &mut EntryRef<'a>) -> Option<u8> {
    fn borrowed(s: &str) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(s))
    }
    let mut required = 0u8;
    match index {
        0 => entry.backfill = Some(c.boolean()?),
        1 => entry.captured_at = Some(c.timestamp()?),
        2 => entry.channel = borrowed(c.string()?),
        3 => {
            entry.collector = Cow::Borrowed(c.string()?);
            required |= 1;
        }
        4 => entry.company_name_shown = borrowed(c.string()?),
        5 => entry.confirmation_required = Some(c.boolean()?),
        6 => entry.confirms = Some(c.integer()?),
        7 => entry.consent_text_sha256 = borrowed(c.string()?),
        8 => entry.evidence_sha256 = borrowed(c.string()?),
        9 => entry.language = borrowed(c.string()?),
        10 => entry.lifts = Some(c.integer()?),
        11 => entry.linked = borrowed(c.string()?),
        12 => {
            entry.log = Cow::Borrowed(c.string()?);
            required |= 2;
        }
        13 => entry.message_channels = Some(c.strings()?),
        14 => {
            entry.prev = Cow::Borrowed(c.string()?);
            required |= 4;
        }
        15 => entry.purposes = Some(c.strings()?),
        16 => entry.reason = borrowed(c.string()?),
        17 => {
            entry.recorded_at = c.timestamp()?;
            required |= 8;
        }
        18 => {
            entry.seq = c.integer()?;
            required |= 16;
        }
        19 => {
            entry.subject = Cow::Borrowed(c.string()?);
            required |= 32;
        }
        20 => {
            entry.kind = match c.string()? {
                "opt_in" => EntryType::OptIn,
                "opt_out" => EntryType::OptOut,
                "confirmation" => EntryType::Confirmation,
                "opt_out_lifted" => EntryType::OptOutLifted,
                "erasure" => EntryType::Erasure,
                "identity_linked" => EntryType::IdentityLinked,
                _ => return None,
            };
            required |= 64;
        }
        21 => {
            entry.v = u8::try_from(c.integer()?).ok()?;
            required |= 128;
        }
        _ => return None,
    }
    Some(required)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::entry::{Entry, ZERO_HASH};

    fn sample() -> Entry {
        let mut e = Entry::new(
            EntryType::OptIn,
            "ledger.example.com/makro",
            12,
            ZERO_HASH,
            Timestamp::parse("2026-11-20T10:00:00.100Z").unwrap(),
            &"a".repeat(64),
            "key_3f9a1c2b4d5e",
        );
        e.channel = Some("web".into());
        e.captured_at = Some(Timestamp::parse("2026-11-20T10:00:00Z").unwrap());
        e.purposes = Some(vec!["marketing".into(), "utility".into()]);
        e.message_channels = Some(vec!["whatsapp".into()]);
        e.company_name_shown = Some("Café Zürich".into());
        e.consent_text_sha256 = Some("b".repeat(64));
        e.evidence_sha256 = Some("c".repeat(64));
        e.language = Some("de".into());
        e.backfill = Some(true);
        e.confirmation_required = Some(true);
        e
    }

    #[test]
    fn the_known_keys_are_sorted() {
        assert!(KEYS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn canonical_bytes_read_back_to_the_same_entry() {
        let entry = sample();
        let text = entry.canonical_json();
        let with_tail = format!("{text},\"leaf_hash\":\"x\"}}");
        let (read, end) = read_canonical_entry(&with_tail).unwrap();
        assert_eq!(end, text.len());
        assert_eq!(read, entry.borrowed());
        let mut lifted = Entry::new(
            EntryType::OptOutLifted,
            "l",
            0,
            ZERO_HASH,
            Timestamp::from_millis(0),
            "s",
            "c",
        );
        lifted.lifts = Some(0);
        lifted.captured_at = Some(Timestamp::from_millis(0));
        assert_eq!(
            read_canonical_entry(&lifted.canonical_json()).unwrap().0,
            lifted.borrowed()
        );
    }

    #[test]
    fn anything_not_exactly_canonical_takes_the_general_path() {
        let text = sample().canonical_json();
        for bad in [
            text.replacen("{\"backfill\"", "{ \"backfill\"", 1),
            text.replacen("\"v\":1", "\"v\":01", 1),
            text.replacen("\"seq\":12", "\"seq\":12.0", 1),
            text.replacen(".100Z", ".1Z", 1),
            text.replacen(
                "2026-11-20T10:00:00.000Z",
                "2026-11-20T11:00:00.000+01:00",
                1,
            ),
            text.replacen("web", "w\\u0065b", 1),
            text.replacen("\"type\":\"opt_in\"", "\"type\":\"opt_out_now\"", 1),
            text.replacen("\"backfill\":true,", "", 1)
                .replacen("{", "{\"zzz\":1,", 1),
            text.replacen("\"log\"", "\"Log\"", 1),
            text.replacen(",\"v\":1}", "}", 1),
            text.replacen("{\"backfill\":true,\"captured_at\"", "{\"captured_at\"", 1)
                .replacen("\"channel\"", "\"backfill\":true,\"channel\"", 1),
        ] {
            assert!(read_canonical_entry(&bad).is_none(), "{bad}");
        }
    }

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn text(&mut self, max: u64) -> String {
            const ALPHABET: [&str; 12] = [
                "a", "Z", "é", "😀", " ", "/", "\"", "\\", "\n", "\u{1}", "\u{7f}", "+",
            ];
            let n = self.below(max + 1);
            (0..n).map(|_| ALPHABET[self.below(12) as usize]).collect()
        }

        fn time(&mut self) -> Timestamp {
            Timestamp::from_millis(self.below(4_000_000_000_000) as i64)
        }
    }

    #[test]
    fn random_entries_read_back_exactly_or_fall_back() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let kinds = [
            EntryType::OptIn,
            EntryType::OptOut,
            EntryType::Confirmation,
            EntryType::OptOutLifted,
            EntryType::Erasure,
        ];
        for _ in 0..2_000 {
            let (log, subject, collector) = (r.text(8), r.text(4), r.text(4));
            let (kind, seq, at) = (kinds[r.below(5) as usize], r.below(1 << 53), r.time());
            let mut e = Entry::new(kind, &log, seq, ZERO_HASH, at, &subject, &collector);
            if r.below(2) == 0 {
                e.channel = Some(r.text(3));
            }
            if r.below(2) == 0 {
                e.captured_at = Some(r.time());
            }
            if r.below(2) == 0 {
                let n = r.below(3);
                e.purposes = Some((0..n).map(|_| r.text(3)).collect());
            }
            if r.below(2) == 0 {
                e.company_name_shown = Some(r.text(6));
            }
            if r.below(2) == 0 {
                e.backfill = Some(r.below(2) == 0);
            }
            if r.below(2) == 0 {
                e.confirms = Some(r.below(1000));
            }
            if r.below(2) == 0 {
                e.reason = Some(r.text(3));
            }
            let canonical = e.canonical_json();
            let escapes = canonical.contains('\\');
            match read_canonical_entry(&canonical) {
                Some((read, end)) => {
                    assert!(!escapes, "{canonical}");
                    assert_eq!(end, canonical.len());
                    assert_eq!(read, e.borrowed());
                    assert_eq!(read.canonical_json(), canonical);
                }
                None => assert!(
                    escapes,
                    "a canonical entry without escapes must read: {canonical}"
                ),
            }
        }
    }
}
