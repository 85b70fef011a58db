//! The right picture or none (issue 11, section 3): media kept under a bare id
//! go to the phone with the extension of their content, so the gallery lists
//! them, and the agent's album holds one task's media only, in order.

use std::time::Duration;

use serde_json::json;
use youmi_agent::adb::AdbConfig;
use youmi_phone_sim::{SentEvent, SimConfig};
use youmi_protocol::{TaskKind, TaskState};
use youmi_tests::phones::{adb_server, PhoneAgent, Route};
use youmi_tests::TestApp;

const DEADLINE: Duration = Duration::from_secs(90);
const MEDIA: &str = "/sdcard/DCIM/Youmi";

/// The first bytes of real files of each kind, with some payload after them.
fn jpeg(tag: &str) -> Vec<u8> {
    [
        &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10][..],
        b"JFIF\0",
        tag.as_bytes(),
    ]
    .concat()
}

fn png(tag: &str) -> Vec<u8> {
    [&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..], tag.as_bytes()].concat()
}

fn config() -> AdbConfig {
    AdbConfig {
        command_timeout: Duration::from_secs(15),
        dump_timeout: Duration::from_secs(15),
        transfer_timeout: Duration::from_secs(30),
        ..AdbConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_under_bare_ids_reach_the_album_and_each_task_sees_only_its_own() {
    let Some(adb) = adb_server().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let sim = SimConfig {
        serial: "E2E-MEDIA".to_owned(),
        ..SimConfig::default()
    };
    let p = PhoneAgent::start(&app, Route::Server(&adb), sim, config()).await;
    // Media ids with no extension, one with a wrong one: as a media store keeps them.
    p.add_media("img-1", &jpeg("first"));
    p.add_media("img-2", &png("second"));
    p.add_media("poster.jpg", &png("third"));

    let first = p
        .run(
            &app,
            TaskKind::SendMessage,
            json!({ "to": { "name": "张三" }, "items": [{ "type": "image", "media_id": "img-1" }] }),
            DEADLINE,
        )
        .await;
    assert_eq!(first.state, TaskState::Succeeded, "{first:?}");
    assert_eq!(first.attempt, 1, "{first:?}");
    assert_eq!(p.sim.gallery(), vec![format!("{MEDIA}/img-1.jpg")]);

    let second = p
        .run(
            &app,
            TaskKind::SendMessage,
            json!({ "to": { "name": "李四" }, "items": [
                { "type": "image", "media_id": "img-2" },
                { "type": "image", "media_id": "poster.jpg" },
            ] }),
            DEADLINE,
        )
        .await;
    assert_eq!(second.state, TaskState::Succeeded, "{second:?}");
    let mut gallery = p.sim.gallery();
    gallery.sort();
    assert_eq!(
        gallery,
        vec![format!("{MEDIA}/img-2.png"), format!("{MEDIA}/poster.png")],
        "the first task's picture left the album before the second pushed its own"
    );
    assert!(p.sim.file(&format!("{MEDIA}/img-1.jpg")).is_none());
    assert_eq!(
        p.sim.file(&format!("{MEDIA}/poster.png")).as_deref(),
        Some(&png("third")[..]),
        "the picture arrived whole under the name of its content"
    );
    let pictures: Vec<(String, String)> = p
        .sim
        .sent()
        .into_iter()
        .filter_map(|event| match event {
            SentEvent::Image { to, path } => Some((to, path)),
            _ => None,
        })
        .collect();
    assert_eq!(
        pictures,
        vec![
            ("张三".to_owned(), format!("{MEDIA}/img-1.jpg")),
            ("李四".to_owned(), format!("{MEDIA}/img-2.png")),
            ("李四".to_owned(), format!("{MEDIA}/poster.png")),
        ],
        "each customer got the pictures meant for them, in order"
    );
}
