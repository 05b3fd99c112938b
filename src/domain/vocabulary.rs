//! Opt-outs heard in the person's own language (docs/messages.md): messages
//! are compared after normalisation (Unicode NFKC, full case folding,
//! accents, punctuation and emoji removed, whitespace collapsed); one
//! vocabulary per language, shipped as data files in `vocabularies/` (their
//! headers cite where the words come from), each of keywords (a whole
//! message that stops everything), phrases (a withdrawal said in a
//! sentence) and lift words. They are parsed and indexed once, the first
//! time a message is read; a message then costs one normalisation and a
//! hash look-up per word and language.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use utoipa::ToSchema;

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

/// A shipped vocabulary's language, in the shipped order (the order in
/// which the first matching language is named).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Fr,
    Es,
    Pt,
    De,
    It,
    Nl,
    Id,
}

impl Language {
    /// Every shipped language, in the shipped order.
    pub const ALL: [Language; 8] = [
        Language::En,
        Language::Fr,
        Language::Es,
        Language::Pt,
        Language::De,
        Language::It,
        Language::Nl,
        Language::Id,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Fr => "fr",
            Language::Es => "es",
            Language::Pt => "pt",
            Language::De => "de",
            Language::It => "it",
            Language::Nl => "nl",
            Language::Id => "id",
        }
    }

    pub fn parse(code: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.as_str() == code)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The vocabulary file as shipped.
    fn source(self) -> &'static str {
        match self {
            Language::En => include_str!("../../vocabularies/en.txt"),
            Language::Fr => include_str!("../../vocabularies/fr.txt"),
            Language::Es => include_str!("../../vocabularies/es.txt"),
            Language::Pt => include_str!("../../vocabularies/pt.txt"),
            Language::De => include_str!("../../vocabularies/de.txt"),
            Language::It => include_str!("../../vocabularies/it.txt"),
            Language::Nl => include_str!("../../vocabularies/nl.txt"),
            Language::Id => include_str!("../../vocabularies/id.txt"),
        }
    }
}

/// The languages whose vocabularies a tenant reads; English is always one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LanguageSet(u16);

impl Default for LanguageSet {
    /// Every shipped language.
    fn default() -> Self {
        LanguageSet::of(&Language::ALL)
    }
}

impl LanguageSet {
    /// These languages and English.
    pub fn of(languages: &[Language]) -> Self {
        let bits = languages
            .iter()
            .fold(Language::En.bit(), |b, l| b | l.bit());
        LanguageSet(bits)
    }

    pub fn contains(self, language: Language) -> bool {
        self.0 & language.bit() != 0
    }

    /// The languages, in the shipped order.
    pub fn to_vec(self) -> Vec<Language> {
        Language::ALL
            .into_iter()
            .filter(|l| self.contains(*l))
            .collect()
    }
}

/// Which rule heard an opt-out (the evidence's `rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The whole message is a keyword.
    Keyword,
    /// The message says a phrase.
    Phrase,
    /// The message holds a keyword among other words, and no phrase.
    Ambiguous,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Keyword => "keyword",
            Rule::Phrase => "phrase",
            Rule::Ambiguous => "ambiguous",
        }
    }
}

/// How an opt-out was heard: the rule, and the vocabulary that matched
/// (`None`: one of the tenant's own keywords).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    pub rule: Rule,
    pub language: Option<Language>,
}

impl Heard {
    /// The version of the vocabulary that matched.
    pub fn vocabulary_version(&self) -> Option<&'static str> {
        self.language.map(|l| vocabulary(l).version.as_str())
    }

    /// The evidence keys docs/messages.md names: `rule`, and `language` and
    /// `vocabulary_version` when a shipped vocabulary matched.
    pub fn evidence(&self) -> Vec<(&'static str, &'static str)> {
        let mut keys = vec![("rule", self.rule.as_str())];
        if let (Some(language), Some(version)) = (self.language, self.vocabulary_version()) {
            keys.push(("language", language.as_str()));
            keys.push(("vocabulary_version", version));
        }
        keys
    }
}

