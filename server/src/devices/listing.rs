//! The devices page's list rules: which devices a filter keeps (online,
//! paused, account, agent version), their order (a few columns, either
//! way) and the page (the kit's page sizes, numbered pages). The stored
//! rows come from one query (`store::listed`), the live state from the
//! scheduler's memory: no query per row.

use std::collections::HashMap;

use serde::Deserialize;
use youmi_controller::DeviceStatus;
use youmi_protocol::api::PageQuery;
use youmi_protocol::{TaskId, TaskKind};

use crate::console::paging;
use crate::console::session::percent_encode;
use crate::http::error::ApiError;

use super::store::{ListedDevice, Reported, StoredDevice};

/// The page's query string, as typed (a form sends empty fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ListQuery {
    /// `1` online only, `0` offline only.
    #[serde(default)]
    pub online: String,
    /// `1` paused only, `0` running only.
    #[serde(default)]
    pub paused: String,
    /// An operator account: its id, or a part of its name.
    #[serde(default)]
    pub account: String,
    /// An agent version, exactly.
    #[serde(default)]
    pub version: String,
    /// The sort column ([`SortKey`]).
    #[serde(default)]
    pub sort: String,
    /// `desc` for descending.
    #[serde(default)]
    pub dir: String,
    /// Page size (the kit's rule: 1-500).
    pub limit: Option<i64>,
    /// Page number, from 1.
    pub page: Option<i64>,
}

/// Which devices the list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Online or offline only.
    pub online: Option<bool>,
    /// Paused or running only.
    pub paused: Option<bool>,
    /// The devices of accounts whose id is this, or whose name holds it
    /// (in any letter case); kept lowercase.
    pub account: Option<String>,
    /// This agent version only.
    pub version: Option<String>,
}

/// The columns the list sorts by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    /// The account's name (the default).
    #[default]
    Account,
    /// The device's serial.
    Device,
    /// Online first.
    Online,
    /// Most queued tasks.
    Queued,
    /// Last heartbeat.
    Heartbeat,
    /// Battery level.
    Battery,
}

impl SortKey {
    /// Every key, with its name in the query.
    pub const ALL: [(SortKey, &'static str); 6] = [
        (SortKey::Account, "account"),
        (SortKey::Device, "device"),
        (SortKey::Online, "online"),
        (SortKey::Queued, "queued"),
        (SortKey::Heartbeat, "heartbeat"),
        (SortKey::Battery, "battery"),
    ];

    /// Its name in the query.
    pub fn name(self) -> &'static str {
        SortKey::ALL
            .iter()
            .find(|(key, _)| *key == self)
            .map_or("account", |(_, name)| name)
    }
}

/// The longest text the account filter takes (an account name's limit).
pub const MAX_ACCOUNT_FILTER: usize = 64;

/// A checked query: the filter, the order, the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Which devices.
    pub filter: Filter,
    /// By which column.
    pub sort: SortKey,
    /// Descending.
    pub descending: bool,
    /// Page size.
    pub limit: usize,
    /// Page number, from 1.
    pub page: usize,
}

fn flag(field: &str, text: &str) -> Result<Option<bool>, ApiError> {
    match text {
        "" => Ok(None),
        "1" => Ok(Some(true)),
        "0" => Ok(Some(false)),
        _ => Err(ApiError::unprocessable(
            "invalid_filter",
            Some(field),
            format!("{field} must be 1, 0 or empty"),
        )),
    }
}

impl Listing {
    /// The listing `query` asks for; a value that is none of the choices is
    /// 422 `invalid_filter` (or the kit's `invalid_limit`).
    pub fn new(query: &ListQuery) -> Result<Listing, ApiError> {
        let request = paging::request(PageQuery {
            limit: query.limit,
            cursor: None,
        })?;
        let account = match query.account.trim() {
            "" => None,
            text if text.chars().count() > MAX_ACCOUNT_FILTER => {
                return Err(ApiError::unprocessable(
                    "invalid_filter",
                    Some("account"),
                    format!("account must be at most {MAX_ACCOUNT_FILTER} characters"),
                ))
            }
            text => Some(text.to_lowercase()),
        };
        let sort = match query.sort.as_str() {
            "" => SortKey::default(),
            name => SortKey::ALL
                .iter()
                .find(|(_, known)| *known == name)
                .map(|(key, _)| *key)
                .ok_or_else(|| {
                    ApiError::unprocessable("invalid_filter", Some("sort"), "unknown sort column")
                })?,
        };
        let page = query.page.unwrap_or(1);
        if page < 1 {
            return Err(ApiError::unprocessable(
                "invalid_filter",
                Some("page"),
                "page must be 1 or more",
            ));
        }
        Ok(Listing {
            filter: Filter {
                online: flag("online", &query.online)?,
                paused: flag("paused", &query.paused)?,
                account,
                version: Some(query.version.trim().to_owned()).filter(|v| !v.is_empty()),
            },
            sort,
            descending: query.dir == "desc",
            limit: request.limit as usize,
            page: usize::try_from(page).unwrap_or(usize::MAX),
        })
    }

