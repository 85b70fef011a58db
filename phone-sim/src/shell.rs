//! A small `/system/bin/sh`: the command lines the executor sends (`;`, `&&`, `||`, `|`,
//! quoting, `$?`, `2>&1`, `sh -c`) and the Android commands a phone answers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::mpsc;

use crate::phone::{Input, Phone, ADB_KEYBOARD_IME, SCREEN_H, SCREEN_W, STOCK_IME, WECOM_PACKAGE};
use crate::Shared;

/// Output of a running command, in order, as the stream forwards it.
#[derive(Debug)]
pub(crate) enum Chunk {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// Marks `$?` inside a word until the command runs; NUL cannot appear in a shell word.
const STATUS_MARK: char = '\0';

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Op(&'static str),
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut chars = src.chars().peekable();
    let mut word = String::new();
    let mut in_word = false;
    let end_word = |toks: &mut Vec<Tok>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            toks.push(Tok::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => end_word(&mut toks, &mut word, &mut in_word),
            '\n' | ';' => {
                end_word(&mut toks, &mut word, &mut in_word);
                toks.push(Tok::Op(";"));
            }
            '&' => {
                end_word(&mut toks, &mut word, &mut in_word);
                if chars.peek() == Some(&'&') {
                    chars.next();
                    toks.push(Tok::Op("&&"));
                } else {
                    // Background jobs run to completion here; the phone is single-threaded.
                    toks.push(Tok::Op(";"));
                }
            }
            '|' => {
                end_word(&mut toks, &mut word, &mut in_word);
                if chars.peek() == Some(&'|') {
                    chars.next();
                    toks.push(Tok::Op("||"));
                } else {
                    toks.push(Tok::Op("|"));
                }
            }
            '>' => {
                let fd2 = in_word && word == "2";
                if fd2 {
                    word.clear();
                    in_word = false;
                } else {
                    end_word(&mut toks, &mut word, &mut in_word);
                }
                if fd2 && chars.peek() == Some(&'&') {
                    chars.next();
                    match chars.next() {
                        Some('1') => toks.push(Tok::Op("2>&1")),
                        _ => return Err("syntax error: bad fd number".to_owned()),
                    }
                } else if chars.peek() == Some(&'>') {
                    chars.next();
                    toks.push(Tok::Op(if fd2 { "2>>" } else { ">>" }));
                } else {
                    toks.push(Tok::Op(if fd2 { "2>" } else { ">" }));
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("syntax error: unterminated quoted string".to_owned()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => {
                                return Err("syntax error: unterminated quoted string".to_owned())
                            }
                        },
                        Some('$') => expand_var(&mut chars, &mut word),
                        Some(c) => word.push(c),
                        None => return Err("syntax error: unterminated quoted string".to_owned()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    if c != '\n' {
                        word.push(c);
                    }
                }
            }
            '$' => {
                in_word = true;
                expand_var(&mut chars, &mut word);
            }
            '#' if !in_word => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        toks.push(Tok::Op(";"));
                        break;
                    }
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut toks, &mut word, &mut in_word);
    Ok(toks)
}

fn expand_var(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, word: &mut String) {
    match chars.peek() {
        Some('?') => {
            chars.next();
            word.push(STATUS_MARK);
        }
        Some(c) if c.is_ascii_alphabetic() || *c == '_' || *c == '{' => {
            let braced = *c == '{';
            if braced {
                chars.next();
            }
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' || (braced && c == '?') {
                    name.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            if braced && chars.peek() == Some(&'}') {
                chars.next();
            }
            match name.as_str() {
                "?" => word.push(STATUS_MARK),
                "EXTERNAL_STORAGE" => word.push_str("/sdcard"),
                "HOME" => word.push('/'),
                "PATH" => word.push_str("/product/bin:/apex/com.android.runtime/bin:/system/bin"),
                _ => {}
            }
        }
        _ => word.push('$'),
    }
}

#[derive(Debug, Default)]
struct Simple {
    argv: Vec<String>,
    out_file: Option<(String, bool)>,
    err_null: bool,
    err_to_out: bool,
}

#[derive(Debug)]
struct AndOr {
    /// The operator joining this pipeline to the previous one: `;`, `&&` or `||`.
    join: &'static str,
    pipeline: Vec<Simple>,
}

fn parse(toks: Vec<Tok>) -> Result<Vec<AndOr>, String> {
    let mut list = Vec::new();
    let mut join = ";";
    let mut pipeline: Vec<Simple> = Vec::new();
    let mut cur = Simple::default();
    let mut it = toks.into_iter().peekable();
    while let Some(t) = it.next() {
        match t {
            Tok::Word(w) => cur.argv.push(w),
            Tok::Op(op @ (">" | ">>" | "2>" | "2>>")) => {
                let Some(Tok::Word(target)) = it.next() else {
                    return Err(format!("syntax error: expected a file after '{op}'"));
                };
                if op.starts_with('2') {
                    if target == "/dev/null" {
                        cur.err_null = true;
                    }
                } else {
                    cur.out_file = Some((target, op == ">>"));
                }
            }
            Tok::Op("2>&1") => cur.err_to_out = true,
            Tok::Op("|") => {
                if cur.argv.is_empty() {
                    return Err("syntax error: unexpected '|'".to_owned());
                }
                pipeline.push(std::mem::take(&mut cur));
            }
            Tok::Op(op) => {
                if !cur.argv.is_empty() {
                    pipeline.push(std::mem::take(&mut cur));
                }
                if pipeline.is_empty() {
                    if op == ";" {
                        continue;
                    }
                    return Err(format!("syntax error: unexpected '{op}'"));
                }
                list.push(AndOr {
                    join,
                    pipeline: std::mem::take(&mut pipeline),
                });
                join = op;
            }
        }
    }
    if !cur.argv.is_empty() {
        pipeline.push(cur);
    } else if !pipeline.is_empty() || join != ";" {
        return Err("syntax error: unexpected end of file".to_owned());
    }
    if !pipeline.is_empty() {
        list.push(AndOr { join, pipeline });
    }
    Ok(list)
}

/// Runs one command line as `sh -c` would and returns its exit status. Output goes to
/// `out` as it is produced; the future may never finish (`getevent`, `sleep`), and the
/// caller drops it when the stream closes.
pub(crate) fn run_script<'a>(
    sim: &'a Arc<Shared>,
    script: &'a str,
    out: &'a mpsc::Sender<Chunk>,
) -> Pin<Box<dyn Future<Output = i32> + Send + 'a>> {
    Box::pin(async move {
        let list = match lex(script).and_then(parse) {
            Ok(list) => list,
            Err(e) => {
                let _ = out
                    .send(Chunk::Stderr(format!("/system/bin/sh: {e}\n").into_bytes()))
                    .await;
                return 2;
            }
        };
        let mut status = 0;
        for item in list {
            match item.join {
                "&&" if status != 0 => continue,
                "||" if status == 0 => continue,
                _ => {}
            }
            status = run_pipeline(sim, item.pipeline, status, out).await;
            if status & EXIT_REQUESTED != 0 {
                return status & 0xff;
            }
        }
        status
    })
}

