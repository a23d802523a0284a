//! Spool tests: one unit test per rule, a batch-limit proptest, and a model-based crash test.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn options() -> SpoolOptions {
    SpoolOptions { max_bytes: 1 << 40, flush_interval: Duration::from_secs(3600) }
}

fn dest(n: usize) -> Destination {
    Destination { group: format!("group-{n}"), stream: format!("stream-{n}") }
}

fn open(dir: &Path) -> (Spool, Recovery) {
    Spool::open(dir, options()).expect("open spool")
}

/// A message of exactly `len` bytes that starts with `tag` (where it fits).
fn message(tag: usize, len: usize) -> String {
    let mut msg = format!("{tag}:");
    msg.truncate(len);
    while msg.len() < len {
        msg.push('x');
    }
    msg
}

/// Send every ready chunk until none is left; returns each chunk's events per destination.
fn drain(spool: &mut Spool) -> HashMap<Destination, Vec<Vec<Event>>> {
    let mut out: HashMap<Destination, Vec<Vec<Event>>> = HashMap::new();
    loop {
        let ready = spool.ready(&|_| false);
        if ready.is_empty() {
            return out;
        }
        for chunk in ready {
            let batch = Spool::read(&chunk).expect("read chunk");
            out.entry(Destination::clone(&batch.dest)).or_default().push(batch.events);
            spool.ack(&chunk).expect("ack");
        }
    }
}

fn chunk_sizes(drained: &HashMap<Destination, Vec<Vec<Event>>>, d: &Destination) -> Vec<usize> {
    drained[d].iter().map(Vec::len).collect()
}

/// Sum of the sizes of every chunk file under `dir` (an oracle independent of the spool).
fn bytes_on_disk(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "quarantine") {
            total += bytes_on_disk(&path);
        } else if path.extension().is_some_and(|e| e == "chunk") {
            total += std::fs::metadata(&path).expect("meta").len();
        }
    }
    total
}

fn check_limits(events: &[Event]) {
    let bytes: usize = events.iter().map(|e| e.message.len() + EVENT_OVERHEAD_BYTES).sum();
    assert!(bytes <= MAX_BATCH_BYTES, "batch of {bytes} bytes");
    assert!(!events.is_empty() && events.len() <= MAX_BATCH_EVENTS);
    let min = events.iter().map(|e| e.timestamp_ms).min().unwrap_or(0);
    let max = events.iter().map(|e| e.timestamp_ms).max().unwrap_or(0);
    assert!(i128::from(max) - i128::from(min) <= i128::from(MAX_BATCH_SPAN_MS));
}

#[test]
fn committed_sealed_chunk_round_trips_and_ack_frees_everything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, recovery) = open(tmp.path());
    assert_eq!(recovery.source_state, None);
    let d = dest(1);
    for i in 0..3 {
        spool.append(&d, 1000 + i, &message(i as usize, 10)).expect("append");
    }
    assert_eq!(spool.events(), 3);
    assert!(spool.ready(&|_| false).is_empty(), "open chunk is not ready");
    spool.seal_all();
    assert!(spool.ready(&|_| false).is_empty(), "sealed but uncommitted");
    spool.commit(b"cp").expect("commit");
    assert_eq!(spool.bytes(), bytes_on_disk(tmp.path()));
    let ready = spool.ready(&|_| false);
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].stream_id, stream_id(&d));
    let batch = Spool::read(&ready[0]).expect("read");
    assert_eq!(*batch.dest, d);
    let expected: Vec<Event> =
        (0..3).map(|i| Event { timestamp_ms: 1000 + i, message: message(i as usize, 10) }).collect();
    assert_eq!(batch.events, expected);
    spool.ack(&ready[0]).expect("ack");
    assert_eq!((spool.bytes(), spool.events()), (0, 0));
    assert_eq!(spool.stream_count(), 0, "drained stream evicted");
    assert!(!tmp.path().join(stream_id(&d)).exists(), "stream dir removed");
}

#[test]
fn seals_before_the_10001st_event() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    let d = dest(1);
    for i in 0..=MAX_BATCH_EVENTS {
        spool.append(&d, 0, "e").expect("append");
        let _ = i;
    }
    spool.seal_all();
    spool.commit(b"").expect("commit");
    assert_eq!(chunk_sizes(&drain(&mut spool), &d), vec![MAX_BATCH_EVENTS, 1]);
}

