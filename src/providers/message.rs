//! What an inbound message means (docs/messages.md), pure: who sent it, what
//! it asks for under the tenant's settings, the evidence it carries, and
//! what a dead letter keeps of it. Recording it: `inbound.rs`.

use super::letter::{LetterPayload, MessageLetter, PreferenceLetter};
use super::settings::{OptInMatch, StoredSettings};
use super::wa_id::wa_id_to_e164;
use super::whatsapp_payload::Content;
use crate::domain::evidence::Evidence;
use crate::domain::identity::{Identity, UserId};
use crate::domain::number::E164;
use crate::domain::purpose::{
    CaptureChannel, MessageChannel, MessageChannelSet, Purpose, PurposeSet,
};
use crate::domain::record::{LiftClass, OptOutRecord, Record};
use crate::domain::time::Timestamp;
use crate::domain::vocabulary::{hear_normalized, normalize, Heard, LanguageSet, Meaning};

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    WhatsApp,
    Twilio,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::WhatsApp => "whatsapp",
            Provider::Twilio => "twilio",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "whatsapp" => Some(Provider::WhatsApp),
            "twilio" => Some(Provider::Twilio),
            _ => None,
        }
    }

    pub fn collector(self) -> &'static str {
        match self {
            Provider::WhatsApp => "webhook:whatsapp",
            Provider::Twilio => "webhook:twilio",
        }
    }

    pub fn capture_channel(self) -> CaptureChannel {
        match self {
            Provider::WhatsApp => CaptureChannel::Whatsapp,
            Provider::Twilio => CaptureChannel::Sms,
        }
    }

    pub fn message_channel(self) -> MessageChannel {
        match self {
            Provider::WhatsApp => MessageChannel::Whatsapp,
            Provider::Twilio => MessageChannel::Sms,
        }
    }

    /// Who a sender is, as the provider wrote it: a WhatsApp `wa_id` (with
    /// the canonical Brazilian and Mexican forms) or Twilio's `From`, and
    /// WhatsApp's user id and parent id. What does not parse is absent.
    pub fn sender(self, from: Option<&str>, user_id: Option<&str>, parent: Option<&str>) -> Sender {
        let number = from.and_then(|from| match self {
            Provider::WhatsApp => wa_id_to_e164(from).ok(),
            Provider::Twilio => E164::parse(from, None, None).ok(),
        });
        let (user_id, parent) = match self {
            Provider::WhatsApp => (
                user_id.and_then(UserId::parse).filter(|u| !u.is_parent()),
                parent.and_then(UserId::parse).filter(UserId::is_parent),
            ),
            Provider::Twilio => (None, None),
        };
        Sender {
            number,
            user_id,
            parent,
        }
    }
}

/// Who sent a message: the identities it carries (docs/identities.md).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sender {
    pub number: Option<E164>,
    pub user_id: Option<UserId>,
    /// A parent user id (`ENT.`), shared across a company's portfolios.
    pub parent: Option<UserId>,
}

impl Sender {
    /// The identity an inbound event is recorded on: the number if there
    /// is one, else the user id, else the parent id; `None` when nothing
    /// parses (then an opt-out is kept as a dead letter).
    pub fn recorded_on(&self) -> Option<Identity> {
        match (&self.number, &self.user_id, &self.parent) {
            (Some(n), _, _) => Some(Identity::Number(n.clone())),
            (None, Some(u), _) => Some(Identity::User(u.clone())),
            (None, None, Some(p)) => Some(Identity::User(p.clone())),
            (None, None, None) => None,
        }
    }

    /// The pairs a signed WhatsApp message joins into one person: the
    /// number with the user id (`subject` = the number), the user id with
    /// the parent id (`subject` = the user id).
    pub fn pairs(&self) -> Vec<(Identity, Identity)> {
        let mut out = Vec::new();
        if let (Some(n), Some(u)) = (&self.number, &self.user_id) {
            out.push((Identity::Number(n.clone()), Identity::User(u.clone())));
        }
        if let (Some(u), Some(p)) = (&self.user_id, &self.parent) {
            out.push((Identity::User(u.clone()), Identity::User(p.clone())));
        }
        out
    }

    /// Every identity the sender carries: the number, the user id, the
    /// parent id (those that parse).
    pub fn identities(&self) -> Vec<Identity> {
        let number = self.number.iter().map(|n| Identity::Number(n.clone()));
        let users = [&self.user_id, &self.parent]
            .into_iter()
            .flatten()
            .map(|u| Identity::User(u.clone()));
        number.chain(users).collect()
    }

