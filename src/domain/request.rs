//! What a recording request must be (docs/recording.md), parsed once into
//! what the store appends: opt-ins, opt-outs and interactions. The rules
//! that need no stored state run in `parse`; the clock rules run when the
//! write runs (after an idempotent replay could have answered); the brand
//! is checked against the one the store finds.

use super::decision::Window;
use super::document::is_document_id;
use super::evidence::{self, Evidence, EvidenceFor, FieldError};
use super::identity::Identity;
use super::ids::BrandId;
use super::openapi;
use super::person::names_a_person;
use super::problem::{ErrorCode, Invalid};
use super::purpose::{CaptureChannel, MessageChannel, MessageChannelSet, Purpose, PurposeSet};
use super::record::{OptInDraft, OptInRecord, OptOutRecord};
use super::text::{contains_whole_word, is_readable_text, is_well_formed_language_tag, nfc};
use super::time::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How far in the future a capture time may be (clock skew).
const FUTURE_SKEW_MILLIS: i64 = 60_000;
/// How old an opt-in may be without `backfill`.
const MAX_AGE_DAYS: i64 = 30;
/// How old an interaction may be.
const INTERACTION_MAX_AGE_MILLIS: i64 = 24 * 3600 * 1000;
/// Longest consent text, in characters.
const MAX_CONSENT_TEXT_CHARS: usize = 10_000;

names_a_person! {
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct OptInRequest {
        #[schema(schema_with = openapi::opt_in_channel)]
        pub channel: CaptureChannel,
        #[schema(schema_with = openapi::active_brand)]
        pub company_name_shown: String,
        #[schema(schema_with = openapi::consent_text)]
        pub consent_text: String,
        /// At least one; repeats count once.
        #[schema(min_items = 1)]
        pub purposes: Vec<Purpose>,
        /// Default `["whatsapp"]`; at least one. Not `sms` with a `user_id`.
        #[serde(default)]
        #[schema(min_items = 1)]
        pub message_channels: Option<Vec<MessageChannel>>,
        /// When the person acted: at most 60 s after the server's clock, and
        /// not older than 30 days unless `backfill` (422 `captured_at_in_future`,
        /// `captured_at_too_old`).
        pub captured_at: Timestamp,
        #[serde(default)]
        #[schema(schema_with = openapi::language_tag)]
        pub language: Option<String>,
        /// Importing an older record (admin only, else 403).
        #[serde(default)]
        pub backfill: bool,
        /// A flat object of strings (each 1-10,000 characters, no control
        /// characters but tabs and line breaks) whose keys come only from its
        /// `channel`'s row (docs/recording.md); the request's `oneOf` gives each row.
        #[schema(value_type = Object, example = json!({"page_url":"https://shop.example/newsletter","ip":"203.0.113.7","user_agent":"Mozilla/5.0"}))]
        pub evidence: serde_json::Value,
    }
}

names_a_person! {
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct OptOutRequest {
        /// A capture channel, or `api`.
        pub channel: CaptureChannel,
        /// Default: all three; else at least one.
        #[serde(default)]
        #[schema(min_items = 1)]
        pub purposes: Option<Vec<Purpose>>,
        /// Default: both; else at least one.
        #[serde(default)]
        #[schema(min_items = 1)]
        pub message_channels: Option<Vec<MessageChannel>>,
        /// When the person withdrew: at most 60 s after the server's clock
        /// (never refused for age).
        pub captured_at: Timestamp,
        /// Importing an older record (admin only, else 403).
        #[serde(default)]
        pub backfill: bool,
        /// A flat object of strings whose keys come only from its `channel`'s
        /// row (docs/recording.md); the request's `oneOf` gives each row.
        #[schema(value_type = Object, example = json!({"reason":"asked the call centre"}))]
        pub evidence: serde_json::Value,
    }
}

names_a_person! {
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct InteractionRequest {
        /// Without it, the window counts for every business number.
        #[serde(default)]
        #[schema(schema_with = openapi::phone_number_id)]
        pub business_phone_number_id: Option<String>,
        /// When the person's message arrived (default now); not after the
        /// server's clock and at most 24 h old (422 `received_at_in_future`,
        /// `received_at_too_old`).
        #[serde(default)]
        pub received_at: Option<Timestamp>,
    }
}

/// The window after an interaction; `user_id` in place of `number` when
/// the request named the person by user id.
#[derive(Debug, Serialize, ToSchema)]
pub struct InteractionRecorded {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub window: Window,
}

