//! What keeps one client from taking the service down for the others: the
//! client's address (a trusted proxy's `X-Forwarded-For` believed), open
//! connections per address, request rates per address and per key, failed
//! authentications per address, the memory of bodies being read, and
//! export slots. One [`Guards`] per process, in [`super::AppState`].

use crate::config::Limits;
use crate::error::ApiError;
use crate::services::rate_limit::{retry_after_secs, RateLimiter};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, ResponseError};
use ipnetwork::IpNetwork;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The address a request came from: the socket's peer, or the client a
/// trusted proxy names in `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The limits and their counters.
pub struct Guards {
    pub limits: Limits,
    trusted_proxies: Vec<IpNetwork>,
    per_address: Option<RateLimiter<IpAddr>>,
    per_key: Option<RateLimiter<String>>,
    auth_failures: RateLimiter<IpAddr>,
    body_memory: Arc<Semaphore>,
    connections: Arc<ConnectionCounter>,
    exports: Arc<ExportSlots>,
    /// Per log: when this instance last signed a checkpoint on request.
    checkpoint_gates: Mutex<HashMap<String, CheckpointGate>>,
    /// What the hosted pages may be sent (docs/pages.md).
    pub pages: PageLimits,
}

/// Posts to the hosted pages (docs/pages.md): per client address (IPv6
/// per /64), and for an opt-in form per (tenant, number) and per page,
/// the last two counted only for posts that passed the token, the fill
/// time and the number's parsing. The opt-out page has only the first:
/// no count another client can fill ever refuses an opt-out.
pub struct PageLimits {
    per_address: RateLimiter<IpAddr>,
    per_number: RateLimiter<(String, String)>,
    per_page: RateLimiter<(String, String)>,
}

impl PageLimits {
    fn new(per_address_per_minute: u32) -> Self {
        let minute = Duration::from_secs(60);
        let hour = Duration::from_secs(3600);
        let per_address = per_address_per_minute.max(1);
        Self {
            per_address: RateLimiter::new(per_address, minute, per_address).expect("a rate"),
            per_number: RateLimiter::new(5, hour, 5).expect("a rate"),
            per_page: RateLimiter::new(120, minute, 120).expect("a rate"),
        }
    }

    /// Counts a post from `client`; false when its address (its /64 for
    /// IPv6) is over its limit.
    pub fn address_allowed(&self, client: IpAddr) -> bool {
        let block = address_block(client);
        self.per_address.check(&block, Instant::now()).is_ok()
    }

    /// Counts an opt-in form's post for `number` (E.164) on `tenant`'s
    /// page `form`; false when the page or the number on this tenant is
    /// over its limit.
    pub fn form_post_allowed(&self, tenant: &str, form: &str, number: &str) -> bool {
        let now = Instant::now();
        let page = (tenant.to_owned(), form.to_owned());
        let number = (tenant.to_owned(), number.to_owned());
        self.per_page.check(&page, now).is_ok() && self.per_number.check(&number, now).is_ok()
    }
}

