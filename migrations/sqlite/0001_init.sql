-- Youmi schema v1 (SQLite). migrations/postgres/0001_init.sql holds the same
-- tables, columns and indexes for PostgreSQL; change both together.
-- Conventions: times are Unix milliseconds (INTEGER), booleans are 0/1
-- integers, JSON is TEXT, so one query path serves both backends.

CREATE TABLE employees (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_no        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    CONSTRAINT employees_job_no_key UNIQUE (job_no)
);

CREATE TABLE sessions (
    token_hash    TEXT    PRIMARY KEY NOT NULL,
    employee_id   INTEGER NOT NULL REFERENCES employees (id) ON DELETE CASCADE,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);

CREATE INDEX sessions_expires_at_idx ON sessions (expires_at_ms);

CREATE TABLE operator_accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    wecom_user_id TEXT    NOT NULL,
    remark        TEXT    NOT NULL DEFAULT '',
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    CONSTRAINT operator_accounts_wecom_user_id_key UNIQUE (wecom_user_id)
);

CREATE TABLE bind_codes (
    code                TEXT    PRIMARY KEY NOT NULL,
    operator_account_id INTEGER NOT NULL REFERENCES operator_accounts (id) ON DELETE CASCADE,
    created_by          INTEGER NOT NULL REFERENCES employees (id),
    created_at_ms       INTEGER NOT NULL,
    expires_at_ms       INTEGER NOT NULL,
    used_at_ms          INTEGER
);

CREATE INDEX bind_codes_operator_account_id_idx ON bind_codes (operator_account_id);

CREATE TABLE devices (
    id                  TEXT    PRIMARY KEY NOT NULL,
    operator_account_id INTEGER NOT NULL REFERENCES operator_accounts (id) ON DELETE CASCADE,
    token_hash          TEXT    NOT NULL,
    serial              TEXT    NOT NULL DEFAULT '',
    model               TEXT    NOT NULL DEFAULT '',
    android_version     TEXT    NOT NULL DEFAULT '',
    agent_version       TEXT    NOT NULL DEFAULT '',
    settings            TEXT    NOT NULL,
    queue_paused        INTEGER NOT NULL DEFAULT 0,
    pause_reason        TEXT,
    resume_at_ms        INTEGER,
    last_seen_ms        INTEGER,
    bound_at_ms         INTEGER NOT NULL,
    revoked_at_ms       INTEGER,
    CONSTRAINT devices_token_hash_key UNIQUE (token_hash)
);

CREATE INDEX devices_operator_account_id_idx ON devices (operator_account_id);
-- An operator account has at most one bound phone: binding a new one revokes
-- the old one in the same transaction.
CREATE UNIQUE INDEX devices_one_bound_per_account_key ON devices (operator_account_id) WHERE revoked_at_ms IS NULL;

CREATE TABLE tasks (
    id                  INTEGER PRIMARY KEY NOT NULL,
    operator_account_id INTEGER NOT NULL REFERENCES operator_accounts (id) ON DELETE CASCADE,
    kind                TEXT    NOT NULL,
    payload             TEXT    NOT NULL,
    priority            INTEGER NOT NULL,
    not_before_ms       INTEGER,
    not_after_ms        INTEGER,
    state               TEXT    NOT NULL,
    attempt             INTEGER NOT NULL DEFAULT 0,
    device_id           TEXT,
    cancel_requested    INTEGER NOT NULL DEFAULT 0,
    error               TEXT,
    result              TEXT,
    created_at_ms       INTEGER NOT NULL,
    updated_at_ms       INTEGER NOT NULL,
    finished_at_ms      INTEGER
);

-- The scheduler loads unfinished tasks at start-up; the partial index keeps
-- that cheap however many finished tasks pile up.
CREATE INDEX tasks_unfinished_idx ON tasks (state) WHERE state IN ('queued', 'dispatched', 'running');
-- The task list pages newest first, optionally filtered by one of these.
CREATE INDEX tasks_operator_account_id_idx ON tasks (operator_account_id, id);
CREATE INDEX tasks_state_idx ON tasks (state, id);
CREATE INDEX tasks_kind_idx ON tasks (kind, id);