/// What the one who sends a request brings that the rules depend on.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// The tenant's `default_region`, for national numbers.
    pub default_region: Option<&'a str>,
    /// Admins may import older records (`backfill`).
    pub may_backfill: bool,
}

/// User ids are WhatsApp's: an opt-in or a check by `user_id` may not name
/// the `sms` channel (docs/identities.md).
pub fn check_user_id_channels(identity: &Identity, field: &str, sms: bool) -> Result<(), Invalid> {
    if sms && matches!(identity, Identity::User(_)) {
        return Err(Invalid::request_field(
            field,
            "sms_needs_number",
            "a `user_id` is WhatsApp's: SMS needs a `number`",
        ));
    }
    Ok(())
}

/// A business phone number id: 1-64 visible ASCII characters.
pub fn check_phone_number_id(id: Option<&str>) -> Result<(), Invalid> {
    match id {
        Some(id)
            if id.is_empty()
                || id.len() > 64
                || !id.bytes().all(|b| (0x21..=0x7e).contains(&b)) =>
        {
            Err(Invalid::request_field(
                "business_phone_number_id",
                "invalid_value",
                "a business phone number id is 1 to 64 visible ASCII characters",
            ))
        }
        _ => Ok(()),
    }
}

/// The brand the store found for `company_name_shown`.
#[derive(Debug, Clone)]
pub struct FoundBrand {
    pub id: BrandId,
    pub name: String,
    pub retired: bool,
}

/// What an opt-in offers, written the same way in an opt-in request and
/// in a hosted form: the brand (after NFC), named as a whole word in a
/// readable consent text, at least one purpose and one message channel
/// (default WhatsApp).
#[derive(Debug, Clone)]
pub struct Offer {
    pub brand: String,
    pub purposes: PurposeSet,
    pub message_channels: MessageChannelSet,
}

impl Offer {
    /// Checks what an opt-in offers; `unnamed` says, in the request's own
    /// words, that the text does not name the brand (422
    /// `company_name_not_in_text`).
    pub fn check(
        brand: &str,
        consent_text: &str,
        purposes: &[Purpose],
        message_channels: Option<&[MessageChannel]>,
        unnamed: &str,
    ) -> Result<Offer, Invalid> {
        check_consent_text(consent_text)?;
        let purposes = purpose_set("purposes", purposes)?;
        let whatsapp = [MessageChannel::Whatsapp].into_iter().collect();
        let message_channels = channel_set("message_channels", message_channels, whatsapp)?;
        let brand = nfc(brand);
        if !contains_whole_word(consent_text, &brand) {
            return Err(Invalid::field(
                ErrorCode::CompanyNameNotInText,
                "consent_text",
                "company_name_missing",
                unnamed,
            ));
        }
        Ok(Offer {
            brand,
            purposes,
            message_channels,
        })
    }
}

impl OptInRequest {
    /// Every rule that needs no stored state (docs/recording.md).
    pub fn parse(self, requester: Requester<'_>) -> Result<OptInDraft, Invalid> {
        let identity = self.identity(requester.default_region)?;
        if !self.channel.can_capture_opt_in() {
            return Err(Invalid::request_field(
                "channel",
                "invalid_value",
                "an opt-in's channel is sms, web, whatsapp, ivr or paper",
            ));
        }
        let offer = Offer::check(
            &self.company_name_shown,
            &self.consent_text,
            &self.purposes,
            self.message_channels.as_deref(),
            "the consent text must contain `company_name_shown` as a whole word",
        )?;
        let sms = offer.message_channels.contains(MessageChannel::Sms);
        check_user_id_channels(&identity, "message_channels", sms)?;
        check_language(self.language.as_deref())?;
        check_backfill(requester, self.backfill)?;
        let evidence = check_evidence(EvidenceFor::OptIn, self.channel, &self.evidence)?;
        check_signed_on(&evidence, self.captured_at)?;
        check_document_id(&evidence)?;
        Ok(OptInDraft {
            identity,
            channel: self.channel,
            company_name_shown: offer.brand,
            consent_text: self.consent_text,
            purposes: offer.purposes,
            message_channels: offer.message_channels,
            captured_at: self.captured_at,
            language: self.language,
            backfill: self.backfill,
            evidence,
        })
    }
}

