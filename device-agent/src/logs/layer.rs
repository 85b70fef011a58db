//! The agent's log as files: a tracing layer that writes every event as one
//! text line to a [`RotatingFile`]. In fleet mode each phone has its own log
//! in its own state directory: an event inside a `phone` span (the fleet's
//! span per phone, with its `serial`) goes to that phone's file, any other
//! to the main one; so each phone's upload holds its own lines.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::file::{LogLimits, RotatingFile};

/// The name of the fleet's span per phone, whose `serial` picks the file.
pub const PHONE_SPAN: &str = "phone";

/// Where a phone's log lives, given its serial.
pub type PhoneLogDir = Box<dyn Fn(&str) -> PathBuf + Send + Sync>;

type SharedFile = Arc<Mutex<RotatingFile>>;

/// The layer: a main file, and in fleet mode one file per phone.
pub struct FileLayer {
    main: SharedFile,
    limits: LogLimits,
    /// Fleet mode: the log directory of the phone with a serial.
    phone_dir: Option<PhoneLogDir>,
    /// The phones' open files, by serial.
    phones: Mutex<HashMap<String, SharedFile>>,
}

/// A span's fields as text, ` key=value` each.
struct SpanFields(String);

/// The file of the phone whose span this is.
struct PhoneFile(SharedFile);

impl FileLayer {
    /// The layer of a single agent: every line goes to `dir/agent.log`.
    pub fn open(dir: &Path, limits: LogLimits) -> std::io::Result<FileLayer> {
        Ok(FileLayer {
            main: Arc::new(Mutex::new(RotatingFile::open(dir, limits)?)),
            limits,
            phone_dir: None,
            phones: Mutex::new(HashMap::new()),
        })
    }

    /// Fleet mode: lines of a phone go to `phone_dir(serial)/agent.log`.
    pub fn with_phones(mut self, phone_dir: PhoneLogDir) -> FileLayer {
        self.phone_dir = Some(phone_dir);
        self
    }

    fn phone_file(&self, serial: &str) -> Option<SharedFile> {
        let phone_dir = self.phone_dir.as_ref()?;
        let mut phones = self.phones.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(file) = phones.get(serial) {
            return Some(file.clone());
        }
        match RotatingFile::open(&phone_dir(serial), self.limits) {
            Ok(file) => {
                let file = Arc::new(Mutex::new(file));
                phones.insert(serial.to_owned(), file.clone());
                Some(file)
            }
            // Its lines go to the main file instead.
            Err(_) => None,
        }
    }
}

/// Collects fields as text: the message apart, the others as ` key=value`.
#[derive(Default)]
struct FieldText {
    message: String,
    fields: String,
    serial: Option<String>,
}

impl Visit for FieldText {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            name => {
                let _ = write!(self.fields, " {name}={value:?}");
                if name == "serial" {
                    self.serial = Some(format!("{value:?}"));
                }
            }
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            name => {
                let _ = write!(self.fields, " {name}={value}");
                if name == "serial" {
                    self.serial = Some(value.to_owned());
                }
            }
        }
    }
}

impl<S> Layer<S> for FileLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut text = FieldText::default();
        attrs.record(&mut text);
        let mut extensions = span.extensions_mut();
        if span.name() == PHONE_SPAN {
            if let Some(file) = text.serial.as_deref().and_then(|s| self.phone_file(s)) {
                extensions.insert(PhoneFile(file));
            }
        }
        extensions.insert(SpanFields(text.fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut text = FieldText::default();
        values.record(&mut text);
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            fields.0.push_str(&text.fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = String::new();
        let _ = SystemTime.format_time(&mut Writer::new(&mut line));
        let metadata = event.metadata();
        let _ = write!(line, " {:>5} ", metadata.level());
        let mut file = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let fields = extensions.get::<SpanFields>().map_or("", |f| f.0.trim());
                let _ = write!(line, "{}{{{fields}}}:", span.name());
                if let Some(PhoneFile(phone)) = extensions.get::<PhoneFile>() {
                    file = Some(phone.clone());
                }
            }
            line.push(' ');
        }
        let mut text = FieldText::default();
        event.record(&mut text);
        let _ = write!(
            line,
            "{}: {}{}",
            metadata.target(),
            text.message,
            text.fields
        );
        line.push('\n');
        let file = file.unwrap_or_else(|| self.main.clone());
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        // A log line that cannot be written has nowhere to be reported; the
        // stderr copy still has it.
        let _ = file.append(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use tracing::{info, info_span};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn each_phone_gets_its_own_lines() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let layer = FileLayer::open(&root.join("logs"), LogLimits::default())
            .unwrap()
            .with_phones(Box::new(move |serial| root.join(serial).join("logs")));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            info!("fleet started");
            info_span!("phone", serial = %"p1").in_scope(|| {
                info_span!("agent", device_id = "dev_1")
                    .in_scope(|| info!(task_id = 7, "task done"));
            });
            info_span!("phone", serial = %"p2").in_scope(|| info!("phone added"));
        });
        let read = |path: &str| std::fs::read_to_string(dir.path().join(path)).unwrap();
        let main = read("logs/agent.log");
        assert!(main.contains("fleet started"), "{main}");
        assert!(
            !main.contains("task done") && !main.contains("phone added"),
            "{main}"
        );
        let p1 = read("p1/logs/agent.log");
        assert!(
            p1.contains("phone{serial=p1}:agent{device_id=dev_1}: ")
                && p1.contains("task done task_id=7"),
            "{p1}"
        );
        assert!(!p1.contains("phone added"), "{p1}");
        assert!(read("p2/logs/agent.log").contains("phone added"));
    }
}
