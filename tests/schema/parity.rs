//! Schema parity: `migrations/sqlite` and `migrations/postgres` must build the
//! same schema, and follow one naming rule (migrations/README.md).
//!
//! The parity test migrates a fresh SQLite and a fresh PostgreSQL database with
//! the server's own code ([`Db::migrate`]), reads each schema back from its
//! catalogs, normalises both into one [`Schema`] (tables; columns with a type
//! family from [`TYPE_FAMILIES`], nullability, default, whether the database
//! fills the value in; primary keys; unique, foreign-key and check constraints;
//! indexes with their columns, order, uniqueness and partial predicate; storage
//! options) and names every difference as `table.column aspect: sqlite says X,
//! postgres says Y`. A deliberate difference is listed in
//! [`KNOWN_DIFFERENCES`] with its reason; any other fails the test, and so does
//! a listed one that no longer occurs. Without `YOUMI_TEST_DATABASE_URL` (the
//! SQLite pass of CI) it says it was skipped and passes; the naming rule and the
//! normaliser's own tests run on both passes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use sqlx::{Connection, PgConnection, Row, SqliteConnection};
use youmi_server::db::Db;
use youmi_tests::db::{postgres_admin_url, TestDb, DATABASE_URL_ENV};

/// The type mapping: each family with the SQLite declared types and the
/// PostgreSQL types (`information_schema.columns.data_type`) that belong to it.
/// A type in no row compares as itself (`sqlite INT2`, `postgres integer`), so
/// it can only match nothing: a difference to look at.
///
/// The schema's conventions (migrations/README.md) use the first two rows only:
/// ids, counters, 0/1 flags and times in Unix milliseconds (`*_ms`) are 64-bit
/// integers, read as `i64`; names, ids and JSON are text. PostgreSQL's
/// `integer` and `smallint` are left out on purpose: 32 and 16 bits are too
/// narrow for millisecond times, and the code reads every integer as `i64`.
const TYPE_FAMILIES: &[(&str, &[&str], &[&str])] = &[
    (
        "integer",
        &["INTEGER", "INT", "BIGINT", "INT8"],
        &["bigint"],
    ),
    ("text", &["TEXT"], &["text"]),
    ("bytes", &["BLOB"], &["bytea"]),
    (
        "float",
        &["REAL", "DOUBLE", "DOUBLE PRECISION", "FLOAT"],
        &["double precision"],
    ),
    ("boolean", &["BOOLEAN"], &["boolean"]),
    (
        "timestamp",
        &["TIMESTAMP", "DATETIME"],
        &["timestamp without time zone", "timestamp with time zone"],
    ),
];

/// Differences that are there on purpose: the difference line exactly as the
/// comparison prints it, and why it is right.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[(
    "tasks storage options: sqlite says (none), postgres says fillfactor=80",
    "PostgreSQL keeps a fifth of each page of `tasks` free so that the updates \
     that dispatch a task stay HOT, in place (postgres/0004); SQLite has no \
     such setting",
)];

/// Renamed migration files, as (backend folder, old name, new name): a
/// database migrated under the old name must keep starting.
const RENAMED: &[(&str, &str, &str)] = &[(
    "postgres",
    "0004_tasks_hot_updates.sql",
    "0004_tasks_unfinished_idx.sql",
)];

// ---- The model -------------------------------------------------------------

/// A database's tables by name, as both backends are compared.
#[derive(Debug, Clone, Default, PartialEq)]
struct Schema {
    tables: BTreeMap<String, Table>,
}

/// One table.
#[derive(Debug, Clone, Default, PartialEq)]
struct Table {
    /// Columns in their order in the table.
    columns: Vec<(String, Column)>,
    /// The primary key's columns, in key order; empty if none.
    primary_key: Vec<String>,
    /// Unique constraints by their columns, with their names (`None`: a
    /// SQLite constraint written without `CONSTRAINT name`).
    uniques: BTreeMap<Vec<String>, Option<String>>,
    /// Foreign keys by their columns.
    foreign_keys: BTreeMap<Vec<String>, ForeignKey>,
    /// Check constraints, normalised by [`normalize_expr`].
    checks: BTreeSet<String>,
    /// Indexes made by `CREATE INDEX`, by name (those that back a primary key
    /// or unique constraint are compared as that constraint).
    indexes: BTreeMap<String, Index>,
    /// Storage options (`fillfactor=80`), sorted; SQLite has none.
    storage: Vec<String>,
}

/// One column.
#[derive(Debug, Clone, PartialEq)]
struct Column {
    /// The type family ([`TYPE_FAMILIES`]).
    family: String,
    /// Whether NULL is refused.
    not_null: bool,
    /// The default, normalised; `None` if there is none.
    default: Option<String>,
    /// Whether the database fills in the value: SQLite's `INTEGER PRIMARY KEY
    /// AUTOINCREMENT`, PostgreSQL's identity and serial columns. A plain
    /// SQLite `INTEGER PRIMARY KEY` (a rowid alias) is not counted: it reuses
    /// the ids of deleted rows, and the code supplies those ids itself.
    generated: bool,
}

