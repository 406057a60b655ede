//! Recovery codes typed by people: any text gives a key or a typed error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = shard_crypto::decode_recovery_code(text) {
            assert_eq!(shard_crypto::decode_recovery_code(&shard_crypto::encode_recovery_code(&key)).ok(), Some(key));
        }
    }
});
