//! The upload's archive: a `.tar.gz` (ustar) of the log files, newest first
//! (`logs/agent.log`, `logs/agent.log.1`, ...), then the evidence of failed
//! steps, newest task first (`evidence/<task_id>/...`: UI dumps,
//! screenshots, the summary), then `manifest.txt` naming what is in it and
//! what was left out. It is written as a stream and never grows past its
//! cap: before each file the compressed output is flushed and counted, and a
//! file that might not fit (counted at its raw size) is left out, and so is
//! everything after it.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use flate2::write::GzEncoder;
use flate2::Compression;

/// What goes into an archive.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The log files, newest first.
    pub logs: Vec<PathBuf>,
    /// The evidence directory (`<evidence>/<task_id>/<file>`).
    pub evidence_dir: PathBuf,
}

/// What an archive holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The names of the files in it, in order.
    pub included: Vec<String>,
    /// Files left out to keep under the cap.
    pub left_out: Vec<String>,
    /// Its size, compressed.
    pub bytes: u64,
}

/// Room kept for the manifest, the tar's end and gzip's trailer.
const RESERVE: u64 = 32 * 1024;
/// The most bytes of manifest text.
const MANIFEST_MAX: usize = 16 * 1024;
const BLOCK: usize = 512;

/// Counts what goes through.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The evidence files, newest task first, each with its archive name.
fn evidence_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let modified = |path: &Path| {
        fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or(UNIX_EPOCH)
    };
    let mut tasks: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    tasks.sort_by_key(|path| std::cmp::Reverse(modified(path)));
    let mut files = Vec::new();
    for task in tasks {
        let Ok(entries) = fs::read_dir(&task) else {
            continue;
        };
        let mut inside: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .collect();
        inside.sort();
        for file in inside {
            let (Some(task), Some(name)) = (task.file_name(), file.file_name()) else {
                continue;
            };
            let name = format!(
                "evidence/{}/{}",
                task.to_string_lossy(),
                name.to_string_lossy()
            );
            files.push((name, file));
        }
    }
    files
}

/// A ustar header for a regular file.
fn header(name: &str, size: u64, mtime: u64) -> io::Result<[u8; BLOCK]> {
    if name.len() > 100 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "name too long"));
    }
    let mut block = [0u8; BLOCK];
    let mut put = |at: usize, bytes: &[u8]| block[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, name.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{size:011o}\0").as_bytes());
    put(
        136,
        format!("{:011o}\0", mtime.min(0o77777777777)).as_bytes(),
    );
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(block)
}

/// Appends one file of `size` bytes read from `source` (cut or padded with
/// zeros to `size`, for a log that grows or rotates meanwhile).
fn append<W: Write>(
    out: &mut W,
    name: &str,
    size: u64,
    mtime: u64,
    source: impl Read,
) -> io::Result<()> {
    out.write_all(&header(name, size, mtime)?)?;
    let copied = io::copy(&mut source.take(size), out)?;
    io::copy(&mut io::repeat(0).take(size - copied), out)?;
    let rest = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
    io::copy(&mut io::repeat(0).take(rest), out)?;
    Ok(())
}

/// Writes the archive of `sources` to `out`, at most `cap` bytes.
pub fn write<W: Write>(out: W, sources: &Sources, cap: u64) -> io::Result<Summary> {
    let mut gz = GzEncoder::new(
        Counting {
            inner: out,
            written: 0,
        },
        Compression::default(),
    );
    let mut summary = Summary::default();
    let logs = sources.logs.iter().map(|path| {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        (format!("logs/{name}"), path.clone())
    });
    let files: Vec<(String, PathBuf)> = logs.chain(evidence_files(&sources.evidence_dir)).collect();
    let mut full = false;
    for (name, path) in files {
        let opened = File::open(&path).and_then(|file| {
            let metadata = file.metadata()?;
            let mtime = metadata
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            Ok((file, metadata.len(), mtime))
        });
        let Ok((file, size, mtime)) = opened else {
            // Gone since it was listed (a log rotated away, evidence cleared).
            continue;
        };
        gz.flush()?;
        let worst = size + size / 64 + 2 * BLOCK as u64 + 1024;
        if full || gz.get_ref().written + worst + RESERVE > cap || name.len() > 100 {
            full = full || name.len() <= 100;
            summary.left_out.push(name);
            continue;
        }
        append(&mut gz, &name, size, mtime, file)?;
        summary.included.push(name);
    }
    let mut manifest = String::from("Youmi agent log upload\n\nincluded:\n");
    for name in &summary.included {
        manifest.push_str(&format!("  {name}\n"));
    }
    if !summary.left_out.is_empty() {
        manifest.push_str("\nleft out to stay under the upload cap:\n");
        for name in &summary.left_out {
            manifest.push_str(&format!("  {name}\n"));
        }
    }
    if manifest.len() > MANIFEST_MAX {
        let mut end = MANIFEST_MAX;
        while !manifest.is_char_boundary(end) {
            end -= 1;
        }
        manifest.truncate(end);
        manifest.push_str("\n…\n");
    }
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    append(
        &mut gz,
        "manifest.txt",
        manifest.len() as u64,
        now,
        manifest.as_bytes(),
    )?;
    summary.included.push("manifest.txt".to_owned());
    gz.write_all(&[0u8; 2 * BLOCK])?;
    let mut counting = gz.finish()?;
    counting.flush()?;
    summary.bytes = counting.written;
    Ok(summary)
}

