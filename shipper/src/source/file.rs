//! One tailed file: its open descriptor, read and safe offsets, and line-aligned reading.
//!
//! Reading uses positioned reads (`pread`) on the descriptor kept open since discovery, so
//! a renamed or deleted file stays readable. Only complete lines are handed out; the bytes
//! after the last `\n` are read again next time (at most one partial line), which keeps no
//! per-file buffer between reads.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;

use super::identity::{FINGERPRINT_BYTES, covered, fingerprint};
use super::{Checkpoint, FileId, Head, ReadChunk};

/// Where a file is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Its path resolves to it; writers append to it.
    Live,
    /// Renamed away (rotation): read to its end, then finished.
    Rotated,
    /// Gone from its path (deleted, or no longer matched): read to its end, then finished.
    Deleted,
    /// Read to its end; forgotten once its safe offset reaches its read offset.
    Finished,
}

/// A followed file.
#[derive(Debug)]
pub(super) struct TailedFile {
    /// The glob match it was discovered at.
    pub(super) path: PathBuf,
    /// Directory of the real file (watched for appends and rotation), if resolvable.
    pub(super) dir: Option<PathBuf>,
    /// Life-cycle phase.
    pub(super) phase: Phase,
    file: File,
    dev: u64,
    ino: u64,
    /// Just past the last complete line handed out.
    read_offset: u64,
    /// Everything before it is in the spool.
    safe_offset: u64,
    /// Everything before it has been looked at: no `\n` in `read_offset..scanned_to`.
    scanned_to: u64,
    /// Length last observed (stat or read).
    known_len: u64,
    /// The file's first bytes, for checkpoint fingerprints.
    head: [u8; FINGERPRINT_BYTES],
    head_len: usize,
    /// No `\n` will ever come (the file is rotated or deleted and final): the bytes after
    /// the last one are handed out as a last line rather than lost.
    pub(super) final_tail: bool,
    /// Its last link is gone (kubelet deleted it): only our descriptor keeps it on disk.
    pub(super) unlinked: bool,
}

impl TailedFile {
    /// Follow `file` (whose metadata is `meta`) from `offset`.
    pub(super) fn open(
        path: PathBuf,
        dir: Option<PathBuf>,
        file: File,
        meta: &Metadata,
        offset: u64,
    ) -> Self {
        let mut tailed = Self {
            path,
            dir,
            phase: Phase::Live,
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            read_offset: offset,
            safe_offset: offset,
            scanned_to: offset,
            known_len: meta.len(),
            head: [0; FINGERPRINT_BYTES],
            head_len: 0,
            final_tail: false,
            unlinked: false,
        };
        tailed.load_head();
        tailed
    }

    /// The same descriptor followed from 0 again (its content was replaced by truncation).
    pub(super) fn restart(self, known_len: u64) -> Self {
        let mut restarted =
            Self { read_offset: 0, safe_offset: 0, scanned_to: 0, known_len, head_len: 0, ..self };
        restarted.load_head();
        restarted
    }

    /// Read the first bytes for fingerprints (after those already held: a file's head never
    /// changes while it is followed, truncation restarts with an empty one). On failure the
    /// head stays short: checkpoints then vouch for less and a restart may re-read
    /// (duplicates, never loss).
    fn load_head(&mut self) {
        let (filled, error) = fill_head(&self.file, &mut self.head, self.head_len, covered(self.known_len));
        if let Some(error) = error {
            tracing::warn!(path = %self.path.display(), %error, "reading file head");
        }
        self.head_len = filled;
    }

