//! The database: one SQLite file or one PostgreSQL server, reached through
//! `sqlx::Any` so that every feature has a single query path.
//!
//! Two pools share the database. `write` takes every statement that changes
//! something; on SQLite it holds exactly one connection, because SQLite has one
//! writer anyway and a single connection turns lock contention into an orderly
//! queue instead of `SQLITE_BUSY` retries. `read` serves the queries of the API
//! and of the WebSocket handshake, which WAL lets run beside the writer. On
//! SQLite a third pool, `checkpoints`, holds the one connection that copies
//! the WAL back into the database file ([`crate::checkpointer`]).
//!
//! A SQLite file is opened for writing once before the pools connect, so that
//! a database the server cannot write is named with the OS error at start-up;
//! the pools then open it without creating it, and the write pool checks that
//! the path still names that file ([`SqliteFile`]) on every acquire.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyPool, Connection, Transaction};

use crate::storage::SqliteFile;

/// Which database the URL named; the few statements that differ look here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A local SQLite file, in WAL mode.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Why the database could not be opened or prepared.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL's scheme is neither SQLite nor PostgreSQL.
    #[error("unsupported database url `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// The directory for the default SQLite file could not be made.
    #[error("cannot create the data directory {path}")]
    DataDir {
        /// The directory.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The SQLite file cannot be opened for writing (or created).
    #[error("cannot open the SQLite database {path} for writing: {source}")]
    NotWritable {
        /// The file.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Connecting failed.
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("cannot migrate the database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The server's database handle: cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    /// Queries that only read.
    pub read: AnyPool,
    /// Every statement that writes. On SQLite it has one connection.
    pub write: AnyPool,
    /// Which backend the pools talk to.
    pub backend: Backend,
    /// SQLite only: one connection for the [`Checkpointer`]'s WAL
    /// checkpoints, so that they wait for no API query and none waits for them.
    ///
    /// [`Checkpointer`]: crate::checkpointer::Checkpointer
    pub checkpoints: Option<AnyPool>,
    /// SQLite only (on a file): the file opened, to notice it being deleted
    /// or replaced under the server.
    pub file: Option<Arc<SqliteFile>>,
}

/// The pragmas every SQLite connection runs first. WAL lets readers run beside
/// the writer; `synchronous=NORMAL` is durable against process crashes in WAL
/// mode and much faster than `FULL`; the busy timeout covers the moments a
/// reader checkpoints; foreign keys are off by default in SQLite.
///
/// `temp_store = MEMORY` keeps statement journals and the temporary tables of
/// the multi-row `UPDATE ... FROM (VALUES ...)` out of temporary files: they
/// were half of what the server wrote. A checkpoint every 10,000 pages
/// (about 40 MB of WAL) instead of 1,000 copies a page that many commits
/// rewrite once instead of many times. Together they took the server from
/// 9.8 KB written and 71 us of CPU per dispatched task to 4.2 KB and 54 us.
///
/// The checkpoints themselves run beside the writer, on a connection of their
/// own ([`crate::checkpointer`]). `wal_autocheckpoint` still bounds the WAL:
/// the commit that takes it past 10,000 pages checkpoints too, the scheduler's
/// writer waiting, but has only what the checkpointer has not copied yet, and
/// the WAL then starts over. Before the checkpointer that commit copied
/// everything; the mark was raised to 40,000 pages (160 MB of WAL) to have
/// fewer such stops, and each then took 120-600 ms.
const SQLITE_PRAGMAS: [&str; 6] = [
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA foreign_keys = ON",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA wal_autocheckpoint = 10000",
];

/// Reader connections on SQLite: enough for the API's queries on a small machine.
const SQLITE_READERS: u32 = 4;
/// Connections of each pool on PostgreSQL.
const POSTGRES_CONNECTIONS: u32 = 8;
/// How long a statement waits for a free connection before it fails; also how
/// long start-up keeps trying to reach the database.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The default database: `youmi.db` under `data_dir`, created on first run.
pub fn default_url(data_dir: &Path) -> Result<String, DbError> {
    std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    let dir = std::fs::canonicalize(data_dir).map_err(|source| DbError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    Ok(format!(
        "sqlite://{}?mode=rwc",
        dir.join("youmi.db").display()
    ))
}

/// Which backend a database URL names.
pub fn backend_of(url: &str) -> Result<Backend, DbError> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or("");
    match scheme {
        "sqlite" => Ok(Backend::Sqlite),
        "postgres" | "postgresql" => Ok(Backend::Postgres),
        _ => Err(DbError::UnsupportedUrl(redact(url))),
    }
}

/// The URL without its password, for error messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            let credentials = &url[start + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..start + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Db {
    /// Connects both pools to the database that `url` names. A SQLite URL
    /// without options gets `mode=rwc`, so the file is created on first run.
    #[tracing::instrument(skip_all, fields(url = %redact(url)))]
    pub async fn open(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                let (url, file) = match sqlite_file_of(&url) {
                    Some((path, create)) => {
                        let file = open_for_writing(&path, create)?;
                        // The file exists now: no pool may create it again,
                        // or a connection opened after it was deleted would
                        // write into a new, empty database.
                        (url.replacen("mode=rwc", "mode=rw", 1), Some(Arc::new(file)))
                    }
                    None => (url, None),
                };
                // The writer connects first: it switches the file to WAL,
                // which the readers then find in place.
                let write = sqlite_pool(1, true, file.clone())
                    .connect(&url)
                    .await
                    .map_err(DbError::Connect)?;
                let read = sqlite_pool(SQLITE_READERS, false, None)
                    .connect(&url)
                    .await
                    .map_err(DbError::Connect)?;
                let checkpoints = sqlite_pool(1, false, None)
                    .connect(&url)
                    .await
                    .map_err(DbError::Connect)?;
                Ok(Db {
                    read,
                    write,
                    backend,
                    checkpoints: Some(checkpoints),
                    file,
                })
            }
            Backend::Postgres => {
                let options = || {
                    AnyPoolOptions::new()
                        .max_connections(POSTGRES_CONNECTIONS)
                        .acquire_timeout(ACQUIRE_TIMEOUT)
                };
                let write = options()
                    .after_release(|connection, _| {
                        Box::pin(async move { Ok(!connection.is_in_transaction()) })
                    })
                    .before_acquire(|connection, _| {
                        Box::pin(async move { Ok(!connection.is_in_transaction()) })
                    })
                    .connect(url)
                    .await
                    .map_err(DbError::Connect)?;
                let read = options().connect(url).await.map_err(DbError::Connect)?;
                Ok(Db {
                    read,
                    write,
                    backend,
                    checkpoints: None,
                    file: None,
                })
            }
        }
    }

    /// Runs the migrations of this backend that have not run yet.
    #[tracing::instrument(skip_all, fields(backend = ?self.backend))]
    pub async fn migrate(&self) -> Result<(), DbError> {
        self.migrator().run(&self.write).await?;
        Ok(())
    }

    /// The migrations of this backend, as built into the binary.
    pub fn migrator(&self) -> sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("../migrations/postgres"),
        }
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a transaction that reads before it writes cannot
    /// fail half-way on a lock upgrade.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.write.begin().await,
        }
    }

    /// Whether the SQLite file is still the one opened (always, on
    /// PostgreSQL): what changed if not.
    pub fn check_file(&self) -> Result<(), String> {
        match &self.file {
            Some(file) => file.check(),
            None => Ok(()),
        }
    }

    /// Waits for the connections in use to come back, then closes both pools.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.close().await;
        }
    }
}

