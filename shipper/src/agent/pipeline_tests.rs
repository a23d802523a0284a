//! The per-file pipeline in-process: exclusion, checkpoints around held stack traces, and a
//! trace carried across kubelet's rotation, against a real spool in a temporary directory.

use crate::telemetry::DropReason;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;
use crate::multiline::Limits;
use crate::route::{CONTINUATION_MARKER, MatcherSpec, MessageFormat, RoutingSettings};
use crate::spool::{Spool, SpoolOptions};

fn routing(exclude: &[MatcherSpec], format: MessageFormat) -> Routing {
    Routing::new(&RoutingSettings {
        exclude,
        multiline: Some("java"),
        message_format: format,
        ..RoutingSettings::defaults()
    })
    .expect("valid routing")
}

fn container() -> ContainerRef {
    ContainerRef {
        pod: "api-7d9f8b6c5d-x2k4p".into(),
        namespace: "shop".into(),
        container: "app".into(),
        container_id: "0".repeat(64),
    }
}

fn pod() -> PodInfo {
    PodInfo {
        namespace: "shop".into(),
        name: "api-7d9f8b6c5d-x2k4p".into(),
        uid: "u".into(),
        labels: BTreeMap::from([("app".to_owned(), "api".to_owned())]),
        annotations: BTreeMap::new(),
        images: BTreeMap::from([("app".to_owned(), "api:1".to_owned())]),
        workload: Workload::from_pod_name("api-7d9f8b6c5d-x2k4p"),
    }
}

fn java() -> Detector {
    Detector::builtin("java", Limits::default()).expect("built-in")
}

fn pipeline(routing: &Routing, detector: Option<Detector>) -> FilePipeline {
    let mut file = FilePipeline::new(container(), Instant::now());
    let routed = Routed::new(routing, "prod", "node-1", &container(), Some(&pod()));
    file.set_routed(routed, detector);
    file
}

/// CRI records of `lines`, all `F`, on stdout.
fn cri(lines: &[&str]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|line| format!("2026-12-03T10:00:00.000000000Z stdout F {line}\n").into_bytes())
        .collect()
}

fn spool(dir: &std::path::Path) -> Spool {
    let options = SpoolOptions { max_bytes: 1 << 30, flush_interval: Duration::from_millis(1) };
    Spool::open(dir, options).expect("spool").0
}

/// Every message spooled so far (and acknowledged: read once).
fn messages(spool: &mut Spool) -> Vec<String> {
    spool.seal_all();
    spool.commit(b"{}").expect("commit");
    let mut out = Vec::new();
    for chunk in spool.ready(&|_| false) {
        out.extend(Spool::read(&chunk).expect("read").events.into_iter().map(|event| event.message));
        spool.ack(&chunk).expect("ack");
    }
    out
}

/// Every event spooled so far, as the `log` values of their messages.
fn logs(spool: &mut Spool) -> Vec<String> {
    messages(spool)
        .iter()
        .map(|message| {
            let message: serde_json::Value = serde_json::from_str(message).expect("JSON");
            message["log"].as_str().expect("string log").to_owned()
        })
        .collect()
}

#[test]
fn excluded_lines_are_read_counted_and_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = spool(dir.path());
    let metrics = Metrics::default();
    let exclude = [MatcherSpec {
        name: Some("no-shop".into()),
        namespace: Some(crate::route::Globs::One("shop".into())),
        ..MatcherSpec::default()
    }];
    let routing = routing(&exclude, MessageFormat::Envelope);
    let mut file = pipeline(&routing, Some(java()));
    let bytes = cri(&["one", "java.lang.IllegalStateException: boom", "\tat a.B.c(B.java:1)"]);
    let safe = file.process(&bytes, 0, &mut spool, &metrics).expect("process");
    assert_eq!(safe, bytes.len() as u64, "an excluded file's checkpoint advances past everything read");
    assert_eq!(metrics.lines_excluded.get("no-shop"), 3);
    assert_eq!(metrics.lines_read.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert!(DropReason::ALL.iter().all(|reason| metrics.dropped_total(*reason) == 0), "not drops");
    assert!(logs(&mut spool).is_empty(), "nothing spooled");
}

#[test]
fn a_held_trace_holds_the_checkpoint_at_its_first_line_until_it_goes_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = spool(dir.path());
    let metrics = Metrics::default();
    let routing = routing(&[], MessageFormat::Envelope);
    let mut file = pipeline(&routing, Some(java()));
    let before = cri(&["started"]);
    let trace =
        cri(&["java.lang.IllegalStateException: boom", "\tat a.B.c(B.java:1)", "\tat a.B.d(B.java:2)"]);
    let bytes = [before.clone(), trace.clone()].concat();
    let safe = file.process(&bytes, 0, &mut spool, &metrics).expect("process");
    assert_eq!(safe, before.len() as u64, "the checkpoint stops at the trace's first line");
    let deadline = file.group_deadline().expect("a trace is held");
    file.flush_expired(deadline - Duration::from_millis(1), &mut spool, &metrics).expect("flush");
    assert_eq!(file.safe_offset(file.read_end), before.len() as u64, "not yet due");
    file.flush_expired(deadline, &mut spool, &metrics).expect("flush");
    assert_eq!(file.safe_offset(file.read_end), bytes.len() as u64);
    assert_eq!(
        logs(&mut spool),
        vec![
            "started".to_owned(),
            "java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)\n\tat a.B.d(B.java:2)".to_owned()
        ]
    );
    assert_eq!(metrics.multiline_groups.get("java"), 1);
    assert_eq!(metrics.multiline_lines.get("java"), 3);
    assert_eq!(metrics.multiline_flushes.get("timeout"), 1);
}

