//! A fresh database per test: a new PostgreSQL database when
//! `YOUMI_TEST_DATABASE_URL` names a server, otherwise an SQLite file in a
//! temporary directory. The PostgreSQL routines ([`create_database`],
//! [`drop_database`], [`database_url`]) are the only ones the workspace has:
//! the benchmarks make their run's database with them too.

use std::path::Path;
use std::sync::Once;

use anyhow::{bail, Context};
use rand::Rng;
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

/// Creates a new, empty database named `<prefix>_<16 random hex digits>` on
/// the PostgreSQL server `admin_url` reaches (a database one may connect to and
/// create databases from); gives its URL and its name.
pub async fn create_database(admin_url: &str, prefix: &str) -> anyhow::Result<(String, String)> {
    let name = format!("{prefix}_{:016x}", rand::thread_rng().gen::<u64>());
    let url = database_url(admin_url, &name)?;
    let mut admin = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("cannot connect to the PostgreSQL server to create {name}"))?;
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .with_context(|| format!("cannot create the database {name}"))?;
    admin.close().await.ok();
    Ok((url, name))
}

/// Drops database `name` from the server `admin_url` reaches, ending the
/// connections a server that was not shut down may still hold.
pub async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL to drop {name}"))?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await
        .with_context(|| format!("cannot drop the database {name}"))?;
    admin.close().await.ok();
    Ok(())
}

/// `admin_url` with its database name replaced by `name`; an error unless it
/// is a `postgres://` URL that names a host.
pub fn database_url(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut url =
        reqwest::Url::parse(admin_url).with_context(|| format!("not a URL: `{admin_url}`"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        bail!(
            "a PostgreSQL server is named by a postgres:// URL, not a {}:// one",
            url.scheme()
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("the URL names no host: `{admin_url}`");
    }
    url.set_path(&format!("/{name}"));
    Ok(url.into())
}

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
        let (url, name) = create_database(admin_url, "youmi_t")
            .await
            .unwrap_or_else(|e| panic!("{DATABASE_URL_ENV}: create a test database: {e:#}"));
        TestDb {
            backend: Backend::Postgres,
            url,
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

    /// Removes the database now, rather than when it is dropped (where a
    /// PostgreSQL database is dropped from a thread of its own).
    pub async fn remove(mut self) {
        if let Some((admin_url, name)) = self.postgres.take() {
            let _ = drop_database(&admin_url, &name).await;
        }
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
            runtime
                .block_on(drop_database(&admin_url, &name))
                .map_err(|e| format!("{e:#}"))
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("e2e: could not drop a test database: {e}"),
            Err(_) => eprintln!("e2e: the thread dropping a test database panicked"),
        }
    }
}
