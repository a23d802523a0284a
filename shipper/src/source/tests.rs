//! Tailer behaviour on a kubelet-like layout in a temp dir: `pods/<ns>_<pod>_<uid>/<c>/0.log`
//! with `containers/<pod>_<ns>_<c>-<id>.log` symlinks.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;

use super::identity::fingerprint;
use super::*;

mod first_install;
mod restore;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A node's log directories.
struct Node {
    root: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(root.path().join("containers")).expect("containers dir");
        Self { root }
    }

    fn glob(&self) -> String {
        format!("{}/containers/*.log", self.root.path().display())
    }

    fn tailer(&self, read_chunk_bytes: usize, restored: SourceState) -> Tailer {
        Tailer::new(self.options(read_chunk_bytes), restored).expect("tailer")
    }

    fn options(&self, read_chunk_bytes: usize) -> TailerOptions {
        TailerOptions {
            globs: vec![self.glob()],
            rescan_interval: Duration::from_secs(3600),
            watched_rescan_interval: Duration::from_secs(3600),
            read_chunk_bytes,
            scratch_dir: self.scratch_dir(),
            max_decompressed_bytes: u64::MAX,
            read_from: ReadFrom::Head,
            ignore_older: None,
            first_install: false,
            max_deleted_open_bytes: u64::MAX,
        }
    }

    /// Where the tailer decompresses rotated `.gz` files.
    fn scratch_dir(&self) -> PathBuf {
        self.root.path().join("state").join("scratch")
    }

    /// A running container: its `0.log` and the symlink kubelet makes to it.
    fn container(&self, pod: &str) -> Container {
        let dir = self.root.path().join("pods").join(format!("default_{pod}_uid-{pod}")).join("app");
        fs::create_dir_all(&dir).expect("pod dir");
        let log = dir.join("0.log");
        let writer = File::create(&log).expect("create log");
        let link = self.root.path().join("containers").join(format!("{pod}_default_app-{ID}.log"));
        std::os::unix::fs::symlink(&log, &link).expect("symlink");
        Container { link, log, writer, rotations: 0 }
    }
}

/// What the container runtime and kubelet do to one container's log.
struct Container {
    link: PathBuf,
    log: PathBuf,
    writer: File,
    rotations: u32,
}

