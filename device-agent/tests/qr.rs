//! Binding by QR: the bind code is read from the server's PNG, from a JPEG,
//! and from a photo of a screen showing it; every picture that does not hold
//! exactly one bind code fails with the error that says why; and
//! `youmi-agent bind --qr FILE` binds with what the picture says.

mod support;

use std::io::Cursor;
use std::path::PathBuf;
use std::process::Stdio;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgb, RgbImage};
use qrcode::QrCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{FakeHttp, WAIT};
use tempfile::TempDir;
use tokio::process::Command;
use youmi_agent::qr::{self, BindQr, QrError};
use youmi_agent::Credentials;

/// The text the server puts in a bind QR code.
fn bind_payload(server: &str, code: &str) -> String {
    format!(r#"{{"v":1,"server":"{server}","code":"{code}"}}"#)
}

/// `text` as a QR code the way the server renders it: black on white, with a
/// quiet zone, at least 320 pixels wide.
fn render(text: &str) -> GrayImage {
    QrCode::new(text.as_bytes())
        .expect("the text fits in a qr code")
        .render::<Luma<u8>>()
        .min_dimensions(320, 320)
        .build()
}

fn png(image: &DynamicImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .expect("encode png");
    bytes
}

fn jpeg(image: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode_image(&image.to_rgb8())
        .expect("encode jpeg");
    bytes
}

/// Writes `bytes` to `name` in `dir` and returns the path.
fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write test image");
    path
}

