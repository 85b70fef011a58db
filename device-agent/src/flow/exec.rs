//! [`FlowExecutor`]: the [`Executor`] that runs each task as its flow on a
//! real phone, chosen by the installed app version.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tracing::{debug, info, info_span, warn, Instrument};
use youmi_protocol::delivery::{Delivery, DeliveryOutcome};
use youmi_protocol::{AssignedTask, TaskError, TaskKind, TaskPayload};

use super::evidence;
use super::failure::{Failure, Stop};
use super::run::{Binding, Places, Run};
use super::FlowSet;
use crate::calls::{status_of, Calls, DEFAULT_CALL_WAIT};
use crate::executor::{BoxFuture, Executor, TaskContext, TaskFailure};
use crate::phone::{Phone, PhoneStatus};

/// The WeCom package, the app the built-in flows drive.
pub const WECOM_PACKAGE: &str = "com.tencent.wework";

/// How a [`FlowExecutor`] finds its app, media and evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowOptions {
    /// The package whose installed version picks the flow file; the flow
    /// files for other apps are ignored.
    pub app: String,
    /// Where message and Moments media are, one file per media id (the file
    /// name is the id). Without it, tasks with media fail with `media_unavailable`.
    pub media_dir: Option<PathBuf>,
    /// Where a failed step's UI dump and screenshot go, under a folder per
    /// task id. Without it, failures still describe the screen, but keep no files.
    pub evidence_dir: Option<PathBuf>,
    /// How long a task waits, without touching the phone, for a call that
    /// rings or is under way to end before it fails with `call_in_progress`
    /// (see [`crate::calls`]).
    pub call_wait: Duration,
}

impl Default for FlowOptions {
    fn default() -> Self {
        FlowOptions {
            app: WECOM_PACKAGE.to_owned(),
            media_dir: None,
            evidence_dir: None,
            call_wait: DEFAULT_CALL_WAIT,
        }
    }
}

/// Runs tasks on a phone through the flows of a [`FlowSet`].
pub struct FlowExecutor {
    /// The phone.
    phone: Arc<dyn Phone>,
    /// The flow files to choose from.
    flows: FlowSet,
    /// App, media and evidence places.
    options: FlowOptions,
    /// The phone's calls, shared with its watcher.
    calls: Calls,
}

impl std::fmt::Debug for FlowExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowExecutor")
            .field("phone", &self.phone.serial())
            .field("flows", &self.flows)
            .field("options", &self.options)
            .finish()
    }
}

impl FlowExecutor {
    /// An executor for `phone` with `flows`.
    pub fn new(phone: Arc<dyn Phone>, flows: FlowSet, options: FlowOptions) -> FlowExecutor {
        FlowExecutor {
            phone,
            flows,
            options,
            calls: Calls::new(),
        }
    }

    /// This executor sharing `calls` with the phone's watcher, which keeps
    /// the state fresh while a task runs and hangs up with `auto_hang_up`.
    pub fn with_calls(mut self, calls: Calls) -> FlowExecutor {
        self.calls = calls;
        self
    }

    /// What it knows of the phone's calls.
    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    /// The flow files it chooses from.
    pub fn flows(&self) -> &FlowSet {
        &self.flows
    }

    async fn run(
        &self,
        task: &AssignedTask,
        ctx: &TaskContext,
    ) -> Result<Option<Value>, TaskFailure> {
        match self.run_flow(task, ctx).await {
            // A retry that fails before its flow starts (the phone cannot be
            // read) still reports what the earlier attempts sent.
            Err(TaskFailure::Failed(error)) if !ctx.earlier_marks().is_empty() => {
                let Ok(payload) = TaskPayload::parse(task.kind, &task.payload) else {
                    return Err(TaskFailure::Failed(error));
                };
                let marks = crate::delivery::latest(ctx.earlier_marks());
                let list = crate::delivery::report(&payload, &marks, |_| {
                    (DeliveryOutcome::Failed, Some(error.code.clone()))
                });
                Err(TaskFailure::FailedWithEvidence {
                    error,
                    evidence: json!({ "deliveries": list }),
                })
            }
            other => other,
        }
    }