impl OptInDraft {
    /// The clock rules: not more than 60 s ahead, not older than 30 days
    /// unless backfilled.
    pub fn check_clock(&self, now: Timestamp) -> Result<(), Invalid> {
        check_not_future(self.captured_at, now)?;
        if !self.backfill && self.captured_at < now.plus_days(-MAX_AGE_DAYS) {
            return Err(Invalid::field(
                ErrorCode::CapturedAtTooOld,
                "captured_at",
                "too_old",
                "`captured_at` is older than 30 days; import it with `backfill: true` and an admin key",
            ));
        }
        Ok(())
    }

    /// The opt-in to append, given the brand the store found for its
    /// `company_name_shown` (any status, compared after case folding).
    pub fn into_record(self, brand: Option<FoundBrand>) -> Result<OptInRecord, Invalid> {
        let brand = brand
            .filter(|b| b.name == self.company_name_shown)
            .ok_or_else(|| {
                Invalid::field(
                    ErrorCode::UnknownBrand,
                    "company_name_shown",
                    "unknown_brand",
                    "`company_name_shown` must be exactly (after NFC) a brand of this tenant",
                )
            })?;
        if brand.retired {
            return Err(brand_retired());
        }
        Ok(OptInRecord {
            draft: self,
            brand_id: brand.id,
            confirmation: None,
        })
    }
}

/// 422 `brand_retired`: a retired brand takes no new opt-ins.
pub fn brand_retired() -> Invalid {
    Invalid::field(
        ErrorCode::BrandRetired,
        "company_name_shown",
        "brand_retired",
        "this brand is retired and takes no new opt-ins",
    )
}

impl OptOutRequest {
    /// Every rule that needs no stored state; opt-outs are never refused
    /// for age. The clock rule: [`check_not_future`].
    pub fn parse(self, requester: Requester<'_>) -> Result<OptOutRecord, Invalid> {
        let identity = self.identity(requester.default_region)?;
        let purposes = match &self.purposes {
            Some(list) => purpose_set("purposes", list)?,
            None => PurposeSet::all(),
        };
        let message_channels = channel_set(
            "message_channels",
            self.message_channels.as_deref(),
            MessageChannelSet::all(),
        )?;
        check_backfill(requester, self.backfill)?;
        let evidence = check_evidence(EvidenceFor::OptOut, self.channel, &self.evidence)?;
        check_signed_on(&evidence, self.captured_at)?;
        check_document_id(&evidence)?;
        Ok(OptOutRecord {
            identity,
            channel: self.channel,
            purposes,
            message_channels,
            captured_at: self.captured_at,
            backfill: self.backfill,
            evidence,
            lift_class: None,
        })
    }
}

/// An interaction whose request holds.
#[derive(Debug, Clone)]
pub struct Interaction {
    pub identity: Identity,
    pub business_phone_number_id: Option<String>,
    received_at: Option<Timestamp>,
}

impl InteractionRequest {
    pub fn parse(self, requester: Requester<'_>) -> Result<Interaction, Invalid> {
        let identity = self.identity(requester.default_region)?;
        check_phone_number_id(self.business_phone_number_id.as_deref())?;
        Ok(Interaction {
            identity,
            business_phone_number_id: self.business_phone_number_id,
            received_at: self.received_at,
        })
    }
}

impl Interaction {
    /// When the message arrived: `received_at` (default now), not after
    /// the server's clock (no tolerance: omit it to mean now) and at most
    /// 24 hours old (an older message opens no window any more).
    pub fn received_at(&self, now: Timestamp) -> Result<Timestamp, Invalid> {
        let received_at = self.received_at.unwrap_or(now);
        if received_at > now {
            return Err(Invalid::field(
                ErrorCode::ReceivedAtInFuture,
                "received_at",
                "in_future",
                "`received_at` is after the server's clock (no tolerance); omit it to mean now",
            ));
        }
        if received_at < now.plus_millis(-INTERACTION_MAX_AGE_MILLIS) {
            return Err(Invalid::field(
                ErrorCode::ReceivedAtTooOld,
                "received_at",
                "too_old",
                "`received_at` is more than 24 hours ago: that message opens no window any more",
            ));
        }
        Ok(received_at)
    }
}

/// `captured_at` at most 60 seconds after the server's clock.
pub fn check_not_future(captured_at: Timestamp, now: Timestamp) -> Result<(), Invalid> {
    if captured_at > now.plus_millis(FUTURE_SKEW_MILLIS) {
        return Err(Invalid::field(
            ErrorCode::CapturedAtInFuture,
            "captured_at",
            "in_future",
            "`captured_at` is more than 60 seconds after the server's clock",
        ));
    }
    Ok(())
}

