//! SQL of employees and their sessions.

use sqlx::any::AnyRow;
use sqlx::Row;
use youmi_protocol::api::Employee;

use crate::db::{flag, Db};

fn employee(row: &AnyRow) -> Result<Employee, sqlx::Error> {
    Ok(Employee {
        id: row.try_get("id")?,
        job_no: row.try_get("job_no")?,
        name: row.try_get("name")?,
        is_admin: flag(row, "is_admin")?,
    })
}

/// What a login checks an employee against.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The employee.
    pub employee: Employee,
    /// Their argon2 password hash (PHC string).
    pub password_hash: String,
    /// Disabled employees cannot log in.
    pub disabled: bool,
}

/// The employee with this job number, for a login.
#[tracing::instrument(skip_all)]
pub async fn credentials(db: &Db, job_no: &str) -> Result<Option<Credentials>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, job_no, name, is_admin, disabled, password_hash \
         FROM employees WHERE job_no = $1",
    )
    .bind(job_no)
    .fetch_optional(&db.read)
    .await?;
    row.map(|row| {
        Ok(Credentials {
            employee: employee(&row)?,
            password_hash: row.try_get("password_hash")?,
            disabled: flag(&row, "disabled")?,
        })
    })
    .transpose()
}

/// The employee behind a live session, if the session exists, has not expired
/// and its employee is not disabled.
#[tracing::instrument(skip_all)]
pub async fn session_employee(
    db: &Db,
    token_hash: &str,
    now_ms: i64,
) -> Result<Option<Employee>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT e.id, e.job_no, e.name, e.is_admin \
         FROM sessions s JOIN employees e ON e.id = s.employee_id \
         WHERE s.token_hash = $1 AND s.expires_at_ms > $2 AND e.disabled = 0",
    )
    .bind(token_hash)
    .bind(now_ms)
    .fetch_optional(&db.read)
    .await?;
    row.map(|row| employee(&row)).transpose()
}

/// Stores a new session and drops the expired ones, which nothing else reads.
#[tracing::instrument(skip_all, fields(employee_id = employee_id))]
pub async fn insert_session(
    db: &Db,
    token_hash: &str,
    employee_id: i64,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO sessions (token_hash, employee_id, created_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(employee_id)
    .bind(now_ms)
    .bind(expires_at_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Ends a session.
#[tracing::instrument(skip_all)]
pub async fn delete_session(db: &Db, token_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(&db.write)
        .await?;
    Ok(())
}

/// Whether there is any employee at all.
#[tracing::instrument(skip_all)]
pub async fn has_employees(db: &Db) -> Result<bool, sqlx::Error> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM employees")
        .fetch_one(&db.write)
        .await?;
    Ok(count > 0)
}

/// Creates the first admin, `admin`, if the employees table is still empty.
/// Returns whether it did: two servers starting on one empty database create
/// one admin between them.
#[tracing::instrument(skip_all)]
pub async fn insert_first_admin(
    db: &Db,
    password_hash: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO employees (job_no, name, password_hash, is_admin, disabled, created_at_ms) \
         SELECT $1, $2, $3, 1, 0, $4 WHERE NOT EXISTS (SELECT 1 FROM employees) \
         ON CONFLICT (job_no) DO NOTHING",
    )
    .bind(super::FIRST_ADMIN_JOB_NO)
    .bind(super::FIRST_ADMIN_NAME)
    .bind(password_hash)
    .bind(now_ms)
    .execute(&db.write)
    .await?;
    Ok(done.rows_affected() == 1)
}