/// Reads a `.tar.gz` this module wrote: each file's name and content. For
/// tests, here and in the end-to-end suite.
pub fn read(archive: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(archive).read_to_end(&mut tar)?;
    let mut files = Vec::new();
    let mut at = 0;
    while at + BLOCK <= tar.len() && tar[at..at + BLOCK].iter().any(|&b| b != 0) {
        let block = &tar[at..at + BLOCK];
        let name_end = block[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&block[..name_end]).into_owned();
        let size_text = String::from_utf8_lossy(&block[124..135]).into_owned();
        let size = usize::from_str_radix(size_text.trim_matches(char::from(0)).trim(), 8)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad tar size"))?;
        let start = at + BLOCK;
        let content = tar
            .get(start..start + size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "tar cut short"))?;
        files.push((name, content.to_vec()));
        at = start + size.div_ceil(BLOCK) * BLOCK;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &Path) -> Sources {
        let logs = dir.join("logs");
        fs::create_dir_all(&logs).unwrap();
        fs::write(logs.join("agent.log"), "newest line\n").unwrap();
        fs::write(logs.join("agent.log.1"), "older line\n").unwrap();
        let task = dir.join("evidence").join("42");
        fs::create_dir_all(&task).unwrap();
        fs::write(task.join("ui.xml"), "<hierarchy/>").unwrap();
        Sources {
            logs: vec![logs.join("agent.log"), logs.join("agent.log.1")],
            evidence_dir: dir.join("evidence"),
        }
    }

    #[test]
    fn the_archive_holds_logs_evidence_and_a_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let summary = write(&mut out, &sources(dir.path()), 1 << 20).unwrap();
        assert_eq!(summary.bytes, out.len() as u64);
        let files = read(&out).unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "logs/agent.log",
                "logs/agent.log.1",
                "evidence/42/ui.xml",
                "manifest.txt"
            ]
        );
        assert_eq!(files[0].1, b"newest line\n");
        assert_eq!(files[2].1, b"<hierarchy/>");
    }

    #[test]
    fn the_cap_holds_with_incompressible_logs() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        fs::create_dir_all(&logs).unwrap();
        let mut paths = Vec::new();
        for n in 0..4 {
            // Random bytes do not compress: the worst case for the cap.
            let bytes: Vec<u8> = (0..100_000).map(|_| rand::random::<u8>()).collect();
            let path = logs.join(format!("agent.log.{n}"));
            fs::write(&path, bytes).unwrap();
            paths.push(path);
        }
        let cap = 250_000;
        let mut out = Vec::new();
        let summary = write(
            &mut out,
            &Sources {
                logs: paths,
                evidence_dir: dir.path().join("none"),
            },
            cap,
        )
        .unwrap();
        assert!(out.len() as u64 <= cap, "{} bytes", out.len());
        assert_eq!(
            summary.included,
            ["logs/agent.log.0", "logs/agent.log.1", "manifest.txt"]
        );
        assert_eq!(summary.left_out, ["logs/agent.log.2", "logs/agent.log.3"]);
        let manifest = &read(&out).unwrap()[2].1;
        assert!(String::from_utf8_lossy(manifest).contains("left out"));
    }
}