/// A private status bit that means "the `exit` builtin ran", with the code in the low
/// byte; real statuses fit in 0..=255.
const EXIT_REQUESTED: i32 = 1 << 20;

async fn run_pipeline(
    sim: &Arc<Shared>,
    pipeline: Vec<Simple>,
    last: i32,
    out: &mpsc::Sender<Chunk>,
) -> i32 {
    let n = pipeline.len();
    let mut stdin = Vec::new();
    let mut status = 0;
    for (i, mut cmd) in pipeline.into_iter().enumerate() {
        let status_text = last.to_string();
        for a in &mut cmd.argv {
            if a.contains(STATUS_MARK) {
                *a = a.replace(STATUS_MARK, &status_text);
            }
        }
        let is_last = i + 1 == n;
        // Only the last command of a pipeline with no redirection streams straight out;
        // the rest are buffered, which is all `getevent`-style streaming needs.
        let live = is_last && cmd.out_file.is_none() && !cmd.err_null && !cmd.err_to_out;
        let mut io = Io {
            out: Vec::new(),
            err: Vec::new(),
            stdin: std::mem::take(&mut stdin),
            live: live.then_some(out),
        };
        status = exec(sim, &cmd.argv, &mut io).await;
        if status & EXIT_REQUESTED != 0 {
            io.flush().await;
            return status;
        }
        if cmd.err_to_out {
            let err = std::mem::take(&mut io.err);
            io.out.extend(err);
        }
        if cmd.err_null {
            io.err.clear();
        }
        if let Some((path, append)) = &cmd.out_file {
            let data = std::mem::take(&mut io.out);
            if path != "/dev/null" {
                if let Err(e) = redirect(sim, path, data, *append) {
                    io.err.extend(format!("/system/bin/sh: {e}\n").into_bytes());
                    status = 1;
                }
            }
        }
        if !io.err.is_empty() {
            let _ = out.send(Chunk::Stderr(std::mem::take(&mut io.err))).await;
        }
        if is_last {
            if !io.out.is_empty() {
                let _ = out.send(Chunk::Stdout(io.out)).await;
            }
        } else {
            stdin = io.out;
        }
    }
    status
}

