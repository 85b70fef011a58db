-- Notifications for the admins: things that need a person, such as an
-- operator account's queue paused because WeCom showed a risk-control warning.
CREATE TABLE notifications (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind                TEXT    NOT NULL,
    operator_account_id INTEGER NOT NULL REFERENCES operator_accounts (id),
    device_id           TEXT    NOT NULL,
    task_id             INTEGER,
    message             TEXT    NOT NULL,
    created_at_ms       INTEGER NOT NULL,
    read_at_ms          INTEGER
);

CREATE INDEX notifications_unread_idx ON notifications (id) WHERE read_at_ms IS NULL;
