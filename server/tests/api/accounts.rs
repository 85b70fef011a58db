//! Operator accounts: create, list, get, update, disable, enable.

use reqwest::Method;
use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn accounts_are_created_listed_and_changed() {
    let app = TestApp::spawn().await;
    let created = app
        .post(
            "/api/v1/operator-accounts",
            json!({"name": "  Sales 1 ", "wecom_user_id": "wx_sales_1", "remark": "first"}),
        )
        .await;
    let body = created.expect(201).clone();
    let id = body["id"].as_i64().unwrap();
    assert_eq!(body["name"], "Sales 1");
    assert_eq!(body["disabled"], false);
    assert!(body.get("device_id").is_none());

    app.post(
        "/api/v1/operator-accounts",
        json!({"name": "Other", "wecom_user_id": "wx_sales_1"}),
    )
    .await
    .expect_error(409, "wecom_user_id_taken");
    let empty = app
        .post(
            "/api/v1/operator-accounts",
            json!({"name": "   ", "wecom_user_id": "wx_x"}),
        )
        .await;
    empty.expect_error(422, "invalid_field");
    assert_eq!(empty.field(), "name");
    let long = app
        .post(
            "/api/v1/operator-accounts",
            json!({"name": "x", "wecom_user_id": "w".repeat(65)}),
        )
        .await;
    long.expect_error(422, "invalid_field");
    assert_eq!(long.field(), "wecom_user_id");

    let second = app.account("second").await;
    let list = app.get("/api/v1/operator-accounts").await;
    let accounts = list.expect(200)["operator_accounts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[0]["id"], id);
    assert_eq!(accounts[1]["id"], second);

    let shown = app.get(&format!("/api/v1/operator-accounts/{id}")).await;
    assert_eq!(shown.expect(200)["remark"], "first");
    app.get("/api/v1/operator-accounts/999999")
        .await
        .expect_error(404, "operator_account_not_found");
    app.get("/api/v1/operator-accounts/abc")
        .await
        .expect_error(400, "bad_path");

    let patched = app
        .admin(
            Method::PATCH,
            &format!("/api/v1/operator-accounts/{id}"),
            Some(json!({"name": "Renamed", "remark": ""})),
        )
        .await;
    let patched = patched.expect(200);
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(patched["remark"], "");
    assert_eq!(patched["wecom_user_id"], "wx_sales_1");
    app.admin(
        Method::PATCH,
        &format!("/api/v1/operator-accounts/{id}"),
        Some(json!({"colour": "red"})),
    )
    .await
    .expect_error(400, "bad_json");
    app.admin(
        Method::PATCH,
        &format!("/api/v1/operator-accounts/{id}"),
        Some(json!({})),
    )
    .await
    .expect_error(400, "empty_patch");
    app.admin(
        Method::PATCH,
        &format!("/api/v1/operator-accounts/{second}"),
        Some(json!({"wecom_user_id": "wx_sales_1"})),
    )
    .await
    .expect_error(409, "wecom_user_id_taken");
    app.admin(
        Method::PATCH,
        "/api/v1/operator-accounts/999999",
        Some(json!({"name": "x"})),
    )
    .await
    .expect_error(404, "operator_account_not_found");

    let disabled = app
        .post(
            &format!("/api/v1/operator-accounts/{id}/disable"),
            json!({}),
        )
        .await;
    assert_eq!(disabled.expect(200)["disabled"], true);
    let enabled = app
        .post(&format!("/api/v1/operator-accounts/{id}/enable"), json!({}))
        .await;
    assert_eq!(enabled.expect(200)["disabled"], false);
    app.post("/api/v1/operator-accounts/999999/disable", json!({}))
        .await
        .expect_error(404, "operator_account_not_found");
    app.finish().await;
}
