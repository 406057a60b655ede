//! The shard engine: a node of the swarm and what it does with its peers.
//!
//! [`node::Node`] opens a home ([`home::Home`]), listens for peers through `shard-net`'s
//! transport, keeps connections to its paired peers and runs the vault operations for the
//! accounts unlocked on it: [`put`], [`get`], [`health`] (check, repair, scrub, the picture of
//! where data lives), [`snapshot`] and [`recover`]. It binds no HTTP socket: the control API
//! and the web UI (`shard-http`) and the CLI (`shard-cli`) are put in front of it, and a
//! program can embed it alone:
//!
//! ```no_run
//! # async fn embed() -> shard_node::Result<()> {
//! use shard_node::get::GetRequest;
//! use shard_node::home::{Home, NodeConfig};
//! use shard_node::node::{Node, RunOptions};
//! use shard_node::put::PutRequest;
//!
//! let home = Home::new("/var/lib/my-app/shard");
//! home.init(&NodeConfig::new("my-app"))?;
//! let node = Node::start(home, RunOptions::default()).await?;
//! node.join("<an invite code from `shard invite` on a peer>").await?;
//! node.login("alice", zeroize::Zeroizing::new(b"her passphrase".to_vec()))
//!     .await?;
//! node.put(None, PutRequest {
//!     paths: vec!["/home/alice/papers".into()],
//!     name: None,
//!     redundancy: None, // k-of-n from the nodes online
//!     move_original: false,
//! })
//! .await?;
//! node.get(None, GetRequest {
//!     name: b"papers".to_vec(),
//!     version: None,
//!     at: None,
//!     out: "/tmp/papers".into(),
//!     force: false,
//!     keep_special_bits: false,
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! `examples/embed.rs` runs two such nodes on loopback, pairs them and checks the bytes.
//! Errors are [`Error`]s; [`Error::hint`] says how to fix each, [`Error::kind`] what kind of
//! failure it is.

pub mod accounts;
pub mod backup;
pub mod backups;
pub mod browse;
pub mod deletion;
mod error;
pub mod files;
pub mod get;
pub mod health;
pub mod home;
pub mod jobs;
pub mod node;
pub mod placement;
pub mod prune;
pub mod put;
pub mod recover;
pub mod report;
pub mod request;
mod run;
pub mod session;
pub mod snapshot;
mod swarm;
pub mod target;
pub mod trash;
pub mod tree;
mod watchers;

pub use error::{Error, ErrorKind, FailedFile, NotPlaced, Result, UploadFailed, WhyFailed};

/// A place where a test can make the node die on the spot (`SHARD_CRASH_AT=PHASE`, with the
/// test-only `adversary` feature; nothing in other builds).
#[macro_export]
#[doc(hidden)]
macro_rules! crash_point {
    ($phase:literal) => {
        #[cfg(feature = "adversary")]
        shard_net::faults::crash_point($phase);
    };
}
