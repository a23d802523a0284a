//! Restarts after a gap: the checkpointed file and the ones rotated after it may have been
//! renamed, gzipped (a new inode) or deleted while the shipper was down.

use super::*;

/// A CRI line with a distinct timestamp (so distinct files have distinct heads), all lines
/// of equal length.
fn line(n: u32) -> Vec<u8> {
    format!("2026-11-25T10:{:02}:{:02}.000000001Z stdout F line {n:04}\n", n / 60 % 60, n % 60).into_bytes()
}

fn lines(range: std::ops::RangeInclusive<u32>) -> Vec<u8> {
    range.flat_map(line).collect()
}

fn line_len() -> usize {
    line(0).len()
}

/// Start a tailer on `state`, read and make safe `count` lines (one per read), return what
/// was read and the state to restart from.
fn read_lines_then_crash(node: &Node, state: SourceState, count: usize) -> (Vec<u8>, SourceState) {
    let mut tailer = node.tailer(line_len(), state);
    tailer.scan();
    let mut out = Vec::new();
    for _ in 0..count {
        let key = *tailer.readable().first().expect("a readable file");
        let chunk = tailer.read(key, &mut out).expect("read").expect("a line");
        tailer.set_safe_offset(key, chunk.end);
        tailer.scan();
    }
    (out, tailer.state())
}

fn lost(events: &[SourceEvent]) -> Vec<&SourceEvent> {
    events.iter().filter(|e| matches!(e, SourceEvent::Lost { .. })).collect()
}

/// The offset each `Opened` event resumes at, in order.
fn opened_offsets(events: &[SourceEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Opened { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect()
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_gzipped_checkpointed_file_is_read_from_the_checkpoint_offset() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(&lines(1..=3));
    let (first, state) = read_lines_then_crash(&node, SourceState::default(), 1);
    assert_eq!(lossy(&first), lossy(&line(1)));

    // While down: rotated, then gzipped at the next rotation (a new inode).
    let rotated = app.rotate();
    app.write(&line(4));
    let gz = gzip(&rotated);
    assert!(gz.exists() && !rotated.exists());

    let mut tailer = node.tailer(line_len(), state);
    let mut events = Vec::new();
    let rest = drain(&mut tailer, &mut events);
    assert_eq!(lossy(&rest), lossy(&lines(2..=4)));
    assert!(lost(&events).is_empty(), "{events:?}");
    let copy = opened_key(&events);
    assert_eq!(
        events[..2],
        [
            SourceEvent::Opened { key: copy, path: app.link.clone(), offset: line_len() as u64 },
            SourceEvent::Rotated { key: copy, path: app.link.clone() },
        ]
    );
    assert!(events.contains(&SourceEvent::Closed { key: copy, path: app.link.clone() }), "{events:?}");
    // The copy is unlinked: nothing is left behind in the scratch directory.
    assert_eq!(fs::read_dir(node.scratch_dir()).expect("scratch dir").count(), 0);
    // The live file is still followed.
    app.write(&line(5));
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), lossy(&line(5)));
}

