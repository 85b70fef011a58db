//! Device logs: asking agents for their logs, their uploads (the device's
//! own requests only, once each, streamed to disk, at most 20 MB), the list
//! and the download.

use std::path::PathBuf;

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use youmi_protocol::api::MAX_LOG_UPLOAD_BYTES;
use youmi_protocol::ServerMessage;
use youmi_tests::{Answer, RawAgent};

use crate::common::{TestApp, FRAME_WAIT};

/// A bound, connected agent: (device id, token, socket).
async fn agent(app: &TestApp, name: &str) -> (String, String, RawAgent) {
    let account = app.account(name).await;
    let (device_id, token) = app.bind(account).await;
    let (agent, _) = RawAgent::connect_hello(&app.ws_url(), &token).await;
    (device_id, token, agent)
}

/// Asks for `device_id`'s logs and returns the upload URL its agent got.
async fn request(app: &TestApp, device_id: &str, agent: &mut RawAgent) -> String {
    let answer = app
        .post(
            "/api/v1/devices/upload-logs",
            json!({"device_ids": [device_id]}),
        )
        .await;
    assert_eq!(answer.expect(200)["affected"], 1);
    match agent.recv(FRAME_WAIT).await {
        ServerMessage::UploadLogs { request_id, url } => {
            assert!(
                url.ends_with(&format!("/agent/v1/logs/{request_id}")),
                "{url}"
            );
            url
        }
        other => panic!("expected upload_logs, got {other:?}"),
    }
}

async fn upload(app: &TestApp, url: &str, token: &str, body: Vec<u8>) -> Answer {
    let response = app
        .client
        .post(url)
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap();
    Answer::read(response).await.unwrap()
}

fn log_file(app: &TestApp, id: i64) -> PathBuf {
    app.db()
        .dir()
        .join("data")
        .join("device-logs")
        .join(format!("{id}.tar.gz"))
}

#[tokio::test]
async fn logs_are_requested_uploaded_listed_and_downloaded() {
    let app = TestApp::spawn().await;
    let (device_id, token, mut agent) = agent(&app, "logs").await;
    let offline_account = app.account("offline").await;
    let (offline_id, _) = app.bind(offline_account).await;

    app.post("/api/v1/devices/upload-logs", json!({}))
        .await
        .expect_error(400, "empty_selection");
    app.post(
        "/api/v1/devices/upload-logs",
        json!({"device_ids": [device_id, "dev_missing"]}),
    )
    .await
    .expect_error(404, "device_not_found");

    let answer = app
        .post(
            "/api/v1/devices/upload-logs",
            json!({"device_ids": [device_id, offline_id]}),
        )
        .await;
    let body = answer.expect(200);
    assert_eq!(body["affected"], 1);
    assert_eq!(body["devices"][0]["device_id"], device_id.as_str());
    assert_eq!(body["devices"][0]["result"], "requested");
    let log_id = body["devices"][0]["log_id"].as_i64().unwrap();
    assert_eq!(body["devices"][1]["device_id"], offline_id.as_str());
    assert_eq!(body["devices"][1]["result"], "offline");
    assert!(body["devices"][1].get("log_id").is_none());
    let url = match agent.recv(FRAME_WAIT).await {
        ServerMessage::UploadLogs { url, .. } => url,
        other => panic!("expected upload_logs, got {other:?}"),
    };

    let listed = app.get("/api/v1/device-logs").await;
    let entry = listed.expect(200)["device_logs"][0].clone();
    assert_eq!(entry["id"], log_id);
    assert_eq!(entry["state"], "requested");
    app.get(&format!("/api/v1/device-logs/{log_id}/file"))
        .await
        .expect_error(404, "device_log_not_found");

    let archive: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    upload(&app, &url, &token, archive.clone())
        .await
        .expect(201);
    assert_eq!(std::fs::read(log_file(&app, log_id)).unwrap(), archive);

    let listed = app
        .get(&format!("/api/v1/device-logs?device_id={device_id}"))
        .await;
    let entry = listed.expect(200)["device_logs"][0].clone();
    assert_eq!(entry["state"], "uploaded");
    assert_eq!(entry["size_bytes"], archive.len());
    assert_eq!(entry["device_id"], device_id.as_str());
    assert!(entry["uploaded_at_ms"].as_i64().is_some());
    let other = app
        .get(&format!("/api/v1/device-logs?device_id={offline_id}"))
        .await;
    assert_eq!(other.expect(200)["device_logs"], json!([]));

    let response = app
        .client
        .get(app.url(&format!("/api/v1/device-logs/{log_id}/file")))
        .bearer_auth(&app.api().token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let disposition = response.headers()["content-disposition"].to_str().unwrap();
    assert_eq!(
        disposition,
        format!("attachment; filename=\"youmi-log-{device_id}-{log_id}.tar.gz\"")
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), archive.as_slice());

    // A request takes one upload.
    upload(&app, &url, &token, vec![1, 2, 3])
        .await
        .expect_error(409, "log_request_used");
    assert_eq!(std::fs::read(log_file(&app, log_id)).unwrap(), archive);
    app.finish().await;
}

