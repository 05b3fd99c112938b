//! Builds the actix application once (the API's server, its metrics
//! listener, the background jobs) and serves it; `main` and the tests both
//! start the service through here. The OpenAPI document is `openapi.rs`,
//! the route table and the 404/405 fallback `routes.rs`, what is ready
//! before binding `prepare.rs`, the jobs `jobs.rs`, a test's hooks
//! `hooks.rs`.

mod hooks;
mod jobs;
mod openapi;
mod prepare;
mod routes;

pub use hooks::Hooks;
pub use openapi::{openapi_document, openapi_json, ApiDoc};
pub use prepare::{open_database, prepare, Prepared};
pub use routes::api_routes;

use crate::api::limits::{ConnectionSocket, Guards};
use crate::api::{self, AppState};
use crate::config::Settings;
use crate::error::ApiError;
use crate::services::signer::Signer;
use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use jobs::spawn_jobs;
use routes::{path_errors, query_errors, unrouted, KnownRoutes};
use std::net::TcpListener;
use std::sync::Arc;
use tracing_actix_web::TracingLogger;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

/// A bound, not yet running server, and its metrics listener.
pub struct Application {
    port: u16,
    server: Server,
    /// The metrics listener's port and server (none when it is `off`).
    metrics: Option<(u16, Server)>,
}

/// `GET /metrics` on a listener of its own (`CONSENT_LEDGER_METRICS_BIND`):
/// the live activity it shows is for the operator's network, never for
/// whoever reaches the API. Anything else there is 404. It stops when the
/// API's server does (it handles no signals itself).
fn metrics_server(
    state: web::Data<AppState>,
    bind: std::net::SocketAddr,
) -> anyhow::Result<(u16, Server)> {
    let listener = TcpListener::bind(bind).with_context(|| {
        format!("cannot listen on {bind} for the metrics (CONSENT_LEDGER_METRICS_BIND; off turns them off)")
    })?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .service(api::health::metrics)
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::not_found(
                    "no such route: this listener serves GET /metrics only",
                ))
            }))
    })
    .workers(1)
    .worker_max_blocking_threads(1)
    .max_connections(64)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    Ok((port, server))
}

/// What every handler reaches: the pool, the keys, the signer, the
/// guards, the group commit, and a test's clock and gates.
fn app_state(
    settings: Settings,
    prepared: Prepared,
    (signer, guards): (Arc<Signer>, Arc<Guards>),
    hooks: Hooks,
) -> web::Data<AppState> {
    let inline_reads = matches!(settings.database, crate::config::DatabaseTarget::Sqlite(_));
    web::Data::new(AppState {
        pool: prepared.pool,
        master: prepared.master,
        signer,
        nodes: Default::default(),
        settings: Arc::new(settings),
        configured_operator_sha256: prepared.configured_operator_sha256,
        clock: hooks.clock,
        write_gate: hooks.write_gate,
        guards,
        groups: Arc::new(crate::store::group_commit::Groups::gated(hooks.group_gate)),
        inline_reads,
    })
}

impl Application {
    /// Binds `settings.bind` (port 0 picks a free port) and builds the server.
    pub fn build(settings: Settings, prepared: Prepared) -> anyhow::Result<Self> {
        Self::build_with(settings, prepared, Hooks::default())
    }