fn redirect(sim: &Shared, path: &str, data: Vec<u8>, append: bool) -> Result<(), String> {
    let mut phone = sim.phone();
    let mut all = if append {
        phone.file(path).map(|f| f.data.clone()).unwrap_or_default()
    } else {
        Vec::new()
    };
    all.extend(data);
    phone.write_file(path, all, 0o660)
}

struct Io<'a> {
    out: Vec<u8>,
    err: Vec<u8>,
    stdin: Vec<u8>,
    live: Option<&'a mpsc::Sender<Chunk>>,
}

impl Io<'_> {
    fn say(&mut self, s: impl AsRef<str>) {
        self.out.extend_from_slice(s.as_ref().as_bytes());
    }

    fn fail(&mut self, s: impl AsRef<str>) {
        self.err.extend_from_slice(s.as_ref().as_bytes());
    }

    /// Sends what is buffered now, for commands that stream.
    async fn flush(&mut self) {
        if let Some(live) = self.live {
            if !self.out.is_empty() {
                let _ = live
                    .send(Chunk::Stdout(std::mem::take(&mut self.out)))
                    .await;
            }
            if !self.err.is_empty() {
                let _ = live
                    .send(Chunk::Stderr(std::mem::take(&mut self.err)))
                    .await;
            }
        }
    }
}

async fn exec(sim: &Arc<Shared>, argv: &[String], io: &mut Io<'_>) -> i32 {
    let Some(name) = argv.first() else { return 0 };
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    let name = name.rsplit('/').next().unwrap_or(name);
    match name {
        "sh" => {
            if args.first() == Some(&"-c") {
                let Some(script) = args.get(1) else {
                    io.fail("/system/bin/sh: -c: option requires an argument\n");
                    return 2;
                };
                let (tx, mut rx) = mpsc::channel(64);
                let script = script.to_string();
                let sim2 = sim.clone();
                let run = async move { run_script(&sim2, &script, &tx).await };
                let mut run = std::pin::pin!(run);
                // Forward the inner script's output as it comes, so a streaming inner
                // command still streams.
                let status = loop {
                    tokio::select! {
                        status = &mut run => break status,
                        Some(chunk) = rx.recv() => {
                            match chunk {
                                Chunk::Stdout(b) => io.out.extend(b),
                                Chunk::Stderr(b) => io.err.extend(b),
                            }
                            io.flush().await;
                        }
                    }
                };
                while let Ok(chunk) = rx.try_recv() {
                    match chunk {
                        Chunk::Stdout(b) => io.out.extend(b),
                        Chunk::Stderr(b) => io.err.extend(b),
                    }
                }
                status
            } else {
                io.fail("/system/bin/sh: interactive sh inside a command is not supported\n");
                2
            }
        }
        "exit" => {
            let code = args
                .first()
                .and_then(|a| a.parse::<i32>().ok())
                .unwrap_or(0);
            EXIT_REQUESTED | (code & 0xff)
        }
        "true" => 0,
        "false" => 1,
        "echo" => {
            let (newline, rest) = match args.first() {
                Some(&"-n") => (false, &args[1..]),
                _ => (true, &args[..]),
            };
            io.say(rest.join(" "));
            if newline {
                io.say("\n");
            }
            0
        }
        "sleep" => {
            let secs: f64 = match args.first().and_then(|a| a.parse().ok()) {
                Some(s) if s >= 0.0 => s,
                _ => {
                    io.fail("sleep: invalid number\n");
                    return 1;
                }
            };
            tokio::time::sleep(Duration::from_secs_f64(secs.min(3600.0))).await;
            0
        }
        "id" => {
            io.say("uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb),1015(sdcard_rw),1028(sdcard_r),3001(net_bt_admin),3002(net_bt),3003(inet),3006(net_bw_stats) context=u:r:shell:s0\n");
            0
        }
        "whoami" => {
            io.say("shell\n");
            0
        }
        "grep" => grep(&args, io),
        "cat" => {
            let phone = sim.phone();
            if args.is_empty() {
                let data = std::mem::take(&mut io.stdin);
                io.out.extend(data);
                return 0;
            }
            let mut status = 0;
            for path in args {
                match phone.file(path) {
                    Some(f) => io.out.extend_from_slice(&f.data),
                    None if phone.is_dir(path) => {
                        io.fail(format!("cat: {path}: Is a directory\n"));
                        status = 1;
                    }
                    None => {
                        io.fail(format!("cat: {path}: No such file or directory\n"));
                        status = 1;
                    }
                }
            }
            status
        }
        "rm" => {
            let mut phone = sim.phone();
            let force = args.iter().any(|a| a.starts_with('-') && a.contains('f'));
            let mut status = 0;
            for path in args.iter().filter(|a| !a.starts_with('-')) {
                if !phone.remove_file(path) && !force {
                    io.fail(format!("rm: {path}: No such file or directory\n"));
                    status = 1;
                }
            }
            status
        }
        "mkdir" => {
            let mut phone = sim.phone();
            for path in args.iter().filter(|a| !a.starts_with('-')) {
                let mut acc = String::new();
                for part in Phone::norm_path(path).split('/').filter(|s| !s.is_empty()) {
                    acc.push('/');
                    acc.push_str(part);
                    if !phone.dirs.contains(&acc) {
                        phone.dirs.push(acc.clone());
                    }
                }
            }
            0
        }
        "ls" => {
            let phone = sim.phone();
            let paths: Vec<&str> = args
                .iter()
                .copied()
                .filter(|a| !a.starts_with('-'))
                .collect();
            let paths = if paths.is_empty() { vec!["/"] } else { paths };
            let mut status = 0;
            for path in paths {
                if phone.file(path).is_some() {
                    io.say(format!("{path}\n"));
                } else if let Some(names) = phone.list_dir(path) {
                    for n in names {
                        io.say(format!("{n}\n"));
                    }
                } else {
                    io.fail(format!("ls: {path}: No such file or directory\n"));
                    status = 1;
                }
            }
            status
        }
        "getprop" => {
            let phone = sim.phone();
            let props = props(&phone, &sim.serial);
            match args.first() {
                Some(key) => {
                    let v = props
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.as_str());
                    io.say(format!("{}\n", v.unwrap_or("")));
                }
                None => {
                    for (k, v) in &props {
                        io.say(format!("[{k}]: [{v}]\n"));
                    }
                }
            }
            0
        }
        "wm" => match args.first() {
            Some(&"size") => {
                io.say(format!("Physical size: {SCREEN_W}x{SCREEN_H}\n"));
                0
            }
            Some(&"density") => {
                io.say("Physical density: 440\n");
                0
            }
            _ => {
                io.fail("Error: unknown command\n");
                255
            }
        },
        "input" => input(sim, &args, io),
        "am" => am(sim, &args, io),
        "monkey" => monkey(sim, &args, io),
        "pm" => pm(sim, &args, io),
        "ime" => ime(sim, &args, io),
        "settings" => settings(sim, &args, io),
        "cmd" => cmd(sim, &args, io),
        "dumpsys" => dumpsys(sim, &args, io),
        "uiautomator" => uiautomator(sim, &args, io),
        "screencap" => screencap(sim, &args, io),
        "getevent" => getevent(sim, &args, io).await,
        other => {
            io.fail(format!("/system/bin/sh: {other}: not found\n"));
            127
        }
    }
}

