//! Phone numbers: parsed with libphonenumber's metadata (the `phonenumber`
//! crate) and normalised to E.164. After the edge no function takes a raw
//! string for a number.

use phonenumber::country::Id as CountryId;
use phonenumber::{Mode, ParseError};
use std::fmt;
use std::str::FromStr;

/// A valid number in E.164 form (`+` and 2 to 15 digits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

/// Why a number was refused; the `code` is the `reason` a batch item's error gives (docs/api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("the value is not a phone number")]
    NotANumber,
    #[error("a national number needs a region (ISO 3166 alpha-2) or the tenant's default_region; an international number starts with + and its country code (E.164, e.g. +4915112345678)")]
    MissingRegion,
    #[error("the country calling code does not exist")]
    InvalidCountryCode,
    #[error("the number is too short for its country")]
    TooShort,
    #[error("the number is too long for its country")]
    TooLong,
    #[error("the number is not a valid number for its country")]
    NotValidNumber,
    #[error("the region is not an ISO 3166 alpha-2 code known to the numbering plan")]
    InvalidRegion,
}

impl NumberError {
    pub fn code(self) -> &'static str {
        match self {
            NumberError::NotANumber => "not_a_number",
            NumberError::MissingRegion => "missing_region",
            NumberError::InvalidCountryCode => "invalid_country_code",
            NumberError::TooShort => "too_short",
            NumberError::TooLong => "too_long",
            NumberError::NotValidNumber => "not_valid_number",
            NumberError::InvalidRegion => "invalid_region",
        }
    }
}

/// A validated region: ISO 3166 alpha-2, uppercased, known to the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(CountryId);

impl Region {
    pub fn parse(input: &str) -> Result<Self, NumberError> {
        if input.len() != 2 || !input.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(NumberError::InvalidRegion);
        }
        let upper = input.to_ascii_uppercase();
        let id = CountryId::from_str(&upper).map_err(|_| NumberError::InvalidRegion)?;
        if phonenumber::metadata::DATABASE.by_id(id.as_ref()).is_none() {
            return Err(NumberError::InvalidRegion);
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }
}

/// Characters people type into number fields; anything else (letters
/// included: no vanity numbers) is not a number.
fn plausible_characters(input: &str) -> bool {
    input
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.' | '/'))
}

impl E164 {
    /// Parses E.164 input, or a national number with `region` (or, failing
    /// that, the tenant's default region).
    pub fn parse(
        input: &str,
        region: Option<&str>,
        default_region: Option<&str>,
    ) -> Result<Self, NumberError> {
        let region = region.map(Region::parse).transpose()?;
        let trimmed = input.trim();
        if trimmed.is_empty() || trimmed.len() > 64 || !plausible_characters(trimmed) {
            return Err(NumberError::NotANumber);
        }
        let digit_count = trimmed.chars().filter(char::is_ascii_digit).count();
        if digit_count == 0 {
            return Err(NumberError::NotANumber);
        }
        let international = trimmed.starts_with('+');
        if trimmed[1..].contains('+') {
            return Err(NumberError::NotANumber);
        }
        let country = if international {
            None
        } else {
            let region = match region {
                Some(r) => r,
                None => match default_region {
                    Some(d) => Region::parse(d)?,
                    None => return Err(NumberError::MissingRegion),
                },
            };
            Some(region.0)
        };
        let parsed = phonenumber::parse(country, trimmed).map_err(|e| match e {
            ParseError::InvalidCountryCode => NumberError::InvalidCountryCode,
            ParseError::TooShortAfterIdd | ParseError::TooShortNsn => NumberError::TooShort,
            ParseError::TooLong => NumberError::TooLong,
            ParseError::NoNumber | ParseError::MalformedInteger(_) => NumberError::NotANumber,
        })?;
        if parsed.extension().is_some() {
            return Err(NumberError::NotANumber);
        }
        if !phonenumber::is_valid(&parsed) {
            return Err(length_problem(&parsed));
        }
        let e164 = parsed.format().mode(Mode::E164).to_string();
        Self::from_canonical(&e164).ok_or(NumberError::NotValidNumber)
    }

