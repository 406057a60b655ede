//! Key records read from the catalog: parsing never panics and never accepts absurd KDF costs.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = shard_crypto::KeyRecord::from_bytes(data) {
        assert!(record.params().validate().is_ok());
        assert_eq!(record.as_bytes(), data);
    }
});
