//! Evidence rules (docs/recording.md): a flat object of strings whose keys come
//! only from its capture channel's row. The committed evidence is the
//! validated object exactly as received.

use super::purpose::CaptureChannel;
use std::collections::BTreeMap;

/// Longest accepted evidence value, in characters.
pub const MAX_VALUE_CHARS: usize = 10_000;

/// A validated evidence object. Keys are sorted; JCS sorts them anyway.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Evidence(BTreeMap<String, String>);

impl Evidence {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn fields(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Evidence that the server builds itself (erasure, hosted pages).
    pub fn from_pairs<const N: usize>(pairs: [(&str, &str); N]) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

impl Evidence {
    /// The same evidence with one more key (a server-captured field).
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.0.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Evidence that a webhook builds from a message.
    pub fn from_list(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }
}

/// Evidence bodies are personal data: never print them.
impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Evidence({} fields, <redacted>)", self.0.len())
    }
}

/// One problem with one field, reported as `{"field","code"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str) -> Self {
        Self {
            field: field.into(),
            code,
        }
    }
}

/// Whether the evidence belongs to an opt-in or an opt-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceFor {
    OptIn,
    OptOut,
}

/// A channel's row: groups of keys of which at least one is required
/// ("a or b"), and optional keys.
struct Row {
    required: &'static [&'static [&'static str]],
    optional: &'static [&'static str],
}

const OPT_IN_SMS: Row = Row {
    required: &[&["message_id"], &["from_number_to"], &["body"]],
    optional: &["keyword"],
};
const OPT_IN_WEB: Row = Row {
    required: &[&["page_url"], &["ip"], &["user_agent"]],
    optional: &[
        "form_id",
        "form_version",
        "checkbox_label",
        "rendered_html_sha256",
    ],
};
const OPT_IN_WHATSAPP: Row = Row {
    required: &[
        &["message_id"],
        &["business_phone_number_id"],
        &["body", "button_payload"],
    ],
    optional: &["prompt_message_id"],
};
const OPT_IN_IVR: Row = Row {
    required: &[
        &["call_id"],
        &["prompt_script"],
        &["dtmf", "speech_transcript"],
    ],
    optional: &["recording_uri", "recording_sha256"],
};
const OPT_IN_PAPER: Row = Row {
    required: &[
        &["document_sha256"],
        &["signer_name"],
        &["signed_on"],
        &["collected_by"],
    ],
    optional: &["storage_ref", "document_id"],
};
const OPT_OUT_SMS: Row = Row {
    required: &[&["message_id"], &["body"]],
    optional: &["from_number_to", "keyword"],
};
const OPT_OUT_WHATSAPP: Row = Row {
    required: &[&["message_id"], &["body", "button_payload"]],
    optional: &["business_phone_number_id", "prompt_message_id"],
};
const OPT_OUT_WHATSAPP_PREFERENCE: Row = Row {
    required: &[&["business_phone_number_id"], &["preference"]],
    optional: &[],
};
const REASON_ONLY: &[&[&str]] = &[&["reason"]];

fn opt_in_row(channel: CaptureChannel) -> Option<&'static Row> {
    match channel {
        CaptureChannel::Sms => Some(&OPT_IN_SMS),
        CaptureChannel::Web => Some(&OPT_IN_WEB),
        CaptureChannel::Whatsapp => Some(&OPT_IN_WHATSAPP),
        CaptureChannel::Ivr => Some(&OPT_IN_IVR),
        CaptureChannel::Paper => Some(&OPT_IN_PAPER),
        CaptureChannel::Api => None,
    }
}

/// One shape an evidence object may take: groups of keys of which at
/// least one is required ("a or b"), and the optional keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub required: &'static [&'static [&'static str]],
    pub optional: Vec<&'static str>,
}

impl Row {
    fn shape(&self) -> Shape {
        Shape {
            required: self.required,
            optional: self.optional.to_vec(),
        }
    }
}