    async fn run_flow(
        &self,
        task: &AssignedTask,
        ctx: &TaskContext,
    ) -> Result<Option<Value>, TaskFailure> {
        let payload = TaskPayload::parse(task.kind, &task.payload)
            .map_err(|error| TaskFailure::failed("invalid_payload", error.to_string(), false))?;
        let app = self.options.app.as_str();
        let version = match self.phone.app_version(app).await {
            Ok(Some(version)) => version,
            Ok(None) => {
                return Err(TaskFailure::failed(
                    "app_not_installed",
                    format!("{app} is not installed on the phone"),
                    false,
                ))
            }
            Err(error) => {
                return Err(TaskFailure::failed(
                    error.code(),
                    format!("cannot read the installed version of {app}: {error}"),
                    error.retryable(),
                ))
            }
        };
        let Some(file) = self.flows.for_version(app, &version) else {
            return Err(TaskFailure::failed(
                "unsupported_app_version",
                format!(
                    "{app} {version} is installed, but no flow file covers it (the flow files cover: {}); add a flow file for it to the flows directory",
                    self.flows.coverage(app)
                ),
                false,
            ));
        };
        let Some(steps) = file.flows.get(&task.kind) else {
            return Err(TaskFailure::failed(
                "flow_missing",
                format!(
                    "{} (for {app} {}) has no flow for {} tasks",
                    file.source,
                    file.versions(),
                    task.kind
                ),
                false,
            ));
        };
        info!(flow_file = %file.source, app_version = %version, "running the flow");
        let places = Places {
            media_dir: self.options.media_dir.as_deref(),
            evidence_dir: self.options.evidence_dir.as_deref(),
        };
        let mut run = Run::new(
            self.phone.as_ref(),
            file,
            task,
            &payload,
            ctx,
            &version,
            places,
        );
        run.total = run.count(steps, Binding::default());
        run.mind_calls(&self.calls, self.options.call_wait);
        let place = task.kind.as_str();
        let mut outcome = run.run_task(place, steps).await;
        if outcome.is_ok() {
            // The last action may have brought up a warning no step read.
            outcome = run.look_after().await;
        }
        match outcome {
            Ok(()) => self.finished(&run, &payload, task.kind),
            Err(Stop::Cancelled) => {
                info!(steps_done = run.done, "cancelled between steps");
                Err(TaskFailure::Cancelled)
            }
            Err(Stop::Failed(failure)) => {
                let mut evidence = evidence::collect(&run.scene(), &failure).await;
                evidence["deliveries"] = json!(deliveries(&run, &payload, Some(&failure.code)));
                let error = TaskError {
                    code: failure.code.clone(),
                    message: describe(&failure, &evidence, &run),
                    retryable: failure.retryable,
                };
                warn!(code = %error.code, retryable = error.retryable, "the flow failed: {}", error.message);
                Err(TaskFailure::FailedWithEvidence { error, evidence })
            }
        }
    }

    /// The result of a flow that ran to its end.
    fn finished(
        &self,
        run: &Run<'_>,
        payload: &TaskPayload,
        kind: TaskKind,
    ) -> Result<Option<Value>, TaskFailure> {
        let deliveries = deliveries(run, payload, None);
        let mut result = json!({
            "flow_file": run.file().source(),
            "app_version": run.version(),
            "steps": run.done,
            "deliveries": deliveries,
        });
        if kind == TaskKind::MassSend {
            let skipped: Vec<&Value> = run.skipped.iter().map(|s| &s.entry).collect();
            result["reached"] = json!(run.reached);
            result["skipped"] = json!(skipped);
            if run.reached == 0 {
                if let Some(first) = run.skipped.first() {
                    let failure = &first.failure;
                    let error = TaskError {
                        code: failure.code.clone(),
                        message: format!(
                            "no recipient could be sent to ({} skipped); the first: {}",
                            run.skipped.len(),
                            failure.message
                        ),
                        retryable: failure.retryable,
                    };
                    warn!(code = %error.code, "the mass send reached nobody");
                    return Err(TaskFailure::FailedWithEvidence {
                        error,
                        evidence: result,
                    });
                }
            }
        }
        // Nothing known sent and something that may have been: a person
        // must look before anything more goes to these customers.
        let sent = deliveries
            .iter()
            .any(|d| d.outcome == DeliveryOutcome::Sent);
        let uncertain = deliveries
            .iter()
            .filter(|d| d.outcome == DeliveryOutcome::Uncertain)
            .count();
        if !sent && uncertain > 0 {
            let error = TaskError {
                code: DELIVERY_UNCERTAIN.to_owned(),
                message: format!(
                    "{uncertain} of {} may have been sent by an earlier attempt whose send tap was never confirmed, and the chat cannot tell; they were not sent again: check the phone",
                    deliveries.len()
                ),
                retryable: false,
            };
            warn!(code = %error.code, "{}", error.message);
            return Err(TaskFailure::FailedWithEvidence {
                error,
                evidence: result,
            });
        }
        info!(steps = run.done, "the flow finished");
        Ok(Some(result))
    }
}

