//! The engine's error: typed variants a caller can act on, each with a [`Error::hint`] that
//! says how to fix it, shared by the CLI, the control API and programs that embed the node.

use shard_net::Error as NetError;
use shard_proto::ErrorCode;

/// Everything that can go wrong running the node and its vault operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Talking to a peer failed (refused, timed out, closed, or it answered with an error).
    #[error(transparent)]
    Net(#[from] shard_net::Error),
    /// A socket or file operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that break the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] shard_proto::Error),
    /// The local share store or catalog failed.
    #[error(transparent)]
    Store(#[from] shard_store::Error),
    /// A key or code problem.
    #[error(transparent)]
    Crypto(#[from] shard_crypto::Error),
    /// `init` in a folder that already is a node's home.
    #[error("{} is already a node's home; use --home to choose another folder", home.display())]
    AlreadyANode {
        /// The home.
        home: std::path::PathBuf,
    },
    /// No node lives in this home.
    #[error("no node at {}; create one with `shard init --home {}`", home.display(), home.display())]
    NoNode {
        /// The home.
        home: std::path::PathBuf,
    },
    /// `config.toml` does not parse.
    #[error("{}: {reason}", path.display())]
    BadConfig {
        /// The file.
        path: std::path::PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// `config.toml` names a share store layout that does not exist.
    #[error("unknown store layout {layout:?} in {}: use \"scatter\" or \"plain\"", config.display())]
    UnknownStoreLayout {
        /// The layout named.
        layout: String,
        /// The file.
        config: std::path::PathBuf,
    },
    /// The layer an embedding program put around the share store (`NodeBuilder::store_layer`)
    /// could not be set up.
    #[error("the share store's layer could not be set up: {0}")]
    StoreLayer(String),
    /// A catalog snapshot or head fetched from the peers opened (it is the vault's) but does not
    /// decode: damaged, or written by a newer build.
    #[error(
        "the catalog snapshot cannot be read ({0}); the vault's files cannot be listed from it"
    )]
    SnapshotUnreadable(String),
    /// A bug or a crash inside the node (a task that panicked): not the peer's doing.
    #[error("internal error: {0}")]
    Internal(String),
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
    /// An invite code reaches its node through a relay this node does not contact (a
    /// plain-HTTP relay that is not its own, which nothing would authenticate), and no other
    /// route in the code answered.
    #[error(
        "the code reaches its node through {relay}, a relay this node does not contact (it uses a plain-HTTP relay only when it is one of its own), and no other address in the code answered"
    )]
    UnusableRelay {
        /// The relay the code names.
        relay: String,
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
        first: FailedFile,
    },
    /// `--move` kept the originals because the stored copy did not read back identical.
    #[error("the originals were kept: {0}")]
    MoveAborted(String),
    /// A new passphrase that breaks a rule (the reason says which).
    #[error("{0}")]
    WeakPassphrase(String),
    /// An account still has files and `--purge` was not given.
    #[error("account {user:?} still has {files} stored file versions")]
    FilesRemain {
        /// The account.
        user: String,
        /// Its file versions.
        files: u64,
    },
    /// Another node runs from this home (one node per home).
    #[error(
        "another node is running from {} (stop it first, or give this one another --home)",
        home.display()
    )]
    HomeInUse {
        /// The home.
        home: std::path::PathBuf,
    },
    /// The peer address cannot be listened on (taken, or not this machine's).
    #[error("cannot listen for peers on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
    /// Text that is not a socket address.
    #[error("{0:?} is not an address like 192.168.1.20:7714")]
    NotAnAddress(String),
    /// Unpairing stopped: some of the peer's shares found no other node.
    #[error("not every share on {peer} could be moved, so it stays paired: {reason}")]
    SharesNotMoved {
        /// The peer.
        peer: String,
        /// Why (the first failure).
        reason: String,
    },
    /// The catalog snapshot could not be stored on enough nodes.
    #[error("could not store the catalog snapshot: {0}")]
    SnapshotNotStored(UploadFailed),
    /// No peer took the new catalog head: a new machine would recover an older catalog.
    #[error(
        "catalog head {seq} was kept by none of the {peers} peers holding the vault's shares; a new machine would recover an older catalog"
    )]
    HeadNotKept {
        /// The head's sequence number.
        seq: u64,
        /// Peers asked.
        peers: usize,
    },
    /// The new catalog head reached some of the vault's holders but not all: the others'
    /// heads still point at an earlier snapshot, which is therefore kept.
    #[error(
        "catalog snapshot {seq} is stored, but {} not got its head yet; the earlier snapshot is kept for recovery until {}",
        if missing.len() == 1 { format!("{} has", missing.join(", ")) } else { format!("{} have", missing.join(", ")) },
        if missing.len() == 1 { "it has" } else { "they have" }
    )]
    HeadNotOnEveryHolder {
        /// The head's sequence number.
        seq: u64,
        /// The holders without it, by name.
        missing: Vec<String>,
    },
    /// Recovery needs connected peers and there are none.
    #[error(
        "no peer is connected: pair this node with the old peers first (`shard invite` / `shard join`)"
    )]
    NoPeersConnected,
    /// Recovery from a catalog head that no connected peer keeps.
    #[error("no connected peer keeps catalog head {wanted} of this vault; kept: {kept}")]
    NoSuchHead {
        /// The head asked for.
        wanted: u64,
        /// The heads kept, as text ("none", or numbers).
        kept: String,
    },
    /// No connected peer keeps a catalog of the vault of this recovery code.
    #[error(
        "none of the {peers} connected peers keeps a catalog for this vault: the recovery code may be from another vault, or the old peers are not paired with this node yet"
    )]
    NoCatalogFound {
        /// Peers asked.
        peers: usize,
    },
    /// The only catalog heads kept for this vault are of data format 1 (an earlier,
    /// unreleased build), which this build does not read. Nothing was changed.
    #[error(
        "the peers keep {heads} catalog heads of this vault, all of data format 1 (an earlier, unreleased build), which this build does not read; nothing was changed"
    )]
    CatalogOfFormat1 {
        /// Heads of format 1 seen.
        heads: usize,
    },
    /// The node is stopping: nothing new starts.
    #[error("the node is stopping")]
    Stopping,
    /// No paired peer goes by that name or id (or several do).
    #[error("{0}")]
    UnknownPeer(String),
    /// A request that cannot be carried out as asked (the message says how to ask).
    #[error("{0}")]
    Usage(String),
    /// A prune of this vault is running already.
    #[error("a prune of account {user:?} is already running")]
    PruneRunning {
        /// The account.
        user: String,
    },
    /// Nothing by this name is in the trash (never removed, restored, or emptied since).
    #[error("{0:?} is not in the trash")]
    NotInTrash(String),
    /// A backup job that cannot be made or changed as asked (the message says why).
    #[error("{0}")]
    BadJob(String),
    /// No backup job or snapshots go by this name.
    #[error("no backup job is named {0:?}")]
    NoSuchJob(String),
    /// A snapshot that does not exist (forgotten by retention, or never made).
    #[error("{job}@{asked} is not a snapshot: {why} (snapshots kept: {kept})")]
    NoSuchSnapshot {
        /// The job.
        job: String,
        /// What was asked for (a number or a day).
        asked: String,
        /// Forgotten, or never made.
        why: String,
        /// The numbers kept.
        kept: String,
    },
    /// A name held by a backup job, which only its runs change.
    #[error("{name:?} belongs to backup job {job:?}: only its runs store or remove there")]
    JobsName {
        /// The name asked for.
        name: String,
        /// The job.
        job: String,
    },
    /// A run of this job is under way already.
    #[error("backup job {0:?} is running already")]
    JobRunning(String),
    /// A backup run that made no snapshot.
    #[error("backup {job:?} failed: {reason}")]
    BackupFailed {
        /// The job.
        job: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Whether the store that answered is full (a quota, a disk, or a peer saying so): the
    /// caller places elsewhere and stops offering that node shares for the rest of the job.
    pub fn is_full(&self) -> bool {
        match self {
            Error::Store(shard_store::Error::Full { .. }) => true,
            Error::Net(e) => e.is_full(),
            _ => false,
        }
    }

    /// The peer's error code, when a peer answered with one.
    pub fn remote_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Net(shard_net::Error::Remote { code, .. }) => Some(*code),
            _ => None,
        }
    }

    /// A task of the node that panicked or was cancelled: a bug, not the peer's doing.
    pub(crate) fn task(e: &tokio::task::JoinError) -> Self {
        Error::Internal(format!("a task of the node failed: {e}"))
    }
}

