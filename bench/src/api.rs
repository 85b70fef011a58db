//! The HTTP client of the server's API, as an admin uses it: log in, create
//! operator accounts and bind codes, bind simulated phones, submit tasks.

use std::time::Duration;

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use youmi_protocol::api::{
    BindCode, CreateOperatorAccount, DeviceList, LoginRequest, LoginResponse, OperatorAccount,
    SubmitBatch, SubmitTask, SubmittedBatch, SubmittedTask,
};
use youmi_protocol::{BindRequest, BindResponse, DeviceInfo, OperatorAccountId, TaskId, TaskKind};

/// A logged-in admin's client; cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct ApiClient {
    /// The pooled HTTP client.
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    base: String,
    /// The admin's session token.
    token: String,
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
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            // A 100,000-task batch takes a while to commit; only a hung server
            // should hit this.
            .timeout(Duration::from_secs(300))
            .build()
            .context("cannot build the HTTP client")?;
        let login: LoginResponse = decode(
            http.post(format!("{base}/api/v1/auth/login"))
                .json(&LoginRequest {
                    job_no: "admin".to_owned(),
                    password: password.to_owned(),
                })
                .send()
                .await
                .context("cannot reach the server to log in")?,
        )
        .await
        .context("login as admin failed")?;
        Ok(ApiClient {
            http,
            base: base.to_owned(),
            token: login.token,
        })
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path} failed"))?;
        decode(response)
            .await
            .with_context(|| format!("POST {path} refused"))
    }

    /// Creates account number `index`, makes a bind code for it and binds a
    /// simulated phone with it through `POST /agent/v1/bind`.
    pub async fn bind_agent(&self, index: usize) -> anyhow::Result<BoundAgent> {
        let account: OperatorAccount = self
            .post(
                "/api/v1/operator-accounts",
                &CreateOperatorAccount {
                    name: format!("Bench {index:05}"),
                    wecom_user_id: format!("bench{index:05}"),
                    remark: String::new(),
                },
            )
            .await?;
        let code: BindCode = self
            .post(
                &format!("/api/v1/operator-accounts/{}/bind-codes", account.id),
                &json!({}),
            )
            .await?;
        let device = bench_device(index);
        // The bind route is the agent's, not the admin's: no bearer token.
        let response = self
            .http
            .post(format!("{}/agent/v1/bind", self.base))
            .json(&BindRequest {
                code: code.code,
                device: device.clone(),
            })
            .send()
            .await
            .context("POST /agent/v1/bind failed")?;
        let bound: BindResponse = decode(response)
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
            .post("/api/v1/tasks/batch", &SubmitBatch { tasks })
            .await?;
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
        let response = self
            .http
            .get(format!("{}/api/v1/devices", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .context("GET /api/v1/devices failed")?;
        let list: DeviceList = decode(response)
            .await
            .context("GET /api/v1/devices refused")?;
        Ok(list.items.iter().filter(|device| device.online).count())
    }

    /// Submits one task through `POST /api/v1/tasks`; returns its id.
    pub async fn submit(&self, task: &SubmitTask) -> anyhow::Result<TaskId> {
        let submitted: SubmittedTask = self.post("/api/v1/tasks", task).await?;
        Ok(submitted.id)
    }
}

/// The body of a successful answer, or an error carrying the status and body.
async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> anyhow::Result<T> {
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!("the server answered {status}: {body}");
    }
    response
        .json()
        .await
        .context("the server's answer is not the expected JSON")
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