#[tokio::test]
async fn uploads_need_the_device_token_and_its_own_unused_request() {
    let app = TestApp::spawn().await;
    let (device_a, token_a, mut agent_a) = agent(&app, "a").await;
    let (_device_b, token_b, _agent_b) = agent(&app, "b").await;
    let url = request(&app, &device_a, &mut agent_a).await;

    upload(&app, &url, "not-a-token", vec![1])
        .await
        .expect_error(401, "unauthorized");
    upload(&app, &url, &token_b, vec![1])
        .await
        .expect_error(403, "not_your_log_request");
    let unknown = url.replace("/logs/log_", "/logs/log_x");
    upload(&app, &unknown, &token_a, vec![1])
        .await
        .expect_error(404, "log_request_not_found");
    // Refused uploads leave the request to its device.
    upload(&app, &url, &token_a, vec![1, 2]).await.expect(201);
    app.finish().await;
}

/// Posts a chunked body of `total` zero bytes without a length, as a raw
/// HTTP/1.1 request, and returns the answer's status; the server must count
/// the bytes itself. It may answer before the body is sent.
async fn post_chunked(app: &TestApp, url: &str, token: &str, total: u64) -> u16 {
    let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
    let addr = app.url("").trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut sent = 0;
    while sent < total {
        let size = (total - sent).min(chunk.len() as u64) as usize;
        let frame = [
            format!("{size:x}\r\n").into_bytes(),
            chunk[..size].to_vec(),
            b"\r\n".to_vec(),
        ]
        .concat();
        if socket.write_all(&frame).await.is_err() {
            break;
        }
        sent += size as u64;
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn an_upload_over_20_mb_is_refused_and_its_part_removed() {
    let app = TestApp::spawn().await;
    let (device_id, token, mut agent) = agent(&app, "big").await;

    // No length given: the server counts, stops past the cap, removes the part.
    let url = request(&app, &device_id, &mut agent).await;
    assert_eq!(
        post_chunked(&app, &url, &token, MAX_LOG_UPLOAD_BYTES + 1).await,
        413
    );
    let listed = app.get("/api/v1/device-logs").await;
    let entry = listed.expect(200)["device_logs"][0].clone();
    assert_eq!(entry["state"], "failed");
    assert!(entry["error"].as_str().unwrap().contains("larger"));
    let id = entry["id"].as_i64().unwrap();
    assert!(!log_file(&app, id).exists(), "the partial file is removed");

    // A declared length over the cap is refused before the body is read.
    let url = request(&app, &device_id, &mut agent).await;
    upload(
        &app,
        &url,
        &token,
        vec![0; (MAX_LOG_UPLOAD_BYTES + 1) as usize],
    )
    .await
    .expect_error(413, "log_too_large");

    // Exactly the cap is taken.
    let url = request(&app, &device_id, &mut agent).await;
    assert_eq!(
        post_chunked(&app, &url, &token, MAX_LOG_UPLOAD_BYTES).await,
        201
    );
    let listed = app.get("/api/v1/device-logs?limit=1").await;
    let entry = listed.expect(200)["device_logs"][0].clone();
    assert_eq!(entry["state"], "uploaded");
    assert_eq!(entry["size_bytes"], MAX_LOG_UPLOAD_BYTES);
    app.finish().await;
}

#[tokio::test]
async fn an_agents_failure_report_is_kept() {
    let app = TestApp::spawn().await;
    let (device_id, _token, mut agent) = agent(&app, "fails").await;
    let url = request(&app, &device_id, &mut agent).await;
    let request_id = url.rsplit('/').next().unwrap().to_owned();
    agent
        .send(&youmi_protocol::AgentMessage::LogsUploaded {
            request_id,
            error: Some("cannot pack the logs: disk full".to_owned()),
        })
        .await;
    let entry = youmi_tests::api::eventually("the failure stored", FRAME_WAIT, || async {
        let listed = app.admin(Method::GET, "/api/v1/device-logs", None).await;
        let entry = listed.expect(200)["device_logs"][0].clone();
        (entry["state"] == "failed").then_some(entry)
    })
    .await;
    assert_eq!(entry["error"], "cannot pack the logs: disk full");
    app.finish().await;
}

#[tokio::test]
async fn an_upload_cut_off_by_a_stop_fails_and_its_part_goes() {
    let app = TestApp::spawn().await;
    let (device_id, _token, mut agent) = agent(&app, "cut").await;
    request(&app, &device_id, &mut agent).await;
    let listed = app.get("/api/v1/device-logs").await;
    let id = listed.expect(200)["device_logs"][0]["id"].as_i64().unwrap();
    let part = log_file(&app, id);
    let db = app.stop().await;
    // As a crash mid-upload leaves it: claimed, half written.
    let store = youmi_server::db::Db::open(db.url()).await.unwrap();
    sqlx::query("UPDATE device_logs SET state = 'uploading' WHERE id = $1")
        .bind(id)
        .execute(&store.write)
        .await
        .unwrap();
    store.close().await;
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, b"half an archive").unwrap();

    let config = crate::common::config(&db);
    let app = TestApp::start(db, config).await;
    let listed = app.get("/api/v1/device-logs").await;
    let entry = listed.expect(200)["device_logs"][0].clone();
    assert_eq!(entry["state"], "failed");
    assert_eq!(entry["error"], "the server stopped during the upload");
    assert!(!part.exists(), "the partial file is removed");
    app.finish().await;
}