/// What kind of failure an [`Error`] is, for a caller that must choose a reaction (an HTTP
/// status, an exit code, a retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong as asked (a path, a name, a code, an option).
    BadInput,
    /// No account is unlocked, or the passphrase is wrong.
    Unauthorized,
    /// It clashes with what exists (a file, an account, a pairing).
    Conflict,
    /// What was named does not exist.
    NotFound,
    /// Not enough of the swarm is reachable now; it may work later.
    Unavailable,
    /// Too many attempts in a short time.
    TooMany,
    /// A peer could not be reached or stopped answering.
    PeerUnreachable,
    /// A bug, a crash or a local failure: see the node's log.
    Internal,
}

impl Error {
    /// What kind of failure this is and how to fix it, in one place for the CLI, the control
    /// API and programs that embed the node.
    pub fn kind_and_hint(&self) -> (ErrorKind, &'static str) {
        match self {
            Error::Net(NetError::InvalidInvite(_)) => (
                ErrorKind::BadInput,
                "copy the whole code as `shard invite` printed it, or ask for a new one",
            ),
            Error::Net(NetError::Refused(_)) => (
                ErrorKind::Conflict,
                "ask the other node for a new code (`shard invite`)",
            ),
            Error::Net(NetError::UnexpectedPeer { .. }) => (
                ErrorKind::Conflict,
                "another node answered at that address; check the code and the network",
            ),
            Error::NotLoggedIn(_) => (
                ErrorKind::Unauthorized,
                "unlock an account with `shard login USER`",
            ),
            Error::WrongPassphrase { .. } => (
                ErrorKind::Unauthorized,
                "check the passphrase and try again",
            ),
            Error::UnusableRelay { .. } => (
                ErrorKind::BadInput,
                "ask the other node's owner to use an HTTPS relay; if you both run that relay yourselves, add it to `[net] relays` in config.toml",
            ),
            Error::NotEnoughNodes { .. } => (
                ErrorKind::Unavailable,
                "start more paired nodes (`shard peers` shows which are offline) or choose fewer shares with --shares K/N",
            ),
            Error::PathMissing(_) | Error::PathAccess { .. } => {
                (ErrorKind::BadInput, "check the path and its permissions")
            }
            Error::InvalidName(_) => (
                ErrorKind::BadInput,
                "a stored name is a relative path: not empty, not starting with /, without empty, `.` or `..` parts",
            ),
            Error::NotInTrash(_) => (
                ErrorKind::NotFound,
                "`shard trash` lists what is in the trash; what was removed with --now, or longer ago than [vault] trash_days, is gone",
            ),
            Error::BadJob(_) => (
                ErrorKind::BadInput,
                "`shard backup add --help` describes the job's options",
            ),
            Error::NoSuchJob(_) => (ErrorKind::NotFound, "`shard backup ls` lists the jobs"),
            Error::NoSuchSnapshot { .. } => (
                ErrorKind::NotFound,
                "`shard snapshots NAME` lists the snapshots kept",
            ),
            Error::JobsName { .. } => (
                ErrorKind::Conflict,
                "run the job (`shard backup run NAME`), store under another name with --as, or remove the job with `shard backup rm NAME --forget-snapshots`",
            ),
            Error::JobRunning(_) => (
                ErrorKind::Conflict,
                "wait for it to end (`shard backup ls` shows its last run)",
            ),
            Error::BackupFailed { .. } => (
                ErrorKind::Unavailable,
                "fix the cause named above and run it again with `shard backup run NAME`; the snapshots before are intact",
            ),
            Error::UnknownPeer(_) => (
                ErrorKind::NotFound,
                "`shard peers` lists the paired peers with their names and ids",
            ),
            Error::Usage(_) => (
                ErrorKind::BadInput,
                "`shard help` describes every command and option",
            ),
            Error::Exists(_) => (
                ErrorKind::Conflict,
                "choose another output path with -o, or overwrite with --force",
            ),
            Error::ChunkUnavailable { .. } => (
                ErrorKind::Unavailable,
                "start the offline peers named above; the file comes back once k shares of every chunk are reachable",
            ),
            Error::PartialPut { .. } => (
                ErrorKind::Conflict,
                "fix the cause named above and run the same put again: it resumes",
            ),
            Error::MoveAborted(_) => (
                ErrorKind::Conflict,
                "nothing was deleted; run `shard check`, then the put again",
            ),
            Error::TooManyAttempts(_) => (ErrorKind::TooMany, "wait a minute and try again"),
            Error::WeakPassphrase(_) => (
                ErrorKind::BadInput,
                "use at least 10 characters that are not a common password: a few unrelated words work well",
            ),
            Error::NoPeersConnected | Error::NoSuchHead { .. } | Error::NoCatalogFound { .. } => (
                ErrorKind::Unavailable,
                "pair this node with at least k of the old peers (`shard invite` on them, `shard join` here), wait until `shard peers` shows them online, and check the code",
            ),
            Error::CatalogOfFormat1 { .. } => (
                ErrorKind::Conflict,
                "recover it with the build that stored it; this one starts a vault afresh",
            ),
            Error::HomeInUse { .. } => (
                ErrorKind::Conflict,
                "one node runs per home: stop the other `shard serve`, or give this one another --home",
            ),
            Error::AlreadyANode { .. } => (
                ErrorKind::Conflict,
                "give another folder with --home, or use the node that lives there",
            ),
            Error::NoNode { .. } => (
                ErrorKind::NotFound,
                "point --home (or SHARD_HOME) at a node's folder, or create a node with `shard init`",
            ),
            Error::BadConfig { .. } | Error::UnknownStoreLayout { .. } => (
                ErrorKind::BadInput,
                "fix config.toml where the error points (the node's home holds it)",
            ),
            Error::StoreLayer(_) => (
                ErrorKind::BadInput,
                "check what the program embedding the node passes to `store_layer`",
            ),
            Error::SnapshotUnreadable(_) => (
                ErrorKind::Internal,
                "the peers hold a damaged catalog snapshot: on the machine that wrote it, `shard check` stores a new one",
            ),
            Error::Listen { .. } => (
                ErrorKind::Conflict,
                "the `listen` address in the config must be one of this machine's, with a port no other program holds",
            ),
            Error::NotAnAddress(_) => (
                ErrorKind::BadInput,
                "give an address with its port, like 192.168.1.20:7714",
            ),
            Error::SharesNotMoved { .. } => (
                ErrorKind::Unavailable,
                "start the peers that hold the chunk's other shares, or pair nodes with room, and unpair again; --now forgets the peer at once, with shares that may exist nowhere else",
            ),
            Error::SnapshotNotStored(_)
            | Error::HeadNotKept { .. }
            | Error::HeadNotOnEveryHolder { .. } => (
                ErrorKind::Unavailable,
                "the catalog snapshot needs paired nodes online and with room (`shard peers` shows both); it is written again when a node comes back (the repair check) or after the next change",
            ),
            Error::Stopping => (ErrorKind::Unavailable, "start the node again"),
            Error::PruneRunning { .. } => (
                ErrorKind::Conflict,
                "wait for it to finish (the node's automatic compaction may be the one running), then run `shard prune` again if there is still dead space",
            ),
            Error::FilesRemain { .. } => (
                ErrorKind::Conflict,
                "remove the files first (`shard rm --now`; what the trash holds: `shard trash empty --all`), or remove them with the account: --purge",
            ),
            Error::Store(shard_store::Error::NoSuchAccount(_)) => (
                ErrorKind::NotFound,
                "`shard account ls` lists the accounts of this node",
            ),
            Error::Store(shard_store::Error::AccountExists(_)) => (
                ErrorKind::Conflict,
                "choose another name for the recovered account with --user NAME",
            ),
            Error::Crypto(
                shard_crypto::Error::RecoveryCodeLength { .. }
                | shard_crypto::Error::RecoveryCodeCharacter { .. }
                | shard_crypto::Error::RecoveryCodeGroup { .. }
                | shard_crypto::Error::RecoveryCodeChecksum
                | shard_crypto::Error::UnsupportedRecoveryCode(_),
            ) => (
                ErrorKind::BadInput,
                "type the recovery code exactly as written down: groups of letters and digits",
            ),
            Error::Store(shard_store::Error::NoSuchFile(_)) => {
                (ErrorKind::NotFound, "`shard ls` lists what is stored")
            }
            Error::Net(NetError::Timeout(_) | NetError::Io(_) | NetError::Disconnected) => (
                ErrorKind::PeerUnreachable,
                "check that the other node runs (`shard serve`) and that its address is reachable",
            ),
            // A file or folder on this machine, not a peer.
            Error::Io(e) => match e.kind() {
                std::io::ErrorKind::NotFound => (
                    ErrorKind::NotFound,
                    "check the path: the file or folder does not exist on this machine",
                ),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => (
                    ErrorKind::BadInput,
                    "check that the node's user may read and write that path on this machine",
                ),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => (
                    ErrorKind::Unavailable,
                    "free space on this machine's disk and try again",
                ),
                _ => (
                    ErrorKind::Internal,
                    "a file operation on this machine failed; the node's log has the details",
                ),
            },
            _ => (ErrorKind::Internal, "see the node's log for details"),
        }
    }