impl Container {
    fn write(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// The directory of the real files.
    fn dir(&self) -> PathBuf {
        self.log.parent().expect("log dir").to_path_buf()
    }

    /// kubelet's rotation, step 3 then 4: gzip every rotated file still plain, then rename
    /// `0.log` aside (the runtime reopens a new one). Returns the newly rotated file.
    fn rotate_and_compress(&mut self) -> PathBuf {
        for sibling in fs::read_dir(self.dir()).expect("list") {
            let path = sibling.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if name.starts_with("0.log.") && !name.ends_with(".gz") {
                gzip(&path);
            }
        }
        self.rotate()
    }

    /// kubelet's rotation: rename `0.log` aside, the runtime reopens a new `0.log`.
    fn rotate(&mut self) -> PathBuf {
        self.rotations += 1;
        let rotated = self.log.with_file_name(format!("0.log.2026112510{:04}", self.rotations));
        fs::rename(&self.log, &rotated).expect("rename");
        self.writer = File::create(&self.log).expect("reopen");
        rotated
    }

    /// logrotate's copytruncate, without the copy.
    fn truncate(&mut self) {
        self.writer.set_len(0).expect("truncate");
        self.writer = OpenOptions::new().append(true).open(&self.log).expect("reopen");
    }

    /// Container removed: kubelet deletes its logs and the symlink.
    fn remove(&self) {
        fs::remove_file(&self.link).expect("remove link");
        fs::remove_file(&self.log).expect("remove log");
    }
}

/// kubelet's `compressLog`: `<file>` → `<file>.tmp` (gzip) → `<file>.gz`, `<file>` removed.
/// Returns the `.gz`.
fn gzip(path: &std::path::Path) -> PathBuf {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let mut encoder = GzEncoder::new(File::create(&tmp).expect("create tmp"), Compression::fast());
    encoder.write_all(&fs::read(path).expect("read plain")).expect("gzip");
    encoder.finish().expect("finish gzip");
    fs::rename(&tmp, &gz).expect("rename gz");
    fs::remove_file(path).expect("remove plain");
    gz
}

/// Scan and read everything readable, marking it safe, until nothing moves.
fn drain(tailer: &mut Tailer, events: &mut Vec<SourceEvent>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut idle = 0;
    while idle < 3 {
        events.extend(tailer.scan());
        let mut progressed = false;
        for key in tailer.readable() {
            while let Some(chunk) = tailer.read(key, &mut out).expect("read") {
                tailer.set_safe_offset(key, chunk.end);
                progressed = true;
            }
        }
        idle = if progressed { 0 } else { idle + 1 };
    }
    out
}

fn read_once(tailer: &mut Tailer, key: FileKey) -> Option<(Vec<u8>, ReadChunk)> {
    let mut out = Vec::new();
    let chunk = tailer.read(key, &mut out).expect("read")?;
    Some((out, chunk))
}

fn opened_key(events: &[SourceEvent]) -> FileKey {
    events
        .iter()
        .find_map(|event| match event {
            SourceEvent::Opened { key, .. } => Some(*key),
            _ => None,
        })
        .expect("an Opened event")
}

#[test]
fn new_file_is_read_from_the_start() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(b"one\ntwo\n");
    let mut tailer = node.tailer(1024, SourceState::default());
    let events = tailer.scan();
    let key = opened_key(&events);
    assert_eq!(events, [SourceEvent::Opened { key, path: app.link.clone(), offset: 0 }]);
    assert_eq!(tailer.path(key), Some(app.link.as_path()));
    assert_eq!(tailer.readable(), [key]);
    let (out, chunk) = read_once(&mut tailer, key).expect("lines");
    assert_eq!(out, b"one\ntwo\n");
    assert_eq!(chunk, ReadChunk { start: 0, end: 8, unfinished: false });
    assert_eq!(read_once(&mut tailer, key), None);
    assert!(tailer.readable().is_empty());
}

#[test]
fn lines_appended_later_are_read_after_the_next_scan() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(b"one\n");
    let mut tailer = node.tailer(1024, SourceState::default());
    let mut events = Vec::new();
    assert_eq!(drain(&mut tailer, &mut events), b"one\n");
    app.write(b"two\nthree\n");
    assert_eq!(drain(&mut tailer, &mut events), b"two\nthree\n");
    assert_eq!(events.len(), 1, "{events:?}");
}

#[test]
fn a_torn_line_stays_unread_until_its_newline_arrives() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(b"one\ntw");
    let mut tailer = node.tailer(1024, SourceState::default());
    let key = opened_key(&tailer.scan());
    assert_eq!(
        read_once(&mut tailer, key),
        Some((b"one\n".to_vec(), ReadChunk { start: 0, end: 4, unfinished: false }))
    );
    assert_eq!(read_once(&mut tailer, key), None);
    // Looked at already: not reported readable again until the file grows.
    assert!(tailer.readable().is_empty());
    app.write(b"o\n");
    tailer.scan();
    assert_eq!(tailer.readable(), [key]);
    assert_eq!(
        read_once(&mut tailer, key),
        Some((b"two\n".to_vec(), ReadChunk { start: 4, end: 8, unfinished: false }))
    );
}

#[test]
fn chunks_hold_whole_lines_and_a_long_line_still_makes_progress() {
    let node = Node::new();
    let mut app = node.container("web");
    let long = [b'x'; 30];
    app.write(b"ab\ncd\n");
    app.write(&long);
    app.write(b"\nef\n");
    let mut tailer = node.tailer(8, SourceState::default());
    let key = opened_key(&tailer.scan());
    let mut reads = Vec::new();
    while let Some((out, chunk)) = read_once(&mut tailer, key) {
        assert_eq!(out.len() as u64, chunk.end - chunk.start);
        assert_eq!(out.last(), Some(&b'\n'));
        reads.push(out);
    }
    let mut long_line = long.to_vec();
    long_line.push(b'\n');
    assert_eq!(reads, [b"ab\ncd\n".to_vec(), long_line, b"ef\n".to_vec()]);
}

