//! Fixtures of real-looking traces per built-in detector, the combiner's behaviour case by
//! case, custom detectors and their errors, and the properties that hold for any input.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::parse::{Line, Stream};

const OUT: Stream = Stream::Stdout;
const ERR: Stream = Stream::Stderr;

fn line(stream: Stream, timestamp_ms: i64, text: &str) -> Line {
    Line { timestamp_ms, stream, text: text.to_owned(), invalid_utf8: false, continued: false }
}

fn builtin(name: &str) -> Detector {
    Detector::builtin(name, Limits::default()).expect("a built-in")
}

fn custom(start: Option<&str>, continuation: Option<&str>) -> Detector {
    let spec = CustomDetector {
        name: "app".into(),
        start: start.map(Into::into),
        continuation: continuation.map(Into::into),
        ..CustomDetector::default()
    };
    Detector::custom(&spec, Limits::default()).expect("a valid custom detector")
}

/// Push `texts` on stdout, one per offset step of 100, all at `now`; the texts of what
/// came out after each push.
fn feed(combiner: &mut Combiner, now: Instant, texts: &[&str]) -> Vec<Vec<String>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut out = Vec::new();
            combiner.push(line(OUT, i as i64, text), i as u64 * 100, now, &mut out);
            out.into_iter().map(|l| l.text).collect()
        })
        .collect()
}

fn texts(out: &[Line]) -> Vec<&str> {
    out.iter().map(|l| l.text.as_str()).collect()
}

// ---------------------------------------------------------------------------------------
// Fixtures

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/multiline")
}

/// Every `<detector>/*.log` gives the expected events in its sibling `*.groups.json`.
/// `MULTILINE_BLESS=1` rewrites the JSON files from the current output (review the diff!).
#[test]
fn fixtures_group_as_expected() {
    let bless = std::env::var_os("MULTILINE_BLESS").is_some();
    for &name in Detector::BUILTIN {
        let dir = fixture_dir().join(name);
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("dir entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
            .collect();
        logs.sort();
        assert!(!logs.is_empty(), "no fixture for {name}");
        for log in logs {
            let input = std::fs::read_to_string(&log).expect("fixture");
            let mut combiner = Combiner::new(builtin(name));
            let mut out = Vec::new();
            let now = Instant::now();
            let mut offset = 0;
            for (i, text) in input.strip_suffix('\n').unwrap_or(&input).split('\n').enumerate() {
                combiner.push(line(OUT, i as i64, text), offset, now, &mut out);
                offset += text.len() as u64 + 1;
            }
            combiner.flush(&mut out);
            let got = texts(&out);
            let expected_path = log.with_extension("groups.json");
            if bless {
                let json = serde_json::to_string_pretty(&got).expect("json") + "\n";
                std::fs::write(&expected_path, json).expect("bless");
                continue;
            }
            let expected: Vec<String> = serde_json::from_str(
                &std::fs::read_to_string(&expected_path)
                    .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display())),
            )
            .expect("groups.json is an array of strings");
            assert_eq!(got, expected, "{}", log.display());
        }
    }
}

#[test]
fn builtins_compile_and_unknown_names_are_none() {
    for &name in Detector::BUILTIN {
        let detector = Detector::builtin(name, Limits::default()).expect("known");
        assert_eq!(detector.name(), name);
        assert_eq!(detector.limits(), Limits::default());
    }
    assert!(Detector::builtin("cobol", Limits::default()).is_none());
}

#[test]
fn default_limits() {
    let limits = Limits::default();
    assert_eq!((limits.max_lines, limits.max_bytes), (1000, 1_048_550));
    assert_eq!(limits.flush_timeout, Duration::from_secs(1));
}

// ---------------------------------------------------------------------------------------
// Combiner behaviour

#[test]
fn ordinary_lines_are_never_held() {
    let mut c = Combiner::new(builtin("java"));
    let out = feed(&mut c, Instant::now(), &["GET /a 200", "GET /b 200"]);
    assert_eq!(out, [vec!["GET /a 200"], vec!["GET /b 200"]]);
    assert_eq!(c.pending_since(), None);
    assert_eq!(c.next_deadline(), None);
}