/// A foreign key, apart from its columns.
#[derive(Debug, Clone, PartialEq)]
struct ForeignKey {
    /// The table referred to.
    table: String,
    /// Its columns, in the order of the key's columns.
    columns: Vec<String>,
    /// `NO ACTION`, `CASCADE`, `SET NULL`, `SET DEFAULT` or `RESTRICT`.
    on_update: String,
    /// As `on_update`.
    on_delete: String,
}

/// One index.
#[derive(Debug, Clone, PartialEq)]
struct Index {
    /// Its key columns in order, each with ` DESC` if descending.
    columns: Vec<String>,
    /// Whether it is a unique index.
    unique: bool,
    /// The `WHERE` of a partial index, normalised.
    predicate: Option<String>,
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.family)?;
        if self.not_null {
            write!(f, " not null")?;
        }
        if let Some(default) = &self.default {
            write!(f, " default {default}")?;
        }
        if self.generated {
            write!(f, " generated")?;
        }
        Ok(())
    }
}

impl fmt::Display for ForeignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) on update {} on delete {}",
            self.table,
            self.columns.join(", "),
            self.on_update,
            self.on_delete
        )
    }
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unique {
            write!(f, "unique ")?;
        }
        write!(f, "({})", self.columns.join(", "))?;
        if let Some(predicate) = &self.predicate {
            write!(f, " where {predicate}")?;
        }
        Ok(())
    }
}

/// `Some(x)` as `x`, `None` as `(none)`.
fn shown<T: fmt::Display>(value: Option<&T>) -> String {
    value.map_or_else(|| "(none)".to_owned(), ToString::to_string)
}

// ---- The comparison --------------------------------------------------------

/// Every difference between the two schemas, one line each, naming what
/// differs and what each side says.
fn compare(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let mut say = |what: String, s: String, p: String| {
        out.push(format!("{what}: sqlite says {s}, postgres says {p}"));
    };
    let names: BTreeSet<&String> = sqlite.tables.keys().chain(postgres.tables.keys()).collect();
    for name in names {
        let (s, p) = match (sqlite.tables.get(name), postgres.tables.get(name)) {
            (Some(s), Some(p)) => (s, p),
            (s, _) => {
                let has = |t: Option<&Table>| if t.is_some() { "it exists" } else { "(none)" };
                say(
                    format!("table {name}"),
                    has(s).to_owned(),
                    has(postgres.tables.get(name)).to_owned(),
                );
                continue;
            }
        };
        // Columns.
        let s_cols: BTreeMap<&String, &Column> = s.columns.iter().map(|(n, c)| (n, c)).collect();
        let p_cols: BTreeMap<&String, &Column> = p.columns.iter().map(|(n, c)| (n, c)).collect();
        for column in s_cols.keys().chain(p_cols.keys()).collect::<BTreeSet<_>>() {
            let what = format!("{name}.{column}");
            match (s_cols.get(column), p_cols.get(column)) {
                (Some(sc), Some(pc)) => {
                    if sc.family != pc.family {
                        say(format!("{what} type"), sc.family.clone(), pc.family.clone());
                    }
                    if sc.not_null != pc.not_null {
                        let null = |c: &Column| if c.not_null { "not null" } else { "nullable" };
                        say(
                            format!("{what} nullability"),
                            null(sc).into(),
                            null(pc).into(),
                        );
                    }
                    if sc.default != pc.default {
                        say(
                            format!("{what} default"),
                            shown(sc.default.as_ref()),
                            shown(pc.default.as_ref()),
                        );
                    }
                    if sc.generated != pc.generated {
                        let gen = |c: &Column| if c.generated { "generated" } else { "supplied" };
                        say(format!("{what} value"), gen(sc).into(), gen(pc).into());
                    }
                }
                (sc, pc) => say(what, shown(sc), shown(pc)),
            }
        }
        let order = |t: &Table, other: &BTreeMap<&String, &Column>| {
            t.columns
                .iter()
                .filter(|(n, _)| other.contains_key(n))
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (s_order, p_order) = (order(s, &p_cols), order(p, &s_cols));
        if s_order != p_order {
            say(format!("{name} column order"), s_order, p_order);
        }
        // Constraints.
        if s.primary_key != p.primary_key {
            let key = |k: &[String]| format!("({})", k.join(", "));
            say(
                format!("{name} primary key"),
                key(&s.primary_key),
                key(&p.primary_key),
            );
        }
        for columns in s
            .uniques
            .keys()
            .chain(p.uniques.keys())
            .collect::<BTreeSet<_>>()
        {
            let unique = |u: &BTreeMap<Vec<String>, Option<String>>| match u.get(columns) {
                None => "(none)".to_owned(),
                Some(None) => "(unnamed)".to_owned(),
                Some(Some(n)) => n.clone(),
            };
            let (su, pu) = (unique(&s.uniques), unique(&p.uniques));
            if su != pu {
                say(format!("{name} unique ({})", columns.join(", ")), su, pu);
            }
        }
        for columns in s
            .foreign_keys
            .keys()
            .chain(p.foreign_keys.keys())
            .collect::<BTreeSet<_>>()
        {
            let (sf, pf) = (s.foreign_keys.get(columns), p.foreign_keys.get(columns));
            if sf != pf {
                say(
                    format!("{name} foreign key ({})", columns.join(", ")),
                    shown(sf),
                    shown(pf),
                );
            }
        }
        for check in s.checks.symmetric_difference(&p.checks) {
            let has = |t: &Table| {
                if t.checks.contains(check) {
                    "it exists"
                } else {
                    "(none)"
                }
            };
            say(
                format!("{name} check ({check})"),
                has(s).into(),
                has(p).into(),
            );
        }
        for index in s
            .indexes
            .keys()
            .chain(p.indexes.keys())
            .collect::<BTreeSet<_>>()
        {
            let (si, pi) = (s.indexes.get(index), p.indexes.get(index));
            if si != pi {
                say(format!("{name} index {index}"), shown(si), shown(pi));
            }
        }
        if s.storage != p.storage {
            let storage = |t: &Table| {
                if t.storage.is_empty() {
                    "(none)".to_owned()
                } else {
                    t.storage.join(", ")
                }
            };
            say(format!("{name} storage options"), storage(s), storage(p));
        }
    }
    out
}

// ---- Expressions -----------------------------------------------------------

/// A token of SQL text.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A keyword or identifier, lower-cased (unquoted, both backends fold
    /// case; a quoted one keeps its case without the quotes).
    Word(String),
    /// A string literal, quotes included.
    Str(String),
    /// A number.
    Num(String),
    /// An operator or punctuation: `(`, `)`, `,`, `::`, `=`, `<>`, `<=` ...
    Punct(String),
}

