//! Test harnesses for shard, used only as a dev-dependency (and by the test-only `adversary`
//! build of the `shard` binary): nothing here is in a release build.
//!
//! - [`adversary`]: a share store that lies as told (`SHARD_ADVERSARY`), for real nodes whose
//!   peers must not be trusted on their word.
//! - [`attacks`]: what a hostile client does to a node over the network.
//! - [`swarm`]: nodes in the test process (the engine's in-process and property tests).
//! - [`nodes`]: real `shard` processes (the end-to-end tests), and [`nodes::lan`], a private
//!   LAN of network namespaces for mDNS.

pub mod adversary;
pub mod attacks;
pub mod nodes;
pub mod swarm;