/// A line without `\n` growing past `LONG_LINE_PREFIX_BYTES` (a runtime that does not
/// split long lines): handed out in prefixes as it grows, each byte once, instead of held
/// whole and re-read from its start at every growth.
#[test]
fn a_long_line_goes_out_in_prefixes_and_nothing_is_read_twice() {
    let node = Node::new();
    let mut app = node.container("web");
    let prefix = LONG_LINE_PREFIX_BYTES;
    let mut written = b"short\n".to_vec();
    written.extend(std::iter::repeat_n(b'x', prefix * 5 / 2));
    app.write(&written);
    let mut tailer = node.tailer(256 * 1024, SourceState::default());
    let key = opened_key(&tailer.scan());
    let mut chunks = Vec::new();
    while let Some(read) = read_once(&mut tailer, key) {
        chunks.push(read);
    }
    // The rest of the line, then its end.
    let rest = [vec![b'y'; prefix], b"\n".to_vec()].concat();
    app.write(&rest);
    written.extend_from_slice(&rest);
    tailer.scan();
    while let Some(read) = read_once(&mut tailer, key) {
        chunks.push(read);
    }

    let handed: Vec<u8> = chunks.iter().flat_map(|(out, _)| out.clone()).collect();
    assert_eq!(handed.len(), written.len(), "every byte once");
    assert!(handed == written);
    for (out, chunk) in &chunks {
        assert_eq!(out.len() as u64, chunk.end - chunk.start);
        assert!(out.len() <= prefix + 256 * 1024, "{} bytes in one read", out.len());
        assert_eq!(chunk.unfinished, out.last() != Some(&b'\n'), "{chunk:?}");
    }
    assert!(chunks.iter().filter(|(_, c)| c.unfinished).count() >= 3);
}

#[test]
fn rename_rotation_mid_stream_loses_nothing_and_keeps_order() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(b"1\n2\n3\n");
    let mut tailer = node.tailer(4, SourceState::default());
    let old = opened_key(&tailer.scan());
    let (first, _) = read_once(&mut tailer, old).expect("first chunk");
    assert_eq!(first, b"1\n2\n");

    app.write(b"4\n");
    app.rotate();
    app.write(b"5\n");
    let events = tailer.scan();
    assert_eq!(events[0], SourceEvent::Rotated { key: old, path: app.link.clone() });
    let new = opened_key(&events);
    // The new file waits until the rotated one is drained.
    assert_eq!(tailer.readable(), [old]);
    assert_eq!(read_once(&mut tailer, new), None);

    let mut events = Vec::new();
    let mut rest = drain(&mut tailer, &mut events);
    let mut all = first;
    all.append(&mut rest);
    assert_eq!(all, b"1\n2\n3\n4\n5\n");
    assert!(events.contains(&SourceEvent::Closed { key: old, path: app.link.clone() }));
    assert!(!events.iter().any(|e| matches!(e, SourceEvent::Lost { .. })));
}

#[test]
fn a_drained_rotated_file_is_kept_until_its_lines_are_safe() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(b"old\n");
    let mut tailer = node.tailer(1024, SourceState::default());
    let old = opened_key(&tailer.scan());
    app.rotate();
    app.write(b"new\n");
    tailer.scan();
    let (_, chunk) = read_once(&mut tailer, old).expect("old line");
    let events = tailer.scan();
    assert!(!events.iter().any(|e| matches!(e, SourceEvent::Closed { .. })), "{events:?}");
    // Not yet spooled: its checkpoint still says 0.
    let state = tailer.state();
    assert_eq!(state.files[0].offset, 0);
    assert_eq!(state.files[0].path, app.link);

    tailer.set_safe_offset(old, chunk.end);
    assert_eq!(tailer.state().files[0].offset, 4);
    let events = tailer.scan();
    assert!(events.contains(&SourceEvent::Closed { key: old, path: app.link.clone() }));
    assert_eq!(tailer.state().files.len(), 1);
}

