//! Hosted opt-in forms (docs/pages.md): what an admin defines, checked
//! once, stored as immutable versions. How a form is shown: `api/pages/`.

use super::access::is_tenant_id;
use super::number::Region;
use super::openapi;
use super::problem::Invalid;
use super::purpose::{MessageChannel, Purpose};
use super::request::Offer;
use super::text::is_well_formed_language_tag;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The id no form may have: the opt-out page's.
pub const OPT_OUT: &str = "opt-out";

/// `POST /v1/forms` and `PUT /v1/forms/{id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormInput {
    #[schema(schema_with = openapi::form_id)]
    pub id: String,
    #[schema(schema_with = openapi::active_brand)]
    pub brand: String,
    #[schema(schema_with = openapi::consent_text)]
    pub consent_text: String,
    /// One unticked checkbox each; at least one.
    #[schema(min_items = 1)]
    pub purposes: Vec<Purpose>,
    /// Default `["whatsapp"]`; at least one.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub message_channels: Option<Vec<MessageChannel>>,
    #[serde(default)]
    #[schema(schema_with = openapi::form_language)]
    pub language: Option<String>,
    /// The country chosen first.
    #[serde(default)]
    #[schema(schema_with = openapi::default_region)]
    pub default_region: Option<String>,
    #[schema(schema_with = openapi::privacy_url)]
    pub privacy_url: String,
    #[serde(default)]
    #[schema(schema_with = openapi::embed_origins)]
    pub embed_origins: Option<Vec<String>>,
}

/// A form's definition as stored: one immutable version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FormDefinition {
    pub brand: String,
    pub consent_text: String,
    pub purposes: Vec<Purpose>,
    pub message_channels: Vec<MessageChannel>,
    pub language: Option<String>,
    pub default_region: Option<String>,
    pub privacy_url: String,
    pub embed_origins: Vec<String>,
}

impl FormDefinition {
    /// The page's own words: the form language's primary subtag.
    pub fn page_language(&self) -> &str {
        self.language
            .as_deref()
            .and_then(|tag| tag.split('-').next())
            .unwrap_or("en")
    }
}

fn invalid(field: &str, detail: &str) -> Invalid {
    Invalid::request_field(field, "invalid_value", detail)
}

/// Whether `url` is an `https://` URL with a host and nothing a page could
/// misread (no spaces, quotes or angle brackets).
fn is_https_url(url: &str) -> bool {
    url.len() <= 2_000
        && url
            .strip_prefix("https://")
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && url
            .chars()
            .all(|c| c.is_ascii_graphic() && !"\"'<>\\`".contains(c))
}

/// Whether `origin` is `https://host[:port]`, nothing more.
fn is_origin(origin: &str) -> bool {
    origin.strip_prefix("https://").is_some_and(|host| {
        !host.is_empty()
            && host.len() <= 255
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
    })
}

impl FormInput {
    /// Every rule that needs no stored state; `brand` comes back as given
    /// (after NFC), for the store to match against the active brands.
    pub fn parse(self) -> Result<(String, FormDefinition), Invalid> {
        if !is_tenant_id(&self.id) || self.id == OPT_OUT {
            return Err(invalid(
                "id",
                "a form id is 1-64 lowercase letters, digits and inner hyphens, and not `opt-out`",
            ));
        }
        let offer = Offer::check(
            &self.brand,
            &self.consent_text,
            &self.purposes,
            self.message_channels.as_deref(),
            "the consent text must name the brand as a whole word",
        )?;
        if let Some(tag) = &self.language {
            if !is_well_formed_language_tag(tag) {
                return Err(invalid("language", "a well-formed BCP 47 language tag"));
            }
        }
        let default_region = match &self.default_region {
            Some(region) => Some(
                Region::parse(region)
                    .map_err(|_| invalid("default_region", "an ISO 3166 alpha-2 region"))?
                    .as_str()
                    .to_owned(),
            ),
            None => None,
        };
        if !is_https_url(&self.privacy_url) {
            return Err(invalid("privacy_url", "an https:// URL"));
        }
        let mut embed_origins = self.embed_origins.unwrap_or_default();
        if embed_origins.len() > 20 || !embed_origins.iter().all(|o| is_origin(o)) {
            return Err(invalid(
                "embed_origins",
                "at most 20 origins, each https://host[:port]",
            ));
        }
        embed_origins.sort();
        embed_origins.dedup();
        let definition = FormDefinition {
            brand: offer.brand.clone(),
            consent_text: self.consent_text,
            purposes: Purpose::ALL
                .into_iter()
                .filter(|p| offer.purposes.contains(*p))
                .collect(),
            message_channels: MessageChannel::ALL
                .into_iter()
                .filter(|c| offer.message_channels.contains(*c))
                .collect(),
            language: self.language,
            default_region,
            privacy_url: self.privacy_url,
            embed_origins,
        };
        Ok((offer.brand, definition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> FormInput {
        serde_json::from_value(serde_json::json!({
            "id": "newsletter", "brand": "Makro",
            "consent_text": "Yes, I want offers from Makro on WhatsApp.",
            "purposes": ["utility", "marketing"], "language": "pt-BR",
            "default_region": "br", "privacy_url": "https://shop.example/privacy",
            "embed_origins": ["https://shop.example", "https://shop.example"]
        }))
        .unwrap()
    }

    #[test]
    fn a_form_is_checked_once() {
        let (brand, form) = input().parse().unwrap();
        assert_eq!(brand, "Makro");
        assert_eq!(form.purposes, vec![Purpose::Marketing, Purpose::Utility]);
        assert_eq!(form.message_channels, vec![MessageChannel::Whatsapp]);
        assert_eq!(form.default_region.as_deref(), Some("BR"));
        assert_eq!(form.embed_origins, vec!["https://shop.example"]);
        assert_eq!(form.page_language(), "pt");
        let refused = |change: &dyn Fn(&mut FormInput), field: &str| {
            let mut bad = input();
            change(&mut bad);
            let error = bad.parse().unwrap_err();
            assert_eq!(error.errors[0].field, field);
        };
        refused(&|f| f.id = "opt-out".into(), "id");
        refused(&|f| f.id = "Bad Id".into(), "id");
        refused(
            &|f| f.consent_text = "Yes, offers please.".into(),
            "consent_text",
        );
        refused(&|f| f.purposes = vec![], "purposes");
        refused(
            &|f| f.privacy_url = "http://shop.example".into(),
            "privacy_url",
        );
        refused(
            &|f| f.privacy_url = "https://shop.example/\"x".into(),
            "privacy_url",
        );
        refused(&|f| f.default_region = Some("XX".into()), "default_region");
        refused(&|f| f.language = Some("not a tag".into()), "language");
        refused(
            &|f| f.embed_origins = Some(vec!["https://a.example/path".into()]),
            "embed_origins",
        );
    }
}
