//! One file's writes since its last fsync, held in memory instead of in the backing file.
//!
//! The backing file holds exactly what a disk would still hold after a power loss (the state at
//! the last fsync); the overlay holds what only the page cache would hold. Reads see backing plus
//! overlay; fsync applies the overlay to the backing file; a power loss discards it.
//!
//! Invariants (checked by `check_invariants` in tests):
//! - extents do not overlap and none is empty;
//! - no extent reaches past `size_bytes`;
//! - `cut_to_bytes`, when set, is at most `size_bytes` (a truncation lowers both; extensions
//!   only raise the size).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The unsynced state of one file.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Written, unsynced bytes by file offset.
    extents: BTreeMap<u64, Vec<u8>>,
    /// The total length of `extents` (kept, not summed: the filesystem caps it on every write).
    extent_bytes: u64,
    /// The file's current logical size (what `stat` shows).
    size_bytes: u64,
    /// The smallest size the file was truncated to since the last sync: backing bytes at or
    /// beyond it are no longer part of the file (they read as zeros unless rewritten).
    cut_to_bytes: Option<u64>,
}

impl Overlay {
    /// A clean overlay over a backing file of `backing_len_bytes`.
    pub fn new(backing_len_bytes: u64) -> Overlay {
        Overlay {
            extents: BTreeMap::new(),
            extent_bytes: 0,
            size_bytes: backing_len_bytes,
            cut_to_bytes: None,
        }
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Whether anything would be lost on a power loss now.
    pub fn is_dirty(&self) -> bool {
        !self.extents.is_empty() || self.cut_to_bytes.is_some()
    }

    /// Bytes written since the last sync (what a power loss now would drop).
    pub fn unsynced_bytes(&self) -> u64 {
        self.extent_bytes
    }

    /// Records a write of `data` at `offset`.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        self.remove_range(offset, end);
        self.extents.insert(offset, data.to_vec());
        self.extent_bytes += data.len() as u64;
        self.size_bytes = self.size_bytes.max(end);
    }

    /// Records a truncation (or extension) to `new_size_bytes`.
    pub fn set_len(&mut self, new_size_bytes: u64) {
        if new_size_bytes < self.size_bytes {
            self.remove_range(new_size_bytes, u64::MAX);
            let cut = self
                .cut_to_bytes
                .map_or(new_size_bytes, |cut| cut.min(new_size_bytes));
            self.cut_to_bytes = Some(cut);
        }
        self.size_bytes = new_size_bytes;
    }

    /// Reads up to `len` bytes at `offset` as the file looks now: `read_backing(offset, buf)`
    /// fills `buf` from the backing file and returns how many bytes it read (short at its end).
    pub fn read(
        &self,
        offset: u64,
        len: usize,
        mut read_backing: impl FnMut(u64, &mut [u8]) -> io::Result<usize>,
    ) -> io::Result<Vec<u8>> {
        if offset >= self.size_bytes {
            return Ok(Vec::new());
        }
        let end = self.size_bytes.min(offset.saturating_add(len as u64));
        let mut out = vec![0u8; (end - offset) as usize];
        // Backing bytes count only below the lowest truncation since the last sync.
        let backing_end = self.cut_to_bytes.map_or(end, |cut| cut.min(end));
        if backing_end > offset {
            let want = (backing_end - offset) as usize;
            let mut filled = 0;
            while filled < want {
                let read = read_backing(offset + filled as u64, &mut out[filled..want])?;
                if read == 0 {
                    break; // past the backing file's end: the rest stays zero
                }
                filled += read;
            }
        }
        for (&start, data) in self.extents.range(..end) {
            let extent_end = start + data.len() as u64;
            if extent_end <= offset {
                continue;
            }
            let from = start.max(offset);
            let to = extent_end.min(end);
            out[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&data[(from - start) as usize..(to - start) as usize]);
        }
        Ok(out)
    }

    /// Makes everything durable: writes the overlay into `backing` and leaves it clean. The
    /// backing file is not fsynced itself: the simulated disk is the backing directory, and the
    /// real machine does not lose power.
    pub fn apply(&mut self, backing: &File) -> io::Result<()> {
        if let Some(cut) = self.cut_to_bytes {
            backing.set_len(cut)?;
        }
        for (&start, data) in &self.extents {
            backing.write_all_at(data, start)?;
        }
        backing.set_len(self.size_bytes)?;
        self.extents.clear();
        self.extent_bytes = 0;
        self.cut_to_bytes = None;
        Ok(())
    }