    /// `(st_dev, st_ino)`.
    pub(super) fn inode(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// Offset just past the last line handed out.
    pub(super) fn read_offset(&self) -> u64 {
        self.read_offset
    }

    /// Length last observed.
    pub(super) fn known_len(&self) -> u64 {
        self.known_len
    }

    /// Bytes we have not looked at yet (which may hold complete lines), or a final file's
    /// unterminated last line not yet handed out.
    pub(super) fn has_unread(&self) -> bool {
        self.known_len > self.scanned_to || (self.final_tail && self.known_len > self.read_offset)
    }

    /// Every handed-out byte is in the spool.
    pub(super) fn is_safe(&self) -> bool {
        self.safe_offset >= self.read_offset
    }

    /// Record a length seen by `stat` on the path.
    pub(super) fn observe_len(&mut self, len: u64) {
        self.known_len = len;
        self.grow_head();
    }

    /// `fstat` the descriptor: current length and link count.
    pub(super) fn refresh(&mut self) -> io::Result<Metadata> {
        let meta = self.file.metadata()?;
        self.known_len = meta.len();
        self.grow_head();
        Ok(meta)
    }

    /// A file opened short (or empty) has grown: take in more of its head, so checkpoints
    /// can recognise it even before its lines are read.
    fn grow_head(&mut self) {
        if self.head_len < covered(self.known_len) {
            self.load_head();
        }
    }

    /// Everything before `offset` is in the spool (clamped to what was handed out; never
    /// moves back).
    pub(super) fn set_safe_offset(&mut self, offset: u64) {
        self.safe_offset = self.safe_offset.max(offset.min(self.read_offset));
    }

    /// Checkpoint at the safe offset, fingerprinted over the bytes it vouches for, plus the
    /// head seen so far (to recognise a compressed copy while it vouches for little).
    pub(super) fn checkpoint(&self) -> Checkpoint {
        let covered = covered(self.safe_offset).min(self.head_len);
        let id = FileId { dev: self.dev, ino: self.ino, fingerprint: fingerprint(&self.head[..covered]) };
        // Bytes written since the last look count too: a file checkpointed before anything
        // was read from it must still be recognisable once rotated and compressed.
        let mut head = self.head;
        let head_len = if self.head_len < FINGERPRINT_BYTES {
            fill_head(&self.file, &mut head, self.head_len, FINGERPRINT_BYTES).0
        } else {
            self.head_len
        };
        let head = (head_len > 0)
            .then(|| Head { len: head_len as u32, fingerprint: fingerprint(&head[..head_len]) });
        Checkpoint { path: self.path.clone(), id, offset: self.safe_offset, head }
    }

    /// Append complete lines to `out`: up to `limit` bytes, or one whole line if the next
    /// line alone is longer, or a prefix of [`super::LONG_LINE_PREFIX_BYTES`] of a line longer
    /// than that (`unfinished`). `None` (and `out` untouched) if no complete line is there yet.
    /// With `final_tail`, the unterminated rest of the file counts as a complete line.
    pub(super) fn read_lines(&mut self, out: &mut Vec<u8>, limit: usize) -> io::Result<Option<ReadChunk>> {
        let base = out.len();
        let start = self.read_offset;
        let mut pos = start;
        let limit = limit.max(1);
        let mut unfinished = false;
        let complete = loop {
            let round = out.len();
            out.resize(round + limit, 0);
            let n = match read_at(&self.file, &mut out[round..], pos) {
                Ok(n) => n,
                Err(e) => {
                    out.truncate(base);
                    return Err(e);
                }
            };
            out.truncate(round + n);
            pos += n as u64;
            let fresh = &out[round..];
            // First round: as many lines as fit. Later rounds continue one long line: stop
            // at its end so memory stays about one line.
            let newline =
                if round == base { memchr::memrchr(b'\n', fresh) } else { memchr::memchr(b'\n', fresh) };
            if let Some(i) = newline {
                // Only the first round searched backwards: after a later round's first
                // `\n` there may be more lines, so only its end counts as looked at.
                if round != base {
                    pos = start + (round + i + 1 - base) as u64;
                }
                break Some(round + i + 1);
            }
            if out.len() - base >= super::LONG_LINE_PREFIX_BYTES {
                // A line this long goes out in prefixes (see `LONG_LINE_PREFIX_BYTES`).
                unfinished = true;
                break Some(out.len());
            }
            if n < limit {
                // End of file inside a line: it stays unread until its `\n` arrives.
                break None;
            }
        };
        self.capture_head(start, &out[base..]);
        self.scanned_to = pos;
        self.known_len = self.known_len.max(pos);
        // A final file's last line has no `\n` and never will: it goes as it is.
        let complete = complete.or((self.final_tail && out.len() > base).then_some(out.len()));
        let Some(end_in_out) = complete else {
            out.truncate(base);
            return Ok(None);
        };
        out.truncate(end_in_out);
        let end = start + (end_in_out - base) as u64;
        self.read_offset = end;
        Ok(Some(ReadChunk { start, end, unfinished }))
    }

    /// Keep the file's first bytes from data read at `start`.
    fn capture_head(&mut self, start: u64, data: &[u8]) {
        let Ok(start) = usize::try_from(start) else {
            return;
        };
        if self.head_len >= FINGERPRINT_BYTES || start > self.head_len {
            return;
        }
        let from = self.head_len - start;
        if from >= data.len() {
            return;
        }
        let take = (FINGERPRINT_BYTES - self.head_len).min(data.len().saturating_sub(from));
        self.head[self.head_len..self.head_len + take].copy_from_slice(&data[from..from + take]);
        self.head_len += take;
    }
}

/// Read `file`'s first bytes into `head[filled..want]` (the bytes before `filled` are there
/// already); returns how many leading bytes `head` holds now, and the error that stopped
/// it short, if any (end of file is not an error).
fn fill_head(
    file: &File,
    head: &mut [u8; FINGERPRINT_BYTES],
    mut filled: usize,
    want: usize,
) -> (usize, Option<io::Error>) {
    while filled < want {
        match read_at(file, &mut head[filled..want], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) => return (filled, Some(error)),
        }
    }
    (filled, None)
}

/// Offset just past the last `\n` in the first `len` bytes of `file`, 0 if there is none:
/// where a file skipped to its end starts, so that a last line still being written is
/// read whole once it completes. Reads backwards in blocks; a file that shrank below `len`
/// meanwhile is an error (`UnexpectedEof`).
pub(super) fn last_line_end(file: &File, len: u64) -> io::Result<u64> {
    const BLOCK: u64 = 64 * 1024;
    let mut buf = vec![0u8; BLOCK.min(len) as usize];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let block = &mut buf[..(end - start) as usize];
        file.read_exact_at(block, start)?;
        if let Some(i) = memchr::memrchr(b'\n', block) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// `pread`, retried when interrupted by a signal.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}
