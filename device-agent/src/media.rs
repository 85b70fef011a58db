//! What a media file is, read from its first bytes, and the name it is pushed
//! to the phone under: a picture or video gets the extension of its content,
//! since Android's gallery lists a file by its extension (a bare `img-1` is
//! not in the album, and a flow would pick another picture).

/// A kind of file recognised from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    /// The extension the content calls for, lower case.
    pub ext: &'static str,
    /// Whether the gallery lists it (pictures and videos).
    pub album: bool,
}

/// How many leading bytes [`sniff`] reads.
pub const HEAD_BYTES: usize = 32;

/// Extensions the same content goes by.
const SYNONYMS: [(&str, &str); 4] = [
    ("jpeg", "jpg"),
    ("jpe", "jpg"),
    ("heif", "heic"),
    ("m4v", "mp4"),
];

/// Extensions that name a kind of content; a file named with one that its
/// bytes contradict is renamed, not just extended.
const CONTENT_EXTENSIONS: [&str; 16] = [
    "jpg", "jpeg", "jpe", "png", "gif", "webp", "bmp", "heic", "heif", "mp4", "m4v", "3gp", "mov",
    "pdf", "zip", "bin",
];

/// Recognises pictures, videos and a few documents by their magic bytes.
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    let album = |ext| Some(Sniffed { ext, album: true });
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(0, &[0xFF, 0xD8, 0xFF]) {
        return album("jpg");
    }
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return album("png");
    }
    if at(0, b"GIF87a") || at(0, b"GIF89a") {
        return album("gif");
    }
    if at(0, b"RIFF") && at(8, b"WEBP") {
        return album("webp");
    }
    if at(0, b"BM") && head.len() >= 14 && at(6, &[0, 0, 0, 0]) {
        return album("bmp");
    }
    if at(4, b"ftyp") {
        let brand = head.get(8..12).unwrap_or_default();
        return match brand {
            b"heic" | b"heix" | b"heim" | b"heis" | b"mif1" | b"msf1" | b"hevc" => album("heic"),
            b"qt  " => album("mov"),
            [b'3', b'g', ..] => album("3gp"),
            _ => album("mp4"),
        };
    }
    if at(0, b"%PDF-") {
        return Some(Sniffed {
            ext: "pdf",
            album: false,
        });
    }
    None
}

/// The name to push `name` under, given its first bytes: a picture or video
/// whose name has no extension, or one its content contradicts, gets the
/// content's; anything else keeps its name.
pub fn pushed_name(name: &str, head: &[u8]) -> String {
    let Some(sniffed) = sniff(head) else {
        return name.to_owned();
    };
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => (stem, Some(ext)),
        _ => (name, None),
    };
    let Some(ext) = ext else {
        return format!("{name}.{}", sniffed.ext);
    };
    let lower = ext.to_ascii_lowercase();
    let canonical = SYNONYMS
        .iter()
        .find(|(alias, _)| *alias == lower)
        .map_or(lower.as_str(), |(_, ext)| ext);
    if canonical == sniffed.ext {
        name.to_owned()
    } else if CONTENT_EXTENSIONS.contains(&lower.as_str()) {
        if sniffed.album {
            format!("{stem}.{}", sniffed.ext)
        } else {
            name.to_owned()
        }
    } else if sniffed.album {
        format!("{name}.{}", sniffed.ext)
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const MP4: &[u8] = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom";
    const HEIC: &[u8] = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
    const PDF: &[u8] = b"%PDF-1.7\n";

    #[test]
    fn content_decides_the_extension_of_pictures_and_videos() {
        assert_eq!(pushed_name("img-1", JPEG), "img-1.jpg");
        assert_eq!(pushed_name("img-1", PNG), "img-1.png");
        assert_eq!(pushed_name("clip", MP4), "clip.mp4");
        assert_eq!(pushed_name("photo", HEIC), "photo.heic");
        assert_eq!(
            pushed_name("a.JPEG", JPEG),
            "a.JPEG",
            "a synonym in any case stays"
        );
        assert_eq!(
            pushed_name("a.png", JPEG),
            "a.jpg",
            "a contradicted extension is replaced"
        );
        assert_eq!(pushed_name("report.v2", PNG), "report.v2.png");
        assert_eq!(pushed_name(".png", PNG), ".png.png");
    }

    #[test]
    fn other_files_keep_their_names() {
        assert_eq!(pushed_name("price-list.pdf", PDF), "price-list.pdf");
        assert_eq!(pushed_name("price-list", PDF), "price-list.pdf");
        assert_eq!(pushed_name("notes.txt", b"hello"), "notes.txt");
        assert_eq!(pushed_name("blob", b""), "blob");
        assert_eq!(sniff(b"BM"), None, "two bytes are not a bitmap");
        assert_eq!(sniff(&[0xFF, 0xD8]), None);
    }
}
