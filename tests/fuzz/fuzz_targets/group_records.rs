//! The `__consumer_offsets` record decoders (keys, offset commit values, group metadata
//! values) as the group coordinator runs them when it loads a partition. Input: a u16
//! big-endian key length, the key, then the value. Decoded values must round-trip through the
//! encoder (checked in `fuzz_api`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((length, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let key_bytes = usize::from(u16::from_be_bytes(*length)).min(rest.len());
    let (key, value) = rest.split_at(key_bytes);
    let _ = strom_server::fuzz_api::group_record(key, value);
});
