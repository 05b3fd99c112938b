//! Identities (SPEC section 3): a person is known by a number (E.164) or by
//! a WhatsApp business-scoped user id, `^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}\z`
//! (a parent id has `ENT.` after the country), stored exactly as received.

/// Whether `text` is a user id, matched whole.
pub fn is_user_id(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 4 || !b[0].is_ascii_uppercase() || !b[1].is_ascii_uppercase() || b[2] != b'.' {
        return false;
    }
    let rest = &b[3..];
    let id = rest.strip_prefix(b"ENT.").unwrap_or(rest);
    (1..=128).contains(&id.len()) && id.iter().all(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_match_the_pattern_whole() {
        for good in [
            "BR.1502576394655843",
            "US.13491208655302741918",
            "BR.ENT.88012345678901234567",
            "DE.a",
            &format!("MX.{}", "Z".repeat(128)),
            "BR.ENT",
        ] {
            assert!(is_user_id(good), "{good}");
        }
        for bad in [
            "",
            "BR.",
            "BR.ENT.",
            "br.123",
            "B.123",
            "BRA.123",
            "BR-123",
            "BR.12 3",
            "BR.123\n",
            "BR.ENT.ENT.1",
            "+5511987654321",
            &format!("MX.{}", "Z".repeat(129)),
            "BR.éé",
        ] {
            assert!(!is_user_id(bad), "{bad:?}");
        }
    }
}