/// A call state read at most this long ago is what the heartbeat reports
/// without asking the phone again.
const CALL_STATE_FRESH: Duration = Duration::from_secs(3);

/// The error code of a task none of whose units is known sent, with some
/// that may have been: not retried, a person looks.
pub const DELIVERY_UNCERTAIN: &str = "delivery_uncertain";

/// Every unit of the task with its outcome: the marks say what was sent (in
/// any attempt) or may have been; a recipient skipped by its code is
/// `skipped`; the rest is `failed` with `failure` (the attempt failed before
/// them), or `skipped` when the flow ran to its end without them.
fn deliveries(run: &Run<'_>, payload: &TaskPayload, failure: Option<&str>) -> Vec<Delivery> {
    crate::delivery::report(payload, &run.marks, |unit| {
        if let Some(code) = run.skipped_units.get(&unit.key) {
            return (DeliveryOutcome::Skipped, Some(code.clone()));
        }
        match failure {
            Some(code) => (DeliveryOutcome::Failed, Some(code.to_owned())),
            None => (DeliveryOutcome::Skipped, None),
        }
    })
}

/// The failure's message with the step it happened at and what the screen showed.
fn describe(failure: &Failure, evidence: &Value, run: &Run<'_>) -> String {
    let mut message = failure.message.clone();
    if let Some(at) = &failure.at {
        message.push_str(&format!(
            "; at step {} `{}` of {} in {} ({})",
            at.index + 1,
            at.name,
            at.place,
            run.file().source(),
            at.path
        ));
    }
    if let Some(unit) = &failure.unit {
        message.push_str(&format!(", for {}", unit.label));
    }
    let texts: Vec<&str> = evidence["screen"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if texts.is_empty() {
        message.push_str("; the screen was not read");
    } else {
        message.push_str("; the screen showed: ");
        message.push_str(&texts.join(" | "));
    }
    message
}

impl Executor for FlowExecutor {
    fn execute<'a>(
        &'a self,
        task: &'a AssignedTask,
        ctx: &'a TaskContext,
    ) -> BoxFuture<'a, Result<Option<Value>, TaskFailure>> {
        let span = info_span!(
            "flow",
            task_id = task.id,
            kind = %task.kind,
            attempt = task.attempt,
            serial = self.phone.serial()
        );
        Box::pin(self.run(task, ctx).instrument(span))
    }

    fn set_do_not_disturb<'a>(&'a self, on: bool) -> BoxFuture<'a, Result<bool, TaskFailure>> {
        Box::pin(async move {
            let failure = |error: crate::phone::PhoneError| {
                TaskFailure::failed(
                    error.code(),
                    format!("cannot set do-not-disturb: {error}"),
                    error.retryable(),
                )
            };
            let before = self.phone.do_not_disturb().await.map_err(failure)?;
            if before != on {
                self.phone.set_do_not_disturb(on).await.map_err(failure)?;
            }
            Ok(before)
        })
    }

    fn show_countdown<'a>(&'a self, seconds: u32) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let text = format!("优米将在 {seconds} 秒后开始操作这台手机，请勿触碰屏幕");
            if let Err(error) = self.phone.notify(&text).await {
                warn!(%error, "cannot show the countdown on the phone");
            }
        })
    }

    fn status(&self) -> BoxFuture<'_, PhoneStatus> {
        Box::pin(async move {
            let mut status = self.phone.status().await.unwrap_or_else(|error| {
                // The heartbeat goes out without the phone's state; a phone
                // that stays unreachable fails its tasks, which say why.
                debug!(%error, "cannot read the phone's state for the heartbeat");
                PhoneStatus::default()
            });
            // While a task runs the runner and the watcher keep the call
            // state fresh; otherwise the heartbeat reads it.
            status.call = match self.calls.latest_within(CALL_STATE_FRESH) {
                Some(call) => Some(call),
                None => self
                    .calls
                    .read(self.phone.as_ref())
                    .await
                    .map(|state| status_of(&state)),
            };
            // What the devices page shows beside the phone's own state.
            status.wecom_version = self.phone.app_version(WECOM_PACKAGE).await.ok().flatten();
            status.dnd = self.phone.do_not_disturb().await.ok();
            status
        })
    }
}