#[test]
fn rotations_while_down_are_read_in_order_after_the_checkpointed_remainder() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(&lines(1..=2));
    let mut tailer = node.tailer(line_len(), SourceState::default());
    let mut events = Vec::new();
    let mut read = drain(&mut tailer, &mut events);
    // One rotation seen while running: its file is read and forgotten.
    app.rotate();
    app.write(&lines(3..=5));
    read.extend(drain(&mut tailer, &mut events));
    // Written but not read when it crashes.
    app.write(&line(6));
    let state = tailer.state();
    drop(tailer);
    assert_eq!(lossy(&read), lossy(&lines(1..=5)));
    assert_eq!(state.files.len(), 1, "{state:?}");

    // While down: three rotations; kubelet gzips each rotated file at the next one.
    app.rotate_and_compress();
    app.write(&line(7));
    app.rotate_and_compress();
    app.write(&lines(8..=9));
    app.rotate_and_compress();
    app.write(&line(10));
    // A restarted container's files (`1.log`, its own symlink) are not this file's siblings.
    fs::write(app.dir().join("1.log.20261125-090000"), line(99)).expect("other container");
    let mut names: Vec<String> = fs::read_dir(app.dir())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "0.log",
            "0.log.20261125100001.gz",
            "0.log.20261125100002.gz",
            "0.log.20261125100003.gz",
            "0.log.20261125100004",
            "1.log.20261125-090000"
        ]
    );

    let mut tailer = node.tailer(line_len(), state);
    let mut events = Vec::new();
    let rest = drain(&mut tailer, &mut events);
    assert_eq!(lossy(&rest), lossy(&lines(6..=10)));
    assert!(lost(&events).is_empty(), "{events:?}");
    // The checkpointed file from its offset, the two later rotations whole, then the live.
    let offset = 3 * line_len() as u64;
    assert_eq!(opened_offsets(&events), [offset, 0, 0, 0]);
}

#[test]
fn a_corrupt_gz_is_reported_lost_and_the_rest_is_still_read() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(&lines(1..=400));
    let (_, state) = read_lines_then_crash(&node, SourceState::default(), 1);

    // While down: the checkpointed file is gzipped and the gz cut in half; the next
    // rotation's gz is garbage after a valid gzip header.
    let checkpointed = app.rotate();
    app.write(&line(401));
    let cut = gzip(&checkpointed);
    let bytes = fs::read(&cut).expect("read gz");
    fs::write(&cut, &bytes[..bytes.len() / 2]).expect("cut gz");
    let next = app.rotate();
    app.write(&line(402));
    let garbage = gzip(&next);
    fs::write(&garbage, b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03 not deflate at all").expect("garbage");

    let mut tailer = node.tailer(line_len(), state);
    let mut events = Vec::new();
    let out = drain(&mut tailer, &mut events);

    // What was readable of the cut file, from the checkpoint, whole lines, then the live one.
    let live = line(402);
    assert!(out.ends_with(&live), "{}", lossy(&out));
    let from_cut = &out[..out.len() - live.len()];
    let expected = lines(2..=400);
    assert!(!from_cut.is_empty() && from_cut.len() < expected.len(), "{}", from_cut.len());
    assert_eq!(lossy(from_cut), lossy(&expected[..from_cut.len()]));

    let cut_from = line_len() as u64 + from_cut.len() as u64;
    // Reported at restore, with the compressed files' paths: the unreadable rest of each.
    let (at_restore, torn): (Vec<_>, Vec<_>) = lost(&events)
        .into_iter()
        .partition(|e| !matches!(e, SourceEvent::Lost { path, .. } if *path == app.link));
    assert!(
        matches!(at_restore.as_slice(), [
            SourceEvent::Lost { path: a, from: a_from, to: None, reason: LossReason::Unreadable },
            SourceEvent::Lost { path: b, from: 0, to: None, reason: LossReason::Unreadable },
        ] if *a == cut && *a_from >= cut_from && *b == garbage),
        "{at_restore:?}"
    );
    // The line the cut went through, if it did not end at a line boundary, was shipped as
    // far as it could be read (the prefix check above): nothing of it is reported lost.
    assert!(torn.is_empty(), "{torn:?}");
}

#[test]
fn decompression_beyond_the_bound_is_reported_lost() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(&lines(1..=10));
    let (_, state) = read_lines_then_crash(&node, SourceState::default(), 1);
    let gz = gzip(&app.rotate());
    app.write(&line(11));

    let bound = 4 * line_len() as u64;
    let options = TailerOptions { max_decompressed_bytes: bound, ..node.options(line_len()) };
    let mut tailer = Tailer::new(options, state).expect("tailer");
    let mut events = Vec::new();
    let out = drain(&mut tailer, &mut events);
    assert_eq!(lossy(&out), lossy(&[lines(2..=4), line(11)].concat()));
    assert_eq!(
        lost(&events),
        [&SourceEvent::Lost { path: gz, from: bound, to: None, reason: LossReason::Unreadable }]
    );
}