/// Every built-in lets ordinary log lines through in the same push: a detector costs
/// nothing on logs that have no traces.
#[test]
fn builtins_never_hold_ordinary_lines() {
    let ordinary = [
        r#"{"level":"info","ts":"2026-11-25T10:00:00Z","msg":"order created","id":42}"#,
        r#"level=error msg="request failed" err="context deadline exceeded""#,
        r#"10.0.3.7 - - [25/Nov/2026:10:00:00 +0000] "GET /api/orders/42 HTTP/1.1" 200 512"#,
        "2026-11-25 10:00:00.101  INFO 1 --- [main] c.a.orders.Main : Started Main in 2.1 seconds",
        r#"I, [2026-11-25T10:00:00.101234 #1]  INFO -- : Started GET "/up" for 10.0.3.7"#,
        "info: Microsoft.Hosting.Lifetime[0]",
        "      Application started. Press Ctrl+C to shut down.",
        "WARN retrying in 2s (attempt 3)",
        "",
    ];
    for &name in Detector::BUILTIN {
        let mut c = Combiner::new(builtin(name));
        for (i, text) in ordinary.iter().enumerate() {
            let mut out = Vec::new();
            c.push(line(OUT, 0, text), i as u64, Instant::now(), &mut out);
            assert_eq!(texts(&out), [*text], "{name} held {text:?}");
        }
    }
}

#[test]
fn a_java_exception_message_may_span_lines() {
    let mut c = Combiner::new(builtin("java"));
    let trace = [
        r#"org.postgresql.util.PSQLException: ERROR: duplicate key value violates unique constraint "users_pkey""#,
        "  Detail: Key (id)=(42) already exists.",
        "\tat org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse(QueryExecutorImpl.java:2713)",
    ];
    let out = feed(&mut c, Instant::now(), &[trace[0], trace[1], trace[2], "next"]);
    assert_eq!(out[3], [trace.join("\n").as_str(), "next"]);
}

#[test]
fn a_python_traceback_without_a_chain_ends_at_the_next_line() {
    let mut c = Combiner::new(builtin("python"));
    let tb = ["Traceback (most recent call last):", "  File \"a.py\", line 1, in <module>", "ValueError: x"];
    let out = feed(&mut c, Instant::now(), &[tb[0], tb[1], tb[2], "next"]);
    assert_eq!(out[3], [tb.join("\n").as_str(), "next"]);
    // A blank line could be the start of a chain, so it stays with the trace.
    let out = feed(&mut c, Instant::now(), &[tb[0], tb[1], tb[2], "", "next"]);
    assert_eq!(out[4], [format!("{}\n", tb.join("\n")).as_str(), "next"]);
}

#[test]
fn a_trace_goes_out_when_the_next_line_does_not_continue_it() {
    let mut c = Combiner::new(builtin("java"));
    let out = feed(
        &mut c,
        Instant::now(),
        &["java.lang.IllegalStateException: boom", "\tat a.B.c(B.java:1)", "next request", "later"],
    );
    let expected: [Vec<&str>; 4] = [
        vec![],
        vec![],
        vec!["java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)", "next request"],
        vec!["later"],
    ];
    assert_eq!(out, expected);
    let stats = c.stats();
    assert_eq!((stats.groups, stats.lines_merged, stats.flushes.next_group), (1, 2, 1));
}

#[test]
fn a_terminal_state_emits_at_once() {
    let mut c = Combiner::new(builtin("go"));
    let out = feed(
        &mut c,
        Instant::now(),
        &[
            "panic: boom",
            "",
            "goroutine 1 [running]:",
            "main.main()",
            "\t/src/main.go:5 +0x1d",
            "exit status 2",
        ],
    );
    assert!(out[..5].iter().all(Vec::is_empty));
    assert_eq!(
        out[5],
        ["panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:5 +0x1d\nexit status 2"]
    );
    assert_eq!(c.pending_since(), None);
    assert_eq!(c.stats().flushes.end_of_trace, 1);
}

#[test]
fn group_keeps_first_lines_timestamp_and_any_invalid_utf8() {
    let mut c = Combiner::new(builtin("java"));
    let mut out = Vec::new();
    let now = Instant::now();
    c.push(line(OUT, 7, "x.YException: a"), 0, now, &mut out);
    c.push(Line { invalid_utf8: true, ..line(OUT, 8, "\tat \u{FFFD}") }, 10, now, &mut out);
    c.flush(&mut out);
    assert_eq!(out, [Line { invalid_utf8: true, ..line(OUT, 7, "x.YException: a\n\tat \u{FFFD}") }]);
    assert_eq!(c.stats().flushes.end_of_input, 1);
}

