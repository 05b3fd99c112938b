//! RFC 8785 (JCS) as the ledger writes it: JSON strings escaped as
//! ECMAScript `JSON.stringify` does, flat string maps with keys sorted by
//! UTF-16 code units, and any JSON value through `serde_jcs`.

use serde::Serialize;
use std::borrow::Cow;

/// Whether any byte is a control character, `"` or `\\` (eight bytes at a time).
pub(crate) fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        // Bytes below 0x20: subtracting 0x20 borrows into the high bit of
        // bytes that had it clear.
        let control = v.wrapping_sub(ONES * 0x20) & !v & HIGHS != 0;
        if control || has_zero(v ^ (ONES * b'"' as u64)) || has_zero(v ^ (ONES * b'\\' as u64)) {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// A JSON string as RFC 8785 writes it (ECMAScript `JSON.stringify`):
/// `"` and `\` escaped, control characters as `\b \t \n \f \r` or
/// `\u00xx` (lowercase hex), everything else as is.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    if !needs_escape(s.as_bytes()) {
        // The common case: nothing to escape.
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

pub(crate) fn push_string_array(out: &mut String, list: &[Cow<'_, str>]) {
    out.push('[');
    for (i, item) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, item);
    }
    out.push(']');
}

/// RFC 8785 form of a flat object of strings (evidence bodies): keys sorted
/// by UTF-16 code units.
pub fn jcs_string_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    pairs.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    let mut out = String::with_capacity(256);
    out.push('{');
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, k);
        out.push(':');
        push_json_string(&mut out, v);
    }
    out.push('}');
    out
}

/// RFC 8785 form of any JSON value (evidence bodies).
pub fn jcs<T: Serialize>(value: &T) -> String {
    serde_jcs::to_string(value).expect("JSON values serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::Timestamp;
    use crate::ledger::entry::{Entry, EntryType, ZERO_HASH};

    #[test]
    fn escapes_are_found_in_every_position() {
        for len in 0..20 {
            let plain = "a".repeat(len);
            assert!(!needs_escape(plain.as_bytes()));
            for at in 0..len {
                for bad in [0u8, 0x1f, b'"', b'\\', b'\n'] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = bad;
                    assert!(needs_escape(&bytes), "{bad:#x} at {at} of {len}");
                }
                for fine in [0x20u8, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0xc3] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = fine;
                    assert!(!needs_escape(&bytes), "{fine:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn hand_written_jcs_matches_a_general_encoder() {
        let mut entry = Entry::new(
            EntryType::OptIn,
            "ledger.example.com/caf\u{e9}",
            9_007_199_254_740_991,
            ZERO_HASH,
            Timestamp::parse("2026-11-20T10:00:07.107Z").unwrap(),
            "ab",
            "key_aa00bb11cc22",
        );
        entry.channel = Some("web".into());
        entry.captured_at = Some(Timestamp::parse("2026-11-20T10:00:00Z").unwrap());
        entry.purposes = Some(vec!["marketing".into(), "utility".into()]);
        entry.message_channels = Some(vec!["sms".into()]);
        entry.company_name_shown = Some(
            "Caf\u{e9} \"Z\u{fc}rich\" \\ \u{1}\u{1f}\u{7f}\u{2028}\n\t\u{8}\u{c}\r \u{1F600}"
                .into(),
        );
        entry.consent_text_sha256 = Some("0".repeat(64));
        entry.evidence_sha256 = Some("1".repeat(64));
        entry.language = Some("de".into());
        entry.backfill = Some(true);
        entry.confirmation_required = Some(true);
        entry.confirms = Some(3);
        entry.lifts = Some(0);
        entry.reason = Some("request".into());
        assert_eq!(
            entry.canonical_json(),
            serde_jcs::to_string(&entry).unwrap()
        );
        let evidence = [
            ("z", "1"),
            ("\u{e9}", "x\u{1}"),
            ("\u{1F600}", "a"),
            ("\u{ff61}", "b"),
            ("A", "\""),
        ];
        let map: std::collections::BTreeMap<&str, &str> = evidence.into_iter().collect();
        assert_eq!(
            jcs_string_map(evidence),
            serde_jcs::to_string(&map).unwrap()
        );
    }
}