#[test]
fn a_second_crash_while_reading_a_decompressed_copy_resumes_from_the_gz() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(&lines(1..=5));
    let (mut read, state) = read_lines_then_crash(&node, SourceState::default(), 1);
    let original_inode = state.files[0].id.ino;
    gzip(&app.rotate());
    app.write(&line(6));

    // First restart: two lines of the decompressed copy, then a crash.
    let (more, state) = read_lines_then_crash(&node, state, 2);
    read.extend(more);
    // The copy's checkpoint, then the live file's.
    assert_eq!(state.files.len(), 2, "{state:?}");
    assert_eq!(state.files[0].offset, 3 * line_len() as u64);
    assert_ne!(state.files[0].id.ino, original_inode, "a checkpoint of the scratch copy");

    // Second restart: the copy is gone; the gz is found again by content.
    let mut tailer = node.tailer(line_len(), state);
    let mut events = Vec::new();
    read.extend(drain(&mut tailer, &mut events));
    assert!(lost(&events).is_empty(), "{events:?}");
    assert_eq!(lossy(&read), lossy(&lines(1..=6)));
}

#[test]
fn when_the_checkpointed_file_is_gone_the_surviving_rotations_are_read() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(&lines(1..=2));
    let (_, state) = read_lines_then_crash(&node, SourceState::default(), 1);
    // While down: rotated twice, and the checkpointed file deleted as the oldest.
    let checkpointed = app.rotate();
    app.write(&line(3));
    let gz = app.dir().join(format!("{}.gz", checkpointed.file_name().expect("name").to_string_lossy()));
    app.rotate_and_compress();
    app.write(&line(4));
    fs::remove_file(&gz).expect("delete oldest");

    let mut tailer = node.tailer(line_len(), state);
    let mut events = Vec::new();
    let out = drain(&mut tailer, &mut events);
    assert_eq!(lossy(&out), lossy(&lines(3..=4)));
    assert_eq!(
        lost(&events),
        [&SourceEvent::Lost {
            path: app.link.clone(),
            from: line_len() as u64,
            to: None,
            reason: LossReason::Vanished
        }]
    );
}

#[test]
fn a_checkpoint_of_the_live_file_ignores_its_older_rotations() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(&line(1));
    let mut tailer = node.tailer(line_len(), SourceState::default());
    let mut events = Vec::new();
    drain(&mut tailer, &mut events);
    app.rotate_and_compress();
    app.write(&line(2));
    drain(&mut tailer, &mut events);
    app.rotate_and_compress();
    app.write(&line(3));
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), lossy(&line(3)));
    let state = tailer.state();
    drop(tailer);

    app.write(&line(4));
    let mut tailer = node.tailer(line_len(), state);
    let mut events = Vec::new();
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), lossy(&line(4)));
    assert_eq!(opened_offsets(&events), [line_len() as u64]);
}

#[test]
fn a_file_checkpointed_before_any_read_is_recognised_compressed_by_its_head() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(&line(1));
    let mut tailer = node.tailer(line_len(), SourceState::default());
    let mut events = Vec::new();
    drain(&mut tailer, &mut events);
    app.rotate();
    app.write(&lines(2..=3));
    // The rotated file is finished and forgotten; the new one is opened, never read
    // (e.g. the spool was full), so its checkpoint vouches for nothing.
    tailer.scan();
    tailer.scan();
    let state = tailer.state();
    drop(tailer);
    assert_eq!(state.files.len(), 1, "{state:?}");
    assert_eq!(state.files[0].offset, 0);
    assert!(state.files[0].head.is_some(), "{state:?}");

    // While down it is rotated and gzipped, behind an older gz already read.
    app.rotate_and_compress();
    app.write(&line(4));
    app.rotate_and_compress();
    app.write(&line(5));

    let mut tailer = node.tailer(line_len(), state);
    let mut events = Vec::new();
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), lossy(&lines(2..=5)));
    assert!(lost(&events).is_empty(), "{events:?}");
}

