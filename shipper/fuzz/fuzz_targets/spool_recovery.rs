//! A spool directory of arbitrary content (a manifest, raw or well-formed with arbitrary
//! values, and chunk files, raw or made of records that may be corrupted or cut): opening
//! the spool never panics; every event it hands out is a record whose checksum verifies
//! (checked by an independent reader of the chunk format); and after recovery the spool
//! still works: what is committed then is recovered intact.
#![no_main]

use std::fs;
use std::path::Path;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shipper::route::Destination;
use shipper::spool::{Spool, SpoolOptions, stream_id};

const MAGIC: &[u8; 8] = b"SHPCHUNK";
const VERSION: u32 = 1;

#[derive(Debug, Arbitrary)]
struct Input {
    manifest: ManifestInput,
    files: Vec<FileInput>,
}

#[derive(Debug, Arbitrary)]
enum ManifestInput {
    Absent,
    Raw(Vec<u8>),
    Built {
        version_is_current: bool,
        next_seq: u64,
        source_state: Option<Vec<u8>>,
        streams: Vec<StreamInput>,
    },
}

#[derive(Debug, Arbitrary)]
struct StreamInput {
    dest: u8,
    chunks: Vec<ChunkEntryInput>,
}

#[derive(Debug, Arbitrary)]
struct ChunkEntryInput {
    seq: u8,
    /// `None`: the length of the chunk file written for it (if any), else arbitrary.
    len: Option<u64>,
    /// `None`: the number of records written for it, else arbitrary.
    events: Option<u64>,
    sealed: bool,
}

#[derive(Debug, Arbitrary)]
struct FileInput {
    dest: u8,
    seq: u8,
    content: Content,
}

#[derive(Debug, Arbitrary)]
enum Content {
    Raw(Vec<u8>),
    Records { records: Vec<(i64, String)>, flip: Option<(u16, u8)>, cut: Option<u16> },
}

/// Three destinations (the third with names that need care); the stream directory of each.
fn dest(index: u8) -> Destination {
    let (group, stream) = match index % 3 {
        0 => ("k8s_c_ns_app_c", "pod_c"),
        1 => ("k8s_c_ns_other_c", "pod2_c"),
        _ => ("g/with.dots#and-dashes", "s with spaces"),
    };
    Destination { group: group.to_owned(), stream: stream.to_owned() }
}

fn chunk_name(seq: u8) -> String {
    format!("{:020}.chunk", seq)
}

/// Encode records in the chunk format; returns the bytes and the record count.
fn encode(records: &[(i64, String)]) -> (Vec<u8>, u64) {
    let mut out = Vec::from(&MAGIC[..]);
    out.extend_from_slice(&VERSION.to_le_bytes());
    for (ts, msg) in records {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&ts.to_le_bytes());
        hasher.update(msg.as_bytes());
        out.extend_from_slice(&(msg.len() as u32).to_le_bytes());
        out.extend_from_slice(&hasher.finalize().to_le_bytes());
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(msg.as_bytes());
    }
    (out, records.len() as u64)
}

/// An independent reader of the chunk format: the records of the valid prefix, each with a
/// verified checksum and UTF-8 message.
fn verified_records(bytes: &[u8]) -> Vec<(i64, String)> {
    let mut records = Vec::new();
    if bytes.len() < 12 || &bytes[..8] != MAGIC || bytes[8..12] != VERSION.to_le_bytes() {
        return records;
    }
    let mut rest = &bytes[12..];
    while rest.len() >= 16 {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let ts = i64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
        let Some(msg) = rest.get(16..16 + len) else { break };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&ts.to_le_bytes());
        hasher.update(msg);
        let Ok(msg) = std::str::from_utf8(msg) else { break };
        if hasher.finalize() != crc {
            break;
        }
        records.push((ts, msg.to_owned()));
        rest = &rest[16 + len..];
    }
    records
}

fn write_files(dir: &Path, input: &Input) -> std::collections::HashMap<(u8, u8), (u64, u64)> {
    let mut written = std::collections::HashMap::new();
    for file in &input.files {
        let dest = dest(file.dest);
        let stream_dir = dir.join(stream_id(&dest));
        fs::create_dir_all(&stream_dir).expect("stream dir");
        let (bytes, records) = match &file.content {
            Content::Raw(bytes) => (bytes.clone(), 0),
            Content::Records { records, flip, cut } => {
                let (mut bytes, count) = encode(records);
                if let Some((at, xor)) = flip
                    && !bytes.is_empty()
                {
                    let at = usize::from(*at) % bytes.len();
                    bytes[at] ^= xor | 1;
                }
                if let Some(cut) = cut {
                    bytes.truncate(usize::from(*cut));
                }
                (bytes, count)
            }
        };
        fs::write(stream_dir.join(chunk_name(file.seq)), &bytes).expect("chunk file");
        written.insert((file.dest % 3, file.seq), (bytes.len() as u64, records));
    }
    written
}

