//! `wecom_user_id` is unique regardless of letter case, by one rule on both
//! databases: generated ids in every mix of cases, on create and on update,
//! and for accounts stored before the rule (their key is filled at start).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::json;

use crate::common::TestApp;

/// An id with letters that have case, in ASCII and beyond, and a case mask.
fn id_and_mask() -> impl Strategy<Value = (String, Vec<bool>)> {
    let letter = prop_oneof![
        prop::char::range('a', 'z'),
        prop::sample::select(vec!['é', 'ß', 'σ', 'ж', 'ǆ', 'ä', '李', '_', '1']),
    ];
    (
        prop::collection::vec(letter, 1..12).prop_map(|c| c.into_iter().collect::<String>()),
        prop::collection::vec(any::<bool>(), 12),
    )
}

/// `id` with the letters the mask picks in upper case.
fn recased(id: &str, mask: &[bool]) -> String {
    id.chars()
        .zip(mask.iter().cycle())
        .map(|(c, upper)| {
            if *upper {
                c.to_uppercase().collect::<String>()
            } else {
                c.to_string()
            }
        })
        .collect()
}

async fn check_case(app: &TestApp, other: i64, n: usize, id: &str, mask: &[bool]) {
    // A counter keeps each case's ids apart from earlier cases'.
    let original = format!("{id}-{n}");
    let variant = format!("{}-{n}", recased(id, mask));
    let accounts = "/api/v1/operator-accounts";
    app.post(accounts, json!({"name": "a", "wecom_user_id": original}))
        .await
        .expect(201);
    let again = app
        .post(accounts, json!({"name": "b", "wecom_user_id": variant}))
        .await;
    again.expect_error(409, "wecom_user_id_taken");
    assert_eq!(again.field(), "wecom_user_id");
    let moved = app
        .admin(
            Method::PATCH,
            &format!("{accounts}/{other}"),
            Some(json!({ "wecom_user_id": variant })),
        )
        .await;
    moved.expect_error(409, "wecom_user_id_taken");
}

#[test]
fn wecom_user_ids_differing_only_in_case_are_taken() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(TestApp::spawn());
    let other = runtime.block_on(app.account("other"));
    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let n = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&id_and_mask(), |(id, mask)| {
        let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        runtime.block_on(check_case(&app, other, n, &id, &mask));
        Ok(())
    });
    for (i, (id, mask)) in [
        ("abc", vec![true]),
        ("straße", vec![true]),
        ("ΣΊΣΥΦΟΣ", vec![false]),
    ]
    .into_iter()
    .enumerate()
    {
        runtime.block_on(check_case(&app, other, 1_000 + i, id, &mask));
    }
    // An account may change the case of its own id.
    let answer = runtime.block_on(app.admin(
        Method::PATCH,
        &format!("/api/v1/operator-accounts/{other}"),
        Some(json!({"wecom_user_id": "WX_OTHER"})),
    ));
    assert_eq!(answer.expect(200)["wecom_user_id"], "WX_OTHER");
    runtime.block_on(app.finish());
    result.unwrap();
}

#[tokio::test]
async fn accounts_stored_before_the_rule_get_their_key_at_start() {
    let app = TestApp::spawn().await;
    app.account("Legacy").await;
    let db = app.stop().await;
    // As a row written before migration 0005: no key.
    let store = youmi_server::db::Db::open(db.url()).await.unwrap();
    sqlx::query("UPDATE operator_accounts SET wecom_user_key = NULL")
        .execute(&store.write)
        .await
        .unwrap();
    store.close().await;
    let config = crate::common::config(&db);
    let app = TestApp::start(db, config).await;
    app.post(
        "/api/v1/operator-accounts",
        json!({"name": "new", "wecom_user_id": "WX_LEGACY"}),
    )
    .await
    .expect_error(409, "wecom_user_id_taken");
    app.finish().await;
}
