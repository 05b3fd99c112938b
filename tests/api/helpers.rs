//! One `spawn_app()`: each test gets its own temporary data dir, its own
//! database (a SQLite file, or a database on the suite's throwaway
//! PostgreSQL cluster) and a free port, so tests run in parallel.

use consent_ledger::config::{Secret, Settings, SettingsArgs};
use consent_ledger::domain::time::{Clock, Timestamp};
use consent_ledger::startup::{prepare, Application, Hooks};
pub use consent_ledger_test_macros::{both, postgres_only};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

pub const OPERATOR_TOKEN: &str = "clo_test-operator-token-0123456789abcdefghijklmn";

/// Which database a test's apps run on: SQLite unless the test runs
/// under `#[both]` or `#[postgres_only]` (`tests/macros`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// PostgreSQL through PgBouncer in transaction mode, the service set
    /// for it (`CONSENT_LEDGER_PG_POOLER=transaction`).
    PgBouncer,
}

thread_local! {
    static BACKEND: std::cell::Cell<Backend> = const { std::cell::Cell::new(Backend::Sqlite) };
}

/// The database of the test running on this thread.
pub fn backend() -> Backend {
    BACKEND.with(|b| b.get())
}

/// Runs a test's future on its own runtime (current-thread, or with that
/// many workers), its apps on `backend`: what `#[both]` and `#[postgres_only]`
/// expand to.
pub fn run_on<F: std::future::Future<Output = ()>>(
    backend: Backend,
    workers: Option<usize>,
    test: F,
) {
    BACKEND.with(|b| b.set(backend));
    let runtime = match workers {
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .on_thread_start(move || BACKEND.with(|b| b.set(backend)))
            .enable_all()
            .build(),
    };
    runtime.expect("a test runtime").block_on(test);
}

/// Beside the data dir: the PostgreSQL URL of a test's database, direct
/// (the test's own connections and the CLI use it).
const DATABASE_URL_FILE: &str = "database-url";

/// Beside the data dir, through a pooler: the URL the test's services use.
const POOLED_URL_FILE: &str = "pooled-url";

/// Makes a test's database on its backend (none on SQLite, or when
/// PostgreSQL is not installed and not required) and notes beside `dir`
/// how to reach it.
pub fn make_database(dir: &std::path::Path) {
    if backend() == Backend::Sqlite {
        return;
    }
    let Some(cluster) = crate::postgres::cluster() else {
        return;
    };
    let url = cluster.new_database();
    std::fs::write(dir.join(DATABASE_URL_FILE), &url).expect("write url");
    if backend() == Backend::PgBouncer {
        if let Some(bouncer) = crate::postgres::bouncer() {
            std::fs::write(dir.join(POOLED_URL_FILE), bouncer.url_for(&url)).expect("write url");
        }
    }
}

/// What a service of the test in `dir` connects with: `DATABASE_URL` and
/// `CONSENT_LEDGER_PG_POOLER` (`None` on SQLite).
pub fn service_database(dir: &std::path::Path) -> Option<(String, Option<&'static str>)> {
    match std::fs::read_to_string(dir.join(POOLED_URL_FILE)) {
        Ok(url) => Some((url, Some("transaction"))),
        Err(_) => std::fs::read_to_string(dir.join(DATABASE_URL_FILE))
            .ok()
            .map(|url| (url, None)),
    }
}

pub struct TestApp {
    pub address: String,
    /// The metrics listener's `http://host:port` (`None`: off, or a
    /// service in another process).
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    /// The app's clock: the system's, or the manual one the test set.
    pub clock: Clock,
    /// Removed when the test ends.
    _dir: TempDir,
}

/// A tenant with one key per role.
pub struct Tenant {
    pub log: String,
    pub admin: String,
    pub collector: String,
    pub sender: String,
    pub auditor: String,
}

