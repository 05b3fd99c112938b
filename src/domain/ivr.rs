//! The hosted phone opt-in (SPEC section 14, docs/ivr.md): a flow an admin
//! defines, and the TwiML a call is answered with (what Twilio documents:
//! `<Response>` holding `<Gather numDigits="1" action method>` around a
//! `<Say language>`, and `<Say>` alone to thank and hang up).

use super::purpose::{MessageChannel, Purpose};
use super::text::{escape_markup as xml, is_well_formed_language_tag};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A flow as an admin defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IvrFlowInput {
    /// An active brand of the tenant, named in the prompt as a whole word.
    pub brand: String,
    /// At least one.
    #[schema(min_items = 1)]
    pub purposes: Vec<Purpose>,
    /// At least one.
    #[schema(min_items = 1)]
    pub message_channels: Vec<MessageChannel>,
    /// The language the prompt is read in (`<Say language>`), e.g. `en-US`, `de-DE`.
    pub language: String,
    /// What the caller hears, naming the brand: the opt-in's consent text.
    pub prompt: String,
    /// The key that opts in: one of `0`-`9`, `*`, `#` (default `1`).
    #[serde(default = "default_digit")]
    pub digit: String,
}

fn default_digit() -> String {
    "1".into()
}

/// A flow at its current version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IvrFlow {
    pub id: String,
    /// Starts at 1; each changed definition adds one.
    pub version: i64,
    pub brand: String,
    pub purposes: Vec<Purpose>,
    pub message_channels: Vec<MessageChannel>,
    pub language: String,
    pub prompt: String,
    pub digit: String,
    /// Where Twilio is told to send the number's incoming calls:
    /// `CONSENT_LEDGER_PUBLIC_URL/webhooks/twilio-voice/<tenant>/<flow>`.
    pub webhook_url: String,
}

impl IvrFlow {
    /// A flow's version with the URL its calls are posted to.
    pub fn new(id: String, version: i64, definition: IvrFlowInput, webhook_url: String) -> Self {
        Self {
            id,
            version,
            brand: definition.brand,
            purposes: definition.purposes,
            message_channels: definition.message_channels,
            language: definition.language,
            prompt: definition.prompt,
            digit: definition.digit,
            webhook_url,
        }
    }
}

/// Whether `id` may name a flow: 1 to 64 lowercase letters, digits, `-`, `_`.
pub fn is_flow_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
}

/// The fields of a definition that break a rule needing no stored state.
pub fn flow_problems(input: &IvrFlowInput) -> Vec<(&'static str, &'static str)> {
    let mut problems = Vec::new();
    if input.purposes.is_empty() {
        problems.push(("purposes", "empty"));
    }
    if input.message_channels.is_empty() {
        problems.push(("message_channels", "empty"));
    }
    if !is_well_formed_language_tag(&input.language) {
        problems.push(("language", "invalid_value"));
    }
    let prompt_chars = input.prompt.chars().count();
    if prompt_chars == 0 || prompt_chars > 1_000 || input.prompt.chars().any(char::is_control) {
        problems.push(("prompt", "invalid_value"));
    }
    let digit_ok = input.digit.len() == 1
        && input
            .digit
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#');
    if !digit_ok {
        problems.push(("digit", "invalid_value"));
    }
    problems
}

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// The first answer to a call: the prompt read, one key gathered and
/// posted to `action`; a caller who presses nothing hears the goodbye.
pub fn gather_twiml(flow: &IvrFlowInput, action: &str) -> String {
    let language = xml(&flow.language);
    format!(
        "{XML_DECLARATION}<Response><Gather numDigits=\"1\" action=\"{}\" method=\"POST\" timeout=\"8\"><Say language=\"{language}\">{}</Say></Gather><Say language=\"{language}\">{}</Say></Response>",
        xml(action),
        xml(&flow.prompt),
        GOODBYE
    )
}

/// What the caller hears at the end, whatever was pressed.
pub fn goodbye_twiml(language: &str) -> String {
    format!(
        "{XML_DECLARATION}<Response><Say language=\"{}\">{GOODBYE}</Say></Response>",
        xml(language)
    )
}

const GOODBYE: &str = "Thank you. Goodbye.";

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> IvrFlowInput {
        IvrFlowInput {
            brand: "Makro & Co".into(),
            purposes: vec![Purpose::Marketing],
            message_channels: vec![MessageChannel::Whatsapp],
            language: "en-US".into(),
            prompt: "Press 1 for offers from Makro & Co <now>.".into(),
            digit: "1".into(),
        }
    }

    #[test]
    fn the_gather_reads_the_prompt_escaped_and_posts_one_digit() {
        let twiml = gather_twiml(
            &flow(),
            "https://l.example/webhooks/twilio-voice/makro/main?a=1&b=2",
        );
        assert_eq!(
            twiml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Gather numDigits=\"1\" \
             action=\"https://l.example/webhooks/twilio-voice/makro/main?a=1&amp;b=2\" method=\"POST\" timeout=\"8\">\
             <Say language=\"en-US\">Press 1 for offers from Makro &amp; Co &lt;now&gt;.</Say></Gather>\
             <Say language=\"en-US\">Thank you. Goodbye.</Say></Response>"
        );
    }

    #[test]
    fn definitions_are_checked() {
        assert!(flow_problems(&flow()).is_empty());
        let mut bad = flow();
        bad.digit = "12".into();
        bad.language = "".into();
        bad.purposes.clear();
        assert_eq!(
            flow_problems(&bad),
            vec![
                ("purposes", "empty"),
                ("language", "invalid_value"),
                ("digit", "invalid_value")
            ]
        );
        assert!(is_flow_id("main-line_2"));
        assert!(!is_flow_id("Main"));
    }
}
