//! Channel settings (docs/webhooks.md): what an admin `PUT`s, how it is
//! checked, the stored form with every secret sealed under the
//! key-encryption key, and the view `GET` shows (secrets as null).

use crate::domain::evidence::FieldError;
use crate::domain::number::E164;
use crate::domain::purpose::{MessageChannel, Purpose};
use crate::domain::text::{contains_whole_word, is_readable_text};
use crate::domain::vocabulary::{self, normalize, LanguageSet, OwnKeywords};
use crate::keys::Sealer;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A business number: a WhatsApp phone number id or a Twilio number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelNumber {
    pub kind: &'static str,
    pub value: String,
}

/// The kinds of business numbers, as stored.
pub const WHATSAPP_PHONE_NUMBER_ID: &str = "whatsapp_phone_number_id";
pub const TWILIO_NUMBER: &str = "twilio_number";

/// An opt-in a message creates when it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptInMatch {
    #[serde(rename = "match")]
    #[schema(schema_with = crate::domain::openapi::keyword_match)]
    pub match_text: String,
    /// An active brand of the tenant (after NFC and case folding); it
    /// becomes `company_name_shown`.
    #[schema(min_length = 1)]
    pub brand: String,
    /// At least one.
    #[schema(min_items = 1)]
    pub purposes: Vec<Purpose>,
    /// Default: the channel the message arrives on; else at least one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1)]
    pub message_channels: Option<Vec<MessageChannel>>,
    #[schema(schema_with = crate::domain::openapi::prompt)]
    pub prompt: String,
    /// The campaign entry point this match stands for (none for one of the
    /// channel settings): its opt-ins name it in their evidence.
    #[serde(skip)]
    pub entry_point: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneNumber {
    /// The WhatsApp Cloud API phone number id: 1 to 64 digits, unique.
    #[schema(pattern = "^[0-9]{1,64}$")]
    pub id: String,
    /// How the number reads (at most 64 bytes).
    #[serde(default)]
    #[schema(max_length = 64)]
    pub display: Option<String>,
}

/// The WhatsApp part of a `PUT`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppInput {
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::secret)]
    pub app_secret: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::rotating_secret)]
    pub previous_app_secret: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::secret)]
    pub verify_token: Option<String>,
    /// 1 to 100.
    #[schema(min_items = 1, max_items = 100)]
    pub phone_numbers: Vec<PhoneNumber>,
    /// At most 100.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub opt_in: Vec<OptInMatch>,
}

/// The Twilio part of a `PUT`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwilioInput {
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::secret)]
    pub auth_token: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::rotating_secret)]
    pub secondary_auth_token: Option<String>,
    /// `AC` and 32 hex digits.
    #[schema(pattern = "^AC[0-9A-Fa-f]{32}$")]
    pub account_sid: String,
    #[schema(schema_with = crate::domain::openapi::webhook_url)]
    pub webhook_url: String,
    #[schema(schema_with = crate::domain::openapi::twilio_numbers)]
    pub numbers: Vec<String>,
    /// At most 100.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub opt_in: Vec<OptInMatch>,
}

/// `PUT /v1/channels`: replaces the whole object.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettingsInput {
    #[serde(default)]
    pub whatsapp: Option<WhatsAppInput>,
    #[serde(default)]
    pub twilio: Option<TwilioInput>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::opt_out_keywords)]
    pub opt_out_keywords: Vec<String>,
    /// What a partial opt-out ("please stop texting me") withdraws; default
    /// `["marketing"]`; else at least one.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub partial_opt_out: Option<Vec<Purpose>>,
}

