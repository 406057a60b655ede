//! Invite codes pasted by people: any text gives an invite or a typed error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(invite) = shard_net::pairing::Invite::decode(text) {
            let again = shard_net::pairing::Invite::decode(&invite.encode()).expect("round-trips");
            assert_eq!(again, invite);
        }
    }
});
