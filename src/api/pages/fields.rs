//! A post's fields, read from its urlencoded body, and the number they
//! give.

use crate::domain::number::E164;
use crate::domain::purpose::Purpose;
use crate::error::{ApiError, ErrorCode};

/// A post's fields.
#[derive(Debug, Default)]
pub(super) struct Posted {
    pub token: String,
    pub number: String,
    pub region: Option<String>,
    pub purposes: Vec<Purpose>,
    pub honeypot: bool,
}

/// The fields of a urlencoded body; a body that is not a form is 400.
pub(super) fn posted(body: &[u8]) -> Result<Posted, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| ApiError::new(ErrorCode::MalformedBody, "the body is not a valid form"))?;
    let mut out = Posted::default();
    for (name, value) in pairs {
        match name.as_str() {
            "token" => out.token = value,
            "number" => out.number = value.chars().take(64).collect(),
            "region" if !value.is_empty() => out.region = Some(value.chars().take(2).collect()),
            "purpose" => out
                .purposes
                .extend(Purpose::ALL.into_iter().find(|p| p.as_str() == value)),
            "website" => out.honeypot |= !value.trim().is_empty(),
            _ => {}
        }
    }
    Ok(out)
}

/// The number of a post, in the chosen country (or the form's).
pub(super) fn number_of(posted: &Posted, fallback: Option<&str>) -> Option<E164> {
    let region = posted.region.as_deref().or(fallback);
    E164::parse(posted.number.trim(), region, None).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_keeps_known_fields_bounded_and_notes_the_trap() {
        let long = "1".repeat(100);
        let body = format!(
            "token=t&number={long}&region=FRX&purpose=marketing&purpose=nonsense&website=+x+&other=1"
        );
        let posted = posted(body.as_bytes()).unwrap();
        assert_eq!(posted.token, "t");
        assert_eq!(posted.number.len(), 64);
        assert_eq!(posted.region.as_deref(), Some("FR"));
        assert_eq!(posted.purposes, vec![Purpose::Marketing]);
        assert!(posted.honeypot);
    }

    #[test]
    fn an_empty_region_and_a_blank_trap_are_nothing() {
        let posted = posted(b"region=&website=+++").unwrap();
        assert_eq!(posted.region, None);
        assert!(!posted.honeypot);
    }

    #[test]
    fn the_number_takes_the_posted_region_before_the_forms() {
        let posted = posted(b"number=06+12+34+56+78&region=FR").unwrap();
        assert_eq!(
            number_of(&posted, Some("DE")).unwrap().as_str(),
            "+33612345678"
        );
        let bare = Posted {
            number: "06 12 34 56 78".to_owned(),
            ..Posted::default()
        };
        assert_eq!(
            number_of(&bare, Some("FR")).unwrap().as_str(),
            "+33612345678"
        );
        assert!(number_of(&bare, None).is_none());
    }
}