#[test]
fn copytruncate_restarts_at_zero_under_a_new_key() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(b"before truncation\n");
    let mut tailer = node.tailer(1024, SourceState::default());
    let mut events = Vec::new();
    assert_eq!(drain(&mut tailer, &mut events), b"before truncation\n");
    let old = opened_key(&events);
    app.truncate();
    app.write(b"after\n");
    let events = tailer.scan();
    let new = match events.as_slice() {
        [SourceEvent::Truncated { key, .. }, SourceEvent::Opened { key: new, offset: 0, .. }]
            if *key == old =>
        {
            *new
        }
        other => panic!("unexpected events {other:?}"),
    };
    // A safe offset still in flight for the old content does not move the new checkpoint.
    tailer.set_safe_offset(old, 18);
    assert_eq!(tailer.state().files[0].offset, 0);
    assert_eq!(
        read_once(&mut tailer, new),
        Some((b"after\n".to_vec(), ReadChunk { start: 0, end: 6, unfinished: false }))
    );
}

#[test]
fn a_deleted_file_is_read_to_its_end_then_closed() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(b"one\n");
    let mut tailer = node.tailer(1024, SourceState::default());
    let key = opened_key(&tailer.scan());
    app.write(b"two\n");
    app.remove();
    let mut events = Vec::new();
    assert_eq!(drain(&mut tailer, &mut events), b"one\ntwo\n");
    assert_eq!(events, [SourceEvent::Closed { key, path: app.link.clone() }]);
    assert_eq!(tailer.state(), SourceState::default());
}

/// A rotated or deleted file whose last line never got its `\n` (a torn write): the bytes
/// are readable, so they are shipped as the file's last line, not reported lost.
#[test]
fn the_unterminated_last_line_of_a_finished_file_is_shipped() {
    for delete in [false, true] {
        let node = Node::new();
        let mut app = node.container("web");
        app.write(b"one\ntw");
        let mut tailer = node.tailer(1024, SourceState::default());
        tailer.scan();
        if delete {
            app.remove();
        } else {
            app.rotate();
            app.write(b"three\n");
        }
        let mut events = Vec::new();
        let out = drain(&mut tailer, &mut events);
        let want: &[u8] = if delete { b"one\ntw" } else { b"one\ntwthree\n" };
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want), "delete {delete}");
        assert!(!events.iter().any(|e| matches!(e, SourceEvent::Lost { .. })), "{events:?}");
        assert!(
            events.iter().any(|e| matches!(e, SourceEvent::Closed { .. })),
            "the file finished: {events:?}"
        );
    }
}

/// A log file the shipper cannot open (out of descriptors, a mode it may not read) is
/// reported once, not read, and retried; when it finally opens, what it rotated meanwhile
/// is read first. It used to be opened as if new, its rotated content silently never read.
#[test]
fn a_file_that_cannot_be_opened_is_reported_once_and_its_rotations_are_read_when_it_opens() {
    const EMFILE: i32 = 24;
    let node = Node::new();
    let mut app = node.container("web");
    app.write(b"one\n");
    tailer::tests_seam::fail_open(&app.link, EMFILE);
    let mut tailer = node.tailer(1024, SourceState::default());
    let mut events = Vec::new();
    assert!(drain(&mut tailer, &mut events).is_empty());
    app.write(b"two\n");
    events.extend(tailer.scan());
    app.rotate();
    app.write(b"three\n");
    events.extend(tailer.scan());
    let failed: Vec<_> = events.iter().filter(|e| matches!(e, SourceEvent::OpenFailed { .. })).collect();
    assert!(
        matches!(failed.as_slice(), [SourceEvent::OpenFailed { path, reason: OpenFailure::TooManyOpenFiles, .. }] if *path == app.link),
        "{events:?}"
    );

    tailer::tests_seam::heal(&app.link);
    let mut after = Vec::new();
    let out = drain(&mut tailer, &mut after);
    assert_eq!(String::from_utf8_lossy(&out), "one\ntwo\nthree\n");
    assert!(
        !after.iter().any(|e| matches!(e, SourceEvent::Lost { .. } | SourceEvent::OpenFailed { .. })),
        "{after:?}"
    );
}

