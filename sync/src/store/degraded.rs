//! Reading a database whose disk refuses writes.
//!
//! After an I/O failure redb refuses every transaction, reads included,
//! until the file is reopened; and reopening a file that was not closed
//! cleanly repairs it, which writes. While the disk is full or read-only
//! that reopen fails, and a node would stop serving reads it could serve.
//! So the database is then opened over a [`CopyOnWrite`] backend: reads
//! come from the file, writes (the repair's) go to memory and never reach
//! the file. The node serves its last committed state and refuses writes;
//! once a real reopen succeeds, redb repairs the file itself.

use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;

/// Bytes per overlay block.
const BLOCK: u64 = 4096;

/// A redb backend that reads through to `inner` and keeps every write in
/// memory (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct CopyOnWrite<B> {
    inner: B,
    state: Mutex<Overlay>,
}

#[derive(Debug)]
struct Overlay {
    blocks: BTreeMap<u64, Box<[u8]>>,
    len: u64,
}

impl<B: redb::StorageBackend> CopyOnWrite<B> {
    pub(crate) fn new(inner: B) -> io::Result<Self> {
        let len = inner.len()?;
        Ok(CopyOnWrite {
            inner,
            state: Mutex::new(Overlay {
                blocks: BTreeMap::new(),
                len,
            }),
        })
    }

    /// The block at `index` as the file would now hold it.
    fn load(&self, o: &Overlay, index: u64) -> io::Result<Box<[u8]>> {
        if let Some(b) = o.blocks.get(&index) {
            return Ok(b.clone());
        }
        let mut b = vec![0u8; BLOCK as usize].into_boxed_slice();
        let start = index * BLOCK;
        let file_len = self.inner.len()?;
        let end = (start + BLOCK).min(file_len).min(o.len);
        if end > start {
            self.inner.read(start, &mut b[..(end - start) as usize])?;
        }
        Ok(b)
    }
}

impl<B: redb::StorageBackend> redb::StorageBackend for CopyOnWrite<B> {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()).len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let o = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut done = 0usize;
        while done < out.len() {
            let at = offset + done as u64;
            let (index, within) = (at / BLOCK, (at % BLOCK) as usize);
            let n = (BLOCK as usize - within).min(out.len() - done);
            match o.blocks.get(&index) {
                Some(b) => out[done..done + n].copy_from_slice(&b[within..within + n]),
                None => {
                    let b = self.load(&o, index)?;
                    out[done..done + n].copy_from_slice(&b[within..within + n]);
                }
            }
            done += n;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut o = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if len < o.len {
            let first_gone = len.div_ceil(BLOCK);
            o.blocks.split_off(&first_gone);
            if !len.is_multiple_of(BLOCK) {
                let index = len / BLOCK;
                let mut b = self.load(&o, index)?;
                b[(len % BLOCK) as usize..].fill(0);
                o.blocks.insert(index, b);
            }
        }
        o.len = len;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut o = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut done = 0usize;
        while done < data.len() {
            let at = offset + done as u64;
            let (index, within) = (at / BLOCK, (at % BLOCK) as usize);
            let n = (BLOCK as usize - within).min(data.len() - done);
            let mut b = self.load(&o, index)?;
            b[within..within + n].copy_from_slice(&data[done..done + n]);
            o.blocks.insert(index, b);
            done += n;
        }
        let end = offset + data.len() as u64;
        if end > o.len {
            o.len = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::StorageBackend;

    #[test]
    fn writes_stay_in_memory_and_reads_see_them() {
        let file = redb::backends::InMemoryBackend::new();
        file.set_len(10_000).unwrap();
        file.write(0, &[7u8; 10_000]).unwrap();
        let cow = CopyOnWrite::new(file).unwrap();
        cow.write(4090, &[1u8; 20]).unwrap();
        cow.write(12_000, &[2u8; 8]).unwrap();
        let mut out = vec![0u8; 30];
        cow.read(4080, &mut out).unwrap();
        assert_eq!(&out[..10], &[7u8; 10]);
        assert_eq!(&out[10..30], &[1u8; 20]);
        assert_eq!(cow.len().unwrap(), 12_008);
        let mut gap = [9u8; 4];
        cow.read(10_500, &mut gap).unwrap();
        assert_eq!(gap, [0; 4], "past the file's end reads zeroes");
        cow.set_len(4095).unwrap();
        assert_eq!(cow.len().unwrap(), 4095);
        // The underlying file never changed.
        let mut under = vec![0u8; 30];
        cow.inner.read(4080, &mut under).unwrap();
        assert_eq!(under, vec![7u8; 30]);
        assert_eq!(cow.inner.len().unwrap(), 10_000);
    }
}
