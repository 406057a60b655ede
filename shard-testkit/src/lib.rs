//! Test harnesses for shard, used only as a dev-dependency (and by the test-only `adversary`
//! build of the `shard` binary): nothing here is in a release build.
//!
//! - [`adversary`]: a share store that lies as told (`SHARD_ADVERSARY`), for real nodes whose
//!   peers must not be trusted on their word.
//! - [`attacks`]: what a hostile client does to a node over the network.

pub mod adversary;
pub mod attacks;