/// While a file cannot be opened kubelet may rotate it and delete the rotation: those bytes
/// were never read. They are counted lost (with the size last seen), not silently skipped;
/// what is still there is read.
#[test]
fn rotations_deleted_while_a_file_could_not_be_opened_are_counted_lost() {
    const EACCES: i32 = 13;
    let node = Node::new();
    let mut app = node.container("web");
    app.write(b"first file\n");
    tailer::tests_seam::fail_open(&app.link, EACCES);
    let mut tailer = node.tailer(1024, SourceState::default());
    let mut events = Vec::new();
    assert!(drain(&mut tailer, &mut events).is_empty());
    app.write(b"more\n");
    events.extend(tailer.scan());
    let rotated = app.rotate();
    fs::remove_file(rotated).expect("kubelet deletes the oldest rotation");
    app.write(b"kept\n");
    events.extend(tailer.scan());
    assert!(
        !events.iter().any(|e| matches!(e, SourceEvent::Lost { .. })),
        "nothing known lost yet: {events:?}"
    );

    tailer::tests_seam::heal(&app.link);
    let mut after = Vec::new();
    let out = drain(&mut tailer, &mut after);
    assert_eq!(String::from_utf8_lossy(&out), "kept\n");
    let lost: Vec<_> = after.iter().filter(|e| matches!(e, SourceEvent::Lost { .. })).collect();
    assert!(
        matches!(lost.as_slice(), [SourceEvent::Lost { path, from: 0, to: Some(16), reason: LossReason::Vanished }] if *path == app.link),
        "{after:?}"
    );
}

/// A path that never opened and whose container is removed: what it held is counted lost.
#[test]
fn a_file_that_never_opened_and_is_removed_is_counted_lost() {
    const EMFILE: i32 = 24;
    let node = Node::new();
    let mut app = node.container("web");
    app.write(b"0123456789\n");
    tailer::tests_seam::fail_open(&app.link, EMFILE);
    let mut tailer = node.tailer(1024, SourceState::default());
    let mut events = Vec::new();
    drain(&mut tailer, &mut events);
    fs::remove_file(&app.link).expect("the container's link goes with it");
    let after = tailer.scan();
    assert!(
        after
            .iter()
            .any(|e| matches!(e, SourceEvent::Lost { to: Some(11), reason: LossReason::Vanished, .. })),
        "{after:?}"
    );
}

/// A long outage with a full spool: reading paused while kubelet kept rotating and
/// deleting. The deleted files held open past the disk budget are closed, oldest first,
/// their unread bytes reported lost; what fits the budget is still read, in order.
#[test]
fn deleted_files_held_open_past_the_budget_are_released_oldest_first() {
    let node = Node::new();
    let mut app = node.container("web");
    let file_bytes = b"0123456789abcdef\n".repeat(10);
    let options = TailerOptions { max_deleted_open_bytes: 2 * file_bytes.len() as u64, ..node.options(1024) };
    let mut tailer = Tailer::new(options, SourceState::default()).expect("tailer");
    let mut events = tailer.scan();
    // Five files written, rotated and deleted while nothing is read.
    for _ in 0..5 {
        app.write(&file_bytes);
        events.extend(tailer.scan());
        let rotated = app.rotate();
        events.extend(tailer.scan());
        fs::remove_file(rotated).expect("kubelet deletes the oldest rotation");
    }
    app.write(b"live\n");
    let out = drain(&mut tailer, &mut events);

    let lost: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Lost { from, to: Some(to), reason: LossReason::Vanished, .. } => Some(to - from),
            _ => None,
        })
        .collect();
    assert_eq!(lost, vec![file_bytes.len() as u64; 3], "the three oldest go: {events:?}");
    let mut want = file_bytes.repeat(2);
    want.extend_from_slice(b"live\n");
    assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want));
}