    /// The user id that came with the sender, if any (as kept in letters).
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_ref().map(UserId::as_str)
    }

    /// The parent id that came with the sender, if any.
    pub fn parent(&self) -> Option<&str> {
        self.parent.as_ref().map(UserId::as_str)
    }
}

/// One inbound message, as both webhooks hand it over.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub provider: Provider,
    pub sender: Sender,
    /// The sender as the provider wrote it (`wa_id` or `From`). A dead
    /// letter keeps its canonical form when it parses (docs/identities.md), else
    /// this, so that later rules can read it again.
    pub from: Option<String>,
    /// The provider's message id (`wamid.…`, `SM…`).
    pub message_id: String,
    /// The WhatsApp Business Account it came through (`entry[].id`).
    pub waba: Option<String>,
    /// The WhatsApp phone number id or the Twilio number it was sent to.
    pub business: String,
    /// The provider's time of the message; `None` when it was missing or
    /// unreadable (treated like a time in the future).
    pub captured_at: Option<Timestamp>,
    pub content: Content,
}

/// WhatsApp's own marketing stop or resume (`user_preferences`).
#[derive(Debug, Clone)]
pub struct PreferenceChange {
    pub sender: Sender,
    pub from: Option<String>,
    pub business: String,
    pub stop: bool,
    pub captured_at: Timestamp,
}

/// What a message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent<'a> {
    /// A keyword (`full`: every purpose) or a phrase.
    OptOut {
        full: bool,
        heard: Heard,
    },
    /// A keyword among other words and no phrase: an opt-out of the
    /// partial purposes listed for review, or (the tenant's
    /// `ambiguous_messages: review`) nothing until reviewed.
    Ambiguous(Heard),
    Lift,
    OptIn(&'a OptInMatch),
    Nothing,
}

fn words(normalized: &str) -> usize {
    normalized.split(' ').filter(|w| !w.is_empty()).count()
}

/// What a message asks for under the tenant's settings and languages.
pub fn intent<'a>(
    provider: Provider,
    content: &Content,
    settings: &'a StoredSettings,
    languages: LanguageSet,
) -> Intent<'a> {
    let matches: &[OptInMatch] = match provider {
        Provider::WhatsApp => settings.whatsapp.as_ref().map_or(&[], |w| &w.opt_in),
        Provider::Twilio => settings.twilio.as_ref().map_or(&[], |t| &t.opt_in),
    };
    let (text, is_button, is_reply) = match content {
        Content::Button { payload, .. } => {
            if let Some(m) = matches.iter().find(|m| m.match_text == *payload) {
                return Intent::OptIn(m);
            }
            (payload, true, true)
        }
        Content::Text { body, reply_to } => (body, false, reply_to.is_some()),
        Content::Other => return Intent::Nothing,
    };
    let normalized = normalize(text);
    match hear_normalized(&normalized, languages, &settings.own_keywords()) {
        Meaning::FullOptOut(heard) => Intent::OptOut { full: true, heard },
        Meaning::PartialOptOut(heard) => Intent::OptOut { full: false, heard },
        Meaning::Lift => Intent::Lift,
        Meaning::Ambiguous(heard) => Intent::Ambiguous(heard),
        // A button opts in only by its exact payload (above).
        Meaning::Other if is_button => Intent::Nothing,
        Meaning::Other => matches
            .iter()
            .filter(|m| normalize(&m.match_text) == normalized)
            // On WhatsApp a one-word text opts in only as a reply to the business.
            .find(|m| {
                provider == Provider::Twilio || is_reply || words(&normalize(&m.match_text)) >= 2
            })
            .map_or(Intent::Nothing, Intent::OptIn),
    }
}

impl Intent<'_> {
    /// The purposes an opt-out withdraws, and how it was heard; `None` for
    /// anything else. An ambiguous message withdraws the partial purposes
    /// unless the tenant reviews such messages first (`review_first`).
    pub fn withdrawn(
        &self,
        settings: &StoredSettings,
        review_first: bool,
    ) -> Option<(PurposeSet, Heard)> {
        match self {
            Intent::OptOut { full, heard } => Some((opt_out_purposes(*full, settings), *heard)),
            Intent::Ambiguous(heard) if !review_first => {
                Some((opt_out_purposes(false, settings), *heard))
            }
            _ => None,
        }
    }
}

/// The purposes an opt-out withdraws: all, or the tenant's partial ones.
pub fn opt_out_purposes(full: bool, settings: &StoredSettings) -> PurposeSet {
    if full {
        PurposeSet::all()
    } else {
        settings.partial_opt_out.iter().copied().collect()
    }
}

