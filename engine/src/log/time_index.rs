//! The sparse time index of one segment (`<base>.timeindex`): entries of (largest timestamp
//! seen so far in the segment, offset relative to the segment's base of the batch being
//! appended when the entry was made), added at offset-index points when the timestamp grew, and
//! once more when the segment is sealed so the last entry holds the segment's largest timestamp.
//!
//! Meaning of an entry (t, o): every batch up to and including the one at o has timestamps
//! <= t. A lookup for the first batch with a timestamp >= T may therefore start at the last
//! entry whose t < T.
//!
//! On disk: 12 bytes per entry, big-endian `i64` timestamp then `u32` relative offset.
//! Invariant: timestamps strictly increase, relative offsets never decrease.

const ENTRY_BYTES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp_ms: i64,
    pub relative_offset: u32,
}

#[derive(Debug, Default, Clone)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, oldest first (crash tests check each against the log).
    #[cfg(test)]
    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// Adds an entry if its timestamp is larger than the last one's; returns whether it did.
    pub fn maybe_append(&mut self, entry: TimeEntry) -> bool {
        if let Some(last) = self.entries.last() {
            if entry.timestamp_ms <= last.timestamp_ms {
                return false;
            }
            assert!(
                entry.relative_offset >= last.relative_offset,
                "time index offsets must not go back"
            );
        }
        self.entries.push(entry);
        true
    }

    /// The last entry whose timestamp is below `timestamp_ms`: a scan for the first batch at or
    /// after `timestamp_ms` can start at its offset.
    pub fn last_before(&self, timestamp_ms: i64) -> Option<TimeEntry> {
        let after = self
            .entries
            .partition_point(|entry| entry.timestamp_ms < timestamp_ms);
        after
            .checked_sub(1)
            .and_then(|at| self.entries.get(at))
            .copied()
    }

    /// Drops entries at or past `relative_offset` (the log was truncated there).
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|entry| entry.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for entry in &self.entries {
            bytes.extend(entry.timestamp_ms.to_be_bytes());
            bytes.extend(entry.relative_offset.to_be_bytes());
        }
        bytes
    }

    /// Decodes a persisted index; any inconsistency is an error (the caller rebuilds it).
    pub fn from_bytes(bytes: &[u8], next_relative_offset: u64) -> Result<Self, String> {
        if !bytes.len().is_multiple_of(ENTRY_BYTES) {
            return Err(format!(
                "{} bytes is not a whole number of entries",
                bytes.len()
            ));
        }
        let mut index = TimeIndex {
            entries: Vec::with_capacity(bytes.len() / ENTRY_BYTES),
        };
        for chunk in bytes.chunks_exact(ENTRY_BYTES) {
            let mut timestamp = [0u8; 8];
            let mut offset = [0u8; 4];
            timestamp.copy_from_slice(chunk.get(..8).unwrap_or(&[0; 8]));
            offset.copy_from_slice(chunk.get(8..).unwrap_or(&[0; 4]));
            let entry = TimeEntry {
                timestamp_ms: i64::from_be_bytes(timestamp),
                relative_offset: u32::from_be_bytes(offset),
            };
            if u64::from(entry.relative_offset) >= next_relative_offset.max(1) {
                return Err(format!(
                    "entry {entry:?} points past the segment's last offset"
                ));
            }
            if let Some(last) = index.entries.last() {
                if entry.timestamp_ms <= last.timestamp_ms
                    || entry.relative_offset < last.relative_offset
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

    #[test]
    fn keeps_only_growing_timestamps_and_finds_scan_start() {
        let mut index = TimeIndex::default();
        assert!(index.maybe_append(TimeEntry {
            timestamp_ms: 100,
            relative_offset: 0
        }));
        assert!(!index.maybe_append(TimeEntry {
            timestamp_ms: 100,
            relative_offset: 5
        }));
        assert!(index.maybe_append(TimeEntry {
            timestamp_ms: 200,
            relative_offset: 9
        }));
        assert_eq!(index.last_before(100), None);
        assert_eq!(index.last_before(150).map(|e| e.relative_offset), Some(0));
        assert_eq!(index.last_before(201).map(|e| e.relative_offset), Some(9));
        let back = TimeIndex::from_bytes(&index.to_bytes(), 10).expect("valid");
        assert_eq!(back.len(), 2);
        assert!(TimeIndex::from_bytes(&index.to_bytes(), 9).is_err());
    }
}