#[test]
fn stdout_and_stderr_group_independently() {
    let mut c = Combiner::new(builtin("python"));
    let mut out = Vec::new();
    let now = Instant::now();
    let input = [
        (ERR, "Traceback (most recent call last):"),
        (OUT, "GET /health 200"),
        (ERR, "  File \"/app/x.py\", line 1, in <module>"),
        (OUT, "Traceback (most recent call last):"),
        (ERR, "    main()"),
        (OUT, "  File \"/app/y.py\", line 2, in f"),
        (ERR, "KeyError: 'id'"),
        (OUT, "ValueError: bad"),
        (ERR, "stderr after"),
        (OUT, "stdout after"),
    ];
    for (i, (stream, text)) in input.into_iter().enumerate() {
        c.push(line(stream, i as i64, text), i as u64 * 10, now, &mut out);
        if i == 3 {
            assert_eq!(c.pending_since(), Some(0), "the stderr group is the oldest");
        }
    }
    assert_eq!(
        out,
        [
            line(OUT, 1, "GET /health 200"),
            line(
                ERR,
                0,
                "Traceback (most recent call last):\n  File \"/app/x.py\", line 1, in <module>\n    main()\nKeyError: 'id'"
            ),
            line(ERR, 8, "stderr after"),
            line(
                OUT,
                3,
                "Traceback (most recent call last):\n  File \"/app/y.py\", line 2, in f\nValueError: bad"
            ),
            line(OUT, 9, "stdout after"),
        ]
    );
}

#[test]
fn max_lines_cuts_and_the_trace_goes_on_in_a_new_group() {
    let limits = Limits { max_lines: 2, ..Limits::default() };
    let mut c = Combiner::new(Detector::builtin("java", limits).expect("java"));
    let out =
        feed(&mut c, Instant::now(), &["a.BException: x", "\tat 1", "\tat 2", "\tat 3", "\tat 4", "done"]);
    let expected: [Vec<&str>; 6] = [
        vec![],
        vec!["a.BException: x\n\tat 1"],
        vec![],
        vec!["\tat 2\n\tat 3"],
        vec![],
        vec!["\tat 4", "done"],
    ];
    assert_eq!(out, expected);
    assert_eq!(c.stats().flushes.max_lines, 2);
}

#[test]
fn max_bytes_counts_the_joins_and_long_lines_go_alone() {
    // "a.BException: x" is 15 bytes; + "\n\tat 1" = 21: full.
    let limits = Limits { max_bytes: 21, ..Limits::default() };
    let mut c = Combiner::new(Detector::builtin("java", limits).expect("java"));
    let long = format!("\tat {}", "x".repeat(30));
    let out =
        feed(&mut c, Instant::now(), &["a.BException: x", "\tat 1", "\tat 22", &long, "\tat 3", "done"]);
    let expected: [Vec<&str>; 6] = [
        vec![],
        vec!["a.BException: x\n\tat 1"],
        vec![],
        vec!["\tat 22", &long],
        vec![],
        vec!["\tat 3", "done"],
    ];
    assert_eq!(out, expected);
    // Full after "\tat 1", and before the long line; the long line alone is no flush.
    assert_eq!(c.stats().flushes.max_bytes, 2);
}

#[test]
fn flush_timeout_via_next_deadline_and_flush_expired() {
    let limits = Limits { flush_timeout: Duration::from_secs(2), ..Limits::default() };
    let mut c = Combiner::new(Detector::builtin("java", limits).expect("java"));
    let t0 = Instant::now();
    let mut out = Vec::new();
    c.push(line(OUT, 1, "a.BException: x"), 0, t0, &mut out);
    assert_eq!(c.next_deadline(), Some(t0 + Duration::from_secs(2)));
    let t1 = t0 + Duration::from_secs(1);
    c.push(line(OUT, 2, "\tat 1"), 50, t1, &mut out);
    c.push(line(ERR, 3, "b.CException: y"), 100, t1 + Duration::from_millis(500), &mut out);
    // The deadline runs from each group's last line.
    assert_eq!(c.next_deadline(), Some(t1 + Duration::from_secs(2)));
    assert_eq!(c.flush_expired(t1 + Duration::from_millis(1999), &mut out), 0);
    assert_eq!(c.flush_expired(t1 + Duration::from_secs(2), &mut out), 1);
    assert_eq!(texts(&out), ["a.BException: x\n\tat 1"]);
    assert_eq!(c.pending_since(), Some(100));
    // Both expired: oldest first.
    c.push(line(OUT, 4, "c.DException: z"), 150, t1, &mut out);
    assert_eq!(c.flush_expired(t1 + Duration::from_secs(60), &mut out), 2);
    assert_eq!(texts(&out[1..]), ["b.CException: y", "c.DException: z"]);
    assert_eq!(c.next_deadline(), None);
    assert_eq!(c.stats().flushes.timeout, 3);
    // A timed-out trace is over: a frame after it is a line of its own.
    c.push(line(OUT, 5, "\tat 2"), 200, t1 + Duration::from_secs(61), &mut out);
    assert_eq!(out.last().map(|l| l.text.as_str()), Some("\tat 2"));
}

