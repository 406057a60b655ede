//! The shard node: the secure channel (Noise over TCP), pairing, the share protocol, the
//! connections to paired peers, and the local control API the CLI and web UI use.
//!
//! What it is for: everything that crosses a socket. What it is not for: the data path itself
//! (`shard-store`) or formats (`shard-proto`).

pub mod api;
mod error;
pub mod home;
pub mod identity;
pub mod node;
pub mod noise;
pub mod pairing;
pub mod rpc;
pub mod transport;

pub use error::{Error, Result};
