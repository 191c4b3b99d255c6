//! Test databases: each test gets a PostgreSQL database of its own, migrated, and dropped when
//! the test ends, whether it passed or failed. Compiled into the library's unit tests only
//! (`cfg(test)`), and into the integration tests as their `support::db` (a `#[path]` module):
//! one implementation for both.
//!
//! Decisions
//! - Names: `akig_test_<run>_<n>` for a test's database and `akig_test_<run>_tpl` for the
//!   run's template, where `<run>` is `<pid>_<8 random hex digits>`, unique to this test
//!   process. Two checkouts testing at once on one PostgreSQL never share a name (sqlx's own
//!   test attribute names a test's database after the test's path and drops any database of
//!   that name before creating it: two checkouts running one test at once drop each other's).
//! - Speed: the migrations run once per process, on the template; each test then copies it
//!   (`CREATE DATABASE … TEMPLATE`: files are copied, no SQL is replayed).
//! - Liveness: a run holds one connection named `akig_test_<run>` (`application_name`) for
//!   its whole life, on a thread of its own. At the start of a run, the databases of runs with
//!   no such connection (killed, crashed) are dropped; a live run's never are.
//! - Clean-up: a test's database is dropped with `DROP DATABASE … WITH (FORCE)` (PostgreSQL
//!   13+) when its [`TestDb`] is dropped, on a thread and runtime of its own (the test's
//!   runtime may be unwinding), without making the test wait. At process exit, after the last
//!   test passed or failed, those drops are awaited and the template and anything left over
//!   are dropped. `AKIG_TEST_KEEP_DB=1` keeps the database of a failed test for a look
//!   (the next run sweeps it).
//! - Every `#[tokio::test]` runs on a runtime of its own: no connection outlives the runtime
//!   that opened it, apart from the liveness connection on its own thread.
//! - The server is the one of `DATABASE_URL` (its database is only used to connect); the role
//!   must be allowed to CREATE DATABASE.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::sync::OnceCell;

/// Every test database name starts with this.
const PREFIX: &str = "akig_test_";

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// A fresh database for one test, dropped when this value is dropped.
///
/// ```ignore
/// let db = TestDb::new().await;
/// create_user(&db.pool, "awa.camara", "agent", &[], None).await;
/// let app = spawn_app(&db).await;
/// ```
pub struct TestDb {
    /// A pool on the database (at most 5 connections, idle ones closed after a second).
    pub pool: PgPool,
    name: String,
    run: &'static Run,
}

impl TestDb {
    /// A database with every migration applied.
    pub async fn new() -> Self {
        let run = Run::get().await;
        Self::create(run, Some(&run.template)).await
    }

    /// A database with nothing in it, not even the migrations table.
    pub async fn empty() -> Self {
        Self::create(Run::get().await, None).await
    }

    async fn create(run: &'static Run, template: Option<&str>) -> Self {
        let name = format!("{}_{}", run.id, run.next.fetch_add(1, Ordering::Relaxed));
        run.created(&name);
        let sql = match template {
            Some(template) => format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#),
            None => format!(r#"CREATE DATABASE "{name}""#),
        };
        create_database(&run.server, &sql).await;
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .idle_timeout(Some(Duration::from_secs(1)))
            .connect_with(run.server.clone().database(&name))
            .await
            .unwrap_or_else(|e| panic!("connect to {name}: {e}"));
        Self { pool, name, run }
    }

    /// The options that connect to this database, for a server under test or a relay.
    pub fn connect_options(&self) -> PgConnectOptions {
        (*self.pool.connect_options()).clone()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("AKIG_TEST_KEEP_DB").is_some() {
            eprintln!("kept the database {} of a failed test", self.name);
            self.run.dropped(&self.name);
            return;
        }
        // In the background: a DROP DATABASE waits for a checkpoint (about a second), which the
        // next test need not wait for. The clean-up at exit waits for it.
        let run = self.run;
        let name = std::mem::take(&mut self.name);
        let dropping = std::thread::spawn(move || {
            match block_on_new_runtime(drop_database(&run.server, &name)) {
                Ok(()) => run.dropped(&name),
                // Left for the clean-up at exit, or the next run's sweep.
                Err(e) => eprintln!("could not drop the test database {name}: {e}"),
            }
        });
        lock(&run.dropping).push(dropping);
    }
}

/// This process's run: its id, its server and its template.
struct Run {
    /// `akig_test_<pid>_<random>`: prefix of the run's database names and name of its
    /// liveness connection.
    id: String,
    /// The server of `DATABASE_URL`, connecting to its maintenance database.
    server: PgConnectOptions,
    template: String,
    next: AtomicU32,
    /// Test databases created and not dropped yet.
    databases: Mutex<HashSet<String>>,
    /// Drops under way.
    dropping: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

static RUN: OnceCell<Run> = OnceCell::const_new();

impl Run {
    async fn get() -> &'static Run {
        RUN.get_or_init(Run::start).await
    }

