//! Bind QR codes: reading the server address and the one-time bind code from
//! a picture, so that `youmi-agent bind --qr FILE` needs nothing typed.
//!
//! The server renders each bind code as a QR image
//! (`GET /api/v1/operator-accounts/{id}/bind-codes/{code}/qr.png`) whose text
//! is `{"v":1,"server":"<public url>","code":"<code>"}`. Operators hand the
//! agent that PNG, a screenshot of it, or a phone photo of a screen showing
//! it; [`read_file`] finds the QR code in any of them and checks its payload
//! into a [`BindQr`].
//!
//! rqrr does the geometry (finder patterns, rotation, perspective); what it
//! needs is a picture that thresholds cleanly into black and white. A PNG
//! from the server reads at the first try. A photo may not, because of glare,
//! a brightness gradient across the screen, blur or sensor noise, so the image
//! is tried in several prepared versions, cheapest first, until one of them
//! yields a bind code (see [`decode_image`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, ImageFormat, Luma};
use rqrr::{BitGrid, Grid, PreparedImage};
use serde_json::Value;
use tracing::{debug, warn};

/// The version of the bind QR payload (`"v"`) this agent reads.
pub const BIND_QR_VERSION: u64 = 1;

/// Files larger than this are refused before they are read: no QR picture is
/// anywhere near it, and reading a wrong, huge file would only waste memory.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Larger images are first brought down to this long side. It bounds the time
/// and memory of a scan; a QR code that still has too few pixels per module
/// at this size would be unreadable in the photo anyway.
const MAX_WORKING_SIDE: u32 = 3000;

/// The long sides of the downscaled versions tried for large photos: shrinking
/// averages away sensor noise and JPEG artefacts and sharpens what blur spread
/// over many pixels.
const DOWNSCALED_SIDES: [u32; 2] = [1200, 600];

/// How much of a QR code's text an error shows: enough to recognise it.
const MAX_SHOWN_CHARS: usize = 80;

/// A pixel is black in the adaptive threshold when it is this many percent
/// darker than the mean of its neighbourhood.
const ADAPTIVE_PERCENT: u64 = 12;

// The adaptive threshold sums pixels in u32: the largest working image must fit.
const _: () = assert!((MAX_WORKING_SIDE as u64).pow(2) * 255 < u32::MAX as u64);

/// What a bind QR code says: where the server is and the bind code to present
/// there, ready for [`crate::bind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindQr {
    /// The server's public URL, as the server put it in the code; it has been
    /// checked to be an `http://` or `https://` address the agent can use.
    pub server: String,
    /// The one-time bind code, trimmed and not empty.
    pub code: String,
}

/// Why no bind code could be taken from a picture. The messages do not name
/// the file: the caller knows it and says it once.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The file could not be read (missing, a directory, no permission).
    #[error("cannot read the file: {0}")]
    Read(#[source] std::io::Error),
    /// The file is not a PNG or JPEG image, or is a damaged one.
    #[error("the file is not a png or jpeg image: {reason}")]
    NotAnImage {
        /// What was found instead, or the decoder's complaint.
        reason: String,
    },
    /// No QR code could be found and read in the image.
    #[error(
        "no readable qr code found in the image (for a photo: hold the camera straight \
         in front of the code, let it fill a good part of the picture, avoid glare)"
    )]
    NoQrCode,
    /// The image shows more than one different bind code; binding with either
    /// one would be a guess.
    #[error("the image shows {count} different bind qr codes; crop it to the one to use")]
    SeveralBindCodes {
        /// How many different bind codes were read.
        count: usize,
    },
    /// A QR code was read, but it is not a Youmi bind code (a web address,
    /// a payment code, a damaged payload).
    #[error("the qr code is not a youmi bind code ({reason}); it says \"{content}\"")]
    NotABindCode {
        /// The QR code's text, shortened and with control characters blanked,
        /// so that the operator can tell what was scanned.
        content: String,
        /// What makes it not a bind code.
        reason: String,
    },
    /// A bind code in a newer format than this agent knows.
    #[error(
        "the bind qr code has format version {version}, this agent reads version \
         {BIND_QR_VERSION}; update youmi-agent"
    )]
    UnsupportedVersion {
        /// The `"v"` of the payload.
        version: u64,
    },
}

