//! Builds the actix application and its OpenAPI document once; `main` and
//! the tests both start the service through here.

use crate::api::limits::{ConnectionSocket, Guards};
use crate::api::{self, AppState};
use crate::config::Settings;
use crate::domain::evidence::EvidenceFor;
use crate::error::{ApiError, ErrorCode, Problem, ProblemField};
use crate::keys::{self, MasterKey};
use crate::ledger::entry::{Entry, EntryType, EvidenceOpening, Openings, SubjectOpening};
use crate::services::signer::Signer;
use crate::store::connection::{meta_get, meta_insert};
use crate::store::DbPool;
use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use tracing_actix_web::TracingLogger;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "consent-ledger",
        description = "Opt-in consent ledger for WhatsApp Business and SMS messaging. Every opt-in and opt-out is an entry of a per-tenant, append-only, hash-chained Merkle log; `POST /v1/checks` answers whether a template may be sent, now. Errors are RFC 9457 problem+json; see /problems/{code}.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    components(schemas(Problem, ProblemField, Entry, EntryType, Openings, SubjectOpening, EvidenceOpening)),
    tags(
        (name = "tenants", description = "Tenants and their settings (operator, admin)"),
        (name = "brands", description = "The company names a tenant may show (admin)"),
        (name = "keys", description = "API keys with roles (admin)"),
        (name = "recording", description = "Opt-ins, opt-outs and inbound interactions (collector)"),
        (name = "checks", description = "May we send this, now? (sender)"),
        (name = "ledger", description = "Entries and subjects with openings (auditor)"),
        (name = "forms", description = "Hosted opt-in forms: their definitions and versions (admin)"),
        (name = "documents", description = "Scans of signed paper forms (collector uploads, auditor reads)"),
        (name = "log", description = "Checkpoints, proofs, receipts and exports: the verifiable log (auditor)"),
        (name = "channels", description = "Channel settings for the webhooks, and their dead letters (admin)"),
        (name = "webhooks", description = "WhatsApp Cloud API and Twilio SMS webhooks, authenticated by the providers' signatures"),
        (name = "pages", description = "The hosted opt-in and opt-out pages (public HTML)"),
        (name = "operations", description = "Health and problem types"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some("A tenant's API key: clk_<12 hex>_<43 base64url>".to_owned());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let mut operator = Http::new(HttpAuthScheme::Bearer);
        operator.description = Some("The operator token".to_owned());
        components.add_security_scheme("operator", SecurityScheme::Http(operator));
    }
}

/// Any operation may answer a 5XX problem (`internal`, or `not_ready` and
/// `busy` when the database is away or locked) and 429 `rate_limited`;
/// one that takes a body also 408 `request_timeout` and 413. Documented on
/// each that does not describe its own.
struct ServerErrors;

impl Modify for ServerErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let problem = |description: &str| {
            use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
            ResponseBuilder::new()
                .description(description)
                .content(
                    crate::api::PROBLEM_CONTENT_TYPE,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        let server =
            problem("Problem on our side: `internal`, or `not_ready`/`busy`/`overloaded` (retry)");
        let limited = problem("`rate_limited`: too many requests, failed authentications, connections or exports; see `Retry-After`");
        let slow = problem("`request_timeout`: the body did not arrive in time");
        let large = problem("`payload_too_large`");
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let takes_body = operation.request_body.is_some();
                let responses = &mut operation.responses.responses;
                // A status is described when it, or its class (`4XX`), is.
                let described = |responses: &std::collections::BTreeMap<String, _>,
                                 status: &str| {
                    let class = format!("{}XX", &status[..1]);
                    responses.keys().any(|s| s == status || *s == class)
                };
                if !responses.keys().any(|status| status.starts_with('5')) {
                    responses.insert("5XX".to_owned(), server.clone().into());
                }
                if !described(responses, "429") {
                    responses.insert("429".to_owned(), limited.clone().into());
                }
                if takes_body && !described(responses, "408") {
                    responses.insert("408".to_owned(), slow.clone().into());
                }
                if takes_body && !described(responses, "413") {
                    responses.insert("413".to_owned(), large.clone().into());
                }
            }
        }
    }
}

/// Everything that names a person takes `number` or `user_id`, exactly one
/// (SPEC section 3), and `region` only with a number: each request schema
/// with both says so with a `oneOf` of two branches that exclude each other
/// (a user id is WhatsApp's: no `sms` on opt-ins and checks). Opt-ins and
/// opt-outs add a `oneOf` of their capture channels, each with its evidence
/// row (SPEC section 4).
struct IdentityAlternatives;