/// The SQLite file a URL names, and whether it may be created; `None` for an
/// in-memory or read-only database.
fn sqlite_file_of(url: &str) -> Option<(std::path::PathBuf, bool)> {
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let query = url.split_once('?').map(|(_, query)| query).unwrap_or("");
    let mode = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("mode="))
        .unwrap_or("rw");
    let path = options.get_filename();
    let in_memory = path.to_string_lossy().starts_with("file:sqlx-in-memory");
    if in_memory || mode == "memory" || mode == "ro" {
        return None;
    }
    Some((path.to_path_buf(), mode == "rwc"))
}

/// Opens (creating it if `create`) the SQLite file for writing, so that one
/// the server cannot write is refused with the OS's reason rather than, after
/// the pool's retries, "pool timed out".
fn open_for_writing(path: &Path, create: bool) -> Result<SqliteFile, DbError> {
    let not_writable = |source| DbError::NotWritable {
        path: path.display().to_string(),
        source,
    };
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(not_writable)?;
    SqliteFile::open(path).map_err(not_writable)
}

/// The options of a SQLite pool; `file` (the writer's) is checked on every
/// acquire and connect, so that no statement of the write pool reaches a file
/// that is no longer the database's.
///
/// A connection that comes back in a transaction (its commit or rollback
/// failed: SQLite may have rolled back already while sqlx still counts one
/// open, and every later `BEGIN` on it then fails with "attempted to call
/// begin_with at non-zero transaction depth") is closed, not reused.
fn sqlite_pool(connections: u32, writer: bool, file: Option<Arc<SqliteFile>>) -> AnyPoolOptions {
    let acquire_file = file.clone();
    AnyPoolOptions::new()
        .max_connections(connections)
        .min_connections(if writer { 1 } else { 0 })
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_release(|connection, _| Box::pin(async move { Ok(!connection.is_in_transaction()) }))
        .before_acquire(move |connection, _| {
            let file = acquire_file.clone();
            Box::pin(async move {
                match file.map(|file| file.check()) {
                    Some(Err(reason)) => Err(sqlx::Error::Io(std::io::Error::other(reason))),
                    _ => Ok(!connection.is_in_transaction()),
                }
            })
        })
        .after_connect(move |connection, _| {
            let file = file.clone();
            Box::pin(async move {
                if let Some(Err(reason)) = file.map(|file| file.check()) {
                    return Err(sqlx::Error::Io(std::io::Error::other(reason)));
                }
                for pragma in SQLITE_PRAGMAS {
                    // Only the writer switches the journal mode: it is a property
                    // of the file, and changing it needs an exclusive lock.
                    if !writer && pragma.contains("journal_mode") {
                        continue;
                    }
                    sqlx::query(pragma).execute(&mut *connection).await?;
                }
                Ok(())
            })
        })
}