fn grep(args: &[&str], io: &mut Io<'_>) -> i32 {
    let mut extended = false;
    let mut ignore_case = false;
    let mut quiet = false;
    let mut invert = false;
    let mut pattern = None;
    for a in args {
        if let Some(flags) = a.strip_prefix('-').filter(|_| pattern.is_none()) {
            for f in flags.chars() {
                match f {
                    'E' => extended = true,
                    'i' => ignore_case = true,
                    'q' => quiet = true,
                    'v' => invert = true,
                    'F' => {}
                    other => {
                        io.fail(format!("grep: unsupported option -{other}\n"));
                        return 2;
                    }
                }
            }
        } else if pattern.is_none() {
            pattern = Some(*a);
        }
    }
    let Some(pattern) = pattern else {
        io.fail("usage: grep [-EFiqv] PATTERN\n");
        return 2;
    };
    // Alternation is the only regex feature the executor's queries use.
    let alts: Vec<String> = if extended {
        pattern.split('|').map(str::to_owned).collect()
    } else {
        pattern.split("\\|").map(str::to_owned).collect()
    };
    let norm = |s: &str| {
        if ignore_case {
            s.to_lowercase()
        } else {
            s.to_owned()
        }
    };
    let alts: Vec<String> = alts.iter().map(|a| norm(a)).collect();
    let input = String::from_utf8_lossy(&io.stdin).into_owned();
    let mut matched = false;
    for line in input.lines() {
        let l = norm(line);
        if alts.iter().any(|a| l.contains(a.as_str())) != invert {
            matched = true;
            if !quiet {
                io.say(format!("{line}\n"));
            }
        }
    }
    if matched {
        0
    } else {
        1
    }
}

