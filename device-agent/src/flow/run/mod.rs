//! Running one task's flow on a phone: the steps in order, the loops over
//! recipients, items and media, the screen reads that watch for interrupts,
//! and failures that say which step failed and what the screen showed.
//!
//! # Layout
//! - `bind`: the loop variables ([`Binding`]) and the value lookup of templates.
//! - `screen`: reading the screen (interrupts, dialogs) and locating a step's target.
//! - `launch`: the `launch` step and the BACK and relaunch budget it spends.
//! - `act`: what the step types that touch the phone do.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tracing::{debug, info, info_span, warn, Instrument};
use youmi_protocol::task::Item;
use youmi_protocol::task_error::CALL_IN_PROGRESS;
use youmi_protocol::{AssignedTask, TaskPayload};

use super::evidence;
use super::failure::{FailedUnit, Failure, Position, Stop};
use super::file::{render, Action, FlowFile, Step, NOT_SENT};
use crate::calls::{Calls, CALL_WAIT_POLL};
use crate::delivery::{DeliveryMark, Mark, UnitKey};
use crate::executor::{BoxFuture, TaskContext};
use crate::phone::{Phone, Selector, UiNode, UiTree};

mod act;
mod bind;
mod launch;
mod screen;

pub(crate) use bind::Binding;
use bind::{item_type, number, unit_key};
use launch::Spent;

/// A recipient a mass send skipped.
#[derive(Debug, Clone)]
pub(crate) struct Skipped {
    /// The report entry: recipient, code, message, evidence.
    pub entry: Value,
    /// The failure itself.
    pub failure: Failure,
}

/// What the runner needs besides the flow: where media and evidence live.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Places<'a> {
    /// Media files, named by media id.
    pub media_dir: Option<&'a Path>,
    /// Failure evidence goes under `<evidence_dir>/<task_id>/`.
    pub evidence_dir: Option<&'a Path>,
}

/// One task's run through its flow.
pub(crate) struct Run<'a> {
    /// The phone.
    phone: &'a dyn Phone,
    /// The flow file in use.
    file: &'a FlowFile,
    /// The task.
    task: &'a AssignedTask,
    /// Its parsed payload.
    payload: &'a TaskPayload,
    /// Progress and cancellation.
    ctx: &'a TaskContext,
    /// The installed app version.
    version: &'a str,
    /// Where media and evidence live.
    places: Places<'a>,
    /// Steps begun so far.
    pub done: u32,
    /// Steps in all (as counted before the start).
    pub total: u32,
    /// The last screen read, for failures and evidence.
    pub last_tree: Option<UiTree>,
    /// Nodes `find` stored, by name.
    stored: HashMap<String, UiNode>,
    /// Media already pushed in this run: media id -> path on the phone.
    pushed: HashMap<String, String>,
    /// Popups dismissed so far.
    dismissals: u32,
    /// What `launch` steps spent since the start screen was last reached.
    spent: Spent,
    /// What the running step looks for: a dialog showing one of these is
    /// the one the step expects (a confirmation it taps), not an unknown one.
    expected: Vec<Selector>,
    /// The flows and procedures being run, with the step index in each.
    frames: Vec<(String, usize)>,
    /// Mass-send recipients that were sent to.
    pub reached: u32,
    /// Mass-send recipients that were skipped.
    pub skipped: Vec<Skipped>,
    /// The latest delivery mark of each unit: the earlier attempts' and this
    /// one's (see `crate::delivery`).
    pub marks: BTreeMap<UnitKey, DeliveryMark>,
    /// Units not tried because their recipient was skipped, with its code.
    pub skipped_units: BTreeMap<UnitKey, String>,
    /// The phone's calls and how long to wait for one to end; `None`: calls
    /// are not looked at.
    calls: Option<(&'a Calls, Duration)>,
}

/// What to do about a unit, from the earlier attempts' marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan<'f> {
    /// Nothing is known of it: do it.
    Run,
    /// It was sent: not again.
    Done,
    /// Its tap was not confirmed, and this procedure tells whether it arrived.
    Check(&'f str),
    /// Its tap was not confirmed and nothing can tell: not again.
    Uncertain,
}

