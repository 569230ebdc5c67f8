//! The write-ahead log: what makes a commit durable.
//!
//! A commit appends one framed record (`u32` length, `u32` CRC-32, payload) to the
//! current segment file and `fdatasync`s it: one sequential write per correlation batch,
//! however many alerts it holds. Segments are `wal/<16 hex digits>.wal`, numbered up;
//! a checkpoint rotates to a new segment, writes what the older ones hold into sled and
//! then deletes them, oldest first, so that the segments on disk are always a
//! contiguous suffix of the log. A torn record at the end of the newest segment (a
//! crash mid-append, never acknowledged) is cut off on open; damage anywhere else is an
//! error, never silently skipped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const HEADER: usize = 8;
/// A record larger than this is damage, not data (a batch is far smaller).
const MAX_RECORD: u32 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log I/O error in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
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
    /// Shared so that a sync can run without holding the log (appends go on meanwhile).
    file: Arc<File>,
    segment: u64,
    /// Bytes in the current segment.
    bytes: u64,
    /// Reused frame buffer.
    buf: Vec<u8>,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016x}.wal"))
}

/// Segment numbers present in `dir`, ascending.
fn segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_suffix(".wal")
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

/// Reads the records of one segment. With `last`, a torn tail is cut off (and the file
/// truncated to its last whole record); otherwise it is damage.
fn read_segment(path: &Path, last: bool, out: &mut Vec<Vec<u8>>) -> Result<(), WalError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(io_err(path))?;
    let mut pos = 0usize;
    while pos < data.len() {
        let problem = if data.len() - pos < HEADER {
            Some("truncated record header")
        } else {
            let len = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4 bytes"));
            let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().expect("4 bytes"));
            if len > MAX_RECORD {
                Some("impossible record length")
            } else if data.len() - pos - HEADER < len as usize {
                Some("truncated record")
            } else {
                let payload = &data[pos + HEADER..pos + HEADER + len as usize];
                if crc32fast::hash(payload) != crc {
                    Some("checksum mismatch")
                } else {
                    out.push(payload.to_vec());
                    pos += HEADER + len as usize;
                    None
                }
            }
        };
        if let Some(message) = problem {
            if !last {
                return Err(WalError::Damaged {
                    path: path.to_path_buf(),
                    offset: pos as u64,
                    message: message.to_string(),
                });
            }
            tracing::warn!(path = %path.display(), offset = pos, reason = message,
                "cutting off a torn write-ahead log tail (a write that was never acknowledged)");
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err(path))?;
            f.set_len(pos as u64)
                .and_then(|_| f.sync_all())
                .map_err(io_err(path))?;
            break;
        }
    }
    Ok(())
}

impl Wal {
    /// Opens the log in `dir` (created when missing), returns every whole record in
    /// order, and starts a new segment for appends.
    pub fn open(dir: &Path) -> Result<(Wal, Vec<Vec<u8>>), WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let existing = segments(dir)?;
        let mut records = Vec::new();
        for (i, n) in existing.iter().enumerate() {
            read_segment(
                &segment_path(dir, *n),
                i + 1 == existing.len(),
                &mut records,
            )?;
        }
        let segment = existing.last().map_or(1, |n| n + 1);
        let wal = Wal {
            file: Arc::new(Wal::create(dir, segment)?),
            dir: dir.to_path_buf(),
            segment,
            bytes: 0,
            buf: Vec::new(),
        };
        Ok((wal, records))
    }

    fn create(dir: &Path, n: u64) -> Result<File, WalError> {
        let path = segment_path(dir, n);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        sync_dir(dir)?;
        Ok(file)
    }

    /// Appends one record and returns once it is on disk.
    #[cfg(test)]
    pub fn append(&mut self, payload: &[u8]) -> Result<(), WalError> {
        self.write(payload)?;
        self.sync()
    }

    /// Writes one record without waiting for the disk; [`Wal::sync`] or a sync of
    /// [`Wal::sync_handle`] makes it durable.
    pub fn write(&mut self, payload: &[u8]) -> Result<(), WalError> {
        let path = segment_path(&self.dir, self.segment);
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD)
            .ok_or_else(|| WalError::Io {
                path: path.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "record too large"),
            })?;
        self.buf.clear();
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf
            .extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.buf.extend_from_slice(payload);
        if let Err(e) = (&*self.file).write_all(&self.buf) {
            // A partial write may be on disk: cut it off so that the next record does
            // not follow garbage (the record was not acknowledged).
            let _ = self.file.set_len(self.bytes);
            return Err(WalError::Io { path, source: e });
        }
        self.bytes += self.buf.len() as u64;
        Ok(())
    }

    /// Waits until every record written so far is on disk.
    pub fn sync(&self) -> Result<(), WalError> {
        self.file
            .sync_data()
            .map_err(io_err(&segment_path(&self.dir, self.segment)))
    }

    /// The current segment's file, to sync without holding the log. Records in older
    /// segments were synced when the log rotated.
    pub fn sync_handle(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Bytes in the current segment.
    pub fn segment_bytes(&self) -> u64 {
        self.bytes
    }

    /// Syncs the current segment and starts a new one; returns its number: every
    /// record before it is in older, synced segments.
    pub fn rotate(&mut self) -> Result<u64, WalError> {
        self.sync()?;
        let next = self.segment + 1;
        self.file = Arc::new(Wal::create(&self.dir, next)?);
        self.segment = next;
        self.bytes = 0;
        Ok(next)
    }

    /// Deletes the segments numbered below `segment`, oldest first.
    pub fn remove_before(&self, segment: u64) -> Result<(), WalError> {
        for n in segments(&self.dir)?.into_iter().filter(|n| *n < segment) {
            let path = segment_path(&self.dir, n);
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
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
        let (wal, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
        wal.remove_before(kept).unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records, vec![b"three".to_vec()]);
    }

    #[test]
    fn a_torn_tail_of_the_newest_segment_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append(b"whole").unwrap();
        wal.append(b"torn record").unwrap();
        let path = segment_path(dir.path(), 1);
        drop(wal);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (mut wal, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records, vec![b"whole".to_vec()]);
        assert_eq!(fs::metadata(&path).unwrap().len(), (HEADER + 5) as u64);
        wal.append(b"after").unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records, vec![b"whole".to_vec(), b"after".to_vec()]);
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
        let mut data = fs::read(&path).unwrap();
        *data.last_mut().unwrap() ^= 0xff;
        fs::write(&path, data).unwrap();
        match Wal::open(dir.path()) {
            Err(WalError::Damaged { message, .. }) => assert_eq!(message, "checksum mismatch"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("damaged log accepted"),
        }
    }
}
