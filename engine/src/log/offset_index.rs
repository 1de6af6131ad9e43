//! The sparse offset index of one segment (`<base>.index`): entries of (offset relative to the
//! segment's base, byte position of the batch that starts there), one per
//! `index.interval.bytes` of log. Kept in memory, persisted when a segment is sealed or the log
//! closes cleanly; a missing or inconsistent file is rebuilt from the log, never trusted.
//!
//! On disk: 8 bytes per entry, big-endian `u32` relative offset then `u32` position.
//!
//! Invariant: relative offsets and positions both strictly increase.

const ENTRY_BYTES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Default, Clone)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn size_bytes(&self) -> u64 {
        (self.entries.len() * ENTRY_BYTES) as u64
    }

    /// Every entry, oldest first (crash tests check each against the log).
    #[cfg(test)]
    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }

    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// Adds an entry; it must lie after the last one.
    pub fn append(&mut self, entry: OffsetEntry) {
        if let Some(last) = self.entries.last() {
            assert!(
                entry.relative_offset > last.relative_offset && entry.position > last.position,
                "offset index must grow: {last:?} then {entry:?}"
            );
        }
        self.entries.push(entry);
    }

    /// The last entry at or before `relative_offset`: where a scan for it may start.
    pub fn floor_by_offset(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let after = self
            .entries
            .partition_point(|entry| entry.relative_offset <= relative_offset);
        after
            .checked_sub(1)
            .and_then(|at| self.entries.get(at))
            .copied()
    }

    /// The last entry at or before byte `position`.
    pub fn floor_by_position(&self, position: u64) -> Option<OffsetEntry> {
        let after = self
            .entries
            .partition_point(|entry| u64::from(entry.position) <= position);
        after
            .checked_sub(1)
            .and_then(|at| self.entries.get(at))
            .copied()
    }

    /// Drops entries at or past byte `position` (the log was truncated there).
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self
            .entries
            .partition_point(|entry| u64::from(entry.position) < position);
        self.entries.truncate(keep);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for entry in &self.entries {
            bytes.extend(entry.relative_offset.to_be_bytes());
            bytes.extend(entry.position.to_be_bytes());
        }
        bytes
    }

    /// Decodes a persisted index, checking it against the log it indexes. Any inconsistency is
    /// an error: the caller rebuilds the index from the log.
    pub fn from_bytes(bytes: &[u8], log_size_bytes: u64) -> Result<Self, String> {
        if !bytes.len().is_multiple_of(ENTRY_BYTES) {
            return Err(format!(
                "{} bytes is not a whole number of entries",
                bytes.len()
            ));
        }
        let mut index = OffsetIndex {
            entries: Vec::with_capacity(bytes.len() / ENTRY_BYTES),
        };
        for chunk in bytes.chunks_exact(ENTRY_BYTES) {
            let mut offset = [0u8; 4];
            let mut position = [0u8; 4];
            offset.copy_from_slice(chunk.get(..4).unwrap_or(&[0; 4]));
            position.copy_from_slice(chunk.get(4..).unwrap_or(&[0; 4]));
            let entry = OffsetEntry {
                relative_offset: u32::from_be_bytes(offset),
                position: u32::from_be_bytes(position),
            };
            if u64::from(entry.position) >= log_size_bytes {
                return Err(format!(
                    "entry {entry:?} points past the log's {log_size_bytes} bytes"
                ));
            }
            if let Some(last) = index.entries.last() {
                if entry.relative_offset <= last.relative_offset || entry.position <= last.position
                {
                    return Err(format!("entries out of order: {last:?} then {entry:?}"));
                }
            }
            index.entries.push(entry);
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(pairs: &[(u32, u32)]) -> OffsetIndex {
        let mut index = OffsetIndex::default();
        for &(relative_offset, position) in pairs {
            index.append(OffsetEntry {
                relative_offset,
                position,
            });
        }
        index
    }

    #[test]
    fn floor_lookups() {
        let index = index_of(&[(0, 0), (10, 4096), (25, 8200)]);
        assert_eq!(index.floor_by_offset(0).map(|e| e.position), Some(0));
        assert_eq!(index.floor_by_offset(24).map(|e| e.position), Some(4096));
        assert_eq!(index.floor_by_offset(1000).map(|e| e.position), Some(8200));
        assert_eq!(
            index.floor_by_position(8199).map(|e| e.relative_offset),
            Some(10)
        );
        assert!(OffsetIndex::default().floor_by_offset(3).is_none());
    }

    #[test]
    fn round_trip_and_validation() {
        let index = index_of(&[(0, 0), (10, 4096)]);
        let bytes = index.to_bytes();
        let back = OffsetIndex::from_bytes(&bytes, 5000).expect("valid");
        assert_eq!(back.len(), 2);
        assert!(
            OffsetIndex::from_bytes(&bytes, 4096).is_err(),
            "entry past log end"
        );
        assert!(
            OffsetIndex::from_bytes(&bytes[..7], 5000).is_err(),
            "partial entry"
        );
        let swapped = index_of(&[(0, 0), (10, 4096)])
            .to_bytes()
            .chunks(8)
            .rev()
            .flatten()
            .copied()
            .collect::<Vec<_>>();
        assert!(
            OffsetIndex::from_bytes(&swapped, 5000).is_err(),
            "out of order"
        );
    }

    #[test]
    fn truncation_drops_entries_at_or_after_position() {
        let mut index = index_of(&[(0, 0), (10, 4096), (25, 8200)]);
        index.truncate_to_position(4096);
        assert_eq!(index.len(), 1);
    }
}