impl<'a> Run<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        phone: &'a dyn Phone,
        file: &'a FlowFile,
        task: &'a AssignedTask,
        payload: &'a TaskPayload,
        ctx: &'a TaskContext,
        version: &'a str,
        places: Places<'a>,
    ) -> Run<'a> {
        Run {
            phone,
            file,
            task,
            payload,
            ctx,
            version,
            places,
            done: 0,
            total: 0,
            last_tree: None,
            stored: HashMap::new(),
            pushed: HashMap::new(),
            dismissals: 0,
            spent: Spent::default(),
            expected: Vec::new(),
            frames: Vec::new(),
            reached: 0,
            skipped: Vec::new(),
            marks: crate::delivery::latest(ctx.earlier_marks()),
            skipped_units: BTreeMap::new(),
            calls: None,
        }
    }

    /// The flow file in use.
    pub(crate) fn file(&self) -> &'a FlowFile {
        self.file
    }

    /// The installed app version.
    pub(crate) fn version(&self) -> &'a str {
        self.version
    }

    /// What the evidence of a failure is gathered from.
    pub(crate) fn scene(&self) -> evidence::Scene<'_> {
        evidence::Scene {
            phone: self.phone,
            last_tree: self.last_tree.as_ref(),
            flow_file: self.file.source(),
            app_version: self.version,
            evidence_dir: self.places.evidence_dir,
            task: self.task,
        }
    }

    /// Has the run wait, before each step that touches the phone, while a
    /// call rings or is under way, for at most `bound` each time.
    pub(crate) fn mind_calls(&mut self, calls: &'a Calls, bound: Duration) {
        self.calls = Some((calls, bound));
    }

    /// Waits, touching nothing, while a phone call rings or is under way
    /// (see `crate::calls`); called before every step that touches the
    /// phone and before `launch` starts the app again or backs out. Returns
    /// how long it waited: after a wait the caller reads the screen again.
    /// A call that outlasts the bound fails the task with `call_in_progress`
    /// (retryable).
    async fn hold_for_call(&self) -> Result<Duration, Stop> {
        let Some((calls, bound)) = self.calls else {
            return Ok(Duration::ZERO);
        };
        let waited = tokio::select! {
            waited = calls.wait_until_free(self.phone, bound, CALL_WAIT_POLL) => waited,
            () = self.ctx.cancelled() => return Err(Stop::Cancelled),
        };
        waited.map_err(|call| {
            warn!(call = ?call.status, waited_s = call.waited.as_secs(), "the call outlasted the wait: the task fails, to be retried");
            Failure::new(
                CALL_IN_PROGRESS,
                format!(
                    "a phone call was still {} after {:.0} s, the longest the agent waits before touching the phone; nothing was tapped or typed while it went on",
                    match call.status {
                        youmi_protocol::CallStatus::Ringing => "ringing",
                        _ => "under way",
                    },
                    call.waited.as_secs_f64()
                ),
                true,
            )
            .into()
        })
    }

    /// Counts the steps `steps` will run for this task, loops unrolled and
    /// conditions applied, so progress can say "3 of 12".
    pub(crate) fn count(&self, steps: &[Step], binding: Binding<'a>) -> u32 {
        let mut total: u32 = 0;
        for step in steps {
            if !self.holds(step, binding) {
                continue;
            }
            let n = match &step.action {
                Action::Call(procedure) => self.count_procedure(procedure, binding),
                // The screen decides which case runs: count the longest.
                Action::Branch { .. } => step
                    .action
                    .called()
                    .into_iter()
                    .map(|procedure| self.count_procedure(procedure, binding))
                    .max()
                    .unwrap_or(0)
                    .saturating_add(1),
                Action::ForEachRecipient { procedure, .. } => self.count_runs(
                    self.recipients()
                        .iter()
                        .enumerate()
                        .map(|(i, contact)| Binding {
                            recipient: Some((i, contact)),
                            ..binding
                        })
                        .filter(|inner| !self.recipient_settled(*inner))
                        .map(|inner| (procedure.as_str(), inner)),
                ),
                Action::ForEachItem {
                    text,
                    image,
                    link,
                    file,
                } => self
                    .items()
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let inner = Binding {
                            item: Some((i, item)),
                            ..binding
                        };
                        let name = item_procedure(item, text, image, link, file);
                        let steps = self.count_procedure(name, inner);
                        match self.plan(unit_key(inner), self.file.check_of(name)) {
                            Plan::Run => steps,
                            Plan::Check(check) => {
                                steps.saturating_add(self.count_procedure(check, inner))
                            }
                            Plan::Done | Plan::Uncertain => 0,
                        }
                    })
                    .fold(0u32, u32::saturating_add),
                Action::ForEachMedia(procedure) => {
                    self.count_runs(self.media_ids().iter().enumerate().map(|(i, id)| {
                        let inner = Binding {
                            media: Some((i, id.as_str())),
                            ..binding
                        };
                        (procedure.as_str(), inner)
                    }))
                }
                Action::ForEachTag(procedure) => {
                    self.count_runs(self.tags().iter().enumerate().map(|(i, tag)| {
                        let inner = Binding {
                            tag: Some((i, tag.as_str())),
                            ..binding
                        };
                        (procedure.as_str(), inner)
                    }))
                }
                _ => 1,
            };
            total = total.saturating_add(n);
        }
        total
    }

    /// The steps of every run of a loop: each run is a procedure and its binding.
    fn count_runs<'s>(&self, runs: impl Iterator<Item = (&'s str, Binding<'a>)>) -> u32 {
        runs.map(|(procedure, binding)| self.count_procedure(procedure, binding))
            .fold(0u32, u32::saturating_add)
    }

    fn count_procedure(&self, name: &str, binding: Binding<'a>) -> u32 {
        self.file
            .procedures
            .get(name)
            .map_or(0, |steps| self.count(steps, binding))
    }

    /// Runs `steps` (the flow or procedure `place`).
    pub(crate) fn run_steps<'s>(
        &'s mut self,
        place: &'s str,
        steps: &'a [Step],
        binding: Binding<'a>,
    ) -> BoxFuture<'s, Result<(), Stop>> {
        Box::pin(async move {
            for (index, step) in steps.iter().enumerate() {
                if !self.holds(step, binding) {
                    debug!(step = %step.name, "skipped: its condition does not hold");
                    continue;
                }
                self.frames.push((place.to_owned(), index));
                let result = self.run_step(place, index, step, binding).await;
                self.frames.pop();
                result?;
            }
            Ok(())
        })
    }

    async fn run_step(
        &mut self,
        place: &str,
        index: usize,
        step: &'a Step,
        binding: Binding<'a>,
    ) -> Result<(), Stop> {
        match &step.action {
            Action::Call(procedure) => {
                let steps = self.procedure(procedure)?;
                self.run_steps(procedure, steps, binding).await
            }
            Action::ForEachRecipient {
                procedure,
                skip_codes,
            } => {
                let steps = self.procedure(procedure)?;
                for (i, contact) in self.recipients().iter().enumerate() {
                    let inner = Binding {
                        recipient: Some((i, contact)),
                        ..binding
                    };
                    if self.recipient_settled(inner) {
                        info!(
                            recipient = i + 1,
                            "an earlier attempt sent (or may have sent) every item to this recipient: not sent again"
                        );
                        if self.recipient_reached(inner) {
                            self.reached += 1;
                        }
                        continue;
                    }
                    let start = self.done;
                    let planned = self.count(steps, inner);
                    let span = info_span!(
                        "recipient",
                        number = i + 1,
                        name = contact.name.as_deref().unwrap_or("")
                    );
                    match self
                        .run_steps(procedure, steps, inner)
                        .instrument(span)
                        .await
                    {
                        Ok(()) => {
                            if self.recipient_reached(inner) {
                                self.reached += 1;
                            }
                        }
                        Err(Stop::Failed(failure))
                            if !failure.interrupt && skip_codes.contains(&failure.code) =>
                        {
                            warn!(recipient = i + 1, code = %failure.code, "recipient skipped: {}", failure.message);
                            for unit in self.recipient_units(inner) {
                                if !self.marks.contains_key(&unit) {
                                    self.skipped_units.insert(unit, failure.code.clone());
                                }
                            }
                            let evidence = super::evidence::collect(&self.scene(), &failure).await;
                            self.skipped.push(Skipped {
                                entry: json!({
                                    "recipient": contact,
                                    "code": failure.code,
                                    "message": failure.message,
                                    "evidence": evidence,
                                }),
                                failure: *failure,
                            });
                            // The rest of this recipient's steps will not run.
                            self.done = start.saturating_add(planned).max(self.done);
                        }
                        Err(stop) => return Err(stop),
                    }
                }
                Ok(())
            }
            Action::ForEachItem {
                text,
                image,
                link,
                file,
            } => {
                for (i, item) in self.items().iter().enumerate() {
                    let name = item_procedure(item, text, image, link, file);
                    let steps = self.procedure(name)?;
                    let inner = Binding {
                        item: Some((i, item)),
                        ..binding
                    };
                    let key = unit_key(inner);
                    match self.plan(key, self.file.check_of(name)) {
                        Plan::Run => {}
                        Plan::Done => {
                            info!(item = i + 1, "sent by an earlier attempt: not sent again");
                            continue;
                        }
                        Plan::Uncertain => {
                            warn!(
                                item = i + 1,
                                "an earlier attempt's send tap of this item was never confirmed, and the flow cannot check the chat: reported uncertain, not sent again"
                            );
                            continue;
                        }
                        Plan::Check(check) => {
                            if self.check_unit(check, key, inner).await? {
                                continue;
                            }
                        }
                    }
                    self.run_unit(name, steps, inner, key).await?;
                }
                Ok(())
            }
            Action::ForEachMedia(procedure) => {
                let steps = self.procedure(procedure)?;
                for (i, id) in self.media_ids().iter().enumerate() {
                    let inner = Binding {
                        media: Some((i, id.as_str())),
                        ..binding
                    };
                    self.run_steps(procedure, steps, inner).await?;
                }
                Ok(())
            }
            Action::ForEachTag(procedure) => {
                let steps = self.procedure(procedure)?;
                for (i, tag) in self.tags().iter().enumerate() {
                    let inner = Binding {
                        tag: Some((i, tag.as_str())),
                        ..binding
                    };
                    self.run_steps(procedure, steps, inner).await?;
                }
                Ok(())
            }
            Action::Branch { .. } => {
                let span = self.begin(step).await?;
                self.expected = self.looked_for(step, binding);
                let chosen = self.branch(step, binding).instrument(span).await;
                self.expected.clear();
                let procedure =
                    chosen.map_err(|stop| self.place_failure(stop, place, index, step, binding))?;
                let steps = self.procedure(procedure)?;
                self.run_steps(procedure, steps, binding).await
            }
            _ => {
                let span = self.begin(step).await?;
                let result = self.leaf(step, binding).instrument(span).await;
                result.map_err(|stop| self.place_failure(stop, place, index, step, binding))
            }
        }
    }

    /// Reports that `step` begins (its progress) and gives its span.
    async fn begin(&mut self, step: &Step) -> Result<tracing::Span, Stop> {
        self.ctx
            .step(&step.name, self.done, self.total)
            .await
            .map_err(|_| Stop::Cancelled)?;
        self.done += 1;
        Ok(info_span!("step", number = self.done, name = %step.name, kind = step.kind))
    }

    /// Runs the whole flow of the task. For a kind that does one thing (a
    /// Moments post, a friend request) the flow is one unit: a retry does
    /// not do it again once an earlier attempt did, and checks (or reports
    /// `uncertain`) when the earlier attempt's send tap was not confirmed.
    pub(crate) async fn run_task(&mut self, place: &'a str, steps: &'a [Step]) -> Result<(), Stop> {
        let units = crate::delivery::units(self.payload);
        let whole_task = matches!(units.as_slice(), [unit] if unit.key == UnitKey::default());
        if !whole_task {
            return self.run_steps(place, steps, Binding::default()).await;
        }
        let key = UnitKey::default();
        let file: &'a FlowFile = self.file;
        match self.plan(key, file.check_among(steps, &mut Vec::new())) {
            Plan::Run => {}
            Plan::Done => {
                info!("done by an earlier attempt: not done again");
                return Ok(());
            }
            Plan::Uncertain => {
                warn!("an earlier attempt's send tap was never confirmed, and the flow cannot check: reported uncertain, not done again");
                return Ok(());
            }
            Plan::Check(check) => {
                if self.check_unit(check, key, Binding::default()).await? {
                    return Ok(());
                }
            }
        }
        self.run_unit(place, steps, Binding::default(), key).await
    }

    /// Runs the steps of one unit and marks it sent once they all ran (a
    /// `sends` step has marked it already).
    async fn run_unit(
        &mut self,
        place: &'a str,
        steps: &'a [Step],
        binding: Binding<'a>,
        key: UnitKey,
    ) -> Result<(), Stop> {
        self.run_steps(place, steps, binding).await?;
        if !self.marks.get(&key).is_some_and(|m| m.mark.is_sent()) {
            self.mark(key, Mark::Sent, self.task.attempt).await?;
        }
        Ok(())
    }

    /// Runs a unit's check procedure after an unconfirmed send tap: true
    /// (and marked found) when the unit is there, false when the check says
    /// [`NOT_SENT`]; any other failure ends the task, and the unit stays
    /// unconfirmed for the next attempt.
    async fn check_unit(
        &mut self,
        check: &'a str,
        key: UnitKey,
        binding: Binding<'a>,
    ) -> Result<bool, Stop> {
        let steps = self.procedure(check)?;
        info!(
            ?key,
            check, "an earlier attempt's send tap was not confirmed: checking whether it arrived"
        );
        match self.run_steps(check, steps, binding).await {
            Ok(()) => {
                let attempt = self
                    .marks
                    .get(&key)
                    .map_or(self.task.attempt, |m| m.attempt);
                info!(?key, "it arrived: not sent again");
                self.mark(key, Mark::Found, attempt).await?;
                Ok(true)
            }
            Err(Stop::Failed(failure)) if failure.code == NOT_SENT && !failure.interrupt => {
                info!(?key, "it did not arrive: sending it");
                Ok(false)
            }
            Err(stop) => Err(stop),
        }
    }

    /// What to do about a unit, given the marks and the check its steps have.
    fn plan(&self, key: UnitKey, check: Option<&'a str>) -> Plan<'a> {
        match self.marks.get(&key) {
            None => Plan::Run,
            Some(mark) if mark.mark.is_sent() => Plan::Done,
            Some(_) => check.map_or(Plan::Uncertain, Plan::Check),
        }
    }

    /// The units of a mass-send recipient: one per item.
    fn recipient_units(&self, binding: Binding<'a>) -> Vec<UnitKey> {
        (0..self.items().len())
            .map(|i| UnitKey {
                recipient: binding.recipient.map(|(r, _)| number(r)),
                item: Some(number(i)),
            })
            .collect()
    }

    /// Whether an earlier attempt settled every item of the recipient: sent,
    /// or sent unconfirmed with no way to check. Such a recipient's chat is
    /// not even opened.
    fn recipient_settled(&self, binding: Binding<'a>) -> bool {
        let units = self.recipient_units(binding);
        !units.is_empty()
            && units.iter().zip(self.items()).all(|(unit, item)| {
                let name = self.item_procedure_name(item);
                matches!(
                    self.plan(*unit, name.and_then(|n| self.file.check_of(n))),
                    Plan::Done | Plan::Uncertain
                )
            })
    }

    /// Whether the recipient got at least one item (or has none to get).
    fn recipient_reached(&self, binding: Binding<'a>) -> bool {
        let units = self.recipient_units(binding);
        units.is_empty()
            || units
                .iter()
                .any(|unit| self.marks.get(unit).is_some_and(|m| m.mark.is_sent()))
    }

    /// The procedure the flow's item loop runs for `item`, if the flow has one.
    fn item_procedure_name(&self, item: &Item) -> Option<&'a str> {
        let file: &'a FlowFile = self.file;
        file.flows
            .get(&self.task.kind)
            .into_iter()
            .chain(file.procedures.values())
            .flatten()
            .find_map(|step| match &step.action {
                Action::ForEachItem {
                    text,
                    image,
                    link,
                    file,
                } => Some(item_procedure(item, text, image, link, file)),
                _ => None,
            })
    }

    /// Journals a delivery mark (fsynced) before the run goes on.
    async fn mark(&mut self, unit: UnitKey, mark: Mark, attempt: u32) -> Result<(), Stop> {
        let record = DeliveryMark {
            task_id: self.task.id,
            attempt,
            unit,
            mark,
        };
        self.ctx.mark(record).await.map_err(|error| {
            Failure::new(
                "journal_unwritable",
                format!("the agent cannot journal its progress ({error}); nothing more is sent"),
                false,
            )
        })?;
        debug!(?unit, ?mark, "delivery marked");
        self.marks.insert(unit, record);
        Ok(())
    }

    /// The recipient and item a binding is at, for a failure.
    fn failed_unit(&self, binding: Binding<'a>) -> Option<FailedUnit> {
        let key = unit_key(binding);
        let mut parts = Vec::new();
        if let Some((r, contact)) = binding.recipient {
            let who = contact
                .name
                .clone()
                .or_else(|| contact.external_id.clone())
                .or_else(|| contact.customer_id.map(|id| format!("customer {id}")))
                .unwrap_or_default();
            parts.push(format!("recipient {} ({who})", r + 1));
        }
        if let Some((i, item)) = binding.item {
            parts.push(format!("item {} ({})", i + 1, item_type(item)));
        }
        if parts.is_empty() {
            return None;
        }
        Some(FailedUnit {
            key,
            to: binding.recipient.map(|(_, c)| c.clone()),
            label: parts.join(", "),
        })
    }

    /// Names the step in a failure that does not name one yet.
    fn place_failure(
        &self,
        stop: Stop,
        place: &str,
        index: usize,
        step: &Step,
        binding: Binding<'a>,
    ) -> Stop {
        match stop {
            Stop::Failed(mut failure) if failure.at.is_none() => {
                failure.unit = self.failed_unit(binding);
                let path = self
                    .frames
                    .iter()
                    .map(|(name, i)| format!("{name}#{}", i + 1))
                    .collect::<Vec<_>>()
                    .join(" > ");
                let kind = if self.file.procedures.contains_key(place)
                    && !self.file.flows.keys().any(|k| k.as_str() == place)
                {
                    "procedure"
                } else {
                    "flow"
                };
                failure.at = Some(Position {
                    place: format!("{kind} {place}"),
                    index,
                    name: step.name.clone(),
                    path,
                    progress: self.done,
                });
                Stop::Failed(failure)
            }
            other => other,
        }
    }

    fn procedure(&self, name: &str) -> Result<&'a [Step], Stop> {
        let file: &'a FlowFile = self.file;
        file.procedures.get(name).map(Vec::as_slice).ok_or_else(|| {
            Failure::new(
                "flow_error",
                format!("{} has no procedure `{name}`", file.source),
                false,
            )
            .into()
        })
    }

    /// Waits `duration`, or less when the task is cancelled.
    async fn pause(&self, duration: Duration) -> Result<(), Stop> {
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(()),
            () = self.ctx.cancelled() => Err(Stop::Cancelled),
        }
    }

    /// A failure with the step's own code and message when it has them.
    fn step_failure(
        &self,
        step: &Step,
        binding: Binding<'a>,
        default_code: &str,
        default_message: String,
        default_retryable: bool,
    ) -> Stop {
        let code = step.on_fail.code.as_deref().unwrap_or(default_code);
        let message = match &step.on_fail.message {
            Some(template) => match render(template, &self.lookup(binding)) {
                Ok(message) => format!("{message} ({default_message})"),
                Err(_) => default_message,
            },
            None => default_message,
        };
        // A code of the file's own (contact_not_found, say) is a fact about
        // the task, which a rerun will not change, unless the file says so.
        let retryable = step
            .on_fail
            .retryable
            .unwrap_or(if step.on_fail.code.is_some() {
                false
            } else {
                default_retryable
            });
        Failure::new(code, message, retryable).into()
    }

    async fn leaf(&mut self, step: &'a Step, binding: Binding<'a>) -> Result<(), Stop> {
        debug!(kind = step.kind, "step");
        self.expected = self.looked_for(step, binding);
        let result = self.act(step, binding).await;
        self.expected.clear();
        result
    }
}

/// The procedure `for_each_item` runs for `item`.
fn item_procedure<'s>(
    item: &Item,
    text: &'s str,
    image: &'s str,
    link: &'s str,
    file: &'s str,
) -> &'s str {
    match item {
        Item::Text { .. } => text,
        Item::Image { .. } => image,
        Item::Link { .. } => link,
        Item::File { .. } => file,
    }
}
