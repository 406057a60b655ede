//! shard's transport: what crosses a socket between nodes.
//!
//! The node's identity (its static Noise key and id), the secure channel (Noise XX over
//! TCP, or over an iroh QUIC stream for peers in other homes ([`wan`], with [`relay`] to run a
//! relay of one's own), with pairing by a one-time code), the [`transport::Transport`] seam the
//! engine dials and accepts through, the share protocol's request layer ([`rpc`]: the client a node uses
//! and the service that answers its peers from a [`shard_store::ShareStore`]), and discovery
//! of paired peers on the LAN. What it is not for: the engine that decides what to store
//! where (`shard-node`), the data path (`shard-store`) or formats (`shard-proto`).

pub mod discovery;
mod error;
#[cfg(feature = "adversary")]
pub mod faults;
pub mod identity;
pub mod memory;
pub mod noise;
pub mod pairing;
pub mod relay;
pub mod route;
pub mod rpc;
mod suite;
pub mod transport;
pub mod wan;

pub use error::{Error, Result};
