//! Text rules: Unicode NFC, full case folding, the company-name-as-a-whole-word
//! rule and well-formed BCP 47 language tags.

use unicode_normalization::UnicodeNormalization;

/// Unicode NFC.
pub fn nfc(text: &str) -> String {
    text.nfc().collect()
}

/// The key two names are compared by: NFC, full case folding, NFC again
/// (folding can denormalise).
pub fn fold_key(text: &str) -> String {
    nfc(&caseless::default_case_fold_str(&nfc(text)))
}

/// Whether a text shown to people (a consent text, a prompt) holds only
/// printable characters, line breaks and tabs: no other control character,
/// which nobody can have read (and which PostgreSQL text cannot store, NUL).
pub fn is_readable_text(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `name` occurs in `text` as a whole word, comparing after NFC and
/// full case folding: the characters around the occurrence are not letters,
/// digits or `_` where the name itself starts or ends with one.
pub fn contains_whole_word(text: &str, name: &str) -> bool {
    let haystack = fold_key(text);
    let needle = fold_key(name);
    if needle.is_empty() {
        return false;
    }
    let needs_left = needle.chars().next().is_some_and(is_word_char);
    let needs_right = needle.chars().next_back().is_some_and(is_word_char);
    haystack.match_indices(&needle).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + needle.len()..].chars().next();
        (!needs_left || !before.is_some_and(is_word_char))
            && (!needs_right || !after.is_some_and(is_word_char))
    })
}

/// Irregular grandfathered tags of RFC 5646 that do not follow its grammar.
pub const IRREGULAR_TAGS: [&str; 17] = [
    "en-gb-oed",
    "i-ami",
    "i-bnn",
    "i-default",
    "i-enochian",
    "i-hak",
    "i-klingon",
    "i-lux",
    "i-mingo",
    "i-navajo",
    "i-pwn",
    "i-tao",
    "i-tay",
    "i-tsu",
    "sgn-be-fr",
    "sgn-be-nl",
    "sgn-ch-de",
];

/// A well-formed BCP 47 language tag (RFC 5646 section 2.1 syntax).
pub fn is_well_formed_language_tag(tag: &str) -> bool {
    if tag.is_empty() || tag.len() > 64 || !tag.is_ascii() {
        return false;
    }
    let lower = tag.to_ascii_lowercase();
    if IRREGULAR_TAGS.contains(&lower.as_str()) {
        return true;
    }
    let subtags: Vec<&str> = lower.split('-').collect();
    if subtags
        .iter()
        .any(|s| s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return false;
    }
    let alpha = |s: &str| s.bytes().all(|b| b.is_ascii_alphabetic());
    let digit = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mut i = 0;
    if subtags[0] == "x" {
        return subtags.len() > 1;
    }
    // language
    let first = subtags[0];
    if !alpha(first) || first.len() < 2 {
        return false;
    }
    i += 1;
    if first.len() <= 3 {
        let mut extlangs = 0;
        while i < subtags.len() && subtags[i].len() == 3 && alpha(subtags[i]) && extlangs < 3 {
            extlangs += 1;
            i += 1;
        }
    }
    // script
    if i < subtags.len() && subtags[i].len() == 4 && alpha(subtags[i]) {
        i += 1;
    }
    // region
    if i < subtags.len()
        && ((subtags[i].len() == 2 && alpha(subtags[i]))
            || (subtags[i].len() == 3 && digit(subtags[i])))
    {
        i += 1;
    }
    // variants
    while i < subtags.len() {
        let s = subtags[i];
        let is_variant =
            (5..=8).contains(&s.len()) || (s.len() == 4 && s.as_bytes()[0].is_ascii_digit());
        if !is_variant {
            break;
        }
        i += 1;
    }
    // extensions
    while i < subtags.len() && subtags[i].len() == 1 && subtags[i] != "x" {
        i += 1;
        let start = i;
        while i < subtags.len() && subtags[i].len() >= 2 {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    // private use
    if i < subtags.len() && subtags[i] == "x" {
        return i + 1 < subtags.len();
    }
    i == subtags.len()
}

/// Escapes text for the content and quoted attributes of HTML or XML
/// (the hosted pages, TwiML).
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_text_allows_line_breaks_and_tabs_only() {
        assert!(is_readable_text(
            "Offers from Makro.\r\nReply STOP\tto end."
        ));
        assert!(is_readable_text("Ofertas de Makro 🛒"));
        for bad in ["Makro\u{0}", "Makro\u{7}", "\u{1b}[31mMakro", "Makro\u{85}"] {
            assert!(!is_readable_text(bad), "{bad:?}");
        }
    }

    #[test]
    fn company_name_must_be_a_whole_word() {
        let text = "Yes, I want offers from MAKRO on WhatsApp.";
        assert!(contains_whole_word(text, "Makro"));
        assert!(contains_whole_word("Makro's weekly deals", "makro"));
        assert!(!contains_whole_word("Offers from Makrossa", "Makro"));
        assert!(!contains_whole_word("Offers from SuperMakro", "Makro"));
        assert!(contains_whole_word(
            "Angebote vom CAFÉ ZÜRICH erhalten",
            "Café Zürich"
        ));
        // A decomposed é (e + U+0301) matches the composed one after NFC.
        assert!(contains_whole_word("vom Cafe\u{301} Zürich", "Café Zürich"));
        // Full case folding: ß folds to ss.
        assert!(contains_whole_word("Offers from STRASSE Bikes", "Straße"));
        assert!(contains_whole_word(
            "Deals from Makro Cash & Carry!",
            "Makro Cash & Carry"
        ));
        assert!(!contains_whole_word("anything", ""));
    }

    #[test]
    fn language_tags() {
        for good in [
            "en",
            "de-DE",
            "pt-BR",
            "zh-Hant-TW",
            "es-419",
            "sl-rozaj-biske",
            "en-a-bbb-x-a-ccc",
            "x-whatever",
            "i-klingon",
            "zh-yue-HK",
        ] {
            assert!(is_well_formed_language_tag(good), "{good}");
        }
        for bad in [
            "",
            "e",
            "toolonglanguage",
            "en_US",
            "en--US",
            "de-DE-",
            "en-a",
            "123",
            "x",
            "en-x",
        ] {
            assert!(!is_well_formed_language_tag(bad), "{bad}");
        }
    }
}
