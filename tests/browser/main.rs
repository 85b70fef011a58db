//! The console in a real browser: headless Chromium through chromedriver
//! (`harness`), against the real server on port 0. Each test does what an
//! admin would, checks what the page shows and what the API then holds,
//! and saves a screenshot of each page it visits (printed paths, under
//! `<target>/tmp/browser-screenshots/`).

mod devices;
mod harness;
mod notifications;
mod tasks;

use std::time::Duration;

use reqwest::redirect::Policy;
use reqwest::StatusCode;
use youmi_agent::logs::{self, archive, LogLimits, RotatingFile};
use youmi_protocol::api::{DeviceLogState, OperatorAccount, OperatorAccountList};
use youmi_tests::{eventually, expect_json, AgentSpec, TestApp};

use crate::harness::{Browser, WAIT};

/// Every operator account, as the API has it.
async fn accounts(app: &TestApp) -> Vec<OperatorAccount> {
    let list: OperatorAccountList =
        expect_json(app.get("/api/v1/operator-accounts").await, StatusCode::OK).await;
    list.items
}

#[tokio::test]
async fn a_visitor_logs_in_comes_back_to_the_page_and_logs_out() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::start(&app, "login").await else {
        return;
    };
    // A page asked for without a session sends the visitor to the login form.
    browser.goto("/operator-accounts?limit=20").await;
    browser
        .wait_location("/login?next=/operator-accounts%3Flimit%3D20")
        .await;
    assert_eq!(browser.text("h1").await, "登录友米聚合");
    browser.screenshot("login").await;

    // A wrong password: the API's answer, in Chinese, the job number kept.
    browser.fill("#job_no", "admin").await;
    browser.fill("#password", "not-the-password").await;
    browser.click("button[type=submit]").await;
    browser.wait_text("#login-error", "工号或密码错误").await;
    assert_eq!(browser.value("#job_no").await, "admin");
    assert_eq!(browser.value("#password").await, "");
    browser.screenshot("login-refused").await;

    // The right one lands on the page asked for.
    browser.log_in().await;
    browser.wait_location("/operator-accounts?limit=20").await;
    assert!(browser.text(".user").await.contains("Administrator"));
    assert_eq!(
        browser.text("nav.sections a[aria-current=page]").await,
        "运营号"
    );
    let session = browser.cookie("youmi_session").await;
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    assert_eq!(session.secure(), Some(false), "served over plain http here");
    browser.screenshot("accounts-empty").await;

    // Logging out ends the session: the pages send the visitor back to log in.
    browser.click("#logout").await;
    browser.wait_location("/login").await;
    browser.goto("/").await;
    browser.wait_location("/login").await;
    let answer = app
        .client
        .get(format!("{}/operator-accounts", app.base_url))
        .header("cookie", format!("youmi_session={}", session.value()))
        .send()
        .await
        .unwrap();
    assert!(
        answer.url().path().starts_with("/login"),
        "{}",
        answer.url()
    );
    browser.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn accounts_are_created_edited_disabled_and_bad_input_changes_nothing() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::start(&app, "accounts").await else {
        return;
    };
    browser.goto("/").await;
    browser.log_in().await;
    browser.wait_location("/operator-accounts").await;
    browser.click("#new-account").await;
    browser.wait_location("/operator-accounts/new").await;

    // Empty: a message at each required field, nothing stored.
    browser.click("#save").await;
    browser.wait_text("#name-error", "此项必填").await;
    assert_eq!(browser.text("#wecom_user_id-error").await, "此项必填");
    assert_eq!(browser.count("#remark-error").await, 0);
    assert!(accounts(&app).await.is_empty());

    // Too long: the message names the limit; what was typed stays.
    let long = "w".repeat(65);
    browser.fill("#name", "华东一号").await;
    browser.fill("#wecom_user_id", &long).await;
    browser.fill("#remark", "早班").await;
    browser.click("#save").await;
    browser
        .wait_text("#wecom_user_id-error", "最多 64 个字符")
        .await;
    assert_eq!(browser.count("#name-error").await, 0);
    assert_eq!(browser.value("#name").await, "华东一号");
    assert_eq!(browser.value("#wecom_user_id").await, long);
    assert_eq!(browser.value("#remark").await, "早班");
    assert!(accounts(&app).await.is_empty());
    browser.screenshot("form-refused").await;

    // Right: back on the list, which shows it; the API has it.
    browser.fill("#wecom_user_id", "huadong01").await;
    browser.click("#save").await;
    browser
        .wait_location("/operator-accounts?notice=created")
        .await;
    assert_eq!(browser.text("#flash").await, "已创建运营号");
    let stored = accounts(&app).await;
    assert_eq!(stored.len(), 1);
    let account = &stored[0];
    assert_eq!(
        (
            account.name.as_str(),
            account.wecom_user_id.as_str(),
            account.remark.as_str()
        ),
        ("华东一号", "huadong01", "早班")
    );
    let row = format!("#account-{}", account.id);
    assert!(browser.text(&row).await.contains("华东一号"));

    // Edit: a WeCom user id another account has (in another case) is refused
    // at its field; a good edit is stored.
    let other = app.create_account().await;
    browser.click(&format!("{row} a[href$='/edit']")).await;
    browser
        .wait_location(&format!("/operator-accounts/{}/edit", account.id))
        .await;
    assert_eq!(browser.value("#wecom_user_id").await, "huadong01");
    browser
        .fill("#wecom_user_id", &other.wecom_user_id.to_uppercase())
        .await;
    browser.click("#save").await;
    browser
        .wait_text(
            "#wecom_user_id-error",
            "已有其他运营号使用这个企业微信账号（不区分大小写）",
        )
        .await;
    assert_eq!(app.account(account.id).await.wecom_user_id, "huadong01");
    browser.fill("#wecom_user_id", "huadong01").await;
    browser.fill("#name", "华东一号（晚班）").await;
    browser.fill("#remark", "").await;
    browser.click("#save").await;
    browser
        .wait_location("/operator-accounts?notice=updated")
        .await;
    let edited = app.account(account.id).await;
    assert_eq!(
        (edited.name.as_str(), edited.remark.as_str()),
        ("华东一号（晚班）", "")
    );

    // Disable and enable from the row, without a reload (htmx swaps the row).
    let marker = browser
        .script("window.notReloaded = true; return true;")
        .await;
    assert_eq!(marker, serde_json::Value::Bool(true));
    browser.click(&format!("{row} [data-action=disable]")).await;
    browser.wait_text(&format!("{row} .badge"), "已停用").await;
    assert!(app.account(account.id).await.disabled);
    browser.screenshot("list").await;
    browser.click(&format!("{row} [data-action=enable]")).await;
    browser.wait_text(&format!("{row} .badge"), "启用").await;
    assert!(!app.account(account.id).await.disabled);
    assert_eq!(
        browser.script("return window.notReloaded === true;").await,
        serde_json::Value::Bool(true)
    );

    // An unknown id: the 404 page, nothing changed.
    browser.goto("/operator-accounts/999999/edit").await;
    assert_eq!(browser.text("#error-heading").await, "找不到这个页面");
    assert_eq!(browser.text("#error-message").await, "运营号不存在");
    browser.screenshot("not-found").await;
    assert_eq!(accounts(&app).await.len(), 2);
    browser.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_bind_code_shows_its_code_qr_and_countdown_and_binds_a_phone() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::start(&app, "bind-code").await else {
        return;
    };
    let account = app.create_account().await;
    let code = browser.bind_code(account.id).await;
    assert_eq!(code.len(), 10, "{code}");
    // The QR is the API's PNG, loaded.
    eventually("the QR image to load", WAIT, || async {
        let width = browser
            .script("const img = document.getElementById('bind-qr'); return img.complete ? img.naturalWidth : 0;")
            .await;
        (width.as_u64().unwrap_or(0) >= 200).then_some(())
    })
    .await;
    // The countdown runs: m:ss, and it changes.
    let first = browser.text("#bind-countdown").await;
    let (minutes, seconds) = first.split_once(':').expect("m:ss");
    assert!(
        minutes.parse::<u32>().is_ok() && seconds.len() == 2,
        "{first}"
    );
    eventually("the countdown to move", Duration::from_secs(10), || async {
        (browser.text("#bind-countdown").await != first).then_some(())
    })
    .await;
    browser.screenshot("bind-code").await;
    // The code is real: a phone binds with it.
    let bound = app.bind_request(&code).await;
    assert_eq!(bound.status(), StatusCode::OK);
    browser.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn posts_without_the_csrf_token_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::start(&app, "csrf").await else {
        return;
    };
    browser.goto("/operator-accounts/new").await;
    browser.log_in().await;
    browser.wait_location("/operator-accounts/new").await;
    let session = browser.cookie("youmi_session").await;
    let token = browser
        .script("return document.querySelector('input[name=_csrf]').value;")
        .await;
    let token = token.as_str().expect("the form's token").to_owned();
    // Another site's post carries the cookie but not the token.
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let post = |body: String| {
        client
            .post(format!("{}/operator-accounts", app.base_url))
            .header("cookie", format!("youmi_session={}", session.value()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    for body in [
        "name=a&wecom_user_id=b".to_owned(),
        "name=a&wecom_user_id=b&_csrf=0000".to_owned(),
        format!("name=a&wecom_user_id=b&_csrf={}", "0".repeat(64)),
    ] {
        let answer = post(body.clone()).await.unwrap();
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{body}");
        assert!(answer
            .text()
            .await
            .unwrap()
            .contains("这个表单已失效或来源不明"));
    }
    assert!(accounts(&app).await.is_empty());
    // The same post with the page's token goes through: the refusals above
    // were the token's doing.
    let answer = post(format!("name=a&wecom_user_id=b&_csrf={token}"))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(accounts(&app).await.len(), 1);
    // In the browser: a logout form whose token was taken out is refused,
    // and the session lives on.
    browser
        .script("const form = document.querySelector('form[action=\"/logout\"]'); form.querySelector('input[name=_csrf]').remove(); form.submit(); return true;")
        .await;
    browser.wait_text("#error-heading", "请求被拒绝").await;
    browser.screenshot("refused").await;
    browser.goto("/operator-accounts").await;
    browser.wait_location("/operator-accounts").await;
    browser.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_console_switches_to_english_and_back() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::start(&app, "english").await else {
        return;
    };
    browser.goto("/login").await;
    assert_eq!(browser.text("h1").await, "登录友米聚合");
    browser.click("a.lang[hreflang=en]").await;
    browser.wait_text("h1", "Log in to Youmi").await;
    assert_eq!(browser.text("label[for=job_no]").await, "Job number");
    // The English page says the API's own words.
    browser.fill("#job_no", "admin").await;
    browser.fill("#password", "wrong").await;
    browser.click("button[type=submit]").await;
    browser
        .wait_text("#login-error", "Wrong job number or password")
        .await;
    browser.log_in().await;
    app.create_account().await;
    browser.goto("/operator-accounts").await;
    assert_eq!(browser.text("h1").await, "Operator accounts");
    assert_eq!(
        browser
            .script("return document.documentElement.lang;")
            .await,
        serde_json::Value::String("en".to_owned())
    );
    browser.screenshot("accounts").await;
    browser.click("#new-account").await;
    browser.click("#save").await;
    browser.wait_text("#name-error", "Required").await;
    browser.screenshot("form-refused").await;
    // And back: the switch returns to the page's address (the list, where
    // the refused form was posted).
    browser.click("a.lang[hreflang=zh-CN]").await;
    browser.wait_text("h1", "运营号").await;
    browser.wait_location("/operator-accounts").await;
    browser.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn logs_are_requested_from_the_page_and_downloaded() {
    let app = TestApp::spawn().await;
    let Some(browser) = Browser::start(&app, "device-logs").await else {
        return;
    };
    let account = app.create_account().await;
    let agent = app.bind_agent_with(account.id, AgentSpec::default()).await;
    let device_id = agent.device_id().to_owned();
    let mut log = RotatingFile::open(&logs::log_dir(&agent.state_dir), LogLimits::default())
        .expect("the agent's log");
    log.append(b"a line the admin wants to read\n").unwrap();

    browser.goto("/device-logs").await;
    browser.log_in().await;
    browser.wait_location("/device-logs").await;
    browser.screenshot("empty").await;
    // No device picked: the reason next to the field, nothing asked.
    browser.click("#request-logs").await;
    browser.wait_text("#request-error", "请选择设备").await;
    assert!(app.device_logs(&device_id).await.items.is_empty());

    browser
        .find("#request-device")
        .await
        .select_by_value(&device_id)
        .await
        .expect("pick the device");
    browser.click("#request-logs").await;
    browser.wait_location("/device-logs?notice=requested").await;
    let entry = eventually("the upload", WAIT, || async {
        let page = app.device_logs(&device_id).await;
        page.items
            .into_iter()
            .find(|l| l.state == DeviceLogState::Uploaded)
    })
    .await;
    browser.goto("/device-logs").await;
    let link = format!("#log-{} [data-action=download]", entry.id);
    browser.find(&link).await;
    assert!(browser
        .text(&format!("#log-{}", entry.id))
        .await
        .contains(&account.name));
    browser.screenshot("uploaded").await;

    // The download link gives the archive, as a download, to the session.
    let href = browser
        .script(&format!(
            "return document.querySelector('{link}').getAttribute('href');"
        ))
        .await;
    let href = href.as_str().expect("the link's href").to_owned();
    let fetched = browser
        .script(&format!(
            "return fetch('{href}').then(async r => [r.status, r.headers.get('content-disposition'), (await r.arrayBuffer()).byteLength]);"
        ))
        .await;
    assert_eq!(fetched[0], 200);
    assert!(fetched[1].as_str().unwrap().starts_with("attachment;"));
    assert_eq!(fetched[2].as_u64(), entry.size_bytes);
    let (_, bytes) = app.download_log(entry.id).await;
    let files = archive::read(&bytes).expect("a .tar.gz");
    assert!(files.iter().any(|(name, content)| name == "logs/agent.log"
        && String::from_utf8_lossy(content).contains("a line the admin wants to read")));
    browser.close().await;
    app.shutdown().await;
}