#[test]
fn seals_when_bytes_with_overhead_would_exceed_the_batch_limit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    let (a, b, c) = (dest(1), dest(2), dest(3));
    // 10 × 100,026 = 1,000,260 fits; an 11th would be 1,100,286.
    for i in 0..11 {
        spool.append(&a, 0, &message(i, 100_000)).expect("append");
    }
    // Exactly 1,048,576 with overhead: one chunk.
    let half = MAX_BATCH_BYTES / 2 - EVENT_OVERHEAD_BYTES;
    spool.append(&b, 0, &message(0, half)).expect("append");
    spool.append(&b, 0, &message(1, half)).expect("append");
    spool.append(&b, 0, "one byte over").expect("append");
    // A maximal event travels alone, even next to an empty one.
    spool.append(&c, 0, "").expect("append");
    spool.append(&c, 0, &message(1, MAX_EVENT_BYTES)).expect("append");
    spool.append(&c, 0, "").expect("append");
    spool.seal_all();
    spool.commit(b"").expect("commit");
    let drained = drain(&mut spool);
    assert_eq!(chunk_sizes(&drained, &a), vec![10, 1]);
    assert_eq!(chunk_sizes(&drained, &b), vec![2, 1]);
    assert_eq!(chunk_sizes(&drained, &c), vec![1, 1, 1]);
}

#[test]
fn seals_when_the_span_would_exceed_24h_in_either_direction() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    let d = dest(1);
    let day = MAX_BATCH_SPAN_MS;
    for ts in [0, day, day + 1, 1, 0] {
        spool.append(&d, ts, "m").expect("append");
    }
    spool.append(&d, i64::MIN, "m").expect("no overflow on extreme timestamps");
    spool.append(&d, i64::MAX, "m").expect("no overflow on extreme timestamps");
    spool.seal_all();
    spool.commit(b"").expect("commit");
    // [0, day] | [day+1, 1] | [0] | [MIN] | [MAX]
    assert_eq!(chunk_sizes(&drain(&mut spool), &d), vec![2, 2, 1, 1, 1]);
}

#[test]
fn oversized_event_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    let err = spool.append(&dest(1), 0, &message(0, MAX_EVENT_BYTES + 1)).expect_err("too large");
    assert!(matches!(err, SpoolError::EventTooLarge { len, .. } if len == MAX_EVENT_BYTES + 1));
    assert_eq!((spool.bytes(), spool.events()), (0, 0));
}

#[test]
fn seal_expired_seals_only_chunks_older_than_the_flush_interval() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    spool.append(&dest(1), 0, "m").expect("append");
    spool.seal_expired(Instant::now());
    spool.commit(b"").expect("commit");
    assert!(spool.ready(&|_| false).is_empty(), "young chunk stays open");
    spool.seal_expired(Instant::now() + Duration::from_secs(7200));
    spool.commit(b"").expect("commit");
    assert_eq!(spool.ready(&|_| false).len(), 1);
}

#[test]
fn needs_commit_only_when_a_commit_would_store_something_new() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    let now = Instant::now();
    let later = now + Duration::from_secs(7200);
    assert!(!spool.needs_commit(now), "a fresh spool has nothing to store");

    spool.append(&dest(1), 0, "m").expect("append");
    assert!(spool.needs_commit(now), "an append must be fsynced");
    spool.commit(b"").expect("commit");
    assert!(!spool.needs_commit(now), "a young open chunk waits for its flush interval");
    assert!(spool.needs_commit(later), "an expired open chunk must be sealed");

    spool.seal_expired(later);
    spool.commit(b"").expect("commit");
    assert!(!spool.needs_commit(later), "sealed and committed: nothing new");

    let ready = spool.ready(&|_| false);
    spool.ack(&ready[0]).expect("ack");
    assert!(spool.needs_commit(later), "the manifest still lists the freed chunk");
    spool.commit(b"").expect("commit");
    assert!(!spool.needs_commit(later));
    assert_eq!(spool.bytes(), 0);
}

