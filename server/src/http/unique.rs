//! The one mapping of a unique-constraint violation to an answer: a feature
//! names its constraint as PostgreSQL names it (`operator_accounts_wecom_user_id_key`)
//! and says what the client is told ([`on_unique`]). SQLite names no
//! constraint in its errors, only columns (`UNIQUE constraint failed: t.a`),
//! so the columns of each named constraint are read once from the SQLite
//! migrations built into the binary; the naming rule of the migrations gives
//! a constraint one name on both databases.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::http::error::ApiError;

/// `f`'s error when `error` violates one of `constraints`, else `error` as
/// any other database error. For `.map_err(on_unique(&["..."], || ...))`.
pub fn on_unique(
    constraints: &'static [&'static str],
    conflict: impl FnOnce() -> ApiError,
) -> impl FnOnce(sqlx::Error) -> ApiError {
    move |error| {
        if constraints
            .iter()
            .any(|constraint| violates(&error, constraint))
        {
            conflict()
        } else {
            error.into()
        }
    }
}

/// Whether `error` is a violation of the unique constraint, unique index or
/// primary key named `constraint` (`<table>_pkey` for a primary key).
pub fn violates(error: &sqlx::Error, constraint: &str) -> bool {
    let Some(db_error) = error.as_database_error() else {
        return false;
    };
    if !db_error.is_unique_violation() {
        return false;
    }
    match db_error.constraint() {
        Some(name) => name == constraint,
        None => {
            let failed = db_error
                .message()
                .rsplit_once("failed: ")
                .map(|(_, columns)| columns.trim());
            let known = SQLITE_UNIQUE_COLUMNS.get(constraint);
            if known.is_none() {
                tracing::error!(
                    constraint,
                    "no SQLite migration declares this unique constraint; its violation is not recognised"
                );
            }
            failed.is_some() && failed == known.map(String::as_str)
        }
    }
}

/// Every unique constraint of the SQLite schema by name, with its columns as
/// SQLite's error names them (`table.a, table.b`).
static SQLITE_UNIQUE_COLUMNS: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    let migrator = sqlx::migrate!("../migrations/sqlite");
    let mut found = HashMap::new();
    for migration in migrator.iter() {
        unique_columns(&migration.sql, &mut found);
    }
    found
});

/// Adds the unique constraints `sql` declares to `found`: `CONSTRAINT n
/// UNIQUE (..)` and `PRIMARY KEY` in a `CREATE TABLE` (the key is named
/// `<table>_pkey`, as PostgreSQL names it), and `CREATE UNIQUE INDEX n ON t (..)`.
fn unique_columns(sql: &str, found: &mut HashMap<String, String>) {
    let text: String = sql
        .lines()
        .map(|line| line.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let columns_of = |table: &str, list: &str| {
        list.split(',')
            .map(|column| format!("{table}.{}", column.split_whitespace().next().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for statement in text.split(';') {
        let words: Vec<&str> = statement.split_whitespace().collect();
        match words.as_slice() {
            ["create", "unique", "index", rest @ ..] => {
                let rest: Vec<&str> = rest
                    .iter()
                    .copied()
                    .skip_while(|w| ["if", "not", "exists"].contains(w))
                    .collect();
                let (Some(name), Some(table)) = (rest.first(), rest.get(2)) else {
                    continue;
                };
                let table = table.split('(').next().unwrap_or(table);
                if let Some(list) = parenthesised(statement) {
                    found.insert((*name).to_owned(), columns_of(table, list));
                }
            }
            ["create", "table", rest @ ..] => {
                let rest: Vec<&str> = rest
                    .iter()
                    .copied()
                    .skip_while(|w| ["if", "not", "exists"].contains(w))
                    .collect();
                let Some(table) = rest.first().map(|t| t.split('(').next().unwrap_or(t)) else {
                    continue;
                };
                let Some(body) = parenthesised(statement) else {
                    continue;
                };
                for element in top_level(body) {
                    let words: Vec<&str> = element.split_whitespace().collect();
                    match words.as_slice() {
                        ["constraint", name, "unique", ..] => {
                            if let Some(list) = parenthesised(element) {
                                found.insert((*name).to_owned(), columns_of(table, list));
                            }
                        }
                        ["primary", "key", ..] => {
                            if let Some(list) = parenthesised(element) {
                                found.insert(format!("{table}_pkey"), columns_of(table, list));
                            }
                        }
                        [column, ..] if element.contains("primary key") => {
                            found.insert(format!("{table}_pkey"), format!("{table}.{column}"));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

/// What stands between the first `(` of `text` and its matching `)`.
fn parenthesised(text: &str) -> Option<&str> {
    let start = text.find('(')?;
    let mut depth = 0;
    for (at, c) in text[start..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[start + 1..start + at]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The comma-separated parts of `body` outside any parentheses.
fn top_level(body: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut from) = (Vec::new(), 0, 0);
    for (at, c) in body.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(body[from..at].trim());
                from = at + 1;
            }
            _ => {}
        }
    }
    parts.push(body[from..].trim());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqlite_schemas_constraints_are_known_by_their_names() {
        let known = &*SQLITE_UNIQUE_COLUMNS;
        for (name, columns) in [
            ("employees_job_no_key", "employees.job_no"),
            ("sessions_pkey", "sessions.token_hash"),
            (
                "operator_accounts_wecom_user_id_key",
                "operator_accounts.wecom_user_id",
            ),
            (
                "operator_accounts_wecom_user_key",
                "operator_accounts.wecom_user_key",
            ),
            ("bind_codes_pkey", "bind_codes.code"),
            ("devices_token_hash_key", "devices.token_hash"),
            (
                "devices_one_bound_per_account_key",
                "devices.operator_account_id",
            ),
            ("tasks_pkey", "tasks.id"),
        ] {
            assert_eq!(known.get(name).map(String::as_str), Some(columns), "{name}");
        }
    }

    #[test]
    fn table_constraints_of_several_columns_are_read() {
        let mut found = HashMap::new();
        unique_columns(
            "-- a comment; with a semicolon\nCREATE TABLE t (a INTEGER, b TEXT NOT NULL DEFAULT ('x'),\n \
             CONSTRAINT t_a_b_key UNIQUE (a, b), PRIMARY KEY (b));\n\
             CREATE UNIQUE INDEX IF NOT EXISTS t_b_key ON t (b) WHERE a > 0;",
            &mut found,
        );
        assert_eq!(found["t_a_b_key"], "t.a, t.b");
        assert_eq!(found["t_pkey"], "t.b");
        assert_eq!(found["t_b_key"], "t.b");
    }
}