impl BindQr {
    /// Checks the text of a QR code: a JSON object with `"v": 1`, `"server"`
    /// an `http://` or `https://` URL, and a non-empty `"code"`. Other fields
    /// are ignored, so that the server can add hints without breaking agents.
    pub fn parse(text: &str) -> Result<BindQr, QrError> {
        let not_bind = |reason: &str| QrError::NotABindCode {
            content: shorten(text),
            reason: reason.to_owned(),
        };
        let value: Value =
            serde_json::from_str(text.trim()).map_err(|_| not_bind("it is not json"))?;
        let Value::Object(fields) = value else {
            return Err(not_bind("it is not a json object"));
        };
        let version = fields
            .get("v")
            .ok_or_else(|| not_bind("it has no format version \"v\""))?
            .as_u64()
            .ok_or_else(|| not_bind("its format version \"v\" is not a whole number"))?;
        if version != BIND_QR_VERSION {
            return Err(QrError::UnsupportedVersion { version });
        }
        let server = fields
            .get("server")
            .and_then(Value::as_str)
            .map(str::trim)
            .ok_or_else(|| not_bind("it has no \"server\""))?;
        crate::server_base(server).map_err(|error| not_bind(&error.to_string()))?;
        let code = fields
            .get("code")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|code| !code.is_empty())
            .ok_or_else(|| not_bind("it has no \"code\""))?;
        Ok(BindQr {
            server: server.to_owned(),
            code: code.to_owned(),
        })
    }
}