    /// The filter as a query string (no `?`), for links and forms that keep it.
    pub fn filter_query(&self) -> String {
        let filter = &self.filter;
        let bit = |value: bool| if value { "1" } else { "0" };
        [
            filter.online.map(|v| format!("online={}", bit(v))),
            filter.paused.map(|v| format!("paused={}", bit(v))),
            filter
                .account
                .as_ref()
                .map(|a| format!("account={}", percent_encode(a))),
            filter
                .version
                .as_ref()
                .map(|v| format!("version={}", percent_encode(v))),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("&")
    }

    /// The list's address with this filter, sorted by `sort` (descending
    /// when `descending`), at `page`.
    pub fn href(&self, sort: SortKey, descending: bool, page: usize) -> String {
        let mut parts: Vec<String> = Some(self.filter_query())
            .filter(|q| !q.is_empty())
            .into_iter()
            .collect();
        if sort != SortKey::default() {
            parts.push(format!("sort={}", sort.name()));
        }
        if descending {
            parts.push("dir=desc".to_owned());
        }
        if self.limit as i64 != crate::http::page::DEFAULT_PAGE {
            parts.push(format!("limit={}", self.limit));
        }
        if page > 1 {
            parts.push(format!("page={page}"));
        }
        if parts.is_empty() {
            super::pages::PATH.to_owned()
        } else {
            format!("{}?{}", super::pages::PATH, parts.join("&"))
        }
    }
}

/// What the page shows of a device's live state (also what the live feed
/// sends when it changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// The device.
    pub device_id: String,
    /// Connected and heard from.
    pub online: bool,
    /// Its queue is paused.
    pub paused: bool,
    /// Why.
    pub pause_reason: Option<String>,
    /// When it resumes by itself.
    pub resume_at_ms: Option<i64>,
    /// The task on the phone.
    pub task: Option<(TaskId, Option<TaskKind>)>,
    /// Tasks waiting.
    pub queued: u64,
    /// Last heard from.
    pub last_seen_ms: Option<i64>,
    /// Battery level.
    pub battery: Option<u8>,
    /// WeCom's version, the screen and do-not-disturb, as last reported.
    pub report: Reported,
}

impl Live {
    /// The scheduler's view of a device.
    pub fn of(status: &DeviceStatus) -> Live {
        Live {
            device_id: status.device_id.clone(),
            online: status.online,
            paused: status.paused,
            pause_reason: status.pause_reason.clone(),
            resume_at_ms: status.resume_at_ms,
            task: status
                .current_task_id
                .map(|id| (id, status.current_task_kind)),
            queued: status.queued_tasks,
            last_seen_ms: status.last_seen_ms,
            battery: status.battery,
            report: Reported {
                wecom_version: status.wecom_version.clone(),
                screen_on: status.screen_on,
                dnd: status.dnd,
            },
        }
    }

    /// A device the scheduler does not know (yet): offline, as stored.
    pub fn stored(device: &StoredDevice) -> Live {
        Live {
            device_id: device.device_id.clone(),
            online: false,
            paused: device.queue_paused,
            pause_reason: device.pause_reason.clone(),
            resume_at_ms: device.resume_at_ms,
            task: None,
            queued: 0,
            last_seen_ms: device.last_seen_ms,
            battery: None,
            report: device.report.clone(),
        }
    }

    /// What the page shows changed from `before` (the heartbeat's time
    /// alone is no change: the page counts it up itself).
    pub fn differs(&self, before: &Live) -> bool {
        let shown = |live: &Live| {
            (
                live.online,
                live.paused,
                live.resume_at_ms,
                live.task,
                live.queued,
                live.battery,
                live.report.screen_on,
                live.report.dnd,
            )
        };
        shown(self) != shown(before)
    }
}

/// One row of the page.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What the database knows.
    pub listed: ListedDevice,
    /// What the scheduler knows.
    pub live: Live,
}

/// The page: its rows and how many devices the filter matched.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// This page's rows.
    pub rows: Vec<Row>,
    /// Every device the filter matched.
    pub matched: usize,
    /// Every bound device.
    pub total: usize,
}

/// The rows `filter` keeps, with their live state, in stored order.
pub fn matching(
    listed: Vec<ListedDevice>,
    mut live: HashMap<String, DeviceStatus>,
    filter: &Filter,
) -> Vec<Row> {
    listed
        .into_iter()
        .map(|listed| {
            let live = live
                .remove(&listed.device.device_id)
                .map_or_else(|| Live::stored(&listed.device), |status| Live::of(&status));
            Row { listed, live }
        })
        .filter(|row| {
            filter.online.is_none_or(|online| row.live.online == online)
                && filter.paused.is_none_or(|paused| row.live.paused == paused)
                && filter.account.as_ref().is_none_or(|text| {
                    row.listed.device.operator_account_id.to_string() == *text
                        || row
                            .listed
                            .account_name
                            .to_lowercase()
                            .contains(text.as_str())
                })
                && filter
                    .version
                    .as_ref()
                    .is_none_or(|v| &row.listed.device.info.agent_version == v)
        })
        .collect()
}