    /// [`Application::build`] with a test's clock or gate.
    pub fn build_with(
        settings: Settings,
        prepared: Prepared,
        hooks: Hooks,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.bind)
            .with_context(|| {
                format!(
                    "cannot listen on {} (is another process on that port?); choose another address with --bind or CONSENT_LEDGER_BIND, e.g. 127.0.0.1:8081",
                    settings.bind
                )
            })?;
        let port = listener.local_addr()?.port();
        let signer = Arc::new(Signer::new(settings.signer_state_file.clone()));
        let guards = Arc::new(Guards::new(&settings.limits, &settings.trusted_proxies));
        let connection_guards = guards.clone();
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let per_worker = (settings.limits.max_connections as usize).div_ceil(workers);
        let pool_size = settings.db_pool_size;
        let housekeeping_interval = hooks.housekeeping_interval;
        let state = app_state(settings, prepared, (signer, guards), hooks);
        let metrics_bind = state.settings.metrics_bind;
        let metrics = metrics_bind.map(|bind| metrics_server(state.clone(), bind));
        spawn_jobs(&state, housekeeping_interval);
        let openapi = openapi_document();
        let routes = Arc::new(KnownRoutes::of(&openapi));
        let server = HttpServer::new(move || {
            let routes = routes.clone();
            App::new()
                .wrap(actix_web::middleware::from_fn(crate::api::limits::guard))
                .wrap(actix_web::middleware::from_fn(crate::api::observe::count))
                // No answer is sniffed as another content type.
                .wrap(
                    actix_web::middleware::DefaultHeaders::new()
                        .add((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")),
                )
                .wrap(TracingLogger::<crate::api::observe::RequestSpan>::new())
                .app_data(state.clone())
                .app_data(web::Data::from(state.guards.clone()))
                .app_data(path_errors())
                .app_data(query_errors())
                .into_utoipa_app()
                .openapi(ApiDoc::openapi())
                .configure(api_routes)
                .into_app()
                .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi.clone()))
                // GET only: any other method falls to the 405 below.
                .service(
                    web::resource("/docs")
                        .guard(actix_web::guard::Get())
                        .to(|| async { web::Redirect::to("/docs/") }),
                )
                // Someone who opens the service in a browser lands on its docs.
                .service(
                    web::resource("/")
                        .guard(actix_web::guard::Get())
                        .to(|| async { web::Redirect::to("/docs/") }),
                )
                .default_service(web::to(move |req: actix_web::HttpRequest| {
                    let answer = unrouted(&routes, &req);
                    async move { answer }
                }))
        })
        .workers(workers)
        // Database work runs on each worker's blocking threads, as many in
        // all as the pool has connections: more could only wait for one,
        // and each thread keeps its own allocator heap and stack (under 32
        // connections of opt-ins the defaults, 256 per worker, made 53
        // threads in all, and the resident memory grew with them).
        .worker_max_blocking_threads(blocking_threads(workers, pool_size))
        .max_connections(per_worker)
        .on_connect(move |connection, data| note_connection(&connection_guards, connection, data))
        .shutdown_timeout(30)
        .listen(listener)?
        .run();
        Ok(Self {
            port,
            server,
            metrics: metrics.transpose()?,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port (`None` when it is `off`).
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// Runs until SIGINT or SIGTERM; in-flight requests finish first, then
    /// the metrics listener stops.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Some((_, metrics)) = self.metrics else {
            return self.server.await;
        };
        let stop_metrics = metrics.handle();
        let api = async move {
            let done = self.server.await;
            stop_metrics.stop(true).await;
            done
        };
        let (api, metrics) = tokio::join!(api, metrics);
        api.and(metrics)
    }
}

/// Keeps a new connection's socket for the guards, and counts it against
/// its address until it closes.
fn note_connection(
    guards: &Guards,
    connection: &dyn std::any::Any,
    data: &mut actix_web::dev::Extensions,
) {
    let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    data.insert(ConnectionSocket(std::os::fd::AsRawFd::as_raw_fd(stream)));
    // Counted per address until the connection closes.
    let slot = stream
        .peer_addr()
        .ok()
        .and_then(|peer| guards.open_connection(peer.ip()));
    if let Some(slot) = slot {
        data.insert(slot);
    }
}

/// Blocking threads per HTTP worker: together, one per pooled connection.
fn blocking_threads(workers: usize, pool_size: u32) -> usize {
    (pool_size as usize).div_ceil(workers.max(1))
}

/// Raises this process's soft limit of open files to its hard limit, and
/// warns when that leaves too few for `max_connections` (each connection
/// is a descriptor; the database and the log files need some too).
fn raise_open_files_limit(max_connections: u32) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    let available = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        limit.rlim_cur
    };
    let needed = u64::from(max_connections) + 256;
    if available < needed {
        tracing::warn!(
            open_files = available,
            max_connections,
            "the open files limit is below CONSENT_LEDGER_MAX_CONNECTIONS + 256: lower the setting or raise the limit (ulimit -n)"
        );
    }
}

/// `serve`: prepare, bind, run.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    settings.check_bind_for_serving()?;
    raise_open_files_limit(settings.limits.max_connections);
    let prepared = prepare(&settings)?;
    if let Some(path) = &prepared.operator_token_written {
        eprintln!(
            "operator token written to {} (shown once; keep it safe)",
            path.display()
        );
    }
    let app = Application::build(settings.clone(), prepared)?;
    let metrics = match (settings.metrics_bind, app.metrics_port()) {
        (Some(bind), Some(port)) => std::net::SocketAddr::new(bind.ip(), port).to_string(),
        _ => "off".to_owned(),
    };
    tracing::info!(bind = %settings.bind, port = app.port(), origin = %settings.origin, metrics = %metrics, "consent-ledger listening");
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}