/// Reads the bind code from a PNG or JPEG file: the server's QR image, a
/// screenshot, or a photo of a screen showing it.
pub fn read_file(path: &Path) -> Result<BindQr, QrError> {
    let size = std::fs::metadata(path).map_err(QrError::Read)?.len();
    if size > MAX_FILE_BYTES {
        return Err(QrError::NotAnImage {
            reason: format!(
                "it is {} MiB, more than the {} MiB a qr picture could need",
                size / (1024 * 1024),
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        });
    }
    let bytes = std::fs::read(path).map_err(QrError::Read)?;
    decode_bytes(&bytes)
}

/// Like [`read_file`], for an image already in memory (the PNG the server's
/// QR route answers, say).
pub fn decode_bytes(bytes: &[u8]) -> Result<BindQr, QrError> {
    let format = image::guess_format(bytes).map_err(|_| QrError::NotAnImage {
        reason: "its content is not in any image format".to_owned(),
    })?;
    if !matches!(format, ImageFormat::Png | ImageFormat::Jpeg) {
        return Err(QrError::NotAnImage {
            reason: format!("it is {}", format.to_mime_type()),
        });
    }
    let image = image::load_from_memory_with_format(bytes, format).map_err(|error| {
        QrError::NotAnImage {
            reason: error.to_string(),
        }
    })?;
    decode_image(&image)
}

/// Finds the bind code in a decoded image.
///
/// The image is made grey (transparency over white, as a viewer shows it) and
/// then scanned at its own size and, when it is large, at smaller sizes; at
/// each size three versions are tried, stopping at the first bind code:
/// 1. as it is, with rqrr's own thresholding;
/// 2. with its contrast stretched, for dim or washed-out photos;
/// 3. through an adaptive threshold against the mean of each pixel's
///    neighbourhood, for gradients and glare across the picture.
///
/// Every QR code read on the way counts: two different bind codes are
/// [`QrError::SeveralBindCodes`], a bind code next to another kind of QR code
/// wins, and without a bind code the most telling error is returned.
pub fn decode_image(image: &DynamicImage) -> Result<BindQr, QrError> {
    let gray = limit_side(gray_on_white(image), MAX_WORKING_SIDE);
    let mut seen = Seen::default();
    for scaled in scaled_versions(gray) {
        let stretched = contrast_stretch(&scaled);
        let base = stretched.as_ref().unwrap_or(&scaled);

        seen.add(scan("as is", || {
            read_grids(PreparedImage::prepare(scaled.clone()).detect_grids())
        }));
        if seen.has_bind_code() {
            break;
        }
        if let Some(stretched) = &stretched {
            seen.add(scan("contrast stretched", || {
                read_grids(PreparedImage::prepare(stretched.clone()).detect_grids())
            }));
            if seen.has_bind_code() {
                break;
            }
        }
        let black = adaptive_threshold(base);
        let width = base.width() as usize;
        seen.add(scan("adaptive threshold", || {
            read_grids(
                PreparedImage::prepare_from_bitmap(width, black.len() / width.max(1), |x, y| {
                    black[y * width + x]
                })
                .detect_grids(),
            )
        }));
        if seen.has_bind_code() {
            break;
        }
    }
    seen.into_result()
}

/// The QR codes read so far, in the order they were first read.
#[derive(Default)]
struct Seen {
    /// Each distinct text once, with what it means.
    texts: Vec<(String, Result<BindQr, QrError>)>,
}

impl Seen {
    fn add(&mut self, texts: Vec<String>) {
        for text in texts {
            if !self.texts.iter().any(|(seen, _)| *seen == text) {
                let parsed = BindQr::parse(&text);
                self.texts.push((text, parsed));
            }
        }
    }

    fn has_bind_code(&self) -> bool {
        self.texts.iter().any(|(_, parsed)| parsed.is_ok())
    }

    /// One bind code is the answer. Without one, a bind code in a newer format
    /// says more than a foreign QR code, which says more than nothing.
    fn into_result(self) -> Result<BindQr, QrError> {
        let mut codes: Vec<BindQr> = Vec::new();
        let mut newer = None;
        let mut foreign = None;
        for (_, parsed) in self.texts {
            match parsed {
                // The same code can be written in two texts (spacing, field
                // order); it is still one code.
                Ok(code) => {
                    if !codes.contains(&code) {
                        codes.push(code);
                    }
                }
                Err(error @ QrError::UnsupportedVersion { .. }) => {
                    newer.get_or_insert(error);
                }
                Err(error) => {
                    foreign.get_or_insert(error);
                }
            }
        }
        match codes.len() {
            1 => Ok(codes.remove(0)),
            0 => Err(newer.or(foreign).unwrap_or(QrError::NoQrCode)),
            count => Err(QrError::SeveralBindCodes { count }),
        }
    }
}

/// Runs one scan. rqrr is known to panic on some degenerate pictures (a
/// perspective it cannot map); such a panic means only that this version of
/// the image yields nothing, and the other versions are still tried.
fn scan(version: &str, read: impl FnOnce() -> Vec<String>) -> Vec<String> {
    match catch_unwind(AssertUnwindSafe(read)) {
        Ok(texts) => {
            debug!(version, found = texts.len(), "scanned for qr codes");
            texts
        }
        Err(_) => {
            warn!(
                version,
                "the qr reader failed on this version of the image; trying others"
            );
            Vec::new()
        }
    }
}

/// The texts of the grids rqrr found that decode; a grid that does not (a
/// false finder pattern, a damaged code) is skipped.
fn read_grids<G: BitGrid>(grids: Vec<Grid<G>>) -> Vec<String> {
    let mut texts = Vec::new();
    for grid in grids {
        let mut bytes = Vec::new();
        match grid.decode_to(&mut bytes) {
            Ok(_) => texts.push(String::from_utf8_lossy(&bytes).into_owned()),
            Err(error) => debug!(%error, "a qr-like pattern did not decode"),
        }
    }
    texts
}

/// The image in grey, with transparent parts over white: a PNG whose
/// background is transparent black must not turn into a black picture.
fn gray_on_white(image: &DynamicImage) -> GrayImage {
    if !image.color().has_alpha() {
        return image.to_luma8();
    }
    let rgba = image.to_rgba8();
    GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        // Rec. 709 luma, in ten-thousandths, as `image` converts colour to grey.
        let luma = (2126 * u32::from(r) + 7152 * u32::from(g) + 722 * u32::from(b)) / 10_000;
        let alpha = u32::from(a);
        let blended = (luma * alpha + 255 * (255 - alpha)) / 255;
        Luma([u8::try_from(blended).unwrap_or(u8::MAX)])
    })
}

/// The image with its long side at most `max_side`.
fn limit_side(gray: GrayImage, max_side: u32) -> GrayImage {
    let long = gray.width().max(gray.height());
    if long <= max_side {
        return gray;
    }
    resize_to(&gray, max_side)
}

/// Resizes so that the long side is `side`, keeping the aspect ratio.
fn resize_to(gray: &GrayImage, side: u32) -> GrayImage {
    let long = u64::from(gray.width().max(gray.height()).max(1));
    let scale = |length: u32| {
        u32::try_from((u64::from(length) * u64::from(side) / long).max(1)).unwrap_or(side)
    };
    image::imageops::resize(
        gray,
        scale(gray.width()),
        scale(gray.height()),
        FilterType::Triangle,
    )
}

/// The image itself, then the downscaled versions that are clearly smaller.
fn scaled_versions(gray: GrayImage) -> impl Iterator<Item = GrayImage> {
    let long = gray.width().max(gray.height());
    let smaller: Vec<GrayImage> = DOWNSCALED_SIDES
        .iter()
        .filter(|side| u64::from(**side) * 5 < u64::from(long) * 4)
        .map(|side| resize_to(&gray, *side))
        .collect();
    std::iter::once(gray).chain(smaller)
}

