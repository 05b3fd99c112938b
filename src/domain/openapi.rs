//! What the request parsers accept, as OpenAPI schemas (`schema_with` of
//! request fields, and the evidence rows), so that generated clients and
//! fuzzers know the rules before they send. Each pattern names the function
//! whose rule it mirrors and accepts everything that function accepts; where
//! the function is stricter than a pattern can say (the numbering plan, the
//! NFC of a brand, the clock), the description says so. The tests below run
//! the patterns against those functions.
//!
//! Patterns are ECMA-262, as OpenAPI 3.1 says, and use no look-behind; only
//! the form id uses a look-ahead.

use super::evidence::{self, EvidenceFor, Shape};
use super::number::Region;
use super::purpose::CaptureChannel;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, Array, ArrayBuilder, Object, ObjectBuilder,
    Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::RefOr;

/// Unicode White_Space (`char::is_whitespace`, what `str::trim` strips), as
/// the inside of a character class.
macro_rules! whitespace {
    () => {
        r"\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}

/// Unicode Cc (`char::is_control`), as the inside of a character class.
macro_rules! control {
    () => {
        r"\x00-\x1f\x7f-\x9f"
    };
}

/// `E164::parse`: after trimming whitespace, digits (one at least),
/// spaces and `()./-`, with `+` only first, at most 64 characters (the
/// pattern lets up to 128 through). The numbering plan decides the rest.
pub const NUMBER_PATTERN: &str = concat!(
    "^[",
    whitespace!(),
    r"]*\+?[ ()./-]{0,63}[0-9][0-9 ()./-]{0,63}[",
    whitespace!(),
    "]*$"
);
/// `E164::parse` without a region (a provider's numbers): as
/// [`NUMBER_PATTERN`], with the `+`.
pub const INTERNATIONAL_NUMBER_PATTERN: &str = concat!(
    "^[",
    whitespace!(),
    r"]*\+[ ()./-]{0,62}[0-9][0-9 ()./-]{0,63}[",
    whitespace!(),
    "]*$"
);
/// What the service stores and answers: `E164::from_canonical`.
pub const E164_PATTERN: &str = r"^\+[1-9][0-9]{1,14}$";
/// `identity::is_user_id`.
pub const USER_ID_PATTERN: &str = r"^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$";
/// `access::is_tenant_id`.
pub const TENANT_ID_PATTERN: &str = "^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$";
/// `FormInput::parse`: a tenant id, but not the opt-out page's.
pub const FORM_ID_PATTERN: &str = "^(?!opt-out$)[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$";
/// `access::check_brand_name`: no control character, no whitespace first or
/// last (whitespace and control characters are the same after NFC).
pub const BRAND_NAME_PATTERN: &str = concat!(
    "^[^",
    control!(),
    whitespace!(),
    "](?:[^",
    control!(),
    "]*[^",
    control!(),
    whitespace!(),
    "])?$"
);
/// `text::is_readable_text`: no control character but tabs and line breaks.
pub const READABLE_TEXT_PATTERN: &str = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$";
/// No control character at all (`char::is_control`).
pub const NO_CONTROL_PATTERN: &str = concat!("^[^", control!(), "]*$");
/// `request::check_phone_number_id`: 1 to 64 visible ASCII characters.
pub const PHONE_NUMBER_ID_PATTERN: &str = "^[!-~]{1,64}$";
/// `document::is_document_id`.
pub const DOCUMENT_ID_PATTERN: &str = "^doc_[0-9a-f]{12}$";
/// `evidence::is_lower_hex_sha256`.
pub const SHA256_PATTERN: &str = "^[0-9a-f]{64}$";
/// An evidence `signed_on`: `YYYY-MM-DD` (a real date).
pub const DATE_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";
/// An evidence `page_url`: `http(s)://`, a host first, no whitespace.
pub const PAGE_URL_PATTERN: &str = concat!(
    "^https?://[^/",
    control!(),
    whitespace!(),
    "][^",
    control!(),
    whitespace!(),
    "]*$"
);

/// `form::is_https_url`: `https://`, a host first, visible ASCII but quotes,
/// angle brackets, backslashes and backticks.
pub const PRIVACY_URL_PATTERN: &str = r"^https://[!#-&(-.0-;=?-\[\]-_a-~][!#-&(-;=?-\[\]-_a-~]*$";
/// `form::is_origin`: `https://host[:port]`, nothing more.
pub const ORIGIN_PATTERN: &str = r"^https://[A-Za-z0-9.:-]{1,255}$";

/// `settings::is_webhook_url`: `http(s)://`, a host first, no whitespace,
/// no fragment.
pub const WEBHOOK_URL_PATTERN: &str = concat!(
    "^https?://[^/#",
    whitespace!(),
    "][^#",
    whitespace!(),
    "]*$"
);

/// `vocabulary::normalize` keeps letters and digits only: a keyword or a
/// match holds an ASCII letter or digit, or a character beyond ASCII
/// (unanchored: somewhere).
pub const KEYWORD_PATTERN: &str = r"[^\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]";

/// Longest brand name as sent: 100 characters after NFC, and NFC composes
/// at most four code points into one.
pub const BRAND_NAME_MAX_CODE_POINTS: usize = 400;

/// `Region::parse`: the ISO 3166 alpha-2 codes the numbering plan knows,
/// in any case (`^(?:[Aa][CDEF…cdef…]|[Bb][…]|…)$`).
pub fn region_pattern() -> String {
    let mut alternatives = Vec::new();
    for first in b'A'..=b'Z' {
        let seconds: String = (b'A'..=b'Z')
            .filter(|second| Region::parse(&String::from_utf8_lossy(&[first, *second])).is_ok())
            .map(char::from)
            .collect();
        if seconds.is_empty() {
            continue;
        }
        let (upper, lower) = (char::from(first), char::from(first.to_ascii_lowercase()));
        let second_lower = seconds.to_ascii_lowercase();
        alternatives.push(format!("[{upper}{lower}][{seconds}{second_lower}]"));
    }
    format!("^(?:{})$", alternatives.join("|"))
}

/// `text` with each ASCII letter as a class of its two cases.
fn any_case(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='z' => format!("[{}{c}]", c.to_ascii_uppercase()),
            _ => c.to_string(),
        })
        .collect()
}

