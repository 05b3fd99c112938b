//! A throwaway PostgreSQL cluster for the suite: `initdb` on a temporary
//! directory, a free loopback port, run as the `postgres` user when the
//! tests run as root, and stopped by a watchdog when the test process ends.
//! Each test gets its own database. `bouncer()` puts Debian's PgBouncer in
//! transaction mode in front of it, for the tests that run through a pooler.

use diesel::{Connection, RunQueryDsl};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Set (to anything but `0`) in CI: a cluster that cannot start fails the
/// PostgreSQL tests instead of letting them run on SQLite.
pub const REQUIRE_VAR: &str = "CONSENT_LEDGER_REQUIRE_POSTGRES";

/// Set (to anything but `0`) in CI: a PgBouncer that cannot start fails the
/// tests that run through it instead of letting them run on PostgreSQL
/// directly.
pub const REQUIRE_BOUNCER_VAR: &str = "CONSENT_LEDGER_REQUIRE_PGBOUNCER";

/// `1`: the cluster keeps fsync and synchronous commits (benchmarks).
pub const DURABLE_VAR: &str = "CONSENT_LEDGER_PG_DURABLE";

pub struct Cluster {
    port: u16,
    databases: AtomicU32,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

fn required() -> bool {
    set(REQUIRE_VAR)
}

fn set(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Says once, past the test runner's capture of `eprintln!`, what a run
/// did instead of what was asked: never hidden.
fn note_once(said: &'static OnceLock<()>, note: String) {
    said.get_or_init(|| {
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "NOTE: {note}");
    });
}

/// The cluster, started on first use; `None` when PostgreSQL is not
/// installed and not required.
pub fn cluster() -> Option<&'static Cluster> {
    match CLUSTER.get_or_init(start) {
        Ok(cluster) => Some(cluster),
        Err(why) if required() => {
            panic!("{REQUIRE_VAR} is set but PostgreSQL did not start: {why}")
        }
        Err(why) => {
            static SAID: OnceLock<()> = OnceLock::new();
            note_once(&SAID, format!("PostgreSQL is not available ({why}); the PostgreSQL suite runs on SQLite (CONSENT_LEDGER_REQUIRE_POSTGRES=1 makes this a failure)"));
            None
        }
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin`, or `PG_BIN`.
fn bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as the cluster's owner.
fn as_owner(program: &Path, root: bool) -> Command {
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let out = command
        .output()
        .map_err(|e| format!("{what} did not run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs `stop`, a shell script that waits for this test process to end and
/// then stops what it started, in a session of its own.
fn watchdog(stop: &str) -> Result<(), String> {
    Command::new("setsid")
        .args(["sh", "-c", stop])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("watchdog: {e}"))
}

/// A cluster initialised in `dir` and started: where it is and how it
/// was started, so that it can be stopped and started again.
struct Launched {
    bin: PathBuf,
    root: bool,
    dir: PathBuf,
    data: PathBuf,
    options: String,
    port: u16,
}

impl Launched {
    fn pg_ctl(&self) -> Command {
        let mut pg_ctl = as_owner(&self.bin.join("pg_ctl"), self.root);
        pg_ctl.arg("-D").arg(&self.data);
        pg_ctl
    }

    fn start(&self) -> Result<(), String> {
        let mut pg_ctl = self.pg_ctl();
        pg_ctl
            .args(["-o", &self.options, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "start"]);
        run(pg_ctl, "pg_ctl start")
    }
}

/// `initdb` in `dir` (made anew), then a start on a free loopback port
/// with `durability`'s settings, and a watchdog that stops the cluster
/// and removes `dir` once this test process has ended.
fn launch(dir: PathBuf, durability: &str) -> Result<Launched, String> {
    let bin = bin_dir().ok_or("no initdb under /usr/lib/postgresql/*/bin (set PG_BIN)")?;
    let root = is_root();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if root {
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", "postgres:postgres"]).arg(&dir);
                c
            },
            "chown",
        )?;
    }
    let data = dir.join("data");
    let mut initdb = as_owner(&bin.join("initdb"), root);
    initdb.arg("-D").arg(&data).args([
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]);
    run(initdb, "initdb")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let options = format!(
        "-p {port} -c listen_addresses=127.0.0.1 -k {}{durability} -c max_connections=300",
        dir.display()
    );
    let launched = Launched {
        bin,
        root,
        dir,
        data,
        options,
        port,
    };
    launched.start()?;
    // Stops the cluster and removes it once this test process has ended.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {owner}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        owner = if root { "runuser -u postgres -- " } else { "" },
        pg_ctl = launched.bin.join("pg_ctl").display(),
        data = launched.data.display(),
        dir = launched.dir.display(),
    );
    watchdog(&stop)?;
    Ok(launched)
}

fn start() -> Result<Cluster, String> {
    let dir = std::env::temp_dir().join(format!("consent-ledger-pg-{}", std::process::id()));
    // Tests need no durability; a benchmark comparing backends does.
    let durability = if std::env::var(DURABLE_VAR).is_ok_and(|v| v == "1") {
        ""
    } else {
        " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    };
    let launched = launch(dir, durability)?;
    Ok(Cluster {
        port: launched.port,
        databases: AtomicU32::new(0),
    })
}

/// A cluster of one test's own, which it stops and starts as it likes (the
/// fault tests); stopped and removed when dropped.
#[allow(dead_code)]
pub struct OwnCluster(Launched);

/// A cluster for one test; `None` when PostgreSQL is not installed and not
/// required. A commit is acknowledged once its WAL is written, so an
/// immediate stop (the server processes killed) loses nothing
/// acknowledged; `fsync` stays off, as the machine itself does not crash.
#[allow(dead_code)]
pub fn own_cluster() -> Option<OwnCluster> {
    static OWN: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "consent-ledger-pg-{}-own-{}",
        std::process::id(),
        OWN.fetch_add(1, Ordering::SeqCst)
    ));
    match launch(dir, " -c fsync=off -c full_page_writes=off") {
        Ok(launched) => Some(OwnCluster(launched)),
        Err(why) if required() => {
            panic!("{REQUIRE_VAR} is set but PostgreSQL did not start: {why}")
        }
        Err(why) => {
            static SAID: OnceLock<()> = OnceLock::new();
            note_once(&SAID, format!("PostgreSQL is not available ({why}); the tests that stop the database server do not run (CONSENT_LEDGER_REQUIRE_POSTGRES=1 makes this a failure)"));
            None
        }
    }
}

#[allow(dead_code)]
impl OwnCluster {
    /// A fresh database; its URL.
    pub fn new_database(&self, name: &str) -> String {
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.0.port);
        let mut conn = diesel::pg::PgConnection::establish(&admin).expect("the cluster answers");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("create database");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.0.port)
    }

    /// `pg_ctl stop -m immediate`: every server process killed at once,
    /// no checkpoint; the next start recovers from the WAL.
    pub fn kill(&self) {
        let mut pg_ctl = self.0.pg_ctl();
        pg_ctl.args(["-m", "immediate", "-w", "stop"]);
        run(pg_ctl, "pg_ctl stop").expect("the cluster stops");
    }

    /// Starts the cluster again on its port, waiting until it accepts
    /// connections.
    pub fn start(&self) {
        self.0.start().expect("the cluster starts again");
    }

    /// Ends every session on `database` but the caller's own
    /// (`pg_terminate_backend`); how many it ended.
    pub fn terminate_sessions(&self, database: &str) -> usize {
        #[derive(diesel::QueryableByName)]
        struct Ended {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            #[allow(dead_code)]
            ended: bool,
        }
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.0.port);
        let mut conn = diesel::pg::PgConnection::establish(&admin).expect("the cluster answers");
        diesel::sql_query(
            "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind::<diesel::sql_types::Text, _>(database)
        .load::<Ended>(&mut conn)
        .expect("terminate sessions")
        .len()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let mut pg_ctl = self.0.pg_ctl();
        pg_ctl.args(["-m", "immediate", "stop"]);
        let _ = run(pg_ctl, "pg_ctl stop");
        let _ = std::fs::remove_dir_all(&self.0.dir);
    }
}

impl Cluster {
    /// A fresh database; its URL.
    pub fn new_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            self.databases.fetch_add(1, Ordering::SeqCst)
        );
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        let mut conn = diesel::pg::PgConnection::establish(&admin).expect("the cluster answers");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("create database");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

/// Every row of every table of the database at `url`, as text (what a
/// privacy test searches for what must be gone). Not every binary that
/// includes this file uses it.
#[allow(dead_code)]
pub fn dump_tables(url: &str) -> String {
    #[derive(diesel::QueryableByName)]
    struct Dump {
        #[diesel(sql_type = diesel::sql_types::Text)]
        dump: String,
    }
    let mut conn = diesel::pg::PgConnection::establish(url).expect("the database answers");
    let dumps: Vec<Dump> = diesel::sql_query(
        "SELECT query_to_xml(format('SELECT * FROM %I', tablename), true, false, '')::text AS dump \
         FROM pg_tables WHERE schemaname = 'public'",
    )
    .load(&mut conn)
    .expect("dump the tables");
    dumps
        .into_iter()
        .map(|d| d.dump)
        .collect::<Vec<_>>()
        .join("\n")
}

/// PgBouncer in transaction mode in front of the cluster: every database
/// of the cluster through one port, as `postgres`, without a password.
pub struct Bouncer {
    port: u16,
}

static BOUNCER: OnceLock<Result<Bouncer, String>> = OnceLock::new();

/// The pooler, started on first use; `None` when PgBouncer (or
/// PostgreSQL) is not installed and not required.
pub fn bouncer() -> Option<&'static Bouncer> {
    let cluster = cluster()?;
    match BOUNCER.get_or_init(|| start_bouncer(cluster.port)) {
        Ok(bouncer) => Some(bouncer),
        Err(why) if set(REQUIRE_BOUNCER_VAR) => {
            panic!("{REQUIRE_BOUNCER_VAR} is set but PgBouncer did not start: {why}")
        }
        Err(why) => {
            static SAID: OnceLock<()> = OnceLock::new();
            note_once(&SAID, format!("PgBouncer is not available ({why}); the tests through a pooler run on PostgreSQL directly (CONSENT_LEDGER_REQUIRE_PGBOUNCER=1 makes this a failure)"));
            None
        }
    }
}

impl Bouncer {
    /// The URL of the same database through the pooler.
    pub fn url_for(&self, direct: &str) -> String {
        let database = direct.rsplit('/').next().expect("a database name");
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

fn start_bouncer(cluster_port: u16) -> Result<Bouncer, String> {
    let program = std::env::var("PGBOUNCER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/sbin/pgbouncer"));
    if !program.exists() {
        return Err(format!(
            "no {} (apt-get install pgbouncer, or set PGBOUNCER)",
            program.display()
        ));
    }
    let root = is_root();
    let dir = std::env::temp_dir().join(format!("consent-ledger-pgbouncer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    // Pools per database of up to 40 server sessions: more than two
    // instances' pools (8 each) and the test's own connections.
    let config = format!(
        "[databases]\n* = host=127.0.0.1 port={cluster_port} user=postgres\n\n\
         [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
         auth_type = any\npool_mode = transaction\nmax_client_conn = 2000\n\
         default_pool_size = 40\nmax_db_connections = 0\n\
         ignore_startup_parameters = extra_float_digits,options\n\
         logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n",
        dir = dir.display()
    );
    let ini = dir.join("pgbouncer.ini");
    std::fs::write(&ini, config).map_err(|e| format!("{}: {e}", ini.display()))?;
    if root {
        let mut chown = Command::new("chown");
        chown.args(["-R", "postgres:postgres"]).arg(&dir);
        run(chown, "chown")?;
    }
    let mut start = as_owner(&program, root);
    start.arg("-d").arg(&ini);
    run(start, "pgbouncer -d")?;
    // Up once it answers on its port.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
            return Err(format!("pgbouncer did not listen on {port}: {log}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Stopped (and its directory removed) once this test process has ended.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; kill $(cat {dir}/pgbouncer.pid) 2>/dev/null; sleep 1; rm -rf {dir}",
        pid = std::process::id(),
        dir = dir.display(),
    );
    watchdog(&stop)?;
    Ok(Bouncer { port })
}
