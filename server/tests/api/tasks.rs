//! The task API: submit, batch, get, list, cancel, and what survives a restart.

use serde_json::{json, Value};

use crate::common::TestApp;

fn message(account: i64, text: &str) -> Value {
    json!({
        "operator_account_id": account,
        "kind": "send_message",
        "payload": {"to": {"name": "Ann"}, "items": [{"type": "text", "text": text}]}
    })
}

#[tokio::test]
async fn submissions_are_checked() {
    let app = TestApp::spawn().await;
    let account = app.account("checks").await;

    let mut unknown_kind = message(account, "x");
    unknown_kind["kind"] = json!("teleport");
    let answer = app.post("/api/v1/tasks", unknown_kind).await;
    answer.expect_error(400, "bad_json");
    assert_eq!(answer.field(), "kind");

    let bad_payload = json!({
        "operator_account_id": account,
        "kind": "send_message",
        "payload": {"items": [{"type": "text", "text": "hi"}]}
    });
    let answer = app.post("/api/v1/tasks", bad_payload).await;
    answer.expect_error(422, "invalid_payload");
    assert_eq!(answer.field(), "payload.to");

    let mut priority = message(account, "x");
    priority["priority"] = json!(10);
    let answer = app.post("/api/v1/tasks", priority).await;
    answer.expect_error(422, "invalid_priority");
    assert_eq!(answer.field(), "priority");

    let mut window = message(account, "x");
    window["not_before"] = json!(2_000);
    window["not_after"] = json!(1_000);
    let answer = app.post("/api/v1/tasks", window).await;
    answer.expect_error(422, "invalid_time");
    assert_eq!(answer.field(), "not_after");

    app.post("/api/v1/tasks", message(999_999, "x"))
        .await
        .expect_error(404, "operator_account_not_found");

    app.post(
        &format!("/api/v1/operator-accounts/{account}/disable"),
        json!({}),
    )
    .await
    .expect(200);
    app.post("/api/v1/tasks", message(account, "x"))
        .await
        .expect_error(422, "operator_account_disabled");

    app.get("/api/v1/tasks/123456789")
        .await
        .expect_error(404, "task_not_found");
    app.get("/api/v1/tasks/abc")
        .await
        .expect_error(400, "bad_path");
    app.finish().await;
}

#[tokio::test]
async fn batches_are_all_or_nothing_and_name_the_index() {
    let app = TestApp::spawn().await;
    let account = app.account("batch").await;
    let bad = json!({"tasks": [
        message(account, "one"),
        {"operator_account_id": account, "kind": "send_message",
         "payload": {"to": {"name": "Ann"}, "items": [{"type": "text"}]}},
    ]});
    let answer = app.post("/api/v1/tasks/batch", bad).await;
    answer.expect_error(422, "invalid_payload");
    assert_eq!(answer.field(), "tasks[1].payload.items[0].text");

    let wrong_kind = json!({"tasks": [message(account, "one"), {
        "operator_account_id": account, "kind": "nope", "payload": {}}]});
    let answer = app.post("/api/v1/tasks/batch", wrong_kind).await;
    answer.expect_error(400, "bad_json");
    assert_eq!(answer.field(), "tasks[1].kind");

    let unknown = json!({"tasks": [message(account, "one"), message(777_777, "two")]});
    let answer = app.post("/api/v1/tasks/batch", unknown).await;
    answer.expect_error(404, "operator_account_not_found");
    assert_eq!(answer.field(), "tasks[1].operator_account_id");

    app.post("/api/v1/tasks/batch", json!({"tasks": []}))
        .await
        .expect_error(422, "invalid_batch");

    // Nothing of the refused batches was stored.
    let page = app.get("/api/v1/tasks").await;
    assert_eq!(page.expect(200)["tasks"].as_array().unwrap().len(), 0);

    let tasks: Vec<Value> = (0..1_234)
        .map(|i| message(account, &format!("m{i}")))
        .collect();
    let answer = app
        .post("/api/v1/tasks/batch", json!({"tasks": tasks}))
        .await;
    let ids: Vec<i64> = answer.expect(201)["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1_234);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let last = app.get(&format!("/api/v1/tasks/{}", ids[1_233])).await;
    let last = last.expect(200);
    assert_eq!(last["payload"]["items"][0]["text"], "m1233");
    assert_eq!(last["state"], "queued");
    assert_eq!(last["priority"], 5);
    app.finish().await;
}

#[tokio::test]
async fn the_list_filters_and_pages_newest_first() {
    let app = TestApp::spawn().await;
    let a = app.account("a").await;
    let b = app.account("b").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let account = if i % 2 == 0 { a } else { b };
        let answer = app.post("/api/v1/tasks", message(account, "x")).await;
        ids.push(answer.expect(201)["id"].as_i64().unwrap());
    }
    let moment = json!({"operator_account_id": a, "kind": "moments_post",
                        "payload": {"text": "hello world"}});
    let moment_id = app.post("/api/v1/tasks", moment).await.expect(201)["id"]
        .as_i64()
        .unwrap();

    let page = app.get("/api/v1/tasks?limit=3").await;
    let page = page.expect(200).clone();
    let listed: Vec<i64> = page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, vec![moment_id, ids[6], ids[5]]);
    let cursor = page["next_cursor"].as_i64().unwrap();
    assert_eq!(cursor, ids[5]);

    let mut seen = listed.len();
    let mut cursor = Some(cursor);
    while let Some(c) = cursor {
        let page = app.get(&format!("/api/v1/tasks?limit=3&cursor={c}")).await;
        let page = page.expect(200).clone();
        seen += page["tasks"].as_array().unwrap().len();
        cursor = page["next_cursor"].as_i64();
    }
    assert_eq!(seen, 8);

    let only_a = app
        .get(&format!(
            "/api/v1/tasks?operator_account_id={a}&kind=send_message"
        ))
        .await;
    let only_a = only_a.expect(200)["tasks"].as_array().unwrap().clone();
    assert_eq!(only_a.len(), 4);
    assert!(only_a.iter().all(|t| t["operator_account_id"] == a));
    let queued = app.get("/api/v1/tasks?state=queued&limit=500").await;
    assert_eq!(queued.expect(200)["tasks"].as_array().unwrap().len(), 8);
    let none = app.get("/api/v1/tasks?state=succeeded").await;
    let none = none.expect(200).clone();
    assert_eq!(none["tasks"].as_array().unwrap().len(), 0);
    assert!(none.get("next_cursor").is_none());

    app.get("/api/v1/tasks?limit=0")
        .await
        .expect_error(422, "invalid_limit");
    app.get("/api/v1/tasks?limit=501")
        .await
        .expect_error(422, "invalid_limit");
    app.get("/api/v1/tasks?state=sleeping")
        .await
        .expect_error(400, "bad_query");
    app.get("/api/v1/tasks?colour=red")
        .await
        .expect_error(400, "bad_query");
    app.finish().await;
}