/// `text::is_well_formed_language_tag`: RFC 5646's grammar (section 2.1),
/// in any case: a language (with up to three extended subtags), script,
/// region, variants, extensions and private use; or private use alone; or
/// one of the irregular grandfathered tags.
pub fn language_tag_pattern() -> String {
    const A: &str = "[A-Za-z]";
    const AN: &str = "[A-Za-z0-9]";
    let x = any_case("x");
    let language = format!("(?:{A}{{2,3}}(?:-{A}{{3}}){{0,3}}|{A}{{4,8}})");
    let variant = format!("(?:{AN}{{5,8}}|[0-9]{AN}{{3}})");
    let extension = format!("[0-9A-WYZa-wyz](?:-{AN}{{2,8}})+");
    let private = format!("{x}(?:-{AN}{{1,8}})+");
    let irregular: Vec<String> = super::text::IRREGULAR_TAGS
        .iter()
        .map(|t| any_case(t))
        .collect();
    format!(
        "^(?:{language}(?:-{A}{{4}})?(?:-(?:{A}{{2}}|[0-9]{{3}}))?(?:-{variant})*(?:-{extension})*\
         (?:-{private})?|{private}|{})$",
        irregular.join("|")
    )
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn nullable_string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

/// A request's `number` (docs/identities.md).
pub fn number() -> Object {
    nullable_string()
        .pattern(Some(NUMBER_PATTERN))
        .description(Some(
            "E.164 (`^\\+[1-9][0-9]{1,14}$`, the form the service stores and answers), or a \
             national number with `region` (or the tenant's `default_region`); spaces and \
             `()./-` are ignored. The numbering plan decides validity: 422 `invalid_number` \
             with a reason. Or name the person by `user_id` instead (exactly one of the two).",
        ))
        .examples(["+4915112345678"])
        .build()
}

/// A request's `user_id` (docs/identities.md).
pub fn user_id() -> Object {
    nullable_string()
        .pattern(Some(USER_ID_PATTERN))
        .description(Some(
            "A WhatsApp business-scoped user id (a parent id has `ENT.` after the country), \
             instead of `number`; never with `region`.",
        ))
        .examples(["US.13491208655302741918"])
        .build()
}

/// A request's `region` (of a national `number`).
pub fn region() -> Object {
    nullable_string()
        .pattern(Some(region_pattern()))
        .description(Some(
            "ISO 3166 alpha-2, any case, known to the numbering plan (else 422 \
             `invalid_region`); for a national `number` only.",
        ))
        .examples(["DE"])
        .build()
}

fn brand_name_shape(description: &str) -> Object {
    string()
        .min_length(Some(1))
        .max_length(Some(BRAND_NAME_MAX_CODE_POINTS))
        .pattern(Some(BRAND_NAME_PATTERN))
        .description(Some(format!(
            "{description} A brand name is 1 to 100 characters after Unicode NFC (as sent, up \
             to 400 code points: NFC composes at most four into one), without control \
             characters or surrounding whitespace."
        )))
        .examples(["Makro"])
        .build()
}

/// A new brand's name (`POST /v1/tenants`, `POST /v1/brands`).
pub fn brand_name() -> Object {
    brand_name_shape("Unique per tenant after NFC and case folding; never renamed.")
}

/// A brand named exactly, after NFC (`company_name_shown`, a form's brand).
pub fn active_brand() -> Object {
    brand_name_shape("Exactly (after NFC) an active brand of the tenant.")
}

/// A new tenant's id.
pub fn tenant_id() -> Object {
    string()
        .pattern(Some(TENANT_ID_PATTERN))
        .description(Some(
            "1 to 64 lowercase letters, digits and inner hyphens; never reused (409 if it \
             exists or existed). Tenant ids are public: they stand in the hosted pages' URLs.",
        ))
        .examples(["makro"])
        .build()
}

/// A form's id.
pub fn form_id() -> Object {
    string()
        .pattern(Some(FORM_ID_PATTERN))
        .description(Some(
            "Like a tenant id (1 to 64 lowercase letters, digits and inner hyphens); not \
             `opt-out`, the opt-out page's.",
        ))
        .examples(["newsletter"])
        .build()
}

/// A form's language.
pub fn form_language() -> Object {
    language_shape()
        .description(Some(
            "A well-formed BCP 47 tag (RFC 5646); the page's own words are in English, French, \
             Spanish, Portuguese or German by its primary language (default English).",
        ))
        .build()
}

/// A form's `privacy_url`.
pub fn privacy_url() -> Object {
    string()
        .max_length(Some(2_000))
        .pattern(Some(PRIVACY_URL_PATTERN))
        .description(Some(
            "Where the page links to for privacy: an `https://` URL with a host, at most 2,000 \
             characters of visible ASCII without quotes, angle brackets, backslashes or \
             backticks.",
        ))
        .examples(["https://shop.example/privacy"])
        .build()
}

/// A form's `embed_origins`.
pub fn embed_origins() -> Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(string().pattern(Some(ORIGIN_PATTERN)))
        .max_items(Some(20))
        .description(Some(
            "Origins that may show the page in a frame (`https://host[:port]`), at most 20; \
             default none.",
        ))
        .build()
}