#[test]
fn a_trace_cut_by_rotation_continues_in_the_next_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = spool(dir.path());
    let metrics = Metrics::default();
    let routing = routing(&[], MessageFormat::Envelope);
    // One detector for both files, as the agent's registry hands out.
    let java = java();
    let mut old = pipeline(&routing, Some(java.clone()));
    let head = cri(&["before", "java.lang.IllegalStateException: boom", "\tat a.B.c(B.java:1)"]);
    old.process(&head, 0, &mut spool, &metrics).expect("process");
    let handed = old.hand_over(&mut spool, &metrics).expect("hand over");
    assert_eq!(handed.safe, cri(&["before"]).len() as u64, "the rotated file waits at the trace's start");
    let carry = handed.carry.expect("the trace is carried");

    let mut new = FilePipeline::new(container(), Instant::now());
    new.pending_carry.push((FileKey(1), head.len() as u64, carry));
    new.set_routed(Routed::new(&routing, "prod", "node-1", &container(), Some(&pod())), Some(java));
    let tail = cri(&["\tat a.B.d(B.java:2)", "\t... 3 more"]);
    let safe = new.process(&tail, 0, &mut spool, &metrics).expect("process");
    assert_eq!(safe, 0, "the new file's checkpoint waits too while the trace is held");
    assert!(new.take_released().is_empty(), "the rotated file still waits");
    let next = cri(&["after"]);
    new.process(&next, tail.len() as u64, &mut spool, &metrics).expect("process");
    assert_eq!(new.take_released(), vec![(FileKey(1), head.len() as u64)], "released once the trace is out");
    assert_eq!(
        logs(&mut spool),
        vec![
            "before".to_owned(),
            "java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)\n\tat a.B.d(B.java:2)\n\t... 3 more"
                .to_owned(),
            "after".to_owned(),
        ]
    );
}

#[test]
fn rotation_without_a_held_trace_releases_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = spool(dir.path());
    let metrics = Metrics::default();
    let routing = routing(&[], MessageFormat::Envelope);
    let mut old = pipeline(&routing, Some(java()));
    let bytes = cri(&["plain", "lines"]);
    old.process(&bytes, 0, &mut spool, &metrics).expect("process");
    let handed = old.hand_over(&mut spool, &metrics).expect("hand over");
    assert_eq!((handed.safe, handed.carry.is_none()), (bytes.len() as u64, true));
}

#[test]
fn an_empty_raw_line_is_a_counted_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = spool(dir.path());
    let metrics = Metrics::default();
    let routing = routing(&[], MessageFormat::Raw);
    let mut file = pipeline(&routing, None);
    let bytes = b"2026-12-03T10:00:00.000000000Z stdout F \n2026-12-03T10:00:00.000000000Z stdout F text\n";
    file.process(bytes, 0, &mut spool, &metrics).expect("process");
    assert_eq!(metrics.dropped_total(DropReason::EmptyMessage), 1);
    assert_eq!(messages(&mut spool), vec!["text".to_owned()]);
}

proptest::proptest! {
    /// Any line, carriage returns anywhere, split into CRI `P` records anywhere (inside
    /// characters too), comes back byte for byte: only each record's `\n` is framing.
    #[test]
    fn any_split_of_any_line_is_reassembled_exactly(
        text in "[a-z\r é😀\t]{1,60}",
        cuts in proptest::collection::vec(0usize..200, 0..6),
    ) {
        let bytes = text.as_bytes();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut records = Vec::new();
        let mut from = 0;
        for &cut in &cuts {
            records.extend_from_slice(b"2026-12-03T10:00:00.000000000Z stdout P ");
            records.extend_from_slice(&bytes[from..cut]);
            records.push(b'\n');
            from = cut;
        }
        records.extend_from_slice(b"2026-12-03T10:00:00.000000000Z stdout F ");
        records.extend_from_slice(&bytes[from..]);
        records.push(b'\n');

        let dir = tempfile::tempdir().expect("tempdir");
        let mut spool = spool(dir.path());
        let metrics = Metrics::default();
        let routing = routing(&[], MessageFormat::Raw);
        let mut file = pipeline(&routing, None);
        let safe = file.process(&records, 0, &mut spool, &metrics).expect("process");
        proptest::prop_assert_eq!(safe, records.len() as u64);
        proptest::prop_assert_eq!(messages(&mut spool), vec![text]);
    }
}

