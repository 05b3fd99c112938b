//! Webhook signature checks for the inbound channels (Meta's WhatsApp Cloud
//! API and Twilio): pure functions over bytes and strings, no HTTP types.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;

const WHATSAPP_PREFIX: &str = "sha256=";

/// Checks Meta's `X-Hub-Signature-256` (`sha256=` + hex HMAC-SHA256 of the
/// raw body) against each app secret (current, then previous).
pub fn whatsapp_signature_valid(secrets: &[&str], body: &[u8], header: Option<&str>) -> bool {
    let Some(claimed) = header.and_then(|h| h.trim().strip_prefix(WHATSAPP_PREFIX)) else {
        return false;
    };
    // Decoding (rather than comparing text) accepts either hex case and
    // rejects any length but 32 bytes before a MAC is computed.
    let mut tag = [0u8; 32];
    if hex::decode_to_slice(claimed, &mut tag).is_err() {
        return false;
    }
    usable(secrets).any(|secret| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&tag).is_ok()
    })
}

/// Checks Twilio's `X-Twilio-Signature`: base64 HMAC-SHA1 over the URL
/// followed by every POST parameter's name and value, sorted by name then
/// value. Every token (primary, secondary) and URL variant is tried.
pub fn twilio_signature_valid(
    tokens: &[&str],
    url: &str,
    params: &[(String, String)],
    header: Option<&str>,
) -> bool {
    let Some(claimed) = header.map(str::trim) else {
        return false;
    };
    let Ok(tag) = BASE64.decode(claimed) else {
        return false;
    };
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Tuple order is name then value, byte-wise: what Twilio's libraries do
    // for repeated names (e.g. several `MediaUrl`s).
    sorted.sort();
    let mut signed_params = Vec::new();
    for (name, value) in sorted {
        signed_params.extend_from_slice(name.as_bytes());
        signed_params.extend_from_slice(value.as_bytes());
    }
    let urls = twilio_url_variants(url);
    usable(tokens).any(|token| {
        urls.iter().any(|candidate| {
            let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(token.as_bytes()) else {
                return false;
            };
            mac.update(candidate.as_bytes());
            mac.update(&signed_params);
            mac.verify_slice(&tag).is_ok()
        })
    })
}

/// The URL as configured plus, for `http`/`https`, the same URL with the
/// scheme's default port added (if absent) or removed (if explicit), because
/// Twilio may sign either form. Other ports give only the URL as given.
pub fn twilio_url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    if let Some(other) = toggle_default_port(url) {
        variants.push(other);
    }
    variants
}

/// An unset secret must not turn into a key anyone can guess.
fn usable<'a>(keys: &'a [&'a str]) -> impl Iterator<Item = &'a str> + 'a {
    keys.iter().copied().filter(|k| !k.is_empty())
}

