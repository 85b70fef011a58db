-- Log uploads of the agents (seed 7.1, 上传日志): one row per request sent to
-- an agent, and its upload once it arrived. The file itself lives under the
-- server's data directory as `device-logs/<id>.tar.gz`; `state` is one of
-- requested, uploading, uploaded, failed.
CREATE TABLE device_logs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id      TEXT    NOT NULL,
    device_id       TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    requested_by    INTEGER NOT NULL,
    requested_at_ms INTEGER NOT NULL,
    state           TEXT    NOT NULL,
    uploaded_at_ms  INTEGER,
    size_bytes      INTEGER,
    error           TEXT,
    CONSTRAINT device_logs_request_id_key UNIQUE (request_id)
);

CREATE INDEX device_logs_device_id_idx ON device_logs (device_id, id);