#[test]
fn an_expired_chunk_stays_open_while_its_stream_has_a_backlog() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    let later = Instant::now() + Duration::from_secs(7200);
    spool.append(&dest(1), 0, "first").expect("append");
    spool.seal_expired(later);
    spool.commit(b"").expect("commit");
    let first = spool.ready(&|_| false);
    assert_eq!(first.len(), 1);

    // While the first chunk is not delivered, later events fill one open chunk.
    spool.append(&dest(1), 1, "second").expect("append");
    spool.seal_expired(later + Duration::from_secs(7200));
    spool.append(&dest(1), 2, "third").expect("append");
    spool.seal_expired(later + Duration::from_secs(2 * 7200));
    spool.commit(b"").expect("commit");
    assert_eq!(spool.ready(&|_| true).len(), 0);
    assert_eq!(spool.ready(&|_| false).len(), 1, "only the first chunk is sealed");

    // Caught up: the open chunk is sealed at the next expiry check, whole.
    spool.ack(&first[0]).expect("ack");
    spool.seal_expired(later + Duration::from_secs(3 * 7200));
    spool.commit(b"").expect("commit");
    let next = spool.ready(&|_| false);
    assert_eq!(next.len(), 1);
    let batch = Spool::read(&next[0]).expect("read");
    let messages: Vec<&str> = batch.events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages, ["second", "third"]);
}

#[test]
fn ready_gives_the_oldest_chunk_per_stream_and_skips_busy_streams() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    let (a, b) = (dest(1), dest(2));
    for round in 0..2 {
        spool.append(&a, 0, &message(round, 5)).expect("append");
        spool.append(&b, 0, &message(round, 5)).expect("append");
        spool.seal_all();
    }
    spool.commit(b"").expect("commit");
    let mut ready = spool.ready(&|_| false);
    ready.sort_by(|x, y| x.stream_id.cmp(&y.stream_id));
    assert_eq!(ready.len(), 2);
    for chunk in &ready {
        let batch = Spool::read(chunk).expect("read");
        assert_eq!(batch.events[0].message, message(0, 5), "oldest first");
    }
    let busy_a = stream_id(&a);
    let only_b = spool.ready(&|id| id == busy_a);
    assert_eq!(only_b.len(), 1);
    assert_eq!(*only_b[0].dest, b);
}

#[test]
fn ack_of_an_uncommitted_chunk_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    let d = dest(1);
    spool.append(&d, 0, "m").expect("append");
    spool.seal_all();
    let chunk = ChunkRef {
        stream_id: stream_id(&d),
        seq: 0,
        path: tmp.path().join(stream_id(&d)).join(chunk::file_name(0)),
        dest: Arc::new(d),
    };
    assert!(matches!(spool.ack(&chunk), Err(SpoolError::NotReady { .. })));
    assert_eq!(spool.events(), 1);
}

#[test]
fn reopen_keeps_committed_events_drops_uncommitted_ones_and_returns_the_checkpoint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = dest(1);
    {
        let (mut spool, _) = open(tmp.path());
        spool.append(&d, 1, "committed").expect("append");
        spool.commit(b"checkpoint-1").expect("commit");
        spool.append(&d, 2, "lost").expect("append");
        spool.append(&dest(2), 2, "lost too").expect("append");
    }
    let (mut spool, recovery) = open(tmp.path());
    assert_eq!(recovery.source_state.as_deref(), Some(&b"checkpoint-1"[..]));
    assert!(recovery.truncated_bytes > 0);
    assert!(recovery.quarantined.is_empty());
    assert_eq!(spool.events(), 1);
    assert_eq!(spool.bytes(), bytes_on_disk(tmp.path()));
    // Recovered chunks are sealed and ready without another commit.
    let drained = drain(&mut spool);
    assert_eq!(drained.len(), 1);
    assert_eq!(drained[&d], vec![vec![Event { timestamp_ms: 1, message: "committed".into() }]]);
}

#[test]
fn acked_chunk_does_not_come_back_after_a_crash_before_the_next_commit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let (mut spool, _) = open(tmp.path());
        spool.append(&dest(1), 1, "m").expect("append");
        spool.seal_all();
        spool.commit(b"s").expect("commit");
        assert_eq!(drain(&mut spool).len(), 1);
    }
    let (spool, recovery) = open(tmp.path());
    assert_eq!(spool.events(), 0);
    assert_eq!(recovery.corrupt_events, 0);
}

