//! Pictures and files in a chat, through WeCom's more-functions panel: 图片 opens the
//! album (the pictures and videos the media scan registered, newest first) and sends
//! the picked ones; 文件 > 手机存储 lists the files in storage and sends the picked one.

mod common;

use common::Shell;
use youmi_phone_sim::{SentEvent, SimConfig, Simulator};

impl Shell {
    /// Writes a file and registers it with the media scanner, as the agent's push does.
    async fn push(&mut self, path: &str, content: &str) {
        self.sh(&format!("echo {content} > {path}")).await;
        self.sh(&format!(
            "am broadcast -a android.intent.action.MEDIA_SCANNER_SCAN_FILE -d file://{path}"
        ))
        .await;
    }

    /// WeCom open on the chat with 张三.
    async fn open_chat(&mut self) {
        self.sh("monkey -p com.tencent.wework -c android.intent.category.LAUNCHER 1")
            .await;
        self.tap("text", "张三").await;
    }
}

/// The `content-desc`s of the album's cells, in screen order.
fn album_cells(xml: &str) -> Vec<String> {
    xml.split("<node ")
        .filter(|n| n.contains("resource-id=\"com.tencent.wework:id/media_item\""))
        .filter_map(|n| {
            let at = n.find("content-desc=\"")? + "content-desc=\"".len();
            Some(n[at..at + n[at..].find('"')?].to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_picture_from_the_album_is_sent_to_the_chat() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut p = Shell::new(&sim).await;
    p.push("/sdcard/DCIM/Youmi/old.jpg", "a").await;
    p.push("/sdcard/DCIM/Youmi/new.png", "b").await;
    // A document is in the media store too, but the album shows pictures and videos.
    p.push("/sdcard/DCIM/Youmi/price.pdf", "c").await;
    p.open_chat().await;

    // The panel opens and folds with the button, and BACK folds it too.
    p.tap("content-desc", "更多功能按钮，已折叠").await;
    assert!(p.dump().await.contains("text=\"图片\""));
    p.tap("content-desc", "更多功能按钮，已展开").await;
    assert!(!p.dump().await.contains("text=\"图片\""));
    p.tap("content-desc", "更多功能按钮，已折叠").await;
    p.sh("input keyevent 4").await;
    assert_eq!(sim.screen().name, "chat:张三", "BACK only folded the panel");
    assert!(!p.dump().await.contains("text=\"图片\""));

    p.tap("content-desc", "更多功能按钮，已折叠").await;
    p.tap("text", "图片").await;
    assert_eq!(sim.screen().name, "chat_album:张三");
    let xml = p.dump().await;
    assert_eq!(album_cells(&xml), ["照片, new.png", "照片, old.jpg"]);
    // 发送 does nothing until a picture is picked.
    p.tap("text", "发送").await;
    assert!(sim.sent().is_empty());
    p.tap("content-desc", "照片, old.jpg").await;
    assert!(p.dump().await.contains("checked=\"true\""));
    p.tap("text", "发送(1)").await;

    assert_eq!(
        sim.sent(),
        vec![SentEvent::Image {
            to: "张三".into(),
            path: "/sdcard/DCIM/Youmi/old.jpg".into(),
        }]
    );
    assert_eq!(sim.screen().name, "chat:张三");
    let xml = p.dump().await;
    assert!(
        xml.contains("content-desc=\"更多功能按钮，已折叠\""),
        "{xml}"
    );
    assert!(xml.contains("resource-id=\"com.tencent.wework:id/chat_image\""));
    // The chat list shows the picture as WeCom abbreviates it.
    p.sh("input keyevent 4").await;
    assert!(p.dump().await.contains("text=\"[图片]\""));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_file_from_phone_storage_is_sent_to_the_chat() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut p = Shell::new(&sim).await;
    p.sh("echo notes > /sdcard/Download/notes.txt").await;
    p.push("/sdcard/DCIM/Youmi/price.pdf", "pricelist").await;
    p.sh("echo hidden > /sdcard/Download/.nomedia").await;
    p.open_chat().await;
    p.tap("content-desc", "更多功能按钮，已折叠").await;
    p.tap("text", "文件").await;
    assert_eq!(sim.screen().name, "file_source");
    p.tap("text", "手机存储").await;
    assert_eq!(sim.screen().name, "phone_storage");

    // Newest first, hidden files left out.
    let xml = p.dump().await;
    let price = xml
        .find("text=\"price.pdf\"")
        .expect("the pushed file is listed");
    let notes = xml
        .find("text=\"notes.txt\"")
        .expect("older files are listed");
    assert!(price < notes, "newest first: {xml}");
    assert!(!xml.contains(".nomedia"));
    assert!(xml.contains("text=\"10B\""), "sizes are shown: {xml}");

    // Picking one arms 发送; picking it again unpicks it.
    p.tap("text", "price.pdf").await;
    assert!(p.dump().await.contains("text=\"发送(1)\""));
    p.tap("text", "price.pdf").await;
    p.tap("text", "发送").await;
    assert!(sim.sent().is_empty(), "nothing was picked");
    p.tap("text", "price.pdf").await;
    p.tap("text", "发送(1)").await;

    assert_eq!(
        sim.sent(),
        vec![SentEvent::File {
            to: "张三".into(),
            path: "/sdcard/DCIM/Youmi/price.pdf".into(),
        }]
    );
    assert_eq!(
        sim.screen().name,
        "chat:张三",
        "back in the chat, past 选择文件"
    );
    let xml = p.dump().await;
    assert!(xml.contains("resource-id=\"com.tencent.wework:id/chat_file\""));
    assert!(xml.contains("content-desc=\"更多功能按钮，已折叠\""));
    p.sh("input keyevent 4").await;
    assert!(p.dump().await.contains("text=\"[文件] price.pdf\""));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_moments_picker_hands_pictures_back_without_sending() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut p = Shell::new(&sim).await;
    p.push("/sdcard/DCIM/Youmi/a.jpg", "a").await;
    p.push("/sdcard/DCIM/Youmi/b.mp4", "b").await;
    p.push("/sdcard/DCIM/Youmi/c.txt", "c").await;
    p.sh("monkey -p com.tencent.wework -c android.intent.category.LAUNCHER 1")
        .await;
    p.tap("text", "工作台").await;
    p.tap("text", "客户朋友圈").await;
    p.tap("content-desc", "发表到客户朋友圈").await;
    p.tap("content-desc", "添加图片").await;
    assert_eq!(sim.screen().name, "media_picker");
    let xml = p.dump().await;
    assert_eq!(album_cells(&xml), ["照片, b.mp4", "照片, a.jpg"]);
    assert!(xml.contains("text=\"完成\""), "{xml}");
    assert!(!xml.contains("原图"), "only the chat album offers 原图");
    p.tap("content-desc", "照片, a.jpg").await;
    p.tap("text", "完成(1)").await;
    assert_eq!(sim.screen().name, "moments_composer");
    assert!(sim.sent().is_empty(), "the composer has not posted yet");
    sim.shutdown().await;
}