/// The evidence a message carries: its channel's opt-in keys.
pub fn message_evidence(message: &InboundMessage) -> Evidence {
    let mut pairs: Vec<(&str, &str)> = vec![("message_id", &message.message_id)];
    pairs.push(match message.provider {
        Provider::WhatsApp => ("business_phone_number_id", &message.business),
        Provider::Twilio => ("from_number_to", &message.business),
    });
    match &message.content {
        Content::Text { body, reply_to } => {
            pairs.push(("body", body));
            if let (Provider::WhatsApp, Some(id)) = (message.provider, reply_to) {
                pairs.push(("prompt_message_id", id));
            }
        }
        Content::Button { payload, reply_to } => {
            pairs.push(("button_payload", payload));
            if let Some(id) = reply_to {
                pairs.push(("prompt_message_id", id));
            }
        }
        Content::Other => {}
    }
    Evidence::from_list(&pairs)
}

/// What a dead letter keeps of a message; `opt_out` names the purposes it
/// withdrew when it arrived, if it was an opt-out.
pub fn message_letter(
    message: &InboundMessage,
    opt_out: Option<(PurposeSet, Heard)>,
) -> LetterPayload {
    let heard = opt_out.iter().flat_map(|(_, heard)| heard.evidence());
    let heard = heard.map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    LetterPayload::Message(MessageLetter {
        provider: message.provider.as_str().to_owned(),
        message_id: message.message_id.clone(),
        business: Some(message.business.clone()).filter(|b| !b.is_empty()),
        from: canonical_from(message.provider, &message.sender, message.from.as_deref()),
        user_id: message.sender.user_id().map(str::to_owned),
        parent_user_id: message.sender.parent().map(str::to_owned),
        waba: message.waba.clone(),
        captured_at: message.captured_at,
        content: message.content.clone(),
        heard,
        opt_out: opt_out.map(|(set, _)| {
            Purpose::ALL
                .into_iter()
                .filter(|p| set.contains(*p))
                .collect()
        }),
        system: None,
    })
}

/// What a dead letter keeps of a system message saying the person changed
/// their number or user id (`system` its type): it closes the sender's
/// group once its business number is configured.
pub fn system_letter(message: &InboundMessage, system: &str) -> LetterPayload {
    let mut payload = message_letter(message, None);
    if let LetterPayload::Message(letter) = &mut payload {
        letter.system = Some(system.to_owned());
    }
    payload
}

/// The sender as a dead letter keeps it: its canonical number when it
/// parses (a WhatsApp `wa_id` is digits without `+`), else as sent.
pub fn canonical_from(provider: Provider, sender: &Sender, from: Option<&str>) -> Option<String> {
    match (&sender.number, provider) {
        (Some(number), Provider::WhatsApp) => Some(number.as_str()[1..].to_owned()),
        (Some(number), Provider::Twilio) => Some(number.as_str().to_owned()),
        (None, _) => from.map(str::to_owned),
    }
}

/// The message a dead letter kept, read under today's rules (a `wa_id`
/// read again), or `None` when it is not a message.
pub fn message_of_letter(letter: &MessageLetter) -> Option<InboundMessage> {
    let provider = Provider::parse(&letter.provider)?;
    Some(InboundMessage {
        provider,
        sender: provider.sender(
            letter.from.as_deref(),
            letter.user_id.as_deref(),
            letter.parent_user_id.as_deref(),
        ),
        from: letter.from.clone(),
        message_id: letter.message_id.clone(),
        waba: letter.waba.clone(),
        business: letter.business.clone().unwrap_or_default(),
        captured_at: letter.captured_at,
        content: letter.content.clone(),
    })
}

/// What a dead letter keeps of a marketing preference change.
pub fn preference_letter(
    change: &PreferenceChange,
    captured_at: Option<Timestamp>,
) -> LetterPayload {
    LetterPayload::Preference(PreferenceLetter {
        business: Some(change.business.clone()).filter(|b| !b.is_empty()),
        from: canonical_from(Provider::WhatsApp, &change.sender, change.from.as_deref()),
        user_id: change.sender.user_id().map(str::to_owned),
        value: if change.stop { "stop" } else { "resume" }.to_owned(),
        captured_at,
    })
}

/// What handling a delivery did (for the log line and the tests' eyes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Duplicate,
    Recorded { seqs: Vec<u64> },
    DeadLetter { reason: &'static str },
}

/// How far a provider's timestamp may run ahead of our clock: a later
/// one counts as "in the future" (docs/messages.md).
pub const PROVIDER_CLOCK_SKEW_MILLIS: i64 = 60_000;