#[test]
fn restart_from_state_neither_rereads_nor_skips() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(b"1\n2\n3\n");
    let mut tailer = node.tailer(4, SourceState::default());
    let key = opened_key(&tailer.scan());
    let (first, chunk) = read_once(&mut tailer, key).expect("chunk");
    tailer.set_safe_offset(key, chunk.end);
    // Read but never made safe: must be read again after the restart.
    read_once(&mut tailer, key).expect("second chunk");
    let state = tailer.state();
    assert_eq!(state.files.len(), 1);
    assert_eq!(state.files[0].offset, 4);
    drop(tailer);

    app.write(b"4\n");
    let mut tailer = node.tailer(4, state);
    let events = tailer.scan();
    let resumed = opened_key(&events);
    assert_eq!(events, [SourceEvent::Opened { key: resumed, path: app.link.clone(), offset: 4 }]);
    let mut events = Vec::new();
    let mut all = first;
    all.append(&mut drain(&mut tailer, &mut events));
    assert_eq!(all, b"1\n2\n3\n4\n");
}

#[test]
fn a_file_rotated_while_down_is_found_by_identity_and_finished() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(b"1\n2\n");
    let mut tailer = node.tailer(2, SourceState::default());
    let key = opened_key(&tailer.scan());
    let (first, chunk) = read_once(&mut tailer, key).expect("chunk");
    tailer.set_safe_offset(key, chunk.end);
    let state = tailer.state();
    drop(tailer);

    app.rotate();
    app.write(b"3\n");
    let mut tailer = node.tailer(2, state);
    let mut events = Vec::new();
    let mut all = first;
    all.append(&mut drain(&mut tailer, &mut events));
    assert_eq!(all, b"1\n2\n3\n");
    let resumed = opened_key(&events);
    assert_eq!(
        events[..2],
        [
            SourceEvent::Opened { key: resumed, path: app.link.clone(), offset: 2 },
            SourceEvent::Rotated { key: resumed, path: app.link.clone() },
        ]
    );
}

#[test]
fn a_checkpoint_for_a_reused_inode_restarts_at_zero() {
    let node = Node::new();
    let mut app = node.container("web");
    app.write(b"2026-11-25T10:00:00.000000001Z stdout F old content\n");
    let mut tailer = node.tailer(1024, SourceState::default());
    let mut events = Vec::new();
    drain(&mut tailer, &mut events);
    let mut state = tailer.state();
    drop(tailer);

    // The file is replaced; pretend the filesystem handed the new file the old inode.
    app.remove();
    let mut app = node.container("web");
    app.write(b"2026-11-25T11:00:00.000000001Z stdout F new content, longer than the old\n");
    let meta = fs::metadata(&app.log).expect("stat");
    let old_offset = state.files[0].offset;
    state.files[0].id.dev = meta.dev();
    state.files[0].id.ino = meta.ino();

    let mut tailer = node.tailer(1024, state);
    let mut events = Vec::new();
    let out = drain(&mut tailer, &mut events);
    assert_eq!(out, b"2026-11-25T11:00:00.000000001Z stdout F new content, longer than the old\n");
    let key = opened_key(&events);
    assert_eq!(
        events,
        [
            SourceEvent::Lost {
                path: app.link.clone(),
                from: old_offset,
                to: None,
                reason: LossReason::Vanished
            },
            SourceEvent::Opened { key, path: app.link.clone(), offset: 0 },
        ]
    );
}

#[test]
fn a_checkpoint_whose_file_is_gone_is_reported_lost() {
    let node = Node::new();
    let path = node.root.path().join("containers").join("gone.log");
    let restored = SourceState {
        files: vec![Checkpoint {
            path: path.clone(),
            id: FileId { dev: 1, ino: 2, fingerprint: fingerprint(b"x") },
            offset: 1,
            head: None,
        }],
    };
    let mut tailer = node.tailer(1024, restored.clone());
    // Until the first scan the restored checkpoints are kept.
    assert_eq!(tailer.state(), restored);
    assert_eq!(tailer.scan(), [SourceEvent::Lost { path, from: 1, to: None, reason: LossReason::Vanished }]);
    assert_eq!(tailer.state(), SourceState::default());
}

