//! A fresh database for each run: an SQLite file in the run's temporary
//! directory, or a new `youmi_bench_<random>` database on the PostgreSQL server
//! that `--database` names, dropped when the run ends. The PostgreSQL database
//! is made and dropped by the test harness's routines (`youmi_tests::db`), the
//! workspace's one copy of them.

use std::path::Path;

use anyhow::{bail, Context};
use youmi_tests::db::{create_database, database_url, drop_database};

/// The database of one run.
pub enum BenchDatabase {
    /// A file in the run's temporary directory, removed with it.
    Sqlite {
        /// `sqlite://...`.
        url: String,
    },
    /// A database created for this run.
    Postgres {
        /// The URL given by `--database`, used to create and drop.
        base_url: String,
        /// The created database's name.
        name: String,
        /// The created database's URL, for the server.
        url: String,
    },
}

impl BenchDatabase {
    /// Creates the run's database: on PostgreSQL when `base_url` is given
    /// (a `postgres://` URL of any database the user may connect to), else an
    /// SQLite file under `dir`.
    pub async fn create(base_url: Option<&str>, dir: &Path) -> anyhow::Result<BenchDatabase> {
        let Some(base_url) = base_url else {
            return Ok(BenchDatabase::Sqlite {
                url: format!("sqlite://{}", dir.join("bench.db").display()),
            });
        };
        check_url(base_url)?;
        let (url, name) = create_database(base_url, "youmi_bench")
            .await
            .context("--database")?;
        Ok(BenchDatabase::Postgres {
            base_url: base_url.to_owned(),
            name,
            url,
        })
    }

    /// The URL the server opens.
    pub fn url(&self) -> &str {
        match self {
            BenchDatabase::Sqlite { url } | BenchDatabase::Postgres { url, .. } => url,
        }
    }

    /// `sqlite` or `postgres`, for the report.
    pub fn kind(&self) -> &'static str {
        match self {
            BenchDatabase::Sqlite { .. } => "sqlite",
            BenchDatabase::Postgres { .. } => "postgres",
        }
    }

    /// Drops a PostgreSQL database created for the run (the SQLite file goes
    /// with the temporary directory).
    pub async fn remove(self) -> anyhow::Result<()> {
        let BenchDatabase::Postgres { base_url, name, .. } = self else {
            return Ok(());
        };
        drop_database(&base_url, &name).await
    }
}

/// An error unless `base_url` is a PostgreSQL URL that names a host.
pub fn check_url(base_url: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(base_url)
        .with_context(|| format!("--database is not a URL: `{base_url}`"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        bail!(
            "--database must be a postgres:// URL (SQLite is the default), not a {}:// one",
            url.scheme()
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("--database names no host: `{base_url}`");
    }
    database_url(base_url, "youmi_bench").map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced() {
        assert_eq!(
            database_url(
                "postgres://postgres@127.0.0.1:5432/postgres",
                "youmi_bench_1"
            )
            .unwrap(),
            "postgres://postgres@127.0.0.1:5432/youmi_bench_1"
        );
        assert_eq!(
            database_url("postgresql://u:p@db/x?sslmode=disable", "b").unwrap(),
            "postgresql://u:p@db/b?sslmode=disable"
        );
        assert_eq!(
            database_url("postgres://localhost", "b").unwrap(),
            "postgres://localhost/b"
        );
    }

    #[test]
    fn other_urls_are_refused() {
        let error = check_url("sqlite://x.db").unwrap_err().to_string();
        assert!(error.contains("must be a postgres:// URL"), "{error}");
        assert!(database_url("not a url", "b").is_err());
    }
}
