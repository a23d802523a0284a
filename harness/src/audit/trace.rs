//! Self-verifying stack traces: one sequence number written as several physical lines.
//!
//! A trace is generated deterministically from (run, pod, container, seq) like a payload
//! line, so the writer process, the SimNode and the audit produce the same bytes. Exactly
//! one of its lines carries a [`Payload`] header (class `min.a`), so the audit can attribute
//! a delivered trace, or a piece of one, without any other state:
//!
//! - Java (what `Throwable.printStackTrace()` prints): the first line is the payload then the
//!   exception (`... java.lang.IllegalStateException: order 17 could not be placed`), then
//!   `\tat frame(File.java:N)` lines, a `Caused by: <Exception>: <message>` line, more frames,
//!   and `\t... N more`.
//! - Python (what an uncaught exception prints): `Traceback (most recent call last):`, then
//!   pairs of `  File "...", line N, in f` and `    <source>`, and the last line
//!   `<Name>Error: <payload> <message>`.
//!
//! Every fourth trace (seq ≡ 3 mod 4) has one line longer than 16 KiB (a Java `Caused by:`
//! message, a Python source line), so the runtime writes it as CRI `P` records and the
//! shipper must merge them before it groups the trace.

use std::fmt;

use super::payload::{InvalidField, LineClass, Payload, SizeClass, SplitMix64, fnv1a};

/// Which language's trace layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum TraceKind {
    /// A JVM stack trace with a `Caused by:` chain.
    Java,
    /// A CPython traceback.
    Python,
}

/// The payload class of a trace's header line.
pub const TRACE_HEADER_CLASS: LineClass =
    LineClass { size: SizeClass::Minimal, charset: super::Charset::Ascii };

/// Length of a trace's long line: one byte over the CRI record limit and then some.
const LONG_LINE: usize = 16_384 + 1_500;

impl TraceKind {
    /// `java` or `python` (the scenario's `traces = ...`).
    pub fn parse(name: &str) -> Result<TraceKind, String> {
        match name {
            "java" => Ok(TraceKind::Java),
            "python" => Ok(TraceKind::Python),
            other => Err(format!("traces {other:?}: use \"java\" or \"python\"")),
        }
    }

    /// The scenario's name for it.
    pub fn name(self) -> &'static str {
        match self {
            TraceKind::Java => "java",
            TraceKind::Python => "python",
        }
    }

    /// The trace for `seq`: its physical lines joined by `\n`, without a final newline (the
    /// text a multiline event's `log` must be, byte for byte).
    pub fn text(self, run: &str, pod: &str, container: &str, seq: u64) -> Result<String, InvalidField> {
        let header = Payload::expected_text(&Payload::line(run, pod, container, seq, TRACE_HEADER_CLASS)?);
        let identity = fnv1a(&[b"trace", run.as_bytes(), pod.as_bytes(), container.as_bytes()]);
        let mut rng = SplitMix64(identity ^ seq.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let long = seq % 4 == 3;
        let lines = match self {
            TraceKind::Java => java(&header, seq, long, &mut rng),
            TraceKind::Python => python(&header, seq, long, &mut rng),
        };
        Ok(lines.join("\n"))
    }
}

impl fmt::Display for TraceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const JAVA_FRAMES: [(&str, &str, &str); 8] = [
    ("com.example.orders.OrderService", "place", "OrderService.java"),
    ("com.example.orders.OrderController", "create", "OrderController.java"),
    ("org.springframework.web.servlet.FrameworkServlet", "service", "FrameworkServlet.java"),
    ("jakarta.servlet.http.HttpServlet", "service", "HttpServlet.java"),
    ("org.apache.catalina.core.ApplicationFilterChain", "doFilter", "ApplicationFilterChain.java"),
    ("org.apache.tomcat.util.net.NioEndpoint$SocketProcessor", "doRun", "NioEndpoint.java"),
    ("java.util.concurrent.ThreadPoolExecutor", "runWorker", "ThreadPoolExecutor.java"),
    ("java.lang.Thread", "run", "Thread.java"),
];

const PY_FRAMES: [(&str, &str, &str); 6] = [
    ("/app/worker/main.py", "handle", "result = process(job)"),
    ("/app/worker/jobs.py", "process", "payload = decode(job.body)"),
    ("/app/worker/codec.py", "decode", "return schema.load(json.loads(body))"),
    ("/usr/local/lib/python3.12/json/__init__.py", "loads", "return _default_decoder.decode(s)"),
    (
        "/usr/local/lib/python3.12/json/decoder.py",
        "decode",
        "obj, end = self.raw_decode(s, idx=_w(s, 0).end())",
    ),
    (
        "/usr/local/lib/python3.12/json/decoder.py",
        "raw_decode",
        "raise JSONDecodeError(\"Expecting value\", s, err.value)",
    ),
];