/// A full or partial opt-out by message, which START, UNSTOP or YES lift.
pub fn keyword_opt_out(
    provider: Provider,
    identity: Identity,
    purposes: PurposeSet,
    captured_at: Timestamp,
    evidence: Evidence,
) -> Record {
    Record::OptOut(OptOutRecord {
        identity,
        channel: provider.capture_channel(),
        purposes,
        message_channels: MessageChannelSet::all(),
        captured_at,
        backfill: false,
        evidence,
        lift_class: Some(LiftClass::Keyword),
    })
}

/// WhatsApp's own marketing stop: an opt-out of marketing on WhatsApp.
pub fn marketing_stop(identity: Identity, captured_at: Timestamp, evidence: Evidence) -> Record {
    Record::OptOut(OptOutRecord {
        identity,
        channel: CaptureChannel::Whatsapp,
        purposes: [Purpose::Marketing].into_iter().collect(),
        message_channels: [MessageChannel::Whatsapp].into_iter().collect(),
        captured_at,
        backfill: false,
        evidence,
        lift_class: Some(LiftClass::MarketingPreference),
    })
}

pub fn preference_evidence(business: &str, value: &str) -> Evidence {
    Evidence::from_pairs([
        ("business_phone_number_id", business),
        ("preference", value),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::vocabulary::{Language, Rule};
    use crate::providers::settings::StoredTwilio;

    fn settings() -> StoredSettings {
        let opt_in = |m: &str| OptInMatch {
            match_text: m.into(),
            brand: "Makro".into(),
            purposes: vec![Purpose::Marketing],
            message_channels: None,
            prompt: "Makro".into(),
            entry_point: None,
        };
        StoredSettings {
            whatsapp: Some(crate::providers::settings::StoredWhatsApp {
                app_secret: String::new(),
                previous_app_secret: None,
                verify_token: String::new(),
                phone_numbers: Vec::new(),
                opt_in: vec![
                    opt_in("JOIN"),
                    opt_in("JOIN MAKRO"),
                    opt_in("OPTIN_UTILITY"),
                ],
            }),
            twilio: Some(StoredTwilio {
                auth_token: String::new(),
                secondary_auth_token: None,
                account_sid: String::new(),
                webhook_url: String::new(),
                numbers: Vec::new(),
                opt_in: vec![opt_in("JOIN")],
            }),
            opt_out_keywords: vec!["BAJA".into()],
            partial_opt_out: vec![Purpose::Marketing],
        }
    }

    fn text(body: &str, reply: bool) -> Content {
        Content::Text {
            body: body.into(),
            reply_to: reply.then(|| "wamid.prompt".to_owned()),
        }
    }

    #[test]
    fn what_messages_ask_for() {
        let s = settings();
        let wa = Provider::WhatsApp;
        let all = LanguageSet::default();
        let heard = |rule, language| Heard { rule, language };
        assert_eq!(
            intent(wa, &text("STOP", false), &s, all),
            Intent::OptOut {
                full: true,
                heard: heard(Rule::Keyword, Some(Language::En))
            }
        );
        assert_eq!(
            intent(wa, &text("stop.", false), &s, all),
            Intent::OptOut {
                full: true,
                heard: heard(Rule::Keyword, Some(Language::En))
            }
        );
        assert_eq!(
            intent(wa, &text("baja", false), &s, all),
            Intent::OptOut {
                full: true,
                heard: heard(Rule::Keyword, Some(Language::Es))
            }
        );
        assert_eq!(
            intent(wa, &text("please stop texting me", false), &s, all),
            Intent::OptOut {
                full: false,
                heard: heard(Rule::Phrase, Some(Language::En))
            }
        );
        assert_eq!(intent(wa, &text("Start", false), &s, all), Intent::Lift);
        // One word opts in on WhatsApp only as a reply; two words always.
        assert_eq!(intent(wa, &text("join", false), &s, all), Intent::Nothing);
        assert!(
            matches!(intent(wa, &text("join", true), &s, all), Intent::OptIn(m) if m.match_text == "JOIN")
        );
        assert!(
            matches!(intent(wa, &text("Join Makro!", false), &s, all), Intent::OptIn(m) if m.match_text == "JOIN MAKRO")
        );
        // On SMS a configured keyword counts.
        assert!(matches!(
            intent(Provider::Twilio, &text("join", false), &s, all),
            Intent::OptIn(_)
        ));
        // Button payloads are byte-equal.
        let button = |p: &str| Content::Button {
            payload: p.into(),
            reply_to: None,
        };
        assert!(matches!(
            intent(wa, &button("OPTIN_UTILITY"), &s, all),
            Intent::OptIn(_)
        ));
        assert_eq!(
            intent(wa, &button("optin_utility"), &s, all),
            Intent::Nothing
        );
        assert_eq!(
            intent(wa, &button("STOP"), &s, all),
            Intent::OptOut {
                full: true,
                heard: heard(Rule::Keyword, Some(Language::En))
            }
        );
        assert_eq!(intent(wa, &Content::Other, &s, all), Intent::Nothing);
    }

    #[test]
    fn ambiguous_messages_and_languages() {
        let s = settings();
        let wa = Provider::WhatsApp;
        let all = LanguageSet::default();
        let heard = |rule, language| Heard { rule, language };
        // A keyword among other words and no phrase is ambiguous.
        assert_eq!(
            intent(wa, &text("can I cancel my order?", false), &s, all),
            Intent::Ambiguous(heard(Rule::Ambiguous, Some(Language::En)))
        );
        // Baja is the tenant's own keyword too; with Spanish off it is heard
        // as the tenant's.
        let english = LanguageSet::of(&[]);
        assert_eq!(
            intent(wa, &text("baja", false), &s, english),
            Intent::OptOut {
                full: true,
                heard: heard(Rule::Keyword, None)
            }
        );
    }

    #[test]
    fn senders_by_provider() {
        let wa = Provider::WhatsApp;
        let both = wa.sender(Some("4915112345678"), Some("DE.1"), Some("DE.ENT.9"));
        assert_eq!(
            both.number.as_ref().map(E164::as_str),
            Some("+4915112345678")
        );
        assert_eq!(both.user_id(), Some("DE.1"));
        assert_eq!(both.parent(), Some("DE.ENT.9"));
        assert_eq!(
            both.recorded_on().map(|i| i.as_str().to_owned()).as_deref(),
            Some("+4915112345678")
        );
        // Two pairs: the number with the user id, the user id with the parent id.
        let pairs: Vec<(String, String)> = both
            .pairs()
            .into_iter()
            .map(|(a, b)| (a.as_str().to_owned(), b.as_str().to_owned()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("+4915112345678".into(), "DE.1".into()),
                ("DE.1".into(), "DE.ENT.9".into())
            ]
        );
        // A number that does not parse is absent: recorded on the user id.
        let user_only = wa.sender(Some("12"), Some("DE.1"), None);
        assert_eq!(user_only.number, None);
        assert_eq!(
            user_only
                .recorded_on()
                .map(|i| i.as_str().to_owned())
                .as_deref(),
            Some("DE.1")
        );
        assert!(user_only.pairs().is_empty());
        // A parent id alone is recorded on; a parent id in the user id's
        // place, or a malformed id, is not a user id.
        let parent_only = wa.sender(None, None, Some("DE.ENT.9"));
        assert_eq!(
            parent_only
                .recorded_on()
                .map(|i| i.as_str().to_owned())
                .as_deref(),
            Some("DE.ENT.9")
        );
        assert_eq!(wa.sender(None, Some("DE.ENT.9"), None).recorded_on(), None);
        assert_eq!(
            wa.sender(None, Some("de.1"), Some("DE.1")).recorded_on(),
            None
        );
        assert_eq!(wa.sender(None, None, None).recorded_on(), None);
        assert!(Provider::Twilio
            .sender(Some("+4915112345678"), None, None)
            .number
            .is_some());
        assert_eq!(
            Provider::Twilio.sender(Some("whatever"), Some("DE.1"), None),
            Sender::default()
        );
    }

    #[test]
    fn a_message_survives_its_dead_letter() {
        let message = InboundMessage {
            provider: Provider::WhatsApp,
            sender: Provider::WhatsApp.sender(None, Some("US.1"), Some("US.ENT.2")),
            from: None,
            message_id: "wamid.1".into(),
            waba: Some("102290129340398".into()),
            business: "1065".into(),
            captured_at: None,
            content: text("STOP", true),
        };
        let LetterPayload::Message(letter) = message_letter(
            &message,
            Some((
                PurposeSet::all(),
                crate::domain::vocabulary::Heard {
                    rule: crate::domain::vocabulary::Rule::Keyword,
                    language: None,
                },
            )),
        ) else {
            panic!("a message letter");
        };
        assert_eq!(
            letter.opt_out,
            Some(vec![
                Purpose::Marketing,
                Purpose::Utility,
                Purpose::Authentication
            ])
        );
        let back = message_of_letter(&letter).unwrap();
        assert_eq!(back.sender, message.sender);
        assert_eq!(back.content, message.content);
        assert_eq!(message_evidence(&back), message_evidence(&message));
    }
}