/// The page `listing` asks for, of every stored device and the live state.
pub fn page(
    listed: Vec<ListedDevice>,
    live: HashMap<String, DeviceStatus>,
    listing: &Listing,
) -> ListPage {
    let total = listed.len();
    let mut rows = matching(listed, live, &listing.filter);
    rows.sort_by(|a, b| {
        let order = match listing.sort {
            SortKey::Account => a.listed.account_name.cmp(&b.listed.account_name),
            SortKey::Device => a
                .listed
                .device
                .info
                .serial
                .cmp(&b.listed.device.info.serial),
            SortKey::Online => b.live.online.cmp(&a.live.online),
            SortKey::Queued => b.live.queued.cmp(&a.live.queued),
            SortKey::Heartbeat => b.live.last_seen_ms.cmp(&a.live.last_seen_ms),
            SortKey::Battery => b.live.battery.cmp(&a.live.battery),
        };
        let order = if listing.descending {
            order.reverse()
        } else {
            order
        };
        order.then_with(|| a.live.device_id.cmp(&b.live.device_id))
    });
    let matched = rows.len();
    let start = listing.limit.saturating_mul(listing.page - 1).min(matched);
    let rows = rows.into_iter().skip(start).take(listing.limit).collect();
    ListPage {
        rows,
        matched,
        total,
    }
}

#[cfg(test)]
mod tests {
    use youmi_protocol::{AgentSettings, DeviceInfo, OperatorAccountId};

    use super::*;

    fn listed(id: &str, account: OperatorAccountId, name: &str, version: &str) -> ListedDevice {
        ListedDevice {
            device: StoredDevice {
                device_id: id.to_owned(),
                operator_account_id: account,
                info: DeviceInfo {
                    serial: format!("serial-{id}"),
                    model: "Pixel".into(),
                    android_version: "14".into(),
                    agent_version: version.into(),
                },
                settings: AgentSettings::default(),
                queue_paused: false,
                pause_reason: None,
                resume_at_ms: None,
                last_seen_ms: None,
                bound_at_ms: 1,
                report: Reported::default(),
            },
            account_name: name.to_owned(),
        }
    }

    fn status(id: &str, online: bool, paused: bool, queued: u64) -> (String, DeviceStatus) {
        (
            id.to_owned(),
            DeviceStatus {
                queued_tasks: queued,
                ..super::super::tests::status(id, online, paused)
            },
        )
    }

    fn listing(query: &str) -> Result<Listing, ApiError> {
        let query: ListQuery = serde_json::from_value(serde_json::Value::Object(
            query
                .split('&')
                .filter(|part| !part.is_empty())
                .map(|part| {
                    let (key, value) = part.split_once('=').unwrap();
                    let value = match key {
                        "limit" | "page" => serde_json::json!(value.parse::<i64>().unwrap()),
                        _ => serde_json::json!(value),
                    };
                    (key.to_owned(), value)
                })
                .collect(),
        ))
        .unwrap();
        Listing::new(&query)
    }

    fn ids(page: &ListPage) -> Vec<&str> {
        page.rows
            .iter()
            .map(|r| r.live.device_id.as_str())
            .collect()
    }

    #[test]
    fn filters_sort_and_pages() {
        let stored = vec![
            listed("a", 1, "Zed", "1.0"),
            listed("b", 2, "Amy", "1.1"),
            listed("c", 3, "Bob", "1.1"),
        ];
        let live: HashMap<_, _> = [
            status("a", true, false, 5),
            status("b", false, true, 0),
            status("c", true, true, 2),
        ]
        .into_iter()
        .collect();
        let run = |query: &str| page(stored.clone(), live.clone(), &listing(query).unwrap());
        assert_eq!(ids(&run("")), ["b", "c", "a"]);
        assert_eq!(ids(&run("dir=desc")), ["a", "c", "b"]);
        assert_eq!(ids(&run("online=1")), ["c", "a"]);
        assert_eq!(ids(&run("paused=1&online=1")), ["c"]);
        assert_eq!(ids(&run("account=2")), ["b"]);
        assert_eq!(ids(&run("version=1.1&sort=queued")), ["c", "b"]);
        let second = run("limit=2&page=2");
        assert_eq!(
            (ids(&second), second.matched, second.total),
            (vec!["a"], 3, 3)
        );
        assert!(run("page=9").rows.is_empty());
        assert_eq!(ids(&run("account=BO")), ["c"]);
        let long = format!("account={}", "x".repeat(65));
        for bad in [
            "online=yes",
            long.as_str(),
            "sort=colour",
            "limit=0",
            "page=0",
        ] {
            assert!(listing(bad).is_err(), "{bad}");
        }
        let kept = listing("online=0&version=1.0 beta&sort=battery&dir=desc").unwrap();
        assert_eq!(
            kept.href(SortKey::Battery, true, 2),
            "/devices?online=0&version=1.0%20beta&sort=battery&dir=desc&page=2"
        );
    }
}