/// What a per-address page limit counts: an IPv4 address, or the /64 an
/// IPv6 address is in (one host usually has a whole /64 to pick from).
pub fn address_block(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

/// Serialises signing on request for one log; holds when it last signed.
pub type CheckpointGate = Arc<tokio::sync::Mutex<Option<Instant>>>;

impl Guards {
    pub fn new(limits: &Limits, trusted_proxies: &[IpNetwork]) -> Self {
        let failures = limits.auth_failures_per_minute;
        Self {
            limits: limits.clone(),
            trusted_proxies: trusted_proxies.to_vec(),
            per_address: RateLimiter::per_second(limits.rate_limit_per_address),
            per_key: RateLimiter::per_second(limits.rate_limit_per_key),
            auth_failures: RateLimiter::new(failures, Duration::from_secs(60), failures)
                .expect("at least one failure a minute"),
            body_memory: Arc::new(Semaphore::new(limits.body_memory_bytes)),
            connections: Arc::new(ConnectionCounter {
                limit: limits.max_connections_per_address,
                open: Mutex::new(HashMap::new()),
            }),
            exports: Arc::new(ExportSlots {
                overall: limits.max_exports,
                per_tenant: limits.max_exports_per_tenant,
                open: Mutex::new((0, HashMap::new())),
            }),
            checkpoint_gates: Mutex::new(HashMap::new()),
            pages: PageLimits::new(limits.page_posts_per_minute),
        }
    }

    /// The gate of on-request signing for `tenant`'s log.
    pub fn checkpoint_gate(&self, tenant: &str) -> CheckpointGate {
        let mut gates = self
            .checkpoint_gates
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        gates.entry(tenant.to_owned()).or_default().clone()
    }

    /// Whether `ip` is a trusted proxy, whichever form (IPv4, or IPv4
    /// mapped into IPv6) the address or the configured network has.
    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let mapped = match ip {
            IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
            IpAddr::V6(_) => None,
        };
        self.trusted_proxies
            .iter()
            .any(|net| net.contains(ip) || mapped.is_some_and(|m| net.contains(m)))
    }

    /// The client behind `peer`: the `X-Forwarded-For` lines (in the order
    /// received: a proxy appends its own line after what the client sent)
    /// are read as one list, right to left, while its hops are trusted
    /// proxies; the first other address is the client. From anyone else
    /// the header is ignored. IPv4-mapped IPv6 addresses are taken as the
    /// IPv4 address they carry, so that a limit sees one address.
    pub fn client_of(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusted(peer) {
            return peer;
        }
        let hops = forwarded_for.iter().rev().flat_map(|line| line.rsplit(','));
        let mut client = peer;
        for hop in hops {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = ip.to_canonical();
            if !self.trusted(client) {
                break;
            }
        }
        client
    }

    /// A slot for a new connection from `peer`; `None` for a trusted proxy
    /// (its clients are counted by address per request instead).
    pub fn open_connection(&self, peer: IpAddr) -> Option<ConnectionSlot> {
        let peer = peer.to_canonical();
        (!self.trusted(peer)).then(|| self.connections.open(peer))
    }

    /// 429 unless `client` may send another request.
    fn address_allowed(&self, client: IpAddr) -> Result<(), ApiError> {
        match &self.per_address {
            Some(limiter) => limiter.check(&client, Instant::now()).map_err(|wait| {
                crate::metrics::refused("rate_per_address");
                ApiError::rate_limited(
                    "too many requests from this address",
                    retry_after_secs(wait),
                )
            }),
            None => Ok(()),
        }
    }

    /// 429 unless the key may send another request.
    pub fn key_allowed(&self, key_id: &str) -> Result<(), ApiError> {
        match &self.per_key {
            Some(limiter) => limiter
                .check(&key_id.to_owned(), Instant::now())
                .map_err(|wait| {
                    crate::metrics::refused("rate_per_key");
                    ApiError::rate_limited(
                        "too many requests with this key",
                        retry_after_secs(wait),
                    )
                }),
            None => Ok(()),
        }
    }

    /// 429 while `client` has failed to authenticate too often: checked
    /// before any credential is, so a guess is not even tried.
    pub fn authentication_allowed(&self, client: Option<ClientAddr>) -> Result<(), ApiError> {
        let Some(ClientAddr(ip)) = client else {
            return Ok(());
        };
        self.auth_failures
            .peek(&ip, Instant::now())
            .map_err(|wait| {
                tracing::warn!(client = %ip, "authentication refused: too many failures from this address");
                crate::metrics::refused("failed_authentications");
                ApiError::rate_limited(
                    "too many failed authentications from this address",
                    retry_after_secs(wait),
                )
            })
    }

    /// Counts a failed authentication of `client` (an API key, the operator
    /// token, a verify token or a webhook signature) and logs it with the
    /// address, never the credential.
    pub fn authentication_failed(&self, client: Option<ClientAddr>, what: &str) {
        let shown = client.map(|c| c.0.to_string()).unwrap_or_default();
        tracing::info!(client = %shown, what, "authentication failed");
        if let Some(ClientAddr(ip)) = client {
            let _ = self.auth_failures.check(&ip, Instant::now());
        }
    }

    /// Memory for `bytes` more of a body being read; `None` when the
    /// budget is spent.
    pub fn body_memory(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let bytes = u32::try_from(bytes).ok()?;
        self.body_memory.clone().try_acquire_many_owned(bytes).ok()
    }

    /// A slot to stream an export of `tenant`; 429 when the tenant or the
    /// service already streams as many as allowed.
    pub fn export_slot(&self, tenant: &str) -> Result<ExportSlot, ApiError> {
        self.exports.take(tenant).ok_or_else(|| {
            crate::metrics::refused("exports");
            ApiError::rate_limited(
                "as many exports and dossiers as allowed are streaming; retry when one ends",
                5,
            )
        })
    }
}

/// The client address of a request (set by [`guard`]).
pub fn client_addr(req: &HttpRequest) -> Option<ClientAddr> {
    req.extensions().get::<ClientAddr>().copied()
}

/// A connection's socket, kept in its data by `HttpServer::on_connect` so
/// that a stream to a client that stopped reading can be cut off.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSocket(pub std::os::fd::RawFd);

