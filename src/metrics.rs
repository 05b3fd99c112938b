//! Prometheus metrics (docs/api.md): one registry for the process,
//! served at `/metrics` in the OpenMetrics text format. No label names a
//! tenant, a key or a number: routes are the matched patterns, and the
//! other labels come from short fixed lists.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::cell::RefCell;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

type Labels = Vec<(&'static str, String)>;

/// Every series the service exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram>,
    appends: Family<Labels, Counter>,
    decisions: Family<Labels, Counter>,
    webhook_events: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    pool_wait: Histogram,
    write_groups: Histogram,
    housekeeping: Family<Labels, Counter>,
    event_attempts: Family<Labels, Counter>,
    /// Set at each scrape from the database and the pool.
    pub dead_letters_waiting: Gauge,
    pub reviews_waiting: Gauge,
    pub log_entries: Gauge,
    pub logs: Gauge,
    pub unsigned_entries: Gauge,
    pub oldest_unsigned_seconds: Gauge<f64, AtomicU64>,
    pub pool_connections: Family<Labels, Gauge>,
    pub event_deliveries: Family<Labels, Gauge>,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ]
    .into_iter()
}

/// The database's histograms: pool waits and group commits.
fn register_database_histograms(registry: &mut Registry) -> (Histogram, Histogram) {
    let pool_wait = Histogram::new(latency_buckets());
    registry.register(
        "db_pool_wait_seconds",
        "Time spent waiting for a database connection",
        pool_wait.clone(),
    );
    let write_groups = Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]);
    registry.register(
        "write_group_size",
        "Writes (opt-ins, opt-outs, interactions) committed together in one transaction and one sync",
        write_groups.clone(),
    );
    (pool_wait, write_groups)
}

/// `metric`, registered under `name` with its `help`.
fn registered<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// Outbound events: attempts by outcome, deliveries by status.
fn register_event_metrics(
    registry: &mut Registry,
) -> (Family<Labels, Counter>, Family<Labels, Gauge>) {
    let event_attempts = Family::<Labels, Counter>::default();
    registry.register(
        "event_attempts",
        "Attempts to deliver an outbound event, by outcome (delivered, retry, failed, refused_address)",
        event_attempts.clone(),
    );
    let event_deliveries = Family::<Labels, Gauge>::default();
    registry.register(
        "event_deliveries",
        "Outbound event deliveries by status (pending, delivered, failed; all tenants)",
        event_deliveries.clone(),
    );
    (event_attempts, event_deliveries)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("consent_ledger");
        let requests = registered(
            &mut registry,
            "http_requests",
            "HTTP requests by matched route, method and status",
            Family::<Labels, Counter>::default(),
        );
        let latency =
            Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(latency_buckets()));
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by matched route, until the answer's head",
            latency.clone(),
        );
        let appends = registered(
            &mut registry,
            "appends",
            "Ledger entries committed, by entry type",
            Family::<Labels, Counter>::default(),
        );
        let decisions = registered(
            &mut registry,
            "decisions",
            "Decisions answered (single and batch), by reason",
            Family::<Labels, Counter>::default(),
        );
        let webhook_events = registered(&mut registry, "webhook_events", "Webhook messages and events by provider and outcome (recorded, deduplicated, dead_lettered, ignored)", Family::<Labels, Counter>::default());
        let refusals = registered(&mut registry, "limit_refusals", "Requests refused by a limit (rate per address or key, failed authentications, connections, exports, body memory)", Family::<Labels, Counter>::default());
        let (pool_wait, write_groups) = register_database_histograms(&mut registry);
        let housekeeping = registered(&mut registry, "housekeeping_rows", "What the housekeeping job deleted: subjects erased for retention, windows, idempotency records, documents no entry names", Family::<Labels, Counter>::default());
        let (event_attempts, event_deliveries) = register_event_metrics(&mut registry);
        let dead_letters_waiting = registered(
            &mut registry,
            "dead_letters_waiting",
            "Dead letters not applied (all tenants)",
            Gauge::default(),
        );
        let reviews_waiting = registered(
            &mut registry,
            "reviews_waiting",
            "Ambiguous messages waiting for review (all tenants)",
            Gauge::default(),
        );
        let log_entries = Gauge::default();
        registry.register("log_entries", "Entries in all logs", log_entries.clone());
        let logs = Gauge::default();
        registry.register("logs", "Tenants' logs", logs.clone());
        let unsigned_entries = registered(
            &mut registry,
            "unsigned_entries",
            "Entries not yet covered by a signed checkpoint (all logs)",
            Gauge::default(),
        );
        let oldest_unsigned_seconds = registered(&mut registry, "checkpoint_lag_seconds", "Age of the latest checkpoint of the log that waits longest for one (0 when every log is signed to its end)", Gauge::<f64, AtomicU64>::default());
        let pool_connections = registered(
            &mut registry,
            "db_pool_connections",
            "Database connections of this instance by state (in_use, idle, max)",
            Family::<Labels, Gauge>::default(),
        );
        Self {
            registry,
            requests,
            latency,
            appends,
            decisions,
            webhook_events,
            refusals,
            pool_wait,
            write_groups,
            housekeeping,
            event_attempts,
            dead_letters_waiting,
            reviews_waiting,
            log_entries,
            logs,
            unsigned_entries,
            oldest_unsigned_seconds,
            pool_connections,
            event_deliveries,
        }
    }

    /// The text a scrape gets.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// One answered HTTP request. `route` is the matched pattern (or
