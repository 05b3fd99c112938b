//! Typed settings (docs/api.md): a flag and an environment variable for
//! each, an optional TOML file under them, then the defaults. Secrets are
//! wrapped so that they never print.

mod limits;

pub use limits::{parse_duration, LimitArgs, Limits};

use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A secret string: `{:?}` and `{}` never show it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// The settings every command reads: given before or after the command.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// Optional TOML file with any of the settings (snake_case keys without the prefix)
    #[arg(long, env = "CONSENT_LEDGER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory, created 0700 if missing [default: ./data]
    #[arg(long, env = "CONSENT_LEDGER_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL [default: sqlite://<data dir>/consent-ledger.db]
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// What stands between the service and PostgreSQL: none, session or transaction (a pooler such as PgBouncer in transaction mode) [default: none]
    #[arg(long, env = "CONSENT_LEDGER_PG_POOLER", global = true)]
    pub pg_pooler: Option<String>,
    /// Database connections each instance or command keeps, 1 to 256 [default: 8]
    #[arg(long, env = "CONSENT_LEDGER_DB_POOL_SIZE", global = true)]
    pub db_pool_size: Option<u32>,
    /// Master key file [default: <data dir>/master.key]
    #[arg(long, env = "CONSENT_LEDGER_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// Base origin of the tenants' logs (no scheme) [default: localhost]
    #[arg(long, env = "CONSENT_LEDGER_ORIGIN", global = true)]
    pub origin: Option<String>,
    /// Signer state file [default: beside the master key]
    #[arg(long, env = "CONSENT_LEDGER_SIGNER_STATE_FILE", global = true)]
    pub signer_state_file: Option<PathBuf>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "CONSENT_LEDGER_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
}

/// The settings only the HTTP service reads: options of `serve` (and of
/// the bare command, which serves); the environment and the file give them
/// to every command.
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    /// Listen address [default: 127.0.0.1:8080]
    #[arg(long, env = "CONSENT_LEDGER_BIND")]
    pub bind: Option<String>,
    /// Listen address of /metrics, apart from the API; `off` serves no metrics [default: 127.0.0.1:9464]
    #[arg(long, env = "CONSENT_LEDGER_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// Operator token; when unset one is generated and written once to <data dir>/operator.token
    #[arg(long, env = "CONSENT_LEDGER_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<Secret>,
    /// Public base URL of the service, for form page URLs [default: http://<bind>]
    #[arg(long, env = "CONSENT_LEDGER_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Comma-separated CIDRs whose X-Forwarded-For is believed
    #[arg(long, env = "CONSENT_LEDGER_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Background checkpoint interval, e.g. 5s, 500ms, 1m [default: 5s]
    #[arg(long, env = "CONSENT_LEDGER_CHECKPOINT_INTERVAL")]
    pub checkpoint_interval: Option<String>,
    /// Storage for one tenant's evidence documents, in MiB [default: 1024]
    #[arg(long, env = "CONSENT_LEDGER_DOCUMENT_QUOTA_MIB")]
    pub document_quota_mib: Option<u32>,
    /// Let event endpoints be private or loopback addresses, and http (never link-local or cloud metadata) [default: false]
    #[arg(long, env = "CONSENT_LEDGER_EVENT_ALLOW_PRIVATE")]
    pub event_allow_private: Option<bool>,
    #[command(flatten, next_help_heading = "Limits")]
    pub limits: LimitArgs,
}

impl ServerArgs {
    /// These settings, each taken from `other` where this one is not given.
    pub fn or(self, other: ServerArgs) -> ServerArgs {
        ServerArgs {
            bind: self.bind.or(other.bind),
            metrics_bind: self.metrics_bind.or(other.metrics_bind),
            operator_token: self.operator_token.or(other.operator_token),
            public_url: self.public_url.or(other.public_url),
            trusted_proxies: self.trusted_proxies.or(other.trusted_proxies),
            checkpoint_interval: self.checkpoint_interval.or(other.checkpoint_interval),
            document_quota_mib: self.document_quota_mib.or(other.document_quota_mib),
            event_allow_private: self.event_allow_private.or(other.event_allow_private),
            limits: self.limits.or(other.limits),
        }
    }
}

