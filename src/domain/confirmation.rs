//! Double opt-in (docs/pages.md): a short code the person sends back from
//! the number (or user id) that opted in, by WhatsApp or SMS. Pure: the
//! code's shape, how a message is searched for codes, the click-to-chat
//! link. Codes are made in `keys.rs` and kept only as a keyed hash.

use super::time::Timestamp;

/// The letters of a code: capitals and digits without the ones people
/// confuse (0/O, 1/I/L).
pub const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// How many characters a code has.
pub const CODE_LEN: usize = 6;

/// How long a code may confirm its opt-in: 24 hours.
pub const CODE_TTL_MILLIS: i64 = 24 * 3600 * 1000;

/// When a code made at `at` expires.
pub fn expires_at(at: Timestamp) -> Timestamp {
    at.plus_millis(CODE_TTL_MILLIS)
}

/// What the person sends back.
pub fn code_phrase(code: &str) -> String {
    format!("CONFIRM {code}")
}

/// The click-to-chat link that opens WhatsApp with the code phrase typed in,
/// for a business number as displayed (`+49 30 123456`); `None` when it
/// holds no digits.
pub fn whatsapp_link(display: &str, code: &str) -> Option<String> {
    let digits: String = display.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    let phrase = code_phrase(code).replace(' ', "%20");
    Some(format!("https://wa.me/{digits}?text={phrase}"))
}

/// The words of a message that could be codes, uppercased: runs of ASCII
/// letters and digits of exactly the code's length and alphabet.
pub fn candidates(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| word.len() == CODE_LEN)
        .map(str::to_ascii_uppercase)
        .filter(|word| word.bytes().all(|b| CODE_ALPHABET.contains(&b)))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_found_in_what_people_send() {
        assert_eq!(candidates("CONFIRM K7Q2MX"), vec!["K7Q2MX"]);
        assert_eq!(candidates("confirm k7q2mx."), vec!["K7Q2MX"]);
        assert_eq!(candidates("k7q2mx k7q2mx"), vec!["K7Q2MX"]);
        // Words of another length, or with letters codes never hold.
        assert!(candidates("CONFIRMED K7Q2MXX").is_empty());
        assert!(candidates("K7Q2M0 ILO123").is_empty());
        assert!(candidates("").is_empty());
        // Not ASCII: not a code.
        assert!(candidates("K7Q2MÄ").is_empty());
    }

    #[test]
    fn the_link_opens_a_chat_with_the_phrase() {
        assert_eq!(
            whatsapp_link("+49 30 123456", "K7Q2MX").as_deref(),
            Some("https://wa.me/4930123456?text=CONFIRM%20K7Q2MX")
        );
        assert_eq!(whatsapp_link("none", "K7Q2MX"), None);
        let at = Timestamp::parse("2026-12-01T10:00:00.000Z").unwrap();
        assert_eq!(expires_at(at).to_string(), "2026-12-02T10:00:00.000Z");
    }
}
