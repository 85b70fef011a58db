//! Storage faults seen from outside: health, a SQLite file deleted under the
//! server, a database it cannot write at start, a real full disk (a small
//! tmpfs; needs root) and a PostgreSQL that goes read-only for a while.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection;
use youmi_server::Server;

use crate::common::{init_logging, Answer, TestApp, TestDb};

fn message(account: i64, text: &str) -> Value {
    json!({
        "operator_account_id": account,
        "kind": "send_message",
        "payload": {"to": {"name": "Ann"}, "items": [{"type": "text", "text": text}]}
    })
}

fn on_postgres() -> bool {
    std::env::var("YOUMI_TEST_DATABASE_URL").is_ok_and(|url| !url.trim().is_empty())
}

async fn health(app: &TestApp, path: &str) -> Answer {
    app.call(Method::GET, path, None, None).await
}

/// A 503 `storage_unavailable` with `Retry-After`.
fn expect_storage_unavailable(answer: &Answer) {
    answer.expect_error(503, "storage_unavailable");
    assert!(
        answer.headers.get("retry-after").is_some(),
        "Retry-After on a storage 503"
    );
}

/// Polls readiness until it is `ready` (bounded: about a minute).
async fn wait_ready(app: &TestApp, ready: bool) -> Answer {
    for _ in 0..600 {
        let answer = health(app, "/health/ready").await;
        if (answer.status == 200) == ready {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/health/ready never became ready={ready}");
}

#[tokio::test]
async fn health_is_live_and_ready_without_a_token() {
    let app = TestApp::spawn().await;
    let live = health(&app, "/health/live").await;
    assert_eq!(live.expect(200), &json!({"status": "ok"}));
    let ready = health(&app, "/health/ready").await;
    assert_eq!(ready.expect(200), &json!({"status": "ok"}));
    app.finish().await;
}

#[tokio::test]
async fn a_deleted_sqlite_file_stops_every_acknowledged_write() {
    if on_postgres() {
        return;
    }
    let app = TestApp::spawn().await;
    let account = app.account("deleted").await;
    app.post("/api/v1/tasks", message(account, "before"))
        .await
        .expect(201);
    let path = app.db().dir().join("youmi.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }

    for i in 0..5 {
        let answer = app
            .post("/api/v1/tasks", message(account, &format!("after {i}")))
            .await;
        expect_storage_unavailable(&answer);
    }
    let answer = app
        .post(
            "/api/v1/operator-accounts",
            json!({"name": "late", "wecom_user_id": "wx_late"}),
        )
        .await;
    expect_storage_unavailable(&answer);
    let ready = health(&app, "/health/ready").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body["failed"], "database");
    let reason = ready.body["reason"].as_str().unwrap();
    assert!(reason.contains("was deleted"), "{reason}");
    assert!(reason.contains(&path.display().to_string()), "{reason}");
    assert_eq!(health(&app, "/health/live").await.status, 200);
    app.finish().await;
}

#[tokio::test]
async fn starting_on_a_database_it_cannot_write_names_the_path_and_the_os_error() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    // A path under a file fails for root too.
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"x").unwrap();
    let path = blocker.join("youmi.db");
    let mut config = youmi_server::config::Config::defaults();
    config.database_url = Some(format!("sqlite://{}?mode=rwc", path.display()));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.path().to_path_buf();
    let error = match Server::start(config.clone()).await {
        Ok(_) => panic!("the server started on an unwritable database"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains(&format!(
            "cannot open the SQLite database {} for writing",
            path.display()
        )),
        "{error}"
    );
    assert!(error.contains("os error 20"), "{error}");

    // A read-only file system, where this process may mount one.
    let mount = dir.path().join("ro");
    std::fs::create_dir(&mount).unwrap();
    if !mount_tmpfs(&mount, "size=1m") {
        eprintln!("skipped the read-only file system case: cannot mount a tmpfs here (not root?)");
        return;
    }
    std::fs::write(mount.join("youmi.db"), b"").unwrap();
    let remounted = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&mount)
        .status()
        .unwrap();
    assert!(remounted.success());
    let path = mount.join("youmi.db");
    config.database_url = Some(format!("sqlite://{}?mode=rwc", path.display()));
    let result = Server::start(config).await;
    unmount(&mount);
    let error = format!("{:#}", result.err().expect("refused on a read-only mount"));
    assert!(
        error.contains(&format!(
            "cannot open the SQLite database {} for writing: Read-only file system",
            path.display()
        )),
        "{error}"
    );
}