/// The image with its darkest percent of pixels mapped to black and its
/// brightest percent to white; `None` when that changes little (a rendered
/// QR code already spans the range) or there is no contrast to stretch.
fn contrast_stretch(gray: &GrayImage) -> Option<GrayImage> {
    let mut histogram = [0u64; 256];
    for pixel in gray.pixels() {
        histogram[usize::from(pixel.0[0])] += 1;
    }
    let total: u64 = histogram.iter().sum();
    let clip = total / 100;
    let mut dark = 0;
    let low = (0..256)
        .find(|&level| {
            dark += histogram[level];
            dark > clip
        })
        .unwrap_or(255);
    let mut bright = 0;
    let high = (0..256)
        .rev()
        .find(|&level| {
            bright += histogram[level];
            bright > clip
        })
        .unwrap_or(0);
    if high <= low + 16 || (low <= 8 && high >= 247) {
        return None;
    }
    let mut table = [0u8; 256];
    for (level, entry) in table.iter_mut().enumerate() {
        let stretched = (level.clamp(low, high) - low) * 255 / (high - low);
        *entry = u8::try_from(stretched).unwrap_or(u8::MAX);
    }
    let mut out = gray.clone();
    for pixel in out.pixels_mut() {
        pixel.0[0] = table[usize::from(pixel.0[0])];
    }
    Some(out)
}

/// Bradley's adaptive threshold: a pixel is black when it is clearly darker
/// than the mean of the square around it, so that a gradient or glare across
/// the picture does not swallow half of the code. The square is an eighth of
/// the short side: several modules of any QR code that fills a fair part of
/// the picture. Returns the black pixels row by row.
fn adaptive_threshold(gray: &GrayImage) -> Vec<bool> {
    let (width, height) = (gray.width() as usize, gray.height() as usize);
    let radius = (width.min(height) / 16).max(4);
    // integral[y * stride + x] is the sum of the pixels above and left
    // of (x, y); u32 holds it (see the assertion on MAX_WORKING_SIDE).
    let stride = width + 1;
    let mut integral = vec![0u32; stride * (height + 1)];
    for y in 0..height {
        let mut row_sum = 0u32;
        for x in 0..width {
            row_sum += u32::from(gray.get_pixel(x as u32, y as u32).0[0]);
            integral[(y + 1) * stride + x + 1] = integral[y * stride + x + 1] + row_sum;
        }
    }
    let mut black = Vec::with_capacity(width * height);
    for y in 0..height {
        let (top, bottom) = (y.saturating_sub(radius), (y + radius + 1).min(height));
        for x in 0..width {
            let (left, right) = (x.saturating_sub(radius), (x + radius + 1).min(width));
            let corner = |row: usize, column: usize| u64::from(integral[row * stride + column]);
            let sum = corner(bottom, right) + corner(top, left)
                - corner(top, right)
                - corner(bottom, left);
            let area = ((bottom - top) * (right - left)) as u64;
            let pixel = u64::from(gray.get_pixel(x as u32, y as u32).0[0]);
            black.push(pixel * area * 100 < sum * (100 - ADAPTIVE_PERCENT));
        }
    }
    black
}