#[test]
fn continued_pieces_are_never_grouped() {
    let mut c = Combiner::new(builtin("java"));
    let now = Instant::now();
    let mut out = Vec::new();
    c.push(line(OUT, 1, "a.BException: x"), 0, now, &mut out);
    c.push(line(ERR, 2, "c.DException: y"), 10, now, &mut out);
    c.push(Line { continued: true, ..line(OUT, 3, "\tat aaaa") }, 20, now, &mut out);
    // The rest of the long line passes through too, even though it looks like a frame.
    c.push(line(OUT, 3, "\tat bbbb"), 30, now, &mut out);
    c.push(line(OUT, 4, "\tat c"), 40, now, &mut out);
    assert_eq!(texts(&out), ["a.BException: x", "\tat aaaa", "\tat bbbb", "\tat c"]);
    assert!(out[1].continued && !out[2].continued);
    assert_eq!(c.pending_since(), Some(10), "the other stream's group is untouched");
    assert_eq!(c.stats().flushes.continued_piece, 1);
}

#[test]
fn pending_since_follows_the_oldest_open_group() {
    let mut c = Combiner::new(builtin("java"));
    let now = Instant::now();
    let mut out = Vec::new();
    assert_eq!(c.pending_since(), None);
    c.push(line(OUT, 1, "a.BException: x"), 100, now, &mut out);
    c.push(line(ERR, 2, "c.DException: y"), 200, now, &mut out);
    c.push(line(OUT, 3, "\tat 1"), 300, now, &mut out);
    assert_eq!(c.pending_since(), Some(100));
    c.push(line(OUT, 4, "e.FException: z"), 400, now, &mut out);
    assert_eq!(c.pending_since(), Some(200));
    c.flush(&mut out);
    assert_eq!(c.pending_since(), None);
    assert_eq!(texts(&out), ["a.BException: x\n\tat 1", "c.DException: y", "e.FException: z"]);
}

#[test]
fn take_open_and_adopt_carry_a_trace_across_rotation() {
    let java = builtin("java");
    let now = Instant::now();
    let mut out = Vec::new();
    let mut old = Combiner::new(java.clone());
    old.push(line(OUT, 1, "a.BException: x"), 5000, now, &mut out);
    old.push(line(OUT, 2, "\tat 1"), 5100, now, &mut out);
    old.push(line(ERR, 3, "c.DException: y"), 5200, now, &mut out);
    let open = old.take_open();
    assert_eq!(open.len(), 2);
    assert_eq!(old.pending_since(), None);

    let mut new = Combiner::new(java);
    new.adopt(open, 0, &mut out);
    assert!(out.is_empty());
    assert_eq!(new.pending_since(), Some(0));
    assert_eq!(new.next_deadline(), Some(now + Duration::from_secs(1)), "the deadline is kept");
    // The rest of the trace, from the new file, joins it.
    new.push(line(OUT, 4, "\tat 2"), 0, now, &mut out);
    new.push(line(OUT, 5, "done"), 10, now, &mut out);
    assert_eq!(texts(&out), ["a.BException: x\n\tat 1\n\tat 2", "done"]);
    new.flush(&mut out);
    assert_eq!(texts(&out[2..]), ["c.DException: y"]);
}