#[test]
fn checkpoint_fingerprints_cover_the_safe_prefix() {
    let node = Node::new();
    let mut app = node.container("web");
    let content = [b"short\n".as_slice(), &[b'y'; 100], b"\n"].concat();
    app.write(&content);
    let mut tailer = node.tailer(6, SourceState::default());
    let key = opened_key(&tailer.scan());
    assert_eq!(tailer.state().files[0].id.fingerprint, 0);
    let (_, chunk) = read_once(&mut tailer, key).expect("short line");
    tailer.set_safe_offset(key, chunk.end);
    assert_eq!(tailer.state().files[0].id.fingerprint, fingerprint(b"short\n"));
    let (_, chunk) = read_once(&mut tailer, key).expect("long line");
    tailer.set_safe_offset(key, chunk.end);
    assert_eq!(tailer.state().files[0].id.fingerprint, fingerprint(&content[..FINGERPRINT_BYTES]));
}

#[test]
fn invalid_options_are_rejected() {
    let options = |chunk, rescan, max_decompressed_bytes| TailerOptions {
        globs: vec!["/var/log/containers/*.log".into()],
        rescan_interval: rescan,
        watched_rescan_interval: rescan,
        read_chunk_bytes: chunk,
        scratch_dir: PathBuf::from("/var/lib/shipper/scratch"),
        max_decompressed_bytes,
        read_from: ReadFrom::Head,
        ignore_older: None,
        first_install: false,
        max_deleted_open_bytes: u64::MAX,
    };
    let zero_chunk = Tailer::new(options(0, Duration::from_secs(1), 1), SourceState::default());
    assert!(matches!(zero_chunk, Err(SourceError::Option { name: "read_chunk_bytes", .. })));
    let zero_rescan = Tailer::new(options(1, Duration::ZERO, 1), SourceState::default());
    assert!(matches!(zero_rescan, Err(SourceError::Option { name: "rescan_interval", .. })));
    let zero_bound = Tailer::new(options(1, Duration::from_secs(1), 0), SourceState::default());
    assert!(matches!(zero_bound, Err(SourceError::Option { name: "max_decompressed_bytes", .. })));
    let shorter_watched = TailerOptions {
        watched_rescan_interval: Duration::from_millis(1),
        ..options(1, Duration::from_secs(1), 1)
    };
    let shorter_watched = Tailer::new(shorter_watched, SourceState::default());
    assert!(matches!(shorter_watched, Err(SourceError::Option { name: "watched_rescan_interval", .. })));
}

#[tokio::test]
async fn changed_returns_when_a_file_is_created() {
    let node = Node::new();
    let mut tailer = node.tailer(1024, SourceState::default());
    assert!(tailer.scan().is_empty());
    let mut app = node.container("web");
    app.write(b"hello\n");
    // The rescan is an hour away: only the inotify wake-up can end this wait.
    tokio::time::timeout(Duration::from_secs(60), tailer.changed(Duration::from_secs(3600)))
        .await
        .expect("changed() woke up on the new file");
    let events = tailer.scan();
    assert_eq!(events, [SourceEvent::Opened { key: opened_key(&events), path: app.link.clone(), offset: 0 }]);
}

#[tokio::test]
async fn the_rescan_waits_longer_only_while_every_directory_is_watched() {
    let node = Node::new();
    let options = |globs: Vec<String>| TailerOptions {
        globs,
        rescan_interval: Duration::from_millis(20),
        watched_rescan_interval: Duration::from_secs(3600),
        ..node.options(1024)
    };
    let mut watched = Tailer::new(options(vec![node.glob()]), SourceState::default()).expect("tailer");
    assert!(watched.scan().is_empty());
    // Nothing changes: past the short period, the watched tailer still sees no reason to scan.
    assert!(!watched.changed(Duration::from_millis(200)).await, "no change, rescan an hour away");

    // A glob whose directory does not exist cannot be watched: the short period applies.
    let missing = format!("{}/absent/*.log", node.root.path().display());
    let mut unwatched = Tailer::new(options(vec![missing]), SourceState::default()).expect("tailer");
    assert!(unwatched.scan().is_empty());
    assert!(unwatched.changed(Duration::from_millis(500)).await, "a directory is unwatched: rescan is due");
}