/// An API key's name.
pub fn key_name() -> Object {
    string()
        .min_length(Some(1))
        .max_length(Some(100))
        .pattern(Some(NO_CONTROL_PATTERN))
        .description(Some(
            "What the key is for: 1 to 100 characters, no control characters.",
        ))
        .examples(["campaign tool"])
        .build()
}

/// An erasure's `reason`.
pub fn erase_reason() -> Object {
    nullable_string()
        .max_length(Some(500))
        .pattern(Some(NO_CONTROL_PATTERN))
        .description(Some(
            "Why (at most 500 characters, no control characters); for the audit trail, never \
             in the ledger, which records `reason: request`.",
        ))
        .build()
}

/// A consent text or a prompt: 1 to 10,000 characters as received.
pub fn consent_text() -> Object {
    string()
        .min_length(Some(1))
        .max_length(Some(10_000))
        .pattern(Some(READABLE_TEXT_PATTERN))
        .description(Some(
            "The exact wording the person saw, heard or signed: 1 to 10,000 characters, no \
             control characters but tabs and line breaks; it must name the brand as a whole \
             word (after NFC and case folding). Template wording only, never personal data.",
        ))
        .examples(["Yes, I want offers from Makro on WhatsApp. Reply STOP to end."])
        .build()
}

fn language_shape() -> ObjectBuilder {
    nullable_string()
        .max_length(Some(64))
        .pattern(Some(language_tag_pattern()))
}

