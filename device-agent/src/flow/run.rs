//! Running one task's flow on a phone: the steps in order, the loops over
//! recipients, items and media, the screen reads that watch for interrupts,
//! and failures that say which step failed and what the screen showed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn, Instrument};
use youmi_protocol::task::{Contact, Item};
use youmi_protocol::task_error::{CALL_IN_PROGRESS, UNEXPECTED_DIALOG};
use youmi_protocol::{AssignedTask, TaskPayload};

use super::dialog::{self, Dialog, RISK_PHRASES};
use super::evidence;
use super::failure::{phone_error, shorten, FailedUnit, Failure, Position, Stop};
use super::file::{
    render, Action, Aim, Condition, FlowFile, InterruptAction, Locate, Near, SelectorTemplate,
    Step, NOT_SENT, RISK_CONTROL,
};
use crate::calls::{Calls, CALL_WAIT_POLL};
use crate::delivery::{DeliveryMark, Mark, UnitKey};
use crate::executor::{BoxFuture, TaskContext};
use crate::phone::{Bounds, Key, Phone, Point, Selector, UiNode, UiTree};

/// How long to let a dismissed popup go away before reading the screen again.
const DISMISS_SETTLE: Duration = Duration::from_millis(300);
/// How many times in a row one read of the screen may dismiss popups before
/// the popup counts as one that will not go away.
const MAX_DISMISS_IN_A_ROW: u32 = 3;
/// How many popups one task may dismiss in all.
const MAX_DISMISSALS: u32 = 20;
/// How often `launch` reads the screen while it backs out to the start screen.
const LAUNCH_POLL: Duration = Duration::from_millis(300);
/// How many BACK presses in a row may leave the screen as it was before
/// `launch` concludes that BACK does nothing there and stops.
const FUTILE_BACKS: u32 = 2;
/// How long `type` waits for the typed text to show on screen.
const TYPE_CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// How often `type` reads the screen while it waits.
const TYPE_CHECK_POLL: Duration = Duration::from_millis(300);
/// KEYCODE_MOVE_END: puts the cursor after the last character before `clear` deletes.
const KEY_MOVE_END: u16 = 123;
/// The most characters `clear` deletes (one key press each).
const MAX_CLEAR_CHARS: usize = 500;