/// What a message's words mean, before opt-in matches, in the order docs/messages.md reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// Equal to a keyword: every purpose and message channel.
    FullOptOut(Heard),
    /// Says a phrase: the tenant's partial opt-out purposes.
    PartialOptOut(Heard),
    /// Equal to a lift word.
    Lift,
    /// Holds a keyword as a whole word but no phrase.
    Ambiguous(Heard),
    /// None of the above (it may still match an opt-in).
    Other,
}

/// One word of a phrase, or a gap of up to [`GAP_WORDS`] words (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Gap,
}

/// How many words a `*` in a phrase stands for, at most.
const GAP_WORDS: usize = 3;

/// Word sequences, indexed by their first word.
#[derive(Debug, Default)]
struct Index(HashMap<String, Vec<Vec<Token>>>);

impl Index {
    fn insert(&mut self, tokens: Vec<Token>) {
        let Some(Token::Word(first)) = tokens.first() else {
            return;
        };
        let rest = tokens[1..].to_vec();
        self.0.entry(first.clone()).or_default().push(rest);
    }

    /// Whether any sequence occurs as consecutive whole words of `words`.
    fn found_in(&self, words: &[&str]) -> bool {
        (0..words.len()).any(|i| {
            self.0
                .get(words[i])
                .is_some_and(|tails| tails.iter().any(|t| follows(t, &words[i + 1..])))
        })
    }
}

/// Whether `words` begin with `tokens` (a gap taking 0 to 3 words).
fn follows(tokens: &[Token], words: &[&str]) -> bool {
    match tokens.split_first() {
        None => true,
        Some((Token::Word(w), rest)) => {
            words.first() == Some(&w.as_str()) && follows(rest, &words[1..])
        }
        Some((Token::Gap, rest)) => {
            (0..=GAP_WORDS.min(words.len())).any(|skip| follows(rest, &words[skip..]))
        }
    }
}

/// One language's vocabulary, parsed and indexed.
#[derive(Debug)]
pub struct Vocabulary {
    pub language: Language,
    pub version: String,
    keywords: HashSet<String>,
    keywords_within: Index,
    phrases: Index,
    lift: HashSet<String>,
}

/// Why a vocabulary file does not parse (a shipped one always does: a
/// test reads them all).
#[derive(Debug, PartialEq, Eq)]
pub struct BadVocabulary {
    pub line: usize,
    pub problem: String,
}

impl Vocabulary {
    /// Parses a vocabulary file: `# language:` and `# version:` header
    /// lines, then `[keywords]`, `[phrases]` and `[lift]` sections of one
    /// entry a line; `#` starts a comment line. Entries are normalised as
    /// messages are; a phrase may hold `*` (up to three words) between words.
    pub fn parse(text: &str) -> Result<Vocabulary, BadVocabulary> {
        let bad = |line: usize, problem: &str| BadVocabulary {
            line,
            problem: problem.to_owned(),
        };
        let mut language = None;
        let mut version = None;
        let mut section = None;
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut parsed = Vocabulary {
            language: Language::En,
            version: String::new(),
            keywords: HashSet::new(),
            keywords_within: Index::default(),
            phrases: Index::default(),
            lift: HashSet::new(),
        };
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if let Some(comment) = line.strip_prefix('#') {
                match header(comment).map_err(|problem| bad(n, problem))? {
                    Some(Header::Language(l)) => language = Some(l),
                    Some(Header::Version(v)) => version = Some(v),
                    None => {}
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            if line.starts_with('[') {
                section = match line {
                    "[keywords]" => Some(0),
                    "[phrases]" => Some(1),
                    "[lift]" => Some(2),
                    _ => return Err(bad(n, "unknown section")),
                };
                continue;
            }
            let Some(section) = section else {
                return Err(bad(n, "an entry before any section"));
            };
            let tokens = tokens_of(line).ok_or_else(|| {
                bad(
                    n,
                    "an entry with no words, or a `*` at an end or outside a phrase",
                )
            })?;
            if section != 1 && tokens.contains(&Token::Gap) {
                return Err(bad(n, "`*` outside a phrase"));
            }
            let key: Vec<&str> = tokens
                .iter()
                .map(|t| match t {
                    Token::Word(w) => w.as_str(),
                    Token::Gap => "*",
                })
                .collect();
            let key = key.join(" ");
            if let Some(first) = seen.insert(format!("{section}:{key}"), n) {
                return Err(bad(n, &format!("a repeat of line {first}")));
            }
            let words = || key.clone();
            match section {
                0 => {
                    parsed.keywords.insert(words());
                    parsed.keywords_within.insert(tokens);
                }
                1 => parsed.phrases.insert(tokens),
                _ => {
                    parsed.lift.insert(words());
                }
            }
        }
        if let Some(both) = parsed.lift.iter().find(|l| parsed.keywords.contains(*l)) {
            return Err(bad(0, &format!("`{both}` is a keyword and a lift word")));
        }
        parsed.language = language.ok_or_else(|| bad(0, "no `# language:` line"))?;
        parsed.version = version
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad(0, "no `# version:` line"))?;
        Ok(parsed)
    }

