//! A fresh database for each run: an SQLite file in the run's temporary
//! directory, or a new `youmi_bench_<random>` database on the PostgreSQL server
//! that `--database` names, dropped when the run ends.

use std::path::Path;

use anyhow::{bail, Context};
use rand::Rng;
use sqlx::postgres::PgConnection;
use sqlx::Connection;

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
        let name = format!("youmi_bench_{:016x}", rand::thread_rng().gen::<u64>());
        let url = database_url(base_url, &name)?;
        let mut connection = PgConnection::connect(base_url)
            .await
            .context("cannot connect to the PostgreSQL server of --database")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .with_context(|| format!("cannot create the database {name}"))?;
        let _ = connection.close().await;
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
        let mut connection = PgConnection::connect(&base_url)
            .await
            .context("cannot connect to PostgreSQL to drop the run's database")?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut connection)
            .await
            .with_context(|| format!("cannot drop the database {name}"))?;
        let _ = connection.close().await;
        Ok(())
    }
}

/// An error unless `base_url` is a PostgreSQL URL that names a host.
pub fn check_url(base_url: &str) -> anyhow::Result<()> {
    database_url(base_url, "youmi_bench").map(drop)
}

/// `base_url` with its database name replaced by `name`.
fn database_url(base_url: &str, name: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(base_url)
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
    url.set_path(&format!("/{name}"));
    Ok(url.into())
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
        let error = database_url("sqlite://x.db", "b").unwrap_err().to_string();
        assert!(error.contains("must be a postgres:// URL"), "{error}");
        assert!(database_url("not a url", "b").is_err());
    }
}