/// The settings as given on the command line or in the environment.
#[derive(Debug, Clone, Default)]
pub struct SettingsArgs {
    pub config: Option<PathBuf>,
    pub bind: Option<String>,
    pub metrics_bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<Secret>,
    pub pg_pooler: Option<String>,
    pub db_pool_size: Option<u32>,
    pub master_key_file: Option<PathBuf>,
    pub origin: Option<String>,
    pub operator_token: Option<Secret>,
    pub public_url: Option<String>,
    pub trusted_proxies: Option<String>,
    pub checkpoint_interval: Option<String>,
    pub signer_state_file: Option<PathBuf>,
    pub log_format: Option<String>,
    pub document_quota_mib: Option<u32>,
    pub event_allow_private: Option<bool>,
    pub limits: LimitArgs,
}

impl SettingsArgs {
    /// The settings of a command line: those every command reads and the
    /// server's.
    pub fn of(common: CommonArgs, server: ServerArgs) -> Self {
        SettingsArgs {
            config: common.config,
            bind: server.bind,
            metrics_bind: server.metrics_bind,
            data_dir: common.data_dir,
            database_url: common.database_url,
            pg_pooler: common.pg_pooler,
            db_pool_size: common.db_pool_size,
            master_key_file: common.master_key_file,
            origin: common.origin,
            operator_token: server.operator_token,
            public_url: server.public_url,
            trusted_proxies: server.trusted_proxies,
            checkpoint_interval: server.checkpoint_interval,
            signer_state_file: common.signer_state_file,
            log_format: common.log_format,
            document_quota_mib: server.document_quota_mib,
            event_allow_private: server.event_allow_private,
            limits: server.limits,
        }
    }
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    bind: Option<String>,
    metrics_bind: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<Secret>,
    pg_pooler: Option<String>,
    db_pool_size: Option<u32>,
    master_key_file: Option<PathBuf>,
    origin: Option<String>,
    operator_token: Option<Secret>,
    public_url: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    checkpoint_interval: Option<String>,
    signer_state_file: Option<PathBuf>,
    log_format: Option<String>,
    document_quota_mib: Option<u32>,
    event_allow_private: Option<bool>,
    /// The `[limits]` table.
    limits: Option<limits::FileLimits>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which database and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    Sqlite(PathBuf),
    Postgres(PostgresUrl),
}

/// What stands between the service and PostgreSQL (`CONSENT_LEDGER_PG_POOLER`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pooler {
    /// Direct connections, or a pooler in session mode: a connection is
    /// one server session for as long as it lives.
    #[default]
    None,
    /// A pooler in transaction mode (PgBouncer's `pool_mode = transaction`,
    /// most managed offerings): each transaction may run on another server
    /// session, so nothing may outlive one. No named prepared statements,
    /// locks and settings only per transaction (docs/operations.md).
    Transaction,
}

/// A `postgres://` URL; its password is never printed.
///
/// ```
/// use consent_ledger::config::PostgresUrl;
/// let url = PostgresUrl::new("postgres://ledger:s3cret@db.internal:5432/ledger?sslmode=require");
/// assert_eq!(url.redacted(), "postgres://ledger:***@db.internal:5432/ledger?***");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    url: String,
    pooler: Pooler,
}

impl PostgresUrl {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            pooler: Pooler::None,
        }
    }

    /// The same URL, reached through `pooler`.
    pub fn through(self, pooler: Pooler) -> Self {
        Self { pooler, ..self }
    }

    pub fn pooler(&self) -> Pooler {
        self.pooler
    }

    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return "***".to_owned();
        };
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***@{host}"),
                None => format!("{userinfo}@{host}"),
            },
            None => authority.to_owned(),
        };
        // Query parameters may carry a password too.
        let tail = match tail.split_once('?') {
            Some((path, _)) => format!("{path}?***"),
            None => tail.to_owned(),
        };
        format!("{scheme}://{authority}{tail}")
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    /// Where `/metrics` is served, on a listener of its own; `None`: nowhere.
    pub metrics_bind: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub database: DatabaseTarget,
    /// Connections the pool keeps (`CONSENT_LEDGER_DB_POOL_SIZE`).
    pub db_pool_size: u32,
    pub master_key_file: PathBuf,
    pub origin: String,
    pub operator_token: Option<Secret>,
    pub public_url: String,
    pub trusted_proxies: Vec<ipnetwork::IpNetwork>,
    pub checkpoint_interval: Duration,
    pub signer_state_file: PathBuf,
    pub log_format: LogFormat,
    /// The most one tenant's documents may take together, in bytes.
    pub document_quota_bytes: i64,
    /// Event endpoints may be private or loopback addresses, and http.
    pub event_allow_private: bool,
    pub limits: Limits,
}