pub fn check_consent_text(text: &str) -> Result<(), Invalid> {
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_CONSENT_TEXT_CHARS {
        return Err(Invalid::request_field(
            "consent_text",
            if chars == 0 { "empty" } else { "too_long" },
            "the consent text is 1 to 10,000 characters",
        ));
    }
    if !is_readable_text(text) {
        return Err(Invalid::request_field(
            "consent_text",
            "control_character",
            "the consent text holds no control characters but line breaks and tabs",
        ));
    }
    Ok(())
}

fn check_language(tag: Option<&str>) -> Result<(), Invalid> {
    match tag {
        Some(tag) if !is_well_formed_language_tag(tag) => Err(Invalid::request_field(
            "language",
            "invalid_language_tag",
            "`language` is a BCP 47 tag such as en or pt-BR",
        )),
        _ => Ok(()),
    }
}

fn check_backfill(requester: Requester<'_>, backfill: bool) -> Result<(), Invalid> {
    if backfill && !requester.may_backfill {
        return Err(Invalid::new(
            ErrorCode::Forbidden,
            "`backfill: true` needs a key with the admin role",
        ));
    }
    Ok(())
}

pub fn purpose_set(field: &str, list: &[Purpose]) -> Result<PurposeSet, Invalid> {
    if list.is_empty() {
        return Err(Invalid::request_field(
            field,
            "empty",
            format!("`{field}` needs at least one purpose"),
        ));
    }
    Ok(list.iter().copied().collect())
}

pub fn channel_set(
    field: &str,
    list: Option<&[MessageChannel]>,
    default: MessageChannelSet,
) -> Result<MessageChannelSet, Invalid> {
    match list {
        None => Ok(default),
        Some([]) => Err(Invalid::request_field(
            field,
            "empty",
            format!("`{field}` needs at least one message channel"),
        )),
        Some(list) => Ok(list.iter().copied().collect()),
    }
}

fn check_evidence(
    kind: EvidenceFor,
    channel: CaptureChannel,
    raw: &serde_json::Value,
) -> Result<Evidence, Invalid> {
    evidence::validate(kind, channel, raw).map_err(|errors| Invalid {
        code: ErrorCode::InvalidEvidence,
        detail: format!("the evidence does not fit the `{channel}` row; see errors"),
        errors,
    })
}

/// For paper, `captured_at` is when the form was signed: `signed_on` must
/// be its date (a day either way for time zones).
fn check_signed_on(evidence: &Evidence, captured_at: Timestamp) -> Result<(), Invalid> {
    let Some(signed_on) = evidence.get("signed_on") else {
        return Ok(());
    };
    let signed = chrono::NaiveDate::parse_from_str(signed_on, "%Y-%m-%d").ok();
    let apart = signed.map(|d| (d - captured_at.date()).num_days().abs());
    if apart.is_none_or(|days| days > 1) {
        return Err(Invalid {
            code: ErrorCode::InvalidEvidence,
            detail:
                "`evidence.signed_on` must be the date of `captured_at` (when the form was signed)"
                    .into(),
            errors: vec![FieldError::new(
                "evidence.signed_on",
                "not_captured_at_date",
            )],
        });
    }
    Ok(())
}

/// Documents are not stored yet: no `document_id` can name one.
/// A `document_id` in the evidence must look like one (`doc_<12 hex>`);
/// whether the tenant has it, with that hash, the store checks when it
/// appends (docs/recording.md).
fn check_document_id(evidence: &Evidence) -> Result<(), Invalid> {
    match evidence.get("document_id") {
        Some(id) if !is_document_id(id) => Err(unknown_document()),
        _ => Ok(()),
    }
}

/// 422 `unknown_document`: the evidence names a document the tenant does
/// not have.
pub fn unknown_document() -> Invalid {
    Invalid::field(
        ErrorCode::UnknownDocument,
        "evidence.document_id",
        "unknown_document",
        "no document with this `document_id` was uploaded to this tenant",
    )
}

/// 422 `invalid_evidence`: the named document's hash is not
/// `document_sha256`.
pub fn document_mismatch() -> Invalid {
    Invalid::field(
        ErrorCode::InvalidEvidence,
        "evidence.document_sha256",
        "document_mismatch",
        "`document_sha256` must be the SHA-256 of the document `document_id` names",
    )
}