/// A BCP 47 language tag (`language` of an opt-in's consent text).
pub fn language_tag() -> Object {
    language_shape()
        .description(Some(
            "A well-formed BCP 47 tag (RFC 5646) of the consent text, such as `en` or `pt-BR`.",
        ))
        .build()
}

/// A business phone number id of an interaction or a check.
pub fn phone_number_id() -> Object {
    nullable_string()
        .pattern(Some(PHONE_NUMBER_ID_PATTERN))
        .description(Some(
            "The business number the person wrote to (WhatsApp's phone number id): 1 to 64 \
             visible ASCII characters.",
        ))
        .build()
}

fn opt_in_channel_values() -> ObjectBuilder {
    let channels = CaptureChannel::ALL
        .into_iter()
        .filter(|c| c.can_capture_opt_in())
        .map(CaptureChannel::as_str);
    string().enum_values(Some(channels))
}

/// The capture channels an opt-in can come from: all but `api`.
pub fn opt_in_channel() -> Object {
    opt_in_channel_values()
        .description(Some(
            "Where the person opted in (`api` is for opt-outs only).",
        ))
        .build()
}

/// A tenant's `require_confirmation_for` (docs/pages.md).
pub fn opt_in_channels() -> Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(opt_in_channel_values())
        .description(Some(
            "Capture channels whose opt-ins wait for the person's confirmation (double opt-in; \
             recommended `[\"web\"]`): opt-ins recorded through `POST /v1/opt-ins` and the \
             hosted pages. Opt-ins that a provider's signed webhook delivers from the identity \
             itself never wait.",
        ))
        .build()
}

/// A tenant's or a form's `default_region`.
pub fn default_region() -> Object {
    nullable_string()
        .pattern(Some(region_pattern()))
        .description(Some(
            "ISO 3166 alpha-2, any case, known to the numbering plan (else 422); the region of \
             national numbers given without one.",
        ))
        .examples(["DE"])
        .build()
}

/// A provider's secret (app secret, verify token, auth token).
pub fn secret() -> Object {
    nullable_string()
        .min_length(Some(16))
        .max_length(Some(512))
        .pattern(Some(NO_CONTROL_PATTERN))
        .description(Some(
            "At least 16 characters and at most 512 bytes, no control characters; omitted or \
             null keeps the stored one (required when none is stored). Never shown again.",
        ))
        .build()
}

/// A second secret during a rotation: `""` clears it.
pub fn rotating_secret() -> Object {
    nullable_string()
        .max_length(Some(512))
        .pattern(Some(concat!("^(?:[^", control!(), "]{16,})?$")))
        .description(Some(
            "The one being rotated out: as a secret, or `\"\"` to clear it; omitted or null \
             keeps the stored one.",
        ))
        .build()
}

fn keyword_shape() -> ObjectBuilder {
    string()
        .min_length(Some(1))
        .max_length(Some(256))
        .pattern(Some(KEYWORD_PATTERN))
}

/// What an opt-in match of the channel settings matches.
pub fn keyword_match() -> Object {
    keyword_shape()
        .description(Some(
            "A text (compared after NFKC, case folding and without punctuation) or a button \
             payload (byte-equal): at most 256 bytes of UTF-8, with a letter or a digit; unique \
             per channel; not an opt-out or lift word.",
        ))
        .build()
}

/// The tenant's extra opt-out keywords.
pub fn opt_out_keywords() -> Array {
    ArrayBuilder::new()
        .items(keyword_shape())
        .max_items(Some(100))
        .description(Some(
            "Opt-out keywords besides the standard ones: at most 100, each at most 256 bytes \
             of UTF-8 with a letter or a digit (compared after NFKC, case folding and without \
             punctuation); the lift words START, UNSTOP and YES are reserved.",
        ))
        .build()
}

/// The tenant's Twilio numbers.
pub fn twilio_numbers() -> Array {
    ArrayBuilder::new()
        .items(string().pattern(Some(INTERNATIONAL_NUMBER_PATTERN)))
        .min_items(Some(1))
        .max_items(Some(100))
        .description(Some(
            "The tenant's Twilio numbers: 1 to 100, each E.164 and valid in the numbering \
             plan, without repeats.",
        ))
        .examples([["+14155552671"]])
        .build()
}

