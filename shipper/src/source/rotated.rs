//! Rotated siblings of a log file, plain and gzipped, as kubelet leaves them behind.
//!
//! kubelet renames `<dir>/0.log` to `0.log.<YYYYMMDD-hhmmss>` and later gzips it to
//! `0.log.<ts>.gz` (a new inode; the plain file is deleted). The glob only matches the live
//! file's symlink, so after a restart these siblings are found here: listed in rotation
//! order, matched against checkpoints (by inode, or for `.gz` files by the fingerprint of
//! their decompressed head), and a `.gz` is decompressed into an unlinked scratch file so
//! it can be tailed like any other file (offsets are in uncompressed bytes).

use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;

use super::Checkpoint;
use super::identity::{FINGERPRINT_BYTES, covered, fingerprint};

const GZ_SUFFIX: &str = ".gz";
/// kubelet compresses into `<name>.tmp` first: never a finished file.
const TMP_SUFFIX: &str = ".tmp";

/// The files one live log rotates into: `<dir>/<base>` and `<dir>/<base>.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Family {
    /// Directory of the real file.
    pub(super) dir: PathBuf,
    /// The live file's name (`0.log`).
    pub(super) base: OsString,
}

/// Symlinks followed at most (the kernel's own limit is 40; kubelet makes two at most).
const MAX_SYMLINKS: usize = 16;

/// The family of the file reached through `path`: the end of its symlink chain (whose last
/// target may dangle), or the path itself. On Docker-runtime nodes the chain has two links:
/// `/var/log/containers/…` → `/var/log/pods/…/0.log` → `/var/lib/docker/containers/<id>/<id>-json.log`,
/// and the rotations sit next to the last one.
pub(super) fn family(path: &Path) -> Option<Family> {
    let mut real = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match fs::read_link(&real) {
            Ok(target) if target.is_relative() => real = real.parent()?.join(target),
            Ok(target) => real = target,
            Err(_) => break,
        }
    }
    Some(Family { dir: real.parent()?.to_path_buf(), base: real.file_name()?.to_os_string() })
}

/// Docker's json-file driver names its log `<id>-json.log`.
const DOCKER_JSON_SUFFIX: &str = "-json.log";

/// Sort key of a rotation suffix, oldest first. kubelet's suffixes are timestamps of fixed
/// width (string order is time order); Docker's json-file driver numbers them, `.1` the
/// newest, so a larger number is older (and `.10` is older than `.9`, not newer).
fn age_order<'a>(family: &Family, order: &'a str) -> (std::cmp::Reverse<u64>, &'a str) {
    let numbered = family.base.to_str().is_some_and(|base| base.ends_with(DOCKER_JSON_SUFFIX));
    match order.parse::<u64>() {
        Ok(n) if numbered => (std::cmp::Reverse(n), ""),
        _ => (std::cmp::Reverse(0), order),
    }
}

/// A rotated sibling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sibling {
    /// Where it is.
    pub(super) path: PathBuf,
    /// Rotation order: the name's suffix after `<base>.`, without `.gz` (kubelet: a
    /// fixed-width timestamp; Docker: a number, larger is older; see `age_order`).
    pub(super) order: String,
    /// A gzip file.
    pub(super) compressed: bool,
}

/// Every rotated sibling in `family`, oldest first. When a plain file and its `.gz` twin
/// both exist (kubelet died between compressing and deleting), only the plain one is
/// listed: it holds the same bytes and its inode may be the one a checkpoint names.
pub(super) fn siblings(family: &Family) -> Vec<Sibling> {
    let Ok(entries) = fs::read_dir(&family.dir) else {
        return Vec::new();
    };
    let Some(base) = family.base.to_str() else {
        return Vec::new();
    };
    let prefix = format!("{base}.");
    let mut found: Vec<Sibling> = entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let suffix = name.strip_prefix(&prefix)?;
            if suffix.is_empty() || suffix.ends_with(TMP_SUFFIX) {
                return None;
            }
            let (order, compressed) = match suffix.strip_suffix(GZ_SUFFIX) {
                Some(order) => (order.to_owned(), true),
                None => (suffix.to_owned(), false),
            };
            Some(Sibling { path: entry.path(), order, compressed })
        })
        .collect();
    // Plain before compressed within one order, so dedup keeps the plain twin.
    found.sort_by(|a, b| {
        (age_order(family, &a.order), a.compressed).cmp(&(age_order(family, &b.order), b.compressed))
    });
    found.dedup_by(|later, earlier| later.order == earlier.order);
    found
}