fn props(phone: &Phone, serial: &str) -> Vec<(String, String)> {
    [
        ("ro.product.model", phone.model.as_str()),
        ("ro.product.brand", "youmi"),
        ("ro.product.manufacturer", "Youmi"),
        ("ro.product.name", "sim"),
        ("ro.product.device", "sim"),
        ("ro.build.version.release", "13"),
        ("ro.build.version.sdk", "33"),
        ("ro.serialno", serial),
        ("sys.boot_completed", "1"),
        ("persist.sys.locale", "zh-CN"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn keycode(arg: &str) -> Option<u32> {
    if let Ok(n) = arg.parse() {
        return Some(n);
    }
    let name = arg.strip_prefix("KEYCODE_").unwrap_or(arg);
    Some(match name {
        "HOME" => 3,
        "BACK" => 4,
        "CALL" => 5,
        "ENDCALL" => 6,
        "VOLUME_UP" => 24,
        "VOLUME_DOWN" => 25,
        "POWER" => 26,
        "ENTER" => 66,
        "DEL" => 67,
        "MENU" => 82,
        "APP_SWITCH" => 187,
        "WAKEUP" => 224,
        _ => return None,
    })
}

fn input(sim: &Shared, args: &[&str], io: &mut Io<'_>) -> i32 {
    // An optional input source comes first: `input touchscreen tap X Y`.
    let args = match args.first() {
        Some(&("touchscreen" | "touchpad" | "keyboard" | "mouse" | "dpad" | "stylus")) => {
            &args[1..]
        }
        _ => args,
    };
    let nums = |xs: &[&str]| -> Option<Vec<i32>> {
        xs.iter()
            .map(|x| x.parse::<f64>().ok().map(|v| v as i32))
            .collect()
    };
    let mut phone = sim.phone();
    match args.first() {
        Some(&"tap") if args.len() == 3 => match nums(&args[1..3]) {
            Some(p) => {
                phone.input(Input::Tap { x: p[0], y: p[1] });
                0
            }
            None => usage_error(io, "tap"),
        },
        Some(&"swipe") if args.len() == 5 || args.len() == 6 => match nums(&args[1..]) {
            Some(p) => {
                let duration = p.get(4).copied().unwrap_or(300).max(0);
                phone.gesture((p[0], p[1]), (p[2], p[3]), duration as u64);
                0
            }
            None => usage_error(io, "swipe"),
        },
        Some(&"text") if args.len() >= 2 => {
            let text = args[1..].join(" ").replace("%s", " ");
            phone.input(Input::Text(text));
            0
        }
        Some(&"keyevent") if args.len() >= 2 => {
            let codes: Option<Vec<u32>> = args[1..]
                .iter()
                .filter(|a| !a.starts_with("--"))
                .map(|a| keycode(a))
                .collect();
            let Some(codes) = codes else {
                return usage_error(io, "keyevent");
            };
            for code in codes {
                phone.input(Input::Key(code));
            }
            0
        }
        Some(other) => usage_error(io, other),
        None => usage_error(io, ""),
    }
}

fn usage_error(io: &mut Io<'_>, command: &str) -> i32 {
    io.fail(format!(
        "Error: Invalid arguments for command: {command}\nUsage: input [<source>] <command> [<arg>...]\n"
    ));
    1
}

fn flag_value<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1).copied())
}

fn extra<'a>(args: &[&'a str], key: &str) -> Option<&'a str> {
    args.windows(3)
        .find(|w| (w[0] == "--es" || w[0] == "-e") && w[1] == key)
        .map(|w| w[2])
}

