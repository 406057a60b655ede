//! Catalog snapshots (what `shard recover` reads back from the peers, once opened): decoding
//! never panics or allocates beyond the input, and a snapshot that decodes round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(snapshot) = shard_store::VaultSnapshot::from_bytes(data) {
        let again = shard_store::VaultSnapshot::from_bytes(
            &snapshot.to_bytes().expect("a decoded snapshot encodes"),
        )
        .expect("round-trips");
        assert_eq!(again, snapshot);
    }
});
