//! The chunk file format: a fixed header, then length-prefixed, checksummed records.
//!
//! ```text
//! header:  b"SHPCHUNK" (8 bytes) | u32 LE format version
//! record:  u32 LE msg len | u32 LE crc32(ts bytes ++ msg) | i64 LE ts ms | msg bytes
//! ```
//!
//! The writer buffers records in memory (a growable buffer per open chunk), so appending a
//! line costs no syscall; the scanner verifies every record and reports where the
//! valid prefix ends, which recovery uses to truncate or quarantine.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{Event, SpoolError};

/// Magic bytes opening every chunk file.
pub(crate) const CHUNK_MAGIC: &[u8; 8] = b"SHPCHUNK";
/// Current chunk format version.
pub(crate) const CHUNK_VERSION: u32 = 1;
/// Bytes of the file header.
pub(crate) const HEADER_LEN: u64 = 12;
/// Bytes of a record before its message.
pub(crate) const RECORD_HEADER_LEN: u64 = 16;
/// In-memory buffer of an open chunk; bigger messages are written straight through.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Largest message a record may claim; anything bigger is a corrupt length field.
const MAX_RECORD_MSG_BYTES: u32 = 1_048_576;

/// The file name of chunk `seq`.
pub(crate) fn file_name(seq: u64) -> String {
    format!("{seq:020}.chunk")
}

/// The sequence number encoded in a chunk file name, if it is one.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".chunk")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Bytes a record with a message of `msg_len` bytes takes in the file.
pub(crate) fn record_len(msg_len: usize) -> u64 {
    RECORD_HEADER_LEN + msg_len as u64
}

fn record_crc(timestamp_ms: i64, message: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&timestamp_ms.to_le_bytes());
    hasher.update(message);
    hasher.finalize()
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}

/// Appends records to a new chunk file through an in-memory buffer.
///
/// The buffer grows with what is appended and is given back after each sync: a node with
/// 1,000 quiet streams holds 1,000 open chunks, and a fixed 64 KiB buffer each would be
/// 64 MiB of memory for a few lines per stream.
#[derive(Debug)]
pub(crate) struct ChunkWriter {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
}

impl ChunkWriter {
    /// Create `path` (which must not exist) and write the header into the buffer.
    pub(crate) fn create(path: PathBuf) -> Result<Self, SpoolError> {
        let file = File::options().write(true).create_new(true).open(&path).map_err(io_error(&path))?;
        let mut buf = Vec::with_capacity(HEADER_LEN as usize);
        buf.extend_from_slice(CHUNK_MAGIC);
        buf.extend_from_slice(&CHUNK_VERSION.to_le_bytes());
        Ok(Self { path, file, buf })
    }

    /// Reopen an open chunk for more records, after a commit closed its descriptor.
    pub(crate) fn reopen(path: PathBuf) -> Result<Self, SpoolError> {
        let file = File::options().append(true).open(&path).map_err(io_error(&path))?;
        Ok(Self { path, file, buf: Vec::new() })
    }

    /// Buffer one record (a message of `WRITE_BUFFER_BYTES` or more is written through).
    pub(crate) fn append(&mut self, timestamp_ms: i64, message: &[u8]) -> Result<(), SpoolError> {
        let len = u32::try_from(message.len()).map_err(|_| SpoolError::Io {
            path: self.path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "message longer than u32"),
        })?;
        let mut head = [0u8; RECORD_HEADER_LEN as usize];
        head[..4].copy_from_slice(&len.to_le_bytes());
        head[4..8].copy_from_slice(&record_crc(timestamp_ms, message).to_le_bytes());
        head[8..].copy_from_slice(&timestamp_ms.to_le_bytes());
        self.buf.extend_from_slice(&head);
        crate::failpoint::hit_then("spool.append.torn", || {
            let _ = self.write_buffer();
        });
        if message.len() >= WRITE_BUFFER_BYTES {
            self.write_buffer()?;
            return self.file.write_all(message).map_err(io_error(&self.path));
        }
        self.buf.extend_from_slice(message);
        if self.buf.len() >= WRITE_BUFFER_BYTES {
            self.write_buffer()?;
        }
        Ok(())
    }

    /// Write the buffer to the file, keeping its capacity (the stream is busy).
    fn write_buffer(&mut self) -> Result<(), SpoolError> {
        let written = self.file.write_all(&self.buf).map_err(io_error(&self.path));
        self.buf.clear();
        written
    }

    /// Write the buffer to the file and give its memory back (no fsync).
    pub(crate) fn write_out(&mut self) -> Result<(), SpoolError> {
        self.write_buffer()?;
        self.buf = Vec::new();
        Ok(())
    }

    /// Bytes of memory the buffer holds (tests).
    #[cfg(test)]
    pub(crate) fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Write the buffer, give its memory back, then fsync the file's data.
    pub(crate) fn sync(&mut self) -> Result<(), SpoolError> {
        self.write_out()?;
        self.file.sync_data().map_err(io_error(&self.path))
    }
}