impl Modify for IdentityAlternatives {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AllOfBuilder, OneOfBuilder, Schema};
        use utoipa::openapi::RefOr;
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (name, schema) in components.schemas.iter_mut() {
            let RefOr::T(Schema::Object(object)) = schema else {
                continue;
            };
            let names_a_person = object.properties.contains_key("number")
                && object.properties.contains_key("user_id");
            let request = name.ends_with("Request") || name.ends_with("Query");
            let mut alternatives = Vec::new();
            if names_a_person && request {
                alternatives.push(identity_branches(name));
            }
            let evidence = match name.as_str() {
                "OptInRequest" => Some(EvidenceFor::OptIn),
                "OptOutRequest" => Some(EvidenceFor::OptOut),
                _ => None,
            };
            if let Some(kind) = evidence {
                let mut rows = OneOfBuilder::new();
                for branch in crate::domain::openapi::evidence_by_channel(kind) {
                    rows = rows.item(branch);
                }
                alternatives.push(Schema::OneOf(rows.build()));
            }
            if alternatives.is_empty() {
                continue;
            }
            let description = object.description.take();
            let mut whole = AllOfBuilder::new().item(Schema::Object(object.clone()));
            for alternative in alternatives {
                whole = whole.item(alternative);
            }
            *schema = RefOr::T(Schema::AllOf(whole.description(description).build()));
        }
    }
}

/// By `number` (a string; no `user_id`), or by `user_id` (a string; no
/// `number`, no `region`, and on opt-ins and checks no `sms`).
fn identity_branches(request: &str) -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{
        ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
    };
    let null = || ObjectBuilder::new().schema_type(Type::Null);
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let whatsapp = || string().enum_values(Some(["whatsapp"]));
    let by_number = ObjectBuilder::new()
        .required("number")
        .property("number", string())
        .property("user_id", null());
    let by_user_id = ObjectBuilder::new()
        .required("user_id")
        .property("user_id", string())
        .property("number", null())
        .property("region", null());
    let by_user_id = match request {
        "OptInRequest" => by_user_id.property(
            "message_channels",
            ArrayBuilder::new()
                .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
                .items(whatsapp()),
        ),
        "CheckRequest" => by_user_id.property("channel", whatsapp()),
        _ => by_user_id,
    };
    Schema::OneOf(OneOfBuilder::new().item(by_number).item(by_user_id).build())
}

/// Every documented route.
pub fn api_routes(cfg: &mut ServiceConfig) {
    cfg.service(api::tenants::create_tenant)
        .service(api::tenants::get_tenant)
        .service(api::tenants::patch_tenant)
        .service(api::brands::list_brands)
        .service(api::brands::create_brand)
        .service(api::brands::retire_brand)
        .service(api::keys::list_keys)
        .service(api::keys::create_key)
        .service(api::keys::revoke_key)
        .service(api::records::create_opt_in)
        .service(api::records::create_opt_out)
        .service(api::records::create_interaction)
        .service(api::forms::list_forms)
        .service(api::forms::create_form)
        .service(api::forms::get_form)
        .service(api::forms::replace_form)
        .service(api::documents::upload_document)
        .service(api::documents::get_document)
        .service(api::checks::check)
        .service(api::checks::check_batch)
        .service(api::subjects::query_subject)
        .service(api::subjects::erase_subject)
        .service(api::entries::get_entry)
        .service(api::log::receipt)
        .service(api::log::latest_checkpoint)
        .service(api::log::checkpoint_by_size)
        .service(api::log::keys)
        .service(api::log::inclusion_proof)
        .service(api::log::consistency_proof)
        .service(api::export::export)
        .service(api::export::dossier)
        .service(api::channel_settings::get_channels)
        .service(api::channel_settings::put_channels)
        .service(api::dead_letters::dead_letters)
        .service(api::dead_letters::dead_letter)
        .service(api::audit::audit_events)
        .service(api::webhooks::whatsapp::whatsapp_handshake)
        .service(api::webhooks::whatsapp::whatsapp_notification)
        .service(api::webhooks::twilio::twilio_message)
        .service(api::pages::show_page)
        .service(api::pages::post_page)
        .service(api::health::healthz)
        .service(api::health::readyz)
        .service(api::health::problem_type);
}

/// The OpenAPI document, as committed in `openapi/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, openapi) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(api_routes)
        .split_for_parts();
    let mut openapi = openapi;
    // After the routes: a modifier of `ApiDoc` would find no paths yet.
    ServerErrors.modify(&mut openapi);
    IdentityAlternatives.modify(&mut openapi);
    openapi
}