/// The shapes the evidence of a record of `kind` captured on `channel`
/// may take (docs/recording.md): none for an opt-in on `api`; two for an
/// opt-out on `whatsapp`, a message or WhatsApp's own marketing stop (the
/// second, told by its `preference` key). `validate` and the OpenAPI
/// document both read them here.
pub fn shapes(kind: EvidenceFor, channel: CaptureChannel) -> Vec<Shape> {
    match (kind, channel) {
        (EvidenceFor::OptIn, c) => opt_in_row(c).map(Row::shape).into_iter().collect(),
        (EvidenceFor::OptOut, CaptureChannel::Sms) => vec![OPT_OUT_SMS.shape()],
        (EvidenceFor::OptOut, CaptureChannel::Whatsapp) => vec![
            OPT_OUT_WHATSAPP.shape(),
            OPT_OUT_WHATSAPP_PREFERENCE.shape(),
        ],
        (EvidenceFor::OptOut, c) => {
            let optional = opt_in_row(c)
                .map(|row| {
                    row.required
                        .iter()
                        .flat_map(|group| group.iter().copied())
                        .chain(row.optional.iter().copied())
                        .collect()
                })
                .unwrap_or_default();
            vec![Shape {
                required: REASON_ONLY,
                optional,
            }]
        }
    }
}

/// Validates an evidence object for a record of `kind` captured on `channel`.
pub fn validate(
    kind: EvidenceFor,
    channel: CaptureChannel,
    raw: &serde_json::Value,
) -> Result<Evidence, Vec<FieldError>> {
    let Some(object) = raw.as_object() else {
        return Err(vec![FieldError::new("evidence", "must_be_object")]);
    };
    let mut errors = Vec::new();
    let mut fields = BTreeMap::new();
    for (key, value) in object {
        let field = format!("evidence.{key}");
        match value.as_str() {
            None => errors.push(FieldError::new(field, "must_be_string")),
            Some(text) => {
                if let Err(code) = check_value(key, text) {
                    errors.push(FieldError::new(field, code));
                }
                fields.insert(key.clone(), text.to_owned());
            }
        }
    }
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let shapes = shapes(kind, channel);
    // WhatsApp's own marketing stop is told from a message by its key.
    let preference = shapes.len() > 1 && keys.contains(&"preference");
    let Some(Shape { required, optional }) = shapes.into_iter().nth(usize::from(preference)) else {
        return Err(vec![FieldError::new("channel", "not_a_capture_channel")]);
    };
    for key in &keys {
        let known = optional.contains(key) || required.iter().any(|group| group.contains(key));
        if !known {
            errors.push(FieldError::new(
                format!("evidence.{key}"),
                "not_allowed_for_channel",
            ));
        }
    }
    for group in required {
        if !group.iter().any(|k| keys.contains(k)) {
            errors.push(FieldError::new(
                format!("evidence.{}", group.join("|")),
                "required",
            ));
        }
    }
    if errors.is_empty() {
        Ok(Evidence(fields))
    } else {
        Err(errors)
    }
}

fn check_value(key: &str, text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("empty");
    }
    if text.chars().count() > MAX_VALUE_CHARS {
        return Err("too_long");
    }
    // Like the consent text: line breaks and tabs, no other control characters.
    if !super::text::is_readable_text(text) {
        return Err("control_character");
    }
    if key.ends_with("_sha256") && !is_lower_hex_sha256(text) {
        return Err("invalid_sha256");
    }
    match key {
        "signed_on" => {
            let well_formed = text.len() == 10
                && text.as_bytes()[4] == b'-'
                && text.as_bytes()[7] == b'-'
                && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok();
            if !well_formed {
                return Err("invalid_date");
            }
        }
        "ip" if text.parse::<std::net::IpAddr>().is_err() => return Err("invalid_ip"),
        "page_url" => {
            let rest = text
                .strip_prefix("https://")
                .or_else(|| text.strip_prefix("http://"));
            let has_host = rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'));
            if !has_host || text.chars().any(char::is_whitespace) {
                return Err("invalid_url");
            }
        }
        "preference" if text != "stop" => return Err("invalid_preference"),
        _ => {}
    }
    Ok(())
}