#[test]
fn adopt_emits_what_it_cannot_keep() {
    let now = Instant::now();
    let mut out = Vec::new();
    let mut old = Combiner::new(builtin("java"));
    old.push(line(OUT, 1, "a.BException: x"), 0, now, &mut out);
    old.push(line(ERR, 2, "c.DException: y"), 10, now, &mut out);
    // Another detector: its states mean nothing here.
    let mut other = Combiner::new(builtin("python"));
    other.adopt(old.take_open(), 0, &mut out);
    assert_eq!(texts(&out), ["a.BException: x", "c.DException: y"]);
    assert_eq!(other.pending_since(), None);
    // Same detector, but the stream already has a group: the adopted, older one goes first.
    let java = builtin("java");
    let mut old = Combiner::new(java.clone());
    old.push(line(OUT, 1, "a.BException: old"), 0, now, &mut out);
    let mut new = Combiner::new(java);
    new.push(line(OUT, 2, "a.BException: new"), 0, now, &mut out);
    new.adopt(old.take_open(), 0, &mut out);
    assert_eq!(texts(&out[2..]), ["a.BException: old"]);
    assert_eq!(new.pending_since(), Some(0));
}

// ---------------------------------------------------------------------------------------
// Custom detectors

#[test]
fn custom_start_only_groups_until_the_next_start() {
    let mut c = Combiner::new(custom(Some(r"^\d{4}-\d\d-\d\d "), None));
    let out = feed(
        &mut c,
        Instant::now(),
        &["orphan", "2026-11-25 one", "  more", "and more", "2026-11-25 two", "2026-11-25 three", "x"],
    );
    let expected: [Vec<&str>; 7] = [
        vec!["orphan"],
        vec![],
        vec![],
        vec![],
        vec!["2026-11-25 one\n  more\nand more"],
        vec!["2026-11-25 two"],
        vec![],
    ];
    assert_eq!(out, expected);
    assert_eq!(c.pending_since(), Some(500));
}

#[test]
fn custom_continuation_only_joins_matching_lines_to_the_previous() {
    let mut c = Combiner::new(custom(None, Some(r"^\s")));
    let out = feed(&mut c, Instant::now(), &["  orphan", "one", "  a", "  b", "two", "three", "  c"]);
    let expected: [Vec<&str>; 7] =
        [vec!["  orphan"], vec![], vec![], vec![], vec!["one\n  a\n  b"], vec!["two"], vec![]];
    assert_eq!(out, expected);
    let mut rest = Vec::new();
    c.flush(&mut rest);
    assert_eq!(texts(&rest), ["three\n  c"]);
}

#[test]
fn custom_start_and_continuation() {
    let mut c = Combiner::new(custom(Some("^ERROR"), Some(r"^\s")));
    let out = feed(&mut c, Instant::now(), &["INFO a", "  not joined", "ERROR b", "  joined", "INFO c"]);
    let expected: [Vec<&str>; 5] =
        [vec!["INFO a"], vec!["  not joined"], vec![], vec![], vec!["ERROR b\n  joined", "INFO c"]];
    assert_eq!(out, expected);
}

#[test]
fn custom_limits_override_the_defaults() {
    let spec = CustomDetector {
        name: "app".into(),
        start: Some("^S".into()),
        max_lines: Some(3),
        flush_timeout: Some("250ms".into()),
        ..CustomDetector::default()
    };
    let detector = Detector::custom(&spec, Limits::default()).expect("valid");
    assert_eq!(
        detector.limits(),
        Limits {
            max_lines: 3,
            max_bytes: Limits::default().max_bytes,
            flush_timeout: Duration::from_millis(250)
        }
    );
    assert_eq!(detector.name(), "app");
}

#[test]
fn custom_detector_config_rejects_unknown_fields() {
    let ok: CustomDetector =
        toml::from_str("name = \"app\"\nstart = \"^S\"\nflush_timeout = \"2s\"").expect("valid");
    assert_eq!(ok.flush_timeout.as_deref(), Some("2s"));
    let err = toml::from_str::<CustomDetector>("name = \"app\"\nstrat = \"^S\"").expect_err("typo");
    assert!(err.to_string().contains("unknown field `strat`"), "{err}");
}