    /// What kind of failure this is (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        self.kind_and_hint().0
    }

    /// How to fix it, in a sentence.
    pub fn hint(&self) -> &'static str {
        self.kind_and_hint().1
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Why a chunk's shares were not all placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotPlaced {
    /// Fewer nodes can take a share than the chunk has shares to place.
    #[error(
        "only {can} nodes can take shares of this chunk, {needed} needed{}",
        if full.is_empty() { String::new() } else { format!(" ({})", full.join("; ")) }
    )]
    TooFewNodes {
        /// Nodes that can take one (holders included).
        can: usize,
        /// The chunk's `n`.
        needed: u8,
        /// The nodes found full earlier in the job, each "NAME is full".
        full: Vec<String>,
    },
    /// Nodes refused shares, and no other node was left to take them.
    #[error("{count} shares could not be placed: too few nodes accept them ({})", refused.join("; "))]
    Refused {
        /// Shares left without a node.
        count: usize,
        /// What the nodes that refused said.
        refused: Vec<String>,
    },
}

/// A file a put could not store, and why (the put stores the others and ends with
/// [`Error::PartialPut`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct FailedFile {
    /// The file, as the put named it.
    pub path: std::path::PathBuf,
    /// Why nothing was stored for it.
    pub why: WhyFailed,
}