/// The start of a QR code's text, fit to show in one line of an error.
fn shorten(text: &str) -> String {
    let mut shown: String = text
        .trim()
        .chars()
        .take(MAX_SHOWN_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.trim().chars().count() > MAX_SHOWN_CHARS {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bind_payload_parses() {
        let qr = BindQr::parse(
            r#"{"v":1,"server":"https://youmi.example.com/rpa","code":" K7P2M9XQ4R "}"#,
        )
        .unwrap();
        assert_eq!(
            qr,
            BindQr {
                server: "https://youmi.example.com/rpa".to_owned(),
                code: "K7P2M9XQ4R".to_owned(),
            }
        );
        // Fields a later server may add do not stop this agent.
        let qr =
            BindQr::parse(r#"{"code":"ABC","hint":"x","server":"http://10.0.0.2:8080","v":1}"#)
                .unwrap();
        assert_eq!(qr.code, "ABC");
    }

    #[test]
    fn payloads_that_are_not_bind_codes_say_why() {
        for (text, reason) in [
            ("https://example.com/pay?id=1", "not json"),
            ("[1,2]", "not a json object"),
            (r#"{"server":"http://a","code":"X"}"#, "no format version"),
            (
                r#"{"v":"1","server":"http://a","code":"X"}"#,
                "not a whole number",
            ),
            (r#"{"v":1,"code":"X"}"#, "no \"server\""),
            (r#"{"v":1,"server":"ftp://a","code":"X"}"#, "http or https"),
            (r#"{"v":1,"server":"http://a","code":"  "}"#, "no \"code\""),
            (r#"{"v":1,"server":"http://a","code":7}"#, "no \"code\""),
        ] {
            match BindQr::parse(text) {
                Err(QrError::NotABindCode {
                    content,
                    reason: why,
                }) => {
                    assert!(why.contains(reason), "{text}: {why}");
                    assert_eq!(content, text, "short texts are shown whole");
                }
                other => panic!("{text}: expected not a bind code, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_newer_format_is_named_as_such() {
        let error = BindQr::parse(r#"{"v":2,"server":"http://a","code":"X"}"#).unwrap_err();
        assert!(matches!(error, QrError::UnsupportedVersion { version: 2 }));
        assert!(error.to_string().contains("update youmi-agent"), "{error}");
    }

    #[test]
    fn long_contents_are_shortened_and_control_characters_blanked() {
        let text = format!("line one\nline two {}", "x".repeat(200));
        let shown = shorten(&text);
        assert!(shown.starts_with("line one line two"), "{shown}");
        assert_eq!(shown.chars().count(), MAX_SHOWN_CHARS + 1);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn two_texts_of_one_code_are_one_code_and_two_codes_are_refused() {
        let mut seen = Seen::default();
        seen.add(vec![
            r#"{"v":1,"server":"http://a","code":"X"}"#.to_owned(),
            r#"{"code":"X","server":"http://a","v":1}"#.to_owned(),
            "https://example.com".to_owned(),
        ]);
        assert_eq!(seen.into_result().unwrap().code, "X");

        let mut seen = Seen::default();
        seen.add(vec![
            r#"{"v":1,"server":"http://a","code":"X"}"#.to_owned(),
            r#"{"v":1,"server":"http://a","code":"Y"}"#.to_owned(),
        ]);
        assert!(matches!(
            seen.into_result(),
            Err(QrError::SeveralBindCodes { count: 2 })
        ));

        let mut seen = Seen::default();
        seen.add(vec![
            "https://example.com".to_owned(),
            r#"{"v":3,"server":"http://a","code":"X"}"#.to_owned(),
        ]);
        assert!(matches!(
            seen.into_result(),
            Err(QrError::UnsupportedVersion { version: 3 })
        ));
        assert!(matches!(
            Seen::default().into_result(),
            Err(QrError::NoQrCode)
        ));
    }

    #[test]
    fn contrast_is_stretched_only_where_it_is_missing() {
        let dim = GrayImage::from_fn(100, 10, |x, _| Luma([if x < 50 { 90 } else { 160 }]));
        let stretched = contrast_stretch(&dim).expect("a dim picture is stretched");
        assert_eq!(stretched.get_pixel(0, 0).0[0], 0);
        assert_eq!(stretched.get_pixel(99, 0).0[0], 255);

        let full = GrayImage::from_fn(100, 10, |x, _| Luma([if x < 50 { 0 } else { 255 }]));
        assert!(contrast_stretch(&full).is_none());
        let flat = GrayImage::from_pixel(100, 10, Luma([128]));
        assert!(contrast_stretch(&flat).is_none());
    }

    #[test]
    fn the_adaptive_threshold_follows_a_gradient() {
        // Dark marks on a background that goes from dim to bright: a single
        // global threshold would call the whole dim side black.
        let image = GrayImage::from_fn(200, 100, |x, y| {
            let background = 60 + x * 180 / 200;
            let mark = (x / 10) % 4 == 0 && (y / 10) % 4 == 0;
            Luma([u8::try_from(if mark { background / 3 } else { background }).unwrap()])
        });
        let black = adaptive_threshold(&image);
        for (x, y, expected) in [
            (5, 5, true),
            (25, 25, false),
            (165, 45, true),
            (185, 55, false),
        ] {
            assert_eq!(black[y * 200 + x], expected, "pixel ({x}, {y})");
        }
    }

    #[test]
    fn transparency_counts_as_white() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([0, 0, 0, 255]));
        let gray = gray_on_white(&DynamicImage::ImageRgba8(rgba));
        assert_eq!(gray.get_pixel(0, 0).0[0], 255);
        assert_eq!(gray.get_pixel(1, 0).0[0], 0);
    }
}
