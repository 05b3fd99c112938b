//! Evidence documents (docs/recording.md): scans of signed paper forms, told
//! apart by their content, never by what the client says they are.

/// Largest document, in bytes (20 MiB).
pub const MAX_DOCUMENT_BYTES: usize = 20 * 1024 * 1024;

/// The kinds of document kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Pdf,
    Jpeg,
    Png,
}

impl MediaType {
    /// What the content is, by its first bytes (its magic number).
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"%PDF-") {
            Some(MediaType::Pdf)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(MediaType::Jpeg)
        } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
            Some(MediaType::Png)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Pdf => "application/pdf",
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [MediaType::Pdf, MediaType::Jpeg, MediaType::Png]
            .into_iter()
            .find(|m| m.as_str() == text)
    }
}

/// Whether `text` is a document id: `doc_` and 12 lowercase hex digits.
pub fn is_document_id(text: &str) -> bool {
    text.strip_prefix("doc_").is_some_and(|hex| {
        hex.len() == 12
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_told_by_their_content() {
        assert_eq!(MediaType::sniff(b"%PDF-1.7\n..."), Some(MediaType::Pdf));
        assert_eq!(
            MediaType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Some(MediaType::Jpeg)
        );
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0];
        assert_eq!(MediaType::sniff(&png), Some(MediaType::Png));
        for other in [
            &b""[..],
            b"%PDF",
            b"GIF89a",
            b"<html>",
            &[0xFF, 0xD8],
            &png[..7],
        ] {
            assert_eq!(MediaType::sniff(other), None, "{other:?}");
        }
        for m in [MediaType::Pdf, MediaType::Jpeg, MediaType::Png] {
            assert_eq!(MediaType::parse(m.as_str()), Some(m));
        }
    }

    #[test]
    fn document_ids() {
        assert!(is_document_id("doc_0123456789ab"));
        for bad in [
            "doc_0123456789AB",
            "doc_0123456789a",
            "key_0123456789ab",
            "doc_0123456789abc",
            "",
        ] {
            assert!(!is_document_id(bad), "{bad}");
        }
    }
}