    /// Accepts only the canonical `^\+[1-9]\d{1,14}$` form (stored values).
    pub fn from_canonical(text: &str) -> Option<Self> {
        let digits = text.strip_prefix('+')?;
        let ok = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        ok.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Tells a number of the wrong length from one that is merely unassigned.
fn length_problem(number: &phonenumber::PhoneNumber) -> NumberError {
    let code = number.code().value();
    let national_len = number.national().to_string().len() as u16;
    let Some(metas) = phonenumber::metadata::DATABASE.by_code(&code) else {
        return NumberError::InvalidCountryCode;
    };
    let lengths: Vec<u16> = metas
        .iter()
        .flat_map(|m| m.descriptors().general().possible_length().iter().copied())
        .collect();
    match (lengths.iter().min(), lengths.iter().max()) {
        (Some(&min), _) if national_len < min => NumberError::TooShort,
        (_, Some(&max)) if national_len > max => NumberError::TooLong,
        _ => NumberError::NotValidNumber,
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Never print a number by accident (logs, panics, `{:?}` in errors).
impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("E164(<redacted>)")
    }
}

/// Loads the numbering metadata once (about 120 ms), so the first request
/// does not pay for it.
pub fn warm_metadata() {
    let _ = E164::parse("+4915112345678", None, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str, region: Option<&str>) -> String {
        E164::parse(input, region, None)
            .unwrap()
            .as_str()
            .to_owned()
    }

    fn err(input: &str, region: Option<&str>) -> &'static str {
        E164::parse(input, region, None).unwrap_err().code()
    }

    #[test]
    fn international_and_national_forms_normalise_to_e164() {
        assert_eq!(ok("+4915112345678", None), "+4915112345678");
        assert_eq!(ok("+49 151 1234 5678", None), "+4915112345678");
        assert_eq!(ok("0151 12345678", Some("de")), "+4915112345678");
        assert_eq!(ok("(0151) 1234-5678", Some("DE")), "+4915112345678");
        assert_eq!(ok("0049 151 12345678", Some("DE")), "+4915112345678");
        assert_eq!(ok("(415) 555-2671", Some("US")), "+14155552671");
        assert_eq!(ok("11 91234-5678", Some("BR")), "+5511912345678");
        assert_eq!(
            E164::parse("015112345678", None, Some("DE"))
                .unwrap()
                .as_str(),
            "+4915112345678"
        );
    }

    #[test]
    fn each_reason_is_reported() {
        assert_eq!(err("hello", None), "not_a_number");
        assert_eq!(err("1-800-FLOWERS", Some("US")), "not_a_number");
        assert_eq!(err("", None), "not_a_number");
        assert_eq!(err("015112345678", None), "missing_region");
        assert_eq!(err("015112345678", Some("XX")), "invalid_region");
        assert_eq!(err("015112345678", Some("DEU")), "invalid_region");
        assert_eq!(err("+999 1234 5678", None), "invalid_country_code");
        assert_eq!(err("+49 1", None), "too_short");
        assert_eq!(err("+49 151 1234 5678 9012 3456", None), "too_long");
        assert_eq!(err("+1 415 055 2671", None), "not_valid_number");
    }

    #[test]
    fn debug_output_never_shows_the_number() {
        let n = E164::parse("+4915112345678", None, None).unwrap();
        assert!(!format!("{n:?}").contains("151"));
    }

    #[test]
    fn canonical_form_is_checked() {
        assert!(E164::from_canonical("+4915112345678").is_some());
        assert!(E164::from_canonical("4915112345678").is_none());
        assert!(E164::from_canonical("+0915112345678").is_none());
        assert!(E164::from_canonical("+1234567890123456").is_none());
    }
}
