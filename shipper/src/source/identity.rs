//! File identity: device, inode and a fingerprint of the content a checkpoint vouches for.
//!
//! While the tailer holds a file open its inode cannot be reused, so live files are matched
//! by device and inode alone. The fingerprint matters across restarts: a checkpoint at
//! `offset` carries a hash of the file's first `min(FINGERPRINT_BYTES, offset)` bytes, and is
//! resumed only if the file found at that inode still starts with those bytes. A checkpoint at
//! offset 0 has fingerprint 0 and nothing to verify (resuming at 0 re-reads everything, which
//! loses nothing). So a file shorter than `FINGERPRINT_BYTES` is still verified over the bytes
//! already read; only two files whose first `offset` bytes (< 64) are equal are confused,
//! which for CRI lines (timestamp first) means the same line written at the same nanosecond.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::{FileId, Head};

/// How many leading bytes the fingerprint covers at most.
pub const FINGERPRINT_BYTES: usize = 64;

/// Fingerprint of a file's leading bytes: 0 for none, never 0 otherwise.
///
/// FNV-1a 64: stable across builds and releases (checkpoints outlive the binary), and
/// collision resistance against adversaries is not needed here.
pub(super) fn fingerprint(head: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    if head.is_empty() {
        return 0;
    }
    let hash = head.iter().fold(OFFSET_BASIS, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME));
    hash.max(1)
}

/// How many leading bytes a checkpoint at `offset` fingerprints.
pub(super) fn covered(offset: u64) -> usize {
    usize::try_from(offset).map_or(FINGERPRINT_BYTES, |o| o.min(FINGERPRINT_BYTES))
}

/// Does `file` (already known to have `id`'s device and inode) still hold the content a
/// checkpoint `id` at `offset` was taken of?
pub(super) fn verify(file: &File, id: &FileId, offset: u64) -> io::Result<bool> {
    let len = covered(offset);
    if len == 0 {
        return Ok(true);
    }
    let mut head = [0u8; FINGERPRINT_BYTES];
    match file.read_exact_at(&mut head[..len], 0) {
        Ok(()) => Ok(fingerprint(&head[..len]) == id.fingerprint),
        // Shorter than what was checkpointed: not the same content.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Does `file` start with the bytes a checkpoint's `head` was taken of? A head longer than
/// `FINGERPRINT_BYTES` was never written by us: no match.
pub(super) fn verify_head(file: &File, head: &Head) -> io::Result<bool> {
    let Some(len) = usize::try_from(head.len).ok().filter(|len| *len <= FINGERPRINT_BYTES) else {
        return Ok(false);
    };
    let mut bytes = [0u8; FINGERPRINT_BYTES];
    match file.read_exact_at(&mut bytes[..len], 0) {
        Ok(()) => Ok(fingerprint(&bytes[..len]) == head.fingerprint),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn empty_head_is_zero_and_content_never_is() {
        assert_eq!(fingerprint(b""), 0);
        assert_ne!(fingerprint(b"a"), 0);
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
    }

    #[test]
    fn fingerprint_is_stable_across_builds() {
        // Known FNV-1a 64 test vector: checkpoints written by older binaries must still match.
        assert_eq!(fingerprint(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn verify_accepts_same_content_and_rejects_other_content() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("0.log");
        let mut file = File::create(&path)?;
        file.write_all(b"first line\nsecond line\n")?;
        let file = File::open(&path)?;
        let id = |content: &[u8]| FileId { dev: 0, ino: 0, fingerprint: fingerprint(content) };
        assert!(verify(&file, &id(b"first line\n"), 11)?);
        assert!(!verify(&file, &id(b"other line\n"), 11)?);
        // Checkpoint further than the file is long: not this content.
        assert!(!verify(&file, &id(&[b'x'; 64]), 100)?);
        // Offset 0 vouches for nothing.
        assert!(verify(&file, &id(b""), 0)?);
        // The head seen beyond what was vouched for.
        let head = |seen: &[u8]| Head { len: seen.len() as u32, fingerprint: fingerprint(seen) };
        assert!(verify_head(&file, &head(b"first line\nsec"))?);
        assert!(!verify_head(&file, &head(b"first line\nthi"))?);
        assert!(!verify_head(&file, &head(&[b'x'; 30]))?);
        assert!(!verify_head(&file, &Head { len: 65, fingerprint: 1 })?);
        Ok(())
    }
}
