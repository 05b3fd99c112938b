//! WhatsApp `wa_id`s (digits, no `+`) to the ledger's canonical E.164, so the
//! old and new forms of Brazilian and Mexican mobiles find the same record.

use crate::domain::number::{NumberError, E164};

/// Maps a `wa_id` to canonical E.164: Brazilian mobiles with the ninth digit,
/// Mexican mobiles without the legacy `1` after `52`, then validated.
pub fn wa_id_to_e164(wa_id: &str) -> Result<E164, NumberError> {
    let digits = wa_id.strip_prefix('+').unwrap_or(wa_id);
    // E.164 allows at most 15 digits; anything else is not a wa_id.
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::NotANumber);
    }
    E164::parse(&format!("+{}", canonical_digits(digits)), None, None)
}

/// Rewrites the legacy inbound forms; `digits` is ASCII digits only.
fn canonical_digits(digits: &str) -> String {
    if let Some(national) = digits.strip_prefix("55") {
        // Two-digit area code + eight-digit subscriber in a mobile range
        // (6–9): the pre-ninth-digit form WhatsApp still reports.
        if national.len() == 10 && matches!(national.as_bytes().get(2), Some(b'6'..=b'9')) {
            let (area, subscriber) = national.split_at(2);
            return format!("55{area}9{subscriber}");
        }
    }
    if let Some(national) = digits.strip_prefix("521") {
        // Mexico dropped the mobile `1` in 2019; ten digits follow either way.
        if national.len() == 10 {
            return format!("52{national}");
        }
    }
    digits.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(wa_id: &str) -> String {
        wa_id_to_e164(wa_id).unwrap().as_str().to_owned()
    }

    #[test]
    fn brazilian_mobile_gains_the_ninth_digit() {
        assert_eq!(ok("551199887766"), "+5511999887766");
        assert_eq!(ok("552187654321"), "+5521987654321");
        assert_eq!(ok("556181234567"), "+5561981234567");
    }

    #[test]
    fn brazilian_mobile_with_ninth_digit_is_unchanged() {
        assert_eq!(ok("5511999887766"), "+5511999887766");
        assert_eq!(ok("+5511999887766"), "+5511999887766");
    }

    #[test]
    fn brazilian_landline_is_unchanged() {
        assert_eq!(ok("551133334444"), "+551133334444");
        assert_eq!(ok("552125551234"), "+552125551234");
    }

    #[test]
    fn mexican_legacy_one_is_dropped() {
        assert_eq!(ok("5215512345678"), "+525512345678");
        assert_eq!(ok("525512345678"), "+525512345678");
    }

    #[test]
    fn both_forms_meet_at_one_key() {
        assert_eq!(ok("551199887766"), ok("5511999887766"));
        assert_eq!(ok("5215512345678"), ok("525512345678"));
    }

    #[test]
    fn other_countries_pass_through() {
        assert_eq!(ok("4915112345678"), "+4915112345678");
        assert_eq!(ok("14155552671"), "+14155552671");
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "+",
            "abc",
            "55 11 99988 7766",
            "++5511999887766",
            "5511999887766+",
            "１２３",
            "1234567890123456",
        ] {
            assert_eq!(
                wa_id_to_e164(bad).unwrap_err(),
                NumberError::NotANumber,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn well_formed_but_invalid_numbers_are_refused() {
        assert!(wa_id_to_e164("999123456789").is_err());
        assert!(wa_id_to_e164("5511").is_err());
    }
}