/// The shortest operator token accepted: a guessable one would open every tenant.
pub const MIN_OPERATOR_TOKEN_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {0}: {1}")]
    File(String, std::io::Error),
    #[error("the config file {0} is not valid: {1}")]
    Toml(String, String),
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// The TOML settings file, if one is named.
fn read_file(path: Option<&Path>) -> Result<FileSettings, ConfigError> {
    let Some(path) = path else {
        return Ok(FileSettings::default());
    };
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File(shown.clone(), e))?;
    toml::from_str::<FileSettings>(&text)
        .map_err(|e| ConfigError::Toml(shown, e.message().to_owned()))
}

fn check_public_url(public_url: &str) -> Result<(), ConfigError> {
    if !(public_url.starts_with("http://") || public_url.starts_with("https://"))
        || public_url.ends_with('/')
    {
        return Err(invalid(format!(
            "CONSENT_LEDGER_PUBLIC_URL {public_url:?} must start with http:// or https:// and not end in /"
        )));
    }
    Ok(())
}

/// The trusted proxies: a comma-separated flag or environment value wins
/// over the file's list.
fn parse_trusted_proxies(
    given: Option<&str>,
    from_file: Option<Vec<String>>,
) -> Result<Vec<ipnetwork::IpNetwork>, ConfigError> {
    let proxies: Vec<String> = match (given, from_file) {
        (Some(list), _) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        (None, Some(list)) => list,
        (None, None) => Vec::new(),
    };
    proxies
        .iter()
        .map(|p| {
            p.parse::<ipnetwork::IpNetwork>().map_err(|_| {
                invalid(format!(
                    "CONSENT_LEDGER_TRUSTED_PROXIES: {p:?} is not a CIDR"
                ))
            })
        })
        .collect()
}

/// The metrics listener: an address, or `off` for none.
fn parse_metrics_bind(given: Option<&str>) -> Result<Option<SocketAddr>, ConfigError> {
    let text = given.unwrap_or("127.0.0.1:9464");
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        invalid(format!(
            "CONSENT_LEDGER_METRICS_BIND {text:?} is not an address like 127.0.0.1:9464, nor off"
        ))
    })
}

/// One tenant's storage for documents: at least 1 MiB, 1 GiB unless set.
/// Connections a pool keeps when none is set.
pub const DEFAULT_POOL_SIZE: u32 = 8;

fn parse_pool_size(size: Option<u32>) -> Result<u32, ConfigError> {
    match size.unwrap_or(DEFAULT_POOL_SIZE) {
        size @ 1..=256 => Ok(size),
        other => Err(invalid(format!(
            "CONSENT_LEDGER_DB_POOL_SIZE {other} is not a number of connections from 1 to 256"
        ))),
    }
}

fn parse_document_quota(mib: Option<u32>) -> Result<i64, ConfigError> {
    match mib.unwrap_or(1024) {
        0 => Err(invalid(
            "CONSENT_LEDGER_DOCUMENT_QUOTA_MIB must be at least 1",
        )),
        mib => Ok(i64::from(mib) << 20),
    }
}

fn parse_log_format(given: Option<&str>) -> Result<LogFormat, ConfigError> {
    match given.unwrap_or("text") {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(invalid(format!("log format {other:?}: use text or json"))),
    }
}