    /// Whether the whole (normalised) message is a keyword.
    fn is_keyword(&self, message: &str) -> bool {
        self.keywords.contains(message)
    }

    /// Whether the whole (normalised) message is a lift word.
    pub fn is_lift(&self, message: &str) -> bool {
        self.lift.contains(message)
    }
}

/// A header line of a vocabulary file.
enum Header {
    Language(Language),
    Version(String),
}

/// Reads a comment line: a `language:` or `version:` header, or nothing.
fn header(comment: &str) -> Result<Option<Header>, &'static str> {
    let comment = comment.trim();
    if let Some(code) = comment.strip_prefix("language:") {
        let language = Language::parse(code.trim()).ok_or("unknown language")?;
        return Ok(Some(Header::Language(language)));
    }
    Ok(comment
        .strip_prefix("version:")
        .map(|v| Header::Version(v.trim().to_owned())))
}

/// An entry's words (`*` a gap); `None` for no words, or a gap at an end.
fn tokens_of(entry: &str) -> Option<Vec<Token>> {
    let spaced = entry.replace('*', " * ");
    let mut tokens = Vec::new();
    for part in spaced.split_whitespace() {
        if part == "*" {
            tokens.push(Token::Gap);
            continue;
        }
        let word = normalize(part);
        // "opt-out" normalises to one word, "l'arrêt" too; a word of
        // punctuation alone is dropped.
        tokens.extend(
            word.split(' ')
                .filter(|w| !w.is_empty())
                .map(|w| Token::Word(w.to_owned())),
        );
    }
    let ends_with_word = |t: Option<&Token>| matches!(t, Some(Token::Word(_)));
    (ends_with_word(tokens.first()) && ends_with_word(tokens.last())).then_some(tokens)
}

/// The shipped vocabularies, parsed once.
static SHIPPED: LazyLock<Vec<Vocabulary>> = LazyLock::new(|| {
    Language::ALL
        .into_iter()
        .map(|language| {
            let parsed = Vocabulary::parse(language.source())
                .unwrap_or_else(|e| panic!("vocabularies/{}.txt: {e:?}", language.as_str()));
            assert_eq!(
                parsed.language,
                language,
                "vocabularies/{}.txt names another language",
                language.as_str()
            );
            parsed
        })
        .collect()
});

/// A shipped language's vocabulary.
pub fn vocabulary(language: Language) -> &'static Vocabulary {
    &SHIPPED[language as usize]
}

/// Parses and indexes every shipped vocabulary now (at start), so that no
/// message pays for it.
pub fn load() {
    LazyLock::force(&SHIPPED);
}

/// A tenant's own keywords (`opt_out_keywords`), normalised and indexed.
#[derive(Debug, Default)]
pub struct OwnKeywords {
    whole: HashSet<String>,
    within: Index,
}

impl OwnKeywords {
    pub fn new<'a>(keywords: impl IntoIterator<Item = &'a str>) -> Self {
        let mut own = OwnKeywords::default();
        for keyword in keywords {
            if let Some(tokens) = tokens_of(&keyword.replace('*', " ")) {
                own.whole.insert(normalize(keyword));
                own.within.insert(tokens);
            }
        }
        own
    }
}