#[test]
fn unknown_chunks_and_stream_dirs_are_deleted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = dest(1);
    {
        let (mut spool, _) = open(tmp.path());
        spool.append(&d, 1, "m").expect("append");
        spool.commit(b"").expect("commit");
    }
    let stray_chunk = tmp.path().join(stream_id(&d)).join(chunk::file_name(99));
    std::fs::write(&stray_chunk, b"junk").expect("write");
    let stray_dir = tmp.path().join(stream_id(&dest(7)));
    std::fs::create_dir(&stray_dir).expect("mkdir");
    std::fs::write(stray_dir.join(chunk::file_name(5)), b"junk").expect("write");
    let (spool, recovery) = open(tmp.path());
    assert!(!stray_chunk.exists() && !stray_dir.exists());
    assert_eq!(recovery.truncated_bytes, 8);
    assert_eq!(spool.events(), 1);
}

#[test]
fn corrupt_record_quarantines_the_chunk_and_keeps_its_good_prefix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = dest(1);
    {
        let (mut spool, _) = open(tmp.path());
        for i in 0..5 {
            spool.append(&d, i, &message(i as usize, 10)).expect("append");
        }
        spool.commit(b"s").expect("commit");
    }
    // Flip a byte in the message of the third record.
    let path = tmp.path().join(stream_id(&d)).join(chunk::file_name(0));
    let mut bytes = std::fs::read(&path).expect("read");
    let third = (chunk::HEADER_LEN + 2 * chunk::record_len(10) + chunk::RECORD_HEADER_LEN) as usize;
    bytes[third] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write");
    let (mut spool, recovery) = open(tmp.path());
    assert_eq!(recovery.corrupt_events, 3);
    assert_eq!(recovery.quarantined.len(), 1);
    assert!(recovery.quarantined[0].starts_with(tmp.path().join("quarantine")));
    assert_eq!(std::fs::read(&recovery.quarantined[0]).expect("read"), bytes);
    assert_eq!(spool.events(), 2);
    let drained = drain(&mut spool);
    let messages: Vec<&str> = drained[&d][0].iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages, vec![message(0, 10), message(1, 10)]);
}

#[test]
fn corrupt_or_unknown_manifest_is_quarantined_with_its_chunks() {
    // Version 0 was never written: only damage makes one. (A newer version is refused,
    // see the next test.)
    for garbage in [&b"{not json"[..], br#"{"version":0}"#] {
        let tmp = tempfile::tempdir().expect("tempdir");
        {
            let (mut spool, _) = open(tmp.path());
            spool.append(&dest(1), 1, "m").expect("append");
            spool.commit(b"s").expect("commit");
        }
        std::fs::write(tmp.path().join("manifest"), garbage).expect("write");
        let (spool, recovery) = open(tmp.path());
        assert_eq!(recovery.source_state, None);
        assert_eq!(recovery.quarantined.len(), 2, "manifest and one stream dir");
        assert!(recovery.quarantined.iter().all(|p| p.exists()));
        assert_eq!((spool.events(), spool.bytes()), (0, 0));
        // And the spool works (and reopens) afterwards.
        drop(spool);
        let (_, again) = open(tmp.path());
        assert!(again.quarantined.is_empty());
    }
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).expect("read_dir").map(|e| e.expect("entry").path()));
        } else {
            files.insert(path.clone(), std::fs::read(&path).expect("read"));
        }
    }
    files
}

/// A rollback after an upgrade: the manifest is a newer shipper's. Recovery refuses with an
/// error naming both versions and leaves every file as it was (the newer version can still
/// ship them), where it used to quarantine the whole spool.
#[test]
fn a_newer_manifest_is_refused_and_nothing_is_touched() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let (mut spool, _) = open(tmp.path());
        spool.append(&dest(1), 1, "m").expect("append");
        spool.commit(b"s").expect("commit");
    }
    let newer = format!(
        r#"{{"version":{},"streams":"a shape this build does not know"}}"#,
        manifest::MANIFEST_VERSION + 1
    );
    std::fs::write(tmp.path().join("manifest"), &newer).expect("write");
    std::fs::write(tmp.path().join("manifest.tmp"), "half-written by the newer version").expect("write");
    let before = tree(tmp.path());

    let err = Spool::open(tmp.path(), options()).map(|_| ()).expect_err("a newer manifest must be refused");

    let text = err.to_string();
    assert!(matches!(err, SpoolError::NewerManifest { found: 2, supported: 1, .. }), "{text}");
    assert!(text.contains("touching nothing"), "{text}");
    assert_eq!(tree(tmp.path()), before, "recovery touched the newer spool");
}

