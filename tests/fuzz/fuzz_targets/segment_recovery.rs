//! Segment recovery from arbitrary bytes: the input (after one mode byte) is written as the
//! only segment file of a log that was not shut down cleanly, and the log is opened, which
//! scans the segment and cuts it at the first torn or corrupt batch. Opening must never panic,
//! and every batch the log then serves must be a valid stored batch, with offsets that follow
//! each other. Mode bit 0 fixes up the length-consistent batches' CRC-32C first, so the fuzzer
//! gets past the checksum to the checks behind it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_engine::batch::{split_record_set, validate_stored_batch, LOG_OVERHEAD_BYTES};
use strom_engine::log::{LogConfig, PartitionLog};

const CRC_AT: usize = 17;
const CRC_COVERED_FROM: usize = 21;
const SEGMENT_FILE: &str = "00000000000000000000.log";

/// Recomputes the CRC of every batch whose declared length fits the bytes, in order.
fn fix_crcs(bytes: &mut [u8]) {
    let mut at = 0usize;
    while at + CRC_COVERED_FROM <= bytes.len() {
        let length =
            i32::from_be_bytes([bytes[at + 8], bytes[at + 9], bytes[at + 10], bytes[at + 11]]);
        let Ok(length) = usize::try_from(length) else {
            return;
        };
        let end = at + LOG_OVERHEAD_BYTES + length;
        if end > bytes.len() || end < at + CRC_COVERED_FROM {
            return;
        }
        let crc = crc32c::crc32c(&bytes[at + CRC_COVERED_FROM..end]);
        bytes[at + CRC_AT..at + CRC_COVERED_FROM].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, segment)) = data.split_first() else {
        return;
    };
    let mut segment = segment.to_vec();
    if mode & 1 == 1 {
        fix_crcs(&mut segment);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(SEGMENT_FILE), &segment).expect("write segment");
    strom_engine::io::start_runtime(64, async {
        let Ok((log, _report)) = PartitionLog::open(dir.path(), LogConfig::default()).await else {
            return;
        };
        let mut offset = log.log_start_offset();
        let mut kept_bytes = 0u64;
        while let Some(range) = log
            .read(offset, 1 << 20, i64::MAX)
            .await
            .expect("a recovered log reads back")
        {
            let bytes = range.read_to_vec().await.expect("read range");
            for batch in split_record_set(&bytes).expect("whole batches") {
                let header = validate_stored_batch(&bytes[batch.clone()])
                    .expect("recovery keeps only valid batches");
                assert!(header.base_offset >= offset, "offsets never go back");
                offset = header.next_offset();
                kept_bytes += (batch.end - batch.start) as u64;
            }
            assert_eq!(offset, range.next_offset);
        }
        assert_eq!(offset, log.log_end_offset());
        assert!(
            kept_bytes <= segment.len() as u64,
            "recovery invents nothing"
        );
    });
});
