//! [`Api`]: a typed client of the core HTTP API, logged in as the admin, with
//! helpers that submit tasks and wait for states.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;
use youmi_protocol::api::{
    Affected, BindCode, CancelResult, CancelTasks, CreateOperatorAccount, DeviceList,
    DeviceLogPage, DeviceSelection, DeviceView, ErrorBody, ErrorDetail, LoginRequest,
    LoginResponse, LogsRequested, OperatorAccount, SubmitBatch, SubmitTask, SubmittedBatch,
    SubmittedTask, TaskPage, TaskView,
};
use youmi_protocol::{BindRequest, BindResponse, OperatorAccountId, TaskId, TaskState};

use crate::answer::{Answer, CallError};
use crate::raw::raw_device;

/// The first admin's password in every test database.
pub const ADMIN_PASSWORD: &str = "e2e-admin-password-0";

/// How often the wait helpers poll the API.
const POLL: Duration = Duration::from_millis(20);

/// Makes account names and device serials unique.
static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A number unique within this test process.
pub fn unique() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Polls `check` every 20 ms until it yields a value; panics with `what` after
/// `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A client of one server's HTTP API as one employee (the admin, unless made
/// by [`Api::login_as`]). Its typed helpers panic on an unexpected answer, as
/// tests want; [`Api::login`], [`Api::try_call`] and [`Api::send`] report
/// instead, for tools such as the bench.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client (without credentials).
    pub client: reqwest::Client,
    /// `http://host:port` of the server.
    pub base_url: String,
    /// The employee's bearer token.
    pub token: String,
}

impl Api {
    /// A client of `base_url` using `token`.
    pub fn new(base_url: String, token: String) -> Api {
        Api::with_client(http_client(Duration::from_secs(30)), base_url, token)
    }

    /// A client of `base_url` using `token` over `client` (its pool and timeouts).
    pub fn with_client(client: reqwest::Client, base_url: String, token: String) -> Api {
        Api {
            client,
            base_url,
            token,
        }
    }

    /// Logs in as the admin at `base_url`.
    pub async fn login_admin(base_url: String) -> Api {
        Api::login(
            http_client(Duration::from_secs(30)),
            base_url,
            "admin",
            ADMIN_PASSWORD,
        )
        .await
        .unwrap_or_else(|e| panic!("admin login: {e}"))
    }

    /// Logs in as `job_no` at `base_url` over `client`.
    pub async fn login(
        client: reqwest::Client,
        base_url: String,
        job_no: &str,
        password: &str,
    ) -> Result<Api, CallError> {
        let token = login(&client, &base_url, job_no, password)
            .await
            .map_err(CallError::Transport)?;
        Ok(Api::with_client(client, base_url, token))
    }

    /// A client of the same server logged in as another employee; panics
    /// unless the login succeeds (a refused login is an [`Answer`] of
    /// [`Api::send`] on `/api/v1/auth/login`).
    pub async fn login_as(&self, job_no: &str, password: &str) -> Api {
        Api::login(self.client.clone(), self.base_url.clone(), job_no, password)
            .await
            .unwrap_or_else(|e| panic!("login as {job_no}: {e}"))
    }

    /// A client of the same server without a session (the agent's routes, or
    /// what a stranger gets).
    pub fn anonymous(&self) -> Api {
        Api::with_client(self.client.clone(), self.base_url.clone(), String::new())
    }

