//! Where a first install starts: `read_from = tail` and `ignore_older` skip what the first
//! scan finds, and nothing else.

use std::time::SystemTime;

use super::*;
use crate::telemetry::SkipReason;

fn line(n: u32) -> Vec<u8> {
    format!("2026-11-25T10:00:{:02}.000000001Z stdout F line {n:04}\n", n % 60).into_bytes()
}

fn lines(range: std::ops::RangeInclusive<u32>) -> Vec<u8> {
    range.flat_map(line).collect()
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Options of a first install starting as told.
fn first_install(node: &Node, read_from: ReadFrom, ignore_older: Option<Duration>) -> TailerOptions {
    TailerOptions { read_from, ignore_older, first_install: true, ..node.options(1024) }
}

/// The `Skipped` events: `(path, from, to, reason)`, by path.
fn skipped(events: &[SourceEvent]) -> Vec<(PathBuf, u64, u64, SkipReason)> {
    let mut skipped: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Skipped { path, from, to, reason } => Some((path.clone(), *from, *to, *reason)),
            _ => None,
        })
        .collect();
    skipped.sort_by(|a, b| a.0.cmp(&b.0));
    skipped
}

/// The lines in `read`, sorted (files are read in no particular order between paths).
fn sorted_lines(read: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = lossy(read).lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn lost(events: &[SourceEvent]) -> Vec<&SourceEvent> {
    events.iter().filter(|e| matches!(e, SourceEvent::Lost { .. })).collect()
}

fn len(path: &std::path::Path) -> u64 {
    fs::metadata(path).expect("stat").len()
}

/// Set the modification time of the file at `path`.
fn set_mtime(path: &std::path::Path, when: SystemTime) {
    File::options().write(true).open(path).expect("open").set_modified(when).expect("set mtime");
}

#[test]
fn tail_starts_live_files_at_their_last_newline_and_skips_their_rotations() {
    let node = Node::new();
    let mut web = node.container("web");
    web.write(&lines(1..=3));
    web.rotate();
    web.write(&lines(4..=5));
    // The first rotation is gzipped, the second stays plain (kubelet's order).
    let plain = web.rotate_and_compress();
    let gz = PathBuf::from(format!("{}.gz", web.dir().join("0.log.20261125100001").display()));
    assert!(gz.exists(), "the older rotation is gzipped");
    web.write(&lines(6..=7));
    web.write(b"2026-11-25T10:00:08.000000001Z stdout F partial");
    let mut db = node.container("db");
    db.write(&lines(20..=21));

    let mut tailer =
        Tailer::new(first_install(&node, ReadFrom::Tail, None), SourceState::default()).expect("tailer");
    let mut events = Vec::new();
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), "", "nothing found at start is read");
    assert!(lost(&events).is_empty(), "{events:?}");
    let live_skipped = lines(6..=7).len() as u64;
    let got = skipped(&events);
    let mut want = vec![
        (gz.clone(), 0, len(&gz), SkipReason::ReadFromTail),
        (plain.clone(), 0, lines(4..=5).len() as u64, SkipReason::ReadFromTail),
        (web.link.clone(), 0, live_skipped, SkipReason::ReadFromTail),
        (db.link.clone(), 0, lines(20..=21).len() as u64, SkipReason::ReadFromTail),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);
    // Every live file is followed from just after its last newline.
    let live_offsets: Vec<(PathBuf, u64)> = events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Opened { path, offset, .. } => Some((path.clone(), *offset)),
            _ => None,
        })
        .collect();
    assert!(live_offsets.contains(&(web.link.clone(), live_skipped)), "{live_offsets:?}");

    // Lines written from now on are read, the unterminated one whole once it completes.
    web.write(b" now complete\n");
    web.write(&line(9));
    db.write(&line(22));
    let read = lossy(&drain(&mut tailer, &mut events));
    let want_web =
        format!("2026-11-25T10:00:08.000000001Z stdout F partial now complete\n{}", lossy(&line(9)));
    assert!(read.contains(&want_web), "{read}");
    assert!(read.contains(&lossy(&line(22))), "{read}");
    assert_eq!(read.len(), want_web.len() + line(22).len(), "{read}");
    assert!(lost(&events).is_empty(), "{events:?}");
}

#[test]
fn files_appearing_after_the_first_scan_are_read_from_their_head_under_tail() {
    let node = Node::new();
    let mut web = node.container("web");
    web.write(&lines(1..=2));
    let mut tailer =
        Tailer::new(first_install(&node, ReadFrom::Tail, None), SourceState::default()).expect("tailer");
    let mut events = Vec::new();
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), "");

    // A container started after the first scan: all of it.
    let mut api = node.container("api");
    api.write(&lines(10..=12));
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), lossy(&lines(10..=12)));
    // A file replacing a followed one (rotation) is new content: all of it.
    web.write(&line(3));
    web.rotate();
    web.write(&lines(4..=5));
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), lossy(&lines(3..=5)));
    assert_eq!(skipped(&events).len(), 1, "only what the first scan found: {events:?}");
}