/// Found by the `spool_recovery` fuzz target: a manifest with `next_seq` at `u64::MAX`
/// made the next append overflow (a panic in debug builds, a reused sequence in release).
#[test]
fn manifest_with_sequence_numbers_out_of_range_is_quarantined() {
    let chunk = |seq: u64| format!(r#"{{"seq":{seq},"len":12,"events":0,"sealed":true}}"#);
    for (next_seq, chunk_seq) in [(u64::MAX, 0), (manifest::SEQ_LIMIT + 1, 0), (0, manifest::SEQ_LIMIT)] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let manifest = format!(
            r#"{{"version":1,"next_seq":{next_seq},"source_state":null,"streams":[{{"id":"{}","dest":{{"group":"group-1","stream":"stream-1"}},"chunks":[{}]}}]}}"#,
            stream_id(&dest(1)),
            chunk(chunk_seq),
        );
        std::fs::write(tmp.path().join("manifest"), manifest).expect("write");
        let (mut spool, recovery) = open(tmp.path());
        assert_eq!(recovery.quarantined.len(), 1, "the manifest: {next_seq} {chunk_seq}");
        // The spool works afterwards.
        spool.append(&dest(1), 1, "m").expect("append");
        spool.commit(b"s").expect("commit");
    }
}

/// Found by the fuzz target too: event counts in a damaged manifest are summed without
/// overflowing when the chunks they describe fail verification.
#[test]
fn huge_event_counts_of_corrupt_chunks_saturate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let id = stream_id(&dest(1));
    std::fs::create_dir_all(tmp.path().join(&id)).expect("stream dir");
    for seq in [0, 1] {
        std::fs::write(tmp.path().join(&id).join(chunk::file_name(seq)), b"not a chunk").expect("write");
    }
    let chunk = |seq: u64| format!(r#"{{"seq":{seq},"len":11,"events":{},"sealed":true}}"#, u64::MAX);
    let manifest = format!(
        r#"{{"version":1,"next_seq":2,"source_state":null,"streams":[{{"id":"{id}","dest":{{"group":"group-1","stream":"stream-1"}},"chunks":[{},{}]}}]}}"#,
        chunk(0),
        chunk(1),
    );
    std::fs::write(tmp.path().join("manifest"), manifest).expect("write");
    let (spool, recovery) = open(tmp.path());
    assert_eq!(recovery.corrupt_events, u64::MAX);
    assert_eq!(recovery.quarantined.len(), 2);
    assert_eq!(spool.events(), 0);
}

/// Found by the fuzz target too: a manifest just inside the range must not lead to a
/// commit the next start refuses. The last sequence number is used, then appends fail.
#[test]
fn the_last_sequence_number_is_used_and_then_appends_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let manifest =
        format!(r#"{{"version":1,"next_seq":{},"source_state":null,"streams":[]}}"#, manifest::SEQ_LIMIT - 1);
    std::fs::write(tmp.path().join("manifest"), manifest).expect("write");
    {
        let (mut spool, recovery) = open(tmp.path());
        assert!(recovery.quarantined.is_empty());
        spool.append(&dest(1), 1, "last").expect("the last sequence number");
        spool.seal_all();
        spool.commit(b"s").expect("commit");
        assert!(spool.append(&dest(2), 1, "beyond").is_err(), "no sequence number left");
    }
    let (_, recovery) = open(tmp.path());
    assert!(recovery.quarantined.is_empty(), "{:?}", recovery.quarantined);
    assert_eq!(recovery.source_state.as_deref(), Some(&b"s"[..]));
}

