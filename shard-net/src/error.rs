//! The transport's error: what can go wrong reaching, admitting or asking a peer.

use shard_proto::{ErrorCode, NodeId};

/// Everything that can go wrong talking to peers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket or file operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The Noise handshake or a Noise message failed (wrong key, tampering, wrong code).
    #[error("secure channel failed: {0}")]
    Noise(String),
    /// The peer sent bytes that break the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] shard_proto::Error),
    /// The local share store or catalog failed.
    #[error(transparent)]
    Store(#[from] shard_store::Error),
    /// A key or code problem.
    #[error(transparent)]
    Crypto(#[from] shard_crypto::Error),
    /// The remote node refused the connection, saying why.
    #[error("refused by the peer: {0}")]
    Refused(String),
    /// This node refused an incoming connection, saying why (logged, and told to the other).
    #[error("refused a connection: {0}")]
    Rejected(String),
    /// The node that answered is not the one expected.
    #[error("expected node {expected}, but {found} answered")]
    UnexpectedPeer {
        /// The node we meant to reach.
        expected: String,
        /// The node that answered.
        found: String,
    },
    /// A connecting node whose key is not paired with us.
    #[error("node {0} is not paired with this node")]
    Untrusted(NodeId),
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The connection closed before the answer came.
    #[error("connection to the peer closed")]
    Disconnected,
    /// The peer answered with an error.
    #[error("peer error ({code:?}): {message}")]
    Remote {
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The peer answered something that does not fit the request.
    #[error("unexpected answer from the peer: {0}")]
    UnexpectedResponse(&'static str),
    /// An invite code that cannot be read.
    #[error("invalid invite code: {0}")]
    InvalidInvite(&'static str),
    /// The node's home or configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The route names a path this node does not have (an iroh endpoint on a node started
    /// with `--relay none`, for instance).
    #[error("no path to {0}: this node does not dial that kind of address")]
    NoRoute(String),
    /// A relay or the iroh endpoint could not be set up or reached.
    #[error("relay: {0}")]
    Relay(String),
    /// A bug or a crash inside the node (a task that panicked): not the peer's doing.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<snow::Error> for Error {
    fn from(e: snow::Error) -> Self {
        Error::Noise(e.to_string())
    }
}

impl Error {
    /// Whether the store that answered is full (a quota, a disk, or a peer saying so): the
    /// caller places elsewhere and stops offering that node shares for the rest of the job.
    pub fn is_full(&self) -> bool {
        matches!(
            self,
            Error::Store(shard_store::Error::Full { .. })
                | Error::Remote {
                    code: shard_proto::ErrorCode::Full,
                    ..
                }
        )
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