#[test]
fn a_burst_of_short_lines_leaves_no_grown_queues_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = spool(dir.path());
    let metrics = Metrics::default();
    let routing = routing(&[], MessageFormat::Envelope);
    let mut file = pipeline(&routing, None);
    let lines: Vec<String> = (0..5_000).map(|i| format!("l{i}")).collect();
    let bytes = cri(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    file.process(&bytes, 0, &mut spool, &metrics).expect("process");
    assert_eq!(metrics.events_spooled.load(std::sync::atomic::Ordering::Relaxed), 5_000);
    assert!(file.queue_capacity() <= 3 * 64, "queues kept {} slots after the burst", file.queue_capacity());
}

/// The partial-line budget spent: what an unfinished line holds goes out as a continued
/// piece, the line stays open, and its rest follows; the checkpoint stays at the line's
/// start (a crash re-sends the piece: duplicates, never loss).
#[test]
fn released_partials_go_out_as_pieces_and_the_line_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = spool(dir.path());
    let metrics = Metrics::default();
    let routing = routing(&[], MessageFormat::Envelope);
    let mut file = pipeline(&routing, None);
    let head = b"2026-12-03T10:00:00.000000000Z stdout P first half, \n".to_vec();
    let tail = b"2026-12-03T10:00:00.000000000Z stdout F second half\n".to_vec();

    let safe = file.process(&head, 0, &mut spool, &metrics).expect("process");
    assert_eq!(safe, 0, "an unfinished line holds the checkpoint");
    assert_eq!(file.pending_line_bytes(), "first half, ".len());
    assert_eq!(file.release_partials(&mut spool, &metrics).expect("release"), 1);
    assert_eq!(file.pending_line_bytes(), 0);
    assert_eq!(file.safe_offset(head.len() as u64), 0, "the line is still open");
    let released = logs(&mut spool);
    assert_eq!(released.len(), 1);
    assert!(
        released[0].starts_with("first half, ") && released[0].ends_with(CONTINUATION_MARKER),
        "{released:?}"
    );

    let end = (head.len() + tail.len()) as u64;
    assert_eq!(file.process(&tail, head.len() as u64, &mut spool, &metrics).expect("process"), end);
    assert_eq!(logs(&mut spool), ["second half"]);
}

/// A runtime that does not split long lines writes a 3.5 MiB line as one record; the
/// tailer hands it out in 1 MiB prefixes. The line arrives whole, in pieces bounded like
/// any long line, and the checkpoint stays at its start until its last byte is in.
#[test]
fn a_line_handed_out_in_prefixes_arrives_whole_and_holds_the_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = spool(dir.path());
    let metrics = Metrics::default();
    let routing = routing(&[], MessageFormat::Envelope);
    let mut file = pipeline(&routing, None);
    let text: String = (0..3_500_000u32).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let before = cri(&["short"]);
    let mut record = format!("2026-12-03T10:00:01.000000000Z stderr F {text}\n").into_bytes();
    record.extend_from_slice(&cri(&["after"]));
    let mut bytes = before.clone();
    bytes.extend_from_slice(&record);

    // As the tailer hands it out: the short line, then 1 MiB prefixes, then the rest.
    let prefix = crate::source::LONG_LINE_PREFIX_BYTES;
    let line_start = before.len();
    let line_end = line_start + record.len() - cri(&["after"]).len();
    let mut at = 0;
    let mut safe = Vec::new();
    for (to, unfinished) in [
        (line_start, false),
        (line_start + prefix, true),
        (line_start + 2 * prefix, true),
        (line_start + 3 * prefix, true),
        (bytes.len(), false),
    ] {
        safe.push(
            file.process_chunk(&bytes[at..to], at as u64, unfinished, &mut spool, &metrics).expect("process"),
        );
        at = to;
    }
    assert_eq!(safe[1..4], [line_start as u64; 3], "the checkpoint waits at the line's start");
    assert_eq!(*safe.last().expect("safe"), bytes.len() as u64);
    assert!(line_end < bytes.len());

    // One chunk per stream at a time: drain them all.
    let mut logs = Vec::new();
    loop {
        let more = self::logs(&mut spool);
        if more.is_empty() {
            break;
        }
        logs.extend(more);
    }
    assert_eq!(logs.first().map(String::as_str), Some("short"));
    assert_eq!(logs.last().map(String::as_str), Some("after"));
    let pieces = &logs[1..logs.len() - 1];
    assert!(pieces.len() >= 4, "{} pieces", pieces.len());
    let mut joined = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        let body = piece.strip_suffix(CONTINUATION_MARKER);
        assert_eq!(body.is_none(), last, "every piece but the last is marked continued");
        joined.push_str(body.unwrap_or(piece));
    }
    assert_eq!(joined.len(), text.len());
    assert!(joined == text, "the line arrives whole and in order");
}