#[tokio::test]
async fn changed_returns_when_a_followed_file_grows() {
    let node = Node::new();
    let mut app = node.container("web");
    let mut tailer = node.tailer(1024, SourceState::default());
    assert_eq!(tailer.scan().len(), 1);
    assert!(!tailer.changed(Duration::from_millis(100)).await, "nothing written yet");
    app.write(b"hello\n");
    // The rescan is an hour away: only the inotify wake-up can end this wait.
    let woke = tokio::time::timeout(Duration::from_secs(5), tailer.changed(Duration::from_secs(3600))).await;
    assert_eq!(woke, Ok(true), "an append to a followed file wakes the tailer");
}

/// One step of the interleaving property.
#[derive(Debug, Clone)]
enum Step {
    /// The runtime writes these bytes (any split of lines).
    Write(Vec<u8>),
    /// kubelet rotates (only at a line boundary, as a runtime reopens between records);
    /// optionally the rotated file is deleted right away.
    Rotate { delete_rotated: bool },
    /// The agent scans and reads one chunk of the first readable file.
    Read,
    /// The agent restarts from `state()`.
    Restart,
}

fn steps(with_deletes: bool, with_restarts: bool) -> impl Strategy<Value = Vec<Step>> {
    let byte = prop_oneof![3 => b'a'..=b'z', 1 => Just(b'\n')];
    let step = prop_oneof![
        4 => prop::collection::vec(byte, 1..24).prop_map(Step::Write),
        1 => any::<bool>().prop_map(move |d| Step::Rotate { delete_rotated: d && with_deletes }),
        4 => Just(Step::Read),
        1 => Just(Step::Read).prop_map(move |s| if with_restarts { Step::Restart } else { s }),
    ];
    prop::collection::vec(step, 1..40)
}

/// Runs `steps` against a real tailer: everything written must come out once, in order,
/// with nothing reported lost.
fn check_interleaving(steps: &[Step], read_chunk_bytes: usize) -> Result<(), TestCaseError> {
    let node = Node::new();
    let mut app = node.container("web");
    let mut tailer = node.tailer(read_chunk_bytes, SourceState::default());
    let mut written = Vec::new();
    let mut read = Vec::new();
    let mut events = Vec::new();
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Write(bytes) => {
                app.write(bytes);
                written.extend_from_slice(bytes);
            }
            Step::Rotate { delete_rotated } => {
                // An unterminated last line rotates away with its file, and is shipped as
                // it is: the bytes still arrive, in order.
                // The agent looks at least once per rotation interval.
                events.extend(tailer.scan());
                let rotated = app.rotate();
                if *delete_rotated {
                    fs::remove_file(rotated).expect("remove rotated");
                }
            }
            Step::Read => {
                events.extend(tailer.scan());
                if let Some(key) = tailer.readable().first().copied() {
                    out.clear();
                    if let Some(chunk) = tailer.read(key, &mut out).expect("read") {
                        prop_assert_eq!(out.len() as u64, chunk.end - chunk.start);
                        read.extend_from_slice(&out);
                        tailer.set_safe_offset(key, chunk.end);
                    }
                }
            }
            Step::Restart => {
                let state = tailer.state();
                drop(tailer);
                tailer = node.tailer(read_chunk_bytes, state);
            }
        }
    }
    if written.last().is_some_and(|b| *b != b'\n') {
        app.write(b"\n");
        written.push(b'\n');
    }
    read.extend(drain(&mut tailer, &mut events));
    prop_assert!(!events.iter().any(|e| matches!(e, SourceEvent::Lost { .. })), "{:?}", events);
    prop_assert_eq!(String::from_utf8_lossy(&read), String::from_utf8_lossy(&written));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn writes_rotations_and_reads_interleaved_lose_nothing(
        steps in steps(true, false),
        read_chunk_bytes in 1usize..16,
    ) {
        check_interleaving(&steps, read_chunk_bytes)?;
    }

    #[test]
    fn restarts_from_state_lose_and_repeat_nothing(
        steps in steps(false, true),
        read_chunk_bytes in 1usize..16,
    ) {
        check_interleaving(&steps, read_chunk_bytes)?;
    }
}
