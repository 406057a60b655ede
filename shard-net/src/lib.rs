//! The shard node: secure channel (Noise), pairing, discovery, the request/response protocol,
//! placement, and the put/get/check/repair orchestration.
//!
//! Not written yet: this crate is part of the workspace so the dependency direction is fixed
//! from the start (`shard-crypto`, `shard-proto` → `shard-store` → `shard-net` → `shard-cli`).