#[test]
fn state_files_without_a_head_still_load_and_new_ones_round_trip() {
    // Written before `head` existed.
    let old = r#"{"files":[{"path":"/var/log/containers/a.log","id":{"dev":1,"ino":2,"fingerprint":3},"offset":4}]}"#;
    let state: SourceState = serde_json::from_str(old).expect("old state loads");
    let checkpoint = Checkpoint {
        path: PathBuf::from("/var/log/containers/a.log"),
        id: FileId { dev: 1, ino: 2, fingerprint: 3 },
        offset: 4,
        head: None,
    };
    assert_eq!(state, SourceState { files: vec![checkpoint.clone()] });
    // Without a head it is written exactly as before (older binaries can read it back).
    assert_eq!(serde_json::to_string(&state).expect("serialize"), old);
    let with_head =
        SourceState { files: vec![Checkpoint { head: Some(Head { len: 4, fingerprint: 5 }), ..checkpoint }] };
    let json = serde_json::to_string(&with_head).expect("serialize");
    assert_eq!(serde_json::from_str::<SourceState>(&json).expect("round trip"), with_head);
}

/// One step of the restart property.
#[derive(Debug, Clone)]
enum Life {
    /// The runtime writes this many lines.
    Write(u32),
    /// kubelet rotates (and gzips the earlier rotations) while the agent runs: the agent
    /// has looked since the last rotation.
    Rotate,
    /// The agent scans and reads one chunk.
    Read,
    /// The agent crashes; while it is down the runtime writes and kubelet rotates (one
    /// rotation before each batch of lines); then it restarts from its last state.
    Down(Vec<u32>),
}

fn lives() -> impl Strategy<Value = Vec<Life>> {
    let life = prop_oneof![
        3 => (1u32..4).prop_map(Life::Write),
        1 => Just(Life::Rotate),
        4 => Just(Life::Read),
        1 => prop::collection::vec(0u32..3, 0..4).prop_map(Life::Down),
    ];
    prop::collection::vec(life, 1..30)
}

/// A container whose lines carry their sequence number.
struct Writer {
    app: Container,
    written: Vec<u8>,
    next: u32,
    live_empty: bool,
}

impl Writer {
    fn write(&mut self, count: u32) {
        for _ in 0..count {
            // Lines of varied length, so chunks end at varied places.
            let line = format!("{:06} {}\n", self.next, "x".repeat((self.next as usize * 7) % 13));
            self.next += 1;
            self.app.write(line.as_bytes());
            self.written.extend_from_slice(line.as_bytes());
            self.live_empty = false;
        }
    }

    /// kubelet only rotates a file that reached its size limit: never an empty one.
    fn rotate(&mut self) {
        if !self.live_empty {
            self.app.rotate_and_compress();
            self.live_empty = true;
        }
    }
}