#[test]
fn is_full_at_the_cap() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = SpoolOptions { max_bytes: 100, flush_interval: Duration::from_secs(1) };
    let (mut spool, _) = Spool::open(tmp.path(), opts).expect("open");
    assert!(!spool.is_full());
    // 12 header + 16 record header + 72 = 100 bytes.
    spool.append(&dest(1), 0, &message(0, 71)).expect("append");
    assert!(!spool.is_full());
    spool.append(&dest(1), 0, "").expect("append");
    assert!(spool.is_full());
}

#[test]
fn one_stream_may_hold_three_quarters_of_the_cap_leaving_room_for_the_others() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = SpoolOptions { max_bytes: 400, flush_interval: Duration::from_secs(1) };
    let (mut spool, _) = Spool::open(tmp.path(), opts).expect("open");
    // Each append of a 72-byte message costs 16 + 72 bytes, plus 12 for a chunk header:
    // 100, 188, 276, then 364 >= 300 (3/4 of 400).
    for i in 0..3 {
        spool.append(&dest(1), 0, &message(i, 72)).expect("append");
    }
    assert!(!spool.stream_at_share(&dest(1)), "{} bytes is below 300", spool.bytes());
    spool.append(&dest(1), 0, &message(3, 72)).expect("append");
    assert!(spool.stream_at_share(&dest(1)), "{} bytes reaches 300", spool.bytes());
    assert!(!spool.stream_at_share(&dest(2)), "another stream still has room");
    assert!(!spool.is_full());
    spool.append(&dest(2), 0, &message(4, 72)).expect("append");
    assert!(spool.is_full() && !spool.stream_at_share(&dest(2)));
}

#[test]
fn stream_id_is_stable() {
    insta::assert_snapshot!("stream_id", stream_id(&dest(1)));
}

#[test]
fn chunk_format_is_stable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = dest(1);
    let (mut spool, _) = open(tmp.path());
    spool.append(&d, 0x0102, "hi").expect("append");
    spool.commit(b"").expect("commit");
    let bytes = std::fs::read(tmp.path().join(stream_id(&d)).join(chunk::file_name(0))).expect("read");
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    insta::assert_snapshot!("chunk_format", hex.join(" "));
}

#[test]
fn many_streams_buffer_at_most_the_unwritten_budget_between_commits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    let line = message(0, 1024);
    // 500 streams x 30 KiB, appended round-robin like one read pass over 500 files: 15 MiB
    // that would sit in 500 buffers until the commit without the budget.
    for round in 0..30 {
        for stream in 0..500 {
            spool.append(&dest(stream), round, &line).expect("append");
        }
    }
    let held = spool.buffered_capacity();
    assert!(held <= 2 * UNWRITTEN_BUDGET_BYTES as usize, "{held} bytes buffered");
    spool.commit(b"").expect("commit");
    assert_eq!(spool.buffered_capacity(), 0);
    // Written out early, committed and sealed: every event comes back.
    spool.seal_all();
    spool.commit(b"").expect("commit");
    let drained = drain(&mut spool);
    assert_eq!(drained.values().flatten().map(Vec::len).sum::<usize>(), 30 * 500);
}

/// 2,000 streams with an open chunk each (an outage: their backlogs keep the chunks open
/// to fill them): after a commit none holds a descriptor, and appends after it reopen
/// their chunk and land in it.
#[test]
fn open_chunks_hold_no_descriptor_between_commits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = open(tmp.path());
    for stream in 0..2000 {
        spool.append(&dest(stream), 1, "before").expect("append");
    }
    assert_eq!(spool.open_writers(), 2000);
    spool.commit(b"").expect("commit");
    assert_eq!(spool.open_writers(), 0, "a commit closes every synced chunk");
    for stream in 0..2000 {
        spool.append(&dest(stream), 2, "after").expect("append");
    }
    spool.seal_all();
    spool.commit(b"").expect("commit");
    let drained = drain(&mut spool);
    assert_eq!(drained.len(), 2000);
    for chunks in drained.values() {
        let messages: Vec<&str> = chunks.iter().flatten().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["before", "after"], "one chunk, reopened");
        assert_eq!(chunks.len(), 1);
    }
}