fn am(sim: &Shared, args: &[&str], io: &mut Io<'_>) -> i32 {
    let mut phone = sim.phone();
    match args.first() {
        Some(&("start" | "start-activity")) => {
            let Some(component) = flag_value(args, "-n") else {
                io.fail("Error: -n COMPONENT is required by the simulator\n");
                return 1;
            };
            let package = component.split('/').next().unwrap_or("");
            if package != WECOM_PACKAGE {
                io.say(format!("Starting: Intent {{ cmp={component} }}\n"));
                io.fail(format!(
                    "Error type 3\nError: Activity class {{{component}}} does not exist.\n"
                ));
                return 1;
            }
            if phone.wecom_version.is_none() {
                io.say(format!("Starting: Intent {{ cmp={component} }}\n"));
                io.fail(format!(
                    "Error type 3\nError: Activity class {{{component}}} does not exist.\n"
                ));
                return 1;
            }
            if args.contains(&"-S") {
                phone.input(Input::ForceStop);
            }
            io.say(format!("Starting: Intent {{ cmp={component} }}\n"));
            phone.start_wecom();
            0
        }
        Some(&"force-stop") => {
            if args.get(1) == Some(&WECOM_PACKAGE) {
                phone.input(Input::ForceStop);
            }
            0
        }
        Some(&"broadcast") => {
            let Some(action) = flag_value(args, "-a") else {
                io.fail("Error: -a ACTION is required by the simulator\n");
                return 1;
            };
            let data = flag_value(args, "-d");
            let extras = args.iter().any(|a| a.starts_with("--e") || *a == "-e");
            io.say(format!(
                "Broadcasting: Intent {{ act={action}{} flg=0x400000{} }}\n",
                data.map(|d| format!(" dat={d}")).unwrap_or_default(),
                if extras { " (has extras)" } else { "" }
            ));
            match action {
                "ADB_INPUT_B64" => {
                    let decoded = extra(args, "msg").and_then(|m| {
                        base64::engine::general_purpose::STANDARD
                            .decode(m)
                            .ok()
                            .and_then(|b| String::from_utf8(b).ok())
                    });
                    if let Some(text) = decoded {
                        phone.keyboard_type(&text);
                    }
                }
                "ADB_INPUT_TEXT" => {
                    if let Some(text) = extra(args, "msg") {
                        phone.keyboard_type(text);
                    }
                }
                "ADB_CLEAR_TEXT" if phone.keyboard_active() => phone.clear_text(),
                "android.intent.action.MEDIA_SCANNER_SCAN_FILE" => {
                    if let Some(path) = data.and_then(|d| d.strip_prefix("file://")) {
                        phone.scan_media(path);
                    }
                }
                _ => {}
            }
            io.say("Broadcast completed: result=0\n");
            0
        }
        Some(other) => {
            io.fail(format!("Error: unknown command '{other}'\n"));
            1
        }
        None => {
            io.fail("usage: am [subcommand] [options]\n");
            1
        }
    }
}

fn monkey(sim: &Shared, args: &[&str], io: &mut Io<'_>) -> i32 {
    let package = flag_value(args, "-p");
    if package != Some(WECOM_PACKAGE) || !sim.phone().start_wecom() {
        io.say("** No activities found to run, monkey aborted.\n");
        return 252;
    }
    io.say("  bash arg: -p\n  bash arg: com.tencent.wework\n  bash arg: -c\n  bash arg: android.intent.category.LAUNCHER\n  bash arg: 1\nargs: [-p, com.tencent.wework, -c, android.intent.category.LAUNCHER, 1]\nEvents injected: 1\n## Network stats: elapsed time=12ms (0ms mobile, 0ms wifi, 12ms not connected)\n");
    0
}

fn pm(sim: &Shared, args: &[&str], io: &mut Io<'_>) -> i32 {
    let wecom = sim.phone().wecom_version.is_some();
    let packages = [
        WECOM_PACKAGE,
        "com.android.settings",
        "com.google.android.apps.nexuslauncher",
        "com.android.adbkeyboard",
    ];
    let packages = packages
        .into_iter()
        .filter(|p| wecom || *p != WECOM_PACKAGE);
    match args.first() {
        Some(&"list") if args.get(1) == Some(&"packages") => {
            let filter = args.iter().skip(2).find(|a| !a.starts_with('-'));
            for p in packages {
                if filter.is_none_or(|f| p.contains(f)) {
                    io.say(format!("package:{p}\n"));
                }
            }
            0
        }
        Some(&"path") if wecom && args.get(1) == Some(&WECOM_PACKAGE) => {
            io.say("package:/data/app/~~Yq2xk1/com.tencent.wework-3fNq==/base.apk\n");
            0
        }
        Some(&"path") => 1,
        _ => {
            io.fail("pm: unsupported command in the simulator\n");
            1
        }
    }
}

fn ime(sim: &Shared, args: &[&str], io: &mut Io<'_>) -> i32 {
    let mut phone = sim.phone();
    let mut imes = vec![STOCK_IME];
    if phone.ime_installed {
        imes.push(ADB_KEYBOARD_IME);
    }
    match args.first() {
        Some(&"list") => {
            for i in imes {
                io.say(format!("{i}\n"));
            }
            0
        }
        Some(&("set" | "enable")) => {
            let Some(id) = args.get(1) else {
                io.fail("Error: no input method id given\n");
                return 1;
            };
            if !imes.contains(id) {
                io.fail(format!(
                    "Unknown input method {id} cannot be selected for user #0\n"
                ));
                return 255;
            }
            if args[0] == "set" {
                phone.default_ime = id.to_string();
                io.say(format!("Input method {id} selected for user #0\n"));
            } else {
                io.say(format!("Input method {id}: already enabled for user #0\n"));
            }
            0
        }
        _ => {
            io.fail("ime: unsupported command in the simulator\n");
            1
        }
    }
}

