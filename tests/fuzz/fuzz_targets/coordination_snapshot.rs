//! The embedded coordination store's snapshot decoder on arbitrary file contents. A decoded
//! snapshot must encode back to the same bytes (checked in `fuzz_api`). Mode bit 0 of the
//! first byte fixes the header's body length and CRC-32C so the node parser is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// magic (8) | format u32 | body_bytes u64 | body_crc32c u32.
const HEADER_BYTES: usize = 24;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else {
        return;
    };
    let mut file = file.to_vec();
    if mode & 1 == 1 && file.len() >= HEADER_BYTES {
        file[..8].copy_from_slice(b"STROMCS\0");
        file[8..12].copy_from_slice(&1u32.to_be_bytes());
        let body_bytes = (file.len() - HEADER_BYTES) as u64;
        file[12..20].copy_from_slice(&body_bytes.to_be_bytes());
        let crc = crc32c::crc32c(&file[HEADER_BYTES..]);
        file[20..24].copy_from_slice(&crc.to_be_bytes());
    }
    let _ = strom_server::fuzz_api::coordination_snapshot(&file);
});