    /// Holds the liveness connection, sweeps dead runs, migrates the template.
    async fn start() -> Run {
        let url = std::env::var("DATABASE_URL").expect(
            "DATABASE_URL names the PostgreSQL server of the tests, \
             e.g. postgres://postgres@127.0.0.1:5432/postgres",
        );
        let server = PgConnectOptions::from_str(&url).expect("DATABASE_URL is a PostgreSQL URL");
        let random = uuid::Uuid::new_v4().simple().to_string();
        let id = format!("{PREFIX}{}_{}", std::process::id(), &random[..8]);
        let server = server.application_name(&id);
        hold_liveness(server.clone()).await;
        sweep_dead_runs(&server).await;
        let template = format!("{id}_tpl");
        let run = Run {
            id,
            server,
            template,
            next: AtomicU32::new(1),
            databases: Mutex::new(HashSet::new()),
            dropping: Mutex::new(Vec::new()),
        };
        run.created(&run.template);
        drop_at_exit();
        create_template(&run.server, &run.template).await;
        run
    }

    fn created(&self, name: &str) {
        lock(&self.databases).insert(name.to_owned());
    }

    fn dropped(&self, name: &str) {
        lock(&self.databases).remove(name);
    }
}

async fn create_template(server: &PgConnectOptions, template: &str) {
    on_server(server, &format!(r#"CREATE DATABASE "{template}""#))
        .await
        .unwrap_or_else(|e| panic!("create the template database {template}: {e}"));
    let mut conn = PgConnection::connect_with(&server.clone().database(template))
        .await
        .unwrap_or_else(|e| panic!("connect to {template}: {e}"));
    MIGRATOR
        .run(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("migrate {template}: {e}"));
    // A template may have no connection when it is copied: closed to connections from now on
    // (autovacuum included), so copies do not race with anything.
    conn.close().await.expect("close the template connection");
    on_server(
        server,
        &format!(r#"ALTER DATABASE "{template}" WITH ALLOW_CONNECTIONS false"#),
    )
    .await
    .unwrap_or_else(|e| panic!("close {template} to connections: {e}"));
}

/// Opens the run's liveness connection on a thread of its own and keeps it open (reconnecting
/// if it breaks) until the process ends. Answers once it is open.
async fn hold_liveness(server: PgConnectOptions) {
    let (opened, open) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("akig-test-liveness".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("liveness runtime");
            runtime.block_on(async move {
                let mut opened = Some(opened);
                loop {
                    match PgConnection::connect_with(&server).await {
                        Ok(mut conn) => {
                            if let Some(opened) = opened.take() {
                                let _ = opened.send(Ok(()));
                            }
                            while conn.ping().await.is_ok() {
                                tokio::time::sleep(Duration::from_secs(5)).await;
                            }
                        }
                        Err(e) => {
                            if let Some(opened) = opened.take() {
                                let _ = opened.send(Err(e));
                                return;
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        })
        .expect("spawn the liveness thread");
    open.await
        .expect("the liveness thread answers")
        .unwrap_or_else(|e| panic!("connect to the PostgreSQL of DATABASE_URL: {e}"));
}

/// Drops the databases of runs that no longer hold their liveness connection.
async fn sweep_dead_runs(server: &PgConnectOptions) {
    let mut conn = PgConnection::connect_with(server)
        .await
        .unwrap_or_else(|e| panic!("connect to the PostgreSQL of DATABASE_URL: {e}"));
    let pattern = format!("{}%", PREFIX.replace('_', r"\_"));
    let databases: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
            .bind(&pattern)
            .fetch_all(&mut conn)
            .await
            .expect("list test databases");
    let live: HashSet<String> = sqlx::query_scalar(
        "SELECT DISTINCT application_name FROM pg_stat_activity WHERE application_name LIKE $1",
    )
    .bind(&pattern)
    .fetch_all(&mut conn)
    .await
    .expect("list live test runs")
    .into_iter()
    .collect();
    let _ = conn.close().await;
    for name in databases {
        let alive = run_of(&name).is_none_or(|run| live.contains(run));
        if !alive && let Err(e) = drop_database(server, &name).await {
            eprintln!("could not drop {name}, left by an earlier test run: {e}");
        }
    }
}

/// `akig_test_<pid>_<random>` of `akig_test_<pid>_<random>_<n>`; `None` for other names.
fn run_of(database: &str) -> Option<&str> {
    let rest = database.strip_prefix(PREFIX)?;
    let mut parts = rest.splitn(3, '_');
    let (pid, random, _) = (parts.next()?, parts.next()?, parts.next()?);
    Some(&database[..PREFIX.len() + pid.len() + 1 + random.len()])
}

/// At process exit (after the last test, passed or failed), drops the run's template and any
/// database a test could not drop.
fn drop_at_exit() {
    unsafe extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
    }
    extern "C" fn drop_run_databases() {
        let Some(run) = RUN.get() else { return };
        let dropping: Vec<_> = lock(&run.dropping).drain(..).collect();
        for thread in dropping {
            let _ = thread.join();
        }
        let names: Vec<String> = lock(&run.databases).drain().collect();
        let server = run.server.clone();
        // On a thread of its own: this one's thread-locals may be gone by now.
        let outcome = std::thread::spawn(move || {
            block_on_new_runtime(async move {
                for name in names {
                    if let Err(e) = drop_database(&server, &name).await {
                        eprintln!("could not drop the test database {name}: {e}");
                    }
                }
            })
        })
        .join();
        if outcome.is_err() {
            eprintln!("could not drop the test databases: the clean-up panicked");
        }
    }
    // SAFETY: `atexit` only stores the pointer of a function that lives as long as the program.
    let status = unsafe { atexit(drop_run_databases) };
    assert_eq!(status, 0, "atexit refused the clean-up of test databases");
}

async fn drop_database(server: &PgConnectOptions, name: &str) -> Result<(), sqlx::Error> {
    on_server(
        server,
        &format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#),
    )
    .await
}

/// Runs one statement on the server's maintenance database, on a connection of its own.
/// Runs a `CREATE DATABASE`, retrying for up to 10 s while its template is busy ("source
/// database is being accessed by other users": a connection that is still closing, or an
/// autovacuum worker that got in before the template was closed to connections).
async fn create_database(server: &PgConnectOptions, sql: &str) {
    let mut attempts = 0;
    loop {
        match on_server(server, sql).await {
            Ok(()) => return,
            Err(e) if attempts < 100 && e.to_string().contains("accessed by other users") => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{sql}: {e}"),
        }
    }
}

async fn on_server(server: &PgConnectOptions, sql: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect_with(server).await?;
    let outcome = conn.execute(sql).await.map(|_| ());
    let _ = conn.close().await;
    outcome
}

/// Runs `work` to completion on a new runtime, on this thread (which must not be running one).
fn block_on_new_runtime<F: Future>(work: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the clean-up")
        .block_on(work)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
