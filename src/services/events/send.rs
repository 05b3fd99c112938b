//! One delivery over HTTP (docs/events.md): every address the endpoint's
//! host resolves to is checked against the operator's policy before a
//! connection is made, and only checked addresses are connected to; no
//! proxy, no redirect followed, 5 s to connect, 10 s in all, at most 64
//! KiB of the answer read. Blocking: run it off the async workers.

use crate::domain::endpoint::AddressPolicy;
use std::io::Read;
use std::time::Duration;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The endpoint answered with this status (2xx: delivered).
    Answered(u16),
    /// The host resolves to an address the policy refuses: nothing sent.
    Refused(&'static str),
    /// No answer: the name did not resolve, the connection failed or timed
    /// out (a short reason, with no URL in it).
    Failed(String),
}

/// Resolves as the system does, then refuses the whole name when any of
/// its addresses is one the policy does not admit.
#[derive(Debug)]
struct CheckedResolver {
    policy: AddressPolicy,
    inner: DefaultResolver,
}

/// The message a refused address travels in, through ureq's error.
const REFUSED_MARK: &str = "consent-ledger: refused address: ";

impl Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addresses = self.inner.resolve(uri, config, timeout)?;
        for address in addresses.iter() {
            if let Err(refused) = self.policy.admits(address.ip()) {
                let message = format!("{REFUSED_MARK}{}", refused.as_str());
                return Err(ureq::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    message,
                )));
            }
        }
        Ok(addresses)
    }
}

/// An HTTP client for deliveries under one address policy.
pub struct Sender {
    agent: ureq::Agent,
    policy: AddressPolicy,
}

impl Sender {
    pub fn new(policy: AddressPolicy) -> Self {
        let config = ureq::Agent::config_builder()
            .proxy(None)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(DELIVERY_TIMEOUT))
            .user_agent(concat!("consent-ledger/", env!("CARGO_PKG_VERSION")))
            .build();
        let resolver = CheckedResolver {
            policy,
            inner: DefaultResolver::default(),
        };
        Self {
            agent: ureq::Agent::with_parts(config, DefaultConnector::new(), resolver),
            policy,
        }
    }

    /// POSTs `body` as JSON with the Standard Webhooks headers.
    pub fn send(&self, url: &str, headers: &[(&str, String)], body: &[u8]) -> Sent {
        // An endpoint registered while the operator allowed http stops
        // getting events in clear once that leave is withdrawn.
        if !self.policy.allow_private && !url.starts_with("https://") {
            return Sent::Refused("http without CONSENT_LEDGER_EVENT_ALLOW_PRIVATE");
        }
        let mut request = self
            .agent
            .post(url)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send(body) {
            Ok(mut answer) => {
                let status = answer.status().as_u16();
                // Read a little of the answer so the connection ends
                // cleanly; what it says does not matter.
                let mut sink = Vec::new();
                let _ = answer
                    .body_mut()
                    .as_reader()
                    .take(MAX_ANSWER_BYTES)
                    .read_to_end(&mut sink);
                Sent::Answered(status)
            }
            Err(ureq::Error::Io(e)) if e.to_string().starts_with(REFUSED_MARK) => {
                let refused = if e.to_string().contains("link-local") {
                    crate::domain::endpoint::Refused::Forbidden
                } else {
                    crate::domain::endpoint::Refused::Special
                };
                Sent::Refused(refused.as_str())
            }
            Err(ureq::Error::Timeout(_)) => Sent::Failed("timed out".to_owned()),
            Err(ureq::Error::HostNotFound) => Sent::Failed("host not found".to_owned()),
            Err(ureq::Error::Io(e)) => Sent::Failed(format!("connection failed: {}", e.kind())),
            Err(other) => Sent::Failed(short(&other)),
        }
    }
}

/// The error's kind without anything the URL or answer put in it.
fn short(error: &ureq::Error) -> String {
    let text = format!("{error:?}");
    let kind: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    format!("request failed: {kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked resolver refuses a name that resolves to loopback and
    /// a literal private address before any connection, and plain http,
    /// unless the operator allows private addresses.
    #[test]
    fn names_and_addresses_the_policy_refuses_are_never_contacted() {
        let strict = Sender::new(AddressPolicy {
            allow_private: false,
        });
        for url in [
            "https://localhost:9/hook",
            "https://127.0.0.1:9/hook",
            "https://[::1]:9/hook",
            "https://10.0.0.1:9/hook",
        ] {
            assert!(
                matches!(strict.send(url, &[], b"{}"), Sent::Refused(_)),
                "{url}"
            );
        }
        assert!(matches!(
            strict.send("http://93.184.215.14/", &[], b"{}"),
            Sent::Refused(_)
        ));
        let open = Sender::new(AddressPolicy {
            allow_private: true,
        });
        // Allowed, so contacted: port 9 on loopback refuses the connection.
        assert!(matches!(
            open.send("http://127.0.0.1:9/hook", &[], b"{}"),
            Sent::Failed(_)
        ));
        assert_eq!(
            open.send("http://169.254.169.254:9/", &[], b"{}"),
            Sent::Refused(crate::domain::endpoint::Refused::Forbidden.as_str())
        );
    }
}