/// The committed form: pretty JSON with a final newline.
pub fn openapi_json() -> String {
    let mut text = openapi_document()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

/// The paths served that the OpenAPI document does not list (Swagger UI
/// and the document itself): GET only.
const UNDOCUMENTED_GETS: &[&str] = &["/docs", "/docs/{_:.*}", "/openapi.json"];

/// The documented paths with their methods, to tell a wrong method (405
/// with `Allow`) from a path that does not exist (404).
struct KnownRoutes(Vec<(actix_web::dev::ResourceDef, String)>);

impl KnownRoutes {
    fn of(openapi: &utoipa::openapi::OpenApi) -> Self {
        let document = serde_json::to_value(openapi).unwrap_or_default();
        let mut routes = Vec::new();
        if let Some(paths) = document["paths"].as_object() {
            for (path, item) in paths {
                let methods: Vec<String> = item
                    .as_object()
                    .into_iter()
                    .flat_map(|ops| ops.keys())
                    .filter(|m| {
                        ["get", "put", "post", "delete", "patch", "head", "options"]
                            .contains(&m.as_str())
                    })
                    .map(|m| m.to_uppercase())
                    .collect();
                routes.push((
                    actix_web::dev::ResourceDef::new(path.as_str()),
                    methods.join(", "),
                ));
            }
        }
        // Served beside the document, not in it.
        for path in UNDOCUMENTED_GETS {
            routes.push((actix_web::dev::ResourceDef::new(*path), "GET".to_owned()));
        }
        Self(routes)
    }

    /// The `Allow` value of the documented path `path` matches, if any.
    fn allowed(&self, path: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(def, _)| def.is_match(path))
            .map(|(_, allow)| allow.as_str())
    }
}

/// Anything no route took: 405 on a known path, else 404.
fn unrouted(routes: &KnownRoutes, req: &actix_web::HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    match routes.allowed(req.path()) {
        Some(allow) => {
            let mut response = ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!(
                    "{} is not allowed here; this path takes {allow}",
                    req.method()
                ),
            )
            .error_response();
            if let Ok(value) = actix_web::http::header::HeaderValue::from_str(allow) {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::ALLOW, value);
            }
            response
        }
        None => ApiError::not_found("no such route").error_response(),
    }
}

/// The database, the master key and the operator token, ready to serve.
pub struct Prepared {
    pub pool: DbPool,
    pub master: Arc<MasterKey>,
    pub configured_operator_sha256: Option<String>,
    /// Where a newly generated operator token was written.
    pub operator_token_written: Option<PathBuf>,
}

/// Creates the data dir (0700), loads or makes the master key, opens and
/// migrates the database and checks its canary.
pub fn open_database(settings: &Settings) -> anyhow::Result<(DbPool, Arc<MasterKey>)> {
    if let Ok(meta) = std::fs::metadata(&settings.data_dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %settings.data_dir.display(), mode = format!("{mode:o}"), "the data dir is readable by others: make it 0700 (the files in it are created 0600)");
        }
    }
    if !settings.data_dir.exists() {
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!("cannot create the data dir {}", settings.data_dir.display())
        })?;
        std::fs::set_permissions(&settings.data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| {
                format!(
                    "cannot restrict the data dir {}",
                    settings.data_dir.display()
                )
            })?;
    }
    let (master, generated) = MasterKey::load_or_generate(&settings.master_key_file)?;
    if generated {
        tracing::warn!(path = %settings.master_key_file.display(), "generated a new master key: back it up, outside the data dir");
    }
    let pool = crate::store::pool::open(&settings.database, &master)?;
    Ok((pool, Arc::new(master)))
}