#[tokio::test]
async fn cancel_checks_its_filters_and_cancels_queued_tasks() {
    let app = TestApp::spawn().await;
    let account = app.account("cancel").await;
    let id = app
        .post("/api/v1/tasks", message(account, "x"))
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    let keep = app
        .post("/api/v1/tasks", message(account, "y"))
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();

    app.post("/api/v1/tasks/cancel", json!({}))
        .await
        .expect_error(400, "empty_filter");
    app.post("/api/v1/tasks/cancel", json!({"task_ids": []}))
        .await
        .expect_error(400, "empty_filter");
    app.post("/api/v1/tasks/cancel", json!({"device_ids": ["dev_nope"]}))
        .await
        .expect_error(404, "device_not_found");
    app.post(
        "/api/v1/tasks/cancel",
        json!({"operator_account_ids": [account, 55555]}),
    )
    .await
    .expect_error(404, "operator_account_not_found");
    app.post("/api/v1/tasks/cancel", json!({"task_ids": [987654]}))
        .await
        .expect_error(404, "task_not_found");
    app.post("/api/v1/tasks/cancel", json!({"tasks": [1]}))
        .await
        .expect_error(400, "bad_json");

    let result = app
        .post(
            "/api/v1/tasks/cancel",
            json!({"task_ids": [id], "kinds": ["send_message"]}),
        )
        .await;
    let result = result.expect(200);
    assert_eq!(result["cancelled"], 1);
    assert_eq!(result["cancelling"], 0);
    let view = app.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(view.expect(200)["state"], "cancelled");
    let view = app.get(&format!("/api/v1/tasks/{keep}")).await;
    assert_eq!(view.expect(200)["state"], "queued");
    app.finish().await;
}

#[tokio::test]
async fn tasks_and_ids_survive_a_restart() {
    let app = TestApp::spawn().await;
    let account = app.account("durable").await;
    let first = app
        .post("/api/v1/tasks", message(account, "x"))
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    let db = app.stop().await;
    let config = crate::common::config(&db);
    let app = TestApp::start(db, config).await;
    let view = app.get(&format!("/api/v1/tasks/{first}")).await;
    assert_eq!(view.expect(200)["state"], "queued");
    let second = app
        .post("/api/v1/tasks", message(account, "y"))
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    assert!(second > first);
    app.finish().await;
}

#[tokio::test]
async fn a_batch_of_100_000_tasks_is_taken_whole() {
    let app = TestApp::spawn().await;
    let accounts = [app.account("big1").await, app.account("big2").await];
    let tasks: Vec<Value> = (0..100_000)
        .map(|i| message(accounts[i % 2], &format!("bulk {i}")))
        .collect();
    let body = serde_json::to_vec(&json!({"tasks": tasks})).unwrap();
    let started = std::time::Instant::now();
    let response = app
        .client
        .post(app.url("/api/v1/tasks/batch"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let answer: Value = response.json().await.unwrap();
    let elapsed = started.elapsed();
    eprintln!("100,000 tasks submitted in {elapsed:?}");
    let ids = answer["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 100_000);
    let last = ids[99_999].as_i64().unwrap();
    let view = app.get(&format!("/api/v1/tasks/{last}")).await;
    let view = view.expect(200);
    assert_eq!(view["payload"]["items"][0]["text"], "bulk 99999");
    assert_eq!(view["operator_account_id"], accounts[1]);
    app.finish().await;
}

#[tokio::test]
async fn lists_keep_only_tasks_submitted_after_a_time() {
    let app = TestApp::spawn().await;
    let account = app.account("recent").await;
    let submitted = app.post("/api/v1/tasks", message(account, "x")).await;
    let id = submitted.expect(201)["id"].as_i64().unwrap();
    let created = app.get(&format!("/api/v1/tasks/{id}")).await.expect(200)["created_at_ms"]
        .as_i64()
        .unwrap();
    let ids = |body: &Value| -> Vec<i64> {
        body["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|task| task["id"].as_i64().unwrap())
            .collect()
    };
    let at = app
        .get(&format!("/api/v1/tasks?created_after={created}"))
        .await;
    assert_eq!(ids(at.expect(200)), vec![id], "at the time itself: kept");
    let after = app
        .get(&format!("/api/v1/tasks?created_after={}", created + 1))
        .await;
    assert!(ids(after.expect(200)).is_empty());
    app.get("/api/v1/tasks?created_after=yesterday")
        .await
        .expect_error(400, "bad_query");
    app.finish().await;
}