/// `image` sampled at a point between pixels (bilinear), white outside it.
fn sample(image: &GrayImage, x: f64, y: f64) -> f64 {
    let at = |x: i64, y: i64| {
        if x < 0 || y < 0 || x >= i64::from(image.width()) || y >= i64::from(image.height()) {
            255.0
        } else {
            f64::from(image.get_pixel(x as u32, y as u32).0[0])
        }
    };
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
    let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

fn channel(value: f64) -> u8 {
    value.round().clamp(0.0, 255.0) as u8
}

/// A phone photo of a screen showing a QR image: the image enlarged, placed
/// off-centre and turned a few degrees, shown with a screen's weak contrast
/// on a background that goes from dim to bright, with glare, sensor noise and
/// a colour cast, a little out of focus, and saved as a JPEG of quality 70.
struct Photo {
    /// The photo's width and height.
    size: (u32, u32),
    /// How much larger the QR image appears than it is.
    scale: f64,
    /// The screen's black and white, before light and noise.
    black: f64,
    white: f64,
    /// How bright a glare spot over the upper right of the code is.
    glare: f64,
    /// Noise added to each pixel, up to this much either way.
    noise: f64,
    /// Gaussian blur (focus), 0 for none.
    blur: f32,
}

impl Photo {
    /// An ordinary photo: a hand-held phone, an office screen.
    fn ordinary() -> Photo {
        Photo {
            size: (1280, 960),
            scale: 1.5,
            black: 45.0,
            white: 195.0,
            glare: 0.0,
            noise: 20.0,
            blur: 1.4,
        }
    }

    fn take(&self, code: &GrayImage) -> Vec<u8> {
        let (width, height) = self.size;
        let (sin, cos) = 4.0f64.to_radians().sin_cos();
        let (centre_x, centre_y) = (f64::from(width) * 0.62, f64::from(height) * 0.44);
        let half = f64::from(code.width()) * self.scale / 2.0;
        let mut rng = StdRng::seed_from_u64(7);
        let photo = RgbImage::from_fn(width, height, |x, y| {
            // 0 at the top left, 1 at the bottom right: light falls unevenly.
            let light = (f64::from(x) / f64::from(width) + f64::from(y) / f64::from(height)) / 2.0;
            let (dx, dy) = (f64::from(x) - centre_x, f64::from(y) - centre_y);
            // Where this photo pixel falls on the turned screen.
            let (u, v) = (dx * cos + dy * sin, -dx * sin + dy * cos);
            let value = if u.abs() < half && v.abs() < half {
                let shade = sample(code, (u + half) / self.scale, (v + half) / self.scale) / 255.0;
                let (gx, gy) = (dx - half * 0.5, dy + half * 0.3);
                let spot = self.glare * (-(gx * gx + gy * gy) / (half * half * 0.25)).exp();
                self.black + (self.white - self.black) * shade + 40.0 * light + spot
            } else {
                60.0 + 120.0 * light
            };
            let noise: f64 = rng.gen_range(-self.noise..self.noise);
            Rgb([
                channel(value * 0.92 + noise),
                channel(value + noise),
                channel(value * 1.07 + noise),
            ])
        });
        let photo = if self.blur > 0.0 {
            image::imageops::blur(&photo, self.blur)
        } else {
            photo
        };
        jpeg(&DynamicImage::ImageRgb8(photo), 70)
    }
}

/// A white canvas with the given QR images side by side.
fn side_by_side(codes: &[GrayImage]) -> DynamicImage {
    let margin = 40;
    let width = codes.iter().map(|c| c.width() + margin).sum::<u32>() + margin;
    let height = codes.iter().map(GrayImage::height).max().unwrap_or(0) + 2 * margin;
    let mut canvas = GrayImage::from_pixel(width, height, Luma([255]));
    let mut x = margin;
    for code in codes {
        image::imageops::replace(&mut canvas, code, i64::from(x), i64::from(margin));
        x += code.width() + margin;
    }
    DynamicImage::ImageLuma8(canvas)
}

fn expected(server: &str, code: &str) -> BindQr {
    BindQr {
        server: server.to_owned(),
        code: code.to_owned(),
    }
}

#[test]
fn the_servers_png_and_a_jpeg_of_it_decode() {
    let dir = tempfile::tempdir().unwrap();
    let image = DynamicImage::ImageLuma8(render(&bind_payload(
        "https://youmi.example.com/rpa",
        "K7P2M9XQ4R",
    )));
    let want = expected("https://youmi.example.com/rpa", "K7P2M9XQ4R");

    let path = write(&dir, "bind.png", &png(&image));
    assert_eq!(qr::read_file(&path).unwrap(), want);
    let path = write(&dir, "bind.jpg", &jpeg(&image, 85));
    assert_eq!(qr::read_file(&path).unwrap(), want);
    // The file name does not matter, the content does.
    let path = write(&dir, "bind.bin", &jpeg(&image, 85));
    assert_eq!(qr::read_file(&path).unwrap(), want);
}

/// Reads the bind code from `photo` of the code for `http://192.168.1.20:8080`.
fn read_photo(photo: &Photo) -> Result<BindQr, QrError> {
    support::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let code = render(&bind_payload("http://192.168.1.20:8080", "ABCDEFGHJK"));
    let path = write(&dir, "photo.jpg", &photo.take(&code));
    qr::read_file(&path)
}

#[test]
fn a_photo_of_a_screen_showing_the_code_decodes() {
    assert_eq!(
        read_photo(&Photo::ordinary()).unwrap(),
        expected("http://192.168.1.20:8080", "ABCDEFGHJK")
    );
}

// The next photos are each too much for rqrr's own thresholding; they read
// only thanks to one of the prepared versions of the picture (set
// `TEST_LOG=1` to see which).

#[test]
fn a_washed_out_photo_decodes() {
    let photo = Photo {
        size: (900, 700),
        black: 105.0,
        white: 150.0,
        blur: 1.0,
        ..Photo::ordinary()
    };
    assert_eq!(read_photo(&photo).unwrap().code, "ABCDEFGHJK");
}

#[test]
fn a_dim_photo_with_glare_decodes() {
    let photo = Photo {
        size: (900, 700),
        black: 90.0,
        white: 160.0,
        glare: 120.0,
        noise: 15.0,
        blur: 1.0,
        ..Photo::ordinary()
    };
    assert_eq!(read_photo(&photo).unwrap().code, "ABCDEFGHJK");
}

#[test]
fn a_grainy_photo_decodes() {
    let photo = Photo {
        size: (1100, 800),
        scale: 2.2,
        noise: 90.0,
        blur: 0.0,
        ..Photo::ordinary()
    };
    assert_eq!(read_photo(&photo).unwrap().code, "ABCDEFGHJK");
}

#[test]
fn a_qr_code_that_is_not_a_bind_code_says_what_it_contains() {
    let url = "https://shop.example.com/offer?id=42";
    let image = DynamicImage::ImageLuma8(render(url));
    let error = qr::decode_bytes(&png(&image)).unwrap_err();
    match &error {
        QrError::NotABindCode { content, reason } => {
            assert_eq!(content, url);
            assert!(reason.contains("not json"), "{reason}");
        }
        other => panic!("expected not a bind code, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains("not a youmi bind code"), "{message}");
    assert!(message.contains(url), "{message}");
}

#[test]
fn a_bind_code_in_a_newer_format_is_refused_with_its_version() {
    let image = DynamicImage::ImageLuma8(render(
        r#"{"v":2,"server":"https://youmi.example.com","code":"K7P2M9XQ4R"}"#,
    ));
    let error = qr::decode_bytes(&png(&image)).unwrap_err();
    assert!(
        matches!(error, QrError::UnsupportedVersion { version: 2 }),
        "{error:?}"
    );
}

#[test]
fn one_picture_must_hold_exactly_one_bind_code() {
    let first = render(&bind_payload("http://10.0.0.5:8080", "ABCDEFGHJK"));
    let second = render(&bind_payload("http://10.0.0.5:8080", "MNPQRSTUVW"));
    let other = render("https://example.com/welcome");

    let error = qr::decode_image(&side_by_side(&[first.clone(), second])).unwrap_err();
    assert!(
        matches!(error, QrError::SeveralBindCodes { count: 2 }),
        "{error:?}"
    );
    assert!(error.to_string().contains("crop"), "{error}");

    // The same code shown twice is one code; another kind of QR code next to
    // it does not get in the way.
    let want = expected("http://10.0.0.5:8080", "ABCDEFGHJK");
    assert_eq!(
        qr::decode_image(&side_by_side(&[first.clone(), first.clone()])).unwrap(),
        want
    );
    assert_eq!(
        qr::decode_image(&side_by_side(&[other, first])).unwrap(),
        want
    );
}

#[test]
fn a_picture_without_a_qr_code_says_so() {
    let mut rng = StdRng::seed_from_u64(3);
    let noise = RgbImage::from_fn(480, 360, |x, y| {
        let value = 60.0 + f64::from(x + y) / 4.0 + rng.gen_range(-30.0..30.0);
        Rgb([channel(value), channel(value * 0.9), channel(value * 1.1)])
    });
    let error = qr::decode_bytes(&jpeg(&DynamicImage::ImageRgb8(noise), 70)).unwrap_err();
    assert!(matches!(error, QrError::NoQrCode), "{error:?}");

    let blank = DynamicImage::ImageLuma8(GrayImage::from_pixel(200, 200, Luma([255])));
    let error = qr::decode_bytes(&png(&blank)).unwrap_err();
    assert!(matches!(error, QrError::NoQrCode), "{error:?}");
}

#[test]
fn files_that_are_not_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = write(&dir, "code.png", b"K7P2M9XQ4R\n");
    assert!(matches!(
        qr::read_file(&text),
        Err(QrError::NotAnImage { .. })
    ));

    // An image format this agent does not read is named.
    let gif = write(&dir, "code.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;");
    match qr::read_file(&gif) {
        Err(QrError::NotAnImage { reason }) => assert!(reason.contains("gif"), "{reason}"),
        other => panic!("expected not an image, got {other:?}"),
    }

    // A PNG cut short is a damaged image.
    let image = DynamicImage::ImageLuma8(render("x"));
    let whole = png(&image);
    let cut = write(&dir, "cut.png", &whole[..whole.len() / 2]);
    assert!(matches!(
        qr::read_file(&cut),
        Err(QrError::NotAnImage { .. })
    ));

    for unreadable in [dir.path().join("missing.png"), dir.path().to_path_buf()] {
        match qr::read_file(&unreadable) {
            Err(QrError::Read(_)) => {}
            other => panic!(
                "{}: expected a read error, got {other:?}",
                unreadable.display()
            ),
        }
    }
}

fn agent() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_youmi-agent"));
    for (key, _) in std::env::vars() {
        if key.starts_with("YOUMI_AGENT_") {
            command.env_remove(key);
        }
    }
    command
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs the agent to its end: exit code, stdout, stderr.
async fn output(command: &mut Command) -> (Option<i32>, String, String) {
    let output = tokio::time::timeout(WAIT, command.output())
        .await
        .expect("the agent exits")
        .expect("run youmi-agent");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn state_dir(dir: &TempDir) -> PathBuf {
    dir.path().join("state")
}

#[tokio::test]
async fn bind_with_qr_presents_the_code_to_the_server_in_the_picture() {
    let http = FakeHttp::start(
        200,
        r#"{"device_id":"dev-qr","token":"tok-qr-secret","operator_account_id":5}"#,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let image = DynamicImage::ImageLuma8(render(&bind_payload(&http.url(), "QRCD234567")));
    let path = write(&dir, "bind.png", &png(&image));

    let (code, stdout, stderr) = output(
        agent()
            .args(["bind", "--qr"])
            .arg(&path)
            .arg("--state-dir")
            .arg(state_dir(&dir)),
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("device_id: dev-qr"), "{stdout}");
    assert!(!stdout.contains("tok-qr-secret") && !stderr.contains("tok-qr-secret"));

    assert_eq!(http.paths.lock().unwrap().as_slice(), ["/agent/v1/bind"]);
    let body: serde_json::Value = serde_json::from_str(&http.bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(body["code"], "QRCD234567");
    let credentials = Credentials::load(&state_dir(&dir)).unwrap();
    assert_eq!(credentials.server_url, http.url());
    assert_eq!(credentials.device_id, "dev-qr");
}

#[tokio::test]
async fn bind_takes_either_the_qr_or_the_server_and_code() {
    let dir = tempfile::tempdir().unwrap();
    let image = DynamicImage::ImageLuma8(render(&bind_payload("http://127.0.0.1:9", "X")));
    let path = write(&dir, "bind.png", &png(&image));

    let (code, _, stderr) = output(
        agent()
            .args(["bind", "--server", "http://127.0.0.1:9", "--qr"])
            .arg(&path),
    )
    .await;
    assert_eq!(code, Some(2), "a usage error: {stderr}");
    assert!(
        stderr.contains("--qr") && stderr.contains("--server"),
        "{stderr}"
    );

    // A code from the environment conflicts just as much: which one was meant
    // would be a guess.
    let (code, _, stderr) = output(
        agent()
            .env("YOUMI_AGENT_CODE", "ABCDEFGHJK")
            .args(["bind", "--qr"])
            .arg(&path),
    )
    .await;
    assert_eq!(code, Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("--code"), "{stderr}");

    let (code, _, stderr) = output(agent().arg("bind")).await;
    assert_eq!(code, Some(2), "a usage error: {stderr}");
    assert!(
        stderr.contains("--server") && stderr.contains("--code"),
        "{stderr}"
    );
}

#[tokio::test]
async fn bind_with_a_picture_without_a_bind_code_names_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let image = DynamicImage::ImageLuma8(render("https://example.com/welcome"));
    let path = write(&dir, "wrong.png", &png(&image));

    let (code, _, stderr) = output(
        agent()
            .args(["bind", "--qr"])
            .arg(&path)
            .arg("--state-dir")
            .arg(state_dir(&dir)),
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("not a youmi bind code"), "{stderr}");
    assert!(stderr.contains("https://example.com/welcome"), "{stderr}");
    assert!(!Credentials::path(&state_dir(&dir)).exists());
}