impl Settings {
    /// Flags and environment first, then the TOML file, then defaults.
    pub fn resolve(args: &SettingsArgs) -> Result<Self, ConfigError> {
        let file = read_file(args.config.as_deref())?;
        let bind_text = args
            .bind
            .clone()
            .or(file.bind)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let bind: SocketAddr = bind_text.parse().map_err(|_| {
            invalid(format!(
                "CONSENT_LEDGER_BIND {bind_text:?} is not an address like 127.0.0.1:8080"
            ))
        })?;
        let metrics_bind =
            parse_metrics_bind(args.metrics_bind.clone().or(file.metrics_bind).as_deref())?;
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = args.database_url.clone().or(file.database_url);
        let database = parse_database_url(database_url.as_ref().map(Secret::expose), &data_dir)?;
        let database = with_pooler(database, args.pg_pooler.clone().or(file.pg_pooler))?;
        let db_pool_size = parse_pool_size(args.db_pool_size.or(file.db_pool_size))?;
        let master_key_file = args
            .master_key_file
            .clone()
            .or(file.master_key_file)
            .unwrap_or_else(|| data_dir.join("master.key"));
        let origin = args
            .origin
            .clone()
            .or(file.origin)
            .unwrap_or_else(|| "localhost".to_owned());
        validate_origin(&origin)?;
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{bind}"));
        check_public_url(&public_url)?;
        let trusted_proxies =
            parse_trusted_proxies(args.trusted_proxies.as_deref(), file.trusted_proxies)?;
        let interval_text = args
            .checkpoint_interval
            .clone()
            .or(file.checkpoint_interval)
            .unwrap_or_else(|| "5s".to_owned());
        let checkpoint_interval = parse_duration(&interval_text).ok_or_else(|| {
            invalid(format!(
                "CONSENT_LEDGER_CHECKPOINT_INTERVAL {interval_text:?} is not a duration like 5s, 500ms or 1m"
            ))
        })?;
        let signer_state_file = args
            .signer_state_file
            .clone()
            .or(file.signer_state_file)
            .unwrap_or_else(|| beside(&master_key_file, "signer.state"));
        let log_format = parse_log_format(args.log_format.clone().or(file.log_format).as_deref())?;
        let operator_token = args.operator_token.clone().or(file.operator_token);
        if operator_token
            .as_ref()
            .is_some_and(|t| t.expose().trim().len() < MIN_OPERATOR_TOKEN_LEN)
        {
            return Err(invalid(format!(
                "CONSENT_LEDGER_OPERATOR_TOKEN must be at least {MIN_OPERATOR_TOKEN_LEN} characters (e.g. from `openssl rand -base64 32`)"
            )));
        }
        let document_quota_bytes =
            parse_document_quota(args.document_quota_mib.or(file.document_quota_mib))?;
        let event_allow_private = args
            .event_allow_private
            .or(file.event_allow_private)
            .unwrap_or(false);
        let limits = Limits::resolve(&args.limits, file.limits.unwrap_or_default())
            .map_err(ConfigError::Invalid)?;
        Ok(Self {
            bind,
            metrics_bind,
            data_dir,
            database,
            db_pool_size,
            master_key_file,
            origin,
            operator_token,
            public_url,
            trusted_proxies,
            checkpoint_interval,
            signer_state_file,
            log_format,
            document_quota_bytes,
            event_allow_private,
            limits,
        })
    }

    /// `serve` refuses to listen beyond loopback while the origin is the
    /// placeholder `localhost`: logs would carry an origin nobody can reach.
    pub fn check_bind_for_serving(&self) -> Result<(), ConfigError> {
        if self.origin == "localhost" && !self.bind.ip().is_loopback() {
            return Err(invalid(format!(
                "refusing to listen on {} while CONSENT_LEDGER_ORIGIN is \"localhost\": set it to the public name of this ledger (e.g. ledger.example.com)",
                self.bind
            )));
        }
        Ok(())
    }
}

fn beside(file: &Path, name: &str) -> PathBuf {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join(name),
        _ => PathBuf::from(name),
    }
}

