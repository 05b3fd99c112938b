//! Where outbound events may go (SPEC section 13, docs/events.md): an
//! endpoint's URL, and the addresses a delivery may connect to. Special
//! purpose addresses (IANA's registries: private, shared, loopback, ULA,
//! documentation, IPv4-mapped and NAT64 forms, …) only when the operator
//! allows private addresses; link-local and cloud metadata addresses never.

use super::problem::Invalid;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest endpoint URL.
pub const MAX_URL_LEN: usize = 2048;

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Special purpose: allowed only with `CONSENT_LEDGER_EVENT_ALLOW_PRIVATE`.
    Special,
    /// Link-local or a cloud metadata address: never.
    Forbidden,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Special => "a private or special-purpose address",
            Refused::Forbidden => "a link-local or cloud metadata address",
        }
    }
}

/// What the operator allows deliveries to reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Private and loopback addresses (and `http`) allowed.
    pub allow_private: bool,
}

impl AddressPolicy {
    /// Whether a delivery may connect to `ip`.
    pub fn admits(self, ip: IpAddr) -> Result<(), Refused> {
        match classify(ip) {
            None => Ok(()),
            Some(Refused::Special) if self.allow_private => Ok(()),
            Some(refused) => Err(refused),
        }
    }

    /// An endpoint URL as an admin gave it: absolute `https` (or `http` when
    /// private addresses are allowed), a host, no credentials or fragment,
    /// at most 2,048 characters; an address given literally (or
    /// `localhost`) must be one a delivery may reach.
    pub fn endpoint_url(self, text: &str) -> Result<url::Url, Invalid> {
        let invalid = |code, detail: &str| Invalid::request_field("url", code, detail);
        if text.len() > MAX_URL_LEN {
            return Err(invalid("too_long", "`url` is at most 2,048 characters"));
        }
        let url = url::Url::parse(text)
            .map_err(|_| invalid("not_a_url", "`url` is not an absolute URL"))?;
        let scheme_ok = url.scheme() == "https" || (self.allow_private && url.scheme() == "http");
        if !scheme_ok {
            return Err(invalid("not_https", "an endpoint URL must be https"));
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "not_a_url",
                "an endpoint URL has no credentials and no fragment",
            ));
        }
        let literal = match url.host() {
            None => return Err(invalid("not_a_url", "an endpoint URL names a host")),
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.');
                (name == "localhost" || name.ends_with(".localhost"))
                    .then_some(IpAddr::V4(Ipv4Addr::LOCALHOST))
            }
        };
        if let Some(refused) = literal.and_then(|ip| self.admits(ip).err()) {
            return Err(invalid(
                "refused_address",
                &format!("an endpoint may not be {}", refused.as_str()),
            ));
        }
        Ok(url)
    }
}

/// `None` for a globally reachable unicast address, else why not.
pub fn classify(ip: IpAddr) -> Option<Refused> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// `(address, prefix length)` as one number and mask.
fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], len: u32) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

/// IANA's IPv4 special-purpose registry, multicast and broadcast.
const SPECIAL_V4: &[([u8; 4], u32)] = &[
    ([0, 0, 0, 0], 8),
    ([10, 0, 0, 0], 8),
    ([100, 64, 0, 0], 10),
    ([127, 0, 0, 0], 8),
    ([172, 16, 0, 0], 12),
    ([192, 0, 0, 0], 24),
    ([192, 0, 2, 0], 24),
    ([192, 31, 196, 0], 24),
    ([192, 52, 193, 0], 24),
    ([192, 88, 99, 0], 24),
    ([192, 168, 0, 0], 16),
    ([192, 175, 48, 0], 24),
    ([198, 18, 0, 0], 15),
    ([198, 51, 100, 0], 24),
    ([203, 0, 113, 0], 24),
    ([224, 0, 0, 0], 4),
    ([240, 0, 0, 0], 4),
];

fn classify_v4(ip: Ipv4Addr) -> Option<Refused> {
    if in_v4(ip, [169, 254, 0, 0], 16) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        return Some(Refused::Forbidden);
    }
    SPECIAL_V4
        .iter()
        .any(|(net, len)| in_v4(ip, *net, *len))
        .then_some(Refused::Special)
}

