//! What the shipper process costs, read from `/proc/<pid>`: CPU time (utime + stime of all
//! its threads), peak resident memory (`VmHWM`) and bytes it caused to be written to storage
//! (`write_bytes`: the spool, checkpoints and its own log file; not sockets).

use std::path::PathBuf;
use std::sync::OnceLock;

/// Reading `/proc` failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The file could not be read (the process exited?).
    #[error("reading {path}: {source}")]
    Read {
        /// The `/proc` file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file did not have the expected shape.
    #[error("{path}: no {field} field")]
    Shape {
        /// The `/proc` file.
        path: PathBuf,
        /// The field looked for.
        field: &'static str,
    },
}

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// User + system CPU seconds since the process started (all threads).
    pub cpu_seconds: f64,
    /// Bytes the process caused to be sent to the storage layer since it started.
    pub write_bytes: u64,
    /// Peak resident set size so far, KiB.
    pub peak_rss_kib: u64,
}

/// Read the counters of process `pid`.
pub fn sample(pid: u32) -> Result<ProcSample, ProcError> {
    let read = |name: &str| {
        let path = PathBuf::from(format!("/proc/{pid}/{name}"));
        std::fs::read_to_string(&path)
            .map(|text| (text, path.clone()))
            .map_err(|source| ProcError::Read { path, source })
    };
    let (stat, stat_path) = read("stat")?;
    let ticks = cpu_ticks(&stat).ok_or(ProcError::Shape { path: stat_path, field: "utime/stime" })?;
    let (status, status_path) = read("status")?;
    let peak_rss_kib =
        status_field(&status, "VmHWM:").ok_or(ProcError::Shape { path: status_path, field: "VmHWM" })?;
    let (io, io_path) = read("io")?;
    let write_bytes =
        status_field(&io, "write_bytes:").ok_or(ProcError::Shape { path: io_path, field: "write_bytes" })?;
    Ok(ProcSample { cpu_seconds: ticks as f64 / clock_ticks_per_second() as f64, write_bytes, peak_rss_kib })
}

/// utime + stime (fields 14 and 15 of `/proc/<pid>/stat`), in clock ticks. The command name
/// (field 2) is in parentheses and may itself contain spaces and `)`, so fields are counted
/// from the last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The first number after `key` on its line (`VmHWM:   1234 kB` → 1234; `write_bytes: 5` → 5).
pub fn status_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf` once; Linux uses 100 everywhere we run.
fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_count_fields_after_the_last_parenthesis() {
        // A command name with a space and a `)` in it, as a process may choose.
        let stat = "4242 (evil) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 375 125 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_ticks(stat), Some(500));
        assert_eq!(cpu_ticks("4242 (shipper) S 1 2"), None);
    }

    #[test]
    fn status_and_io_fields_parse() {
        let status = "Name:\tshipper\nVmPeak:\t  99000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t   12000 kB\n";
        assert_eq!(status_field(status, "VmHWM:"), Some(12_345));
        let io = "rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 0\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n";
        assert_eq!(status_field(io, "write_bytes:"), Some(4096));
        assert_eq!(status_field(io, "nothing:"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let me = sample(std::process::id()).expect("own /proc entry");
        assert!(me.peak_rss_kib > 0, "a running test has resident memory");
        assert!(me.cpu_seconds.is_finite() && me.cpu_seconds >= 0.0);
    }
}
