//! The one error type of `shard-net`.

use shard_proto::{ErrorCode, NodeId};

/// Everything that can go wrong talking to peers or running the node.
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
    /// No account is unlocked (or not the one named).
    #[error("{0}")]
    NotLoggedIn(String),
    /// Too many attempts (sign-ups) in a short time; try again later.
    #[error("{0}")]
    TooManyAttempts(String),
    /// A passphrase that does not unlock the account.
    #[error("wrong passphrase for account {user:?}; the next attempt waits {next_wait_secs} s")]
    WrongPassphrase {
        /// The account.
        user: String,
        /// Seconds the next attempt will wait.
        next_wait_secs: u64,
    },
    /// Fewer storage nodes online than the shares need.
    #[error(
        "{needed} storage nodes must be online to store {k}-of-{needed}; {online} online now (this node and {peers} of its peers)"
    )]
    NotEnoughNodes {
        /// Nodes online, this one included.
        online: usize,
        /// Connected peers.
        peers: usize,
        /// Nodes needed (`n`).
        needed: usize,
        /// Shares needed to restore (`k`).
        k: usize,
    },
    /// A path to store that does not exist.
    #[error("{0} does not exist")]
    PathMissing(String),
    /// A path that cannot be read or written.
    #[error("cannot access {path}: {reason}")]
    PathAccess {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The restore target exists and `--force` was not given.
    #[error("{0} already exists")]
    Exists(String),
    /// A name that cannot be stored or restored safely (empty, absolute, `..`).
    #[error("invalid name {0:?}")]
    InvalidName(String),
    /// A chunk has too few reachable shares.
    #[error(
        "chunk {chunk} of {file} cannot be restored: {have} of the {need} shares needed are reachable{holders}"
    )]
    ChunkUnavailable {
        /// The file.
        file: String,
        /// The chunk (short id).
        chunk: String,
        /// Good shares reached.
        have: usize,
        /// Shares needed.
        need: usize,
        /// Which offline peers hold its other shares, as text.
        holders: String,
    },
    /// Some files of a put could not be stored (the others were).
    #[error("{failed} of {total} files could not be stored: {first}")]
    PartialPut {
        /// Files that failed.
        failed: usize,
        /// Files in the put.
        total: usize,
        /// The first failure.
        first: String,
    },
    /// `--move` kept the originals because the stored copy did not read back identical.
    #[error("the originals were kept: {0}")]
    MoveAborted(String),
    /// A new passphrase that breaks a rule (the reason says which).
    #[error("{0}")]
    WeakPassphrase(String),
    /// Recovery cannot go on (no peer with the vault's head, nothing to fetch).
    #[error("{0}")]
    Recovery(String),
    /// An account still has files and `--purge` was not given.
    #[error("account {user:?} still has {files} stored file versions")]
    FilesRemain {
        /// The account.
        user: String,
        /// Its file versions.
        files: u64,
    },
    /// No paired peer goes by that name or id (or several do).
    #[error("{0}")]
    UnknownPeer(String),
    /// A request that cannot be carried out as asked (the message says how to ask).
    #[error("{0}")]
    Usage(String),
    /// The node's home or configuration is unusable.
    #[error("{0}")]
    Config(String),
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
