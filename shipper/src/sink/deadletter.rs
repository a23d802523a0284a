//! The dead-letter file: every event CloudWatch refused for good, one JSON object per line
//! (`{"at","reason","group","stream","timestamp","message"}`) in
//! `<dead_letter_dir>/dead-letters.jsonl`.
//!
//! Lines are fsync'd before `deliver` returns, because the caller frees the spool chunk
//! right after: a drop is only "explicit" if its record survives a crash.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::route::Destination;
use crate::spool::Event;
use crate::telemetry::DropReason;

/// The file name inside the dead-letter directory.
pub const DEAD_LETTER_FILE: &str = "dead-letters.jsonl";

/// Writing the dead-letter file failed.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter I/O on {path}: {source}")]
pub struct DeadLetterError {
    /// The file or directory.
    pub path: PathBuf,
    /// The underlying error.
    pub source: std::io::Error,
}

/// One line of the file.
#[derive(serde::Serialize)]
struct Line<'a> {
    at: &'a str,
    reason: &'static str,
    group: &'a str,
    stream: &'a str,
    timestamp: i64,
    message: &'a str,
}

/// Render the lines for `letters` (each ends with `\n`).
pub(crate) fn render(dest: &Destination, letters: &[(DropReason, &Event)], at: SystemTime) -> Vec<u8> {
    let at = humantime::format_rfc3339_millis(at).to_string();
    let mut out = Vec::with_capacity(letters.iter().map(|(_, e)| e.message.len() + 160).sum());
    for (reason, event) in letters {
        let line = Line {
            at: &at,
            reason: reason.as_str(),
            group: &dest.group,
            stream: &dest.stream,
            timestamp: event.timestamp_ms,
            message: &event.message,
        };
        // Serialising borrowed strings and integers into a Vec cannot fail.
        if serde_json::to_writer(&mut out, &line).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// Appends rendered lines to the dead-letter file, durably, one writer at a time.
#[derive(Debug)]
pub(crate) struct DeadLetterFile {
    dir: PathBuf,
    path: PathBuf,
    /// Concurrent deliveries (one per stream) share the file: whole batches of lines must
    /// not interleave.
    lock: Mutex<()>,
}

impl DeadLetterFile {
    pub(crate) fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf(), path: dir.join(DEAD_LETTER_FILE), lock: Mutex::new(()) }
    }

    /// Append `bytes` and fsync (plus the directory when the file is new). Blocking.
    pub(crate) fn append_synced(&self, bytes: &[u8]) -> Result<(), DeadLetterError> {
        let _guard = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DeadLetterError { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let is_new = !self.path.exists();
        let mut file =
            OpenOptions::new().create(true).append(true).open(&self.path).map_err(io(&self.path))?;
        file.write_all(bytes).map_err(io(&self.path))?;
        file.sync_data().map_err(io(&self.path))?;
        if is_new {
            File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lines_are_json_objects_with_the_contract_keys_appended_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = DeadLetterFile::new(&dir.path().join("nested"));
        let dest = Destination { group: "k8s_c_ns_app_c".into(), stream: "pod_c".into() };
        let a = Event { timestamp_ms: 5, message: "say \"hi\"\nbye".into() };
        let b = Event { timestamp_ms: 6, message: "second".into() };
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        file.append_synced(&render(&dest, &[(DropReason::TooOld, &a)], at)).unwrap();
        file.append_synced(&render(&dest, &[(DropReason::Invalid, &b)], at)).unwrap();
        let text = std::fs::read_to_string(dir.path().join("nested").join(DEAD_LETTER_FILE)).unwrap();
        insta::assert_snapshot!(text, @r#"
        {"at":"2023-11-14T22:13:20.123Z","reason":"too_old","group":"k8s_c_ns_app_c","stream":"pod_c","timestamp":5,"message":"say \"hi\"\nbye"}
        {"at":"2023-11-14T22:13:20.123Z","reason":"invalid","group":"k8s_c_ns_app_c","stream":"pod_c","timestamp":6,"message":"second"}
        "#);
    }
}
