//! Arbitrary bytes as the persisted source state (the blob the spool manifest carries):
//! decoding never panics, what decodes round-trips, and restoring a tailer from it against
//! a real rotated log (plain, gzipped, live) never panics and hands out only whole lines.
#![no_main]

use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use libfuzzer_sys::fuzz_target;
use shipper::source::{ReadFrom, SourceState, Tailer, TailerOptions};

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn line(n: u32) -> String {
    format!("2026-11-25T10:00:{n:02}.000000001Z stdout F line {n}\n")
}

/// The same gzip bytes every run (a rotated file holding lines 0..4).
fn gz_bytes() -> &'static [u8] {
    static GZ: OnceLock<Vec<u8>> = OnceLock::new();
    GZ.get_or_init(|| {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        let content: String = (0..4).map(line).collect();
        encoder.write_all(content.as_bytes()).expect("gzip to memory");
        encoder.finish().expect("gzip to memory")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(state) = serde_json::from_slice::<SourceState>(data) else {
        return;
    };
    let encoded = serde_json::to_vec(&state).expect("a decoded state encodes");
    let again: SourceState = serde_json::from_slice(&encoded).expect("an encoded state decodes");
    assert_eq!(again, state);

    // A node with one container: rotated gz, rotated plain, live file, and the symlink.
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pods/default_web_uid/app");
    let containers = root.path().join("containers");
    fs::create_dir_all(&dir).expect("pod dir");
    fs::create_dir_all(&containers).expect("containers dir");
    fs::write(dir.join("0.log.20261125-100000.gz"), gz_bytes()).expect("gz");
    fs::write(dir.join("0.log.20261125-100100"), (4..6).map(line).collect::<String>()).expect("plain");
    let mut live = File::create(dir.join("0.log")).expect("live");
    live.write_all((6..8).map(line).collect::<String>().as_bytes()).expect("live");
    let link = containers.join(format!("web_default_app-{ID}.log"));
    std::os::unix::fs::symlink(dir.join("0.log"), &link).expect("symlink");

    // Every checkpoint is about that container (arbitrary paths would read the fuzzing
    // machine's files); ids, offsets and heads stay as fuzzed.
    let mut state = state;
    for checkpoint in &mut state.files {
        checkpoint.path = PathBuf::from(&link);
    }
    let options = TailerOptions {
        globs: vec![format!("{}/*.log", containers.display())],
        rescan_interval: Duration::from_secs(3600),
        watched_rescan_interval: Duration::from_secs(3600),
        read_chunk_bytes: 64,
        scratch_dir: root.path().join("scratch"),
        max_decompressed_bytes: 1 << 20,
        // A restore from fuzzed checkpoints is never a first install.
        read_from: ReadFrom::Head,
        ignore_older: None,
        first_install: false,
        max_deleted_open_bytes: u64::MAX,
    };
    let mut tailer = Tailer::new(options, state).expect("valid options");
    let mut out = Vec::new();
    for _ in 0..4 {
        tailer.scan();
        for key in tailer.readable() {
            // Bounded: the files are small and each read makes progress.
            for _ in 0..64 {
                let start = out.len();
                match tailer.read(key, &mut out) {
                    Ok(Some(chunk)) => {
                        assert_eq!((out.len() - start) as u64, chunk.end - chunk.start);
                        assert_eq!(out.last(), Some(&b'\n'), "only whole lines");
                        tailer.set_safe_offset(key, chunk.end);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
    let _ = tailer.state();
});