fn validate_origin(origin: &str) -> Result<(), ConfigError> {
    let bad = origin.is_empty()
        || origin.contains("://")
        || origin.chars().any(char::is_whitespace)
        || origin.contains('+')
        || origin.ends_with('/')
        || origin.chars().any(char::is_control);
    if bad {
        return Err(invalid(format!(
            "CONSENT_LEDGER_ORIGIN {origin:?} must be a name like ledger.example.com: no scheme, no whitespace, no '+', no trailing '/'"
        )));
    }
    Ok(())
}

/// The target reached through the pooler `CONSENT_LEDGER_PG_POOLER` names.
fn with_pooler(
    database: DatabaseTarget,
    pooler: Option<String>,
) -> Result<DatabaseTarget, ConfigError> {
    let Some(text) = pooler else {
        return Ok(database);
    };
    let pooler = match text.as_str() {
        "none" | "session" => Pooler::None,
        "transaction" => Pooler::Transaction,
        _ => {
            return Err(invalid(format!(
                "CONSENT_LEDGER_PG_POOLER {text:?} is not one of none, session or transaction"
            )))
        }
    };
    match database {
        DatabaseTarget::Postgres(url) => Ok(DatabaseTarget::Postgres(url.through(pooler))),
        sqlite if pooler == Pooler::None => Ok(sqlite),
        DatabaseTarget::Sqlite(_) => Err(invalid(
            "CONSENT_LEDGER_PG_POOLER=transaction is for PostgreSQL: DATABASE_URL names a SQLite file",
        )),
    }
}