/// The URL Twilio posts to.
pub fn webhook_url() -> Object {
    string()
        .max_length(Some(2_048))
        .pattern(Some(WEBHOOK_URL_PATTERN))
        .description(Some(
            "The public URL Twilio posts to, exactly as configured there: `http(s)://`, a host \
             first, no whitespace, no fragment, at most 2,048 bytes.",
        ))
        .build()
}

/// What an opt-in match showed the person.
pub fn prompt() -> Object {
    string()
        .min_length(Some(1))
        .max_length(Some(10_000))
        .pattern(Some(READABLE_TEXT_PATTERN))
        .description(Some(
            "What the person was shown; it becomes `consent_text` and must name the brand: 1 to \
             10,000 characters, no control characters but tabs and line breaks.",
        ))
        .build()
}

/// The evidence value of `key`, as `evidence::check_value` takes it.
fn evidence_value(key: &str) -> Schema {
    let text = || {
        string()
            .min_length(Some(1))
            .max_length(Some(evidence::MAX_VALUE_CHARS))
    };
    let value = match key {
        k if k.ends_with("_sha256") => text().pattern(Some(SHA256_PATTERN)),
        "signed_on" => text()
            .pattern(Some(DATE_PATTERN))
            .format(Some(SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Date,
            )))
            .description(Some("The date of `captured_at` (a day either way)")),
        "page_url" => text().pattern(Some(PAGE_URL_PATTERN)),
        "preference" => text().enum_values(Some(["stop"])),
        "document_id" => text().pattern(Some(DOCUMENT_ID_PATTERN)).description(Some(
            "A document uploaded to this tenant, whose hash is `document_sha256`",
        )),
        "ip" => {
            let format = |name: &str| text().format(Some(SchemaFormat::Custom(name.to_owned())));
            return Schema::AnyOf(
                AnyOfBuilder::new()
                    .item(format("ipv4"))
                    .item(format("ipv6"))
                    .build(),
            );
        }
        _ => text().pattern(Some(READABLE_TEXT_PATTERN)),
    };
    Schema::Object(value.build())
}

/// One evidence shape: a flat object of strings, the keys of its row only.
fn evidence_shape(shape: &Shape) -> Schema {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    let keys = shape
        .required
        .iter()
        .flat_map(|group| group.iter())
        .chain(shape.optional.iter());
    for key in keys {
        object = object.property(*key, evidence_value(key));
    }
    let mut whole = AllOfBuilder::new();
    for group in shape.required {
        if let [key] = group {
            object = object.required(*key);
        } else {
            // "a or b": at least one of the group.
            let mut any = AnyOfBuilder::new();
            for key in *group {
                any = any.item(ObjectBuilder::new().required(*key));
            }
            whole = whole.item(Schema::AnyOf(any.build()));
        }
    }
    let object = Schema::Object(object.build());
    if shape.required.iter().all(|group| group.len() == 1) {
        object
    } else {
        Schema::AllOf(whole.item(object).build())
    }
}