/// Every rejection, as the operator reads it.
#[test]
fn custom_detector_errors() {
    let base = CustomDetector { name: "app".into(), start: Some("^S".into()), ..CustomDetector::default() };
    let cases = [
        CustomDetector { name: String::new(), ..base.clone() },
        CustomDetector { name: "java".into(), ..base.clone() },
        CustomDetector { start: None, ..base.clone() },
        CustomDetector { start: Some("(unclosed".into()), ..base.clone() },
        CustomDetector { continuation: Some("[z-a]".into()), ..base.clone() },
        CustomDetector { max_lines: Some(0), ..base.clone() },
        CustomDetector { max_bytes: Some(0), ..base.clone() },
        CustomDetector { flush_timeout: Some("0s".into()), ..base.clone() },
        CustomDetector { flush_timeout: Some("soon".into()), ..base.clone() },
    ];
    let table: Vec<String> = cases
        .iter()
        .map(|spec| match Detector::custom(spec, Limits::default()) {
            Ok(d) => format!("unexpectedly valid: {}", d.name()),
            Err(e) => e.to_string(),
        })
        .collect();
    insta::assert_snapshot!(table.join("\n---\n"));
}

// ---------------------------------------------------------------------------------------
// Properties

/// Lines that exercise the detectors: every fixture line, plus ordinary and random ones.
fn corpus() -> Vec<String> {
    let mut lines = Vec::new();
    for &name in Detector::BUILTIN {
        for entry in std::fs::read_dir(fixture_dir().join(name)).expect("fixtures").flatten() {
            if entry.path().extension().is_some_and(|ext| ext == "log") {
                let text = std::fs::read_to_string(entry.path()).expect("fixture");
                lines.extend(text.lines().map(str::to_owned));
            }
        }
    }
    lines.sort();
    lines.dedup();
    lines
}

#[derive(Debug, Clone)]
enum Step {
    /// A line: stream, text, a `continued` piece, milliseconds since the previous step.
    Push(Stream, String, bool, u64),
    /// `flush_expired` this many milliseconds later.
    Tick(u64),
    /// The file rotates: the open groups move to a new combiner, as of the current offset.
    Rotate,
}

fn steps() -> impl Strategy<Value = (String, Limits, Vec<Step>)> {
    let corpus = corpus();
    let text = prop_oneof![
        6 => proptest::sample::select(corpus),
        1 => "[ a-zA-Z.:\t]{0,12}",
        1 => Just(String::new()),
    ];
    let stream = prop_oneof![Just(OUT), Just(ERR)];
    let step = prop_oneof![
        12 => (stream, text, proptest::bool::weighted(0.05), 0u64..400).prop_map(|(s, t, c, d)| Step::Push(s, t, c, d)),
        1 => (0u64..3000).prop_map(Step::Tick),
        1 => Just(Step::Rotate),
    ];
    let name = proptest::sample::select(vec![
        "java",
        "python",
        "go",
        "ruby",
        "dotnet",
        "custom-start",
        "custom-cont",
        "custom-both",
    ]);
    let limits = (1usize..8, 1usize..400, 1u64..2000).prop_map(|(max_lines, max_bytes, ms)| Limits {
        max_lines,
        max_bytes,
        flush_timeout: Duration::from_millis(ms),
    });
    (name.prop_map(str::to_owned), limits, proptest::collection::vec(step, 0..80))
}

