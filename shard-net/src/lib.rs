//! The shard node: the secure channel (Noise over TCP), pairing, the share protocol, the
//! connections to paired peers, and the local control API the CLI and web UI use.
//!
//! What it is for: everything that crosses a socket. What it is not for: the data path itself
//! (`shard-store`) or formats (`shard-proto`).

pub mod accounts;
#[cfg(feature = "adversary")]
pub mod adversary;
pub mod api;
pub mod discovery;
mod error;
mod files;
pub mod get;
pub mod health;
pub mod home;
pub mod hosts;
pub mod identity;
pub mod jobs;
pub mod node;
pub mod noise;
pub mod pairing;
pub mod placement;
pub mod put;
pub mod recover;
pub mod rpc;
pub mod session;
pub mod snapshot;
pub mod target;
pub mod transport;
pub mod ui;

pub use error::{Error, Result};

/// A place where a test can make the node die on the spot (`SHARD_CRASH_AT=PHASE`, with the
/// test-only `adversary` feature; nothing in other builds).
#[macro_export]
#[doc(hidden)]
macro_rules! crash_point {
    ($phase:literal) => {
        #[cfg(feature = "adversary")]
        $crate::adversary::crash_point($phase);
    };
}