/// The loop variables in effect.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Binding<'p> {
    /// The mass-send recipient, and its index.
    recipient: Option<(usize, &'p Contact)>,
    /// The message item, and its index.
    item: Option<(usize, &'p Item)>,
    /// The Moments media id, and its index.
    media: Option<(usize, &'p str)>,
    /// The tag (`tags` or `visible_to_tags`), and its index.
    tag: Option<(usize, &'p str)>,
}

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

/// What one `launch` step may spend of the attempt's budget: the step's
/// `max_backs` and `max_relaunches`.
#[derive(Debug, Clone, Copy)]
struct Budget {
    /// BACK presses.
    backs: u32,
    /// Starts of the app after it left the front.
    relaunches: u32,
}

/// What an attempt's `launch` steps spent without reaching the start
/// screen. It is kept across the steps, so a launch that failed leaves a
/// later one of the same attempt (after a skipped recipient) nothing to spend:
/// a phone whose start screen the flow cannot recognise gets a handful of
/// BACK presses, not minutes of them. Reaching the start screen clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Spent {
    /// BACK presses.
    backs: u32,
    /// Starts of the app after it left the front (the step's own first
    /// start, and a `restart`, are not counted).
    relaunches: u32,
    /// What the last screen BACK was pressed on showed, for the failure.
    backed_out_of: Vec<String>,
}

/// "s" after a count other than one.
fn plural(count: u32) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
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
                self.ctx
                    .step(&step.name, self.done, self.total)
                    .await
                    .map_err(|_| Stop::Cancelled)?;
                self.done += 1;
                let span =
                    info_span!("step", number = self.done, name = %step.name, kind = step.kind);
                self.expected = self.looked_for(step, binding);
                let chosen = self.branch(step, binding).instrument(span).await;
                self.expected.clear();
                let procedure =
                    chosen.map_err(|stop| self.place_failure(stop, place, index, step, binding))?;
                let steps = self.procedure(procedure)?;
                self.run_steps(procedure, steps, binding).await
            }
            _ => {
                self.ctx
                    .step(&step.name, self.done, self.total)
                    .await
                    .map_err(|_| Stop::Cancelled)?;
                self.done += 1;
                let span =
                    info_span!("step", number = self.done, name = %step.name, kind = step.kind);
                let result = self.leaf(step, binding).instrument(span).await;
                result.map_err(|stop| self.place_failure(stop, place, index, step, binding))
            }
        }
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

    fn recipients(&self) -> &'a [Contact] {
        match self.payload {
            TaskPayload::MassSend { recipients, .. } => recipients,
            _ => &[],
        }
    }

    fn items(&self) -> &'a [Item] {
        match self.payload {
            TaskPayload::SendMessage { items, .. }
            | TaskPayload::MassSend { items, .. }
            | TaskPayload::SmartMarketing { items, .. } => items,
            _ => &[],
        }
    }

    fn media_ids(&self) -> &'a [String] {
        match self.payload {
            TaskPayload::MomentsPost { media_ids, .. } => media_ids,
            _ => &[],
        }
    }

    /// The tags a `for_each_tag` loop goes over: a new friend's `tags`, or the
    /// tags a Moments post is limited to.
    fn tags(&self) -> &'a [String] {
        match self.payload {
            TaskPayload::FriendAdd {
                tags: Some(tags), ..
            }
            | TaskPayload::MomentsPost {
                visible_to_tags: Some(tags),
                ..
            } => tags,
            _ => &[],
        }
    }

    /// Whether a step's condition holds.
    fn holds(&self, step: &Step, binding: Binding<'a>) -> bool {
        match &step.condition {
            None => true,
            Some(Condition::If(name)) => self
                .value(name, binding)
                .is_some_and(|value| !value.is_empty()),
            Some(Condition::Unless(name)) => self
                .value(name, binding)
                .is_none_or(|value| value.is_empty()),
        }
    }

    /// A template variable's value; `None` when the task has none.
    fn value(&self, name: &str, binding: Binding<'a>) -> Option<String> {
        fn contact_field(contact: &Contact, field: &str) -> Option<String> {
            match field {
                "name" => contact.name.clone(),
                "external_id" => contact.external_id.clone(),
                "customer_id" => contact.customer_id.map(|id| id.to_string()),
                _ => None,
            }
        }
        let (head, field) = name.split_once('.').unwrap_or((name, ""));
        let payload = self.payload;
        match (head, payload) {
            ("task", _) if field == "id" => Some(self.task.id.to_string()),
            ("app", _) if field == "version" => Some(self.version.to_owned()),
            ("to", _) if binding.recipient.is_some() => {
                binding.recipient.and_then(|(_, c)| contact_field(c, field))
            }
            (
                "to",
                TaskPayload::SendMessage { to, .. } | TaskPayload::SmartMarketing { to, .. },
            ) => contact_field(to, field),
            ("with", TaskPayload::DeleteChat { with }) => contact_field(with, field),
            ("from", TaskPayload::AcceptFriendRequest { from, .. }) => contact_field(from, field),
            ("marketing", TaskPayload::SmartMarketing { flow_id, step, .. }) => match field {
                "flow_id" => Some(flow_id.to_string()),
                "step" => Some(step.to_string()),
                _ => None,
            },
            ("recipient", TaskPayload::MassSend { recipients, .. }) => match field {
                "count" => Some(recipients.len().to_string()),
                "number" => binding.recipient.map(|(i, _)| (i + 1).to_string()),
                _ => None,
            },
            ("text", TaskPayload::MomentsPost { text, .. }) => Some(text.clone()),
            ("media_ids", TaskPayload::MomentsPost { media_ids, .. }) => Some(media_ids.join(",")),
            (
                "visible_to_tags",
                TaskPayload::MomentsPost {
                    visible_to_tags, ..
                },
            ) => visible_to_tags.as_ref().map(|tags| tags.join(",")),
            ("target", TaskPayload::FriendAdd { target, .. }) => match field {
                "phone" => target.phone.clone(),
                "wecom_id" => target.wecom_id.clone(),
                "query" => target.phone.clone().or_else(|| target.wecom_id.clone()),
                _ => None,
            },
            ("greeting", TaskPayload::FriendAdd { greeting, .. }) => greeting.clone(),
            (
                "remark",
                TaskPayload::FriendAdd { remark, .. }
                | TaskPayload::AcceptFriendRequest { remark, .. },
            ) => remark.clone(),
            ("tags", TaskPayload::FriendAdd { tags, .. }) => tags.as_ref().map(|t| t.join(",")),
            ("item", _) => {
                let (i, item) = binding.item?;
                match (field, item) {
                    ("number", _) => Some((i + 1).to_string()),
                    ("type", item) => Some(item_type(item).to_owned()),
                    ("text", Item::Text { text }) => Some(text.clone()),
                    ("url", Item::Link { url, .. }) => Some(url.clone()),
                    ("title", Item::Link { title, .. }) => Some(title.clone()),
                    ("description", Item::Link { description, .. }) => description.clone(),
                    ("media_id", Item::Image { media_id } | Item::File { media_id }) => {
                        Some(media_id.clone())
                    }
                    ("device_path", Item::Image { media_id } | Item::File { media_id }) => {
                        self.pushed.get(media_id).cloned()
                    }
                    ("device_name", Item::Image { media_id } | Item::File { media_id }) => {
                        self.pushed.get(media_id).map(|p| file_name(p).to_owned())
                    }
                    _ => None,
                }
            }
            ("tag", _) => {
                let (i, tag) = binding.tag?;
                match field {
                    "name" => Some(tag.to_owned()),
                    "number" => Some((i + 1).to_string()),
                    _ => None,
                }
            }
            ("media", _) => {
                let (i, id) = binding.media?;
                match field {
                    "id" => Some(id.to_owned()),
                    "number" => Some((i + 1).to_string()),
                    "device_path" => self.pushed.get(id).cloned(),
                    "device_name" => self.pushed.get(id).map(|p| file_name(p).to_owned()),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// A lookup for templates: a missing value fails the step.
    fn lookup(&self, binding: Binding<'a>) -> impl Fn(&str) -> Result<String, Stop> + '_ {
        move |name: &str| {
            self.value(name, binding).ok_or_else(|| {
                Failure::new(
                    "missing_value",
                    format!("the task gives no value for `{{{name}}}`, which this step needs"),
                    false,
                )
                .into()
            })
        }
    }

    fn selector(
        &self,
        template: &SelectorTemplate,
        binding: Binding<'a>,
    ) -> Result<Selector, Stop> {
        template.render(&self.lookup(binding))
    }

    fn near(
        &self,
        near: &Option<Near>,
        binding: Binding<'a>,
    ) -> Result<Option<(Selector, u32)>, Stop> {
        near.as_ref()
            .map(|n| Ok((self.selector(&n.anchor, binding)?, n.depth)))
            .transpose()
    }

    /// Waits `duration`, or less when the task is cancelled.
    async fn pause(&self, duration: Duration) -> Result<(), Stop> {
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(()),
            () = self.ctx.cancelled() => Err(Stop::Cancelled),
        }
    }

    /// Reads the screen, dealing with dialogs and interrupts first: a dialog
    /// that says a risk-control phrase ends the task with `risk_control`,
    /// whatever its buttons; a popup the file says to dismiss is dismissed
    /// and the screen read again; one it says to fail on ends the task; any
    /// other dialog ends it with `unexpected_dialog`, unless the running step
    /// looks for something in it.
    pub(crate) async fn dump(&mut self) -> Result<UiTree, Stop> {
        let mut in_a_row = 0;
        loop {
            let tree = self.phone.dump_ui().await.map_err(phone_error)?;
            self.last_tree = Some(tree.clone());
            let file: &'a FlowFile = self.file;
            let shown = dialog::find(&tree);
            if let Some(shown) = &shown {
                let phrases = RISK_PHRASES
                    .iter()
                    .copied()
                    .chain(file.risk_phrases.iter().map(String::as_str));
                if let Some(phrase) = shown.risk_phrase(&tree, phrases) {
                    let texts = shown.texts(&tree).join(" | ");
                    warn!(%phrase, dialog = %texts, "a risk-control warning is on screen");
                    let mut failure = Failure::new(
                        RISK_CONTROL,
                        format!(
                            "WeCom shows a risk-control warning for this account (“{phrase}” in the dialog “{texts}”): stop sending from it and have a person check it"
                        ),
                        false,
                    );
                    failure.interrupt = true;
                    return Err(failure.into());
                }
            }
            let Some(interrupt) = file.interrupts.iter().find(|i| i.matches(&tree)) else {
                if let Some(shown) = shown.filter(|d| !self.expects(&tree, d)) {
                    let texts = shown.texts(&tree).join(" | ");
                    warn!(dialog = %texts, "a dialog no interrupt recognises is on screen");
                    let mut failure = Failure::new(
                        UNEXPECTED_DIALOG,
                        format!(
                            "a dialog that no interrupt of the flow file recognises is on screen: “{texts}”; a person must look at the phone (the agent does not press BACK on a dialog it does not know)"
                        ),
                        false,
                    );
                    failure.interrupt = true;
                    return Err(failure.into());
                }
                return Ok(tree);
            };
            let fail = |message: String| -> Stop {
                let mut failure = Failure::new(&interrupt.code, message, interrupt.retryable);
                failure.interrupt = true;
                failure.into()
            };
            match &interrupt.action {
                InterruptAction::Fail => {
                    warn!(interrupt = %interrupt.name, code = %interrupt.code, "the app showed an interrupt that ends the task");
                    return Err(fail(interrupt.message.clone()));
                }
                InterruptAction::Dismiss(buttons) => {
                    in_a_row += 1;
                    self.dismissals += 1;
                    if in_a_row > MAX_DISMISS_IN_A_ROW || self.dismissals > MAX_DISMISSALS {
                        return Err(fail(format!(
                            "{} (it kept coming back after being dismissed)",
                            interrupt.message
                        )));
                    }
                    let Some(button) = buttons.iter().find_map(|s| tree.find(s)) else {
                        return Err(fail(format!(
                            "{} (none of its dismiss buttons is on screen)",
                            interrupt.message
                        )));
                    };
                    info!(interrupt = %interrupt.name, button = %button.text, "dismissing a popup");
                    self.phone
                        .tap(button.bounds.center())
                        .await
                        .map_err(phone_error)?;
                    self.pause(DISMISS_SETTLE).await?;
                }
            }
        }
    }

    /// Whether the running step looks for something inside `shown`: then the
    /// dialog is the step's own (a confirmation, a menu), not an unknown one.
    fn expects(&self, tree: &UiTree, shown: &Dialog) -> bool {
        (0..tree.nodes.len()).any(|index| {
            shown.contains(index) && self.expected.iter().any(|s| tree.is_match(s, index))
        })
    }

    /// The selectors `step` looks for, rendered for this task: its target,
    /// the target's anchor, its `fail_on`, what it asserts, `launch`'s home.
    fn looked_for(&self, step: &'a Step, binding: Binding<'a>) -> Vec<Selector> {
        let mut templates: Vec<&SelectorTemplate> = Vec::new();
        let locate = |locate: &'a Locate, out: &mut Vec<&'a SelectorTemplate>| {
            out.push(&locate.target);
            out.extend(locate.near.as_ref().map(|near| &near.anchor));
            out.extend(&locate.fail_on);
        };
        match &step.action {
            Action::Launch { home, .. } => templates.push(home),
            Action::Find { locate: l, .. } => locate(l, &mut templates),
            Action::Tap {
                aim: Aim::Find(l), ..
            }
            | Action::LongPress {
                aim: Aim::Find(l), ..
            }
            | Action::Clear { aim: Aim::Find(l) } => locate(l, &mut templates),
            Action::WaitFor { locate: l, .. } => locate(l, &mut templates),
            Action::Branch { cases, .. } => {
                templates.extend(cases.iter().map(|case| &case.present));
            }
            Action::Assert { selector, near, .. } => {
                templates.push(selector);
                templates.extend(near.as_ref().map(|near| &near.anchor));
            }
            _ => {}
        }
        // A selector that cannot be rendered fails the step itself, later.
        templates
            .into_iter()
            .filter_map(|t| self.selector(t, binding).ok())
            .collect()
    }

    /// Reads the screen before an action that does not read it itself (a
    /// key, a swipe, typing, a tap on a stored node), so that a dialog stops
    /// the task before the action lands on it.
    async fn look(&mut self) -> Result<(), Stop> {
        self.dump().await.map(drop)
    }

    /// Reads the screen once more after a flow's last step, so that a
    /// warning its last action brought up is not missed.
    pub(crate) async fn look_after(&mut self) -> Result<(), Stop> {
        self.expected.clear();
        self.look().await
    }

    /// Reads the screen until `target` shows (near `near`), or until the
    /// timeout; a `fail_on` node ends the search at once when it shows.
    /// With `scroll`, each read that does not show the target is followed
    /// by a swipe through the list, until the swipes run out or one changes
    /// nothing (the end of the list); then the reads go on until the timeout.
    async fn locate(&mut self, locate: &Locate, binding: Binding<'a>) -> Result<Located, Stop> {
        let target = self.selector(&locate.target, binding)?;
        let near = self.near(&locate.near, binding)?;
        let fail_on = locate
            .fail_on
            .iter()
            .map(|s| self.selector(s, binding))
            .collect::<Result<Vec<_>, _>>()?;
        let within = match locate.scroll.as_ref().and_then(|s| s.within.as_ref()) {
            Some(within) => Some(self.selector(within, binding)?),
            None => None,
        };
        let mut swipes = 0;
        let mut list_end = false;
        let mut before: Option<Vec<String>> = None;
        let deadline = Instant::now() + locate.timeout;
        loop {
            let tree = self.dump().await?;
            if let Some(node) = find(&tree, &target, near.as_ref()) {
                return Ok(Located::Found(node.clone()));
            }
            if let Some(shown) = fail_on.iter().find(|s| tree.find(s).is_some()) {
                return Ok(Located::FailOn(shown.clone()));
            }
            if let Some(scroll) = &locate.scroll {
                let (bounds, seen) = match list_area(&tree, within.as_ref()) {
                    Some((bounds, texts)) => (Some(bounds), Some(texts)),
                    None => (None, None),
                };
                if before.is_some() && before == seen {
                    if !list_end {
                        debug!(swipes, "the list did not move: its end is reached");
                    }
                    list_end = true;
                }
                if let (false, true, Some(bounds)) = (list_end, swipes < scroll.max, bounds) {
                    before = seen;
                    swipes += 1;
                    let (from, to) = scroll_gesture(bounds, scroll.down);
                    debug!(swipes, "scrolling for {target}");
                    self.phone
                        .swipe(from, to, scroll.duration)
                        .await
                        .map_err(phone_error)?;
                    self.pause(locate.poll).await?;
                    continue;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Located::Missing {
                    selector: target,
                    swipes,
                    list_end,
                });
            }
            self.pause(locate.poll.min(deadline - now)).await?;
        }
    }

    /// The node a tap, long press or clear acts on.
    async fn aim(&mut self, step: &Step, aim: &Aim, binding: Binding<'a>) -> Result<UiNode, Stop> {
        match aim {
            Aim::Stored(name) => self.stored.get(name).cloned().ok_or_else(|| {
                Failure::new(
                    "flow_error",
                    format!(
                        "no node is stored as `{name}` yet: the `find` that stores it has not run"
                    ),
                    false,
                )
                .into()
            }),
            Aim::Find(locate) => {
                let located = self.locate(locate, binding).await?;
                self.found(step, binding, locate, located)
            }
        }
    }

    /// The node a search found, or the step's failure.
    fn found(
        &self,
        step: &Step,
        binding: Binding<'a>,
        locate: &Locate,
        located: Located,
    ) -> Result<UiNode, Stop> {
        match located {
            Located::Found(node) => Ok(node),
            Located::Missing {
                selector,
                swipes,
                list_end,
            } => {
                let mut message = format!(
                    "{selector} did not appear within {:.1} s",
                    locate.timeout.as_secs_f64()
                );
                if locate.scroll.is_some() {
                    message.push_str(&format!(
                        " after {swipes} scroll swipe(s){}",
                        if list_end {
                            " (the end of the list was reached)"
                        } else {
                            ""
                        }
                    ));
                }
                Err(self.step_failure(step, binding, "element_not_found", message, true))
            }
            Located::FailOn(shown) => Err(self.step_failure(
                step,
                binding,
                "element_not_found",
                format!("{shown} appeared instead"),
                false,
            )),
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

    async fn act(&mut self, step: &'a Step, binding: Binding<'a>) -> Result<(), Stop> {
        let touches = matches!(
            step.action,
            Action::Launch { .. }
                | Action::Tap { .. }
                | Action::LongPress { .. }
                | Action::Clear { .. }
                | Action::Type { .. }
                | Action::Back
                | Action::Key(_)
                | Action::Swipe { .. }
        );
        if touches {
            self.hold_for_call().await?;
        }
        let blind = match &step.action {
            Action::Back | Action::Key(_) | Action::Swipe { .. } | Action::Type { .. } => true,
            Action::Tap { aim, .. } | Action::LongPress { aim, .. } | Action::Clear { aim } => {
                matches!(aim, Aim::Stored(_))
            }
            _ => false,
        };
        if blind {
            self.look().await?;
        }
        match &step.action {
            Action::Launch {
                home,
                restart,
                settle,
                timeout,
                max_backs,
                max_relaunches,
            } => {
                let budget = Budget {
                    backs: *max_backs,
                    relaunches: *max_relaunches,
                };
                self.launch(step, binding, home, *restart, *settle, *timeout, budget)
                    .await
            }
            Action::Find { locate, store } => {
                let node = self.aim(step, &Aim::Find(locate.clone()), binding).await?;
                self.stored.insert(store.clone(), node);
                Ok(())
            }
            Action::Tap { aim, store } => {
                let node = self.aim(step, aim, binding).await?;
                let sends = step.sends.is_some().then(|| unit_key(binding));
                if let Some(unit) = sends {
                    self.mark(unit, Mark::Sending, self.task.attempt).await?;
                }
                self.phone
                    .tap(node.bounds.center())
                    .await
                    .map_err(phone_error)?;
                if let Some(unit) = sends {
                    self.mark(unit, Mark::Sent, self.task.attempt).await?;
                }
                if let Some(store) = store {
                    self.stored.insert(store.clone(), node);
                }
                Ok(())
            }
            Action::LongPress { aim, hold } => {
                let node = self.aim(step, aim, binding).await?;
                self.phone
                    .long_press(node.bounds.center(), *hold)
                    .await
                    .map_err(phone_error)
            }
            Action::Clear { aim } => self.clear(step, aim, binding).await,
            Action::Type { text, check } => {
                let text = render(text, &self.lookup(binding))?;
                if text.is_empty() {
                    return Ok(());
                }
                self.phone.type_text(&text).await.map_err(phone_error)?;
                if *check {
                    self.check_typed(&text).await?;
                }
                Ok(())
            }
            Action::WaitFor {
                locate,
                gone,
                store,
            } => {
                if *gone {
                    return self.wait_gone(step, locate, binding).await;
                }
                let located = self.locate(locate, binding).await?;
                let node = self.found(step, binding, locate, located)?;
                if let Some(store) = store {
                    self.stored.insert(store.clone(), node);
                }
                Ok(())
            }
            Action::Assert {
                selector,
                near,
                present,
            } => {
                let selector = self.selector(selector, binding)?;
                let near = self.near(near, binding)?;
                let tree = self.dump().await?;
                let found = find(&tree, &selector, near.as_ref()).is_some();
                if found == *present {
                    Ok(())
                } else {
                    let what = if *present {
                        format!("{selector} is not on screen")
                    } else {
                        format!("{selector} is on screen")
                    };
                    Err(self.step_failure(step, binding, "assertion_failed", what, false))
                }
            }
            Action::Back => self.phone.key(Key::Back).await.map_err(phone_error),
            Action::Key(key) => self.phone.key(*key).await.map_err(phone_error),
            Action::Swipe { from, to, duration } => {
                let screen = match self.last_tree.as_ref().and_then(|t| t.nodes.first()) {
                    Some(root) if !root.bounds.is_empty() => root.bounds,
                    _ => {
                        let tree = self.dump().await?;
                        tree.nodes.first().map(|n| n.bounds).unwrap_or_default()
                    }
                };
                let at = |f: &[f64; 2]| Point {
                    x: screen.left + ((screen.right - screen.left) as f64 * f[0]).round() as i32,
                    y: screen.top + ((screen.bottom - screen.top) as f64 * f[1]).round() as i32,
                };
                self.phone
                    .swipe(at(from), at(to), *duration)
                    .await
                    .map_err(phone_error)
            }
            Action::Sleep(duration) => self.pause(*duration).await,
            Action::PushMedia => self.push_media(binding).await,
            Action::Fail => Err(self.step_failure(
                step,
                binding,
                "flow_failed",
                "the flow stopped here".to_owned(),
                false,
            )),
            Action::Call(_)
            | Action::Branch { .. }
            | Action::ForEachRecipient { .. }
            | Action::ForEachItem { .. }
            | Action::ForEachMedia(_)
            | Action::ForEachTag(_) => Ok(()),
        }
    }

    /// Reads the screen until one of a `branch`'s cases shows, and names
    /// the procedure to run: the first case (in file order) on the first
    /// screen that shows any, or `otherwise` when none shows in time.
    async fn branch(&mut self, step: &'a Step, binding: Binding<'a>) -> Result<&'a str, Stop> {
        let Action::Branch {
            cases,
            otherwise,
            timeout,
            poll,
        } = &step.action
        else {
            return Ok("");
        };
        let selectors = cases
            .iter()
            .map(|case| self.selector(&case.present, binding))
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = Instant::now() + *timeout;
        loop {
            let tree = self.dump().await?;
            if let Some((case, shown)) = cases
                .iter()
                .zip(&selectors)
                .find(|(_, selector)| tree.find(selector).is_some())
            {
                info!(procedure = %case.call, %shown, "branch: the screen shows a case");
                return Ok(case.call.as_str());
            }
            let now = Instant::now();
            if now >= deadline {
                if let Some(otherwise) = otherwise {
                    info!(procedure = %otherwise, "branch: no case showed, so `otherwise`");
                    return Ok(otherwise.as_str());
                }
                let looked: Vec<String> = selectors.iter().map(ToString::to_string).collect();
                return Err(self.step_failure(
                    step,
                    binding,
                    "element_not_found",
                    format!(
                        "none of {} appeared within {:.1} s",
                        looked.join(", "),
                        timeout.as_secs_f64()
                    ),
                    true,
                ));
            }
            self.pause((*poll).min(deadline - now)).await?;
        }
    }

    /// Brings the app up and backs out until its start screen shows, within
    /// the attempt's budget of BACK presses and restarts (see [`Spent`]).
    #[allow(clippy::too_many_arguments)]
    async fn launch(
        &mut self,
        step: &Step,
        binding: Binding<'a>,
        home: &SelectorTemplate,
        restart: bool,
        settle: Duration,
        timeout: Duration,
        budget: Budget,
    ) -> Result<(), Stop> {
        let home = self.selector(home, binding)?;
        let app = self.file.app.clone();
        if restart {
            self.phone.stop_app(&app).await.map_err(phone_error)?;
        }
        self.phone.launch_app(&app).await.map_err(phone_error)?;
        let mut deadline = Instant::now() + timeout;
        // The screen being watched, and since when it has looked so.
        let mut previous: Option<(String, Instant)> = None;
        // The screen the last BACK was pressed on, while the app stayed in front.
        let mut backed_on: Option<String> = None;
        // BACK presses in a row after which the screen was the same as before.
        let mut futile: u32 = 0;
        let mut launched = Instant::now();
        loop {
            let tree = self.dump().await?;
            if tree.find(&home).is_some() {
                if self.spent != Spent::default() {
                    debug!(
                        backs = self.spent.backs,
                        relaunches = self.spent.relaunches,
                        "reached the start screen"
                    );
                }
                // What led here was not wasted: a mass send's next launch
                // starts with the whole budget again.
                self.spent = Spent::default();
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                let reason = format!("not within {:.0} s", timeout.as_secs_f64());
                return Err(self.launch_failure(step, binding, &app, &home, reason));
            }
            let on_app = tree.nodes.iter().any(|n| n.package == app);
            if !on_app {
                // A cold start shows the launcher for a moment: give it `settle`
                // before starting the app again.
                if now.duration_since(launched) >= settle {
                    // A call may be what took the app from the front.
                    let waited = self.hold_for_call().await?;
                    if !waited.is_zero() {
                        deadline += waited;
                    } else {
                        if self.spent.relaunches >= budget.relaunches {
                            let reason = format!(
                                "the app left the front again after {} restart{} (max_relaunches = {})",
                                self.spent.relaunches,
                                plural(self.spent.relaunches),
                                budget.relaunches
                            );
                            return Err(self.launch_failure(step, binding, &app, &home, reason));
                        }
                        self.spent.relaunches += 1;
                        info!(
                            relaunches = self.spent.relaunches,
                            max_relaunches = budget.relaunches,
                            "the app is not in front: starting it again"
                        );
                        self.phone.launch_app(&app).await.map_err(phone_error)?;
                    }
                    launched = Instant::now();
                }
                previous = None;
                backed_on = None;
                futile = 0;
            } else {
                match &previous {
                    Some((xml, since))
                        if *xml == tree.xml && now.duration_since(*since) >= settle =>
                    {
                        let waited = self.hold_for_call().await?;
                        if !waited.is_zero() {
                            deadline += waited;
                        } else {
                            // The screen settled: was it the one the last BACK left?
                            if backed_on.as_deref() == Some(tree.xml.as_str()) {
                                futile += 1;
                            } else {
                                futile = 0;
                            }
                            if futile >= FUTILE_BACKS {
                                let reason = format!(
                                    "BACK changes nothing on this screen (pressed {futile} times in a row, the screen stayed the same)"
                                );
                                return Err(self.launch_failure(step, binding, &app, &home, reason));
                            }
                            if self.spent.backs >= budget.backs {
                                let reason = format!(
                                    "{} BACK press{} did not lead there (max_backs = {})",
                                    self.spent.backs,
                                    if self.spent.backs == 1 { "" } else { "es" },
                                    budget.backs
                                );
                                return Err(self.launch_failure(step, binding, &app, &home, reason));
                            }
                            self.spent.backs += 1;
                            self.spent.backed_out_of = evidence::screen_texts(Some(&tree));
                            info!(
                                backs = self.spent.backs,
                                max_backs = budget.backs,
                                "backing out of a screen that is not the start screen"
                            );
                            self.phone.key(Key::Back).await.map_err(phone_error)?;
                            backed_on = Some(tree.xml.clone());
                        }
                        previous = None;
                    }
                    Some((xml, _)) if *xml == tree.xml => {}
                    _ => previous = Some((tree.xml.clone(), now)),
                }
            }
            self.pause(LAUNCH_POLL).await?;
        }
    }

    /// `start_screen_not_reached`, saying why and what the launches spent.
    fn launch_failure(
        &self,
        step: &Step,
        binding: Binding<'a>,
        app: &str,
        home: &Selector,
        reason: String,
    ) -> Stop {
        let spent = &self.spent;
        let mut message = format!(
            "{app} did not reach its start screen ({home}): {reason}; this attempt pressed BACK {} time{} and started the app again {} time{} without reaching it",
            spent.backs,
            plural(spent.backs),
            spent.relaunches,
            plural(spent.relaunches)
        );
        if !spent.backed_out_of.is_empty() {
            message.push_str(&format!(
                "; the last screen it backed out of showed: {}",
                spent.backed_out_of.join(" | ")
            ));
        }
        warn!(%reason, backs = spent.backs, relaunches = spent.relaunches, "the start screen was not reached");
        self.step_failure(step, binding, "start_screen_not_reached", message, true)
    }

    /// Checks that typed text arrived in the focused field.
    async fn check_typed(&mut self, text: &str) -> Result<(), Stop> {
        let deadline = Instant::now() + TYPE_CHECK_TIMEOUT;
        loop {
            let tree = self.dump().await?;
            let arrived = match tree.focused() {
                Some(field) => field.text.contains(text),
                None => tree.contains_text(text),
            };
            if arrived {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Failure::new(
                    "text_not_typed",
                    format!(
                        "typed {:?}, but the focused field does not show it",
                        shorten(text, 60)
                    ),
                    true,
                )
                .into());
            }
            self.pause(TYPE_CHECK_POLL.min(deadline - now)).await?;
        }
    }

    /// Focuses a field, moves to its end and deletes what it holds.
    async fn clear(&mut self, step: &Step, aim: &Aim, binding: Binding<'a>) -> Result<(), Stop> {
        let node = self.aim(step, aim, binding).await?;
        self.phone
            .tap(node.bounds.center())
            .await
            .map_err(phone_error)?;
        let count = node.text.chars().count().min(MAX_CLEAR_CHARS);
        if count == 0 {
            return Ok(());
        }
        self.phone
            .key(Key::Code(KEY_MOVE_END))
            .await
            .map_err(phone_error)?;
        for _ in 0..count {
            self.phone.key(Key::Delete).await.map_err(phone_error)?;
        }
        let tree = self.dump().await?;
        let still = tree
            .nodes
            .iter()
            .any(|n| n.bounds == node.bounds && n.class == node.class && n.text == node.text);
        if still {
            return Err(Failure::new(
                "text_not_cleared",
                format!("the field still shows {:?}", shorten(&node.text, 60)),
                true,
            )
            .into());
        }
        Ok(())
    }

    /// Waits until a node is no longer on screen.
    async fn wait_gone(
        &mut self,
        step: &Step,
        locate: &Locate,
        binding: Binding<'a>,
    ) -> Result<(), Stop> {
        let target = self.selector(&locate.target, binding)?;
        let near = self.near(&locate.near, binding)?;
        let fail_on = locate
            .fail_on
            .iter()
            .map(|s| self.selector(s, binding))
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = Instant::now() + locate.timeout;
        loop {
            let tree = self.dump().await?;
            if find(&tree, &target, near.as_ref()).is_none() {
                return Ok(());
            }
            if let Some(stop) = fail_on.iter().find(|s| tree.find(s).is_some()) {
                return Err(self.step_failure(
                    step,
                    binding,
                    "element_not_gone",
                    format!("{stop} appeared while waiting for {target} to go away"),
                    false,
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.step_failure(
                    step,
                    binding,
                    "element_not_gone",
                    format!(
                        "{target} was still on screen after {:.1} s",
                        locate.timeout.as_secs_f64()
                    ),
                    true,
                ));
            }
            self.pause(locate.poll.min(deadline - now)).await?;
        }
    }

    /// Copies the current item's or media's file to the phone, once per run.
    async fn push_media(&mut self, binding: Binding<'a>) -> Result<(), Stop> {
        let id: &str = match (binding.item, binding.media) {
            (Some((_, Item::Image { media_id } | Item::File { media_id })), _) => media_id,
            (_, Some((_, id))) => id,
            _ => {
                return Err(Failure::new(
                    "flow_error",
                    "push_media ran where there is no media file",
                    false,
                )
                .into())
            }
        };
        if self.pushed.contains_key(id) {
            return Ok(());
        }
        let local = media_file(self.places.media_dir, id)?;
        if self.pushed.is_empty() {
            // The first file of this run: what earlier tasks left in the
            // album goes, so the album shows this task's media only, in order.
            self.phone.clear_media().await.map_err(phone_error)?;
        }
        let on_phone = self.phone.push_media(&local).await.map_err(phone_error)?;
        info!(media_id = id, path = %on_phone, "media pushed to the phone");
        self.pushed.insert(id.to_owned(), on_phone);
        Ok(())
    }
}

/// What `locate` found.
enum Located {
    /// The node.
    Found(UiNode),
    /// Nothing before the timeout.
    Missing {
        /// The selector that was looked for.
        selector: Selector,
        /// How many times the list was swiped.
        swipes: u32,
        /// Whether a swipe moved nothing.
        list_end: bool,
    },
    /// A `fail_on` selector (this one) showed first.
    FailOn(Selector),
}

/// The list a `scroll` swipes in: the bounds of the node `within` finds (of
/// the screen without it) and the texts inside, to tell whether a swipe
/// moved anything. `None` when `within` finds nothing.
fn list_area(tree: &UiTree, within: Option<&Selector>) -> Option<(Bounds, Vec<String>)> {
    let (bounds, range) = match within {
        Some(selector) => {
            let index = tree.find_index(selector)?;
            (tree.nodes[index].bounds, index..tree.subtree_end(index))
        }
        None => (tree.nodes.first()?.bounds, 0..tree.nodes.len()),
    };
    let texts = tree.nodes[range]
        .iter()
        .filter_map(|n| {
            let label = if n.text.is_empty() {
                &n.content_desc
            } else {
                &n.text
            };
            (!label.is_empty()).then(|| format!("{label}@{}", n.bounds))
        })
        .collect();
    Some((bounds, texts))
}

/// One scrolling swipe in `area`: from three quarters down to one quarter
/// (revealing what is below) or back, along the middle.
fn scroll_gesture(area: Bounds, down: bool) -> (Point, Point) {
    let x = (area.left + area.right) / 2;
    let height = area.bottom - area.top;
    let low = Point {
        x,
        y: area.top + height * 3 / 4,
    };
    let high = Point {
        x,
        y: area.top + height / 4,
    };
    if down {
        (low, high)
    } else {
        (high, low)
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

fn item_type(item: &Item) -> &'static str {
    crate::delivery::item_type(item)
}

/// A loop index as a number from 1.
fn number(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// The unit a binding is in: its recipient and item, by number.
fn unit_key(binding: Binding<'_>) -> UnitKey {
    UnitKey {
        recipient: binding.recipient.map(|(r, _)| number(r)),
        item: binding.item.map(|(i, _)| number(i)),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The local file of media `id`: `<media_dir>/<id>`. An id that is not a
/// plain file name is refused, so a payload cannot make the agent copy any
/// other file of the computer to the phone.
pub(crate) fn media_file(media_dir: Option<&Path>, id: &str) -> Result<PathBuf, Stop> {
    let unavailable = |why: String| -> Stop {
        Failure::new("media_unavailable", format!("media {id:?}: {why}"), false).into()
    };
    let Some(dir) = media_dir else {
        return Err(unavailable(
            "the agent has no media directory configured".to_owned(),
        ));
    };
    let plain = !id.is_empty()
        && id != "."
        && id != ".."
        && !id.contains(['/', '\\', '\0'])
        && !id.starts_with('.');
    if !plain {
        return Err(unavailable(
            "a media id must be a plain file name".to_owned(),
        ));
    }
    let path = dir.join(id);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(path),
        Ok(_) => Err(unavailable(format!("{} is not a file", path.display()))),
        Err(error) => Err(unavailable(format!("{}: {error}", path.display()))),
    }
}

/// The node `selector` finds, near `near` when given: among the descendants
/// of the anchor's ancestor `depth` levels up, nearest level first.
pub(crate) fn find<'t>(
    tree: &'t UiTree,
    selector: &Selector,
    near: Option<&(Selector, u32)>,
) -> Option<&'t UiNode> {
    let Some((anchor, depth)) = near else {
        return tree.find(selector);
    };
    let anchors = match anchor.nth {
        Some(_) => tree.find_index(anchor).into_iter().collect(),
        None => tree.matching(anchor, None),
    };
    for index in anchors {
        let mut scope = index;
        for _level in 0..=*depth {
            if let Some(found) = tree.find_in(selector, Some(scope)) {
                return Some(found);
            }
            match tree.nodes[scope].parent {
                Some(parent) => scope = parent,
                None => break,
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rows of 新的客户: 陈七's is already accepted, 周八's is not.
    const REQUESTS: &str = r#"<hierarchy><node class="android.widget.ListView" bounds="[0,0][1080,2000]">
<node class="android.widget.RelativeLayout" bounds="[0,0][1080,200]">
  <node text="陈七" bounds="[200,30][800,90]" />
  <node text="已添加" bounds="[840,50][1044,150]" />
</node>
<node class="android.widget.RelativeLayout" bounds="[0,200][1080,400]">
  <node text="周八" bounds="[200,230][800,290]" />
  <node text="通过" bounds="[840,250][1044,350]" />
</node>
</node></hierarchy>"#;

    #[test]
    fn near_finds_the_target_in_the_anchors_row_only() {
        let tree = UiTree::parse(REQUESTS).unwrap();
        let accept = Selector::text("通过");
        let near = |name: &str, depth| Some((Selector::text(name), depth));
        let found = find(&tree, &accept, near("周八", 1).as_ref()).unwrap();
        assert_eq!(found.bounds.top, 250);
        assert!(
            find(&tree, &accept, near("陈七", 1).as_ref()).is_none(),
            "周八's button is not in 陈七's row"
        );
        assert!(
            find(&tree, &accept, near("陈七", 2).as_ref()).is_some(),
            "two levels up is the whole list"
        );
        assert!(find(&tree, &accept, near("周八", 0).as_ref()).is_none());
        assert!(find(&tree, &accept, near("王五", 3).as_ref()).is_none());
        assert_eq!(find(&tree, &accept, None).unwrap().bounds.top, 250);
    }

    #[test]
    fn scrolling_swipes_along_the_lists_middle_and_sees_its_texts() {
        let tree = UiTree::parse(REQUESTS).unwrap();
        let screen = tree.nodes[0].bounds;
        let (whole, texts) = list_area(&tree, None).unwrap();
        assert_eq!(whole, screen);
        assert!(texts.iter().any(|t| t.starts_with("周八@")), "{texts:?}");
        let (from, to) = scroll_gesture(whole, true);
        assert_eq!(from.x, (screen.left + screen.right) / 2);
        assert!(from.y > to.y, "down: the finger moves up");
        let (up_from, up_to) = scroll_gesture(whole, false);
        assert_eq!((up_from, up_to), (to, from));
        // Within a list: its bounds, and only its texts.
        let row = Selector {
            nth: Some(-1),
            ..Selector::text("周八")
        };
        assert!(list_area(&tree, Some(&Selector::text("nobody"))).is_none());
        let (bounds, texts) = list_area(&tree, Some(&row)).unwrap();
        assert_eq!(bounds, tree.find(&row).unwrap().bounds);
        assert_eq!(texts.len(), 1, "{texts:?}");
    }

    #[test]
    fn media_files_must_be_plain_names_in_the_media_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m1"), b"jpeg").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert_eq!(
            media_file(Some(dir.path()), "m1").unwrap(),
            dir.path().join("m1")
        );
        let code = |result: Result<PathBuf, Stop>| match result {
            Err(Stop::Failed(failure)) => {
                assert!(!failure.retryable);
                format!("{}: {}", failure.code, failure.message)
            }
            other => panic!("unexpected {other:?}"),
        };
        for bad in ["../m1", "/etc/passwd", ".hidden", "", "..", "a\\b"] {
            let message = code(media_file(Some(dir.path()), bad));
            assert!(message.contains("plain file name"), "{bad}: {message}");
        }
        assert!(code(media_file(Some(dir.path()), "m2")).starts_with("media_unavailable"));
        assert!(code(media_file(Some(dir.path()), "sub")).contains("not a file"));
        assert!(code(media_file(None, "m1")).contains("no media directory"));
    }
}