/// Everything `serve` needs before it binds.
pub fn prepare(settings: &Settings) -> anyhow::Result<Prepared> {
    let (pool, master) = open_database(settings)?;
    let mut conn = pool.get().context("cannot open a database connection")?;
    let configured = settings
        .operator_token
        .as_ref()
        .map(|t| keys::secret_sha256(t.expose()));
    let mut written = None;
    if configured.is_none() && meta_get(&mut conn, api::auth::OPERATOR_TOKEN_META)?.is_none() {
        // Write a private temporary file, store the hash, then move the file
        // into place: a crash in between leaves no token that the database
        // does not know, and a stale file from an older database is replaced.
        let token = keys::new_operator_token();
        let path = settings.data_dir.join("operator.token");
        let tmp = settings.data_dir.join("operator.token.tmp");
        let _ = std::fs::remove_file(&tmp);
        keys::write_private_file(&tmp, &format!("{token}\n"))
            .with_context(|| format!("cannot write the operator token to {}", tmp.display()))?;
        let hash = keys::secret_sha256(&token);
        if meta_insert(&mut conn, api::auth::OPERATOR_TOKEN_META, &hash)? {
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("cannot move the operator token to {}", path.display()))?;
            written = Some(path);
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    let now = crate::domain::time::Timestamp::now();
    crate::services::links::migrate_aliases(&mut conn, &master, now)
        .context("cannot migrate the wave-1 aliases into identity links")?;
    upgrade_stored_state(&mut conn, &master, now)?;
    crate::services::dead_letters::apply_letters_waiting_for_user_ids(&mut conn, &master, now)
        .context("cannot apply the opt-outs kept for user ids")?;
    crate::domain::number::warm_metadata();
    Ok(Prepared {
        pool,
        master,
        configured_operator_sha256: configured,
        operator_token_written: written,
    })
}

/// What the migrations cannot do without the master key, once, at start:
/// each subject's keyed identity hash, the windows an older version kept by
/// identity, and the dead letters' canonical identities.
fn upgrade_stored_state(
    conn: &mut crate::store::DbConn,
    master: &MasterKey,
    now: crate::domain::time::Timestamp,
) -> anyhow::Result<()> {
    let hashed = crate::store::subjects::fill_identity_hashes(conn, master)
        .context("cannot store the subjects' identity hashes")?;
    let moved = crate::store::consent::move_legacy_windows(conn, master, now)
        .context("cannot move the windows kept by identity onto subjects")?;
    let rewritten = crate::store::dead_letters::canonicalise_letters(conn, master)
        .context("cannot rewrite the dead letters' identities in canonical form")?;
    if hashed + moved + rewritten > 0 {
        tracing::info!(hashed, moved, rewritten, "stored state upgraded");
    }
    Ok(())
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
            let done = state
                .db(move |conn| {
                    crate::services::housekeeping::run(
                        conn,
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

/// What a test may control in a running application; the default is the
/// system clock, no gate and the usual housekeeping interval.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub clock: crate::domain::time::Clock,
    /// Writes under an `Idempotency-Key` wait for a permit of this
    /// semaphore once their key is taken (see [`AppState::write_gate`]).
    pub write_gate: Option<Arc<tokio::sync::Semaphore>>,
    /// How often housekeeping runs (default 10 minutes).
    pub housekeeping_interval: Option<std::time::Duration>,
    /// Group commits wait here until it opens (see `store/group_commit.rs`).
    pub group_gate: Option<Arc<crate::store::group_commit::Gate>>,
}

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
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let signer = Arc::new(Signer::new(settings.signer_state_file.clone()));
        let guards = Arc::new(Guards::new(&settings.limits, &settings.trusted_proxies));
        let connection_guards = guards.clone();
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let per_worker = (settings.limits.max_connections as usize).div_ceil(workers);
        let housekeeping_interval = hooks.housekeeping_interval;
        let state = app_state(settings, prepared, (signer, guards), hooks);
        let metrics_bind = state.settings.metrics_bind;
        let metrics = metrics_bind.map(|bind| metrics_server(state.clone(), bind));
        spawn_checkpointer(state.clone(), state.settings.checkpoint_interval);
        spawn_housekeeping(
            state.clone(),
            housekeeping_interval.unwrap_or(HOUSEKEEPING_INTERVAL),
        );
        let openapi = openapi_document();
        let routes = Arc::new(KnownRoutes::of(&openapi));
        let server = HttpServer::new(move || {
            let routes = routes.clone();
            let path_errors = web::PathConfig::default()
                .error_handler(|_, _| ApiError::not_found("no such resource").into());
            let query_errors = web::QueryConfig::default().error_handler(|_, _| {
                ApiError::invalid_field("query", "invalid_value", "the query string is not valid")
                    .into()
            });
            App::new()
                .wrap(actix_web::middleware::from_fn(crate::api::limits::guard))
                .wrap(actix_web::middleware::from_fn(crate::api::observe::count))
                // No answer is sniffed as another content type.
                .wrap(
                    actix_web::middleware::DefaultHeaders::new()
                        .add((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")),
                )
                .wrap(TracingLogger::<crate::telemetry::RequestSpan>::new())
                .app_data(state.clone())
                .app_data(web::Data::from(state.guards.clone()))
                .app_data(path_errors)
                .app_data(query_errors)
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
        .worker_max_blocking_threads(blocking_threads(workers))
        .max_connections(per_worker)
        .on_connect(move |connection, data| {
            let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
                return;
            };
            data.insert(ConnectionSocket(std::os::fd::AsRawFd::as_raw_fd(stream)));
            // Counted per address until the connection closes.
            let slot = stream
                .peer_addr()
                .ok()
                .and_then(|peer| connection_guards.open_connection(peer.ip()));
            if let Some(slot) = slot {
                data.insert(slot);
            }
        })
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

/// Blocking threads per HTTP worker: together, one per pooled connection.
fn blocking_threads(workers: usize) -> usize {
    (crate::store::pool::POOL_SIZE as usize).div_ceil(workers.max(1))
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