fn settings(sim: &Shared, args: &[&str], io: &mut Io<'_>) -> i32 {
    let mut phone = sim.phone();
    match args {
        ["get", "secure", "default_input_method"] => {
            io.say(format!("{}\n", phone.default_ime));
            0
        }
        ["get", "global", "zen_mode"] => {
            io.say(format!("{}\n", phone.zen_mode));
            0
        }
        ["put", "secure", "default_input_method", id] => {
            phone.default_ime = id.to_string();
            0
        }
        ["get", _, _] => {
            io.say("null\n");
            0
        }
        ["put", _, _, _] => 0,
        _ => {
            io.fail("usage: settings get|put NAMESPACE KEY [VALUE]\n");
            255
        }
    }
}

fn cmd(sim: &Shared, args: &[&str], io: &mut Io<'_>) -> i32 {
    match args {
        ["notification", "set_dnd", mode] => {
            if sim.phone().set_dnd(mode) {
                0
            } else {
                io.fail(format!("Unrecognized dnd mode: {mode}\n"));
                255
            }
        }
        // `cmd notification post [FLAGS] TAG TEXT` (Android 10+): shows a notification.
        ["notification", "post", .., tag, text] if !tag.starts_with('-') && !text.is_empty() => {
            sim.phone().notify(tag, text);
            0
        }
        [service, ..] => {
            io.fail(format!("cmd: Can't find service: {service}\n"));
            20
        }
        [] => {
            io.fail("cmd: no service given\n");
            20
        }
    }
}

fn dumpsys(sim: &Shared, args: &[&str], io: &mut Io<'_>) -> i32 {
    let phone = sim.phone();
    match args.first().copied() {
        Some("package") => {
            if let (Some(&WECOM_PACKAGE), Some(version)) = (args.get(1), &phone.wecom_version) {
                io.say(format!(
                    "Packages:\n  Package [{WECOM_PACKAGE}] (5f1c2a0):\n    userId=10234\n    pkg=Package{{9b3e1d4 {WECOM_PACKAGE}}}\n    codePath=/data/app/~~Yq2xk1/com.tencent.wework-3fNq==\n    versionCode=27590 minSdk=21 targetSdk=31\n    versionName={version}\n    flags=[ HAS_CODE ALLOW_CLEAR_USER_DATA ]\n"
                ));
            }
            0
        }
        Some("window") => {
            let (pkg, act) = phone.focus_component();
            io.say(format!(
                "WINDOW MANAGER WINDOWS (dumpsys window windows)\n  Window #0 Window{{4a1e9c2 u0 {pkg}/{act}}}:\n    mDisplayId=0 rootTaskId=12 mSession=Session{{8f2c1 3021:u0a10234}}\n\n  mCurrentFocus=Window{{4a1e9c2 u0 {pkg}/{act}}}\n  mFocusedApp=ActivityRecord{{7d3b2a1 u0 {pkg}/{act} t12}}\n"
            ));
            0
        }
        Some("activity") => {
            let (pkg, act) = phone.focus_component();
            io.say(format!(
                "ACTIVITY MANAGER ACTIVITIES (dumpsys activity activities)\nDisplay #0 (activities from top to bottom):\n  * Task{{c41e2f0 #12 type=standard A=10234:{pkg}}}\n    mResumedActivity: ActivityRecord{{7d3b2a1 u0 {pkg}/{act} t12}}\n  ResumedActivity: ActivityRecord{{7d3b2a1 u0 {pkg}/{act} t12}}\n"
            ));
            0
        }
        Some("battery") => {
            io.say(format!(
                "Current Battery Service state:\n  AC powered: false\n  USB powered: true\n  Wireless powered: false\n  Max charging current: 500000\n  Max charging voltage: 5000000\n  Charge counter: 3012000\n  status: 2\n  health: 2\n  present: true\n  level: {}\n  scale: 100\n  voltage: 4123\n  temperature: 301\n  technology: Li-ion\n",
                phone.battery_level
            ));
            0
        }
        Some("power") => {
            io.say("POWER MANAGER (dumpsys power)\n  mWakefulness=Awake\n  mInteractive=true\n  Display Power: state=ON\n");
            0
        }
        Some("telephony.registry") => {
            let state = phone.call_state();
            io.say(format!(
                "last known state:\n  Phone Id=0\n  mCallState={state}\n  mCallIncomingNumber={}\n",
                phone.incoming_call.clone().unwrap_or_default()
            ));
            0
        }
        Some(other) => {
            io.say(format!("Can't find service: {other}\n"));
            0
        }
        None => {
            io.fail("dumpsys: the simulator needs a service name\n");
            1
        }
    }
}