#[test]
fn chunk_writer_gives_its_buffer_back_at_sync_and_writes_big_messages_through() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join(chunk::file_name(0));
    let mut writer = ChunkWriter::create(path.clone()).expect("create");
    let big = "b".repeat(200 * 1024);
    writer.append(1, b"small").expect("append");
    writer.append(2, big.as_bytes()).expect("append big");
    writer.append(3, b"after").expect("append");
    assert!(writer.buffered_capacity() > 0, "small records are buffered");
    writer.sync().expect("sync");
    assert_eq!(writer.buffered_capacity(), 0, "an idle open chunk holds no buffer");

    let scan = chunk::scan(&path, u64::MAX, true).expect("scan");
    assert!(!scan.damaged);
    let got: Vec<(i64, usize)> = scan.events.iter().map(|e| (e.timestamp_ms, e.message.len())).collect();
    assert_eq!(got, [(1, 5), (2, big.len()), (3, 5)]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn stream_ids_differ_for_different_destinations(
        g1 in "[a-z]{0,4}", s1 in "[a-z]{0,4}", g2 in "[a-z]{0,4}", s2 in "[a-z]{0,4}",
    ) {
        let d1 = Destination { group: g1, stream: s1 };
        let d2 = Destination { group: g2, stream: s2 };
        prop_assert_eq!(d1 == d2, stream_id(&d1) == stream_id(&d2));
    }
}

fn event_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        12 => 0usize..200,
        2 => 0usize..=200_000,
        1 => 0usize..=MAX_EVENT_BYTES,
        1 => Just(MAX_EVENT_BYTES),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// No chunk ever breaks a PutLogEvents rule, and every stream reads back in append order.
    #[test]
    fn chunks_respect_batch_limits_and_keep_order(
        events in prop::collection::vec(
            (0usize..3, event_size(), 0i64..5 * 24 * 3600 * 1000), 1..40),
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut spool, _) = open(tmp.path());
        let mut expected: HashMap<Destination, Vec<Event>> = HashMap::new();
        for (i, (stream, size, ts)) in events.iter().enumerate() {
            let msg = message(i, *size);
            spool.append(&dest(*stream), *ts, &msg).expect("append");
            let event = Event { timestamp_ms: *ts, message: msg };
            expected.entry(dest(*stream)).or_default().push(event);
        }
        spool.seal_all();
        spool.commit(b"").expect("commit");
        let drained = drain(&mut spool);
        prop_assert_eq!(drained.len(), expected.len());
        for (d, chunks) in drained {
            for chunk in &chunks {
                check_limits(chunk);
            }
            let all: Vec<Event> = chunks.into_iter().flatten().collect();
            prop_assert_eq!(&all, &expected[&d]);
        }
        prop_assert_eq!((spool.bytes(), spool.events()), (0, 0));
    }
}

/// How a crash damages one file's uncommitted tail.
#[derive(Debug, Clone)]
enum Damage {
    Leave,
    /// Truncate at committed + this fraction (per mille) of the uncommitted tail.
    Truncate(u16),
    Garbage(Vec<u8>),
}

#[derive(Debug, Clone)]
enum Op {
    Append { stream: usize, size: usize, ts: i64 },
    Commit,
    SealAll,
    SendOne,
    Crash(Vec<Damage>),
}

fn op() -> impl Strategy<Value = Op> {
    let damage = prop_oneof![
        Just(Damage::Leave),
        (0u16..=1000).prop_map(Damage::Truncate),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Damage::Garbage),
    ];
    let append_size = prop_oneof![9 => 0usize..64, 1 => 0usize..=300_000];
    prop_oneof![
        10 => (0usize..3, append_size, 0i64..3 * 24 * 3600 * 1000)
            .prop_map(|(stream, size, ts)| Op::Append { stream, size, ts }),
        3 => Just(Op::Commit),
        2 => Just(Op::SealAll),
        3 => Just(Op::SendOne),
        1 => prop::collection::vec(damage, 0..8).prop_map(Op::Crash),
    ]
}