/// `unmatched`), never the path itself.
pub fn request(route: &str, method: &str, status: u16, seconds: f64) {
    let m = metrics();
    m.requests
        .get_or_create(&vec![
            ("route", route.to_owned()),
            ("method", method.to_owned()),
            ("status", status.to_string()),
        ])
        .inc();
    m.latency
        .get_or_create(&vec![("route", route.to_owned())])
        .observe(seconds);
}

/// Decisions answered, by reason.
pub fn decision(reason: &'static str) {
    metrics()
        .decisions
        .get_or_create(&vec![("reason", reason.to_owned())])
        .inc();
}

/// A webhook's messages or events by outcome.
pub fn webhook(provider: &'static str, outcome: &'static str, count: usize) {
    if count > 0 {
        metrics()
            .webhook_events
            .get_or_create(&vec![
                ("provider", provider.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc_by(count as u64);
    }
}

/// A request refused by one of the limits.
pub fn refused(limit: &'static str) {
    metrics()
        .refusals
        .get_or_create(&vec![("limit", limit.to_owned())])
        .inc();
}

/// Time spent waiting for a database connection.
pub fn pool_wait(seconds: f64) {
    metrics().pool_wait.observe(seconds);
}

/// A group of writes committed in one transaction.
pub fn write_group(size: usize) {
    metrics().write_groups.observe(size as f64);
}

/// One attempt to deliver an outbound event, by how it ended.
pub fn event_attempt(outcome: &'static str) {
    metrics()
        .event_attempts
        .get_or_create(&vec![("outcome", outcome.to_owned())])
        .inc();
}

/// Rows the housekeeping job deleted, by what they were.
pub fn housekeeping(what: &'static str, count: usize) {
    metrics()
        .housekeeping
        .get_or_create(&vec![("what", what.to_owned())])
        .inc_by(count as u64);
}

thread_local! {
    /// Entries written by the transaction running on this thread, counted
    /// only once it commits.
    static PENDING_APPENDS: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

/// An entry written inside the current transaction (see [`transaction_ended`]).
pub fn append_pending(entry_type: &'static str) {
    PENDING_APPENDS.with(|p| p.borrow_mut().push(entry_type));
}

/// How many entries the current transaction has written so far, before a
/// savepoint (see [`pending_rolled_back`]).
pub fn pending_mark() -> usize {
    PENDING_APPENDS.with(|p| p.borrow().len())
}

/// A savepoint begun at `mark` was rolled back: its entries never count.
pub fn pending_rolled_back(mark: usize) {
    PENDING_APPENDS.with(|p| p.borrow_mut().truncate(mark));
}

/// The transaction of this thread ended: its entries count if it committed.
pub fn transaction_ended(committed: bool) {
    let pending = PENDING_APPENDS.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if committed {
        let m = metrics();
        for entry_type in pending {
            m.appends
                .get_or_create(&vec![("type", entry_type.to_owned())])
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_count_only_when_their_transaction_commits() {
        let before = metrics().render();
        let count = |text: &str| -> u64 {
            text.lines()
                .find(|l| l.starts_with("consent_ledger_appends_total{type=\"metrics_probe\"}"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        assert_eq!(count(&before), 0);
        append_pending("metrics_probe");
        transaction_ended(false);
        assert_eq!(count(&metrics().render()), 0);
        append_pending("metrics_probe");
        append_pending("metrics_probe");
        transaction_ended(true);
        assert_eq!(count(&metrics().render()), 2);
    }
}
