//! The control API's request and response bodies, shared by the server ([`crate::api`]) and
//! the typed client ([`crate::client`]): one definition of every key name, so the server, the
//! CLI and `app.js` cannot drift apart by convention. The engine's reports
//! (`shard_node::report`, `shard_node::jobs::JobStatus`) are answered as they are.

use serde::{Deserialize, Serialize};

pub use shard_net::discovery::Nearby;
pub use shard_node::accounts::AccountInfo;
pub use shard_node::jobs::{JobResult, JobState, JobStatus};
pub use shard_node::node::{NodeStatus, PeerStatus};
pub use shard_node::report::{
    CheckReport, GetReport, Listing, PeerRemoval, Picture, PruneReport, PutReport, Recovery,
    Removal, RepairReport,
};

/// An error as the API reports it: what went wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What went wrong.
    pub error: String,
    /// What to do about it.
    pub hint: String,
}

/// `GET /v1/proof?nonce=HEX`'s answer (see [`crate::proof`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proof {
    /// The proof, in hex.
    pub proof: String,
}

/// `POST /v1/ui-link`'s answer (no `Debug`: the link may carry the one-time setup token).
#[derive(Clone, Serialize, Deserialize)]
pub struct UiLink {
    /// The web UI's address (none when the node serves no UI).
    pub url: Option<String>,
    /// Whether the link carries a one-time setup token (the node has no account yet).
    pub setup: bool,
}

/// `GET /v1/peers`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peers {
    /// Paired peers, by name.
    pub peers: Vec<PeerStatus>,
    /// Unpaired nodes seen nearby.
    pub nearby: Vec<Nearby>,
}

/// `POST /v1/peers/add`'s body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddPeer {
    /// `HOST:PORT` to look for peers at.
    pub addr: String,
}

/// `POST /v1/peers/add`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerAdded {
    /// The address, as given.
    pub added: String,
}

/// `POST /v1/invite`'s body (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InviteBody {
    /// How long the code is valid (default: the node's).
    pub valid_for_secs: Option<u64>,
}

/// `POST /v1/invite`'s answer (no `Debug`: the code pairs whoever types it).
#[derive(Clone, Serialize, Deserialize)]
pub struct Invitation {
    /// The invite code to type on the other node.
    pub code: String,
    /// When it expires, Unix seconds.
    pub expires: u64,
    /// Seconds it is still valid.
    pub valid_for_secs: u64,
}

/// `POST /v1/join`'s body (no `Debug`: it carries the invite code).
#[derive(Clone, Serialize, Deserialize)]
pub struct JoinBody {
    /// The invite code.
    pub code: String,
}

/// `POST /v1/join`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Joined {
    /// The node now paired.
    pub peer: PeerStatus,
}

/// `POST /v1/login`'s body.
#[derive(Serialize, Deserialize)]
pub struct LoginBody {
    /// The account.
    pub user: String,
    /// Its passphrase.
    pub password: String,
}

/// `POST /v1/login`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedIn {
    /// The account.
    pub user: String,
    /// Always true: a failed login is an error.
    pub unlocked: bool,
}

/// A body that names an account, or none for the only one unlocked (`/v1/logout`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserBody {
    /// The account.
    pub user: Option<String>,
}

/// `POST /v1/logout`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedOut {
    /// Whether anything was unlocked.
    pub locked: bool,
}

/// `POST /v1/put`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PutBody {
    /// Paths on the node, as UTF-8.
    pub paths: Option<Vec<String>>,
    /// Paths on the node, as hex of their bytes (names that are not UTF-8).
    pub paths_hex: Option<Vec<String>>,
    /// The name in the vault (`--as`).
    #[serde(rename = "as")]
    pub name: Option<String>,
    /// `K/N`.
    pub shares: Option<String>,
    /// Delete the originals once stored and read back (`--move`).
    #[serde(rename = "move", default)]
    pub move_original: bool,
    /// The account (default: the only one unlocked).
    pub user: Option<String>,
}

/// `POST /v1/get`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GetBody {
    /// The name in the vault, as UTF-8.
    pub name: Option<String>,
    /// The name, as hex of its bytes.
    pub name_hex: Option<String>,
    /// The version (default: the newest).
    pub version: Option<u32>,
    /// What followed `@` in `NAME@…`: a version, or under a backup job's name a snapshot's
    /// number or a day (`2026-11-30`).
    #[serde(default)]
    pub at: Option<String>,
    /// Where to restore it on the node.
    pub out: String,
    /// Restore setuid, setgid and sticky bits too (the CLI's `--keep-special-bits`; never for
    /// a web session).
    #[serde(default)]
    pub keep_special_bits: bool,
    /// Replace what is at `out`.
    #[serde(default)]
    pub force: bool,
    /// The account.
    pub user: Option<String>,
}

/// The answer of a request that started a job (`put`, `get`, `check`, `repair`, `upload`):
/// follow it at `/v1/jobs/{job}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct JobStarted {
    /// The job's id.
    pub job: u64,
    /// Bytes received (uploads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// `GET /v1/ls`'s query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LsQuery {
    /// Only names that start with this.
    pub prefix: Option<String>,
    /// The account.
    pub user: Option<String>,
}