/// A response's status, headers and JSON body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// The `errors[].code` of a problem, for the named field.
    pub fn field_code(&self, field: &str) -> Option<String> {
        self.body["errors"]
            .as_array()?
            .iter()
            .find(|e| e["field"] == field)
            .and_then(|e| e["code"].as_str())
            .map(str::to_owned)
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the service with settings adjusted by `adjust` (paths under the
/// test's own temporary directory).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut SettingsArgs)) -> TestApp {
    spawn_app_hooked(adjust, Hooks::default()).await
}

/// Starts the service on a manual clock that stands at the real now until
/// the test moves it (`app.clock.advance(…)`).
pub async fn spawn_app_at_manual_clock() -> TestApp {
    spawn_app_at_manual_clock_with(|_| {}).await
}

/// Starts the service on a manual clock with settings adjusted by `adjust`.
pub async fn spawn_app_at_manual_clock_with(adjust: impl FnOnce(&mut SettingsArgs)) -> TestApp {
    let hooks = Hooks {
        clock: Clock::manual(Timestamp::now()),
        ..Hooks::default()
    };
    spawn_app_hooked(adjust, hooks).await
}

/// Starts the service with settings adjusted by `adjust` and a test's hooks.
pub async fn spawn_app_hooked(adjust: impl FnOnce(&mut SettingsArgs), hooks: Hooks) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    make_database(dir.path());
    start_in(dir, adjust, hooks).await
}

/// Starts the service on the PostgreSQL database at `url` (a cluster of
/// the test's own), with settings adjusted by `adjust`; the CLI and
/// `database_target` reach that database too.
#[allow(dead_code)]
pub async fn spawn_app_on(url: &str, adjust: impl FnOnce(&mut SettingsArgs)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(DATABASE_URL_FILE), url).expect("write url");
    start_in(dir, adjust, Hooks::default()).await
}

/// Starts the service on the data dir and database noted in `dir`.
async fn start_in(dir: TempDir, adjust: impl FnOnce(&mut SettingsArgs), hooks: Hooks) -> TestApp {
    let mut args = SettingsArgs {
        data_dir: Some(dir.path().join("data")),
        bind: Some("127.0.0.1:0".into()),
        metrics_bind: Some("127.0.0.1:0".into()),
        origin: Some("ledger.test".into()),
        operator_token: Some(Secret::new(OPERATOR_TOKEN.into())),
        ..Default::default()
    };
    if let Some((url, pooler)) = service_database(dir.path()) {
        args.database_url = Some(Secret::new(url));
        args.pg_pooler = pooler.map(str::to_owned);
    }
    adjust(&mut args);
    let settings = Settings::resolve(&args).expect("settings");
    let prepared = prepare(&settings).expect("prepare");
    let clock = hooks.clock.clone();
    let app = Application::build_with(settings, prepared, hooks).expect("build");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        metrics_address,
        client: reqwest::Client::new(),
        clock,
        _dir: dir,
    }
}

impl TestApp {
    /// The app's now moved by `offset_secs`, canonical (what `at` is for
    /// apps on the system clock).
    pub fn at(&self, offset_secs: i64) -> String {
        self.clock.now().plus_millis(offset_secs * 1000).to_string()
    }
}

/// Milliseconds-precise RFC 3339 for a moment `offset_secs` from now.
pub fn at(offset_secs: i64) -> String {
    let t = chrono::Utc::now() + chrono::Duration::seconds(offset_secs);
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub fn days_ago(days: i64) -> String {
    at(-days * 86_400)
}

/// The UTC date `offset_secs` from now, `YYYY-MM-DD`.
pub fn date_at(offset_secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(offset_secs))
        .format("%Y-%m-%d")
        .to_string()
}

/// Today's UTC date.
pub fn today() -> String {
    date_at(0)
}

impl TestApp {
    /// A service running in another process at `address`; `dir` lives as
    /// long as the handle. (Only the PostgreSQL suite runs several.)
    #[allow(dead_code)]
    pub fn external(address: String, dir: TempDir) -> Self {
        TestApp {
            address,
            metrics_address: None,
            client: reqwest::Client::new(),
            clock: Clock::system(),
            _dir: dir,
        }
    }

