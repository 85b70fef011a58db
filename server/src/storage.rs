//! Storage faults: which database errors are transient (worth retrying, a 503
//! to a client rather than a 500, a degraded store rather than a stopped
//! server), and whether the SQLite file the server opened is still the one
//! its path names.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sqlx::error::DatabaseError;

/// Whether `error` may be gone when the same statements are tried again later:
/// the disk (I/O errors, full, read-only, cannot open), the connection
/// (lost, refused, pool exhausted or closed), a lock or a serialization
/// conflict, a server shutting down or out of resources. Constraint
/// violations, bad SQL and decoding errors are not.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db_error) => {
            if let Some(sqlite) = db_error.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                let code = sqlite.code().and_then(|code| code.parse::<i32>().ok());
                return code.is_some_and(sqlite_code_is_transient);
            }
            if let Some(postgres) = db_error.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                return sqlstate_is_transient(postgres.code());
            }
            false
        }
        _ => false,
    }
}

/// SQLite result codes (extended; the primary code is the low byte) of a
/// moment: BUSY, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL.
fn sqlite_code_is_transient(code: i32) -> bool {
    const BUSY: i32 = 5;
    const READONLY: i32 = 8;
    const IOERR: i32 = 10;
    const FULL: i32 = 13;
    const CANTOPEN: i32 = 14;
    const PROTOCOL: i32 = 15;
    matches!(
        code & 0xff,
        BUSY | READONLY | IOERR | FULL | CANTOPEN | PROTOCOL
    )
}

/// PostgreSQL SQLSTATEs of a moment: connection exceptions (08), insufficient
/// resources such as a full disk (53), the server shutting down or starting
/// (57P0x), a read-only transaction (25006), serialization failures and
/// deadlocks (40001, 40P01).
fn sqlstate_is_transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P0")
        || matches!(code, "25006" | "40001" | "40P01")
}

/// The SQLite file the server opened, known by device and inode, so that a
/// file deleted or replaced under the running server is noticed rather than
/// written to unlinked.
#[derive(Debug)]
pub struct SqliteFile {
    /// The path the server opened.
    path: PathBuf,
    /// `st_dev` at open.
    device: u64,
    /// `st_ino` at open.
    inode: u64,
    /// Set once the path no longer names the file: what changed. It stays
    /// set; only a restart opens the database again.
    lost: Mutex<Option<String>>,
}

impl SqliteFile {
    /// Records the identity of the file at `path` now.
    pub fn open(path: &Path) -> std::io::Result<SqliteFile> {
        let metadata = std::fs::metadata(path)?;
        Ok(SqliteFile {
            path: path.to_path_buf(),
            device: metadata.dev(),
            inode: metadata.ino(),
            lost: Mutex::new(None),
        })
    }

    /// The path it was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks (one `stat`) that the path still names the file opened. The
    /// first time it does not, logs it at error level.
    pub fn check(&self) -> Result<(), String> {
        let mut lost = self.lost.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(reason) = lost.as_ref() {
            return Err(reason.clone());
        }
        let path = self.path.display();
        let change = match std::fs::metadata(&self.path) {
            Ok(now) if now.dev() == self.device && now.ino() == self.inode => return Ok(()),
            Ok(now) => format!(
                "was replaced: device {} inode {} at start, device {} inode {} now",
                self.device,
                self.inode,
                now.dev(),
                now.ino()
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => "was deleted".to_owned(),
            // Cannot tell; a stat that fails for another reason (EIO, say) is
            // not proof that the file is gone, and the writes will tell.
            Err(_) => return Ok(()),
        };
        let reason = format!(
            "the SQLite database file {path} {change}; writes are refused until the server is restarted on a database file"
        );
        tracing::error!(
            path = %path,
            change,
            "the SQLite database file is no longer the one the server opened; refusing every write"
        );
        *lost = Some(reason.clone());
        Err(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    #[test]
    fn sqlstates() {
        for code in [
            "08006", "08001", "53100", "53300", "57P01", "25006", "40001", "40P01",
        ] {
            assert!(sqlstate_is_transient(code), "{code}");
        }
        for code in ["23505", "42P01", "22021", "42601"] {
            assert!(!sqlstate_is_transient(code), "{code}");
        }
    }

    #[test]
    fn sqlite_codes() {
        // SQLITE_IOERR_WRITE, SQLITE_FULL, SQLITE_READONLY_DBMOVED, SQLITE_BUSY_SNAPSHOT.
        for code in [778, 13, 1032, 517, 14, 8] {
            assert!(sqlite_code_is_transient(code), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE, SQLITE_ERROR, SQLITE_CORRUPT.
        for code in [2067, 1, 11] {
            assert!(!sqlite_code_is_transient(code), "{code}");
        }
    }

    #[tokio::test]
    async fn real_errors_through_the_any_driver() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut connection = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .execute(&mut connection)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut connection)
            .await
            .unwrap();
        let duplicate = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut connection)
            .await
            .unwrap_err();
        assert!(!is_transient(&duplicate), "{duplicate}");
        let url = format!("sqlite://{}?mode=ro", path.display());
        let mut read_only = sqlx::AnyConnection::connect(&url).await.unwrap();
        let refused = sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut read_only)
            .await
            .unwrap_err();
        assert!(is_transient(&refused), "{refused}");
    }

    #[test]
    fn a_deleted_or_replaced_file_is_noticed_and_stays_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("youmi.db");
        std::fs::write(&path, b"one").unwrap();
        let file = SqliteFile::open(&path).unwrap();
        assert_eq!(file.check(), Ok(()));
        std::fs::rename(&path, dir.path().join("moved.db")).unwrap();
        std::fs::write(&path, b"two").unwrap();
        let reason = file.check().unwrap_err();
        assert!(reason.contains("was replaced"), "{reason}");
        assert!(reason.contains(&path.display().to_string()), "{reason}");

        let other = dir.path().join("other.db");
        std::fs::write(&other, b"three").unwrap();
        let file = SqliteFile::open(&other).unwrap();
        std::fs::remove_file(&other).unwrap();
        assert!(file.check().unwrap_err().contains("was deleted"));
        std::fs::write(&other, b"back").unwrap();
        assert!(file.check().is_err(), "still lost once it came back");
    }
}
