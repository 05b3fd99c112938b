//! The background jobs a running server spawns: the checkpointer (a
//! signed checkpoint for every log that grew), housekeeping (retention
//! and the purges) and the delivery of outbound events.

use crate::api::AppState;
use crate::error::ApiError;
use actix_web::web;

/// Spawns the checkpointer (every `checkpoint_interval`) and housekeeping
/// (every `housekeeping`, else every 10 minutes).
pub(super) fn spawn_jobs(state: &web::Data<AppState>, housekeeping: Option<std::time::Duration>) {
    spawn_checkpointer(state.clone(), state.settings.checkpoint_interval);
    spawn_housekeeping(state.clone(), housekeeping.unwrap_or(HOUSEKEEPING_INTERVAL));
    spawn_event_delivery(state.clone());
}

/// How often outbound events are queued and the due ones sent: a change
/// goes out within about this of its commit.
const EVENT_TICK: std::time::Duration = std::time::Duration::from_millis(250);
/// Deliveries one instance sends at once.
const EVENTS_AT_ONCE: i64 = 8;
/// Ticks between purges of erased identities kept past 7 days.
const EVENT_PURGE_TICKS: u32 = 240;

/// Queues and sends outbound events (`services/events/`), every
/// `EVENT_TICK`; each send runs on the blocking pool, at most
/// `EVENTS_AT_ONCE` at a time.
fn spawn_event_delivery(state: web::Data<AppState>) {
    use crate::domain::endpoint::AddressPolicy;
    use crate::services::events::send::Sender;
    let policy = AddressPolicy {
        allow_private: state.settings.event_allow_private,
    };
    let sender = std::sync::Arc::new(Sender::new(policy));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVENT_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u32;
        let mut failing = false;
        loop {
            tick.tick().await;
            ticks = ticks.wrapping_add(1);
            let purge = ticks.is_multiple_of(EVENT_PURGE_TICKS);
            match deliver_events(&state, &sender, purge).await {
                Ok(_) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "outbound events could not be delivered");
                }
                Err(_) => {}
            }
        }
    });
}

/// One round: queue what the endpoints have not taken, lease the due
/// deliveries, send them side by side, record each outcome.
async fn deliver_events(
    state: &web::Data<AppState>,
    sender: &std::sync::Arc<crate::services::events::send::Sender>,
    purge: bool,
) -> Result<usize, ApiError> {
    use crate::services::events::deliveries;
    use crate::services::events::send::Sent;
    let now = state.now();
    let master = state.master.clone();
    let attempts = state
        .db(move |conn| {
            if purge {
                deliveries::purge(conn, now)?;
            }
            if deliveries::queue(conn, now)?.is_none() {
                return Ok(Vec::new());
            }
            Ok(deliveries::take_due(conn, &master, now, EVENTS_AT_ONCE)?)
        })
        .await?;
    let sent = futures_util::future::join_all(attempts.into_iter().map(|attempt| {
        let sender = sender.clone();
        async move {
            let (url, headers, body) = (
                attempt.url.clone(),
                attempt.headers.clone(),
                attempt.body.clone(),
            );
            let sent = tokio::task::spawn_blocking(move || sender.send(&url, &headers, &body))
                .await
                .unwrap_or_else(|_| Sent::Failed("the delivery thread failed".to_owned()));
            (attempt, sent)
        }
    }))
    .await;
    let count = sent.len();
    for (attempt, sent) in sent {
        let now = state.now();
        let outcome = state
            .db(move |conn| Ok(deliveries::finish(conn, &attempt, &sent, now)?))
            .await?;
        crate::metrics::event_attempt(outcome);
    }
    Ok(count)
}

/// Signs a checkpoint for every log that grew, every `interval`. A refusal
/// is logged when it first happens, not at every tick.
fn spawn_checkpointer(state: web::Data<AppState>, interval: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_errors: std::collections::HashMap<String, String> = Default::default();
        loop {
            tick.tick().await;
            let signer = state.signer.clone();
            let master = state.master.clone();
            let outcomes = match state
                .db(move |conn| {
                    let outcomes = signer.sign_grown_logs(conn, &master);
                    let failed = outcomes.iter().any(|(_, o)| o.is_err());
                    if failed && crate::store::connection::ping(conn).is_err() {
                        // Fail the whole run, so the pool drops the connection.
                        return Err(ApiError::connection_lost(
                            "the connection broke while signing checkpoints".into(),
                        ));
                    }
                    Ok(outcomes)
                })
                .await
            {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    tracing::warn!(error = %e, "background checkpointing could not run");
                    continue;
                }
            };
            for (tenant, outcome) in outcomes {
                match outcome {
                    Ok(size) => {
                        last_errors.remove(&tenant);
                        tracing::debug!(%tenant, size, "checkpoint signed");
                    }
                    Err(e) => {
                        let message = e.to_string();
                        if last_errors.get(&tenant) != Some(&message) {
                            tracing::error!(%tenant, error = %message, "background checkpoint not signed");
                            last_errors.insert(tenant, message);
                        }
                    }
                }
            }
        }
    });
}

/// How often the housekeeping job runs, unless a test says otherwise.
const HOUSEKEEPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs `services/housekeeping.rs` every `interval`: evidence retention
/// and the purges of closed windows and idempotency answers, on one
/// instance at a time and bounded per run.
fn spawn_housekeeping(state: web::Data<AppState>, interval: std::time::Duration) {
    tokio::spawn(async move {
        // The first run one interval after start, not at once: a test that
        // drives the job itself then never races a run of its own.
        let first = tokio::time::Instant::now() + interval;
        let mut tick = tokio::time::interval_at(first, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = state.now();
            let master = state.master.clone();
            let pool = state.pool.clone();
            let done = state
                .db(move |conn| {
                    let mut lock = pool.get()?;
                    crate::services::housekeeping::run(
                        conn,
                        &mut lock,
                        &master,
                        now,
                        crate::services::housekeeping::Budget::default(),
                    )
                    .map_err(crate::error::ApiError::from)
                })
                .await;
            match done {
                Ok(report)
                    if report.erased
                        + report.windows
                        + report.idempotency_keys
                        + report.documents
                        > 0 =>
                {
                    crate::metrics::housekeeping("retention_erasures", report.erased);
                    crate::metrics::housekeeping("windows", report.windows);
                    crate::metrics::housekeeping("idempotency_keys", report.idempotency_keys);
                    crate::metrics::housekeeping("documents", report.documents);
                    tracing::info!(
                        erased = report.erased,
                        windows = report.windows,
                        idempotency_keys = report.idempotency_keys,
                        documents = report.documents,
                        "housekeeping"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "housekeeping could not run"),
            }
        }
    });
}