    /// The app's database, for tests that change it behind its back.
    pub fn database_target(&self) -> consent_ledger::config::DatabaseTarget {
        use consent_ledger::config::{DatabaseTarget, PostgresUrl};
        match std::fs::read_to_string(self._dir.path().join(DATABASE_URL_FILE)) {
            Ok(url) => DatabaseTarget::Postgres(PostgresUrl::new(&url)),
            Err(_) => DatabaseTarget::Sqlite(self.data_dir().join("consent-ledger.db")),
        }
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    /// The PostgreSQL URL of the app's database (`None` on SQLite).
    pub fn database_url(&self) -> Option<String> {
        std::fs::read_to_string(self._dir.path().join(DATABASE_URL_FILE)).ok()
    }

    /// Another instance on the same database, data dir and master key (on
    /// SQLite what a restart finds).
    pub async fn second_instance(&self) -> TestApp {
        let data = self.data_dir();
        let database = service_database(self._dir.path());
        spawn_app_with(move |args| {
            args.data_dir = Some(data);
            if let Some((url, pooler)) = database {
                args.database_url = Some(Secret::new(url));
                args.pg_pooler = pooler.map(str::to_owned);
            }
        })
        .await
    }

    /// A directory that lives as long as the app, for the test's own files.
    pub fn scratch(&self) -> std::path::PathBuf {
        self._dir.path().to_path_buf()
    }

    /// The body as text (checkpoints, NDJSON).
    pub async fn get_text(&self, path: &str, key: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    pub async fn post_text(&self, path: &str, key: &str, body: &Value) -> (StatusCode, String) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    /// `path` on the metrics listener.
    pub fn metrics_url(&self, path: &str) -> String {
        let base = self.metrics_address.as_deref().expect("a metrics listener");
        format!("{base}{path}")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Answer {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request");
        Self::answer(response).await
    }

    pub async fn post_with(
        &self,
        path: &str,
        key: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.client.post(self.url(path)).bearer_auth(key).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::answer(request.send().await.expect("request")).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        key: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        Self::answer(response).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Answer {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        Self::answer(response).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: &Value) -> Answer {
        let response = self
            .client
            .patch(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request");
        Self::answer(response).await
    }

    pub async fn put(&self, path: &str, key: &str, body: &Value) -> Answer {
        let response = self
            .client
            .put(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request");
        Self::answer(response).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Answer {
        let response = self
            .client
            .delete(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        Self::answer(response).await
    }

    /// Creates a tenant and one key per role.
    pub async fn tenant(&self, id: &str, brand: &str) -> Tenant {
        let created = self
            .post(
                "/v1/tenants",
                OPERATOR_TOKEN,
                &json!({"id": id, "brand": brand}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let admin = created.body["admin_key"]["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut keys = Vec::new();
        for role in ["collector", "sender", "auditor"] {
            keys.push(self.new_key(&admin, &[role]).await);
        }
        Tenant {
            log: created.body["log"].as_str().unwrap().to_owned(),
            admin,
            collector: keys[0].clone(),
            sender: keys[1].clone(),
            auditor: keys[2].clone(),
        }
    }

    pub async fn new_key(&self, admin: &str, roles: &[&str]) -> String {
        let made = self
            .post("/v1/keys", admin, &json!({"name": "test", "roles": roles}))
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        made.body["key"].as_str().unwrap().to_owned()
    }

    pub async fn add_brand(&self, tenant: &Tenant, name: &str) {
        let made = self
            .post("/v1/brands", &tenant.admin, &json!({"name": name}))
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    }

    pub async fn opt_in(&self, tenant: &Tenant, body: Value) -> Answer {
        self.post("/v1/opt-ins", &tenant.collector, &body).await
    }

    /// Records an opt-in and insists that it was recorded.
    pub async fn recorded_opt_in(&self, tenant: &Tenant, body: Value) -> u64 {
        let answer = self.opt_in(tenant, body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["seq"].as_u64().unwrap()
    }

    pub async fn opt_out(&self, tenant: &Tenant, body: Value) -> Answer {
        self.post("/v1/opt-outs", &tenant.collector, &body).await
    }

    pub async fn recorded_opt_out(&self, tenant: &Tenant, body: Value) -> u64 {
        let answer = self.opt_out(tenant, body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["seq"].as_u64().unwrap()
    }

    pub async fn check(&self, tenant: &Tenant, body: Value) -> Answer {
        self.post("/v1/checks", &tenant.sender, &body).await
    }

    /// The decision's reason for a check that must answer 200.
    pub async fn reason(&self, tenant: &Tenant, body: Value) -> String {
        let answer = self.check(tenant, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body["reason"].as_str().unwrap().to_owned()
    }
}

pub const NUMBER: &str = "+4915112345678";

/// A valid web opt-in for `brand`, captured a minute ago.
pub fn web_opt_in(number: &str, brand: &str, purposes: &[&str]) -> Value {
    json!({
        "number": number,
        "channel": "web",
        "company_name_shown": brand,
        "consent_text": format!("Yes, I want offers from {brand} on WhatsApp. Reply STOP to end."),
        "purposes": purposes,
        "captured_at": at(-60),
        "evidence": {"page_url": "https://shop.example/newsletter", "ip": "203.0.113.7", "user_agent": "Mozilla/5.0"}
    })
}

/// An API opt-out of everything, captured now.
pub fn api_opt_out(number: &str) -> Value {
    json!({
        "number": number,
        "channel": "api",
        "captured_at": at(0),
        "evidence": {"reason": "asked the call centre"}
    })
}

/// A 32-byte hash from its hex (proofs and leaf hashes of answers).
#[allow(dead_code)]
pub fn hash_of_hex(text: &str) -> consent_ledger::ledger::merkle::Hash {
    hex::decode(text).unwrap().try_into().unwrap()
}

/// The hashes of a JSON array of hex strings (a proof).
#[allow(dead_code)]
pub fn hashes_of(list: &Value) -> Vec<consent_ledger::ledger::merkle::Hash> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| hash_of_hex(x.as_str().unwrap()))
        .collect()
}

/// The binary with `args`, on the database of the app whose data dir is
/// `data_dir` (when given), as that app reaches it.
pub fn cli_command(args: &[&str], data_dir: Option<&std::path::Path>) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_consent-ledger"));
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CONSENT_LEDGER_PG_POOLER")
        .env_remove("CONSENT_LEDGER_MASTER_KEY_FILE")
        .env_remove("CONSENT_LEDGER_SIGNER_STATE_FILE")
        .env("CONSENT_LEDGER_ORIGIN", "ledger.test");
    if let Some(dir) = data_dir {
        command.env("CONSENT_LEDGER_DATA_DIR", dir);
        // As the test's services reach the database: through its pooler, if any.
        if let Some((url, pooler)) = dir.parent().and_then(service_database) {
            command.env("DATABASE_URL", url);
            if let Some(pooler) = pooler {
                command.env("CONSENT_LEDGER_PG_POOLER", pooler);
            }
        }
    }
    command
}

/// Runs the binary; returns its exit code, stdout and stderr.
pub fn run_cli(args: &[&str], data_dir: Option<&std::path::Path>) -> (i32, String, String) {
    let out = cli_command(args, data_dir)
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `text` to a file under `dir` and returns its path as a string.
pub fn write_file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `consent-ledger verify-db` on the app's database passes (run off the
/// test's runtime, which serves the app meanwhile).
#[allow(dead_code)]
pub async fn verify_db_passes(app: &TestApp) {
    let data_dir = app.data_dir();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || run_cli(&["verify-db"], Some(&data_dir)))
            .await
            .expect("verify-db ran");
    assert_eq!(code, 0, "{out}{err}");
}

/// A tenant id, for tests that call the store directly.
pub fn tenant_id(id: &str) -> consent_ledger::domain::access::TenantId {
    consent_ledger::domain::access::TenantId::parse(id).expect("a tenant id")
}
