//! Reading: find the segment (binary search over base offsets), the index entry, then the
//! batch that holds the offset; return a file range of whole batches that a caller can move to a
//! socket without copying ([`crate::io::splice_to_socket`]) or read into memory.

use std::ops::ControlFlow;

use super::scan::{scan_batches, StoredBatch};
use super::PartitionLog;
use crate::batch::{BatchHeader, Compression, RecordCursor};
use crate::error::{Error, IoContext, Result};
use crate::io::SharedFile;

/// Whole batches of one segment: `len_bytes` bytes of `file` from `position`.
#[derive(Debug, Clone)]
pub struct FileRange {
    pub file: SharedFile,
    pub position: u64,
    pub len_bytes: usize,
    /// Base offset of the first batch (at or below the offset asked for).
    pub first_offset: i64,
    /// Offset after the last batch in the range.
    pub next_offset: i64,
}

impl FileRange {
    /// Reads the range into memory (the copying path).
    pub async fn read_to_vec(&self) -> Result<Vec<u8>> {
        self.file
            .read_exact_at(self.position, self.len_bytes)
            .await
            .context(|| "read log range".into())
    }
}

/// Result of a lookup by timestamp (ListOffsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampLookup {
    pub offset: i64,
    pub timestamp_ms: i64,
}

/// What a read needs from the state, copied out so no borrow is held across I/O.
struct SegmentView {
    file: SharedFile,
    scan_from_position: u64,
    /// Readable end of the segment: written bytes, and not past the read's upper bound.
    end_position: u64,
    end_offset: i64,
}

impl PartitionLog {
    fn segment_view(&self, offset: i64, max_offset: i64) -> Option<(i64, SegmentView)> {
        let state = self.state.borrow();
        let (&base, segment) = state.segments.range(..=offset).next_back()?;
        // Compaction may leave `offset` in a gap after the segment's last batch (even further
        // from its base than a segment spans): look up no further than the segment's end.
        let scan_from_position = segment
            .offset_index
            .floor_by_offset(segment.relative(offset.min(segment.next_offset)))
            .map_or(0, |entry| u64::from(entry.position));
        let written_end = self.progress.borrow().written_offset;
        let end_offset = segment.next_offset.min(written_end).min(max_offset);
        Some((
            base,
            SegmentView {
                file: segment.file.clone(),
                scan_from_position,
                end_position: segment.written_bytes,
                end_offset,
            },
        ))
    }