impl ConnectionSocket {
    /// Shuts the socket down both ways: the server notices at once and
    /// closes the connection. Call only while the connection's response is
    /// still streaming (its descriptor is then still this connection's).
    pub fn shut_down(self) {
        // SAFETY: shutdown(2) on a descriptor this process owns; it frees
        // nothing, so a descriptor that is no longer a socket only errs.
        unsafe {
            libc::shutdown(self.0, libc::SHUT_RDWR);
        }
    }
}

/// Open connections per address.
pub struct ConnectionCounter {
    limit: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl ConnectionCounter {
    fn open(self: &Arc<Self>, ip: IpAddr) -> ConnectionSlot {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_insert(0);
        *count += 1;
        ConnectionSlot {
            ip,
            over_limit: *count > self.limit,
            counter: self.clone(),
        }
    }
}

/// One open connection, counted until it closes (kept in the
/// connection's data by `HttpServer::on_connect`).
pub struct ConnectionSlot {
    ip: IpAddr,
    over_limit: bool,
    counter: Arc<ConnectionCounter>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Exports streaming, overall and per tenant.
struct ExportSlots {
    overall: u32,
    per_tenant: u32,
    open: Mutex<(u32, HashMap<String, u32>)>,
}

impl ExportSlots {
    fn take(self: &Arc<Self>, tenant: &str) -> Option<ExportSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, tenants) = &mut *open;
        let mine = tenants.get(tenant).copied().unwrap_or(0);
        if *total >= self.overall || mine >= self.per_tenant {
            return None;
        }
        *total += 1;
        tenants.insert(tenant.to_owned(), mine + 1);
        Some(ExportSlot {
            tenant: tenant.to_owned(),
            slots: self.clone(),
        })
    }
}

/// One export streaming; freed when its stream ends or is dropped.
pub struct ExportSlot {
    tenant: String,
    slots: Arc<ExportSlots>,
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, tenants) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(mine) = tenants.get_mut(&self.tenant) {
            *mine -= 1;
            if *mine == 0 {
                tenants.remove(&self.tenant);
            }
        }
    }
}