/// What a message means under these languages and the tenant's own
/// keywords, read in docs/messages.md's order: a keyword (the whole
/// message), a phrase, a lift word, a keyword among other words.
pub fn hear(message: &str, languages: LanguageSet, own: &OwnKeywords) -> Meaning {
    let normalized = normalize(message);
    hear_normalized(&normalized, languages, own)
}

/// [`hear`] for a message already normalised.
pub fn hear_normalized(normalized: &str, languages: LanguageSet, own: &OwnKeywords) -> Meaning {
    let enabled = || {
        Language::ALL
            .into_iter()
            .filter(move |l| languages.contains(*l))
            .map(vocabulary)
    };
    let heard = |rule, language| Heard { rule, language };
    if normalized.is_empty() {
        return Meaning::Other;
    }
    if let Some(v) = enabled().find(|v| v.is_keyword(normalized)) {
        return Meaning::FullOptOut(heard(Rule::Keyword, Some(v.language)));
    }
    if own.whole.contains(normalized) {
        return Meaning::FullOptOut(heard(Rule::Keyword, None));
    }
    let words: Vec<&str> = normalized.split(' ').collect();
    if let Some(v) = enabled().find(|v| v.phrases.found_in(&words)) {
        return Meaning::PartialOptOut(heard(Rule::Phrase, Some(v.language)));
    }
    if enabled().any(|v| v.is_lift(normalized)) {
        return Meaning::Lift;
    }
    if let Some(v) = enabled().find(|v| v.keywords_within.found_in(&words)) {
        return Meaning::Ambiguous(heard(Rule::Ambiguous, Some(v.language)));
    }
    if own.within.found_in(&words) {
        return Meaning::Ambiguous(heard(Rule::Ambiguous, None));
    }
    Meaning::Other
}

/// Whether a (normalised) message is a lift word of one of these languages.
pub fn is_lift_word(normalized: &str, languages: LanguageSet) -> bool {
    languages
        .to_vec()
        .into_iter()
        .any(|l| vocabulary(l).is_lift(normalized))
}

