//! A fresh database per test: a new PostgreSQL database when
//! `YOUMI_TEST_DATABASE_URL` names a server, otherwise an SQLite file in a
//! temporary directory.

use std::path::Path;
use std::sync::Once;

use rand::Rng;
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

/// The environment variable that points the suite at a PostgreSQL server: the
/// URL of a database the suite may connect to and create databases from.
pub const DATABASE_URL_ENV: &str = "YOUMI_TEST_DATABASE_URL";

/// Which database engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temporary SQLite file.
    Sqlite,
    /// A temporary database on a PostgreSQL server.
    Postgres,
}

/// One test's own database, removed again when it is dropped.
pub struct TestDb {
    /// Which engine it lives on.
    backend: Backend,
    /// The URL the server is given as `YOUMI_DATABASE_URL`.
    url: String,
    /// Holds the SQLite file (and serves as the server's data directory), so the
    /// file lives exactly as long as the test.
    dir: TempDir,
    /// For PostgreSQL: the admin URL and the database name, to drop it at the end.
    postgres: Option<(String, String)>,
}

static ANNOUNCE: Once = Once::new();

/// The PostgreSQL server the suite runs on: `YOUMI_TEST_DATABASE_URL`, if set
/// and not blank.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var(DATABASE_URL_ENV)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// The temporary directory a test database lives with.
fn scratch_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("youmi-e2e-")
        .tempdir()
        .expect("create a temporary directory for the test database")
}

/// Says once per test process which database the suite runs on. It writes to
/// the stderr handle itself: the test harness captures `eprintln!` inside
/// tests, and this line is for the person running the suite.
fn announce(line: &str) {
    ANNOUNCE.call_once(|| {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "{line}");
    });
}

impl TestDb {
    /// Creates a new, empty database for one test: on PostgreSQL when
    /// `YOUMI_TEST_DATABASE_URL` names a server, otherwise on SQLite.
    pub async fn create() -> TestDb {
        match postgres_admin_url() {
            Some(admin_url) => {
                announce(&format!(
                    "e2e: running on PostgreSQL ({DATABASE_URL_ENV} is set)"
                ));
                TestDb::postgres(&admin_url).await
            }
            None => {
                announce(&format!(
                    "e2e: running on SQLite (set {DATABASE_URL_ENV} for PostgreSQL)"
                ));
                TestDb::sqlite()
            }
        }
    }

    /// A new SQLite file in a temporary directory, whatever the environment
    /// says: for tests that compare the two backends.
    pub fn sqlite() -> TestDb {
        let dir = scratch_dir();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("youmi.db").display()
        );
        TestDb {
            backend: Backend::Sqlite,
            url,
            dir,
            postgres: None,
        }
    }

    /// A new database on the PostgreSQL server that `admin_url` reaches (a
    /// database the suite may connect to and create databases from).
    pub async fn postgres(admin_url: &str) -> TestDb {
        let name = format!("youmi_t_{:016x}", rand::thread_rng().gen::<u64>());
        let mut admin = PgConnection::connect(admin_url).await.unwrap_or_else(|e| {
            panic!("connect to {DATABASE_URL_ENV} to create a test database: {e}")
        });
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap_or_else(|e| panic!("create test database {name}: {e}"));
        admin.close().await.ok();
        let mut url = reqwest::Url::parse(admin_url)
            .unwrap_or_else(|e| panic!("{DATABASE_URL_ENV} is not a URL: {e}"));
        url.set_path(&format!("/{name}"));
        TestDb {
            backend: Backend::Postgres,
            url: url.to_string(),
            dir: scratch_dir(),
            postgres: Some((admin_url.to_owned(), name)),
        }
    }

    /// Which engine this database is on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database URL to give the server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A scratch directory that lives as long as the database: the server's data
    /// directory, and a home for agent state directories and record files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on, so the
        // database is dropped from a thread with a runtime of its own. FORCE ends
        // the connections a server that was not shut down may still hold.
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                    .await
                    .map_err(|e| format!("drop database {name}: {e}"))?;
                admin.close().await.ok();
                Ok::<(), String>(())
            })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("e2e: could not drop a test database: {e}"),
            Err(_) => eprintln!("e2e: the thread dropping a test database panicked"),
        }
    }
}