/// The middleware in front of every route: finds the client's address,
/// refuses a connection beyond the per-address limit (closing it, its body
/// unread) and a request beyond the per-address rate.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(guards) = req.app_data::<web::Data<Guards>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let client = req.peer_addr().map(|peer| {
        // Every line, in order; a line that is not text stops the reading
        // there, as a hop that is not an address does.
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .map(|v| v.to_str().unwrap_or(""))
            .collect();
        guards.client_of(peer.ip(), &forwarded)
    });
    if let Some(ip) = client {
        req.extensions_mut().insert(ClientAddr(ip));
    }
    let over = req
        .conn_data::<ConnectionSlot>()
        .is_some_and(|slot| slot.over_limit);
    let refusal = if over {
        crate::metrics::refused("connections_per_address");
        Some(ApiError::rate_limited(
            "too many connections from this address",
            1,
        ))
    } else {
        client.and_then(|ip| guards.address_allowed(ip).err())
    };
    if let Some(refusal) = refusal {
        // The body is left unread: the connection must not be reused.
        return Ok(req.into_response(refusal.closing().error_response()));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guards(proxies: &[&str]) -> Guards {
        let proxies: Vec<IpNetwork> = proxies.iter().map(|p| p.parse().unwrap()).collect();
        Guards::new(&Limits::default(), &proxies)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let g = guards(&["10.0.0.0/8"]);
        // From a client directly: the header is whatever it claims, ignored.
        assert_eq!(
            g.client_of(ip("203.0.113.9"), &["198.51.100.1"]),
            ip("203.0.113.9")
        );
        // From a proxy: the last hop that is not a trusted proxy.
        assert_eq!(
            g.client_of(ip("10.0.0.2"), &["198.51.100.1, 203.0.113.9, 10.0.0.5"]),
            ip("203.0.113.9")
        );
        // A proxy that forwards nothing, or garbage, is the client itself.
        assert_eq!(g.client_of(ip("10.0.0.2"), &[]), ip("10.0.0.2"));
        assert_eq!(
            g.client_of(ip("10.0.0.2"), &["not-an-address"]),
            ip("10.0.0.2")
        );
        // Nothing trusted: never believed.
        assert_eq!(
            guards(&[]).client_of(ip("10.0.0.2"), &["198.51.100.1"]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn every_forwarded_for_line_is_read_in_order_from_the_right() {
        let g = guards(&["10.0.0.0/8"]);
        // The client sent a line of its own; the proxy appended the one
        // with the address it saw: that one is the client.
        assert_eq!(
            g.client_of(ip("10.0.0.2"), &["203.0.113.66", "198.51.100.7"]),
            ip("198.51.100.7")
        );
        // Two proxies, each with its own line: the trusted hop is skipped.
        assert_eq!(
            g.client_of(
                ip("10.0.0.2"),
                &["203.0.113.66", "198.51.100.7, 10.0.0.9", "10.0.0.5"]
            ),
            ip("198.51.100.7")
        );
        // A line that is not text stops the reading where it stands.
        assert_eq!(
            g.client_of(ip("10.0.0.2"), &["203.0.113.66", "", "10.0.0.5"]),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_one_address() {
        let g = guards(&["10.0.0.0/8"]);
        // A mapped peer is the trusted proxy it carries.
        assert_eq!(
            g.client_of(ip("::ffff:10.0.0.2"), &["198.51.100.7"]),
            ip("198.51.100.7")
        );
        // A mapped hop is its IPv4 address, and trusted as one.
        assert_eq!(
            g.client_of(ip("10.0.0.2"), &["::ffff:198.51.100.7"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            g.client_of(ip("10.0.0.2"), &["198.51.100.7, ::ffff:10.0.0.5"]),
            ip("198.51.100.7")
        );
        // A peer that is no proxy is still shown as its IPv4 address.
        assert_eq!(
            g.client_of(ip("::ffff:203.0.113.9"), &["198.51.100.7"]),
            ip("203.0.113.9")
        );
        // A network configured in the mapped form trusts the IPv4 peer.
        let mapped = guards(&["::ffff:10.0.0.0/104"]);
        assert_eq!(
            mapped.client_of(ip("10.0.0.2"), &["198.51.100.7"]),
            ip("198.51.100.7")
        );
        // One connection count for both forms of one address.
        let limits = Limits {
            max_connections_per_address: 1,
            ..Limits::default()
        };
        let g = Guards::new(&limits, &[]);
        let _first = g.open_connection(ip("203.0.113.9")).unwrap();
        assert!(
            g.open_connection(ip("::ffff:203.0.113.9"))
                .unwrap()
                .over_limit
        );
    }

    #[test]
    fn page_posts_are_counted_per_ipv6_64_and_per_tenant_number() {
        let limits = Limits {
            page_posts_per_minute: 2,
            ..Limits::default()
        };
        let pages = Guards::new(&limits, &[]).pages;
        assert!(pages.address_allowed(ip("2001:db8:1:2::1")));
        assert!(pages.address_allowed(ip("2001:db8:1:2:ffff::9")));
        assert!(
            !pages.address_allowed(ip("2001:db8:1:2:abcd::3")),
            "one /64"
        );
        assert!(pages.address_allowed(ip("2001:db8:1:3::1")), "another /64");
        assert!(pages.address_allowed(ip("203.0.113.1")));
        assert!(
            pages.address_allowed(ip("203.0.113.2")),
            "IPv4: each address"
        );
        assert_eq!(address_block(ip("::ffff:203.0.113.1")), ip("203.0.113.1"));
        // Five posts for a number on one tenant's form fill only that
        // tenant's count for it.
        let number = "+4915112345678";
        for _ in 0..5 {
            assert!(pages.form_post_allowed("other", "junk", number));
        }
        assert!(!pages.form_post_allowed("other", "junk", number));
        assert!(pages.form_post_allowed("makro", "newsletter", number));
    }

    #[test]
    fn connections_are_counted_per_address_until_they_close() {
        let limits = Limits {
            max_connections_per_address: 2,
            ..Limits::default()
        };
        let g = Guards::new(&limits, &["10.0.0.0/8".parse().unwrap()]);
        let a = ip("203.0.113.9");
        let first = g.open_connection(a).unwrap();
        let second = g.open_connection(a).unwrap();
        let third = g.open_connection(a).unwrap();
        assert!(!first.over_limit && !second.over_limit && third.over_limit);
        assert!(!g.open_connection(ip("203.0.113.10")).unwrap().over_limit);
        drop((first, third));
        assert!(!g.open_connection(a).unwrap().over_limit);
        // A trusted proxy's connections are not counted.
        assert!(g.open_connection(ip("10.1.2.3")).is_none());
    }

    #[test]
    fn export_slots_are_limited_per_tenant_and_overall() {
        let limits = Limits {
            max_exports: 3,
            max_exports_per_tenant: 2,
            ..Limits::default()
        };
        let g = Guards::new(&limits, &[]);
        let a1 = g.export_slot("a").unwrap();
        let _a2 = g.export_slot("a").unwrap();
        let refused = g.export_slot("a").err().expect("a third for one tenant");
        assert_eq!(refused.code, crate::error::ErrorCode::RateLimited);
        let _b1 = g.export_slot("b").unwrap();
        assert!(g.export_slot("c").is_err(), "three streaming overall");
        drop(a1);
        assert!(g.export_slot("c").is_ok());
    }
}