impl Backend {
    /// Placeholders for an `IN (...)` list of `count` values, as `sqlx::Any`
    /// has no array parameters; the list must be all of its statement's
    /// parameters. SQLite gets anonymous `?`: it finds numbered ones by a
    /// linear scan per bound value, which made a list of 1,000 quadratic.
    pub fn in_list(self, count: usize) -> String {
        let mut out = String::with_capacity(count * 6);
        for i in 1..=count {
            if i > 1 {
                out.push_str(", ");
            }
            match self {
                Backend::Sqlite => out.push('?'),
                Backend::Postgres => {
                    out.push('$');
                    out.push_str(&i.to_string());
                }
            }
        }
        out
    }
}

/// Reads an integer column that holds a 0/1 boolean.
pub fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    use sqlx::Row;
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// Converts a boolean to the 0/1 integer the schema stores.
pub fn int_flag(value: bool) -> i64 {
    i64::from(value)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    youmi_controller::clock::unix_ms(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_follows_the_scheme() {
        assert_eq!(backend_of("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(backend_of("postgres://u@h/d").unwrap(), Backend::Postgres);
        assert_eq!(backend_of("postgresql://u@h/d").unwrap(), Backend::Postgres);
        assert!(matches!(
            backend_of("mysql://u:secret@h/d"),
            Err(DbError::UnsupportedUrl(url)) if !url.contains("secret")
        ));
    }

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("postgres://u:pw@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(redact("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn in_lists_number_their_placeholders_on_postgres_only() {
        assert_eq!(Backend::Postgres.in_list(3), "$1, $2, $3");
        assert_eq!(Backend::Sqlite.in_list(3), "?, ?, ?");
        assert_eq!(Backend::Postgres.in_list(1), "$1");
    }

    #[test]
    fn default_url_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b");
        let url = default_url(&data).unwrap();
        assert!(data.is_dir());
        assert!(url.starts_with("sqlite:///"), "{url}");
        assert!(url.ends_with("youmi.db?mode=rwc"), "{url}");
    }
}
