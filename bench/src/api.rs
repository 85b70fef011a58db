//! What the bench asks of the server's API, as an admin, through the test
//! harness's typed client (`youmi_tests::Api`): log in, create operator
//! accounts and bind codes, bind simulated phones, submit tasks.

use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::{Method, StatusCode};
use serde_json::json;
use youmi_protocol::api::{
    BindCode, CreateOperatorAccount, DeviceList, OperatorAccount, SubmitBatch, SubmitTask,
    SubmittedBatch, SubmittedTask,
};
use youmi_protocol::{BindRequest, BindResponse, DeviceInfo, OperatorAccountId, TaskId, TaskKind};
use youmi_tests::{http_client, Api};

/// A logged-in admin's client (the test harness's typed [`Api`]); cheap to
/// clone (the connection pool is shared).
#[derive(Clone)]
pub struct ApiClient {
    api: Api,
}

/// One phone bound to one account: what a simulated agent needs to connect.
#[derive(Debug, Clone)]
pub struct BoundAgent {
    /// The account the phone serves.
    pub operator_account_id: OperatorAccountId,
    /// The device token for the WebSocket.
    pub token: String,
    /// The device's description, repeated in `hello`.
    pub device: DeviceInfo,
}

impl ApiClient {
    /// Logs in as `admin` with `password` on the server at `base`.
    pub async fn login(base: &str, password: &str) -> anyhow::Result<ApiClient> {
        // A 100,000-task batch takes a while to commit; only a hung server
        // should hit this timeout.
        let http = http_client(Duration::from_secs(300));
        let api = Api::login(http, base.to_owned(), "admin", password)
            .await
            .context("login as admin failed")?;
        Ok(ApiClient { api })
    }

    /// Creates account number `index`, makes a bind code for it and binds a
    /// simulated phone with it through `POST /agent/v1/bind`.
    pub async fn bind_agent(&self, index: usize) -> anyhow::Result<BoundAgent> {
        let account: OperatorAccount = self
            .api
            .try_call(
                Method::POST,
                "/api/v1/operator-accounts",
                &CreateOperatorAccount {
                    name: format!("Bench {index:05}"),
                    wecom_user_id: format!("bench{index:05}"),
                    remark: String::new(),
                },
                StatusCode::CREATED,
            )
            .await
            .context("creating an operator account")?;
        let code: BindCode = self
            .api
            .try_call(
                Method::POST,
                &format!("/api/v1/operator-accounts/{}/bind-codes", account.id),
                &json!({}),
                StatusCode::CREATED,
            )
            .await
            .context("making a bind code")?;
        let device = bench_device(index);
        // The bind route is the agent's, not the admin's: no bearer token.
        let bound: BindResponse = self
            .api
            .anonymous()
            .try_call(
                Method::POST,
                "/agent/v1/bind",
                &BindRequest {
                    code: code.code,
                    device: device.clone(),
                },
                StatusCode::OK,
            )
            .await
            .context("POST /agent/v1/bind refused")?;
        Ok(BoundAgent {
            operator_account_id: bound.operator_account_id,
            token: bound.token,
            device,
        })
    }

    /// Submits `tasks` in one call of the batch API; returns their ids.
    pub async fn submit_batch(&self, tasks: Vec<SubmitTask>) -> anyhow::Result<Vec<TaskId>> {
        let expected = tasks.len();
        let submitted: SubmittedBatch = self
            .api
            .try_call(
                Method::POST,
                "/api/v1/tasks/batch",
                &SubmitBatch { tasks },
                StatusCode::CREATED,
            )
            .await
            .context("POST /api/v1/tasks/batch")?;
        if submitted.ids.len() != expected {
            bail!(
                "the batch API took {expected} tasks but answered {} ids",
                submitted.ids.len()
            );
        }
        Ok(submitted.ids)
    }

    /// How many bound devices the server counts as online.
    pub async fn online_devices(&self) -> anyhow::Result<usize> {
        let list: DeviceList = self
            .api
            .send(Method::GET, "/api/v1/devices", None)
            .await?
            .parse(StatusCode::OK)
            .context("GET /api/v1/devices")?;
        Ok(list.items.iter().filter(|device| device.online).count())
    }

    /// Submits one task through `POST /api/v1/tasks`; returns its id.
    pub async fn submit(&self, task: &SubmitTask) -> anyhow::Result<TaskId> {
        let submitted: SubmittedTask = self
            .api
            .try_call(Method::POST, "/api/v1/tasks", task, StatusCode::CREATED)
            .await
            .context("POST /api/v1/tasks")?;
        Ok(submitted.id)
    }
}

/// The description of simulated phone number `index`.
pub fn bench_device(index: usize) -> DeviceInfo {
    DeviceInfo {
        serial: format!("bench-{index:05}"),
        model: "youmi-bench simulated phone".to_owned(),
        android_version: "14".to_owned(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// The `index`-th task of a dispatch run: one chat message to one customer.
pub fn chat_task(index: usize, operator_account_id: OperatorAccountId) -> SubmitTask {
    SubmitTask {
        operator_account_id,
        kind: TaskKind::SendMessage,
        payload: json!({
            "to": {"name": format!("Customer {index}")},
            "items": [{"type": "text", "text": "Hello from youmi-bench"}],
        }),
        priority: None,
        not_before: None,
        not_after: None,
    }
}

/// The `index`-th task of a mass send: the same message to one more customer.
pub fn mass_send_task(index: usize, operator_account_id: OperatorAccountId) -> SubmitTask {
    SubmitTask {
        operator_account_id,
        kind: TaskKind::MassSend,
        payload: json!({
            "recipients": [{"name": format!("Customer {index}")}],
            "items": [{"type": "text", "text": "Spring sale: 20% off everything this week"}],
        }),
        priority: None,
        not_before: None,
        not_after: None,
    }
}

impl ApiClient {
    /// The typed client underneath (its HTTP client, base URL and token).
    pub fn api(&self) -> &Api {
        &self.api
    }
}