impl Token {
    fn is(&self, text: &str) -> bool {
        matches!(self, Token::Word(w) | Token::Punct(w) if w == text)
    }

    fn text(&self) -> &str {
        match self {
            Token::Word(t) | Token::Str(t) | Token::Num(t) | Token::Punct(t) => t,
        }
    }
}

/// Splits SQL text into tokens; `--` comments are dropped.
fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '\'' || c == '"' {
            // A quoted string or identifier; a doubled quote is one quote.
            let mut text = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == c {
                    if chars.get(i + 1) == Some(&c) {
                        text.push(c);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                text.push(chars[i]);
                i += 1;
            }
            out.push(if c == '\'' {
                Token::Str(format!("'{}'", text.replace('\'', "''")))
            } else {
                Token::Word(text)
            });
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(Token::Word(word.to_lowercase()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            out.push(Token::Num(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let (punct, len) = match two.as_str() {
                "::" | "<>" | "<=" | ">=" | "||" => (two, 2),
                "!=" => ("<>".to_owned(), 2),
                "==" => ("=".to_owned(), 2),
                _ => (c.to_string(), 1),
            };
            i += len;
            out.push(Token::Punct(punct));
        }
    }
    out
}

/// Words that continue a type name after `::` (`character varying`,
/// `timestamp with time zone`).
const TYPE_NAME_WORDS: &[&str] = &["varying", "precision", "with", "without", "time", "zone"];

/// The index of the `)` that closes the `(` at `open`.
fn closing(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        if token.is("(") {
            depth += 1;
        } else if token.is(")") {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// An expression (a default, a check, an index predicate) in one form for both
/// backends: keywords and identifiers lower-case, PostgreSQL's casts (`::text`)
/// dropped, `x = ANY (ARRAY[a, b])` written `x IN (a, b)`, `!=` as `<>`, and
/// grouping parentheses removed where that cannot change the meaning
/// (PostgreSQL prints `(a IS NULL)` for `a IS NULL`).
fn normalize_expr(sql: &str) -> String {
    normalize_tokens(tokenize(sql))
}

/// [`normalize_expr`] on tokens.
fn normalize_tokens(tokens: Vec<Token>) -> String {
    // Casts.
    let mut plain = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i].is("::") {
            i += 2;
            while i < tokens.len() && TYPE_NAME_WORDS.iter().any(|w| tokens[i].is(w)) {
                i += 1;
            }
            if i < tokens.len() && tokens[i].is("(") {
                i = closing(&tokens, i).map_or(tokens.len(), |c| c + 1);
            }
            while i + 1 < tokens.len() && tokens[i].is("[") && tokens[i + 1].is("]") {
                i += 2;
            }
            continue;
        }
        plain.push(tokens[i].clone());
        i += 1;
    }
    // `= ANY (ARRAY[...])` and `<> ALL (ARRAY[...])`.
    let mut tokens = Vec::with_capacity(plain.len());
    let mut i = 0;
    while i < plain.len() {
        let array = |at: usize| {
            at + 3 < plain.len()
                && plain[at].is("(")
                && plain[at + 1].is("array")
                && plain[at + 2].is("[")
        };
        let op = match (&plain[i], plain.get(i + 1)) {
            (eq, Some(any)) if eq.is("=") && any.is("any") && array(i + 2) => Some("in"),
            (ne, Some(all)) if ne.is("<>") && all.is("all") && array(i + 2) => Some("not in"),
            _ => None,
        };
        if let (Some(op), Some(close)) = (op, closing(&plain, i + 2)) {
            for word in op.split(' ') {
                tokens.push(Token::Word(word.to_owned()));
            }
            tokens.push(Token::Punct("(".into()));
            // Between `ARRAY[` and its `]`, which is just before `)`.
            tokens.extend(plain[i + 5..close - 1].iter().cloned());
            tokens.push(Token::Punct(")".into()));
            i = close + 1;
            continue;
        }
        tokens.push(plain[i].clone());
        i += 1;
    }
    // Grouping parentheses, until none more can go.
    while let Some((open, close)) = removable_group(&tokens) {
        tokens.remove(close);
        tokens.remove(open);
    }
    join_tokens(&tokens)
}

/// A pair of grouping parentheses whose removal cannot change the meaning:
/// around the whole expression or an operand of AND, OR or NOT, and holding
/// nothing that binds less tightly than where it stands (`NOT (a AND b)` and
/// `(a OR b) AND c` keep theirs).
fn removable_group(tokens: &[Token]) -> Option<(usize, usize)> {
    for open in 0..tokens.len() {
        if !tokens[open].is("(") {
            continue;
        }
        // A function call's or an IN list's parentheses are not a group.
        if let Some(Token::Word(before)) = open.checked_sub(1).map(|b| &tokens[b]) {
            if !matches!(before.as_str(), "and" | "or" | "not") {
                continue;
            }
        }
        let close = closing(tokens, open)?;
        let before = open.checked_sub(1).map(|b| tokens[b].text());
        let after = tokens.get(close + 1).map(Token::text);
        let boundary = |t: Option<&str>| matches!(t, None | Some("(") | Some(")"));
        let inner = &tokens[open + 1..close];
        // Top-level AND/OR and commas inside the group.
        let mut depth = 0;
        let (mut has_and, mut has_or, mut has_comma) = (false, false, false);
        for token in inner {
            if token.is("(") {
                depth += 1;
            } else if token.is(")") {
                depth -= 1;
            } else if depth == 0 {
                has_and |= token.is("and");
                has_or |= token.is("or");
                has_comma |= token.is(",");
            }
        }
        if has_comma || inner.is_empty() {
            continue;
        }
        let logical = |t: Option<&str>| boundary(t) || matches!(t, Some("and" | "or"));
        let ok = match (before, after) {
            (Some("not"), _) => !has_and && !has_or,
            (b, a) if !logical(b) || !logical(a) => false,
            (b, a) if has_or => {
                (boundary(b) || b == Some("or")) && (boundary(a) || a == Some("or"))
            }
            _ => true,
        };
        // A group between other operators (`(a + b) * c`) stays, unless it
        // holds a single token.
        if ok || inner.len() == 1 {
            return Some((open, close));
        }
    }
    None
}

/// Tokens back to text, with spaces between words and after commas only.
fn join_tokens(tokens: &[Token]) -> String {
    let mut out = String::new();
    for (i, token) in tokens.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| &tokens[p]);
        let tight = token.is(")")
            || token.is(",")
            || prev.is_none()
            || prev.is_some_and(|p| p.is("("))
            || (token.is("(")
                && matches!(prev, Some(Token::Word(w)) if !matches!(w.as_str(), "and" | "or" | "not" | "in")));
        if !tight {
            out.push(' ');
        }
        out.push_str(token.text());
    }
    out
}

/// The named UNIQUE table constraints and the CHECK constraints written in a
/// SQLite `CREATE TABLE` (its catalogs keep neither the names nor the checks).
fn sqlite_table_constraints(sql: &str) -> (Vec<(String, Vec<String>)>, Vec<String>) {
    let tokens = tokenize(sql);
    let (mut uniques, mut checks) = (Vec::new(), Vec::new());
    for i in 0..tokens.len() {
        if tokens[i].is("constraint") && tokens.get(i + 2).is_some_and(|t| t.is("unique")) {
            if let (Token::Word(name), Some(close)) = (&tokens[i + 1], closing(&tokens, i + 3)) {
                let columns = tokens[i + 4..close]
                    .iter()
                    .filter(|t| !t.is(","))
                    .map(|t| t.text().to_owned())
                    .collect();
                uniques.push((name.clone(), columns));
            }
        }
        if tokens[i].is("check") && tokens.get(i + 1).is_some_and(|t| t.is("(")) {
            if let Some(close) = closing(&tokens, i + 1) {
                checks.push(normalize_tokens(tokens[i + 2..close].to_vec()));
            }
        }
    }
    (uniques, checks)
}

/// The `WHERE` of a SQLite `CREATE INDEX`, normalised.
fn sqlite_index_predicate(sql: &str) -> Option<String> {
    let tokens = tokenize(sql);
    let at = tokens.iter().position(|t| t.is("where"))?;
    Some(normalize_tokens(tokens[at + 1..].to_vec()))
}

/// A declared or reported type's family ([`TYPE_FAMILIES`]).
fn family(backend: &str, declared: &str) -> String {
    let sqlite = backend == "sqlite";
    let name = if sqlite {
        declared.trim().to_uppercase()
    } else {
        declared.trim().to_lowercase()
    };
    TYPE_FAMILIES
        .iter()
        .find(|(_, s, p)| if sqlite { s } else { p }.contains(&name.as_str()))
        .map_or_else(
            || format!("{name} (not in TYPE_FAMILIES)"),
            |(f, _, _)| (*f).to_owned(),
        )
}

// ---- Reading the catalogs --------------------------------------------------

/// The schema of a SQLite database, from `sqlite_master` and its pragmas.
async fn read_sqlite(url: &str) -> Result<Schema, sqlx::Error> {
    let mut conn = SqliteConnection::connect(url).await?;
    let mut schema = Schema::default();
    let tables = sqlx::query(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await?;
    for row in tables {
        let name: String = row.try_get("name")?;
        let sql: String = row.try_get("sql")?;
        let mut table = Table::default();
        let autoincrement = tokenize(&sql).iter().any(|t| t.is("autoincrement"));
        let columns = sqlx::query(
            "SELECT name, type, \"notnull\" AS not_null, dflt_value, pk \
             FROM pragma_table_info(?) ORDER BY cid",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await?;
        let key_columns = columns.iter().filter(|c| c.get::<i64, _>("pk") > 0).count();
        let mut key = Vec::new();
        for column in &columns {
            let column_name: String = column.try_get("name")?;
            let declared: String = column.try_get("type")?;
            let pk: i64 = column.try_get("pk")?;
            // The one INTEGER PRIMARY KEY column is the rowid: never NULL.
            let rowid = pk > 0 && key_columns == 1 && declared.eq_ignore_ascii_case("INTEGER");
            if pk > 0 {
                key.push((pk, column_name.clone()));
            }
            table.columns.push((
                column_name,
                Column {
                    family: family("sqlite", &declared),
                    not_null: rowid || column.try_get::<i64, _>("not_null")? != 0,
                    default: column
                        .try_get::<Option<String>, _>("dflt_value")?
                        .map(|d| normalize_expr(&d)),
                    generated: rowid && autoincrement,
                },
            ));
        }
        key.sort();
        table.primary_key = key.into_iter().map(|(_, c)| c).collect();

        let (named_uniques, checks) = sqlite_table_constraints(&sql);
        table.checks = checks.into_iter().collect();
        let indexes = sqlx::query(
            "SELECT l.name, l.\"unique\" AS is_unique, l.origin, m.sql \
             FROM pragma_index_list(?) AS l \
             LEFT JOIN sqlite_master AS m ON m.type = 'index' AND m.name = l.name",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await?;
        for index in indexes {
            let index_name: String = index.try_get("name")?;
            let origin: String = index.try_get("origin")?;
            let parts = sqlx::query(
                "SELECT name, \"desc\" AS descending FROM pragma_index_xinfo(?) \
                 WHERE key = 1 ORDER BY seqno",
            )
            .bind(&index_name)
            .fetch_all(&mut conn)
            .await?;
            let mut columns = Vec::new();
            for part in parts {
                let column: Option<String> = part.try_get("name")?;
                let descending: i64 = part.try_get("descending")?;
                let column = column.unwrap_or_else(|| "(expression)".to_owned());
                columns.push(if descending != 0 {
                    format!("{column} DESC")
                } else {
                    column
                });
            }
            match origin.as_str() {
                // The primary key's index is the primary key, read above.
                "pk" => {}
                "u" => {
                    let name = named_uniques
                        .iter()
                        .find(|(_, c)| *c == columns)
                        .map(|(n, _)| n.clone());
                    table.uniques.insert(columns, name);
                }
                _ => {
                    let sql: Option<String> = index.try_get("sql")?;
                    table.indexes.insert(
                        index_name,
                        Index {
                            columns,
                            unique: index.try_get::<i64, _>("is_unique")? != 0,
                            predicate: sql.as_deref().and_then(sqlite_index_predicate),
                        },
                    );
                }
            }
        }

        let keys = sqlx::query(
            "SELECT id, \"table\" AS ref_table, \"from\" AS from_column, \"to\" AS to_column, \
             on_update, on_delete FROM pragma_foreign_key_list(?) ORDER BY id, seq",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await?;
        let mut by_id: BTreeMap<i64, (Vec<String>, ForeignKey)> = BTreeMap::new();
        for key in keys {
            let (columns, foreign) = by_id.entry(key.try_get("id")?).or_insert_with(|| {
                (
                    Vec::new(),
                    ForeignKey {
                        table: key.get("ref_table"),
                        columns: Vec::new(),
                        on_update: key.get::<String, _>("on_update").to_uppercase(),
                        on_delete: key.get::<String, _>("on_delete").to_uppercase(),
                    },
                )
            });
            columns.push(key.try_get("from_column")?);
            // `REFERENCES t` without columns names t's primary key, filled in below.
            if let Some(to) = key.try_get::<Option<String>, _>("to_column")? {
                foreign.columns.push(to);
            }
        }
        for (_, (columns, foreign)) in by_id {
            table.foreign_keys.insert(columns, foreign);
        }
        schema.tables.insert(name, table);
    }
    // Foreign keys written without the referred columns refer to the primary key.
    let keys: BTreeMap<String, Vec<String>> = schema
        .tables
        .iter()
        .map(|(n, t)| (n.clone(), t.primary_key.clone()))
        .collect();
    for table in schema.tables.values_mut() {
        for foreign in table.foreign_keys.values_mut() {
            if foreign.columns.is_empty() {
                foreign.columns = keys.get(&foreign.table).cloned().unwrap_or_default();
            }
        }
    }
    conn.close().await?;
    Ok(schema)
}

/// PostgreSQL's one-letter foreign-key actions, in words.
fn postgres_action(code: &str) -> String {
    match code {
        "a" => "NO ACTION",
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        other => other,
    }
    .to_owned()
}

/// The schema of the `public` schema of a PostgreSQL database, from
/// `information_schema` and `pg_catalog`.
async fn read_postgres(url: &str) -> Result<Schema, sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let mut schema = Schema::default();
    let tables = sqlx::query(
        "SELECT c.relname::text AS name, c.reloptions::text[] AS options \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
         AND c.relname <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await?;
    for row in tables {
        let mut options: Vec<String> = row
            .try_get::<Option<Vec<String>>, _>("options")?
            .unwrap_or_default();
        options.sort();
        let table = Table {
            storage: options,
            ..Table::default()
        };
        schema.tables.insert(row.try_get("name")?, table);
    }

    let columns = sqlx::query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name, \
         data_type::text AS data_type, is_nullable::text AS is_nullable, \
         column_default::text AS column_default, is_identity::text AS is_identity \
         FROM information_schema.columns WHERE table_schema = 'public' \
         AND table_name <> '_sqlx_migrations' ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut conn)
    .await?;
    for column in columns {
        let table_name: String = column.try_get("table_name")?;
        let default: Option<String> = column.try_get("column_default")?;
        let serial = default
            .as_deref()
            .is_some_and(|d| d.starts_with("nextval("));
        let identity = column.try_get::<String, _>("is_identity")? == "YES";
        let Some(table) = schema.tables.get_mut(&table_name) else {
            continue; // a view's columns
        };
        table.columns.push((
            column.try_get("column_name")?,
            Column {
                family: family("postgres", &column.try_get::<String, _>("data_type")?),
                not_null: column.try_get::<String, _>("is_nullable")? == "NO",
                default: default.filter(|_| !serial).map(|d| normalize_expr(&d)),
                generated: serial || identity,
            },
        ));
    }

    let constraints = sqlx::query(
        "SELECT t.relname::text AS table_name, c.conname::text AS name, c.contype::text AS kind, \
         ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(num, pos) \
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num \
               ORDER BY k.pos) AS columns, \
         f.relname::text AS ref_table, \
         ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(num, pos) \
               JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num \
               ORDER BY k.pos) AS ref_columns, \
         c.confupdtype::text AS on_update, c.confdeltype::text AS on_delete, \
         pg_get_expr(c.conbin, c.conrelid, true) AS check_expr \
         FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         LEFT JOIN pg_class f ON f.oid = c.confrelid \
         WHERE n.nspname = 'public' AND t.relname <> '_sqlx_migrations' \
         AND c.contype IN ('p', 'u', 'f', 'c')",
    )
    .fetch_all(&mut conn)
    .await?;
    for constraint in constraints {
        let table_name: String = constraint.try_get("table_name")?;
        let Some(table) = schema.tables.get_mut(&table_name) else {
            continue;
        };
        let columns: Vec<String> = constraint.try_get("columns")?;
        match constraint.try_get::<String, _>("kind")?.as_str() {
            "p" => table.primary_key = columns,
            "u" => {
                table
                    .uniques
                    .insert(columns, Some(constraint.try_get("name")?));
            }
            "f" => {
                table.foreign_keys.insert(
                    columns,
                    ForeignKey {
                        table: constraint.try_get("ref_table")?,
                        columns: constraint.try_get("ref_columns")?,
                        on_update: postgres_action(&constraint.try_get::<String, _>("on_update")?),
                        on_delete: postgres_action(&constraint.try_get::<String, _>("on_delete")?),
                    },
                );
            }
            _ => {
                let check: String = constraint.try_get("check_expr")?;
                table.checks.insert(normalize_expr(&check));
            }
        }
    }

    // Indexes, but not those that back a primary key or unique constraint.
    let indexes = sqlx::query(
        "SELECT t.relname::text AS table_name, ic.relname::text AS name, \
         i.indisunique AS is_unique, pg_get_expr(i.indpred, i.indrelid, true) AS predicate, \
         ARRAY(SELECT pg_get_indexdef(i.indexrelid, s + 1, true) \
                      || CASE WHEN (i.indoption[s] & 1) = 1 THEN ' DESC' ELSE '' END \
               FROM generate_series(0, i.indnkeyatts - 1) AS s ORDER BY s) AS columns \
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
         JOIN pg_class t ON t.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'public' AND t.relname <> '_sqlx_migrations' \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid \
                         AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))",
    )
    .fetch_all(&mut conn)
    .await?;
    for index in indexes {
        let table_name: String = index.try_get("table_name")?;
        let Some(table) = schema.tables.get_mut(&table_name) else {
            continue;
        };
        table.indexes.insert(
            index.try_get("name")?,
            Index {
                columns: index.try_get("columns")?,
                unique: index.try_get("is_unique")?,
                predicate: index
                    .try_get::<Option<String>, _>("predicate")?
                    .map(|p| normalize_expr(&p)),
            },
        );
    }
    conn.close().await?;
    Ok(schema)
}

/// A fresh database migrated by the server's own code, and its schema.
async fn migrated(test_db: &TestDb) -> Schema {
    let db = Db::open(test_db.url()).await.expect("open the database");
    db.migrate().await.expect("migrate the database");
    db.close().await;
    let schema = match test_db.backend() {
        youmi_tests::Backend::Sqlite => read_sqlite(test_db.url()).await,
        youmi_tests::Backend::Postgres => read_postgres(test_db.url()).await,
    };
    schema.expect("read the schema back from the catalogs")
}

/// Writes a line past the test harness's capture: it is for the person
/// running the suite.
fn tell(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

// ---- The tests -------------------------------------------------------------

/// Both backends' migrations build the same schema, apart from the
/// [`KNOWN_DIFFERENCES`].
#[tokio::test]
async fn sqlite_and_postgres_schemas_match() {
    let Some(admin_url) = postgres_admin_url() else {
        tell(&format!(
            "schema parity: skipped, it needs PostgreSQL (set {DATABASE_URL_ENV})"
        ));
        return;
    };
    let (sqlite_db, postgres_db) = (TestDb::sqlite(), TestDb::postgres(&admin_url).await);
    let sqlite = migrated(&sqlite_db).await;
    let postgres = migrated(&postgres_db).await;
    assert!(
        sqlite.tables.contains_key("tasks") && postgres.tables.contains_key("tasks"),
        "the catalogs were read: sqlite {:?}, postgres {:?}",
        sqlite.tables.keys().collect::<Vec<_>>(),
        postgres.tables.keys().collect::<Vec<_>>()
    );

    let found = compare(&sqlite, &postgres);
    let known: BTreeSet<&str> = KNOWN_DIFFERENCES.iter().map(|(d, _)| *d).collect();
    let unexplained: Vec<&String> = found
        .iter()
        .filter(|d| !known.contains(d.as_str()))
        .collect();
    let stale: Vec<&&str> = known
        .iter()
        .filter(|k| !found.iter().any(|d| d == **k))
        .collect();
    let mut report = String::new();
    for difference in &unexplained {
        report.push_str(&format!("\n  {difference}"));
    }
    for entry in &stale {
        report.push_str(&format!(
            "\n  known difference no longer found (remove it from KNOWN_DIFFERENCES): {entry}"
        ));
    }
    assert!(
        report.is_empty(),
        "the SQLite and PostgreSQL schemas differ (fix with a new migration pair, or list a \
         deliberate difference in KNOWN_DIFFERENCES with its reason):{report}"
    );
}

/// The comparison names a column that differs, and nothing else: the parity
/// test can fail. The schema is a real one, read from a migrated SQLite file.
#[tokio::test]
async fn a_column_that_differs_is_named() {
    let test_db = TestDb::sqlite();
    let sqlite = migrated(&test_db).await;
    assert!(compare(&sqlite, &sqlite).is_empty());
    assert!(
        sqlite.tables["tasks"]
            .indexes
            .contains_key("tasks_unfinished_idx"),
        "indexes were read: {:?}",
        sqlite.tables["tasks"].indexes
    );

    let mut other = sqlite.clone();
    let tasks = other.tables.get_mut("tasks").expect("a tasks table");
    let (_, column) = tasks
        .columns
        .iter_mut()
        .find(|(name, _)| name == "priority")
        .expect("a priority column");
    column.family = "text".into();
    column.not_null = false;
    assert_eq!(
        compare(&sqlite, &other),
        vec![
            "tasks.priority type: sqlite says integer, postgres says text".to_owned(),
            "tasks.priority nullability: sqlite says not null, postgres says nullable".to_owned(),
        ]
    );

    let mut other = sqlite.clone();
    let devices = other.tables.get_mut("devices").expect("a devices table");
    devices
        .indexes
        .get_mut("devices_one_bound_per_account_key")
        .expect("the one-bound-phone index")
        .predicate = None;
    devices.columns.retain(|(name, _)| name != "revoked_at_ms");
    assert_eq!(
        compare(&sqlite, &other),
        vec![
            "devices.revoked_at_ms: sqlite says integer, postgres says (none)".to_owned(),
            "devices index devices_one_bound_per_account_key: sqlite says unique \
             (operator_account_id) where revoked_at_ms is null, postgres says unique \
             (operator_account_id)"
                .to_owned(),
        ]
    );
}

/// What each backend prints for the same expression normalises to one text.
#[test]
fn expressions_normalise_to_one_form() {
    let same = [
        ("(revoked_at_ms IS NULL)", "revoked_at_ms IS NULL"),
        ("''::text", "''"),
        ("'a'::character varying", "'a'"),
        (
            "(state = ANY (ARRAY['queued'::text, 'running'::text]))",
            "state IN ('queued', 'running')",
        ),
        ("((a IS NULL) AND (b > 0))", "a is null and b > 0"),
        ("(a > 0) OR (b > 0)", "a > 0 or b > 0"),
        ("a != 1", "(a <> 1)"),
        ("\"Mixed\" = 'It''s'", "(\"Mixed\" = 'It''s')"),
        ("lower((name)::text)", "lower(name)"),
    ];
    for (postgres, sqlite) in same {
        assert_eq!(
            normalize_expr(postgres),
            normalize_expr(sqlite),
            "{postgres} vs {sqlite}"
        );
    }
    let different = [
        ("NOT (a AND b)", "NOT a AND b"),
        ("(a OR b) AND c", "a OR b AND c"),
        ("(a + b) * c", "a + b * c"),
        ("'A'", "'a'"),
    ];
    for (left, right) in different {
        assert_ne!(
            normalize_expr(left),
            normalize_expr(right),
            "{left} vs {right}"
        );
    }
}

/// SQLite keeps table constraints only in its `CREATE TABLE` text: named
/// uniques and checks are read from there.
#[test]
fn sqlite_constraints_are_read_from_the_table_text() {
    let (uniques, checks) = sqlite_table_constraints(
        "CREATE TABLE t (a INTEGER CHECK (a > 0), b TEXT, -- b's comment (with a paren\n\
         CONSTRAINT t_b_key UNIQUE (b, a), CONSTRAINT t_c CHECK(length(b) < 10))",
    );
    assert_eq!(
        uniques,
        vec![("t_b_key".to_owned(), vec!["b".to_owned(), "a".to_owned()])]
    );
    assert_eq!(
        checks,
        vec!["a > 0".to_owned(), "length(b) < 10".to_owned()]
    );
}

/// The migration files of both backends.
fn migration_files(backend: &str) -> Vec<String> {
    let dir = migrations_dir().join(backend);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The repository's `migrations` folder.
fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations")
}

/// Migrations come in pairs with the same number and name, numbered 0001 on
/// without gaps, each file opening with a comment (migrations/README.md).
#[test]
fn migration_files_follow_one_naming_rule() {
    let sqlite = migration_files("sqlite");
    let postgres = migration_files("postgres");
    let mut problems = Vec::new();
    for name in sqlite.iter().filter(|n| !postgres.contains(n)) {
        problems.push(format!("sqlite/{name} has no postgres/{name}"));
    }
    for name in postgres.iter().filter(|n| !sqlite.contains(n)) {
        problems.push(format!("postgres/{name} has no sqlite/{name}"));
    }
    for (backend, names) in [("sqlite", &sqlite), ("postgres", &postgres)] {
        for (i, name) in names.iter().enumerate() {
            let expected = format!("{:04}_", i + 1);
            let well_formed = name.starts_with(&expected)
                && name.strip_suffix(".sql").is_some_and(|stem| {
                    stem.len() > 5
                        && stem[5..]
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                });
            if !well_formed {
                problems.push(format!(
                    "{backend}/{name}: expected {expected}snake_case_name.sql"
                ));
            }
            let path = migrations_dir().join(backend).join(name);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if !text.starts_with("--") {
                problems.push(format!("{backend}/{name}: does not open with a -- comment"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "migrations/README.md's naming rule is broken:\n  {}",
        problems.join("\n  ")
    );
}

/// A database migrated while a renamed file had its old name still migrates
/// with the server's migrations: sqlx compares numbers and checksums, not
/// names. Runs on the suite's backend, with its files under their old names.
#[tokio::test]
async fn renamed_migrations_keep_migrated_databases_working() {
    let test_db = TestDb::create().await;
    let backend = match test_db.backend() {
        youmi_tests::Backend::Sqlite => "sqlite",
        youmi_tests::Backend::Postgres => "postgres",
    };
    let old = test_db.dir().join("old-migrations");
    std::fs::create_dir(&old).expect("make the folder of the old migrations");
    for name in migration_files(backend) {
        let old_name = RENAMED
            .iter()
            .find(|(b, _, new)| *b == backend && *new == name)
            .map_or(name.as_str(), |(_, old, _)| old);
        std::fs::copy(
            migrations_dir().join(backend).join(&name),
            old.join(old_name),
        )
        .expect("copy a migration");
    }

    let db = Db::open(test_db.url()).await.expect("open the database");
    let migrator = sqlx::migrate::Migrator::new(old.as_path())
        .await
        .expect("read the old migrations");
    migrator
        .run(&db.write)
        .await
        .expect("migrate with the old names");
    db.migrate()
        .await
        .expect("the server's migrations accept a database migrated under the old names");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&db.read)
        .await
        .expect("count the applied migrations");
    assert_eq!(applied, migration_files(backend).len() as i64);
    db.close().await;
}
