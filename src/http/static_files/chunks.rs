//! The rest of a large file, a chunk at a time, read in place when the page cache holds it.
//!
//! Reading through `tokio::fs` hands every chunk to the blocking pool and back (two thread
//! switches, and a copy through tokio's own buffer): for a 256 MiB download, 4096 hand-offs.
//! Here each chunk is first read with `preadv2(RWF_NOWAIT)`, which copies from the page cache
//! and never waits for the disk; only what the cache lacks is read in the blocking pool, so a
//! cold file still never stalls the connection's thread.

use std::fs::File;
use std::future::Future;
use std::io::{self, ErrorKind, IoSliceMut};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::Stream;
use rustix::io::{Errno, ReadWriteFlags, preadv2};
use tokio::task::JoinHandle;

/// How much is read at a time: large enough that a bulk download costs few reads, small
/// enough that a slow client's stream holds little.
pub(super) const CHUNK: usize = 256 * 1024;

pub(super) struct FileChunks {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
    /// A chunk being read in the blocking pool (the cache did not hold it).
    reading: Option<JoinHandle<io::Result<Vec<u8>>>>,
    /// The file system refuses RWF_NOWAIT: every chunk goes through the blocking pool.
    no_nowait: bool,
}

impl FileChunks {
    /// `remaining` bytes of `file` from `offset`.
    pub(super) fn new(file: File, offset: u64, remaining: u64) -> Self {
        FileChunks {
            file: Arc::new(file),
            offset,
            remaining,
            reading: None,
            no_nowait: false,
        }
    }

    fn next_len(&self) -> usize {
        self.remaining.min(CHUNK as u64) as usize
    }

    /// What the page cache holds of the next chunk, without waiting for the disk; `None`
    /// when it holds none of it.
    fn read_cached(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.no_nowait {
            return Ok(None);
        }
        let mut buf = vec![0u8; self.next_len()];
        let read = preadv2(
            &*self.file,
            &mut [IoSliceMut::new(&mut buf)],
            self.offset,
            ReadWriteFlags::NOWAIT,
        );
        match read {
            Ok(0) => Err(shrunk()),
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(Errno::AGAIN) => Ok(None),
            Err(Errno::OPNOTSUPP | Errno::INVAL | Errno::NOSYS) => {
                self.no_nowait = true;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the next chunk in the blocking pool.
    fn read_blocking(&self) -> JoinHandle<io::Result<Vec<u8>>> {
        let (file, offset, len) = (self.file.clone(), self.offset, self.next_len());
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            let n = file.read_at(&mut buf, offset)?;
            if n == 0 {
                return Err(shrunk());
            }
            buf.truncate(n);
            Ok(buf)
        })
    }

    /// Moves past a chunk read; after an error the stream ends.
    fn finish(&mut self, read: io::Result<Vec<u8>>) -> io::Result<Bytes> {
        match read {
            Ok(chunk) => {
                self.offset += chunk.len() as u64;
                self.remaining -= chunk.len() as u64;
                Ok(Bytes::from(chunk))
            }
            Err(e) => {
                self.remaining = 0;
                Err(e)
            }
        }
    }
}

/// The file ended before the length its response announced.
fn shrunk() -> io::Error {
    io::Error::new(
        ErrorKind::UnexpectedEof,
        "the file became shorter while it was being sent",
    )
}

impl Stream for FileChunks {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(reading) = &mut self.reading {
            let done = ready!(Pin::new(reading).poll(cx)).map_err(io::Error::other);
            self.reading = None;
            return Poll::Ready(Some(self.finish(done.and_then(|r| r))));
        }
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.read_cached() {
            Ok(None) => {
                self.reading = Some(self.read_blocking());
                self.poll_next(cx)
            }
            read => Poll::Ready(Some(self.finish(read.map(Option::unwrap_or_default)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn file_with(content: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut tmp, content).unwrap();
        let file = File::open(tmp.path()).unwrap();
        (tmp, file)
    }

    #[tokio::test]
    async fn the_requested_range_comes_whole_in_order_in_bounded_chunks() {
        let content: Vec<u8> = (0..(CHUNK * 3 + 12_345)).map(|i| (i % 251) as u8).collect();
        let (_tmp, file) = file_with(&content);
        let chunks: Vec<Bytes> = FileChunks::new(file, 1000, (content.len() - 1000) as u64)
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert!(chunks.iter().all(|c| c.len() <= CHUNK));
        assert_eq!(chunks.concat(), &content[1000..]);
    }

    #[tokio::test]
    async fn a_file_that_shrinks_while_sent_is_an_error_not_a_short_body() {
        let (tmp, file) = file_with(&vec![7u8; CHUNK * 2]);
        let mut chunks = FileChunks::new(file, 0, (CHUNK * 2) as u64);
        assert_eq!(chunks.next().await.unwrap().unwrap().len(), CHUNK);
        std::fs::OpenOptions::new()
            .write(true)
            .open(tmp.path())
            .unwrap()
            .set_len(CHUNK as u64)
            .unwrap();
        let err = chunks.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
        assert!(chunks.next().await.is_none());
    }
}