/// Why a file of a put was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhyFailed {
    /// It could not be read (permissions, gone, an I/O error): the system's words.
    #[error("{0}")]
    Unreadable(String),
    /// Something else took its place between the walk and the read (a link, another file).
    #[error(
        "it was replaced by something else after the walk found it; nothing was stored for it (run the put again)"
    )]
    Replaced,
    /// This machine failed while sealing it or looking it up in its catalog (the error's
    /// words): not the file's fault.
    #[error("{0}")]
    Local(String),
    /// It changed while being read.
    #[error("it changed while being read; nothing was stored for it (run the put again)")]
    Changed,
    /// An upload sent more bytes than it announced.
    #[error("more than the {announced} bytes announced arrived; nothing was stored for it")]
    UploadTooLong {
        /// The size announced.
        announced: u64,
    },
    /// An upload ended before the size it announced.
    #[error("the upload ended after {got} of {announced} bytes; nothing was stored for it")]
    UploadTooShort {
        /// Bytes that came.
        got: u64,
        /// The size announced.
        announced: u64,
    },
    /// The shares of a pack holding part of it found too few nodes.
    #[error(transparent)]
    NotPlaced(NotPlaced),
    /// The put was stopped before it was stored.
    #[error("put cancelled")]
    Cancelled,
    /// A chunk of it was lost on the way (a bug, reported rather than dropped in silence).
    #[error("not every chunk of it was stored; run the put again")]
    Incomplete,
}

/// Why a catalog snapshot's chunks were not all stored (the write is tried again without the
/// nodes found full, and then given up with this as [`Error::SnapshotNotStored`]).
#[derive(Debug, thiserror::Error)]
pub enum UploadFailed {
    /// A chunk of it could not be coded.
    #[error(transparent)]
    Code(#[from] shard_store::Error),
    /// A chunk's shares found too few nodes.
    #[error(transparent)]
    NotPlaced(#[from] NotPlaced),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_file_failure_is_not_blamed_on_a_peer() {
        let missing = Error::Io(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        assert!(
            missing.hint().contains("this machine"),
            "{}",
            missing.hint()
        );
        let denied = Error::Io(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert_eq!(denied.kind(), ErrorKind::BadInput);
        let full = Error::Io(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert_eq!(full.kind(), ErrorKind::Unavailable);
        let other = Error::Io(std::io::Error::other("odd"));
        assert_eq!(other.kind(), ErrorKind::Internal);
        assert!(!other.hint().contains("other node"));
        // A peer's connection failing still is the peer's.
        let peer = Error::Net(NetError::Disconnected);
        assert_eq!(peer.kind(), ErrorKind::PeerUnreachable);
    }
}
