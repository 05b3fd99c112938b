//! Campaign entry points (SPEC section 14, docs/entry-points.md): a phrase
//! printed on a poster, a package or a receipt as a click-to-chat link and
//! its QR code. Sent by WhatsApp, the phrase is an opt-in that names the
//! entry point in its evidence.

use super::purpose::Purpose;
use super::vocabulary::normalize;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An entry point as an admin defines it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryPointInput {
    /// 1 to 64 lowercase letters, digits, `-` or `_`; unique per tenant.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub id: String,
    /// An active brand of the tenant.
    pub brand: String,
    /// At least one.
    #[schema(min_items = 1)]
    pub purposes: Vec<Purpose>,
    /// What the person sends: two words or more, which no enabled
    /// vocabulary reads as an opt-out or a lift word.
    pub phrase: String,
    /// Shown beside the code, naming the brand as a whole word: the opt-in's consent text.
    pub prompt: String,
    /// The WhatsApp number the link opens a chat with (default: the tenant's first).
    #[serde(default)]
    pub phone_number_id: Option<String>,
}

/// An entry point with its link.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EntryPoint {
    pub id: String,
    pub brand: String,
    pub purposes: Vec<Purpose>,
    pub phrase: String,
    pub prompt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    /// `https://wa.me/<the business number>?text=<phrase>`: what the QR code holds.
    pub link: String,
}

/// Whether `id` may name an entry point.
pub fn is_entry_point_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
}

/// Whether a phrase has two words or more once normalised as messages are.
pub fn has_two_words(phrase: &str) -> bool {
    normalize(phrase)
        .split(' ')
        .filter(|w| !w.is_empty())
        .count()
        >= 2
}

/// The click-to-chat link of a business number (its display form, digits
/// kept) with the phrase as the message's text, percent-encoded.
pub fn click_to_chat_link(display_number: &str, phrase: &str) -> Option<String> {
    let digits: String = display_number
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    if digits.is_empty() {
        return None;
    }
    let mut text = String::new();
    for byte in phrase.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                text.push(*byte as char)
            }
            other => text.push_str(&format!("%{other:02X}")),
        }
    }
    Some(format!("https://wa.me/{digits}?text={text}"))
}

/// The QR code of `link` as an SVG document.
pub fn qr_svg(link: &str) -> Option<String> {
    let code = qrcode::QrCode::new(link.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(256, 256)
            .quiet_zone(true)
            .build(),
    )
}

/// The QR code of `link` as a PNG (8 pixels a module, a quiet zone of 4).
pub fn qr_png(link: &str) -> Option<Vec<u8>> {
    const SCALE: usize = 8;
    const QUIET: usize = 4;
    let code = qrcode::QrCode::new(link.as_bytes()).ok()?;
    let width = code.width();
    let size = (width + 2 * QUIET) * SCALE;
    let colors = code.to_colors();
    let mut pixels = vec![255u8; size * size];
    for (i, color) in colors.iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let (x, y) = ((i % width + QUIET) * SCALE, (i / width + QUIET) * SCALE);
        for row in y..y + SCALE {
            pixels[row * size + x..row * size + x + SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, size as u32, size as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().ok()?;
    writer.write_image_data(&pixels).ok()?;
    writer.finish().ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_holds_the_number_digits_and_the_phrase_encoded() {
        assert_eq!(
            click_to_chat_link("+49 30 123456", "JOIN MAKRO poster-7"),
            Some("https://wa.me/4930123456?text=JOIN%20MAKRO%20poster-7".into())
        );
        assert_eq!(click_to_chat_link("none", "JOIN MAKRO"), None);
    }

    #[test]
    fn ids_and_phrases() {
        assert!(is_entry_point_id("poster-berlin_2026"));
        assert!(!is_entry_point_id("Poster"));
        assert!(!is_entry_point_id(""));
        assert!(has_two_words("Join Makro!"));
        assert!(!has_two_words("JOIN!!"));
    }

    #[test]
    fn the_codes_render() {
        let svg = qr_svg("https://wa.me/4930123456?text=JOIN%20MAKRO").unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
        let png = qr_png("https://wa.me/4930123456?text=JOIN%20MAKRO").unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