/// Was `checkpoint` taken of the content the gzip file at `path` holds? Its decompressed
/// head must match what the checkpoint vouches for and, if the checkpoint saw more of the
/// head than that, the longer head too. Only the head is decompressed. A checkpoint that saw
/// no bytes at all matches no compressed file (it cannot be told from any other).
pub(super) fn gz_matches(path: &Path, checkpoint: &Checkpoint) -> bool {
    let vouched = covered(checkpoint.offset);
    let seen = checkpoint.head.filter(|head| {
        usize::try_from(head.len).is_ok_and(|len| (vouched.max(1)..=FINGERPRINT_BYTES).contains(&len))
    });
    let len = seen.map_or(vouched, |head| head.len as usize);
    if len == 0 {
        return false;
    }
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut head = [0u8; FINGERPRINT_BYTES];
    let mut decoder = MultiGzDecoder::new(BufReader::new(file));
    // A corrupt or too short head is simply not a match.
    if decoder.read_exact(&mut head[..len]).is_err() {
        return false;
    }
    let vouched_matches = vouched == 0 || fingerprint(&head[..vouched]) == checkpoint.id.fingerprint;
    let seen_matches = seen.is_none_or(|seen| fingerprint(&head[..len]) == seen.fingerprint);
    vouched_matches && seen_matches
}

/// Why a decompressed copy stops short of the original's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Damage {
    /// The gzip data is corrupt or truncated (the reason); the copy holds what was decoded
    /// before the error.
    Corrupt(String),
    /// The content is larger than the bound; the copy holds the bound.
    TooLarge,
}

/// A `.gz` decompressed into an unlinked scratch file.
#[derive(Debug)]
pub(super) struct Decompressed {
    /// The copy, readable from 0 (unlinked: the space is freed when it is closed).
    pub(super) file: File,
    /// Its metadata (length = bytes decompressed).
    pub(super) meta: Metadata,
    /// Why it stops before the end of the original content, if it does.
    pub(super) damage: Option<Damage>,
}

/// Failures that leave no copy at all.
#[derive(Debug, thiserror::Error)]
pub(super) enum DecompressError {
    /// The `.gz` cannot be opened.
    #[error("opening {path}: {source}")]
    Open {
        /// The compressed file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The scratch file cannot be created or written (e.g. the disk is full).
    #[error("scratch copy of {path} in {scratch}: {source}")]
    Scratch {
        /// The compressed file.
        path: PathBuf,
        /// The scratch directory.
        scratch: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Stream-decompress `gz` into an unlinked file in `scratch` (created if missing), at most
/// `max_bytes` of it. A corrupt stream keeps what was decoded before the error and says so.
pub(super) fn decompress(gz: &Path, scratch: &Path, max_bytes: u64) -> Result<Decompressed, DecompressError> {
    let input = File::open(gz).map_err(|source| DecompressError::Open { path: gz.to_path_buf(), source })?;
    let scratch_error =
        |source| DecompressError::Scratch { path: gz.to_path_buf(), scratch: scratch.to_path_buf(), source };
    fs::create_dir_all(scratch).map_err(scratch_error)?;
    let mut output = unlinked_file(scratch).map_err(scratch_error)?;
    let mut decoder = MultiGzDecoder::new(BufReader::new(input)).take(max_bytes);
    let mut buf = vec![0u8; 64 * 1024];
    let mut damage = None;
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                damage = Some(Damage::Corrupt(e.to_string()));
                break;
            }
        };
        output.write_all(&buf[..n]).map_err(scratch_error)?;
    }
    if damage.is_none() && decoder.limit() == 0 {
        // The bound was reached: anything left means the content is larger.
        let mut probe = [0u8; 1];
        if decoder.into_inner().read(&mut probe).map_or(true, |n| n > 0) {
            damage = Some(Damage::TooLarge);
        }
    }
    let meta = output.metadata().map_err(scratch_error)?;
    Ok(Decompressed { file: output, meta, damage })
}

/// Name prefix of scratch files (only ever seen after a crash between create and unlink).
const SCRATCH_PREFIX: &str = "decompressed-";

