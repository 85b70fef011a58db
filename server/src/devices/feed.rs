//! The devices page's live feed: one server-sent-events stream per open
//! page (`GET /devices/events`, behind the console's session like every
//! page). It wakes on the scheduler's change feed
//! (`Controller::device_changes`: connections, heartbeats, pauses, tasks
//! dispatched and finished, timers), reads the devices' state from the
//! scheduler's memory, and sends the rows whose shown state changed since
//! its last event, rendered in the page's language, as one `devices` event.
//! Bursts are coalesced: at most one event per [`COALESCE`], so at most one
//! update per row per 250 ms. A device the page has no row for (just bound)
//! makes the page fetch its rows again. The stream ends when the server
//! shuts down.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use tokio::sync::watch;

use crate::console::page::Ctx;
use crate::AppState;

use super::listing::Live;
use super::pages::Shows;

/// The feed's path.
pub const PATH: &str = "/devices/events";

/// The shortest time between two events of one stream.
pub const COALESCE: Duration = Duration::from_millis(250);

/// The rows of one event: each `<tr data-device>` holds the live cells.
#[derive(Template)]
#[template(path = "devices/live.html")]
pub struct LiveRows {
    /// The page's language.
    pub ctx: Ctx,
    /// The rows that changed.
    pub rows: Vec<LiveRow>,
}

/// One changed row.
pub struct LiveRow {
    /// Its live state.
    pub live: Live,
}

impl Shows for LiveRows {
    fn ctx(&self) -> &Ctx {
        &self.ctx
    }
}

/// What one stream remembers between events.
struct Feed {
    state: AppState,
    ctx: Ctx,
    changes: watch::Receiver<u64>,
    /// True once the server shuts down: the stream ends.
    stopping: watch::Receiver<bool>,
    /// What the page was last told of each device.
    shown: HashMap<String, Live>,
    /// Whether an event was sent (the next waits [`COALESCE`] first).
    sent: bool,
}

/// The state of every device now, by id (none if the scheduler stopped).
async fn now(state: &AppState) -> Option<HashMap<String, Live>> {
    let devices = state.controller.devices().await.ok()?;
    Some(
        devices
            .iter()
            .map(|status| (status.device_id.clone(), Live::of(status)))
            .collect(),
    )
}

/// The rows of `current` that differ from `shown` (or are new), by id.
pub fn changed(shown: &HashMap<String, Live>, current: &HashMap<String, Live>) -> Vec<Live> {
    let mut rows: Vec<Live> = current
        .values()
        .filter(|live| {
            shown
                .get(&live.device_id)
                .is_none_or(|before| live.differs(before))
        })
        .cloned()
        .collect();
    rows.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    rows
}

/// `GET /devices/events`.
pub async fn events(
    State(state): State<AppState>,
    ctx: Ctx,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut changes = state.controller.device_changes();
    changes.borrow_and_update();
    let shown = now(&state).await.unwrap_or_default();
    let stopping = state.gateway.shutdown_signal();
    let start = Feed {
        state,
        ctx,
        changes,
        stopping,
        shown,
        sent: false,
    };
    let stream = stream::unfold(start, |mut feed| async move {
        loop {
            if feed.sent {
                tokio::time::sleep(COALESCE).await;
            }
            tokio::select! {
                changed = feed.changes.changed() => changed.ok()?,
                _ = feed.stopping.wait_for(|stop| *stop) => return None,
            }
            feed.changes.borrow_and_update();
            let current = now(&feed.state).await?;
            let rows = changed(&feed.shown, &current);
            feed.shown = current;
            feed.sent = false;
            if rows.is_empty() {
                continue;
            }
            let page = LiveRows {
                ctx: feed.ctx.clone(),
                rows: rows.into_iter().map(|live| LiveRow { live }).collect(),
            };
            let Ok(html) = page.render() else {
                tracing::error!("the devices feed failed to render");
                return None;
            };
            feed.sent = true;
            let event = Event::default().event("devices").data(html);
            return Some((Ok(event), feed));
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(id: &str, online: bool, queued: u64, seen: i64) -> (String, Live) {
        (
            id.to_owned(),
            Live {
                device_id: id.to_owned(),
                online,
                paused: false,
                pause_reason: None,
                resume_at_ms: None,
                task: None,
                queued,
                last_seen_ms: Some(seen),
                battery: None,
                report: Default::default(),
            },
        )
    }

    #[test]
    fn only_rows_whose_shown_state_changed_are_sent() {
        let shown: HashMap<_, _> = [live("a", true, 0, 1), live("b", false, 2, 1)].into();
        let ids = |current: HashMap<String, Live>| -> Vec<String> {
            changed(&shown, &current)
                .into_iter()
                .map(|l| l.device_id)
                .collect()
        };
        // A heartbeat alone is no change; a queue count is; a new device is.
        assert!(ids([live("a", true, 0, 9), live("b", false, 2, 9)].into()).is_empty());
        assert_eq!(
            ids([
                live("a", true, 1, 1),
                live("b", false, 2, 1),
                live("c", true, 0, 1)
            ]
            .into()),
            ["a", "c"]
        );
        assert_eq!(
            ids([live("a", false, 0, 1), live("b", false, 2, 1)].into()),
            ["a"]
        );
    }
}
