//! The control API proves who it is before the CLI sends it anything secret.
//!
//! The CLI finds the node by `<home>/api.addr`. After a crash that file is stale, and any
//! program of any user can listen on the port it names: the CLI would hand it the API token,
//! a passphrase or a recovery code. So the CLI first sends a fresh random nonce (nothing
//! secret) to `GET /v1/proof?nonce=HEX`, and the server answers HMAC-SHA256 over it and the
//! address it listens on, under a key derived from the token: only a program that can read
//! the token (the node, run by the home's owner) can answer, and only for its own address (a
//! squatter cannot pass the question on to the real node on another port and relay its
//! answer). The CLI compares in constant time and stops on a wrong answer.

use std::net::SocketAddr;

use sha2::{Digest, Sha256};
use shard_crypto::SecretKey;

/// Bytes of a nonce.
pub const NONCE_LEN: usize = 32;

const CONTEXT: &[u8] = b"shard api proof v2\0";

/// The answer to `nonce` of a server that holds `token` and listens at `addr`.
pub fn answer(token: &str, nonce: &[u8; NONCE_LEN], addr: SocketAddr) -> [u8; 32] {
    let key = SecretKey::from_bytes(Sha256::digest(token.as_bytes()).into());
    let addr = addr.to_string();
    let mut data = Vec::with_capacity(CONTEXT.len() + NONCE_LEN + addr.len());
    data.extend_from_slice(CONTEXT);
    data.extend_from_slice(nonce);
    data.extend_from_slice(addr.as_bytes());
    shard_crypto::hmac_sha256(&key, &data)
}

/// Whether `presented` (hex, as the server sent it) is the answer to `nonce` of a server
/// holding `token` at `addr`.
pub fn check(token: &str, nonce: &[u8; NONCE_LEN], addr: SocketAddr, presented: &str) -> bool {
    hex::decode(presented)
        .is_ok_and(|bytes| shard_crypto::ct_eq(&bytes, &answer(token, nonce, addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_answers_and_only_its_nonce_at_its_address() {
        let nonce = [7u8; NONCE_LEN];
        let here = SocketAddr::from(([127, 0, 0, 1], 7715));
        let there = SocketAddr::from(([127, 0, 0, 1], 7716));
        let good = hex::encode(answer("token-a", &nonce, here));
        assert!(check("token-a", &nonce, here, &good));
        assert!(!check("token-a", &nonce, there, &good), "a relayed answer");
        assert!(!check("token-b", &nonce, here, &good));
        assert!(!check("token-a", &[8u8; NONCE_LEN], here, &good));
        assert!(!check("token-a", &nonce, here, "not hex"));
        assert!(!check("token-a", &nonce, here, ""));
    }
}
