//! The write-ahead log: what makes a commit durable.
//!
//! A batch is one framed record (`u32` length, `u32` CRC-32, `u64` segment number,
//! payload; the CRC covers the segment number and the payload) added to the current
//! segment in memory; a sync writes every record added since the last one and returns
//! once they are durable, so one sync serves many batches (group commit). Segments are
//! `wal/<16 hex digits>.wal`, numbered up; a checkpoint rotates to a new segment,
//! writes what the older ones hold into sled and then deletes them, oldest first, so
//! that the segments on disk are always a contiguous suffix of the log.
//!
//! Segment files are preallocated (written with zeros) and the newest deleted one is
//! kept as `spare.wal` and reused for the next segment: overwriting allocated blocks
//! spares the sync the file-size metadata update an append needs (measured here: 0.21
//! instead of 0.33 ms per sync under load, BENCHMARKS.md). A sync writes whole blocks
//! with `O_DIRECT | O_DSYNC` where the filesystem takes them (else `pwrite` +
//! `fdatasync`), rewriting the partly filled block the previous one ended in, with
//! zeros after the last record. A segment therefore ends at the first record whose
//! segment number is not its own (zeros, or a record of the file's previous life). A
//! torn record at the end of the newest segment (a crash mid-write, never
//! acknowledged) is cut off on open; damage anywhere else is an error, never silently
//! skipped.
//!
//! A record or a rotation that does not fit for want of space leaves the log as it
//! was ([`WalError::NotWritten`]): the caller refuses that one batch and the next one
//! may succeed. A record takes its space when it is added (the segment grows with
//! zeros past its preallocation), so a sync only overwrites allocated blocks. A failed
//! sync leaves the log in an unknown state ([`WalError::Io`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const HEADER: usize = 16;
/// A record larger than this is damage, not data (a batch is far smaller).
const MAX_RECORD: u32 = 1 << 30;
/// Bytes written with zeros when a segment is created without a spare to reuse.
const PREALLOCATE: usize = 16 * 1024 * 1024;
/// What a segment grows by, with zeros, when records reach its preallocated end.
const GROW: u64 = 1 << 20;
/// The unit of a write: the filesystem block, and the alignment `O_DIRECT` asks of
/// offsets, lengths and buffers (4096 covers 512- and 4096-byte devices).
const BLOCK: usize = 4096;
const SPARE: &str = "spare.wal";

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The log is in an unknown state (a sync, or an undo, failed): nothing may be
    /// written to it until it is opened again.
    #[error("write-ahead log I/O error in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The record or the new segment was not written (typically ENOSPC) and the log is
    /// as it was before: the next write may succeed.
    #[error("write-ahead log cannot write {path}: {source}")]
    NotWritten { path: PathBuf, source: io::Error },
    #[error("write-ahead log segment {path} is damaged at byte {offset}: {message}")]
    Damaged {
        path: PathBuf,
        offset: u64,
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub struct Wal {
    dir: PathBuf,
    /// Shared with [`WalWrite`]s, which run without holding the log.
    file: Arc<File>,
    /// Whether `file` is open with `O_DIRECT | O_DSYNC` (a write is durable when it
    /// returns) or buffered (a write is followed by `fdatasync`).
    direct: bool,
    segment: u64,
    /// Bytes of records in the current segment, written out or still in `tail`:
    /// where the next one goes.
    bytes: u64,
    /// The file's preallocated length (a multiple of [`BLOCK`]): writes below it
    /// overwrite blocks the file already has, and need no new space.
    allocated: u64,
    /// Where `tail` starts in the segment: a multiple of [`BLOCK`].
    tail_start: u64,
    /// The segment's bytes from `tail_start` to `bytes`: the last, partly filled
    /// block already written (rewritten whole by the next write) and the records not
    /// yet written.
    tail: Vec<u8>,
    /// `bytes` when the last write was taken: the records up to here are written (or
    /// being written).
    taken: u64,
    /// The older segments on disk (not yet removed by a checkpoint) and the bytes of
    /// records each holds.
    older: Vec<(u64, u64)>,
}

/// One write of a segment's unwritten records, taken from the log with
/// [`Wal::take_write`] and run without it ([`WalWrite::run`]): whole blocks, at a
/// block boundary, from a block-aligned buffer, as `O_DIRECT` needs.
pub struct WalWrite {
    file: Arc<File>,
    direct: bool,
    offset: u64,
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl WalWrite {
    /// The bytes written: whole blocks, zeros after the last record.
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// Writes the records to disk and returns once they are durable.
    pub fn run(&self) -> io::Result<()> {
        self.file.write_all_at(self.data(), self.offset)?;
        if !self.direct {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// A zeroed buffer of `len` bytes aligned to [`BLOCK`]: `(storage, start)`.
fn aligned_zeros(len: usize) -> (Vec<u8>, usize) {
    let buf = vec![0u8; len + BLOCK];
    let start = (BLOCK - buf.as_ptr() as usize % BLOCK) % BLOCK;
    (buf, start)
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016x}.wal"))
}

/// Segment numbers present in `dir`, ascending (`spare.wal` is not one).
fn segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_suffix(".wal")
            .filter(|h| h.len() == 16)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn crc(segment: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&segment.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Reads the records of segment `n`. With `last`, a torn tail is cut off (the file
/// truncated to its last whole record); otherwise it is damage.
/// Returns the bytes of whole records it holds.
fn read_segment(dir: &Path, n: u64, last: bool, out: &mut Vec<Vec<u8>>) -> Result<u64, WalError> {
    let path = segment_path(dir, n);
    let mut data = Vec::new();
    File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(io_err(&path))?;
    let mut pos = 0usize;
    while data.len() - pos >= HEADER {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4 bytes"));
        let sum = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let segment = u64::from_le_bytes(data[pos + 8..pos + 16].try_into().expect("8 bytes"));
        if segment != n {
            // Zeros of the preallocation, or a record of the file's previous life.
            return Ok(pos as u64);
        }
        let problem = if len > MAX_RECORD {
            Some("impossible record length")
        } else if data.len() - pos - HEADER < len as usize {
            Some("truncated record")
        } else {
            let payload = &data[pos + HEADER..pos + HEADER + len as usize];
            if crc(segment, payload) != sum {
                Some("checksum mismatch")
            } else {
                out.push(payload.to_vec());
                pos += HEADER + len as usize;
                None
            }
        };
        if let Some(message) = problem {
            // A torn write is the last thing in the file; a bad record with whole
            // records after it is damage to acknowledged data, never cut off.
            let next = pos + HEADER + len as usize;
            if !last || (len <= MAX_RECORD && whole_record_at(&data, next, n)) {
                return Err(WalError::Damaged {
                    path,
                    offset: pos as u64,
                    message: message.to_string(),
                });
            }
            tracing::warn!(path = %path.display(), offset = pos, reason = message,
                "cutting off a torn write-ahead log tail (a write that was never acknowledged)");
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            f.set_len(pos as u64)
                .and_then(|_| f.sync_all())
                .map_err(io_err(&path))?;
            return Ok(pos as u64);
        }
    }
    Ok(pos as u64)
}

/// Whether a whole record of segment `n` (its header and a matching checksum) starts
/// at `pos`.
fn whole_record_at(data: &[u8], pos: usize, n: u64) -> bool {
    let Some(header) = data.get(pos..pos + HEADER) else {
        return false;
    };
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
    let sum = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let segment = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    segment == n
        && data
            .get(pos + HEADER..pos + HEADER + len)
            .is_some_and(|payload| crc(segment, payload) == sum)
}

impl Wal {
    /// Opens the log in `dir` (created when missing), returns every whole record in
    /// order, and starts a new segment for appends.
    pub fn open(dir: &Path) -> Result<(Wal, Vec<Vec<u8>>), WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let existing = segments(dir)?;
        let mut records = Vec::new();
        let mut older = Vec::with_capacity(existing.len());
        for (i, n) in existing.iter().enumerate() {
            let bytes = read_segment(dir, *n, i + 1 == existing.len(), &mut records)?;
            older.push((*n, bytes));
        }
        let segment = existing.last().map_or(1, |n| n + 1);
        let (file, direct, allocated) = Wal::create(dir, segment)?;
        let wal = Wal {
            file: Arc::new(file),
            direct,
            dir: dir.to_path_buf(),
            segment,
            bytes: 0,
            allocated,
            tail_start: 0,
            tail: Vec::new(),
            taken: 0,
            older,
        };
        Ok((wal, records))
    }

    /// Segment `n`'s file: the spare renamed, or a new preallocated one; whether it is
    /// open for direct writes, and its preallocated length. When the new file cannot
    /// be written it is removed again ([`WalError::NotWritten`]): a segment left
    /// behind after the current one would make a torn write at the end of the current
    /// one look like damage on the next open.
    fn create(dir: &Path, n: u64) -> Result<(File, bool, u64), WalError> {
        let path = segment_path(dir, n);
        let spare = dir.join(SPARE);
        if spare.exists() {
            fs::rename(&spare, &path).map_err(io_err(&path))?;
        } else {
            let made = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&path)
                .and_then(|mut file| {
                    file.write_all(&vec![0u8; PREALLOCATE])?;
                    file.sync_all()
                });
            if let Err(source) = made {
                let removed = match fs::remove_file(&path) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    other => other,
                };
                return match removed.and_then(|_| File::open(dir)?.sync_all()) {
                    Ok(()) => Err(WalError::NotWritten { path, source }),
                    Err(_) => Err(WalError::Io { path, source }),
                };
            }
        }
        let (file, direct) = Wal::open_for_writes(&path).map_err(io_err(&path))?;
        let allocated = file.metadata().map_err(io_err(&path))?.len() & !(BLOCK as u64 - 1);
        sync_dir(dir)?;
        Ok((file, direct, allocated))
    }

    /// Opens a segment for writes, with `O_DIRECT | O_DSYNC` where the filesystem
    /// takes them: a write to the segment's preallocated blocks then goes straight to
    /// the disk and returns durable, without the page cache's writeback that an
    /// `fdatasync` runs (on ext4 here, in an isolated loop, 197 instead of 218 µs per
    /// write-and-work cycle; under the daemon's load about the same, BENCHMARKS.md
    /// session 13). The
    /// first block is written (zeros: the new segment holds no records yet) to learn
    /// whether direct writes work; where they do not (a filesystem without
    /// `O_DIRECT`, or one that wants a larger alignment) the file is opened buffered,
    /// and each write is followed by `fdatasync`.
    fn open_for_writes(path: &Path) -> io::Result<(File, bool)> {
        use std::os::unix::fs::OpenOptionsExt;
        // libc's O_DSYNC: rustix's `OFlags::DSYNC` is O_SYNC on Linux, which would
        // make every write update the inode's times as well.
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(path)
            .and_then(|file| {
                let (buf, start) = aligned_zeros(BLOCK);
                file.write_all_at(&buf[start..start + BLOCK], 0)?;
                Ok(file)
            });
        match direct {
            Ok(file) => Ok((file, true)),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e,
                    "write-ahead log segment written through the page cache (no direct writes)");
                let file = OpenOptions::new().write(true).open(path)?;
                Ok((file, false))
            }
        }
    }

    /// Appends one record and returns once it is on disk.
    #[cfg(test)]
    pub fn append(&mut self, payload: &[u8]) -> Result<(), WalError> {
        self.write(payload)?;
        self.sync()
    }

    /// Adds one record to the log without writing it out; [`Wal::sync`], or a
    /// [`Wal::take_write`] run, makes it durable. Space for it is taken here: past the
    /// segment's preallocated end the segment grows (zeros, synced), and when it
    /// cannot (typically ENOSPC) the record is refused with the log as it was
    /// ([`WalError::NotWritten`]), so that a later write, which only overwrites
    /// allocated blocks, does not run out of space.
    pub fn write(&mut self, payload: &[u8]) -> Result<(), WalError> {
        // The path is only for errors: formatting it on every write was 6 % of the
        // correlation thread under a 1-alert-per-request load.
        let path = || segment_path(&self.dir, self.segment);
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD)
            .ok_or_else(|| WalError::Io {
                path: path(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "record too large"),
            })?;
        let end = self.bytes + (HEADER + payload.len()) as u64;
        let needed = end.next_multiple_of(BLOCK as u64);
        if needed > self.allocated {
            if let Err(source) = self.grow(needed) {
                return Err(WalError::NotWritten {
                    path: segment_path(&self.dir, self.segment),
                    source,
                });
            }
        }
        self.tail.extend_from_slice(&len.to_le_bytes());
        self.tail
            .extend_from_slice(&crc(self.segment, payload).to_le_bytes());
        self.tail.extend_from_slice(&self.segment.to_le_bytes());
        self.tail.extend_from_slice(payload);
        self.bytes = end;
        Ok(())
    }

    /// Preallocates the segment up to at least `needed` bytes (whole [`GROW`]
    /// steps). On failure the file is cut back to where it was (what is left of the
    /// zeros would be harmless: the log ends at them).
    fn grow(&mut self, needed: u64) -> io::Result<()> {
        let target = needed.next_multiple_of(GROW);
        let step = (target - self.allocated) as usize;
        let (buf, start) = aligned_zeros(step);
        let written = self
            .file
            .write_all_at(&buf[start..start + step], self.allocated)
            .and_then(|()| {
                if self.direct {
                    Ok(())
                } else {
                    self.file.sync_data()
                }
            });
        match written {
            Ok(()) => {
                self.allocated = target;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.allocated);
                Err(e)
            }
        }
    }

    /// The write that makes every record added so far durable (`None`: nothing to
    /// write). Writes run one at a time, in the order they were taken: each rewrites
    /// the partly filled block the previous one ended in.
    pub fn take_write(&mut self) -> Option<WalWrite> {
        if self.taken == self.bytes {
            return None;
        }
        self.taken = self.bytes;
        let len = self.tail.len().next_multiple_of(BLOCK);
        let (mut buf, start) = aligned_zeros(len);
        buf[start..start + self.tail.len()].copy_from_slice(&self.tail);
        let write = WalWrite {
            file: self.file.clone(),
            direct: self.direct,
            offset: self.tail_start,
            buf,
            start,
            len,
        };
        // Keep the last, partly filled block for the next write to rewrite.
        let full = self.tail.len() / BLOCK * BLOCK;
        self.tail.drain(..full);
        self.tail_start += full as u64;
        Some(write)
    }

    /// Writes out every record added so far and waits until it is on disk.
    pub fn sync(&mut self) -> Result<(), WalError> {
        match self.take_write() {
            None => Ok(()),
            Some(w) => w
                .run()
                .map_err(io_err(&segment_path(&self.dir, self.segment))),
        }
    }

    /// Bytes in the current segment.
    pub fn segment_bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes of records in every segment on disk: what a checkpoint has to write out
    /// (at most; later versions of a record replace earlier ones).
    pub fn log_bytes(&self) -> u64 {
        self.bytes + self.older.iter().map(|(_, b)| b).sum::<u64>()
    }

    /// New space the next segment takes: none when it reuses the spare.
    pub fn next_segment_bytes(&self) -> u64 {
        if self.dir.join(SPARE).exists() {
            0
        } else {
            PREALLOCATE as u64
        }
    }

    /// Syncs the current segment and starts a new one; returns its number: every
    /// record before it is in older, synced segments.
    /// A new segment that cannot be made (no space to preallocate it) is
    /// [`WalError::NotWritten`]: appends go on in the current segment.
    pub fn rotate(&mut self) -> Result<u64, WalError> {
        self.sync()?;
        let next = self.segment + 1;
        let (file, direct, allocated) = Wal::create(&self.dir, next)?;
        self.file = Arc::new(file);
        self.direct = direct;
        self.allocated = allocated;
        self.older.push((self.segment, self.bytes));
        self.segment = next;
        self.bytes = 0;
        self.tail_start = 0;
        self.tail.clear();
        self.taken = 0;
        Ok(next)
    }

    /// Deletes the segments numbered below `segment`, oldest first; the newest of
    /// them becomes the spare for the next segment, unless there is one already.
    pub fn remove_before(&mut self, segment: u64) -> Result<(), WalError> {
        let old: Vec<u64> = segments(&self.dir)?
            .into_iter()
            .filter(|n| *n < segment)
            .collect();
        let spare = self.dir.join(SPARE);
        for (i, n) in old.iter().enumerate() {
            let path = segment_path(&self.dir, *n);
            if i + 1 == old.len() && !spare.exists() {
                fs::rename(&path, &spare).map_err(io_err(&path))?;
            } else {
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        self.older.retain(|(n, _)| *n >= segment);
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, records) = Wal::open(dir.path()).unwrap();
        assert!(records.is_empty());
        wal.append(b"one").unwrap();
        wal.append(b"").unwrap();
        let kept = wal.rotate().unwrap();
        wal.append(b"three").unwrap();
        drop(wal);
        let (mut wal, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
        // What a checkpoint would write out: the records of both segments on disk.
        assert_eq!(wal.log_bytes(), (3 * HEADER + 3 + 5) as u64);
        wal.remove_before(kept).unwrap();
        assert_eq!(wal.log_bytes(), (HEADER + 5) as u64);
        drop(wal);
        let (_, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records, vec![b"three".to_vec()]);
    }

    #[test]
    fn records_past_the_preallocated_end_and_across_blocks_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        let mut expected = Vec::new();
        // Small records synced one by one (each sync rewrites the block the previous
        // one ended in), then some written together, then enough to grow the segment.
        for i in 0..300u32 {
            let r = vec![(i % 251) as u8; (i as usize * 37) % 900];
            wal.append(&r).unwrap();
            expected.push(r);
        }
        for i in 0..10u8 {
            let r = vec![i; 5000];
            wal.write(&r).unwrap();
            expected.push(r);
        }
        wal.sync().unwrap();
        for i in 0..18u8 {
            let r = vec![i; 1 << 20];
            wal.append(&r).unwrap();
            expected.push(r);
        }
        assert!(wal.allocated > PREALLOCATE as u64, "the segment grew");
        wal.write(b"not synced").unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(
            records.len(),
            expected.len(),
            "the unsynced record is not on disk"
        );
        assert!(records == expected);
    }

    #[test]
    fn a_reused_segment_file_does_not_bring_back_old_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        for i in 0..50u8 {
            wal.append(&[i; 100]).unwrap();
        }
        let kept = wal.rotate().unwrap();
        wal.remove_before(kept).unwrap();
        assert!(
            dir.path().join(SPARE).exists(),
            "the old segment is kept as the spare"
        );
        // The next segment reuses the spare and overwrites only its beginning.
        wal.rotate().unwrap();
        assert!(!dir.path().join(SPARE).exists());
        wal.append(b"new").unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(
            records,
            vec![b"new".to_vec()],
            "records of the file's previous life are not read"
        );
    }

    #[test]
    fn a_torn_tail_of_the_newest_segment_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append(b"whole").unwrap();
        wal.append(b"torn record").unwrap();
        drop(wal);
        let path = segment_path(dir.path(), 1);
        // The second record's payload only half reached the disk.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"\0\0\0\0\0", (2 * HEADER + 5 + 6) as u64)
            .unwrap();
        drop(f);
        let (mut wal, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records, vec![b"whole".to_vec()]);
        assert_eq!(fs::metadata(&path).unwrap().len(), (HEADER + 5) as u64);
        wal.append(b"after").unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records, vec![b"whole".to_vec(), b"after".to_vec()]);
    }

    #[test]
    fn damage_before_whole_records_of_the_newest_segment_is_an_error_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append(b"first").unwrap();
        wal.append(b"second").unwrap();
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let before = fs::read(&path).unwrap();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"X", (HEADER + 2) as u64).unwrap();
        drop(f);
        match Wal::open(dir.path()) {
            Err(WalError::Damaged {
                offset, message, ..
            }) => {
                assert_eq!((offset, message.as_str()), (0, "checksum mismatch"));
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("damaged log accepted"),
        }
        // Nothing was cut off: the acknowledged second record is still there.
        assert_eq!(fs::read(&path).unwrap().len(), before.len());
    }

    #[test]
    fn damage_in_an_older_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append(b"first").unwrap();
        wal.rotate().unwrap();
        wal.append(b"second").unwrap();
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"X", (HEADER + 2) as u64).unwrap();
        drop(f);
        match Wal::open(dir.path()) {
            Err(WalError::Damaged { message, .. }) => assert_eq!(message, "checksum mismatch"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("damaged log accepted"),
        }
    }
}