fn manifest_json(
    input: &Input,
    written: &std::collections::HashMap<(u8, u8), (u64, u64)>,
) -> Option<Vec<u8>> {
    match &input.manifest {
        ManifestInput::Absent => None,
        ManifestInput::Raw(bytes) => Some(bytes.clone()),
        ManifestInput::Built { version_is_current, next_seq, source_state, streams } => {
            let streams: Vec<serde_json::Value> = streams
                .iter()
                .map(|stream| {
                    let dest = dest(stream.dest);
                    let chunks: Vec<serde_json::Value> = stream
                        .chunks
                        .iter()
                        .map(|chunk| {
                            let on_disk =
                                written.get(&(stream.dest % 3, chunk.seq)).copied().unwrap_or((0, 0));
                            serde_json::json!({
                                "seq": chunk.seq,
                                "len": chunk.len.unwrap_or(on_disk.0),
                                "events": chunk.events.unwrap_or(on_disk.1),
                                "sealed": chunk.sealed,
                            })
                        })
                        .collect();
                    serde_json::json!({
                        "id": stream_id(&dest),
                        "dest": { "group": dest.group, "stream": dest.stream },
                        "chunks": chunks,
                    })
                })
                .collect();
            let hex = source_state
                .as_ref()
                .map(|state| state.iter().map(|b| format!("{b:02x}")).collect::<String>());
            let manifest = serde_json::json!({
                "version": if *version_is_current { 1 } else { 2 },
                "next_seq": next_seq,
                "source_state": hex,
                "streams": streams,
            });
            Some(serde_json::to_vec(&manifest).expect("json"))
        }
    }
}

fn options() -> SpoolOptions {
    SpoolOptions { max_bytes: 1 << 30, flush_interval: Duration::from_secs(3600) }
}

fuzz_target!(|input: Input| {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("spool");
    fs::create_dir_all(&dir).expect("spool dir");
    let written = write_files(&dir, &input);
    if let Some(manifest) = manifest_json(&input, &written) {
        fs::write(dir.join("manifest"), manifest).expect("manifest");
    }

    let Ok((mut spool, _recovery)) = Spool::open(&dir, options()) else {
        return;
    };
    // Send everything ready, oldest first per stream, checking each event independently.
    for _ in 0..64 {
        let ready = spool.ready(&|_| false);
        if ready.is_empty() {
            break;
        }
        for chunk in ready {
            if let Ok(batch) = Spool::read(&chunk) {
                let on_disk = fs::read(&chunk.path).expect("a ready chunk exists");
                let verified = verified_records(&on_disk);
                let handed_out: Vec<(i64, String)> =
                    batch.events.iter().map(|e| (e.timestamp_ms, e.message.clone())).collect();
                assert_eq!(handed_out, verified, "events of {}", chunk.path.display());
            }
            let _ = spool.ack(&chunk);
        }
    }

    // The recovered spool keeps working: a commit after recovery is recovered intact.
    let dest = dest(0);
    if spool.append(&dest, 1_795_600_800_000, "after recovery").is_err() {
        return;
    }
    spool.seal_all();
    if spool.commit(b"state after recovery").is_err() {
        return;
    }
    drop(spool);
    let (mut spool, recovery) = Spool::open(&dir, options()).expect("reopen after a clean commit");
    assert_eq!(recovery.source_state.as_deref(), Some(&b"state after recovery"[..]));
    assert_eq!(recovery.corrupt_events, 0, "a clean commit recovers without corruption");
    assert!(recovery.quarantined.is_empty(), "{:?}", recovery.quarantined);
    // Whatever older chunks are still queued go first; the new event comes out in the end.
    let mut found = false;
    for _ in 0..300 {
        let ready = spool.ready(&|_| false);
        if found || ready.is_empty() {
            break;
        }
        for chunk in ready {
            let batch = Spool::read(&chunk).expect("committed chunk reads back");
            found |= batch.events.iter().any(|e| e.message == "after recovery");
            spool.ack(&chunk).expect("ack");
        }
    }
    assert!(found, "the event committed after recovery is ready to send");
});