/// For a request of `kind`, one branch per capture channel: that `channel`
/// with the evidence its row allows (docs/recording.md). A request matches
/// exactly one.
pub fn evidence_by_channel(kind: EvidenceFor) -> Vec<RefOr<Schema>> {
    let mut branches = Vec::new();
    for channel in CaptureChannel::ALL {
        let shapes = evidence::shapes(kind, channel);
        let evidence = match shapes.as_slice() {
            [] => continue,
            [one] => evidence_shape(one),
            several => {
                let mut any = AnyOfBuilder::new();
                for shape in several {
                    any = any.item(evidence_shape(shape));
                }
                Schema::AnyOf(any.build())
            }
        };
        let branch = ObjectBuilder::new()
            .required("channel")
            .property("channel", string().enum_values(Some([channel.as_str()])))
            .property("evidence", evidence);
        branches.push(RefOr::T(Schema::Object(branch.build())));
    }
    branches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access::{check_brand_name, is_tenant_id};
    use crate::domain::identity::is_user_id;
    use crate::domain::number::E164;
    use serde_json::{json, Value};

    fn matches(schema: impl serde::Serialize, value: Value) -> bool {
        let schema = serde_json::to_value(schema).unwrap();
        jsonschema::validator_for(&schema)
            .expect("a valid schema")
            .is_valid(&value)
    }

    fn pattern_matches(pattern: &str, text: &str) -> bool {
        matches(json!({"type": "string", "pattern": pattern}), json!(text))
    }

    #[test]
    fn every_number_the_parser_takes_matches_the_pattern() {
        let taken = [
            ("+4915112345678", None),
            ("  +49 151 1234 5678\t", None),
            ("\u{85}\u{3000}+49 (151) 1234-5678\u{2029}", None),
            ("0151 12345678", Some("de")),
            ("(415) 555-2671", Some("US")),
            ("0049 151 12345678", Some("DE")),
            ("415.555.2671", Some("US")),
            ("415/555/2671", Some("US")),
        ];
        for (input, region) in taken {
            assert!(E164::parse(input, region, None).is_ok(), "{input:?}");
            assert!(pattern_matches(NUMBER_PATTERN, input), "{input:?}");
        }
        let refused = [
            "",
            "+",
            "()",
            "+ -",
            "49+151",
            "+49 151 1234 567a",
            "++49151",
            &"1".repeat(129),
        ];
        for refused in refused {
            assert!(
                E164::parse(refused, Some("DE"), None).is_err(),
                "{refused:?}"
            );
            assert!(!pattern_matches(NUMBER_PATTERN, refused), "{refused:?}");
        }
        assert!(pattern_matches(E164_PATTERN, "+4915112345678"));
        for (keyword, taken) in [("STOPP", true), ("!!! ...", false), ("é", true)] {
            assert_eq!(
                pattern_matches(KEYWORD_PATTERN, keyword),
                taken,
                "{keyword}"
            );
            assert_eq!(
                !super::super::vocabulary::normalize(keyword).is_empty(),
                taken
            );
        }
    }

    #[test]
    fn regions_match_exactly_what_the_numbering_plan_knows() {
        let validator = jsonschema::validator_for(&json!({"pattern": region_pattern()}))
            .expect("a valid pattern");
        for first in b'A'..=b'z' {
            for second in b'A'..=b'z' {
                let region = String::from_utf8_lossy(&[first, second]).into_owned();
                let taken = Region::parse(&region).is_ok();
                assert_eq!(validator.is_valid(&json!(region)), taken, "{region}");
            }
        }
        for other in ["", "D", "DEU", " DE"] {
            assert!(Region::parse(other).is_err() && !validator.is_valid(&json!(other)));
        }
        assert!(Region::parse("de").is_ok() && Region::parse("ZZ").is_err());
    }

    #[test]
    fn ids_and_names_match_exactly_what_their_rules_take() {
        let user_ids = [
            "US.13491208655302741918",
            "BR.ENT.abc",
            "US.ENTX",
            "US.ENT.",
            "US.",
            "us.1",
            "USA.1",
            "US.a-b",
        ];
        for id in user_ids
            .iter()
            .copied()
            .chain([&*format!("DE.{}", "a".repeat(128))])
        {
            assert_eq!(pattern_matches(USER_ID_PATTERN, id), is_user_id(id), "{id}");
        }
        assert!(!pattern_matches(
            USER_ID_PATTERN,
            &format!("DE.{}", "a".repeat(129))
        ));
        for id in [
            "a", "0", "makro", "a1-b2", "-a", "a-", "Makro", "a_b", "ä", "opt-out",
        ] {
            assert_eq!(
                pattern_matches(TENANT_ID_PATTERN, id),
                is_tenant_id(id),
                "{id}"
            );
            let form = is_tenant_id(id) && id != "opt-out";
            assert_eq!(pattern_matches(FORM_ID_PATTERN, id), form, "{id}");
        }
        let names = [
            "Makro",
            "Makro Cash & Carry",
            " Makro",
            "Makro\u{3000}",
            "\u{feff}Makro",
            "Ma\u{0}kro",
            "Ma\tkro",
            "Makro \u{301}",
            "x",
        ];
        for name in names {
            let taken = check_brand_name(name).is_ok();
            assert_eq!(matches(brand_name(), json!(name)), taken, "{name:?}");
        }
        // Decomposed, longer than 100 code points, 100 characters after NFC.
        let decomposed = "e\u{301}".repeat(100);
        assert!(check_brand_name(&decomposed).is_ok());
        assert!(matches(brand_name(), json!(decomposed)));
    }

    #[test]
    fn texts_match_what_their_rules_take() {
        for text in ["Yes, Makro.\n\tOK\r\n", "x", &"é".repeat(10_000)] {
            assert!(super::super::request::check_consent_text(text).is_ok());
            assert!(matches(consent_text(), json!(text)), "{text:.20}");
        }
        for text in ["", "a\u{7}b", "a\u{9f}", &"é".repeat(10_001)] {
            assert!(super::super::request::check_consent_text(text).is_err());
            assert!(!matches(consent_text(), json!(text)), "{text:.20}");
        }
        let tags = [
            "en",
            "pt-BR",
            "zh-Hant-TW",
            "x-private",
            "I-Klingon",
            "en-GB-oed",
            "de-1996",
            "sl-rozaj-biske",
            "zh-yue-HK",
            "en-a-bbb-x-a",
            "es-419",
            "abcdefgh",
            "en-",
            "e",
            "en-gb-oed-x",
            "zh-yue-abc-def-ghi",
            "en-a",
            "en-x",
            "x",
            "en-Latn-US-1abc-u-ca-x-y",
            "123",
            "en-abcde1234",
            "en--us",
            "en_US",
            "ÿn",
            "",
        ];
        for tag in tags {
            let taken = super::super::text::is_well_formed_language_tag(tag);
            assert_eq!(matches(language_tag(), json!(tag)), taken, "{tag}");
        }
        // Every tag of up to four subtags over a small alphabet, as the
        // parser and the pattern see it.
        let validator = jsonschema::validator_for(&json!({"pattern": language_tag_pattern()}))
            .expect("a valid pattern");
        let parts = [
            "a", "ab", "abc", "abcd", "abcde", "1", "12", "123", "1ab", "x", "u", "ab1",
        ];
        let mut count = 0;
        let mut tag = Vec::new();
        let mut check = |tag: &[&str]| {
            let tag = tag.join("-");
            let taken = super::super::text::is_well_formed_language_tag(&tag);
            assert_eq!(validator.is_valid(&json!(tag)), taken, "{tag}");
            count += 1;
        };
        for a in parts {
            tag.push(a);
            check(&tag);
            for b in parts {
                tag.push(b);
                check(&tag);
                for c in parts {
                    tag.push(c);
                    check(&tag);
                    for d in parts {
                        tag.push(d);
                        check(&tag);
                        tag.pop();
                    }
                    tag.pop();
                }
                tag.pop();
            }
            tag.pop();
        }
        assert!(count > 20_000);
    }

    #[test]
    fn timestamps_and_urls_match_what_their_parsers_take() {
        use crate::domain::time::{Timestamp, TIMESTAMP_PATTERN};
        let taken = [
            "2026-11-20T10:00:00Z",
            "2026-11-20t10:00:00.123456789z",
            "2026-11-20T11:30:00.5+01:30",
            "0001-01-01T00:00:00Z",
        ];
        for t in taken {
            assert!(
                Timestamp::parse(t).is_ok() && pattern_matches(TIMESTAMP_PATTERN, t),
                "{t}"
            );
        }
        let refused = [
            "2026-11-20T10:00Z",
            "2026-11-20T10:00:00.1234567890Z",
            "2026-11-20 10:00:00Z",
            "2026-11-20T10:00:00+0100",
        ];
        for t in refused {
            assert!(
                Timestamp::parse(t).is_err() && !pattern_matches(TIMESTAMP_PATTERN, t),
                "{t}"
            );
        }
        let form = |privacy_url: &str, origin: &str| {
            serde_json::from_value::<crate::domain::form::FormInput>(json!({
                "id": "f", "brand": "Makro", "consent_text": "Makro", "purposes": ["marketing"],
                "privacy_url": privacy_url, "embed_origins": [origin]
            }))
            .unwrap()
            .parse()
            .is_ok()
        };
        let urls = [
            ("https://shop.example/privacy?a=1&b=[2]#x", true),
            ("https://shop.example/\"x", false),
            ("https:///x", false),
            ("http://shop.example", false),
            ("https://shop.example/a b", false),
        ];
        for (url, taken) in urls {
            assert_eq!(form(url, "https://a.example"), taken, "{url}");
            assert_eq!(matches(privacy_url(), json!(url)), taken, "{url}");
        }
        for (origin, taken) in [
            ("https://a.example:8443", true),
            ("https://a.example/", false),
        ] {
            assert_eq!(form("https://a.example", origin), taken, "{origin}");
            assert_eq!(matches(embed_origins(), json!([origin])), taken, "{origin}");
        }
    }

    #[test]
    fn each_evidence_row_takes_what_validate_takes() {
        let schema = |kind| {
            json!({"oneOf": evidence_by_channel(kind)
                .into_iter()
                .map(|b| serde_json::to_value(b).unwrap())
                .collect::<Vec<_>>()})
        };
        let (opt_in, opt_out) = (schema(EvidenceFor::OptIn), schema(EvidenceFor::OptOut));
        let sha = "a".repeat(64);
        let cases = [
            (
                EvidenceFor::OptIn,
                "web",
                json!({"page_url":"https://shop.example/a","ip":"203.0.113.7","user_agent":"UA","rendered_html_sha256":sha}),
            ),
            (
                EvidenceFor::OptIn,
                "web",
                json!({"page_url":"http://shop.example","ip":"2001:db8::7","user_agent":"UA"}),
            ),
            (
                EvidenceFor::OptIn,
                "whatsapp",
                json!({"message_id":"wamid.1","business_phone_number_id":"1065","button_payload":"OPTIN"}),
            ),
            (
                EvidenceFor::OptIn,
                "sms",
                json!({"message_id":"SM1","from_number_to":"+4930123456","body":"JOIN\nnow"}),
            ),
            (
                EvidenceFor::OptIn,
                "ivr",
                json!({"call_id":"c1","prompt_script":"Press 1","speech_transcript":"yes"}),
            ),
            (
                EvidenceFor::OptIn,
                "paper",
                json!({"document_sha256":sha,"signer_name":"J","signed_on":"2026-11-19","collected_by":"s","document_id":"doc_0123456789ab"}),
            ),
            (
                EvidenceFor::OptOut,
                "whatsapp",
                json!({"business_phone_number_id":"1065","preference":"stop"}),
            ),
            (
                EvidenceFor::OptOut,
                "whatsapp",
                json!({"message_id":"wamid.1","body":"STOP"}),
            ),
            (
                EvidenceFor::OptOut,
                "api",
                json!({"reason":"asked by phone"}),
            ),
            (
                EvidenceFor::OptOut,
                "web",
                json!({"reason":"form","page_url":"https://a.example","ip":"::1"}),
            ),
        ];
        for (kind, channel, evidence) in cases {
            let parsed = CaptureChannel::parse(channel).unwrap();
            assert!(
                evidence::validate(kind, parsed, &evidence).is_ok(),
                "{evidence}"
            );
            let request = json!({"channel": channel, "evidence": evidence});
            let schema = if kind == EvidenceFor::OptIn {
                &opt_in
            } else {
                &opt_out
            };
            assert!(matches(schema, request.clone()), "{request}");
        }
        let refused = [
            (EvidenceFor::OptIn, "api", json!({"reason":"x"})),
            (
                EvidenceFor::OptIn,
                "web",
                json!({"page_url":"https://a.example","ip":"1.2.3.4"}),
            ),
            (
                EvidenceFor::OptIn,
                "web",
                json!({"page_url":"/a","ip":"1.2.3.4","user_agent":"UA"}),
            ),
            (
                EvidenceFor::OptIn,
                "whatsapp",
                json!({"message_id":"m","business_phone_number_id":"1"}),
            ),
            (
                EvidenceFor::OptIn,
                "paper",
                json!({"document_sha256":"A".repeat(64),"signer_name":"J","signed_on":"2026-11-19","collected_by":"s"}),
            ),
            (
                EvidenceFor::OptOut,
                "whatsapp",
                json!({"business_phone_number_id":"1","preference":"go"}),
            ),
            (
                EvidenceFor::OptOut,
                "whatsapp",
                json!({"message_id":"m","body":"STOP","preference":"stop"}),
            ),
            (EvidenceFor::OptOut, "api", json!({"reason":""})),
            (
                EvidenceFor::OptOut,
                "sms",
                json!({"message_id":"m","body":"STOP","page_url":"https://a.example"}),
            ),
        ];
        for (kind, channel, evidence) in refused {
            let parsed = CaptureChannel::parse(channel).unwrap();
            assert!(
                evidence::validate(kind, parsed, &evidence).is_err(),
                "{evidence}"
            );
            let request = json!({"channel": channel, "evidence": evidence});
            let schema = if kind == EvidenceFor::OptIn {
                &opt_in
            } else {
                &opt_out
            };
            assert!(!matches(schema, request.clone()), "{request}");
        }
    }
}
