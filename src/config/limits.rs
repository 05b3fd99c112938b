//! The limits that keep one client from taking the service down for every
//! other (docs/api.md): connections, body time and memory, request
//! rates, failed authentications and exports. Each has a flag, an
//! environment variable and a TOML key, and a default fit for production.

use clap::Args;
use serde::Deserialize;
use std::time::Duration;

/// The limits as given on the command line or in the environment.
#[derive(Debug, Clone, Default, Args)]
pub struct LimitArgs {
    /// Connections open at once, over all clients [default: 4096]
    #[arg(long, env = "CONSENT_LEDGER_MAX_CONNECTIONS")]
    pub max_connections: Option<u32>,
    /// Connections open at once from one client address (trusted proxies excepted) [default: 128]
    #[arg(long, env = "CONSENT_LEDGER_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<u32>,
    /// Time a request body may take to arrive, e.g. 15s [default: 15s]
    #[arg(long, env = "CONSENT_LEDGER_BODY_TIMEOUT")]
    pub body_timeout: Option<String>,
    /// Memory for request bodies being read and documents being sent, over all requests, in MiB [default: 256]
    #[arg(long, env = "CONSENT_LEDGER_BODY_MEMORY_MIB")]
    pub body_memory_mib: Option<u32>,
    /// Requests per second from one client address; 0 disables [default: 1000]
    #[arg(long, env = "CONSENT_LEDGER_RATE_LIMIT_PER_ADDRESS")]
    pub rate_limit_per_address: Option<u32>,
    /// Requests per second with one API key; 0 disables [default: 1000]
    #[arg(long, env = "CONSENT_LEDGER_RATE_LIMIT_PER_KEY")]
    pub rate_limit_per_key: Option<u32>,
    /// Failed authentications per minute from one client address [default: 30]
    #[arg(long, env = "CONSENT_LEDGER_AUTH_FAILURES_PER_MINUTE")]
    pub auth_failures_per_minute: Option<u32>,
    /// Posts to the hosted pages per minute from one client address [default: 10]
    #[arg(long, env = "CONSENT_LEDGER_PAGE_POSTS_PER_MINUTE")]
    pub page_posts_per_minute: Option<u32>,
    /// Exports and dossiers streaming at once, over all tenants [default: 4]
    #[arg(long, env = "CONSENT_LEDGER_MAX_EXPORTS")]
    pub max_exports: Option<u32>,
    /// Exports and dossiers streaming at once for one tenant [default: 2]
    #[arg(long, env = "CONSENT_LEDGER_MAX_EXPORTS_PER_TENANT")]
    pub max_exports_per_tenant: Option<u32>,
    /// How long an export or a document read waits for a client that stopped reading, e.g. 30s [default: 30s]
    #[arg(long, env = "CONSENT_LEDGER_EXPORT_DRAIN_TIMEOUT")]
    pub export_drain_timeout: Option<String>,
    /// Largest file one bulk import may send (`POST /v1/imports`), in MiB [default: 1024]
    #[arg(long, env = "CONSENT_LEDGER_IMPORT_MAX_MIB")]
    pub import_max_mib: Option<u32>,
}

impl LimitArgs {
    /// These limits, each taken from `other` where this one is not given.
    pub fn or(self, other: LimitArgs) -> LimitArgs {
        LimitArgs {
            max_connections: self.max_connections.or(other.max_connections),
            max_connections_per_address: self
                .max_connections_per_address
                .or(other.max_connections_per_address),
            body_timeout: self.body_timeout.or(other.body_timeout),
            body_memory_mib: self.body_memory_mib.or(other.body_memory_mib),
            rate_limit_per_address: self.rate_limit_per_address.or(other.rate_limit_per_address),
            rate_limit_per_key: self.rate_limit_per_key.or(other.rate_limit_per_key),
            auth_failures_per_minute: self
                .auth_failures_per_minute
                .or(other.auth_failures_per_minute),
            page_posts_per_minute: self.page_posts_per_minute.or(other.page_posts_per_minute),
            max_exports: self.max_exports.or(other.max_exports),
            max_exports_per_tenant: self.max_exports_per_tenant.or(other.max_exports_per_tenant),
            export_drain_timeout: self.export_drain_timeout.or(other.export_drain_timeout),
            import_max_mib: self.import_max_mib.or(other.import_max_mib),
        }
    }
}

/// The limits' keys in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    max_connections: Option<u32>,
    max_connections_per_address: Option<u32>,
    body_timeout: Option<String>,
    body_memory_mib: Option<u32>,
    rate_limit_per_address: Option<u32>,
    rate_limit_per_key: Option<u32>,
    auth_failures_per_minute: Option<u32>,
    page_posts_per_minute: Option<u32>,
    max_exports: Option<u32>,
    max_exports_per_tenant: Option<u32>,
    export_drain_timeout: Option<String>,
    import_max_mib: Option<u32>,
}