/// `[a-z0-9]` filler of `len` bytes.
fn filler(len: usize, rng: &mut SplitMix64) -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len).map(|_| char::from(ALPHABET[rng.below(ALPHABET.len())])).collect()
}

fn java(header: &str, seq: u64, long: bool, rng: &mut SplitMix64) -> Vec<String> {
    let mut lines =
        vec![format!("{header} java.lang.IllegalStateException: order {seq} could not be placed")];
    let frames = 3 + rng.below(6);
    for (class, method, file) in JAVA_FRAMES.iter().take(frames) {
        lines.push(format!("\tat {class}.{method}({file}:{})", 20 + rng.below(400)));
    }
    let cause = if long {
        format!("upstream answered: {}", filler(LONG_LINE, rng))
    } else {
        format!("Connection is not available, request timed out after {}ms.", 1000 + rng.below(30_000))
    };
    lines.push(format!("Caused by: java.sql.SQLTransientConnectionException: HikariPool-1 - {cause}"));
    for _ in 0..1 + rng.below(3) {
        lines.push(format!(
            "\tat com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:{})",
            100 + rng.below(90)
        ));
    }
    lines.push(format!("\t... {frames} more"));
    lines
}

fn python(header: &str, seq: u64, long: bool, rng: &mut SplitMix64) -> Vec<String> {
    let mut lines = vec!["Traceback (most recent call last):".to_owned()];
    let frames = 2 + rng.below(PY_FRAMES.len() - 1);
    for (i, (file, function, source)) in PY_FRAMES.iter().take(frames).enumerate() {
        lines.push(format!("  File \"{file}\", line {}, in {function}", 10 + rng.below(300)));
        if long && i == 1 {
            lines.push(format!("    payload = decode(\"{}\")", filler(LONG_LINE, rng)));
        } else {
            lines.push(format!("    {source}"));
        }
    }
    lines.push(format!("ValueError: {header} job {seq} has an invalid body"));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_deterministic_and_differ_by_seq() {
        for kind in [TraceKind::Java, TraceKind::Python] {
            let a = kind.text("r1", "web-0", "app", 5).expect("trace");
            assert_eq!(a, kind.text("r1", "web-0", "app", 5).expect("trace"));
            assert_ne!(a, kind.text("r1", "web-0", "app", 6).expect("trace"));
            assert_ne!(a, kind.text("r2", "web-0", "app", 5).expect("trace"));
            assert!(a.lines().count() >= 5, "{a}");
            assert!(!a.ends_with('\n'));
        }
    }

    #[test]
    fn exactly_one_line_carries_the_header_and_it_names_the_line() {
        for kind in [TraceKind::Java, TraceKind::Python] {
            let text = kind.text("r1", "web-0", "app", 7).expect("trace");
            let headers: Vec<_> = text.lines().filter(|l| l.contains("run=")).collect();
            assert_eq!(headers.len(), 1, "{text}");
            let (run, key, _) = Payload::locate_header(&text).expect("located");
            assert_eq!((run.as_str(), key.pod.as_str(), key.seq), ("r1", "web-0", 7));
        }
    }

    #[test]
    fn every_fourth_trace_has_a_line_over_the_cri_limit() {
        for kind in [TraceKind::Java, TraceKind::Python] {
            for seq in 0..8 {
                let text = kind.text("r1", "p", "c", seq).expect("trace");
                let longest = text.lines().map(str::len).max().unwrap_or(0);
                assert_eq!(longest > 16_384, seq % 4 == 3, "{kind} seq {seq}: {longest}");
            }
        }
    }

    #[test]
    fn java_frames_are_continuations_and_python_starts_with_traceback() {
        let java = TraceKind::Java.text("r", "p", "c", 1).expect("trace");
        let mut lines = java.lines();
        assert!(lines.next().is_some_and(|l| l.starts_with("run=") && l.contains("Exception: ")));
        assert!(
            lines.all(|l| l.starts_with("\tat ") || l.starts_with("Caused by: ") || l.starts_with("\t... "))
        );
        let python = TraceKind::Python.text("r", "p", "c", 1).expect("trace");
        assert!(python.starts_with("Traceback (most recent call last):\n  File \""));
        assert!(python.lines().last().is_some_and(|l| l.starts_with("ValueError: run=")));
    }
}