    /// Returns whole batches starting with the one that holds `offset`, about `max_bytes` long
    /// (at least one batch even if it is larger, as Kafka does), never reaching `max_offset`
    /// (exclusive: e.g. the high watermark) nor unwritten data. `Ok(None)` when there is nothing
    /// at or after `offset` below the bound yet.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Option<FileRange>> {
        let (log_start, log_end) = (self.log_start_offset(), self.log_end_offset());
        if offset < log_start || offset > log_end {
            return Err(Error::OffsetOutOfRange {
                offset,
                log_start_offset: log_start,
                log_end_offset: log_end,
            });
        }
        let mut offset = offset;
        loop {
            if offset >= log_end.min(max_offset) {
                return Ok(None);
            }
            let Some((base, view)) = self.segment_view(offset, max_offset) else {
                return Ok(None);
            };
            if offset >= view.end_offset {
                // The offset lies past this segment's batches (an empty or fully-read segment):
                // continue in the next segment, if any.
                let next_base = self
                    .state
                    .borrow()
                    .segments
                    .range(base + 1..)
                    .next()
                    .map(|(&next, _)| next);
                match next_base {
                    Some(next) if next > offset => offset = next,
                    Some(_) | None => return Ok(None),
                }
                continue;
            }
            return self.read_in_segment(base, offset, max_bytes, &view).await;
        }
    }

    /// The last offset-index entry of segment `base` at or before byte `target_position` that
    /// starts a readable batch below `end_offset`: where the scan for a range's end may start,
    /// so a large range costs a few header reads instead of one per batch.
    fn index_jump(
        &self,
        base: i64,
        target_position: u64,
        view: &SegmentView,
    ) -> Option<(u64, i64)> {
        let state = self.state.borrow();
        let segment = state.segments.get(&base)?;
        let usable = |entry: super::offset_index::OffsetEntry| {
            let position = u64::from(entry.position);
            let offset = base + i64::from(entry.relative_offset);
            (position <= target_position
                && position < view.end_position
                && offset < view.end_offset)
                .then_some((position, offset))
        };
        let by_position = segment
            .offset_index
            .floor_by_position(target_position)
            .and_then(usable);
        by_position.or_else(|| {
            let last_readable = view
                .end_offset
                .checked_sub(1)
                .filter(|offset| *offset >= base)?;
            let relative = u32::try_from(last_readable - base).unwrap_or(u32::MAX);
            segment
                .offset_index
                .floor_by_offset(relative)
                .and_then(usable)
        })
    }

    async fn read_in_segment(
        &self,
        base: i64,
        offset: i64,
        max_bytes: usize,
        view: &SegmentView,
    ) -> Result<Option<FileRange>> {
        // The batch holding `offset`: a few headers past the index entry at most.
        let mut first: Option<StoredBatch> = None;
        // Only whole batches below the bound are readable: a batch holding the bound (a high
        // watermark) is not, as in Kafka.
        scan_batches(
            &view.file,
            view.scan_from_position,
            view.end_position,
            |batch| {
                if batch.header.next_offset() > view.end_offset {
                    return ControlFlow::Break(());
                }
                if batch.header.last_offset() >= offset {
                    first = Some(batch);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            },
        )
        .await?;
        let Some(first) = first else { return Ok(None) };
        // At least the first batch (KIP-74); then whole batches up to `max_bytes`.
        let target_end = first.position.saturating_add(max_bytes as u64);
        let mut range_end = first.end_position();
        let mut next_offset = first.header.next_offset();
        if range_end < target_end && range_end < view.end_position {
            // Every batch before an index entry at or below the target ends at or before it.
            if let Some((position, entry_offset)) = self.index_jump(base, target_end, view) {
                if position > range_end {
                    range_end = position;
                    next_offset = entry_offset;
                }
            }
            scan_batches(&view.file, range_end, view.end_position, |batch| {
                if batch.header.next_offset() > view.end_offset || batch.end_position() > target_end
                {
                    return ControlFlow::Break(());
                }
                range_end = batch.end_position();
                next_offset = batch.header.next_offset();
                ControlFlow::Continue(())
            })
            .await?;
        }
        let len_bytes = usize::try_from(range_end - first.position).unwrap_or(usize::MAX);
        Ok(Some(FileRange {
            file: view.file.clone(),
            position: first.position,
            len_bytes,
            first_offset: first.header.base_offset,
            next_offset,
        }))
    }

    /// The earliest offset whose timestamp is at or after `timestamp_ms` (ListOffsets by time),
    /// or `None` if every record is older. Exact to the record for uncompressed batches; for
    /// compressed batches the batch's first offset (its records are not inflated here).
    pub async fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<TimestampLookup>> {
        let log_start = self.log_start_offset();
        let candidates: Vec<(i64, SharedFile, u64, u64)> = {
            let state = self.state.borrow();
            state
                .segments
                .values()
                .filter(|segment| {
                    segment.max_timestamp_ms >= timestamp_ms && segment.next_offset > log_start
                })
                .map(|segment| {
                    let start = segment
                        .time_index
                        .last_before(timestamp_ms)
                        .and_then(|entry| {
                            segment.offset_index.floor_by_offset(entry.relative_offset)
                        })
                        .map_or(0, |entry| u64::from(entry.position));
                    (
                        segment.base_offset,
                        segment.file.clone(),
                        start,
                        segment.written_bytes,
                    )
                })
                .collect()
        };
        for (_base, file, start, end) in candidates {
            let mut found: Option<StoredBatch> = None;
            scan_batches(&file, start, end, |batch| {
                if batch.header.max_timestamp >= timestamp_ms
                    && batch.header.next_offset() > log_start
                {
                    found = Some(batch);
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .await?;
            if let Some(batch) = found {
                return Ok(Some(
                    self.record_at_or_after(&file, batch, timestamp_ms, log_start)
                        .await?,
                ));
            }
        }
        Ok(None)
    }

    async fn record_at_or_after(
        &self,
        file: &SharedFile,
        batch: StoredBatch,
        timestamp_ms: i64,
        log_start: i64,
    ) -> Result<TimestampLookup> {
        let header: BatchHeader = batch.header;
        let fallback = TimestampLookup {
            offset: header.base_offset.max(log_start),
            timestamp_ms: header.max_timestamp,
        };
        if header.compression() != Compression::None || header.is_log_append_time() {
            return Ok(fallback);
        }
        let bytes = file
            .read_exact_at(batch.position, header.total_bytes())
            .await
            .context(|| "read batch for timestamp lookup".into())?;
        for record in RecordCursor::new(&bytes) {
            let Ok(record) = record else { break };
            let record_timestamp = header.base_timestamp + record.timestamp_delta;
            let record_offset = header.base_offset + i64::from(record.offset_delta);
            if record_timestamp >= timestamp_ms && record_offset >= log_start {
                return Ok(TimestampLookup {
                    offset: record_offset,
                    timestamp_ms: record_timestamp,
                });
            }
        }
        Ok(fallback)
    }
}

impl PartitionLog {
    /// Visits the header of every written batch from the one holding `from_offset` to the log
    /// end, in order (e.g. to rebuild idempotent-producer state at startup).
    pub async fn for_each_batch_header(
        &self,
        from_offset: i64,
        mut visit: impl FnMut(&BatchHeader),
    ) -> Result<()> {
        let plan: Vec<(SharedFile, u64, u64)> = {
            let state = self.state.borrow();
            let from_offset = from_offset.max(state.log_start_offset);
            let first_base = state
                .segments
                .range(..=from_offset)
                .next_back()
                .map_or(i64::MIN, |(&base, _)| base);
            state
                .segments
                .range(first_base..)
                .map(|(_, segment)| {
                    let start = if segment.base_offset <= from_offset {
                        segment
                            .offset_index
                            .floor_by_offset(segment.relative(from_offset.min(segment.next_offset)))
                            .map_or(0, |entry| u64::from(entry.position))
                    } else {
                        0
                    };
                    (segment.file.clone(), start, segment.written_bytes)
                })
                .collect()
        };
        for (file, start, end) in plan {
            scan_batches(&file, start, end, |batch| {
                if batch.header.last_offset() >= from_offset {
                    visit(&batch.header);
                }
                ControlFlow::Continue(())
            })
            .await?;
        }
        Ok(())
    }
}