/// IANA's IPv6 special-purpose registry, ULA and multicast.
const SPECIAL_V6: &[([u16; 8], u32)] = &[
    ([0, 0, 0, 0, 0, 0, 0, 0], 128),
    ([0, 0, 0, 0, 0, 0, 0, 1], 128),
    ([0, 0, 0, 0, 0, 0xffff, 0, 0], 96),
    ([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96),
    ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
    ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
    ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
    ([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
];

fn classify_v6(ip: Ipv6Addr) -> Option<Refused> {
    let metadata = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    if in_v6(ip, [0xfe80, 0, 0, 0, 0, 0, 0, 0], 10) || ip == metadata {
        return Some(Refused::Forbidden);
    }
    // An IPv4 address in IPv6 form (mapped, compatible or NAT64) is never
    // better than the address it carries.
    let carried = [
        ([0, 0, 0, 0, 0, 0xffff, 0, 0], 96),
        ([0, 0, 0, 0, 0, 0, 0, 0], 96),
        ([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96),
    ];
    for (net, len) in carried {
        if in_v6(ip, net, len) {
            let v4 = Ipv4Addr::from((u128::from(ip) & 0xffff_ffff) as u32);
            if classify_v4(v4) == Some(Refused::Forbidden) {
                return Some(Refused::Forbidden);
            }
        }
    }
    SPECIAL_V6
        .iter()
        .any(|(net, len)| in_v6(ip, *net, *len))
        .then_some(Refused::Special)
        .or_else(|| in_v6(ip, [0, 0, 0, 0, 0, 0, 0, 0], 96).then_some(Refused::Special))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> Option<Refused> {
        classify(text.parse().expect("an address"))
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:82b::200e",
        ] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }

    #[test]
    fn special_purpose_addresses_need_the_operators_leave() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "127.0.0.1",
            "0.0.0.0",
            "198.18.0.1",
            "192.0.2.10",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "::ffff:10.0.0.1",
            "64:ff9b::808:808",
            "64:ff9b:1::1",
            "2002:c000:204::1",
            "ff02::1",
        ] {
            assert_eq!(class(ip), Some(Refused::Special), "{ip}");
            let allowed = AddressPolicy {
                allow_private: true,
            };
            assert_eq!(allowed.admits(ip.parse().unwrap()), Ok(()), "{ip}");
        }
    }

    #[test]
    fn link_local_and_metadata_addresses_are_refused_always() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "::ffff:100.100.100.200",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert_eq!(class(ip), Some(Refused::Forbidden), "{ip}");
            let allowed = AddressPolicy {
                allow_private: true,
            };
            assert_eq!(
                allowed.admits(ip.parse().unwrap()),
                Err(Refused::Forbidden),
                "{ip}"
            );
        }
    }

    #[test]
    fn endpoint_urls_are_https_to_a_host_that_may_be_reached() {
        let strict = AddressPolicy {
            allow_private: false,
        };
        let open = AddressPolicy {
            allow_private: true,
        };
        assert!(strict
            .endpoint_url("https://crm.example.com/hooks?x=1")
            .is_ok());
        assert!(strict.endpoint_url("https://93.184.215.14:8443/").is_ok());
        let code = |policy: AddressPolicy, url: &str| {
            policy
                .endpoint_url(url)
                .expect_err(url)
                .errors
                .first()
                .map(|e| e.code.to_string())
        };
        for (url, expected) in [
            ("http://crm.example.com/", "not_https"),
            ("ftp://crm.example.com/", "not_https"),
            ("crm.example.com/hooks", "not_a_url"),
            ("https://user:pw@crm.example.com/", "not_a_url"),
            ("https://crm.example.com/#frag", "not_a_url"),
            ("https://127.0.0.1/", "refused_address"),
            ("https://localhost:8080/", "refused_address"),
            ("https://[::1]/", "refused_address"),
            ("https://10.0.0.5/", "refused_address"),
            (
                "https://169.254.169.254/latest/meta-data",
                "refused_address",
            ),
        ] {
            assert_eq!(code(strict, url).as_deref(), Some(expected), "{url}");
        }
        assert!(open.endpoint_url("http://127.0.0.1:9000/events").is_ok());
        assert_eq!(
            code(open, "http://169.254.169.254/").as_deref(),
            Some("refused_address")
        );
        let long = format!("https://crm.example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(code(strict, &long).as_deref(), Some("too_long"));
    }
}