fn parse_database_url(url: Option<&str>, data_dir: &Path) -> Result<DatabaseTarget, ConfigError> {
    let Some(url) = url else {
        return Ok(DatabaseTarget::Sqlite(data_dir.join("consent-ledger.db")));
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(DatabaseTarget::Postgres(PostgresUrl::new(url)));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || path.contains(":memory:") || path.starts_with("file:") {
        return Err(invalid(
            "DATABASE_URL must name a SQLite file (sqlite://PATH); in-memory databases would lose the ledger",
        ));
    }
    Ok(DatabaseTarget::Sqlite(PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_size_is_from_1_to_256() {
        let sized = |size: Option<u32>| {
            Settings::resolve(&SettingsArgs {
                db_pool_size: size,
                ..Default::default()
            })
        };
        assert_eq!(sized(None).unwrap().db_pool_size, 8);
        assert_eq!(sized(Some(32)).unwrap().db_pool_size, 32);
        for bad in [0, 257] {
            let refused = sized(Some(bad)).unwrap_err().to_string();
            assert!(refused.contains("CONSENT_LEDGER_DB_POOL_SIZE"), "{refused}");
        }
    }

    #[test]
    fn a_pooler_is_named_for_postgresql_only() {
        let with = |url: &str, pooler: &str| {
            Settings::resolve(&SettingsArgs {
                database_url: Some(Secret::new(url.into())),
                pg_pooler: Some(pooler.into()),
                ..Default::default()
            })
        };
        let pg = "postgres://ledger@db:5432/ledger";
        let pooler = |s: Settings| match s.database {
            DatabaseTarget::Postgres(url) => url.pooler(),
            DatabaseTarget::Sqlite(_) => panic!("PostgreSQL expected"),
        };
        assert_eq!(
            pooler(with(pg, "transaction").unwrap()),
            Pooler::Transaction
        );
        assert_eq!(pooler(with(pg, "session").unwrap()), Pooler::None);
        assert_eq!(pooler(with(pg, "none").unwrap()), Pooler::None);
        let bad = with(pg, "statement").unwrap_err().to_string();
        assert!(bad.contains("none, session or transaction"), "{bad}");
        let sqlite = with("sqlite://x.db", "transaction")
            .unwrap_err()
            .to_string();
        assert!(sqlite.contains("is for PostgreSQL"), "{sqlite}");
        assert!(with("sqlite://x.db", "none").is_ok());
    }

    #[test]
    fn defaults() {
        let s = Settings::resolve(&SettingsArgs::default()).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.metrics_bind, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(
            s.database,
            DatabaseTarget::Sqlite(PathBuf::from("./data/consent-ledger.db"))
        );
        assert_eq!(s.master_key_file, PathBuf::from("./data/master.key"));
        assert_eq!(s.signer_state_file, PathBuf::from("./data/signer.state"));
        assert_eq!(s.origin, "localhost");
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        assert_eq!(s.checkpoint_interval, Duration::from_secs(5));
        assert_eq!(s.document_quota_bytes, 1 << 30);
        assert_eq!(s.limits, Limits::default());
        assert_eq!(s.limits.body_timeout, Duration::from_secs(15));
    }

    #[test]
    fn limits_come_from_flags_then_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[limits]\nrate_limit_per_key = 50\nbody_timeout = \"5s\"\n",
        )
        .unwrap();
        let args = SettingsArgs {
            config: Some(path),
            limits: LimitArgs {
                rate_limit_per_key: Some(70),
                ..Default::default()
            },
            ..Default::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.limits.rate_limit_per_key, 70);
        assert_eq!(s.limits.body_timeout, Duration::from_secs(5));
        assert_eq!(s.limits.max_exports, 4);
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "origin = \"file.example\"\nbind = \"127.0.0.1:9000\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n").unwrap();
        let args = SettingsArgs {
            config: Some(path),
            origin: Some("flag.example".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.origin, "flag.example");
        assert_eq!(s.bind.port(), 9000);
        assert_eq!(s.trusted_proxies.len(), 1);
    }

    #[test]
    fn bad_values_are_named() {
        for (args, needle) in [
            (
                SettingsArgs {
                    origin: Some("https://x".into()),
                    ..Default::default()
                },
                "CONSENT_LEDGER_ORIGIN",
            ),
            (
                SettingsArgs {
                    origin: Some("a+b".into()),
                    ..Default::default()
                },
                "CONSENT_LEDGER_ORIGIN",
            ),
            (
                SettingsArgs {
                    bind: Some("nowhere".into()),
                    ..Default::default()
                },
                "CONSENT_LEDGER_BIND",
            ),
            (
                SettingsArgs {
                    database_url: Some(Secret::new("sqlite::memory:".into())),
                    ..Default::default()
                },
                "in-memory",
            ),
            (
                SettingsArgs {
                    checkpoint_interval: Some("soon".into()),
                    ..Default::default()
                },
                "CHECKPOINT_INTERVAL",
            ),
            (
                SettingsArgs {
                    operator_token: Some(Secret::new("clo_short".into())),
                    ..Default::default()
                },
                "at least 32 characters",
            ),
            (
                SettingsArgs {
                    limits: LimitArgs {
                        body_timeout: Some("soon".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "CONSENT_LEDGER_BODY_TIMEOUT",
            ),
            (
                SettingsArgs {
                    limits: LimitArgs {
                        max_exports: Some(0),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "CONSENT_LEDGER_MAX_EXPORTS must be at least 1",
            ),
            (
                SettingsArgs {
                    trusted_proxies: Some("10.0.0.0/99".into()),
                    ..Default::default()
                },
                "TRUSTED_PROXIES",
            ),
            (
                SettingsArgs {
                    document_quota_mib: Some(0),
                    ..Default::default()
                },
                "CONSENT_LEDGER_DOCUMENT_QUOTA_MIB must be at least 1",
            ),
        ] {
            let err = Settings::resolve(&args).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn metrics_have_their_own_address_or_none() {
        let with = |text: &str| {
            Settings::resolve(&SettingsArgs {
                metrics_bind: Some(text.into()),
                ..Default::default()
            })
        };
        assert_eq!(
            with("0.0.0.0:9100").unwrap().metrics_bind,
            Some("0.0.0.0:9100".parse().unwrap())
        );
        assert_eq!(with("off").unwrap().metrics_bind, None);
        let err = with("9464").unwrap_err().to_string();
        assert!(err.contains("CONSENT_LEDGER_METRICS_BIND"), "{err}");
    }

    #[test]
    fn localhost_origin_stays_on_loopback() {
        let s = Settings::resolve(&SettingsArgs {
            bind: Some("0.0.0.0:8080".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(s.check_bind_for_serving().is_err());
        let s = Settings::resolve(&SettingsArgs {
            bind: Some("0.0.0.0:8080".into()),
            origin: Some("ledger.example.com".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(s.check_bind_for_serving().is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("5"), None);
    }
}