fn detector(name: &str, limits: Limits) -> Detector {
    let custom = |start: Option<&str>, continuation: Option<&str>| {
        let spec = CustomDetector {
            name: "app".into(),
            start: start.map(Into::into),
            continuation: continuation.map(Into::into),
            ..CustomDetector::default()
        };
        let defaults = limits;
        Detector::custom(&spec, defaults).expect("valid")
    };
    match name {
        "custom-start" => custom(Some(r"^\d{4}|^\[|^[IF], "), None),
        "custom-cont" => custom(None, Some(r"^\s")),
        "custom-both" => custom(Some("Exception|Error|Traceback|panic"), Some(r"^\s|^Caused by")),
        _ => Detector::builtin(name, limits).expect("built-in"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn grouping_loses_nothing_and_respects_limits((name, limits, steps) in steps()) {
        let detector = detector(&name, limits);
        let mut c = Combiner::new(detector.clone());
        // Stats of the combiners rotated away, and the multi-line events seen.
        let (mut groups_before, mut merged_before) = (0, 0);
        let mut now = Instant::now();
        let mut out: Vec<Line> = Vec::new();
        // Per stream: (offset, timestamp, text, continued) of every line pushed, in order.
        let mut pushed: [Vec<(u64, i64, String, bool)>; 2] = [Vec::new(), Vec::new()];
        // Per stream: how many of its lines came out so far.
        let mut emitted = [0usize; 2];
        let slot = |s: Stream| usize::from(s == ERR);
        let mut offset = 0u64;
        let check = |out: &[Line], emitted: &mut [usize; 2], pushed: &[Vec<(u64, i64, String, bool)>; 2]| -> Result<(), TestCaseError> {
            for event in out {
                let s = slot(event.stream);
                let input = &pushed[s];
                let first = emitted[s];
                if event.continued {
                    // A piece goes out alone and unchanged.
                    prop_assert_eq!(&input[first].2, &event.text);
                    prop_assert!(input[first].3);
                    emitted[s] += 1;
                    continue;
                }
                let parts: Vec<&str> = event.text.split('\n').collect();
                prop_assert!(first + parts.len() <= input.len(), "more lines out than in");
                for (k, part) in parts.iter().enumerate() {
                    prop_assert_eq!(&input[first + k].2, part, "lost, reordered or altered");
                    prop_assert!(parts.len() == 1 || !input[first + k].3, "a piece was grouped");
                }
                prop_assert_eq!(event.timestamp_ms, input[first].1);
                if parts.len() > 1 {
                    prop_assert!(parts.len() <= limits.max_lines, "{} lines", parts.len());
                    prop_assert!(event.text.len() <= limits.max_bytes, "{} bytes", event.text.len());
                }
                emitted[s] += parts.len();
            }
            Ok(())
        };
        for step in steps {
            let mut batch = Vec::new();
            match step {
                Step::Push(stream, text, continued, delay) => {
                    now += Duration::from_millis(delay);
                    // Texts never hold "\n": the assembler splits on it.
                    let l = Line { timestamp_ms: offset as i64, stream, text: text.clone(), invalid_utf8: false, continued };
                    pushed[slot(stream)].push((offset, offset as i64, text.clone(), continued));
                    c.push(l, offset, now, &mut batch);
                    offset += text.len() as u64 + 1;
                }
                Step::Tick(delay) => {
                    now += Duration::from_millis(delay);
                    let n = c.flush_expired(now, &mut batch);
                    prop_assert_eq!(n, batch.len());
                    prop_assert!(c.next_deadline().is_none_or(|d| d > now));
                }
                Step::Rotate => {
                    let open = c.take_open();
                    prop_assert_eq!(c.pending_since(), None);
                    groups_before += c.stats().groups;
                    merged_before += c.stats().lines_merged;
                    c = Combiner::new(detector.clone());
                    c.adopt(open, offset, &mut batch);
                    prop_assert!(batch.is_empty(), "a fresh combiner of the same detector keeps them all");
                    // The held lines now count as starting at the adoption offset.
                    for s in 0..2 {
                        for held in &mut pushed[s][emitted[s]..] {
                            held.0 = held.0.max(offset);
                        }
                    }
                }
            }
            check(&batch, &mut emitted, &pushed)?;
            out.extend(batch);
            // The checkpoint never passes a held line, and nothing held means no checkpoint limit.
            let held: Vec<u64> = (0..2).flat_map(|s| pushed[s][emitted[s]..].iter().map(|p| p.0)).collect();
            match (c.pending_since(), held.iter().min()) {
                (None, None) => {}
                (Some(since), Some(&oldest)) => prop_assert!(since <= oldest, "{} > {}", since, oldest),
                (since, oldest) => {
                    return Err(TestCaseError::fail(format!("pending_since {since:?} but oldest held {oldest:?}")));
                }
            }
            prop_assert_eq!(c.next_deadline().is_some(), c.pending_since().is_some());
        }
        let mut rest = Vec::new();
        c.flush(&mut rest);
        check(&rest, &mut emitted, &pushed)?;
        prop_assert_eq!(emitted, [pushed[0].len(), pushed[1].len()]);
        prop_assert_eq!(c.pending_since(), None);
        out.extend(rest);
        // The counters agree with the output.
        let multi: Vec<usize> = out.iter().map(|l| l.text.split('\n').count()).filter(|&n| n > 1).collect();
        prop_assert_eq!(groups_before + c.stats().groups, multi.len() as u64);
        prop_assert_eq!(merged_before + c.stats().lines_merged, multi.iter().sum::<usize>() as u64);
    }
}
