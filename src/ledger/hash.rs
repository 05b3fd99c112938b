//! Hashes as the ledger uses them: the RFC 6962 leaf hash, SHA-256, and
//! lowercase hex both ways (table lookups: the verifier hashes millions).

use sha2::{Digest, Sha256};

/// A SHA-256 hash (a leaf, a node, a root, a commitment).
pub type Hash = [u8; 32];

/// The RFC 6962 leaf hash of serialised entry bytes.
pub fn leaf_hash(canonical: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// Lowercase hex of bytes (a table lookup: the hex crate's iterators are
/// slow on the verification path).
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 15) as usize]);
    }
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// Value of each byte as a lowercase hex digit; 0xff for anything else.
const HEX_VALUES: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// A hash written as 64 lowercase hex digits, or `None`.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let bytes: &[u8; 64] = text.as_bytes().try_into().ok()?;
    let mut out = [0u8; 32];
    let mut invalid = 0u8;
    for (i, o) in out.iter_mut().enumerate() {
        let hi = HEX_VALUES[bytes[2 * i] as usize];
        let lo = HEX_VALUES[bytes[2 * i + 1] as usize];
        invalid |= hi | lo;
        *o = (hi << 4) | (lo & 15);
    }
    (invalid & 0xf0 == 0).then_some(out)
}

/// Hex SHA-256 of bytes (consent texts, request bodies).
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

/// SHA-256 of bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_parse_only_as_lowercase_hex() {
        let h = [0xab; 32];
        assert_eq!(parse_hash(&to_hex(&h)), Some(h));
        assert_eq!(parse_hash(&to_hex(&h).to_uppercase()), None);
        assert_eq!(parse_hash(&"g".repeat(64)), None);
        assert_eq!(parse_hash(&"0".repeat(63)), None);
        assert_eq!(parse_hash(&format!("{}é", "0".repeat(62))), None);
        assert_eq!(parse_hash(&"0f".repeat(32)), Some([0x0f; 32]));
    }
}