fn uiautomator(sim: &Shared, args: &[&str], io: &mut Io<'_>) -> i32 {
    if args.first() != Some(&"dump") {
        io.fail("Usage: uiautomator <subcommand> [options]\n\nAvailable subcommands:\n\ndump: creates an XML dump of current UI hierarchy\n");
        return 1;
    }
    let path = args[1..]
        .iter()
        .find(|a| !a.starts_with('-'))
        .copied()
        .unwrap_or("/sdcard/window_dump.xml");
    let mut phone = sim.phone();
    let Some(xml) = phone.dump() else {
        io.fail("ERROR: could not get idle state.\n");
        return 0;
    };
    if path == "/dev/tty" || path == "/dev/stdout" {
        io.say(&xml);
    } else if let Err(e) = phone.write_file(path, xml.into_bytes(), 0o660) {
        io.fail(format!("ERROR: {e}\n"));
        return 1;
    }
    io.say(format!("UI hierchary dumped to: {path}\n"));
    0
}

fn screencap(sim: &Shared, args: &[&str], io: &mut Io<'_>) -> i32 {
    let file = args.iter().find(|a| !a.starts_with('-')).copied();
    let png_flag = args.contains(&"-p") || file.is_some_and(|f| f.ends_with(".png"));
    if !png_flag {
        io.fail("screencap: the simulator only writes PNG; pass -p\n");
        return 1;
    }
    let mut phone = sim.phone();
    let png = match phone.screencap() {
        Ok(png) => png,
        Err(e) => {
            io.fail(format!("screencap: {e}\n"));
            return 1;
        }
    };
    match file {
        Some(path) => match phone.write_file(path, png, 0o660) {
            Ok(()) => 0,
            Err(e) => {
                io.fail(format!("Error opening file: {path} ({e})\n"));
                1
            }
        },
        None => {
            io.out.extend(png);
            0
        }
    }
}

async fn getevent(sim: &Shared, args: &[&str], io: &mut Io<'_>) -> i32 {
    let labels = args.iter().any(|a| a.starts_with('-') && a.contains('l'));
    let mut keys = sim.keys.subscribe();
    io.say("add device 1: /dev/input/event0\n  name:     \"gpio-keys\"\n");
    io.flush().await;
    loop {
        match keys.recv().await {
            Ok(code) => {
                let t = sim.started.elapsed();
                let stamp = format!("[{:>8}.{:06}]", t.as_secs(), t.subsec_micros());
                let (name, linux) = match code {
                    24 => ("KEY_VOLUMEUP", 0x73),
                    25 => ("KEY_VOLUMEDOWN", 0x72),
                    26 => ("KEY_POWER", 0x74),
                    _ => ("KEY_UNKNOWN", 0xf0),
                };
                for (down, state) in [(true, "DOWN"), (false, "UP")] {
                    if labels {
                        io.say(format!("{stamp} /dev/input/event0: EV_KEY       {name:<20} {state:<20}\n{stamp} /dev/input/event0: EV_SYN       SYN_REPORT           00000000            \n"));
                    } else {
                        io.say(format!(
                            "{stamp} /dev/input/event0: 0001 {linux:04x} {:08x}\n{stamp} /dev/input/event0: 0000 0000 00000000\n",
                            u32::from(down)
                        ));
                    }
                }
                io.flush().await;
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexes_quotes_operators_and_status() {
        let toks = lex("echo 'a b' \"c $?\" x\\ y; false || echo EXIT:$? 2>&1").unwrap();
        assert_eq!(toks[1], Tok::Word("a b".into()));
        assert_eq!(toks[2], Tok::Word(format!("c {STATUS_MARK}")));
        assert_eq!(toks[3], Tok::Word("x y".into()));
        assert_eq!(toks[4], Tok::Op(";"));
        assert!(toks.contains(&Tok::Op("||")));
        assert_eq!(toks.last(), Some(&Tok::Op("2>&1")));
    }

    #[test]
    fn rejects_unterminated_quotes_and_dangling_operators() {
        assert!(lex("echo 'abc").is_err());
        assert!(lex("echo x &&").and_then(parse).is_err());
        assert!(lex("| grep x").and_then(parse).is_err());
    }
}