    /// `method path` with an optional JSON body, answered whole. The token
    /// goes along unless this client is [`Api::anonymous`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, CallError> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base_url));
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CallError::Transport(format!("{method} {path}: {e}")))?;
        Answer::read(response).await
    }

    /// [`Api::send`], panicking if the server cannot be reached.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send(method.clone(), path, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// `method path` with `body` as JSON, expecting `status` and a `T`.
    pub async fn try_call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
        status: StatusCode,
    ) -> Result<T, CallError> {
        let body = serde_json::to_value(body).map_err(|e| CallError::Decode {
            reason: e.to_string(),
            body: String::new(),
        })?;
        self.send(method, path, Some(&body)).await?.parse(status)
    }

    /// A request with the admin's bearer token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
    }

    /// `GET path` as admin.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("GET request")
    }

    /// `POST path` with a JSON body as admin.
    pub async fn post_json(&self, path: &str, body: &impl Serialize) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("POST request")
    }

    /// `POST path` without a body as admin.
    pub async fn post_empty(&self, path: &str) -> Response {
        self.request(Method::POST, path)
            .send()
            .await
            .expect("POST request")
    }

    /// `PUT path` with a JSON body as admin.
    pub async fn put_json(&self, path: &str, body: &impl Serialize) -> Response {
        self.request(Method::PUT, path)
            .json(body)
            .send()
            .await
            .expect("PUT request")
    }

    /// `PATCH path` with a JSON body as admin.
    pub async fn patch_json(&self, path: &str, body: &impl Serialize) -> Response {
        self.request(Method::PATCH, path)
            .json(body)
            .send()
            .await
            .expect("PATCH request")
    }

    /// `POST path` with a raw body text as admin (for malformed JSON).
    pub async fn post_text(&self, path: &str, body: &str) -> Response {
        self.request(Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("POST request")
    }

    /// Creates an operator account with a unique name.
    pub async fn create_account(&self) -> OperatorAccount {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let body = CreateOperatorAccount {
            name: format!("Operator {n}"),
            wecom_user_id: format!("wecom_e2e_{n}"),
            remark: String::new(),
        };
        expect_json(
            self.post_json("/api/v1/operator-accounts", &body).await,
            StatusCode::CREATED,
        )
        .await
    }

    /// Creates a bind code for `account`.
    pub async fn bind_code(&self, account: OperatorAccountId) -> BindCode {
        expect_json(
            self.post_empty(&format!("/api/v1/operator-accounts/{account}/bind-codes"))
                .await,
            StatusCode::CREATED,
        )
        .await
    }

    /// `POST /agent/v1/bind` with `code`, returning the raw response.
    pub async fn bind_request(&self, code: &str) -> Response {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        self.client
            .post(format!("{}/agent/v1/bind", self.base_url))
            .json(&BindRequest {
                code: code.to_owned(),
                device: raw_device(&format!("raw-{n}")),
            })
            .send()
            .await
            .expect("bind request")
    }

    /// Binds a device to `account` over plain HTTP (for raw agents).
    pub async fn bind_raw(&self, account: OperatorAccountId) -> BindResponse {
        let code = self.bind_code(account).await;
        expect_json(self.bind_request(&code.code).await, StatusCode::OK).await
    }

    /// Submits one task; panics unless it is created.
    pub async fn submit(&self, task: &SubmitTask) -> SubmittedTask {
        expect_json(
            self.post_json("/api/v1/tasks", task).await,
            StatusCode::CREATED,
        )
        .await
    }

    /// Submits tasks in one batch; panics unless they are created.
    pub async fn submit_batch(&self, tasks: Vec<SubmitTask>) -> Vec<TaskId> {
        let batch: SubmittedBatch = expect_json(
            self.post_json("/api/v1/tasks/batch", &SubmitBatch { tasks })
                .await,
            StatusCode::CREATED,
        )
        .await;
        batch.ids
    }

    /// `GET /api/v1/tasks/{id}`.
    pub async fn task(&self, id: TaskId) -> TaskView {
        expect_json(
            self.get(&format!("/api/v1/tasks/{id}")).await,
            StatusCode::OK,
        )
        .await
    }

    /// Every task of `account` (all pages), newest first.
    pub async fn account_tasks(&self, account: OperatorAccountId) -> Vec<TaskView> {
        let mut tasks = Vec::new();
        let mut cursor: Option<TaskId> = None;
        loop {
            let mut path = format!("/api/v1/tasks?operator_account_id={account}&limit=500");
            if let Some(cursor) = cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page: TaskPage = expect_json(self.get(&path).await, StatusCode::OK).await;
            tasks.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return tasks,
            }
        }
    }

    /// Up to `limit` tasks in `state`, newest first (one page).
    pub async fn tasks_in_state(&self, state: TaskState, limit: u32) -> Vec<TaskView> {
        let page: TaskPage = expect_json(
            self.get(&format!("/api/v1/tasks?state={state}&limit={limit}"))
                .await,
            StatusCode::OK,
        )
        .await;
        page.items
    }

    /// `GET /api/v1/operator-accounts/{id}`.
    pub async fn account(&self, id: OperatorAccountId) -> OperatorAccount {
        expect_json(
            self.get(&format!("/api/v1/operator-accounts/{id}")).await,
            StatusCode::OK,
        )
        .await
    }

    /// Polls the task until it is in `state`; panics on timeout or when it ends
    /// in another terminal state.
    pub async fn wait_task_state(
        &self,
        id: TaskId,
        state: TaskState,
        timeout: Duration,
    ) -> TaskView {
        let deadline = Instant::now() + timeout;
        loop {
            let task = self.task(id).await;
            if task.state == state {
                return task;
            }
            if task.state.is_terminal() {
                panic!(
                    "task {id} ended {} while waiting for {state}: {task:?}",
                    task.state
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "task {id} is still {} after {timeout:?}, expected {state}: {task:?}",
                    task.state
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls the task until it is in a terminal state.
    pub async fn wait_terminal(&self, id: TaskId, timeout: Duration) -> TaskView {
        let deadline = Instant::now() + timeout;
        loop {
            let task = self.task(id).await;
            if task.state.is_terminal() {
                return task;
            }
            if Instant::now() >= deadline {
                panic!(
                    "task {id} is still {} after {timeout:?}: {task:?}",
                    task.state
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `GET /api/v1/devices`.
    pub async fn devices(&self) -> Vec<DeviceView> {
        let list: DeviceList = expect_json(self.get("/api/v1/devices").await, StatusCode::OK).await;
        list.items
    }

    /// `POST /api/v1/devices/upload-logs` for these devices.
    pub async fn request_logs(&self, device_ids: &[&str]) -> LogsRequested {
        let selection = DeviceSelection {
            device_ids: device_ids.iter().map(|id| (*id).to_owned()).collect(),
            all: false,
        };
        expect_json(
            self.post_json("/api/v1/devices/upload-logs", &selection)
                .await,
            StatusCode::OK,
        )
        .await
    }

    /// `GET /api/v1/device-logs?device_id=`: the first page of a device's logs.
    pub async fn device_logs(&self, device_id: &str) -> DeviceLogPage {
        let path = format!("/api/v1/device-logs?device_id={device_id}");
        expect_json(self.get(&path).await, StatusCode::OK).await
    }

    /// `GET /api/v1/device-logs/{id}/file`: its `Content-Disposition` and bytes.
    pub async fn download_log(&self, id: i64) -> (String, Vec<u8>) {
        let response = self.get(&format!("/api/v1/device-logs/{id}/file")).await;
        assert_eq!(response.status(), StatusCode::OK, "download of log {id}");
        let disposition = response
            .headers()
            .get(reqwest::header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.bytes().await.expect("the log's bytes").to_vec();
        (disposition, bytes)
    }

    /// One device from the device list; panics if it is not listed.
    pub async fn device(&self, device_id: &str) -> DeviceView {
        self.devices()
            .await
            .into_iter()
            .find(|d| d.device_id == device_id)
            .unwrap_or_else(|| panic!("device {device_id} is not in the device list"))
    }

    /// Polls the device list until `check` holds for `device_id`.
    pub async fn wait_device(
        &self,
        device_id: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&DeviceView) -> bool,
    ) -> DeviceView {
        eventually(what, timeout, || async {
            let device = self.device(device_id).await;
            check(&device).then_some(device)
        })
        .await
    }

    /// Pauses the queues of `device_ids`.
    pub async fn pause(&self, device_ids: &[&str]) -> Affected {
        expect_json(
            self.post_json(
                "/api/v1/devices/pause",
                &json!({ "device_ids": device_ids }),
            )
            .await,
            StatusCode::OK,
        )
        .await
    }

    /// Resumes the queues of `device_ids`.
    pub async fn resume(&self, device_ids: &[&str]) -> Affected {
        expect_json(
            self.post_json(
                "/api/v1/devices/resume",
                &json!({ "device_ids": device_ids }),
            )
            .await,
            StatusCode::OK,
        )
        .await
    }

    /// `POST /api/v1/tasks/cancel`.
    pub async fn cancel(&self, filter: &CancelTasks) -> CancelResult {
        expect_json(
            self.post_json("/api/v1/tasks/cancel", filter).await,
            StatusCode::OK,
        )
        .await
    }
}

/// An HTTP client whose requests give up after `timeout`.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(timeout)
        .build()
        .expect("http client")
}

/// Logs in and returns the session token.
pub async fn login(
    client: &reqwest::Client,
    base_url: &str,
    job_no: &str,
    password: &str,
) -> Result<String, String> {
    let response = client
        .post(format!("{base_url}/api/v1/auth/login"))
        .json(&LoginRequest {
            job_no: job_no.to_owned(),
            password: password.to_owned(),
        })
        .send()
        .await
        .map_err(|e| format!("login request: {e}"))?;
    let status = response.status();
    if status != StatusCode::OK {
        let body = response.text().await.unwrap_or_default();
        return Err(format!("login answered {status}: {body}"));
    }
    let login: LoginResponse = response
        .json()
        .await
        .map_err(|e| format!("login answer: {e}"))?;
    Ok(login.token)
}

/// Checks the status and parses the JSON body; panics with the body otherwise.
pub async fn expect_json<T: DeserializeOwned>(response: Response, status: StatusCode) -> T {
    let got = response.status();
    let url = response.url().clone();
    let body = response.text().await.expect("response body");
    assert_eq!(
        got, status,
        "{url} answered {got}, expected {status}: {body}"
    );
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{url} answered a body that does not parse ({e}): {body}"))
}

/// Checks that the response is the error `status` with `code`, and returns it.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> ErrorDetail {
    let body: ErrorBody = expect_json(response, status).await;
    assert_eq!(body.error.code, code, "error code of {body:?}");
    assert!(
        !body.error.message.is_empty(),
        "error without a message: {body:?}"
    );
    body.error
}
