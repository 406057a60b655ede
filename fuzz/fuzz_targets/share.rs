//! Shares from disk or a peer: parsing never panics; a parsed share re-encodes to its bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(share) = shard_proto::Share::parse(data) {
        assert_eq!(share.to_bytes(), data);
    }
    let _ = shard_proto::ShareHeader::decode(data);
});
