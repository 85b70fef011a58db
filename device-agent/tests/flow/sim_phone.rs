//! [`SimPhone`]: the agent's [`Phone`] over the phone simulator run in process
//! ([`LocalPhone`]), as `AdbPhone` is over ADB: the screen read as the
//! uiautomator XML the simulator dumps, media pushed into `adb::MEDIA_DIR` under
//! the name its content calls for and registered with the media scanner. Every
//! call is answered at once, with no socket, thread or timer, so the tests' clock
//! can stay paused.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use youmi_agent::adb::MEDIA_DIR;
use youmi_agent::executor::BoxFuture;
use youmi_agent::media::{pushed_name, HEAD_BYTES};
use youmi_agent::phone::{
    CallState, Foreground, Key, Phone, PhoneError, PhoneResult, PhoneStatus, Point, UiTree,
};
use youmi_phone_sim::{LocalError, LocalPhone, WECOM_PACKAGE};

/// The agent's view of one in-process simulated phone.
pub struct SimPhone {
    /// The simulated phone.
    sim: LocalPhone,
    /// The device path of every file pushed, oldest first: what the agent
    /// copied to the phone, which the phone's own record does not keep.
    pushed: Mutex<Vec<String>>,
}

impl SimPhone {
    pub fn new(sim: LocalPhone) -> SimPhone {
        SimPhone {
            sim,
            pushed: Mutex::new(Vec::new()),
        }
    }

    /// The device path of every file pushed, oldest first.
    pub fn pushed(&self) -> Vec<String> {
        self.pushed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn push(&self, local: &Path) -> PhoneResult<String> {
        let local_error = |reason: String| PhoneError::LocalFile {
            path: local.display().to_string(),
            reason,
        };
        let data = std::fs::read(local).map_err(|e| local_error(e.to_string()))?;
        let name = local
            .file_name()
            .map(|name| pushed_name(&name.to_string_lossy(), &data[..data.len().min(HEAD_BYTES)]))
            .ok_or_else(|| local_error("no file name".to_owned()))?;
        let remote = format!("{MEDIA_DIR}/{name}");
        self.sim
            .push_file(&remote, data)
            .map_err(|e| failed(&format!("push {remote}"), &e))?;
        self.sim.scan_media(&remote);
        self.pushed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(remote.clone());
        Ok(remote)
    }

    fn clear(&self) {
        for name in self.sim.list_dir(MEDIA_DIR).unwrap_or_default() {
            let path = format!("{MEDIA_DIR}/{name}");
            self.sim.remove_file(&path);
            self.sim.scan_media(&path);
        }
    }
}

fn ready<T: Send + 'static>(value: T) -> BoxFuture<'static, T> {
    Box::pin(std::future::ready(value))
}

fn point(at: Point) -> (i32, i32) {
    (at.x, at.y)
}

/// A call the phone refused, as the shell command's failure.
fn failed(command: &str, error: &LocalError) -> PhoneError {
    PhoneError::CommandFailed {
        command: command.to_owned(),
        code: 1,
        stderr: error.to_string(),
    }
}

impl Phone for SimPhone {
    fn serial(&self) -> &str {
        self.sim.serial()
    }

    fn dump_ui(&self) -> BoxFuture<'_, PhoneResult<UiTree>> {
        let command = "uiautomator dump /dev/tty";
        let tree = match self.sim.dump() {
            Ok(xml) => UiTree::parse(&xml).map_err(|e| PhoneError::BadOutput {
                command: command.to_owned(),
                reason: e.to_string(),
            }),
            Err(e) => Err(PhoneError::UiDump {
                reads: 1,
                over: Duration::ZERO,
                last: e.to_string(),
            }),
        };
        ready(tree)
    }