/// The settings as stored: secrets sealed (hex of nonce ‖ ciphertext ‖ tag).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredSettings {
    pub whatsapp: Option<StoredWhatsApp>,
    pub twilio: Option<StoredTwilio>,
    pub opt_out_keywords: Vec<String>,
    pub partial_opt_out: Vec<Purpose>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredWhatsApp {
    pub app_secret: String,
    pub previous_app_secret: Option<String>,
    pub verify_token: String,
    pub phone_numbers: Vec<PhoneNumber>,
    pub opt_in: Vec<OptInMatch>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredTwilio {
    pub auth_token: String,
    pub secondary_auth_token: Option<String>,
    pub account_sid: String,
    pub webhook_url: String,
    pub numbers: Vec<String>,
    pub opt_in: Vec<OptInMatch>,
}

/// What `GET` shows: every secret null, with whether it is set.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelSettingsView {
    pub whatsapp: Option<WhatsAppView>,
    pub twilio: Option<TwilioView>,
    pub opt_out_keywords: Vec<String>,
    pub partial_opt_out: Vec<Purpose>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WhatsAppView {
    /// Always null: secrets are never returned.
    pub app_secret: Option<String>,
    pub app_secret_set: bool,
    pub previous_app_secret: Option<String>,
    pub previous_app_secret_set: bool,
    pub verify_token: Option<String>,
    pub verify_token_set: bool,
    pub phone_numbers: Vec<PhoneNumber>,
    pub opt_in: Vec<OptInMatch>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TwilioView {
    pub auth_token: Option<String>,
    pub auth_token_set: bool,
    pub secondary_auth_token: Option<String>,
    pub secondary_auth_token_set: bool,
    pub account_sid: String,
    pub webhook_url: String,
    pub numbers: Vec<String>,
    pub opt_in: Vec<OptInMatch>,
}

impl StoredSettings {
    pub fn view(&self) -> ChannelSettingsView {
        ChannelSettingsView {
            whatsapp: self.whatsapp.as_ref().map(|w| WhatsAppView {
                app_secret: None,
                app_secret_set: true,
                previous_app_secret: None,
                previous_app_secret_set: w.previous_app_secret.is_some(),
                verify_token: None,
                verify_token_set: true,
                phone_numbers: w.phone_numbers.clone(),
                opt_in: w.opt_in.clone(),
            }),
            twilio: self.twilio.as_ref().map(|t| TwilioView {
                auth_token: None,
                auth_token_set: true,
                secondary_auth_token: None,
                secondary_auth_token_set: t.secondary_auth_token.is_some(),
                account_sid: t.account_sid.clone(),
                webhook_url: t.webhook_url.clone(),
                numbers: t.numbers.clone(),
                opt_in: t.opt_in.clone(),
            }),
            opt_out_keywords: self.opt_out_keywords.clone(),
            partial_opt_out: self.partial_opt_out.clone(),
        }
    }

    /// The business numbers these settings claim.
    pub fn numbers(&self) -> Vec<ChannelNumber> {
        let whatsapp = self.whatsapp.iter().flat_map(|w| {
            w.phone_numbers.iter().map(|p| ChannelNumber {
                kind: WHATSAPP_PHONE_NUMBER_ID,
                value: p.id.clone(),
            })
        });
        let twilio = self.twilio.iter().flat_map(|t| {
            t.numbers.iter().map(|n| ChannelNumber {
                kind: TWILIO_NUMBER,
                value: n.clone(),
            })
        });
        whatsapp.chain(twilio).collect()
    }

    /// The tenant's own opt-out keywords, indexed.
    pub fn own_keywords(&self) -> OwnKeywords {
        OwnKeywords::new(self.opt_out_keywords.iter().map(String::as_str))
    }
}

/// A sealed secret's place: bound to its tenant and its name.
fn secret_aad(tenant: &str, name: &str) -> Vec<u8> {
    format!("consent-ledger/channel-secret/v1\n{tenant}\n{name}").into_bytes()
}

pub fn seal_secret(kek: &Sealer, tenant: &str, name: &str, secret: &str) -> String {
    kek.seal(secret.as_bytes(), &secret_aad(tenant, name))
}

/// The secret, or `None` when it does not open (another master key).
pub fn open_secret(kek: &Sealer, tenant: &str, name: &str, sealed: &str) -> Option<String> {
    kek.open(sealed, &secret_aad(tenant, name))
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// How a brand named in an opt-in match stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrandLookup {
    /// Active, with its stored spelling.
    Active(String),
    Retired,
    Unknown,
}

const MAX_SECRET: usize = 512;
/// The shortest secret accepted: Meta's app secrets and Twilio's auth
/// tokens are 32 hex characters; a verify token is chosen by the company
/// and must not be guessable either.
pub const MIN_SECRET: usize = 16;
const MAX_MATCH: usize = 256;
const MAX_PROMPT: usize = 10_000;
const MAX_LIST: usize = 100;

fn check_secret(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: Option<&str>,
    stored: Option<&str>,
    clearable: bool,
) -> SecretChange {
    match value {
        None => match stored {
            Some(_) => SecretChange::Keep,
            None if clearable => SecretChange::Clear,
            None => {
                errors.push(FieldError::new(field, "required"));
                SecretChange::Keep
            }
        },
        Some("") if clearable => SecretChange::Clear,
        Some(v) if v.len() > MAX_SECRET || v.chars().any(char::is_control) => {
            errors.push(FieldError::new(field, "invalid_value"));
            SecretChange::Keep
        }
        Some(v) if v.chars().count() < MIN_SECRET => {
            errors.push(FieldError::new(field, "too_short"));
            SecretChange::Keep
        }
        Some(v) => SecretChange::Set(v.to_owned()),
    }
}

enum SecretChange {
    Keep,
    Clear,
    Set(String),
}

fn apply_secret(
    change: SecretChange,
    stored: Option<&String>,
    seal: &dyn Fn(&str) -> String,
) -> Option<String> {
    match change {
        SecretChange::Keep => stored.cloned(),
        SecretChange::Clear => None,
        SecretChange::Set(secret) => Some(seal(&secret)),
    }
}

fn is_twilio_sid(sid: &str) -> bool {
    sid.len() == 34 && sid.starts_with("AC") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_webhook_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    url.len() <= 2048
        && !url.contains(char::is_whitespace)
        && rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains('#'))
}

/// Checks the opt-in matches of one channel.
fn check_matches(
    errors: &mut Vec<FieldError>,
    prefix: &str,
    matches: &[OptInMatch],
    hearing: (LanguageSet, &OwnKeywords),
    brand: &dyn Fn(&str) -> BrandLookup,
) -> Vec<OptInMatch> {
    if matches.len() > MAX_LIST {
        errors.push(FieldError::new(prefix, "too_many"));
    }
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (i, m) in matches.iter().enumerate() {
        let field = |name: &str| format!("{prefix}[{i}].{name}");
        let normalized = normalize(&m.match_text);
        if m.match_text.is_empty() || m.match_text.len() > MAX_MATCH || normalized.is_empty() {
            errors.push(FieldError::new(field("match"), "invalid_value"));
        } else if vocabulary::collides(&m.match_text, hearing.0, hearing.1) {
            // A match that reads as an opt-out or a lift would contradict itself.
            errors.push(FieldError::new(field("match"), "reserved_word"));
        } else if seen.contains(&normalized) {
            errors.push(FieldError::new(field("match"), "duplicate"));
        }
        seen.push(normalized);
        if m.purposes.is_empty() {
            errors.push(FieldError::new(field("purposes"), "empty"));
        }
        if m.message_channels.as_ref().is_some_and(Vec::is_empty) {
            errors.push(FieldError::new(field("message_channels"), "empty"));
        }
        if m.prompt.is_empty() || m.prompt.chars().count() > MAX_PROMPT {
            errors.push(FieldError::new(field("prompt"), "invalid_length"));
        } else if !is_readable_text(&m.prompt) {
            errors.push(FieldError::new(field("prompt"), "control_character"));
        }
        let mut stored = m.clone();
        match brand(&m.brand) {
            BrandLookup::Active(name) => {
                if !contains_whole_word(&m.prompt, &name) {
                    errors.push(FieldError::new(field("prompt"), "brand_not_named"));
                }
                stored.brand = name;
            }
            BrandLookup::Retired => errors.push(FieldError::new(field("brand"), "brand_retired")),
            BrandLookup::Unknown => errors.push(FieldError::new(field("brand"), "unknown_brand")),
        }
        let mut purposes = stored.purposes.clone();
        purposes.sort_by_key(|p| p.as_str());
        purposes.dedup();
        stored.purposes = purposes;
        if let Some(channels) = stored.message_channels.as_mut() {
            channels.sort_by_key(|c| c.as_str());
            channels.dedup();
        }
        out.push(stored);
    }
    out
}

/// Checks one opt-in match by the rules of the channel settings' (an entry
/// point's phrase): the match as stored, or each field at fault (`match`,
/// `brand`, `purposes`, `prompt`).
pub fn check_opt_in_match(
    m: &OptInMatch,
    hearing: (LanguageSet, &OwnKeywords),
    brand: &dyn Fn(&str) -> BrandLookup,
) -> Result<OptInMatch, Vec<FieldError>> {
    let mut errors = Vec::new();
    let checked = check_matches(&mut errors, "m", std::slice::from_ref(m), hearing, brand);
    if !errors.is_empty() {
        return Err(errors
            .into_iter()
            .map(|e| FieldError::new(e.field.trim_start_matches("m[0]."), e.code))
            .collect());
    }
    Ok(checked.into_iter().next().expect("one match checked"))
}

/// What checking a `PUT` needs besides the input: where secrets are
/// sealed, the tenant's extra keywords, and its brands.
struct Applying<'a> {
    kek: &'a Sealer,
    tenant: &'a str,
    /// The tenant's languages and its own opt-out keywords.
    hearing: (LanguageSet, &'a OwnKeywords),
    brand: &'a dyn Fn(&str) -> BrandLookup,
}

impl Applying<'_> {
    /// Seals a new secret named `name`.
    fn seal(&self, name: &'static str) -> impl Fn(&str) -> String + '_ {
        move |secret: &str| seal_secret(self.kek, self.tenant, name, secret)
    }
}

/// Checks a `PUT` against what is stored and the tenant's brands; returns
/// the new stored form (secrets sealed) or every field error.
pub fn apply_input(
    input: ChannelSettingsInput,
    previous: Option<&StoredSettings>,
    kek: &Sealer,
    (tenant, languages): (&str, LanguageSet),
    brand: &dyn Fn(&str) -> BrandLookup,
) -> Result<StoredSettings, Vec<FieldError>> {
    let mut errors = Vec::new();
    let keywords = check_keywords(&mut errors, &input.opt_out_keywords, languages);
    let own = OwnKeywords::new(keywords.iter().map(String::as_str));
    let partial = check_partial(&mut errors, input.partial_opt_out);
    let at = Applying {
        kek,
        tenant,
        hearing: (languages, &own),
        brand,
    };
    let whatsapp = input.whatsapp.map(|w| {
        let before = previous.and_then(|p| p.whatsapp.as_ref());
        apply_whatsapp(&mut errors, w, before, &at)
    });
    let twilio = input.twilio.map(|t| {
        let before = previous.and_then(|p| p.twilio.as_ref());
        apply_twilio(&mut errors, t, before, &at)
    });
    if errors.is_empty() {
        Ok(StoredSettings {
            whatsapp,
            twilio,
            opt_out_keywords: keywords,
            partial_opt_out: partial,
        })
    } else {
        Err(errors)
    }
}

/// The tenant's own opt-out keywords, without repeats; the lift words of
/// its languages are reserved.
fn check_keywords(
    errors: &mut Vec<FieldError>,
    given: &[String],
    languages: LanguageSet,
) -> Vec<String> {
    if given.len() > MAX_LIST {
        errors.push(FieldError::new("opt_out_keywords", "too_many"));
    }
    let mut keywords: Vec<String> = Vec::new();
    for (i, k) in given.iter().enumerate() {
        let n = normalize(k);
        if n.is_empty() || k.len() > MAX_MATCH {
            errors.push(FieldError::new(
                format!("opt_out_keywords[{i}]"),
                "invalid_value",
            ));
        } else if vocabulary::is_lift_word(&n, languages) {
            errors.push(FieldError::new(
                format!("opt_out_keywords[{i}]"),
                "reserved_word",
            ));
        } else if !keywords.iter().any(|known| normalize(known) == n) {
            keywords.push(k.clone());
        }
    }
    keywords
}

/// `partial_opt_out`: a non-empty set of purposes (default marketing).
fn check_partial(errors: &mut Vec<FieldError>, given: Option<Vec<Purpose>>) -> Vec<Purpose> {
    match given {
        None => vec![Purpose::Marketing],
        Some(list) if list.is_empty() => {
            errors.push(FieldError::new("partial_opt_out", "empty"));
            Vec::new()
        }
        Some(mut list) => {
            list.sort_by_key(|p| p.as_str());
            list.dedup();
            list
        }
    }
}

fn apply_whatsapp(
    errors: &mut Vec<FieldError>,
    w: WhatsAppInput,
    before: Option<&StoredWhatsApp>,
    at: &Applying<'_>,
) -> StoredWhatsApp {
    let app_secret = check_secret(
        errors,
        "whatsapp.app_secret",
        w.app_secret.as_deref(),
        before.map(|b| b.app_secret.as_str()),
        false,
    );
    let previous_secret = check_secret(
        errors,
        "whatsapp.previous_app_secret",
        w.previous_app_secret.as_deref(),
        before.and_then(|b| b.previous_app_secret.as_deref()),
        true,
    );
    let verify_token = check_secret(
        errors,
        "whatsapp.verify_token",
        w.verify_token.as_deref(),
        before.map(|b| b.verify_token.as_str()),
        false,
    );
    if w.phone_numbers.is_empty() {
        errors.push(FieldError::new("whatsapp.phone_numbers", "empty"));
    }
    if w.phone_numbers.len() > MAX_LIST {
        errors.push(FieldError::new("whatsapp.phone_numbers", "too_many"));
    }
    for (i, p) in w.phone_numbers.iter().enumerate() {
        let valid =
            !p.id.is_empty() && p.id.len() <= 64 && p.id.bytes().all(|b| b.is_ascii_digit());
        if !valid {
            errors.push(FieldError::new(
                format!("whatsapp.phone_numbers[{i}].id"),
                "invalid_value",
            ));
        } else if w.phone_numbers[..i].iter().any(|q| q.id == p.id) {
            errors.push(FieldError::new(
                format!("whatsapp.phone_numbers[{i}].id"),
                "duplicate",
            ));
        }
        if p.display.as_ref().is_some_and(|d| d.len() > 64) {
            errors.push(FieldError::new(
                format!("whatsapp.phone_numbers[{i}].display"),
                "invalid_value",
            ));
        }
    }
    let opt_in = check_matches(errors, "whatsapp.opt_in", &w.opt_in, at.hearing, at.brand);
    StoredWhatsApp {
        app_secret: apply_secret(
            app_secret,
            before.map(|b| &b.app_secret),
            &at.seal("whatsapp.app_secret"),
        )
        .unwrap_or_default(),
        previous_app_secret: apply_secret(
            previous_secret,
            before.and_then(|b| b.previous_app_secret.as_ref()),
            &at.seal("whatsapp.previous_app_secret"),
        ),
        verify_token: apply_secret(
            verify_token,
            before.map(|b| &b.verify_token),
            &at.seal("whatsapp.verify_token"),
        )
        .unwrap_or_default(),
        phone_numbers: w.phone_numbers,
        opt_in,
    }
}

fn apply_twilio(
    errors: &mut Vec<FieldError>,
    t: TwilioInput,
    before: Option<&StoredTwilio>,
    at: &Applying<'_>,
) -> StoredTwilio {
    let auth_token = check_secret(
        errors,
        "twilio.auth_token",
        t.auth_token.as_deref(),
        before.map(|b| b.auth_token.as_str()),
        false,
    );
    let secondary = check_secret(
        errors,
        "twilio.secondary_auth_token",
        t.secondary_auth_token.as_deref(),
        before.and_then(|b| b.secondary_auth_token.as_deref()),
        true,
    );
    if !is_twilio_sid(&t.account_sid) {
        errors.push(FieldError::new("twilio.account_sid", "invalid_value"));
    }
    if !is_webhook_url(&t.webhook_url) {
        errors.push(FieldError::new("twilio.webhook_url", "invalid_value"));
    }
    if t.numbers.is_empty() {
        errors.push(FieldError::new("twilio.numbers", "empty"));
    }
    if t.numbers.len() > MAX_LIST {
        errors.push(FieldError::new("twilio.numbers", "too_many"));
    }
    let mut numbers: Vec<String> = Vec::new();
    for (i, n) in t.numbers.iter().enumerate() {
        match E164::parse(n, None, None) {
            Ok(e164) if numbers.iter().any(|known| known == e164.as_str()) => {
                errors.push(FieldError::new(format!("twilio.numbers[{i}]"), "duplicate"))
            }
            Ok(e164) => numbers.push(e164.as_str().to_owned()),
            Err(e) => errors.push(FieldError::new(format!("twilio.numbers[{i}]"), e.code())),
        }
    }
    let opt_in = check_matches(errors, "twilio.opt_in", &t.opt_in, at.hearing, at.brand);
    StoredTwilio {
        auth_token: apply_secret(
            auth_token,
            before.map(|b| &b.auth_token),
            &at.seal("twilio.auth_token"),
        )
        .unwrap_or_default(),
        secondary_auth_token: apply_secret(
            secondary,
            before.and_then(|b| b.secondary_auth_token.as_ref()),
            &at.seal("twilio.secondary_auth_token"),
        ),
        account_sid: t.account_sid,
        webhook_url: t.webhook_url,
        numbers,
        opt_in,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterKey;

    fn brands(name: &str) -> BrandLookup {
        match name.to_lowercase().as_str() {
            "makro" => BrandLookup::Active("Makro".into()),
            "oldco" => BrandLookup::Retired,
            _ => BrandLookup::Unknown,
        }
    }

    fn input(json: serde_json::Value) -> ChannelSettingsInput {
        serde_json::from_value(json).expect("valid input shape")
    }

    fn codes(errors: &[FieldError]) -> Vec<(String, &'static str)> {
        errors.iter().map(|e| (e.field.clone(), e.code)).collect()
    }

    #[test]
    fn secrets_are_sealed_kept_and_cleared() {
        let master = MasterKey::from_bytes([7; 32]);
        let kek = master.kek();
        let first = apply_input(
            input(
                serde_json::json!({"whatsapp":{"app_secret":"app-secret-one-0001","previous_app_secret":"app-secret-zero-000",
                "verify_token":"verify-token-0001","phone_numbers":[{"id":"106540352242922"}]}}),
            ),
            None,
            &kek,
            ("makro", LanguageSet::default()),
            &brands,
        )
        .expect("valid");
        let wa = first.whatsapp.clone().expect("whatsapp");
        assert_ne!(wa.app_secret, "app-secret-one-0001");
        assert_eq!(
            open_secret(&kek, "makro", "whatsapp.app_secret", &wa.app_secret).as_deref(),
            Some("app-secret-one-0001")
        );
        // Sealed to its tenant and name.
        assert_eq!(
            open_secret(&kek, "other", "whatsapp.app_secret", &wa.app_secret),
            None
        );
        assert_eq!(
            open_secret(&kek, "makro", "whatsapp.verify_token", &wa.app_secret),
            None
        );
        let second = apply_input(
            input(serde_json::json!({"whatsapp":{"previous_app_secret":"",
                "phone_numbers":[{"id":"106540352242922"}]}})),
            Some(&first),
            &kek,
            ("makro", LanguageSet::default()),
            &brands,
        )
        .expect("valid");
        let wa2 = second.whatsapp.expect("whatsapp");
        assert_eq!(wa2.app_secret, wa.app_secret, "omitted secrets are kept");
        assert_eq!(wa2.verify_token, wa.verify_token);
        assert_eq!(
            wa2.previous_app_secret, None,
            "\"\" clears the previous secret"
        );
        assert_eq!(second.partial_opt_out, vec![Purpose::Marketing]);
    }

    #[test]
    fn the_rules_of_section_7() {
        let master = MasterKey::from_bytes([7; 32]);
        let errors = apply_input(
            input(serde_json::json!({
                "whatsapp":{"phone_numbers":[{"id":"12a"}],
                    "opt_in":[{"match":"START","brand":"Makro","purposes":["marketing"],"prompt":"Makro offers"},
                              {"match":"JOIN","brand":"Makro","purposes":["marketing"],"prompt":"Get offers"},
                              {"match":"OLD","brand":"OldCo","purposes":["marketing"],"prompt":"OldCo"},
                              {"match":"X","brand":"Nope","purposes":[],"prompt":"Nope"},
                              {"match":"ARRET","brand":"Makro","purposes":["utility"],"prompt":"Makro"},
                              {"match":"DONT STOP","brand":"Makro","purposes":["utility"],"prompt":"Makro"}]},
                "twilio":{"account_sid":"AC123","webhook_url":"ftp://x","numbers":["+1"]},
                "opt_out_keywords":["ARRÊT","yes"],
                "partial_opt_out":[]})),
            None,
            &master.kek(),
            ("makro", LanguageSet::default()),
            &brands,
        )
        .expect_err("invalid");
        let got = codes(&errors);
        for expected in [
            ("opt_out_keywords[1]", "reserved_word"),
            ("partial_opt_out", "empty"),
            ("whatsapp.app_secret", "required"),
            ("whatsapp.verify_token", "required"),
            ("whatsapp.phone_numbers[0].id", "invalid_value"),
            ("whatsapp.opt_in[0].match", "reserved_word"),
            ("whatsapp.opt_in[1].prompt", "brand_not_named"),
            ("whatsapp.opt_in[2].brand", "brand_retired"),
            ("whatsapp.opt_in[3].brand", "unknown_brand"),
            ("whatsapp.opt_in[3].purposes", "empty"),
            ("whatsapp.opt_in[4].match", "reserved_word"),
            ("whatsapp.opt_in[5].match", "reserved_word"),
            ("twilio.auth_token", "required"),
            ("twilio.account_sid", "invalid_value"),
            ("twilio.webhook_url", "invalid_value"),
        ] {
            assert!(
                got.contains(&(expected.0.to_owned(), expected.1)),
                "{expected:?} missing from {got:?}"
            );
        }
        assert!(got.iter().any(|(f, _)| f == "twilio.numbers[0]"), "{got:?}");
    }

    #[test]
    fn twilio_settings_are_normalised() {
        let master = MasterKey::from_bytes([7; 32]);
        let stored = apply_input(
            input(serde_json::json!({"twilio":{"auth_token":"twilio-token-000001","account_sid":"AC0123456789abcdef0123456789abcdef",
                "webhook_url":"https://hooks.example.com/webhooks/twilio/makro","numbers":["+49 30 123456"],
                "opt_in":[{"match":"Join","brand":"makro","purposes":["utility","marketing","marketing"],
                           "message_channels":["sms"],"prompt":"Text JOIN for Makro offers"}]},
                "partial_opt_out":["utility","marketing"]})),
            None,
            &master.kek(),
            ("makro", LanguageSet::default()),
            &brands,
        )
        .expect("valid");
        let twilio = stored.twilio.as_ref().expect("twilio");
        assert_eq!(twilio.numbers, vec!["+4930123456".to_owned()]);
        assert_eq!(
            twilio.opt_in[0].brand, "Makro",
            "the brand's stored spelling"
        );
        assert_eq!(
            twilio.opt_in[0].purposes,
            vec![Purpose::Marketing, Purpose::Utility]
        );
        assert_eq!(
            stored.partial_opt_out,
            vec![Purpose::Marketing, Purpose::Utility]
        );
        let view = serde_json::to_value(stored.view()).expect("json");
        assert_eq!(view["twilio"]["auth_token"], serde_json::Value::Null);
        assert_eq!(view["twilio"]["auth_token_set"], true);
        assert_eq!(view["twilio"]["secondary_auth_token_set"], false);
        assert!(
            !view.to_string().contains(&twilio.auth_token),
            "no sealed value shown"
        );
    }
}
