//! Protocol frames from an untrusted peer: the length check and the message decoder must never
//! panic, and anything that decodes must encode back to the same frame.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(len)) = shard_proto::frame_len(data) {
        if let Some(frame) = data.get(..len) {
            if let Ok(message) = shard_proto::decode_frame(frame) {
                let mut again = Vec::new();
                shard_proto::encode_frame(&message, &mut again).expect("a decoded message encodes");
                assert_eq!(shard_proto::decode_frame(&again).expect("re-decodes"), message);
            }
        }
    }
    let _ = shard_proto::decode_frame(data);
});
