//! A size-capped rotating log file: `agent.log` grows up to `max_bytes`,
//! then becomes `agent.log.1` (`.1` becomes `.2`, and so on), and the
//! oldest beyond `keep` files in all is deleted. So a log never holds more
//! than `keep × max_bytes` on disk (one line over at most, a line longer than
//! `max_bytes` being written whole).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The current file's name; rotated ones add `.1`, `.2`, ...
pub const LOG_FILE: &str = "agent.log";

/// How large a log may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// The current file is rotated before it would pass this size.
    pub max_bytes: u64,
    /// How many files are kept in all (the current one and `keep - 1` old
    /// ones); at least 1.
    pub keep: usize,
}

impl Default for LogLimits {
    /// 5 MiB per file, 4 files: 20 MiB at most per log.
    fn default() -> Self {
        LogLimits {
            max_bytes: 5 * 1024 * 1024,
            keep: 4,
        }
    }
}

/// An open rotating log in one directory.
#[derive(Debug)]
pub struct RotatingFile {
    dir: PathBuf,
    limits: LogLimits,
    file: File,
    /// The current file's size.
    size: u64,
}

impl RotatingFile {
    /// Opens (or creates) `dir/agent.log` for appending.
    pub fn open(dir: &Path, limits: LogLimits) -> io::Result<RotatingFile> {
        fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            dir: dir.to_owned(),
            limits: LogLimits {
                max_bytes: limits.max_bytes.max(1),
                keep: limits.keep.max(1),
            },
            file,
            size,
        })
    }

    /// Appends one whole line (or lines), rotating first when it would push
    /// the current file past its cap.
    pub fn append(&mut self, line: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.limits.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.limits.keep;
        if keep == 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let numbered = |n: usize| self.dir.join(format!("{LOG_FILE}.{n}"));
        match fs::remove_file(numbered(keep - 1)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        for n in (1..keep - 1).rev() {
            match fs::rename(numbered(n), numbered(n + 1)) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
        }
        fs::rename(self.dir.join(LOG_FILE), numbered(1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(LOG_FILE))?;
        self.size = 0;
        Ok(())
    }
}

/// The log files in `dir`, newest first: `agent.log`, `agent.log.1`, ...
/// (those that exist, in an unbroken run from the current one's number).
pub fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let current = dir.join(LOG_FILE);
    if current.is_file() {
        files.push(current);
    }
    for n in 1.. {
        let path = dir.join(format!("{LOG_FILE}.{n}"));
        if !path.is_file() {
            break;
        }
        files.push(path);
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(dir: &Path) -> (usize, u64) {
        let files = fs::read_dir(dir).unwrap().count();
        let bytes = log_files(dir)
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum();
        (files, bytes)
    }

    #[test]
    fn the_cap_holds_however_much_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let limits = LogLimits {
            max_bytes: 100,
            keep: 3,
        };
        let mut log = RotatingFile::open(dir.path(), limits).unwrap();
        for i in 0..1_000 {
            log.append(format!("line {i:04} of the log\n").as_bytes())
                .unwrap();
        }
        let (files, bytes) = total(dir.path());
        assert_eq!(files, 3, "the current file and two old ones");
        assert!(bytes <= 300, "{bytes} bytes on disk");
        let newest = fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        assert!(newest.ends_with("line 0999 of the log\n"), "{newest}");
        let older = fs::read_to_string(dir.path().join("agent.log.1")).unwrap();
        let next: usize = newest[5..9].parse().unwrap();
        assert!(
            older.ends_with(&format!("line {:04} of the log\n", next - 1)),
            "agent.log.1 ends where agent.log begins: {older}"
        );
    }

    #[test]
    fn a_reopened_log_goes_on_counting_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let limits = LogLimits {
            max_bytes: 50,
            keep: 2,
        };
        RotatingFile::open(dir.path(), limits)
            .unwrap()
            .append(&[b'a'; 40])
            .unwrap();
        let mut log = RotatingFile::open(dir.path(), limits).unwrap();
        log.append(&[b'b'; 20]).unwrap();
        assert_eq!(
            fs::read(dir.path().join("agent.log.1")).unwrap(),
            [b'a'; 40]
        );
        assert_eq!(fs::read(dir.path().join(LOG_FILE)).unwrap(), [b'b'; 20]);
    }

    #[test]
    fn one_file_is_emptied_rather_than_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let limits = LogLimits {
            max_bytes: 10,
            keep: 1,
        };
        let mut log = RotatingFile::open(dir.path(), limits).unwrap();
        log.append(b"0123456789").unwrap();
        log.append(b"abc\n").unwrap();
        assert_eq!(fs::read(dir.path().join(LOG_FILE)).unwrap(), b"abc\n");
        assert_eq!(log_files(dir.path()).len(), 1);
    }
}