/// A new file in `dir`, already unlinked: its space is freed when it is closed, whatever
/// way the process ends.
fn unlinked_file(dir: &Path) -> io::Result<File> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{SCRATCH_PREFIX}{}-{n}", std::process::id()));
        match File::options().read(true).write(true).create_new(true).open(&path) {
            Ok(file) => {
                fs::remove_file(&path)?;
                return Ok(file);
            }
            // Left by an earlier process with the same pid: try the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

/// Remove scratch files a crash left behind (between creating and unlinking one).
pub(super) fn clear_scratch(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(SCRATCH_PREFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FileId, Head};
    use flate2::Compression;
    use flate2::write::GzEncoder;

    fn gzip(path: &Path, content: &[u8]) {
        let mut encoder = GzEncoder::new(File::create(path).expect("create gz"), Compression::fast());
        encoder.write_all(content).expect("gzip");
        encoder.finish().expect("finish gz");
    }

    /// The whole copy (positioned reads, as the tailer does: the write cursor is at its end).
    fn read_all(file: &File) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let len = usize::try_from(file.metadata().expect("stat copy").len()).expect("small copy");
        let mut out = vec![0; len];
        file.read_exact_at(&mut out, 0).expect("read copy");
        out
    }

    #[test]
    fn family_follows_a_symlink_even_when_it_dangles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pods = dir.path().join("pod/app");
        fs::create_dir_all(&pods).expect("dirs");
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(pods.join("0.log"), &link).expect("symlink");
        let expected = Family { dir: pods.clone(), base: "0.log".into() };
        assert_eq!(family(&link), Some(expected.clone()));
        fs::write(pods.join("0.log"), b"x\n").expect("write");
        assert_eq!(family(&link), Some(expected));
        assert_eq!(family(&pods.join("1.log")), Some(Family { dir: pods.clone(), base: "1.log".into() }));
    }

    #[test]
    fn siblings_are_ordered_by_timestamp_and_exclude_other_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            "0.log",
            "0.log.20261125-100300",
            "0.log.20261125-100100.gz",
            "0.log.20261125-100200.gz",
            "0.log.20261125-100200",
            "0.log.20261125-100400.gz.tmp",
            "1.log",
            "1.log.20261125-100000.gz",
            "10.log.20261125-100000",
        ] {
            fs::write(dir.path().join(name), b"x\n").expect("write");
        }
        let family = Family { dir: dir.path().to_path_buf(), base: "0.log".into() };
        let listed: Vec<_> = siblings(&family)
            .into_iter()
            .map(|s| (s.path.file_name().map(|n| n.to_string_lossy().into_owned()), s.order, s.compressed))
            .collect();
        assert_eq!(
            listed,
            [
                (Some("0.log.20261125-100100.gz".into()), "20261125-100100".to_owned(), true),
                // The plain twin wins over its `.gz`.
                (Some("0.log.20261125-100200".into()), "20261125-100200".to_owned(), false),
                (Some("0.log.20261125-100300".into()), "20261125-100300".to_owned(), false),
            ]
        );
    }

    /// A Docker-runtime node (cri-dockerd): two symlinks to the json-file, whose rotations
    /// are numbered newest first. Restore finds them at the end of the chain, oldest first.
    #[test]
    fn docker_rotations_are_found_through_both_links_and_ordered_by_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = "f00d";
        let docker = dir.path().join("docker/containers").join(id);
        let pods = dir.path().join("pods/shop_web-0_uid/app");
        fs::create_dir_all(&docker).expect("dirs");
        fs::create_dir_all(&pods).expect("dirs");
        let json = docker.join(format!("{id}-json.log"));
        std::os::unix::fs::symlink(&json, pods.join("0.log")).expect("symlink");
        let link = dir.path().join("web-0_shop_app-f00d.log");
        std::os::unix::fs::symlink(pods.join("0.log"), &link).expect("symlink");
        for suffix in ["", ".1", ".2", ".3.gz", ".10"] {
            fs::write(docker.join(format!("{id}-json.log{suffix}")), b"x\n").expect("write");
        }

        let family = family(&link).expect("family");
        assert_eq!(family, Family { dir: docker.clone(), base: format!("{id}-json.log").into() });
        let orders: Vec<(String, bool)> =
            siblings(&family).into_iter().map(|s| (s.order, s.compressed)).collect();
        let want = [("10", false), ("3", true), ("2", false), ("1", false)];
        assert_eq!(orders, want.map(|(o, c)| (o.to_owned(), c)));
    }

    #[test]
    fn a_gz_matches_by_its_decompressed_head() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gz = dir.path().join("0.log.1.gz");
        gzip(&gz, b"first line\nsecond line\n");
        let checkpoint = |vouched: &[u8], seen: Option<&[u8]>| Checkpoint {
            path: PathBuf::from("link.log"),
            id: FileId { dev: 0, ino: 0, fingerprint: fingerprint(vouched) },
            offset: vouched.len() as u64,
            head: seen.map(|seen| Head { len: seen.len() as u32, fingerprint: fingerprint(seen) }),
        };
        assert!(gz_matches(&gz, &checkpoint(b"first line\n", None)));
        assert!(gz_matches(&gz, &checkpoint(b"first line\n", Some(b"first line\nsec"))));
        assert!(!gz_matches(&gz, &checkpoint(b"other line\n", None)));
        assert!(!gz_matches(&gz, &checkpoint(b"first line\n", Some(b"first line\nthi"))));
        // Longer than the content: not it.
        assert!(!gz_matches(&gz, &checkpoint(&[b'x'; 64], None)));
        // Nothing vouched for: the head seen identifies it, or nothing does.
        assert!(gz_matches(&gz, &checkpoint(b"", Some(b"first"))));
        assert!(!gz_matches(&gz, &checkpoint(b"", Some(b"other"))));
        assert!(!gz_matches(&gz, &checkpoint(b"", None)));
        fs::write(&gz, b"not gzip at all").expect("write");
        assert!(!gz_matches(&gz, &checkpoint(b"first line\n", None)));
    }

    #[test]
    fn decompress_streams_into_an_unlinked_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let scratch = dir.path().join("scratch");
        let gz = dir.path().join("0.log.1.gz");
        let content: Vec<u8> = (0..20_000).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        gzip(&gz, &content);
        let copy = decompress(&gz, &scratch, u64::MAX).expect("decompress");
        assert_eq!(copy.damage, None);
        assert_eq!(copy.meta.len(), content.len() as u64);
        assert!(read_all(&copy.file) == content, "the copy holds the content");
        assert_eq!(fs::read_dir(&scratch).expect("scratch").count(), 0, "the copy is unlinked");
    }

    #[test]
    fn clear_scratch_removes_only_leftover_copies() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(format!("{SCRATCH_PREFIX}1-0")), b"left by a crash").expect("write");
        fs::write(dir.path().join("other"), b"not ours").expect("write");
        clear_scratch(dir.path());
        let left: Vec<_> =
            fs::read_dir(dir.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(left, ["other"]);
    }

    #[test]
    fn decompress_stops_at_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gz = dir.path().join("0.log.1.gz");
        gzip(&gz, b"0123456789\n");
        let copy = decompress(&gz, dir.path(), 4).expect("decompress");
        assert_eq!(copy.damage, Some(Damage::TooLarge));
        assert_eq!(read_all(&copy.file), b"0123");
        let exact = decompress(&gz, dir.path(), 11).expect("decompress");
        assert_eq!(exact.damage, None);
        assert_eq!(exact.meta.len(), 11);
    }

    #[test]
    fn decompress_reports_corruption_and_keeps_the_good_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gz = dir.path().join("0.log.1.gz");
        let content: Vec<u8> = (0..5_000).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        gzip(&gz, &content);
        let mut bytes = fs::read(&gz).expect("read gz");
        // Cut the stream in half: the tail and the CRC trailer are missing.
        bytes.truncate(bytes.len() / 2);
        fs::write(&gz, &bytes).expect("write");
        let copy = decompress(&gz, dir.path(), u64::MAX).expect("decompress");
        assert!(matches!(copy.damage, Some(Damage::Corrupt(_))), "{:?}", copy.damage);
        let got = read_all(&copy.file);
        assert!(got.len() < content.len());
        assert!(got == content[..got.len()], "the copy is a prefix of the content");

        fs::write(&gz, b"\x1f\x8b garbage").expect("write");
        let copy = decompress(&gz, dir.path(), u64::MAX).expect("decompress");
        assert!(matches!(copy.damage, Some(Damage::Corrupt(_))), "{:?}", copy.damage);
        assert_eq!(copy.meta.len(), 0);
    }

    #[test]
    fn decompress_reports_a_missing_file_and_an_unusable_scratch_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = decompress(&dir.path().join("gone.gz"), dir.path(), 1);
        assert!(matches!(missing, Err(DecompressError::Open { .. })), "{missing:?}");
        let gz = dir.path().join("0.log.1.gz");
        gzip(&gz, b"x\n");
        let not_a_dir = dir.path().join("file");
        fs::write(&not_a_dir, b"").expect("write");
        let scratch = decompress(&gz, &not_a_dir, 1);
        assert!(matches!(scratch, Err(DecompressError::Scratch { .. })), "{scratch:?}");
    }
}