/// Resolved limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: u32,
    pub max_connections_per_address: u32,
    pub body_timeout: Duration,
    pub body_memory_bytes: usize,
    /// Requests per second; 0: unlimited.
    pub rate_limit_per_address: u32,
    /// Requests per second; 0: unlimited.
    pub rate_limit_per_key: u32,
    pub auth_failures_per_minute: u32,
    /// Posts to the hosted pages per minute from one address.
    pub page_posts_per_minute: u32,
    pub max_exports: u32,
    pub max_exports_per_tenant: u32,
    pub export_drain_timeout: Duration,
    /// The largest import file, in bytes.
    pub import_max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_connections_per_address: 128,
            body_timeout: Duration::from_secs(15),
            body_memory_bytes: 256 << 20,
            rate_limit_per_address: 1000,
            rate_limit_per_key: 1000,
            auth_failures_per_minute: 30,
            page_posts_per_minute: 10,
            max_exports: 4,
            max_exports_per_tenant: 2,
            export_drain_timeout: Duration::from_secs(30),
            import_max_bytes: 1 << 30,
        }
    }
}

/// A positive count: flag first, then the file, then the default.
fn count(
    name: &str,
    given: Option<u32>,
    from_file: Option<u32>,
    default: u32,
    zero_allowed: bool,
) -> Result<u32, String> {
    let value = given.or(from_file).unwrap_or(default);
    if value == 0 && !zero_allowed {
        return Err(format!("{name} must be at least 1"));
    }
    Ok(value)
}

fn duration(
    name: &str,
    given: Option<&String>,
    from_file: Option<&String>,
    default: Duration,
) -> Result<Duration, String> {
    match given.or(from_file) {
        None => Ok(default),
        Some(text) => parse_duration(text)
            .ok_or_else(|| format!("{name} {text:?} is not a duration like 15s, 500ms or 1m")),
    }
}

impl Limits {
    pub(super) fn resolve(args: &LimitArgs, file: FileLimits) -> Result<Self, String> {
        let d = Limits::default();
        let limits = Limits {
            max_connections: count(
                "CONSENT_LEDGER_MAX_CONNECTIONS",
                args.max_connections,
                file.max_connections,
                d.max_connections,
                false,
            )?,
            max_connections_per_address: count(
                "CONSENT_LEDGER_MAX_CONNECTIONS_PER_ADDRESS",
                args.max_connections_per_address,
                file.max_connections_per_address,
                d.max_connections_per_address,
                false,
            )?,
            body_timeout: duration(
                "CONSENT_LEDGER_BODY_TIMEOUT",
                args.body_timeout.as_ref(),
                file.body_timeout.as_ref(),
                d.body_timeout,
            )?,
            body_memory_bytes: count(
                "CONSENT_LEDGER_BODY_MEMORY_MIB",
                args.body_memory_mib,
                file.body_memory_mib,
                (d.body_memory_bytes >> 20) as u32,
                false,
            )? as usize
                * (1 << 20),
            rate_limit_per_address: count(
                "CONSENT_LEDGER_RATE_LIMIT_PER_ADDRESS",
                args.rate_limit_per_address,
                file.rate_limit_per_address,
                d.rate_limit_per_address,
                true,
            )?,
            rate_limit_per_key: count(
                "CONSENT_LEDGER_RATE_LIMIT_PER_KEY",
                args.rate_limit_per_key,
                file.rate_limit_per_key,
                d.rate_limit_per_key,
                true,
            )?,
            auth_failures_per_minute: count(
                "CONSENT_LEDGER_AUTH_FAILURES_PER_MINUTE",
                args.auth_failures_per_minute,
                file.auth_failures_per_minute,
                d.auth_failures_per_minute,
                false,
            )?,
            page_posts_per_minute: count(
                "CONSENT_LEDGER_PAGE_POSTS_PER_MINUTE",
                args.page_posts_per_minute,
                file.page_posts_per_minute,
                d.page_posts_per_minute,
                false,
            )?,
            max_exports: count(
                "CONSENT_LEDGER_MAX_EXPORTS",
                args.max_exports,
                file.max_exports,
                d.max_exports,
                false,
            )?,
            max_exports_per_tenant: count(
                "CONSENT_LEDGER_MAX_EXPORTS_PER_TENANT",
                args.max_exports_per_tenant,
                file.max_exports_per_tenant,
                d.max_exports_per_tenant,
                false,
            )?,
            export_drain_timeout: duration(
                "CONSENT_LEDGER_EXPORT_DRAIN_TIMEOUT",
                args.export_drain_timeout.as_ref(),
                file.export_drain_timeout.as_ref(),
                d.export_drain_timeout,
            )?,
            import_max_bytes: u64::from(count(
                "CONSENT_LEDGER_IMPORT_MAX_MIB",
                args.import_max_mib,
                file.import_max_mib,
                (d.import_max_bytes >> 20) as u32,
                false,
            )?) << 20,
        };
        // A body must fit the memory budget, or webhooks could never arrive.
        if limits.body_memory_bytes < 4 << 20 {
            return Err(
                "CONSENT_LEDGER_BODY_MEMORY_MIB must be at least 4 (one batch body)".to_owned(),
            );
        }
        Ok(limits)
    }
}

/// `5s`, `500ms`, `2m`, `1h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}