/// Runs `lives` against a real tailer: after the last restart the lines read add up to
/// the lines written, once each, in order, nothing reported lost.
fn check_lives(lives: &[Life], read_chunk_bytes: usize) -> Result<(), TestCaseError> {
    let node = Node::new();
    let mut writer = Writer { app: node.container("web"), written: Vec::new(), next: 0, live_empty: true };
    let mut tailer = node.tailer(read_chunk_bytes, SourceState::default());
    let mut read = Vec::new();
    let mut events = Vec::new();
    let mut out = Vec::new();
    for life in lives {
        match life {
            Life::Write(count) => writer.write(*count),
            Life::Rotate => {
                events.extend(tailer.scan());
                writer.rotate();
            }
            Life::Read => {
                events.extend(tailer.scan());
                if let Some(key) = tailer.readable().first().copied() {
                    out.clear();
                    if let Some(chunk) = tailer.read(key, &mut out).expect("read") {
                        read.extend_from_slice(&out);
                        tailer.set_safe_offset(key, chunk.end);
                    }
                }
            }
            Life::Down(batches) => {
                let state = tailer.state();
                drop(tailer);
                for count in batches {
                    writer.rotate();
                    writer.write(*count);
                }
                tailer = node.tailer(read_chunk_bytes, state);
            }
        }
    }
    read.extend(drain(&mut tailer, &mut events));
    prop_assert!(lost(&events).is_empty(), "{:?}", events);
    prop_assert_eq!(lossy(&read), lossy(&writer.written));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever happens between crashes (rotations, gzip), after the last restart the
    /// lines read add up to the lines written: once each, in order, nothing lost.
    #[test]
    fn crashes_with_rotations_and_gzip_while_down_lose_and_repeat_nothing(
        lives in lives(),
        read_chunk_bytes in 1usize..40,
    ) {
        check_lives(&lives, read_chunk_bytes)?;
    }
}

/// Cases the property found, kept as regressions.
#[test]
fn found_cases_lose_and_repeat_nothing() -> Result<(), TestCaseError> {
    use Life::{Down, Read, Rotate, Write};
    // Rotated before the agent ever saw the file: read as a sibling of the new path.
    check_lives(&[Write(1), Down(vec![0])], 1)?;
    // Checkpointed while empty, then its inode reused by the next live file.
    check_lives(&[Rotate, Down(vec![1, 1, 0])], 1)?;
    // A reused inode taken by a `.gz`, and checkpoints of copies across several restarts.
    check_lives(
        &[
            Write(2),
            Rotate,
            Write(3),
            Down(vec![0, 2, 2]),
            Rotate,
            Read,
            Down(vec![2, 2, 2]),
            Down(vec![1]),
            Write(3),
        ],
        10,
    )
}

/// kubelet rotates after a container's last line, leaving an empty live file; a graceful
/// restart then (a rollout) must not read the rotations again.
#[test]
fn a_restart_while_the_live_file_is_empty_after_a_rotation_reads_nothing_again() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(&lines(1..=3));
    let mut tailer = node.tailer(line_len(), SourceState::default());
    let mut events = Vec::new();
    drain(&mut tailer, &mut events);
    app.rotate_and_compress();
    app.write(&lines(4..=5));
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), lossy(&lines(4..=5)));
    // The last rotation: the live file is new and empty, and stays so.
    app.rotate();
    assert!(drain(&mut tailer, &mut events).is_empty());
    let state = tailer.state();
    drop(tailer);

    let mut tailer = node.tailer(line_len(), state);
    let mut events = Vec::new();
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), "", "{events:?}");
    app.write(&line(6));
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), lossy(&line(6)));
}

/// The same, when a scan catches kubelet between renaming the live file and creating the
/// next one (the path briefly resolves to nothing).
#[test]
fn a_rotation_seen_half_done_still_anchors_the_restart() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(&lines(1..=3));
    let mut tailer = node.tailer(line_len(), SourceState::default());
    let mut events = Vec::new();
    drain(&mut tailer, &mut events);
    app.rotate_and_compress();
    app.write(&lines(4..=5));
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), lossy(&lines(4..=5)));
    // Renamed, and scanned before the runtime opens the new live file.
    fs::rename(&app.log, app.log.with_file_name("0.log.20261125109999")).expect("rename");
    assert!(drain(&mut tailer, &mut events).is_empty());
    app.writer = File::create(&app.log).expect("new live file");
    assert!(drain(&mut tailer, &mut events).is_empty());
    let state = tailer.state();
    drop(tailer);

    let mut tailer = node.tailer(line_len(), state);
    let mut events = Vec::new();
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), "", "{events:?}");
    app.write(&line(6));
    assert_eq!(lossy(&drain(&mut tailer, &mut events)), lossy(&line(6)));
}