    fn tap(&self, at: Point) -> BoxFuture<'_, PhoneResult<()>> {
        self.sim.tap(at.x, at.y);
        ready(Ok(()))
    }

    fn long_press(&self, at: Point, hold: Duration) -> BoxFuture<'_, PhoneResult<()>> {
        self.sim.long_press(at.x, at.y, hold);
        ready(Ok(()))
    }

    fn swipe(&self, from: Point, to: Point, duration: Duration) -> BoxFuture<'_, PhoneResult<()>> {
        self.sim.swipe(point(from), point(to), duration);
        ready(Ok(()))
    }

    fn key(&self, key: Key) -> BoxFuture<'_, PhoneResult<()>> {
        self.sim.key(u32::from(key.code()));
        ready(Ok(()))
    }

    fn launch_app<'a>(&'a self, package: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        let missing = PhoneError::AppNotInstalled {
            package: package.to_owned(),
        };
        let launched = if package == WECOM_PACKAGE {
            self.sim.launch_wecom().map_err(|_| missing)
        } else {
            Err(missing)
        };
        ready(launched)
    }

    fn stop_app<'a>(&'a self, package: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        // `am force-stop` of a package that is not there does nothing, and says nothing.
        if package == WECOM_PACKAGE {
            self.sim.force_stop_wecom();
        }
        ready(Ok(()))
    }

    fn foreground_app(&self) -> BoxFuture<'_, PhoneResult<Option<Foreground>>> {
        let (package, activity) = self.sim.foreground();
        ready(Ok(Some(Foreground { package, activity })))
    }

    fn app_version<'a>(&'a self, package: &'a str) -> BoxFuture<'a, PhoneResult<Option<String>>> {
        let version = if package == WECOM_PACKAGE {
            self.sim.wecom_version()
        } else {
            None
        };
        ready(Ok(version))
    }

    fn type_text<'a>(&'a self, text: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        if text.is_empty() {
            return ready(Ok(()));
        }
        ready(self.sim.type_text(text).map_err(|_| PhoneError::ImeMissing))
    }

    fn push_media<'a>(&'a self, local: &'a Path) -> BoxFuture<'a, PhoneResult<String>> {
        ready(self.push(local))
    }

    fn clear_media(&self) -> BoxFuture<'_, PhoneResult<()>> {
        self.clear();
        ready(Ok(()))
    }

    fn screenshot(&self) -> BoxFuture<'_, PhoneResult<Vec<u8>>> {
        ready(self.sim.screenshot().map_err(|e| PhoneError::BadOutput {
            command: "screencap -p".to_owned(),
            reason: e.to_string(),
        }))
    }

    fn do_not_disturb(&self) -> BoxFuture<'_, PhoneResult<bool>> {
        ready(Ok(self.sim.zen_mode() != 0))
    }

    fn set_do_not_disturb(&self, on: bool) -> BoxFuture<'_, PhoneResult<()>> {
        let mode = if on { "on" } else { "off" };
        ready(
            self.sim
                .set_dnd(mode)
                .map_err(|e| failed(&format!("cmd notification set_dnd {mode}"), &e)),
        )
    }

    fn call_state(&self) -> BoxFuture<'_, PhoneResult<CallState>> {
        let state = match self.sim.call_state() {
            0 => CallState::Idle,
            1 => CallState::Ringing(self.sim.caller()),
            _ => CallState::OffHook,
        };
        ready(Ok(state))
    }

    fn end_call(&self) -> BoxFuture<'_, PhoneResult<()>> {
        self.sim.key(u32::from(Key::EndCall.code()));
        ready(Ok(()))
    }

    fn status(&self) -> BoxFuture<'_, PhoneResult<PhoneStatus>> {
        let (package, _) = self.sim.foreground();
        ready(Ok(PhoneStatus {
            battery: Some(self.sim.battery_level()),
            foreground_app: Some(package),
            ..PhoneStatus::default()
        }))
    }

    fn notify<'a>(&'a self, text: &'a str) -> BoxFuture<'a, PhoneResult<()>> {
        // The tag AdbPhone posts with, so that each notification replaces the last.
        self.sim.notify("youmi", text);
        ready(Ok(()))
    }
}