/// 64 lowercase hex digits.
pub fn is_lower_hex_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(result: Result<Evidence, Vec<FieldError>>) -> Vec<(String, &'static str)> {
        result
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    #[test]
    fn every_opt_in_row_accepts_its_keys() {
        let cases = [
            (
                CaptureChannel::Sms,
                json!({"message_id":"SM1","from_number_to":"+4930123456","body":"JOIN","keyword":"JOIN"}),
            ),
            (
                CaptureChannel::Web,
                json!({"page_url":"https://shop.example/a","ip":"203.0.113.7","user_agent":"UA","form_id":"f","form_version":"1","checkbox_label":"Yes","rendered_html_sha256":"a".repeat(64)}),
            ),
            (
                CaptureChannel::Whatsapp,
                json!({"message_id":"wamid.1","business_phone_number_id":"1065","button_payload":"OPTIN"}),
            ),
            (
                CaptureChannel::Ivr,
                json!({"call_id":"c1","prompt_script":"Press 1","dtmf":"1","recording_sha256":"0".repeat(64)}),
            ),
            (
                CaptureChannel::Paper,
                json!({"document_sha256":"e".repeat(64),"signer_name":"J","signed_on":"2026-11-19","collected_by":"store-1"}),
            ),
        ];
        for (channel, body) in cases {
            let evidence = validate(EvidenceFor::OptIn, channel, &body).unwrap();
            assert_eq!(evidence.fields().len(), body.as_object().unwrap().len());
        }
    }

    #[test]
    fn missing_and_foreign_keys_are_named() {
        let got = codes(validate(
            EvidenceFor::OptIn,
            CaptureChannel::Whatsapp,
            &json!({"message_id":"m","business_phone_number_id":"1","page_url":"https://x"}),
        ));
        assert_eq!(
            got,
            vec![
                ("evidence.page_url".into(), "not_allowed_for_channel"),
                ("evidence.body|button_payload".into(), "required"),
            ]
        );
        let got = codes(validate(
            EvidenceFor::OptIn,
            CaptureChannel::Paper,
            &json!({"document_sha256":"ABC","signer_name":"J","signed_on":"2026-02-30","collected_by":7}),
        ));
        assert_eq!(
            got,
            vec![
                ("evidence.collected_by".into(), "must_be_string"),
                ("evidence.document_sha256".into(), "invalid_sha256"),
                ("evidence.signed_on".into(), "invalid_date"),
            ]
        );
    }

    #[test]
    fn web_values_are_checked() {
        let got = codes(validate(
            EvidenceFor::OptIn,
            CaptureChannel::Web,
            &json!({"page_url":"ftp://x","ip":"999.1.1.1","user_agent":""}),
        ));
        assert_eq!(
            got,
            vec![
                ("evidence.ip".into(), "invalid_ip"),
                ("evidence.page_url".into(), "invalid_url"),
                ("evidence.user_agent".into(), "empty"),
            ]
        );
    }

    #[test]
    fn opt_out_rows() {
        // SMS: from_number_to becomes optional.
        assert!(validate(
            EvidenceFor::OptOut,
            CaptureChannel::Sms,
            &json!({"message_id":"SM1","body":"STOP"})
        )
        .is_ok());
        // WhatsApp's own marketing stop.
        assert!(validate(
            EvidenceFor::OptOut,
            CaptureChannel::Whatsapp,
            &json!({"business_phone_number_id":"1","preference":"stop"})
        )
        .is_ok());
        assert!(validate(
            EvidenceFor::OptOut,
            CaptureChannel::Whatsapp,
            &json!({"message_id":"w","body":"STOP"})
        )
        .is_ok());
        // Other channels: a reason, plus that channel's opt-in keys.
        assert!(validate(
            EvidenceFor::OptOut,
            CaptureChannel::Api,
            &json!({"reason":"asked by phone"})
        )
        .is_ok());
        assert!(validate(
            EvidenceFor::OptOut,
            CaptureChannel::Ivr,
            &json!({"reason":"pressed 9","call_id":"c","dtmf":"9"})
        )
        .is_ok());
        assert_eq!(
            codes(validate(
                EvidenceFor::OptOut,
                CaptureChannel::Api,
                &json!({"call_id":"c"})
            )),
            vec![
                ("evidence.call_id".into(), "not_allowed_for_channel"),
                ("evidence.reason".into(), "required")
            ]
        );
        assert_eq!(
            codes(validate(
                EvidenceFor::OptOut,
                CaptureChannel::Web,
                &json!([])
            )),
            vec![("evidence".into(), "must_be_object")]
        );
    }
}
