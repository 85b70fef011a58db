//! The browser tests' harness: Debian's headless Chromium driven through
//! chromedriver (started here on a free port, stopped when the test ends)
//! with the `fantoccini` WebDriver client, against the real server on
//! port 0 (`youmi_tests::TestApp`). Every page a test visits is saved as a
//! screenshot under `<target>/tmp/browser-screenshots/`.
//!
//! Without `chromium` and `chromedriver` a test prints one line saying it
//! was skipped and how to enable it, and passes; with
//! `YOUMI_REQUIRE_BROWSER=1` (CI sets it) it fails instead.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use youmi_tests::{eventually, ChildGuard, TestApp, ADMIN_PASSWORD};

/// How long a page may take to show what a test waits for.
pub const WAIT: Duration = Duration::from_secs(15);

/// Where the browser and its driver are looked for.
const CHROMIUM: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromium-browser"];
const CHROMEDRIVER: &[&str] = &["/usr/bin/chromedriver"];

fn first_existing(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|path| path.exists())
}

/// A headless Chromium on one test's server.
pub struct Browser {
    /// The WebDriver session.
    client: Client,
    /// `http://127.0.0.1:port` of the server.
    pub base: String,
    /// The test's name, the screenshots' prefix.
    test: &'static str,
    /// chromedriver, killed when the test ends.
    _driver: ChildGuard,
}

impl Browser {
    /// A browser on `app`, or `None` (after one line saying so) where the
    /// machine has no Chromium or chromedriver and `YOUMI_REQUIRE_BROWSER`
    /// is not `1`.
    pub async fn start(app: &TestApp, test: &'static str) -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) =
            (first_existing(CHROMIUM), first_existing(CHROMEDRIVER))
        else {
            let how = "install them with `apt-get install chromium chromium-driver`";
            assert!(
                std::env::var("YOUMI_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "browser test {test}: chromium or chromedriver missing and YOUMI_REQUIRE_BROWSER=1; {how}"
            );
            // Straight to stderr, past the test harness's capture, so that a
            // passing run shows it.
            let _ = writeln!(
                std::io::stderr(),
                "browser test {test} skipped: chromium or chromedriver missing; {how} to run it"
            );
            return None;
        };
        let port = free_port();
        let mut command = Command::new(chromedriver);
        command.arg(format!("--port={port}"));
        let driver = ChildGuard::spawn("chromedriver", command);
        let url = format!("http://127.0.0.1:{port}");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    "--lang=zh-CN",
                ],
                "prefs": { "intl.accept_languages": "zh-CN,zh" },
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        let client = eventually("chromedriver to take a session", WAIT, || {
            let capabilities = capabilities.clone();
            let url = url.clone();
            async move {
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(capabilities)
                    .connect(&url)
                    .await
                    .ok()
            }
        })
        .await;
        Some(Browser {
            client,
            base: app.base_url.clone(),
            test,
            _driver: driver,
        })
    }

    /// Opens `path` of the server.
    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|error| panic!("open {path}: {error}"));
    }

    /// The path and query of the page shown.
    pub async fn location(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits until the page shown is at `path` (and query).
    pub async fn wait_location(&self, path: &str) {
        eventually(&format!("the page at {path}"), WAIT, || async move {
            (self.location().await == path).then_some(())
        })
        .await;
    }

    /// The element `css`, once it is on the page.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no {css} on {}: {error}", self.base))
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map_or(0, |found| found.len())
    }

    /// The text of `css`.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("element text")
    }

    /// Waits until `css` shows `text`.
    pub async fn wait_text(&self, css: &str, text: &str) {
        eventually(&format!("{css} to show {text:?}"), WAIT, || async move {
            let found = self.client.find(Locator::Css(css)).await.ok()?;
            (found.text().await.ok()? == text).then_some(())
        })
        .await;
    }

    /// Waits until the text of `css` contains `text`, and returns it.
    pub async fn wait_contains(&self, css: &str, text: &str) -> String {
        eventually(&format!("{css} to contain {text:?}"), WAIT, || async move {
            let found = self.client.find(Locator::Css(css)).await.ok()?;
            let shown = found.text().await.ok()?;
            shown.contains(text).then_some(shown)
        })
        .await
    }

    /// Makes the window `width` by `height` (for a wide page's screenshots).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize the window");
    }

    /// The current value of the form control `css`.
    pub async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    /// Replaces what the control `css` holds with `text`, typed.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear a field");
        if !text.is_empty() {
            field.send_keys(text).await.expect("type into a field");
        }
    }

    /// Clicks `css`.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    /// Runs `script` in the page and returns its value.
    pub async fn script(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .expect("run a script")
    }

    /// The value of the browser's cookie `name`.
    pub async fn cookie(&self, name: &str) -> fantoccini::cookies::Cookie<'static> {
        self.client
            .get_named_cookie(name)
            .await
            .unwrap_or_else(|error| panic!("cookie {name}: {error}"))
    }

    /// Logs in through the form as the first admin, from wherever the
    /// browser is sent to log in.
    pub async fn log_in(&self) {
        self.fill("#job_no", "admin").await;
        self.fill("#password", ADMIN_PASSWORD).await;
        self.click("button[type=submit]").await;
        eventually("the console after logging in", WAIT, || async move {
            (!self.location().await.starts_with("/login")).then_some(())
        })
        .await;
    }

    /// Opens 运营号, logs in, and makes a bind code for account `id` with
    /// its button (创建设备绑定码): the code the panel shows.
    pub async fn bind_code(&self, id: i64) -> String {
        self.goto("/operator-accounts").await;
        self.log_in().await;
        self.click(&format!("#account-{id} [data-action=bind-code]"))
            .await;
        self.text("#bind-code-value").await
    }

    /// Saves what the browser shows as `<test>-<name>.png` and prints where.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let path = dir.join(format!("{}-{name}.png", self.test));
        std::fs::write(&path, png).expect("save a screenshot");
        println!("screenshot: {}", path.display());
    }

    /// Ends the browser session.
    pub async fn close(self) {
        self.client.close().await.expect("close the browser");
    }
}

/// `<target>/tmp/browser-screenshots`.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots")
}

/// A port no one listens on now (chromedriver takes it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}