    /// Drops the part of every extent inside `[start, end)`.
    fn remove_range(&mut self, start: u64, end: u64) {
        let overlapping: Vec<u64> = self
            .extents
            .range(..end)
            .filter(|(&offset, data)| offset + data.len() as u64 > start)
            .map(|(&offset, _)| offset)
            .collect();
        for offset in overlapping {
            let data = self
                .extents
                .remove(&offset)
                .expect("offset was just listed from the map");
            let data_end = offset + data.len() as u64;
            self.extent_bytes -= data.len() as u64;
            if offset < start {
                self.extent_bytes += start - offset;
                self.extents
                    .insert(offset, data[..(start - offset) as usize].to_vec());
            }
            if data_end > end {
                self.extent_bytes += data_end - end;
                self.extents
                    .insert(end, data[(end - offset) as usize..].to_vec());
            }
        }
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        let mut previous_end = 0;
        for (&offset, data) in &self.extents {
            assert!(!data.is_empty(), "empty extent at {offset}");
            assert!(offset >= previous_end, "extent at {offset} overlaps");
            previous_end = offset + data.len() as u64;
        }
        assert!(previous_end <= self.size_bytes, "extent past the size");
        let total: u64 = self.extents.values().map(|data| data.len() as u64).sum();
        assert_eq!(total, self.extent_bytes, "extent_bytes out of step");
        if let Some(cut) = self.cut_to_bytes {
            assert!(cut <= self.size_bytes, "cut {cut} above the size");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator (no dependency needed for a test's random ops).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, below: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % below
        }
    }

    fn read_all(overlay: &Overlay, backing: &[u8]) -> Vec<u8> {
        overlay
            .read(0, usize::MAX / 2, |offset, buf| {
                let offset = offset as usize;
                if offset >= backing.len() {
                    return Ok(0);
                }
                let n = buf.len().min(backing.len() - offset);
                buf[..n].copy_from_slice(&backing[offset..offset + n]);
                Ok(n)
            })
            .expect("reading from memory cannot fail")
    }

    fn model_write(model: &mut Vec<u8>, offset: usize, data: &[u8]) {
        if model.len() < offset + data.len() {
            model.resize(offset + data.len(), 0);
        }
        model[offset..offset + data.len()].copy_from_slice(data);
    }

    /// Random writes, truncations and syncs against a plain `Vec` model of the file: reads always
    /// match the model, a sync makes the backing file equal to it, and a power loss (dropping the
    /// overlay) returns the file to its state at the last sync.
    #[test]
    fn reads_and_syncs_match_a_plain_file_model() {
        for seed in 0..200 {
            let mut rng = Lcg(seed);
            let mut backing: Vec<u8> = (0..rng.next(64)).map(|i| i as u8).collect();
            let mut model = backing.clone();
            let mut overlay = Overlay::new(backing.len() as u64);
            for _ in 0..60 {
                match rng.next(10) {
                    0..=5 => {
                        let offset = rng.next(96) as usize;
                        let len = 1 + rng.next(24) as usize;
                        let data: Vec<u8> = (0..len).map(|_| rng.next(256) as u8).collect();
                        overlay.write(offset as u64, &data);
                        model_write(&mut model, offset, &data);
                    }
                    6 | 7 => {
                        let len = rng.next(100) as usize;
                        overlay.set_len(len as u64);
                        model.resize(len, 0);
                    }
                    8 => {
                        // fsync: the overlay goes into the backing "file".
                        let file = tempfile::tempfile().expect("temp file");
                        file.write_all_at(&backing, 0).expect("seed temp file");
                        overlay.apply(&file).expect("apply");
                        let mut synced = vec![0u8; file.metadata().expect("stat").len() as usize];
                        file.read_exact_at(&mut synced, 0).expect("read back");
                        backing = synced;
                        assert_eq!(backing, model, "seed {seed}: synced file");
                        assert!(!overlay.is_dirty());
                    }
                    _ => {
                        // Power loss: what remains is the last synced state.
                        let lost = Overlay::new(backing.len() as u64);
                        assert_eq!(read_all(&lost, &backing), backing);
                    }
                }
                overlay.check_invariants();
                assert_eq!(
                    overlay.size_bytes(),
                    model.len() as u64,
                    "seed {seed}: size"
                );
                assert_eq!(read_all(&overlay, &backing), model, "seed {seed}: contents");
            }
        }
    }

    #[test]
    fn truncate_then_extend_hides_old_backing_bytes() {
        let backing = b"abcdefgh".to_vec();
        let mut overlay = Overlay::new(8);
        overlay.set_len(2);
        overlay.set_len(6);
        assert_eq!(read_all(&overlay, &backing), b"ab\0\0\0\0");
        overlay.write(4, b"XY");
        assert_eq!(read_all(&overlay, &backing), b"ab\0\0XY");
        assert_eq!(overlay.unsynced_bytes(), 2);
    }

    #[test]
    fn partial_reads_merge_backing_and_overlay() {
        let backing = b"0123456789".to_vec();
        let mut overlay = Overlay::new(10);
        overlay.write(3, b"abc");
        overlay.write(12, b"zz");
        let read = |offset, len| {
            overlay
                .read(offset, len, |at, buf| {
                    let at = at as usize;
                    let n = buf.len().min(backing.len().saturating_sub(at));
                    buf[..n].copy_from_slice(&backing[at..at + n]);
                    Ok(n)
                })
                .expect("memory read")
        };
        assert_eq!(read(2, 3), b"2ab");
        assert_eq!(read(9, 5), b"9\0\0zz");
        assert_eq!(read(14, 4), b"");
    }
}