/// `POST /v1/rm`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RmBody {
    /// The name, as UTF-8.
    pub name: Option<String>,
    /// The name, as hex of its bytes.
    pub name_hex: Option<String>,
    /// The account.
    pub user: Option<String>,
    /// Delete for good now instead of moving to the trash.
    #[serde(default)]
    pub now: bool,
}

/// `GET /v1/trash`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trash {
    /// What is in the trash, by name.
    pub items: Vec<shard_node::report::TrashItem>,
    /// Days an item stays (`[vault] trash_days`).
    pub trash_days: u64,
}

/// `POST /v1/trash/restore`'s and `POST /v1/trash/empty`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrashBody {
    /// The name, as UTF-8 (for empty: none with `all`, everything).
    pub name: Option<String>,
    /// The name, as hex of its bytes.
    pub name_hex: Option<String>,
    /// The account.
    pub user: Option<String>,
    /// Empty: everything in the trash (asked for in so many words, not implied by a missing
    /// name).
    #[serde(default)]
    pub all: bool,
}

/// `POST /v1/recover`'s body.
#[derive(Serialize, Deserialize)]
pub struct RecoverBody {
    /// The recovery code.
    pub code: String,
    /// The passphrase the recovered account gets.
    pub password: String,
    /// The account's name here (default: the recovered one's).
    pub user: Option<String>,
    /// The catalog head to recover from (default: the newest).
    pub head: Option<u64>,
}

/// `POST /v1/check`'s and `POST /v1/repair`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HealthBody {
    /// Names to look at (default: everything).
    #[serde(default)]
    pub names: Vec<String>,
    /// Share of the stored data to read and verify (check only), 0 to 1.
    #[serde(default)]
    pub read_fraction: f64,
    /// The account.
    pub user: Option<String>,
}

/// `POST /v1/prune`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PruneBody {
    /// Packs with at least this percentage of dead bytes are compacted (default 5; 0: any).
    pub dead_percent: Option<u8>,
    /// The account.
    pub user: Option<String>,
}

/// `POST /v1/peers/rm`'s body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerRmBody {
    /// The peer's name or fingerprint (or a prefix of it).
    pub id: String,
    /// Unpair at once, without moving its shares first.
    #[serde(default)]
    pub now: bool,
}

/// `GET /v1/accounts`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accounts {
    /// Every account of the node.
    pub accounts: Vec<AccountInfo>,
}

/// `POST /v1/accounts/rm`'s body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountRmBody {
    /// The account.
    pub user: String,
    /// Also delete its shares on every peer now.
    #[serde(default)]
    pub purge: bool,
}

/// `POST /v1/accounts/rm`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountRemoved {
    /// The account.
    pub removed: String,
    /// File versions it had.
    pub file_versions_removed: u64,
}

/// `POST /v1/backup/add`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupAddBody {
    /// The folder, absolute.
    pub path: String,
    /// The job's name [default: the folder's].
    pub name: Option<String>,
    /// Its period (`30m`, `6h`, `1d`).
    pub every: Option<String>,
    /// Its keep rules (`last=10,daily=7`).
    pub keep: Option<String>,
    /// Exclusions in gitignore syntax.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `K/N`.
    pub shares: Option<String>,
    /// The account.
    pub user: Option<String>,
    /// Run soon after the folder changes; `every` is then the shortest gap between runs.
    #[serde(default)]
    pub watch: bool,
}

/// `POST /v1/backup/run`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupNameBody {
    /// The job.
    pub name: String,
    /// The account.
    pub user: Option<String>,
}

/// `POST /v1/backup/rm`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupRmBody {
    /// The job.
    pub name: String,
    /// Forget its snapshots too, and remove the stored tree.
    #[serde(default)]
    pub forget_snapshots: bool,
    /// The account.
    pub user: Option<String>,
}

/// A query naming only the account.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserQuery {
    /// The account.
    pub user: Option<String>,
}

/// `GET /v1/backup/ls`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupJobs {
    /// The jobs, by name.
    pub jobs: Vec<shard_node::backup::JobInfo>,
}

/// `GET /v1/snapshots`'s query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SnapshotsQuery {
    /// The job.
    pub name: String,
    /// The account.
    pub user: Option<String>,
}

/// `GET /v1/snapshots`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshots {
    /// The job.
    pub job: String,
    /// Its snapshots, oldest first.
    pub snapshots: Vec<shard_node::backup::SnapshotInfo>,
}

/// `GET /v1/diff`'s query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DiffQuery {
    /// The job.
    pub name: String,
    /// The older snapshot (number or day).
    pub from: String,
    /// The newer.
    pub to: String,
    /// The account.
    pub user: Option<String>,
}

/// `GET /v1/snapshot/ls`'s query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SnapshotLsQuery {
    /// The job.
    pub name: String,
    /// The snapshot: a number or a day (`2026-11-30`) [default: the newest].
    pub at: Option<String>,
    /// A folder under the job's folder, `/`-separated [default: the job's folder].
    #[serde(default)]
    pub path: String,
    /// Where the page starts among the folder's entries.
    #[serde(default)]
    pub offset: usize,
    /// Entries in the page (at most 1000) [default: 500].
    pub limit: Option<usize>,
    /// The account.
    pub user: Option<String>,
}