#[test]
fn tail_has_no_effect_when_it_is_not_a_first_install() {
    let node = Node::new();
    let mut web = node.container("web");
    web.write(&lines(1..=2));
    let mut tailer = node.tailer(1024, SourceState::default());
    let mut events = Vec::new();
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), lossy(&lines(1..=2)));
    let state = tailer.state();
    drop(tailer);

    // While down: a new container starts and rotates once.
    let mut api = node.container("api");
    api.write(&lines(10..=11));
    api.rotate();
    api.write(&line(12));
    web.write(&line(3));

    let options = TailerOptions { read_from: ReadFrom::Tail, ..node.options(1024) };
    let mut tailer = Tailer::new(options, state.clone()).expect("tailer");
    let read = drain(&mut tailer, &mut events);
    assert_eq!(
        sorted_lines(&read),
        sorted_lines(&[lines(10..=12), line(3)].concat()),
        "every line of the new container"
    );
    assert!(skipped(&events).is_empty(), "{events:?}");

    // A checkpointed path is resumed even if the caller calls it a first install.
    web.write(&line(4));
    let options = first_install(&node, ReadFrom::Tail, None);
    let mut tailer = Tailer::new(options, state).expect("tailer");
    let mut events = Vec::new();
    let read = lossy(&drain(&mut tailer, &mut events));
    assert!(read.starts_with(&lossy(&lines(3..=4))), "{read}");
    assert!(skipped(&events).iter().all(|(path, ..)| *path != web.link), "{events:?}");
}

#[test]
fn ignore_older_skips_old_rotations_and_starts_old_live_files_at_their_end() {
    let node = Node::new();
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let mut web = node.container("web");
    web.write(&lines(1..=2));
    let old = web.rotate();
    web.write(&lines(3..=4));
    let recent = web.rotate();
    web.write(&line(5));
    set_mtime(&old, hour_ago);
    let mut db = node.container("db");
    db.write(&lines(20..=21));
    set_mtime(&db.log, hour_ago);

    let options = first_install(&node, ReadFrom::Head, Some(Duration::from_secs(600)));
    let mut tailer = Tailer::new(options, SourceState::default()).expect("tailer");
    let mut events = Vec::new();
    let read = lossy(&drain(&mut tailer, &mut events));
    assert_eq!(read, lossy(&lines(3..=5)), "the recent rotation and the recent live file");
    let got = skipped(&events);
    let mut want = vec![
        (old.clone(), 0, lines(1..=2).len() as u64, SkipReason::IgnoreOlder),
        (db.link.clone(), 0, lines(20..=21).len() as u64, SkipReason::IgnoreOlder),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);
    assert!(!skipped(&events).iter().any(|(path, ..)| *path == recent), "{events:?}");
    assert!(lost(&events).is_empty(), "{events:?}");

    // The old live file is followed from its end.
    db.write(&line(22));
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), lossy(&line(22)));
}

#[test]
fn a_tail_start_is_resumed_at_the_same_offset_after_a_restart() {
    let node = Node::new();
    let mut web = node.container("web");
    web.write(&lines(1..=3));
    // A container whose live file is empty just after a rotation: only its skipped rotation
    // can tell a restart that nothing before it is to be read.
    let mut idle = node.container("idle");
    idle.write(&lines(30..=31));
    idle.rotate();

    let mut tailer =
        Tailer::new(first_install(&node, ReadFrom::Tail, None), SourceState::default()).expect("tailer");
    let mut events = Vec::new();
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), "");
    web.write(&line(4));
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), lossy(&line(4)));
    let state = tailer.state();
    drop(tailer);
    let web_checkpoint = state.files.iter().find(|c| c.path == web.link).expect("web checkpointed");
    assert_eq!(web_checkpoint.offset, lines(1..=4).len() as u64);

    // The restart (state saved: not a first install) reads only what came since.
    web.write(&line(5));
    idle.write(&line(32));
    let mut tailer = node.tailer(1024, state);
    let mut events = Vec::new();
    let read = drain(&mut tailer, &mut events);
    assert_eq!(sorted_lines(&read), sorted_lines(&[line(5), line(32)].concat()), "no re-read, no gap");
    assert!(
        events.iter().any(|e| matches!(e, SourceEvent::Opened { path, offset, .. }
        if *path == web.link && *offset == lines(1..=4).len() as u64)),
        "{events:?}"
    );
    assert!(lost(&events).is_empty() && skipped(&events).is_empty(), "{events:?}");
}

#[test]
fn an_unterminated_last_line_under_tail_is_read_once_it_completes() {
    let node = Node::new();
    let mut web = node.container("web");
    web.write(&line(1));
    web.write(b"2026-11-25T10:00:02.000000001Z stdout F hal");
    let mut tailer =
        Tailer::new(first_install(&node, ReadFrom::Tail, None), SourceState::default()).expect("tailer");
    let mut events = Vec::new();
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), "");
    assert_eq!(skipped(&events), [(web.link.clone(), 0, line(1).len() as u64, SkipReason::ReadFromTail)]);
    web.write(b"f done\n");
    assert_eq!(
        lossy(&drain(&mut tailer, &mut events)),
        "2026-11-25T10:00:02.000000001Z stdout F half done\n"
    );

    // A file with no newline at all starts at 0: nothing to skip, its line read whole.
    let node = Node::new();
    let mut web = node.container("web");
    web.write(b"no newline yet");
    let mut tailer =
        Tailer::new(first_install(&node, ReadFrom::Tail, None), SourceState::default()).expect("tailer");
    let mut events = Vec::new();
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), "");
    assert!(skipped(&events).is_empty(), "{events:?}");
    web.write(b"\n");
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), "no newline yet\n");
}

#[test]
fn read_from_parses_and_names_the_valid_values() {
    assert_eq!("head".parse::<ReadFrom>(), Ok(ReadFrom::Head));
    assert_eq!("tail".parse::<ReadFrom>(), Ok(ReadFrom::Tail));
    assert_eq!(ReadFrom::default(), ReadFrom::Head);
    let error = "end".parse::<ReadFrom>().expect_err("not a value");
    assert_eq!(error.to_string(), "invalid read_from \"end\": expected one of \"head\", \"tail\"");
    assert_eq!(serde_json::to_string(&ReadFrom::Tail).expect("json"), "\"tail\"");
    assert_eq!(serde_json::from_str::<ReadFrom>("\"head\"").expect("json"), ReadFrom::Head);
}