/// Whether an opt-in `match` collides with what these languages hear (a
/// keyword, a phrase, a keyword inside it, a lift word) or with the
/// tenant's own keywords.
pub fn collides(text: &str, languages: LanguageSet, own: &OwnKeywords) -> bool {
    hear(text, languages, own) != Meaning::Other
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

    const SAMPLE: &str = "# language: pt\n# version: 3\n[keywords]\nSAIR\nPARAR\nSTOP ALL\n[phrases]\nnão quero mais * mensagens\nme tire da lista\n[lift]\nVOLTAR\n";

    fn sample() -> Vocabulary {
        Vocabulary::parse(SAMPLE).expect("parses")
    }

    #[test]
    fn a_file_parses_into_normalised_entries() {
        let v = sample();
        assert_eq!(v.language, Language::Pt);
        assert_eq!(v.version, "3");
        assert!(v.is_keyword("sair"));
        assert!(v.is_keyword("stop all"));
        assert!(v.is_lift("voltar"));
        let words = |s: &'static str| s.split(' ').collect::<Vec<_>>();
        assert!(v.phrases.found_in(&words("oi nao quero mais mensagens")));
        assert!(v
            .phrases
            .found_in(&words("nao quero mais receber essas mensagens")));
        assert!(v
            .phrases
            .found_in(&words("nao quero mais receber suas lindas mensagens")));
        assert!(!v
            .phrases
            .found_in(&words("nao quero mais receber essas suas lindas mensagens")));
        assert!(v.keywords_within.found_in(&words("vou parar o carro")));
        assert!(!v.keywords_within.found_in(&words("parara")));
    }

    #[test]
    fn a_bad_file_names_its_line() {
        let cases = [
            ("# language: pt\n# version: 1\nSAIR\n", 3),
            ("# language: pt\n# version: 1\n[keywords]\nSAIR\nsair!\n", 5),
            ("# language: pt\n# version: 1\n[phrases]\n* sair\n", 4),
            ("# language: pt\n# version: 1\n[keywords]\nme * sair\n", 4),
            ("# language: xx\n", 1),
            ("# language: pt\n# version: 1\n[other]\n", 3),
        ];
        for (text, line) in cases {
            let err = Vocabulary::parse(text).expect_err(text);
            assert_eq!(err.line, line, "{text}: {err:?}");
        }
        assert!(Vocabulary::parse("# version: 1\n[keywords]\nSAIR\n").is_err());
        assert!(Vocabulary::parse("# language: pt\n[keywords]\nSAIR\n").is_err());
        assert!(Vocabulary::parse(
            "# language: pt\n# version: 1\n[keywords]\nSAIR\n[lift]\nsair\n"
        )
        .is_err());
    }

    #[test]
    fn every_shipped_vocabulary_parses_as_its_language() {
        for language in Language::ALL {
            let v = vocabulary(language);
            assert_eq!(v.language, language);
            assert!(
                !v.keywords.is_empty() && !v.phrases.0.is_empty() && !v.lift.is_empty(),
                "{language:?}"
            );
        }
    }

    #[test]
    fn english_is_read_in_the_spec_order() {
        let none = OwnKeywords::default();
        let en = LanguageSet::of(&[]);
        let rule = |m: &str| hear(m, en, &none);
        for keyword in [
            "STOP",
            "stop.",
            "Stop all",
            "UNSUBSCRIBE!",
            "opt-out",
            "Opt out",
            "cancel",
            "END",
            "quit",
            "revoke",
        ] {
            assert!(
                matches!(
                    rule(keyword),
                    Meaning::FullOptOut(Heard {
                        rule: Rule::Keyword,
                        language: Some(Language::En)
                    })
                ),
                "{keyword}"
            );
        }
        for lift in ["START", "unstop", "Yes!"] {
            assert_eq!(rule(lift), Meaning::Lift, "{lift}");
        }
        assert!(matches!(
            rule("please stop texting me"),
            Meaning::PartialOptOut(Heard {
                rule: Rule::Phrase,
                ..
            })
        ));
        assert!(matches!(
            rule("Can I cancel my order?"),
            Meaning::Ambiguous(_)
        ));
        assert!(matches!(
            rule("Can you stop by with the delivery at 5?"),
            Meaning::Ambiguous(_)
        ));
        for other in [
            "JOIN MAKRO",
            "stopped by the store",
            "yes please",
            "endless summer",
            "🙂",
            "",
        ] {
            assert_eq!(rule(other), Meaning::Other, "{other}");
        }
    }

    #[test]
    fn a_language_the_tenant_did_not_enable_is_not_read() {
        let none = OwnKeywords::default();
        let english_only = LanguageSet::of(&[]);
        let with_portuguese = LanguageSet::of(&[Language::Pt]);
        assert_eq!(hear("SAIR", english_only, &none), Meaning::Other);
        assert!(matches!(
            hear("SAIR", with_portuguese, &none),
            Meaning::FullOptOut(Heard {
                language: Some(Language::Pt),
                ..
            })
        ));
        assert!(!english_only.contains(Language::Pt));
        assert!(
            LanguageSet::of(&[Language::De]).contains(Language::En),
            "English is always on"
        );
        assert_eq!(LanguageSet::default().to_vec(), Language::ALL.to_vec());
    }

    #[test]
    fn the_tenants_own_keywords_are_heard_without_a_language() {
        let own = OwnKeywords::new(["PARE JÁ"]);
        let en = LanguageSet::of(&[]);
        assert_eq!(
            hear("pare ja", en, &own),
            Meaning::FullOptOut(Heard {
                rule: Rule::Keyword,
                language: None
            })
        );
        assert_eq!(
            hear("oi pare já agora", en, &own),
            Meaning::Ambiguous(Heard {
                rule: Rule::Ambiguous,
                language: None
            })
        );
        let heard = Heard {
            rule: Rule::Keyword,
            language: None,
        };
        assert_eq!(heard.evidence(), vec![("rule", "keyword")]);
    }

    #[test]
    fn evidence_names_the_rule_language_and_version() {
        let heard = Heard {
            rule: Rule::Phrase,
            language: Some(Language::Pt),
        };
        let version = vocabulary(Language::Pt).version.as_str();
        assert_eq!(
            heard.evidence(),
            vec![
                ("rule", "phrase"),
                ("language", "pt"),
                ("vocabulary_version", version)
            ]
        );
    }
}