impl Drop for ChunkWriter {
    /// Like `BufWriter`: buffered records reach the file (uncommitted, so recovery truncates
    /// them; the crash tests rely on such torn tails being on disk).
    fn drop(&mut self) {
        let _ = self.write_buffer();
    }
}

/// What a scan of a chunk file found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Events of the valid prefix (empty unless collected).
    pub(crate) events: Vec<Event>,
    /// Records in the valid prefix.
    pub(crate) records: u64,
    /// Bytes of the valid prefix, header included (0 if the header is bad).
    pub(crate) valid_len: u64,
    /// Whether the scan stopped at a bad record before `limit`.
    pub(crate) damaged: bool,
}

/// Read `path` up to `limit` bytes, verifying the header and every record.
///
/// With `collect`, the events of the valid prefix are returned too. A torn or failing record
/// stops the scan: everything before it is the valid prefix.
pub(crate) fn scan(path: &Path, limit: u64, collect: bool) -> Result<Scan, SpoolError> {
    let file = File::open(path).map_err(io_error(path))?;
    let mut input = io::BufReader::with_capacity(WRITE_BUFFER_BYTES, file.take(limit));
    let mut scan = Scan::default();
    let mut header = [0u8; HEADER_LEN as usize];
    if !read_full(&mut input, &mut header).map_err(io_error(path))?
        || &header[..8] != CHUNK_MAGIC
        || header[8..] != CHUNK_VERSION.to_le_bytes()
    {
        scan.damaged = true;
        return Ok(scan);
    }
    scan.valid_len = HEADER_LEN;
    let mut message = Vec::new();
    loop {
        let mut head = [0u8; RECORD_HEADER_LEN as usize];
        match read_prefix(&mut input, &mut head).map_err(io_error(path))? {
            0 => return Ok(scan),
            n if n < head.len() => {
                scan.damaged = true;
                return Ok(scan);
            }
            _ => {}
        }
        let [l0, l1, l2, l3, c0, c1, c2, c3, t0, t1, t2, t3, t4, t5, t6, t7] = head;
        let len = u32::from_le_bytes([l0, l1, l2, l3]);
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        let timestamp_ms = i64::from_le_bytes([t0, t1, t2, t3, t4, t5, t6, t7]);
        if len > MAX_RECORD_MSG_BYTES {
            scan.damaged = true;
            return Ok(scan);
        }
        message.clear();
        message.resize(len as usize, 0);
        if !read_full(&mut input, &mut message).map_err(io_error(path))?
            || record_crc(timestamp_ms, &message) != crc
        {
            scan.damaged = true;
            return Ok(scan);
        }
        if collect {
            match String::from_utf8(std::mem::take(&mut message)) {
                Ok(message) => scan.events.push(Event { timestamp_ms, message }),
                Err(_) => {
                    scan.damaged = true;
                    return Ok(scan);
                }
            }
        }
        scan.records += 1;
        scan.valid_len += record_len(len as usize);
    }
}

/// Fill `buf` completely; `false` if the input ended first.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    Ok(read_prefix(input, buf)? == buf.len())
}

/// Read as much of `buf` as the input has; returns the count.
fn read_prefix(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
