//! Manifests (the catalog's and snapshots' chunk lists): decoding never panics, and a decoded
//! manifest is valid and round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = shard_proto::Manifest::from_bytes(data) {
        assert!(manifest.validate().is_ok());
        assert_eq!(shard_proto::Manifest::from_bytes(&manifest.to_bytes()).expect("round-trips"), manifest);
    }
});
