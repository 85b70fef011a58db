//! `screencap -p`: a PNG of the current screen, drawn as one box per node. There is no
//! font rendering; tests that need the text read the UI dump instead.

use image::{ImageFormat, Rgb, RgbImage};

use crate::phone::{SCREEN_H, SCREEN_W};
use crate::ui::Node;

/// Renders the tree at full resolution and encodes it as PNG.
pub(crate) fn png(root: &Node) -> Result<Vec<u8>, image::ImageError> {
    let mut img = RgbImage::from_pixel(SCREEN_W as u32, SCREEN_H as u32, Rgb([237, 237, 237]));
    draw(&mut img, root, 0);
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)?;
    Ok(out.into_inner())
}

fn draw(img: &mut RgbImage, node: &Node, depth: u32) {
    let fill = if node.class.ends_with("Button") {
        Some(Rgb([7, 193, 96]))
    } else if node.class.ends_with("EditText") {
        Some(Rgb([255, 255, 255]))
    } else if node.resource_id.ends_with("dialog_root") || node.resource_id.ends_with("popup_menu")
    {
        Some(Rgb([250, 250, 250]))
    } else if !node.text.is_empty() {
        // A darker bar stands in for a line of text.
        Some(Rgb([90, 90, 90]))
    } else {
        None
    };
    let b = node.bounds;
    let clamp = |v: i32, max: i32| v.clamp(0, max) as u32;
    let (l, t) = (clamp(b.left, SCREEN_W), clamp(b.top, SCREEN_H));
    let (r, bt) = (clamp(b.right, SCREEN_W), clamp(b.bottom, SCREEN_H));
    if let Some(color) = fill {
        let (l2, t2, r2, b2) = if color == Rgb([90, 90, 90]) {
            // Text is drawn as a thin bar in the middle of its box.
            let mid = (t + bt) / 2;
            (l, mid.saturating_sub(6), r, (mid + 6).min(bt))
        } else {
            (l, t, r, bt)
        };
        for y in t2..b2 {
            for x in l2..r2 {
                img.put_pixel(x, y, color);
            }
        }
    }
    if depth > 0 && r > l && bt > t {
        let edge = Rgb([200, 200, 200]);
        for x in l..r {
            img.put_pixel(x, t, edge);
            img.put_pixel(x, bt - 1, edge);
        }
        for y in t..bt {
            img.put_pixel(l, y, edge);
            img.put_pixel(r - 1, y, edge);
        }
    }
    for child in &node.children {
        draw(img, child, depth + 1);
    }
}