fn mount_tmpfs(dir: &std::path::Path, options: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn unmount(dir: &std::path::Path) {
    let _ = Command::new("umount").arg("-l").arg(dir).status();
}

/// The marker texts of every stored task.
async fn stored_texts(url: &str) -> BTreeSet<String> {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(url).await.unwrap();
    let payloads: Vec<String> = sqlx::query_scalar("SELECT payload FROM tasks")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    connection.close().await.ok();
    payloads
        .iter()
        .map(|payload| {
            let payload: Value = serde_json::from_str(payload).unwrap();
            payload["items"][0]["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_full_disk_refuses_writes_then_recovers_without_losing_an_acknowledged_task() {
    if on_postgres() {
        return;
    }
    init_logging();
    let db = TestDb::create().await;
    let mount = db.dir().to_path_buf();
    if !mount_tmpfs(&mount, "size=4m") {
        eprintln!(
            "skipped: cannot mount a tmpfs on {} (needs root); CI runs it",
            mount.display()
        );
        return;
    }
    let app = TestApp::start(db, config_for(&mount)).await;
    let account = app.account("full").await;
    // Fill the file system, leaving the database's files as they are.
    let filler = mount.join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![7u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
    }

    let text = "x".repeat(4_000);
    let mut acknowledged = BTreeSet::new();
    let mut refused = BTreeSet::new();
    let mut waiting = Vec::new();
    for i in 0..2_000 {
        let marker = format!("{i}:{text}");
        let submit = {
            let http = app.client.clone();
            let url = app.url("/api/v1/tasks");
            let token = app.token.clone();
            let body = message(account, &marker);
            tokio::spawn(async move {
                let response = http.post(url).bearer_auth(token).json(&body).send().await;
                let response = response.expect("answered");
                let status = response.status().as_u16();
                let retry_after = response.headers().get("retry-after").is_some();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (status, retry_after, body)
            })
        };
        // Either the answer, or the store turning degraded while it waits.
        let mut submit = submit;
        let answered = tokio::select! {
            answer = &mut submit => Some(answer.unwrap()),
            _ = wait_ready(&app, false) => None,
        };
        match answered {
            Some((201, _, _)) => {
                acknowledged.insert(marker);
            }
            Some((503, retry_after, body)) => {
                assert!(retry_after, "Retry-After");
                assert_eq!(body["error"]["code"], "storage_unavailable");
                refused.insert(marker);
                if refused.len() >= 3 {
                    break;
                }
            }
            Some((status, _, body)) => panic!("unexpected {status}: {body}"),
            None => waiting.push((marker, submit)),
        }
    }
    assert!(refused.len() >= 3, "the full disk was never noticed");
    let ready = health(&app, "/health/ready").await;
    assert_eq!(ready.status, 503);
    assert!(ready.body["failed"].is_string(), "{}", ready.body);

    // Free space: the server carries on by itself.
    std::fs::remove_file(&filler).unwrap();
    assert!(Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mount)
        .status()
        .unwrap()
        .success());
    wait_ready(&app, true).await;
    // Those still open when the store turned degraded: refused at once, or
    // waiting for the commit and stored.
    for (marker, submit) in waiting {
        match submit.await.unwrap() {
            (201, _, _) => acknowledged.insert(marker),
            (503, true, body) if body["error"]["code"] == "storage_unavailable" => {
                refused.insert(marker)
            }
            (status, _, body) => panic!("unexpected {status}: {body}"),
        };
    }
    let after = format!("after:{text}");
    app.post("/api/v1/tasks", message(account, &after))
        .await
        .expect(201);
    acknowledged.insert(after);

    // After a restart: every acknowledged task, no refused one.
    let db = app.stop().await;
    let url = db.url().to_owned();
    let app = TestApp::start(db, config_for(&mount)).await;
    let stored = stored_texts(&url).await;
    assert_eq!(stored, acknowledged);
    assert!(stored.is_disjoint(&refused));
    health(&app, "/health/ready").await.expect(200);
    app.stop().await;
    unmount(&mount);
}

fn config_for(mount: &std::path::Path) -> youmi_server::config::Config {
    let mut config = youmi_server::config::Config::defaults();
    config.database_url = Some(format!(
        "sqlite://{}?mode=rwc",
        mount.join("youmi.db").display()
    ));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = mount.to_path_buf();
    config.admin_password = Some(crate::common::ADMIN_PASSWORD.to_owned());
    config
}

#[tokio::test]
async fn postgres_read_only_for_a_while_refuses_then_recovers() {
    let Ok(admin_url) = std::env::var("YOUMI_TEST_DATABASE_URL") else {
        return;
    };
    if admin_url.trim().is_empty() {
        return;
    }
    let app = TestApp::spawn().await;
    let account = app.account("pg").await;
    let db_url = app.db().url().to_owned();
    let name = db_url.rsplit('/').next().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    let terminate = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    );
    sqlx::query(&format!(
        "ALTER DATABASE \"{name}\" SET default_transaction_read_only = on"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query(&terminate).execute(&mut admin).await.unwrap();

    let mut acknowledged = BTreeSet::new();
    let mut waiting = Vec::new();
    let mut refused = 0;
    for i in 0..50 {
        let marker = format!("pg {i}");
        let mut submit = {
            let http = app.client.clone();
            let url = app.url("/api/v1/tasks");
            let token = app.token.clone();
            let body = message(account, &marker);
            tokio::spawn(async move {
                let response = http.post(url).bearer_auth(token).json(&body).send().await;
                let response = response.expect("answered");
                let status = response.status().as_u16();
                let retry_after = response.headers().get("retry-after").is_some();
                (status, retry_after)
            })
        };
        let answered = tokio::select! {
            answer = &mut submit => Some(answer.unwrap()),
            _ = wait_ready(&app, false) => None,
        };
        match answered {
            Some((201, _)) => {
                acknowledged.insert(marker);
            }
            Some((503, retry_after)) => {
                assert!(retry_after);
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
            Some((status, _)) => panic!("unexpected {status}"),
            None => waiting.push((marker, submit)),
        }
    }
    assert!(refused >= 3, "the read-only database was never noticed");
    assert_eq!(health(&app, "/health/ready").await.status, 503);

    sqlx::query(&format!(
        "ALTER DATABASE \"{name}\" RESET default_transaction_read_only"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query(&terminate).execute(&mut admin).await.unwrap();
    admin.close().await.ok();
    wait_ready(&app, true).await;
    for (marker, submit) in waiting {
        match submit.await.unwrap() {
            (201, _) => assert!(acknowledged.insert(marker)),
            (503, true) => {}
            (status, _) => panic!("unexpected {status}"),
        }
    }
    app.post("/api/v1/tasks", message(account, "pg after"))
        .await
        .expect(201);
    acknowledged.insert("pg after".to_owned());
    let stored: BTreeSet<String> = stored_texts(&db_url).await.into_iter().collect();
    assert_eq!(stored, acknowledged);
    app.finish().await;
}
