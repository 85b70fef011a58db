//! The `launch` step: starting the app and backing out to its start screen,
//! within a budget of BACK presses and relaunches that an attempt's launch
//! steps share.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::flow::evidence;
use crate::flow::failure::{phone_error, Stop};
use crate::flow::file::{SelectorTemplate, Step};
use crate::phone::{Key, Selector};

use super::{Binding, Run};

/// How often `launch` reads the screen while it backs out to the start screen.
const LAUNCH_POLL: Duration = Duration::from_millis(300);
/// How many BACK presses in a row may leave the screen as it was before
/// `launch` concludes that BACK does nothing there and stops.
const FUTILE_BACKS: u32 = 2;

/// What one `launch` step may spend of the attempt's budget: the step's
/// `max_backs` and `max_relaunches`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    /// BACK presses.
    pub(super) backs: u32,
    /// Starts of the app after it left the front.
    pub(super) relaunches: u32,
}

/// What an attempt's `launch` steps spent without reaching the start
/// screen. It is kept across the steps, so a launch that failed leaves a
/// later one of the same attempt (after a skipped recipient) nothing to spend:
/// a phone whose start screen the flow cannot recognise gets a handful of
/// BACK presses, not minutes of them. Reaching the start screen clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Spent {
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

impl<'a> Run<'a> {
    /// Brings the app up and backs out until its start screen shows, within
    /// the attempt's budget of BACK presses and restarts (see [`Spent`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn launch(
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
}