/// `scheme://host[:port]rest` with the default port flipped, or `None` when
/// the URL is not plain http(s) or carries another port.
fn toggle_default_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // Userinfo is out of scope; leave such URLs alone rather than guess.
    if authority.contains('@') {
        return None;
    }
    // An IPv6 literal has colons of its own: the port follows the `]`.
    let host_end = if authority.starts_with('[') {
        authority.find(']')? + 1
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    let (host, port) = authority.split_at(host_end);
    if host.is_empty() || host == "[]" {
        return None;
    }
    if port.is_empty() {
        return Some(format!("{scheme}://{host}:{default_port}{tail}"));
    }
    (port.strip_prefix(':')? == default_port).then(|| format!("{scheme}://{host}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231, section 4.3 (test case 2): key "Jefe", published HMAC-SHA256.
    const RFC4231_KEY: &str = "Jefe";
    const RFC4231_DATA: &[u8] = b"what do ya want for nothing?";
    const RFC4231_MAC: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

    // A WhatsApp-shaped body; the expected MAC was computed independently
    // with Python's hmac module:
    // hmac.new(b"meta-app-secret-current", BODY, hashlib.sha256).hexdigest()
    const WA_SECRET: &str = "meta-app-secret-current";
    const WA_PREVIOUS: &str = "meta-app-secret-previous";
    const WA_BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages"}]}]}"#;
    const WA_MAC: &str = "b7fce5a1e45bef8f6cd650f79d049703059c83735f3790bcba4f27370e373b04";

    // Twilio's worked example ("Secure webhooks" / security docs): token
    // 12345, this URL and these POST parameters sign to this value.
    const TW_TOKEN: &str = "12345";
    const TW_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const TW_SIGNATURE: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

    fn header(hex: &str) -> String {
        format!("sha256={hex}")
    }

    fn tw_params() -> Vec<(String, String)> {
        // Out of order on purpose: the signature sorts them.
        [
            ("To", "+18005551212"),
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("Caller", "+12349013030"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
    }

    /// Signs the way Twilio does, for the URL-variant cases (the published
    /// vector above pins the algorithm).
    fn twilio_sign(token: &str, url: &str, params: &[(String, String)]) -> String {
        let mut sorted = params.to_vec();
        sorted.sort();
        let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).unwrap();
        mac.update(url.as_bytes());
        for (n, v) in &sorted {
            mac.update(n.as_bytes());
            mac.update(v.as_bytes());
        }
        BASE64.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn whatsapp_rfc4231_vector_verifies() {
        let h = header(RFC4231_MAC);
        assert!(whatsapp_signature_valid(
            &[RFC4231_KEY],
            RFC4231_DATA,
            Some(&h)
        ));
    }

    #[test]
    fn whatsapp_python_vector_verifies_in_either_hex_case() {
        let lower = header(WA_MAC);
        let upper = header(&WA_MAC.to_ascii_uppercase());
        assert!(whatsapp_signature_valid(
            &[WA_SECRET],
            WA_BODY,
            Some(&lower)
        ));
        assert!(whatsapp_signature_valid(
            &[WA_SECRET],
            WA_BODY,
            Some(&upper)
        ));
    }

    #[test]
    fn whatsapp_previous_secret_is_accepted() {
        let h = header(WA_MAC);
        assert!(whatsapp_signature_valid(
            &[WA_PREVIOUS, WA_SECRET],
            WA_BODY,
            Some(&h)
        ));
    }

    #[test]
    fn whatsapp_wrong_secret_fails() {
        let h = header(WA_MAC);
        assert!(!whatsapp_signature_valid(&[WA_PREVIOUS], WA_BODY, Some(&h)));
        assert!(!whatsapp_signature_valid(&[], WA_BODY, Some(&h)));
        assert!(!whatsapp_signature_valid(&[""], WA_BODY, Some(&h)));
    }

    #[test]
    fn whatsapp_tampered_body_fails() {
        let h = header(WA_MAC);
        let mut body = WA_BODY.to_vec();
        body[12] ^= 1;
        assert!(!whatsapp_signature_valid(&[WA_SECRET], &body, Some(&h)));
        assert!(!whatsapp_signature_valid(
            &[WA_SECRET],
            &WA_BODY[1..],
            Some(&h)
        ));
    }

    #[test]
    fn whatsapp_missing_or_garbage_headers_fail() {
        let ok = |h: Option<&str>| whatsapp_signature_valid(&[WA_SECRET], WA_BODY, h);
        assert!(!ok(None));
        assert!(!ok(Some("")));
        assert!(!ok(Some("sha256=")));
        // No prefix, or another algorithm's prefix.
        assert!(!ok(Some(WA_MAC)));
        assert!(!ok(Some(&format!("sha1={WA_MAC}"))));
        assert!(!ok(Some(&format!("SHA256={WA_MAC}"))));
        // Wrong lengths and non-hex.
        assert!(!ok(Some(&header(&WA_MAC[..62]))));
        assert!(!ok(Some(&header(&format!("{WA_MAC}00")))));
        assert!(!ok(Some(&header(&format!("{}zz", &WA_MAC[..62])))));
        assert!(!ok(Some(&header(&"0".repeat(64)))));
    }

    #[test]
    fn twilio_published_vector_verifies() {
        assert!(twilio_signature_valid(
            &[TW_TOKEN],
            TW_URL,
            &tw_params(),
            Some(TW_SIGNATURE)
        ));
        assert_eq!(twilio_sign(TW_TOKEN, TW_URL, &tw_params()), TW_SIGNATURE);
    }

    #[test]
    fn twilio_secondary_token_is_accepted() {
        let tokens = ["primary-token", TW_TOKEN];
        assert!(twilio_signature_valid(
            &tokens,
            TW_URL,
            &tw_params(),
            Some(TW_SIGNATURE)
        ));
    }

    #[test]
    fn twilio_wrong_token_url_or_params_fail() {
        let sig = Some(TW_SIGNATURE);
        assert!(!twilio_signature_valid(
            &["54321"],
            TW_URL,
            &tw_params(),
            sig
        ));
        assert!(!twilio_signature_valid(&[""], TW_URL, &tw_params(), sig));
        assert!(!twilio_signature_valid(&[], TW_URL, &tw_params(), sig));
        let other_url = "https://mycompany.com/myapp.php?foo=1&bar=3";
        assert!(!twilio_signature_valid(
            &[TW_TOKEN],
            other_url,
            &tw_params(),
            sig
        ));
        let mut tampered = tw_params();
        tampered[2].1 = "1235".to_owned();
        assert!(!twilio_signature_valid(&[TW_TOKEN], TW_URL, &tampered, sig));
        let mut extra = tw_params();
        extra.push(("Body".to_owned(), String::new()));
        assert!(!twilio_signature_valid(&[TW_TOKEN], TW_URL, &extra, sig));
    }

    #[test]
    fn twilio_missing_or_garbage_headers_fail() {
        let ok = |h: Option<&str>| twilio_signature_valid(&[TW_TOKEN], TW_URL, &tw_params(), h);
        assert!(!ok(None));
        assert!(!ok(Some("")));
        assert!(!ok(Some("not base64!")));
        assert!(!ok(Some(&TW_SIGNATURE[..TW_SIGNATURE.len() - 1])));
        // URL-safe alphabet is not what Twilio sends.
        assert!(!ok(Some(&TW_SIGNATURE.replace('/', "_"))));
        assert!(!ok(Some("AAAAAAAAAAAAAAAAAAAAAAAAAAA=")));
        assert!(!ok(Some("AAAA")));
    }

    #[test]
    fn twilio_duplicate_names_sort_by_value() {
        // Expected value computed with Python's hmac module over the URL +
        // "Bodyhi" + "MediaUrl…a.jpg" + "MediaUrl…b.jpg" + "To+15005550006".
        let expected = "G0M7c3pGROw8UhL+WP/c44rGbqw=";
        let url = "https://mycompany.com/mms";
        let params: Vec<(String, String)> = [
            ("To", "+15005550006"),
            ("MediaUrl", "https://example.net/b.jpg"),
            ("MediaUrl", "https://example.net/a.jpg"),
            ("Body", "hi"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
        assert!(twilio_signature_valid(
            &[TW_TOKEN],
            url,
            &params,
            Some(expected)
        ));
        // Dropping one of the repeated parameters breaks the signature.
        let fewer: Vec<_> = params.iter().skip(1).cloned().collect();
        assert!(!twilio_signature_valid(
            &[TW_TOKEN],
            url,
            &fewer,
            Some(expected)
        ));
    }

    #[test]
    fn twilio_default_port_forms_are_interchangeable() {
        let params = tw_params();
        let signed_with_port = twilio_sign(TW_TOKEN, "https://host.example:443/x?a=1", &params);
        assert!(twilio_signature_valid(
            &[TW_TOKEN],
            "https://host.example/x?a=1",
            &params,
            Some(&signed_with_port)
        ));
        let signed_without = twilio_sign(TW_TOKEN, "https://host.example/x", &params);
        assert!(twilio_signature_valid(
            &[TW_TOKEN],
            "https://host.example:443/x",
            &params,
            Some(&signed_without)
        ));
        let http_signed = twilio_sign(TW_TOKEN, "http://host.example:80/x", &params);
        assert!(twilio_signature_valid(
            &[TW_TOKEN],
            "http://host.example/x",
            &params,
            Some(&http_signed)
        ));
    }

    #[test]
    fn twilio_non_default_port_is_not_stripped() {
        let params = tw_params();
        let signed_bare = twilio_sign(TW_TOKEN, "https://host.example/x", &params);
        assert!(!twilio_signature_valid(
            &[TW_TOKEN],
            "https://host.example:8443/x",
            &params,
            Some(&signed_bare)
        ));
        // The wrong scheme's default port is not a default either.
        let signed_80 = twilio_sign(TW_TOKEN, "https://host.example:80/x", &params);
        assert!(!twilio_signature_valid(
            &[TW_TOKEN],
            "https://host.example/x",
            &params,
            Some(&signed_80)
        ));
    }

    #[test]
    fn url_variants() {
        assert_eq!(
            twilio_url_variants("https://host/path"),
            ["https://host/path", "https://host:443/path"]
        );
        assert_eq!(
            twilio_url_variants("https://host:443/path?q=1"),
            ["https://host:443/path?q=1", "https://host/path?q=1"]
        );
        assert_eq!(
            twilio_url_variants("http://host"),
            ["http://host", "http://host:80"]
        );
        assert_eq!(
            twilio_url_variants("http://host:80?x=y"),
            ["http://host:80?x=y", "http://host?x=y"]
        );
        assert_eq!(
            twilio_url_variants("HTTPS://Host/p"),
            ["HTTPS://Host/p", "HTTPS://Host:443/p"]
        );
        assert_eq!(
            twilio_url_variants("https://host:8443/p"),
            ["https://host:8443/p"]
        );
        assert_eq!(twilio_url_variants("https://host:/p"), ["https://host:/p"]);
        assert_eq!(twilio_url_variants("wss://host/p"), ["wss://host/p"]);
        assert_eq!(twilio_url_variants("not a url"), ["not a url"]);
        assert_eq!(twilio_url_variants("https:///p"), ["https:///p"]);
    }

    #[test]
    fn url_variants_keep_ipv6_literals() {
        assert_eq!(
            twilio_url_variants("https://[::1]/hook"),
            ["https://[::1]/hook", "https://[::1]:443/hook"]
        );
        assert_eq!(
            twilio_url_variants("http://[2001:db8::7]:80/hook"),
            ["http://[2001:db8::7]:80/hook", "http://[2001:db8::7]/hook"]
        );
        assert_eq!(
            twilio_url_variants("https://[::1]:8443/hook"),
            ["https://[::1]:8443/hook"]
        );
        assert_eq!(
            twilio_url_variants("https://[::1/hook"),
            ["https://[::1/hook"]
        );
    }
}
