//! The console's HTTP side that a browser does not show: cookie flags,
//! the assets' cache, and that a console cookie opens no API route (the API
//! takes bearer tokens only).

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use reqwest::redirect::Policy;

use crate::common::{TestApp, ADMIN_PASSWORD};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// The `Set-Cookie` values of an answer.
fn set_cookies(answer: &reqwest::Response) -> Vec<String> {
    answer
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

/// Logs in through the form; the session cookie's `Set-Cookie`.
async fn form_login(app: &TestApp) -> String {
    let client = client();
    let page = client.get(app.url("/login")).send().await.unwrap();
    let visitor = set_cookies(&page)
        .into_iter()
        .find(|c| c.starts_with("youmi_visitor="))
        .expect("the login page sets the visitor cookie");
    let visitor = visitor.split(';').next().unwrap().to_owned();
    let html = page.text().await.unwrap();
    let token = html
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's token")
        .to_owned();
    let answer = client
        .post(app.url("/login"))
        .header("cookie", visitor)
        .form(&[
            ("job_no", "admin"),
            ("password", ADMIN_PASSWORD),
            ("next", "/operator-accounts"),
            ("_csrf", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 303);
    assert_eq!(answer.headers()["location"], "/operator-accounts");
    set_cookies(&answer)
        .into_iter()
        .find(|c| c.starts_with("youmi_session="))
        .expect("a session cookie")
}

#[tokio::test]
async fn cookies_are_http_only_strict_and_secure_behind_https() {
    let app = TestApp::spawn().await;
    let session = form_login(&app).await;
    assert!(
        session.contains("; HttpOnly") && session.contains("; SameSite=Strict"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "{session}");
    // The console's session opens no API route: the API wants its bearer token.
    let cookie = session.split(';').next().unwrap().to_owned();
    let api = client()
        .get(app.url("/api/v1/auth/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status().as_u16(), 401);
    app.finish().await;

    let app = TestApp::spawn_with(|config| {
        config.public_url = Some("https://youmi.example".to_owned());
    })
    .await;
    let session = form_login(&app).await;
    assert!(session.contains("; Secure"), "{session}");
    app.finish().await;
}

#[tokio::test]
async fn assets_are_served_from_hashed_urls_with_a_long_cache() {
    let app = TestApp::spawn().await;
    let html = client()
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut found = 0;
    for part in html.split('"').filter(|part| part.starts_with("/assets/")) {
        let answer = client().get(app.url(part)).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 200, "{part}");
        assert_eq!(
            answer.headers()[CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        let kind = answer.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
        assert!(
            kind.starts_with("text/css") || kind.starts_with("text/javascript"),
            "{kind}"
        );
        found += 1;
    }
    assert_eq!(found, 3, "htmx, the stylesheet and the script: {html}");
    let stale = client()
        .get(app.url("/assets/console.0000000000.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status().as_u16(), 404);
    app.finish().await;
}

#[tokio::test]
async fn the_devices_feed_sends_changed_rows_and_ends_with_the_server() {
    let app = TestApp::spawn().await;
    let session = form_login(&app).await;
    let cookie = session.split(';').next().unwrap().to_owned();
    // Without a session the feed is a page like any other: to the login.
    let refused = client()
        .get(app.url("/devices/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 303);
    let mut feed = client()
        .get(app.url("/devices/events"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status().as_u16(), 200);
    assert_eq!(feed.headers()[CONTENT_TYPE], "text/event-stream");
    // A phone comes online: one event names it, with its live cells.
    let account = app.account("live").await;
    let (device_id, _agent) = app.connected_agent(account).await;
    let mut text = String::new();
    while !text.contains(&device_id) {
        let chunk = feed.chunk().await.unwrap().expect("the feed goes on");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: devices"), "{text}");
    assert!(text.contains("data-cell=\"online\""), "{text}");
    // The server stops: the stream ends instead of holding the shutdown.
    let db = app.stop().await;
    while let Some(chunk) = feed.chunk().await.unwrap_or(None) {
        assert!(!chunk.is_empty());
    }
    db.remove().await;
}
