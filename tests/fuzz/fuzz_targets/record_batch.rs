//! RecordBatch v2 validation, both the produce side (`validate_batch`) and the replicated side
//! (`validate_stored_batch`), on the bytes as given and with the length and CRC-32C fields
//! fixed up (random bytes almost never carry a right checksum, and the checks behind it are the
//! interesting ones).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_engine::batch::{
    split_record_set, validate_batch, validate_stored_batch, Compression, RecordEntries,
    BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES,
};

/// Offset of the CRC field and of the first byte it covers in a RecordBatch v2.
const CRC_AT: usize = 17;
const CRC_COVERED_FROM: usize = 21;

fn check(bytes: &[u8]) {
    let produced = validate_batch(bytes);
    let stored = validate_stored_batch(bytes);
    if let Ok(header) = &produced {
        // The replicated check is the produce check minus the "no record removed" rule.
        assert_eq!(
            stored.as_ref().ok(),
            Some(header),
            "a valid batch is a valid stored batch"
        );
        assert_eq!(header.total_bytes(), bytes.len());
        assert!(header.record_count > 0);
        assert_eq!(
            header.next_offset(),
            header.base_offset + i64::from(header.record_count)
        );
    }
    if let Ok(header) = &stored {
        assert_eq!(header.total_bytes(), bytes.len());
        if header.compression() == Compression::None {
            // What validation accepted, the readers (compaction, the group loader) can walk.
            let mut count = 0i64;
            let mut last_delta = -1i64;
            for entry in RecordEntries::new(bytes) {
                let entry = entry.expect("records of a validated batch are well formed");
                assert!(
                    i64::from(entry.offset_delta) > last_delta,
                    "deltas increase"
                );
                assert!(entry.offset_delta <= header.last_offset_delta);
                last_delta = i64::from(entry.offset_delta);
                count += 1;
            }
            assert_eq!(count, i64::from(header.record_count));
        }
    }
    if let Ok(ranges) = split_record_set(bytes) {
        let mut at = 0;
        for range in ranges {
            assert_eq!(range.start, at, "batches are contiguous");
            at = range.end;
        }
        assert_eq!(at, bytes.len(), "batches cover the record set");
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= BATCH_HEADER_BYTES {
        let mut fixed = data.to_vec();
        let batch_length = i32::try_from(fixed.len() - LOG_OVERHEAD_BYTES).unwrap_or(i32::MAX);
        fixed[8..12].copy_from_slice(&batch_length.to_be_bytes());
        fixed[16] = 2; // magic v2
        let crc = crc32c::crc32c(&fixed[CRC_COVERED_FROM..]);
        fixed[CRC_AT..CRC_COVERED_FROM].copy_from_slice(&crc.to_be_bytes());
        check(&fixed);
    }
});
