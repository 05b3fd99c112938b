//! What an inbound message means (SPEC section 7): opt-out keywords and
//! phrases, the START family that lifts keyword opt-outs, and opt-in matches.
//! Messages are compared after normalisation: Unicode NFKC, full case
//! folding, accents removed, punctuation and emoji removed, whitespace
//! collapsed and trimmed.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// The opt-out keywords every tenant has.
pub const DEFAULT_OPT_OUT_KEYWORDS: [&str; 10] = [
    "STOP",
    "STOP ALL",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "OPT OUT",
];

/// Messages that lift keyword opt-outs (never create consent).
pub const LIFT_WORDS: [&str; 3] = ["START", "UNSTOP", "YES"];

/// Phrases that withdraw consent in so many words (normalised form).
const OPT_OUT_PHRASES: [&str; 16] = [
    "stop texting",
    "stop messaging",
    "stop sending",
    "stop contacting",
    "stop messages",
    "dont text",
    "do not text",
    "dont message",
    "do not message",
    "dont contact",
    "do not contact",
    "remove me",
    "take me off",
    "leave me alone",
    "no more messages",
    "no more texts",
];

/// The normalised form messages and keywords are compared in.
pub fn normalize(text: &str) -> String {
    let folded = caseless::default_case_fold_str(&text.nfkc().collect::<String>());
    let mut out = String::with_capacity(folded.len());
    let mut pending_space = false;
    for c in folded.nfd().filter(|c| !is_combining_mark(*c)) {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
        } else if c.is_alphanumeric() {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
        // Punctuation, symbols and emoji are dropped.
    }
    out.nfc().collect()
}

/// Whether the words of `phrase` occur as consecutive whole words in `text`
/// (both normalised).
fn has_words(text: &str, phrase: &str) -> bool {
    let words: Vec<&str> = text.split(' ').collect();
    let wanted: Vec<&str> = phrase.split(' ').collect();
    !wanted.is_empty() && words.windows(wanted.len()).any(|w| w == wanted.as_slice())
}

/// What a text message means, before opt-in matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// Equal to an opt-out keyword: all purposes, all message channels.
    FullOptOut,
    /// Contains a keyword as a whole word, or an opt-out phrase: the
    /// tenant's partial opt-out purposes.
    PartialOptOut,
    /// START, UNSTOP or YES.
    Lift,
    /// Nothing of the above (it may still match an opt-in).
    Other,
}

/// Classifies a normalised message with the tenant's extra keywords
/// (normalised too).
pub fn classify(message: &str, extra_keywords: &[String]) -> Meaning {
    let keywords = DEFAULT_OPT_OUT_KEYWORDS
        .iter()
        .map(|k| normalize(k))
        .chain(extra_keywords.iter().cloned())
        .filter(|k| !k.is_empty())
        .collect::<Vec<String>>();
    if keywords.iter().any(|k| k == message) {
        return Meaning::FullOptOut;
    }
    if LIFT_WORDS.iter().any(|w| normalize(w) == message) {
        return Meaning::Lift;
    }
    if keywords.iter().any(|k| has_words(message, k))
        || OPT_OUT_PHRASES.iter().any(|p| has_words(message, p))
    {
        return Meaning::PartialOptOut;
    }
    Meaning::Other
}

/// Whether `word` (any form) is reserved: an opt-out keyword or a lift word.
pub fn is_reserved(word: &str, extra_keywords: &[String]) -> bool {
    let n = normalize(word);
    DEFAULT_OPT_OUT_KEYWORDS
        .iter()
        .chain(LIFT_WORDS.iter())
        .any(|k| normalize(k) == n)
        || extra_keywords.iter().any(|k| normalize(k) == n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(normalize("  STOP. "), "stop");
        assert_eq!(normalize("Stop!!! 🙏"), "stop");
        assert_eq!(normalize("opt-out"), "optout");
        assert_eq!(normalize("Opt   Out"), "opt out");
        assert_eq!(normalize("ＳＴＯＰ"), "stop");
        assert_eq!(normalize("Arrêt"), "arret");
        assert_eq!(normalize("STRAẞE"), "strasse");
        assert_eq!(normalize("Don't text me"), "dont text me");
        assert_eq!(normalize("🙂"), "");
    }

    #[test]
    fn meanings() {
        let none: &[String] = &[];
        for full in [
            "STOP",
            "stop.",
            "Stop all",
            "UNSUBSCRIBE!",
            "opt-out",
            "Opt out",
            "cancel",
        ] {
            assert_eq!(
                classify(&normalize(full), none),
                Meaning::FullOptOut,
                "{full}"
            );
        }
        for partial in [
            "please stop texting me",
            "STOP sending these",
            "I want to unsubscribe",
            "do not contact me again",
            "end this now",
        ] {
            assert_eq!(
                classify(&normalize(partial), none),
                Meaning::PartialOptOut,
                "{partial}"
            );
        }
        for lift in ["START", "unstop", "Yes!"] {
            assert_eq!(classify(&normalize(lift), none), Meaning::Lift, "{lift}");
        }
        for other in [
            "ignore",
            "JOIN MAKRO",
            "stopped by the store",
            "yes please",
            "endless summer",
        ] {
            assert_eq!(classify(&normalize(other), none), Meaning::Other, "{other}");
        }
        let extra = vec![normalize("ARRÊT"), normalize("baja")];
        assert_eq!(classify(&normalize("arret"), &extra), Meaning::FullOptOut);
        assert_eq!(
            classify(&normalize("dar de BAJA por favor"), &extra),
            Meaning::PartialOptOut
        );
        assert!(is_reserved("Stop", none));
        assert!(is_reserved("yes", none));
        assert!(!is_reserved("JOIN", none));
    }
}