/// Apply `damage` to chunk files past their committed length (0 if the manifest lacks them).
fn damage_uncommitted(dir: &Path, committed: &HashMap<PathBuf, u64>, damage: &[Damage]) {
    let mut files = Vec::new();
    for stream in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = stream.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "quarantine") {
            for file in std::fs::read_dir(&path).expect("read dir").flatten() {
                files.push(file.path());
            }
        }
    }
    files.sort();
    for (path, damage) in files.iter().zip(damage.iter().cycle()) {
        let committed_len = committed.get(path).copied().unwrap_or(0);
        let len = std::fs::metadata(path).expect("meta").len();
        match damage {
            Damage::Leave => {}
            Damage::Truncate(per_mille) => {
                let cut = committed_len + (len - committed_len) * u64::from(*per_mille) / 1000;
                let file = std::fs::File::options().write(true).open(path).expect("open");
                file.set_len(cut).expect("truncate");
            }
            Damage::Garbage(bytes) => {
                let mut file = std::fs::File::options().append(true).open(path).expect("open");
                file.write_all(bytes).expect("write");
            }
        }
    }
}

/// The model: per stream, the events held, each with whether a commit covered it.
#[derive(Debug, Default)]
struct Model {
    streams: HashMap<Destination, VecDeque<(Event, bool)>>,
    state: Option<Vec<u8>>,
    commits: u64,
}

impl Model {
    fn held(&self) -> u64 {
        self.streams.values().map(|q| q.len() as u64).sum()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Arbitrary interleavings of append / commit / seal / send / crash agree with the model:
    /// committed, unacked events survive exactly once and in order; acked ones never return;
    /// uncommitted ones vanish on a crash; the checkpoint is the last committed one.
    #[test]
    fn spool_agrees_with_model_across_crashes(ops in prop::collection::vec(op(), 1..60)) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut spool, _) = open(tmp.path());
        let mut model = Model::default();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append { stream, size, ts } => {
                    let event = Event { timestamp_ms: ts, message: message(i, size) };
                    spool.append(&dest(stream), ts, &event.message).expect("append");
                    model.streams.entry(dest(stream)).or_default().push_back((event, false));
                }
                Op::Commit => {
                    model.commits += 1;
                    let state = model.commits.to_le_bytes().to_vec();
                    spool.commit(&state).expect("commit");
                    model.state = Some(state);
                    for queue in model.streams.values_mut() {
                        for (_, committed) in queue.iter_mut() {
                            *committed = true;
                        }
                    }
                }
                Op::SealAll => spool.seal_all(),
                Op::SendOne => {
                    if let Some(chunk) = spool.ready(&|_| false).into_iter().next() {
                        let batch = Spool::read(&chunk).expect("read");
                        check_limits(&batch.events);
                        let queue = model.streams.get_mut(&*batch.dest).expect("stream in model");
                        prop_assert!(batch.events.len() <= queue.len());
                        for event in &batch.events {
                            let (expected, committed) = queue.pop_front().expect("model event");
                            prop_assert!(committed, "a ready chunk holds only committed events");
                            prop_assert_eq!(event, &expected);
                        }
                        spool.ack(&chunk).expect("ack");
                        model.streams.retain(|_, queue| !queue.is_empty());
                    }
                }
                Op::Crash(damage) => {
                    let committed = spool.committed_lengths();
                    drop(spool);
                    damage_uncommitted(tmp.path(), &committed, &damage);
                    let (reopened, recovery) = open(tmp.path());
                    spool = reopened;
                    for queue in model.streams.values_mut() {
                        queue.retain(|(_, committed)| *committed);
                    }
                    model.streams.retain(|_, queue| !queue.is_empty());
                    prop_assert_eq!(&recovery.source_state, &model.state);
                    prop_assert_eq!(recovery.corrupt_events, 0);
                    prop_assert!(recovery.quarantined.is_empty());
                    prop_assert_eq!(spool.events(), model.held());
                    prop_assert_eq!(spool.bytes(), bytes_on_disk(tmp.path()));
                }
            }
            prop_assert_eq!(spool.events(), model.held());
        }
        spool.seal_all();
        spool.commit(b"end").expect("commit");
        let drained = drain(&mut spool);
        prop_assert_eq!(drained.len(), model.streams.len());
        for (d, chunks) in drained {
            let all: Vec<Event> = chunks.into_iter().flatten().collect();
            let expected: Vec<Event> = model.streams[&d].iter().map(|(e, _)| e.clone()).collect();
            prop_assert_eq!(all, expected);
        }
        prop_assert_eq!((spool.bytes(), spool.events(), spool.stream_count()), (0, 0, 0));
    }
}
