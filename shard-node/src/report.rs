//! What the engine's operations return: typed reports a program can read field by field. The
//! control API serializes them as they are (the JSON the CLI and the web UI read has these
//! field names), and nothing below the HTTP edge builds JSON for them.

use serde::{Deserialize, Serialize};

/// The health of a chunk, and of a file by its worst chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChunkHealth {
    /// Every share is where it should be.
    Healthy,
    /// Some shares could not be asked about (a node offline); the rest are good.
    Unknown,
    /// Fewer good shares than `n`, but at least `k`: restorable, less safe than asked.
    Degraded,
    /// Fewer than `k` shares reachable: cannot be restored now.
    Lost,
}

impl ChunkHealth {
    /// The word `check` and `ls` print.
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkHealth::Healthy => "healthy",
            ChunkHealth::Unknown => "unknown",
            ChunkHealth::Degraded => "degraded",
            ChunkHealth::Lost => "lost",
        }
    }
}

impl std::fmt::Display for ChunkHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a put stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PutReport {
    /// Regular files stored (read, and recorded as a new version).
    pub files: usize,
    /// Regular files left alone: unchanged since their newest stored version (same size,
    /// times, mode and inode), whose shares are all in place. Not read, no new version.
    #[serde(default)]
    pub unchanged: u64,
    /// Bytes of those files.
    #[serde(default)]
    pub unchanged_bytes: u64,
    /// Folders stored.
    pub dirs: usize,
    /// Symbolic links stored.
    pub links: usize,
    /// Bytes of the files.
    pub bytes: u64,
    /// The `k`-of-`n` asked for (or chosen from the nodes online), as `K-of-N`.
    pub redundancy: String,
    /// Chunks the files were cut into.
    pub chunks: u64,
    /// Chunks sent (sealed as blobs and packed).
    pub chunks_sent: u64,
    /// Packs made of them whose shares were sent.
    #[serde(default)]
    pub packs_sent: u64,
    /// Chunks stored before (or met twice in this put), with every share in place: nothing
    /// sent for them.
    pub chunks_already_stored: u64,
    /// Chunks kept with an earlier, at least as strong encoding.
    pub chunks_kept_at_earlier_redundancy: u64,
    /// Shares sent.
    pub shares_sent: u64,
    /// Bytes of shares sent.
    pub share_bytes_sent: u64,
    /// Paths skipped, with why (not a file, folder or link).
    pub skipped: Vec<String>,
    /// Files that failed, with why: always empty here, kept for the JSON's shape. A put with
    /// a failed file ends in [`crate::Error::PartialPut`], which names one, typed.
    pub failed: Vec<String>,
    /// The originals were deleted after the stored copy read back identical (`--move`).
    pub moved: bool,
    /// Nodes that were full during the put.
    pub full_nodes: Vec<String>,
}

/// What a get restored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetReport {
    /// Regular files restored.
    pub files: usize,
    /// Folders restored.
    pub dirs: usize,
    /// Symbolic links restored.
    pub links: usize,
    /// Bytes of the files.
    pub bytes: u64,
    /// Where.
    pub out: String,
    /// When it finished, seconds since the epoch.
    pub restored_at: u64,
}

/// What `check` found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    /// Why the last catalog snapshot did not reach the peers, if it did not.
    pub catalog_snapshot_failure: Option<String>,
    /// Shares of removed files that peers keep through their grace period.
    pub deleted_in_grace: DeletedInGrace,
    /// The files checked, worst first, then by name: in each state the first
    /// [`crate::health::LISTED_PER_STATE`] (the counts below are whole).
    pub files: Vec<FileHealth>,
    /// Files checked but not listed in `files` (beyond the first of their state).
    #[serde(default)]
    pub files_not_listed: usize,
    /// Files whose every chunk is healthy.
    pub healthy: usize,
    /// Files with a degraded chunk.
    pub degraded: usize,
    /// Files with a lost chunk.
    pub lost: usize,
    /// Files whose state could not be told (nodes offline).
    pub unknown: usize,
    /// Chunks checked.
    pub chunks: usize,
    /// Shares their manifests list.
    pub shares: usize,
    /// Shares a manifest lists that no node ever acknowledged (counted missing).
    pub unrecorded: usize,
    /// What each node said.
    pub nodes: Vec<NodeCheck>,
    /// What `--read-data` read.
    pub read: ReadSummary,
    /// Nothing degraded or lost, and the catalog's snapshot reached the peers.
    pub ok: bool,
    /// How long the check took.
    pub elapsed_secs: f64,
}

/// Shares peers keep for a while after their files were removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedInGrace {
    /// How many.
    pub shares: u64,
    /// When the oldest was deleted (seconds since the epoch).
    pub oldest_deleted_at: Option<i64>,
    /// How long peers keep them.
    pub grace_days: u64,
}

/// One file's health, by its worst chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileHealth {
    /// Its name (lossy UTF-8).
    pub name: String,
    /// Its name's bytes, in hex.
    pub name_hex: String,
    /// Its version.
    pub version: u32,
    /// Its size.
    pub size: u64,
    /// Its worst chunk's health.
    pub state: ChunkHealth,
    /// Its chunks.
    pub chunks: usize,
    /// Its worst chunk, if it has chunks.
    pub worst_chunk: Option<WorstChunk>,
}

/// The shares of a file's worst chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorstChunk {
    /// Shares needed.
    pub k: u8,
    /// Shares made.
    pub n: u8,
    /// Good shares.
    pub good: usize,
    /// Shares not where they should be.
    pub missing: usize,
    /// Shares that read back wrong.
    pub bad: usize,
    /// Shares that could not be asked about.
    pub unknown: usize,
    /// More shares of this chunk that may be lost before the file is (−1: lost already).
    pub survives_losses: i64,
}

/// What one node said in a check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeCheck {
    /// Its name.
    pub node: String,
    /// Its fingerprint.
    pub id: String,
    /// Shares asked about.
    pub shares: u64,
    /// Of which it does not have.
    pub missing: u64,
    /// Of which read back wrong.
    pub bad: u64,
    /// `checked`, or `unknown` when it could not be asked.
    pub state: NodeCheckState,
    /// Why it could not be asked.
    pub error: Option<String>,
}

/// Whether a node could be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeCheckState {
    /// It answered.
    Checked,
    /// It could not be asked.
    Unknown,
}

/// What `--read-data` read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadSummary {
    /// Shares read.
    pub shares: u64,
    /// Of which bad.
    pub bad: u64,
    /// Of which the node had said it holds but did not give when asked (an error, not bad
    /// bytes): a node that claims shares it cannot produce fails the check.
    #[serde(default)]
    pub unreadable: u64,
    /// The fraction asked for.
    pub fraction: f64,
}

/// What a repair did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepairReport {
    /// Chunks found with fewer good shares than `n`.
    pub chunks_degraded: usize,
    /// Of which brought back to `n`.
    pub chunks_repaired: u64,
    /// Shares rebuilt.
    pub shares_rebuilt: u64,
    /// Their bytes.
    pub bytes_rebuilt: u64,
    /// Chunks with fewer than `k` good shares: beyond repair now.
    pub chunks_lost: usize,
    /// The files those belong to.
    pub files_lost: Vec<String>,
    /// Lost files beyond the first [`crate::health::LISTED_PER_STATE`] by name, not listed.
    #[serde(default)]
    pub files_lost_not_listed: usize,
    /// Chunks that found no node with room.
    pub chunks_waiting_for_room: usize,
    /// Why, for the first of them.
    pub waiting: Option<String>,
    /// What failed (the first 20).
    pub failures: Vec<String>,
    /// Nodes that were full.
    pub full_nodes: Vec<String>,
    /// Every degraded chunk repaired and none lost.
    pub ok: bool,
    /// How long it took.
    pub elapsed_secs: f64,
    /// Why the catalog snapshot written after the repair did not reach the peers, if it
    /// did not (absent when it did, or was not written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_snapshot_failure: Option<String>,
}

/// What a prune did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PruneReport {
    /// Packs that files use, counted.
    pub packs: u64,
    /// Sealed bytes in them that no file uses any more.
    pub dead_bytes: u64,
    /// Of those packs, the ones whose dead share reached the threshold.
    pub packs_to_compact: u64,
    /// The threshold: packs with at least this percentage of dead bytes are compacted.
    pub dead_percent: u8,
    /// Old packs whose live blobs were copied and which were then removed.
    pub packs_compacted: u64,
    /// New packs written with the copies.
    pub packs_written: u64,
    /// Blobs copied.
    pub blobs_moved: u64,
    /// Their plaintext bytes.
    pub bytes_moved: u64,
    /// Dead bytes given back (removed with the old packs).
    pub bytes_freed: u64,
    /// Packs no file used (left by a put or a prune that was stopped), removed.
    pub unused_packs_removed: u64,
    /// Shares deleted on their nodes.
    pub shares_deleted: u64,
    /// Shares whose nodes are offline: deleted when they are back.
    pub shares_queued_for_offline_peers: u64,
    /// What failed (the first 20); the packs concerned are left as they were.
    pub failures: Vec<String>,
    /// Every pack to compact was compacted.
    pub ok: bool,
    /// How long it took.
    pub elapsed_secs: f64,
    /// Why the catalog snapshot written after the prune did not reach the peers, if it did
    /// not (absent when it did, or was not written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_snapshot_failure: Option<String>,
}

/// What unpairing a peer did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerRemoval {
    /// Its name.
    pub removed: String,
    /// Its fingerprint.
    pub id: String,
    /// The shares moved off it first, per account (none with `now`).
    pub moved: Vec<SharesMoved>,
    /// Forgotten at once, shares left for the automatic repair.
    pub now: bool,
}

/// One account's shares moved off a peer before it was unpaired.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SharesMoved {
    /// The account.
    pub user: String,
    /// Shares rebuilt elsewhere.
    pub shares_moved: u64,
    /// Their bytes.
    pub bytes_rebuilt: u64,
    /// How long the repair took.
    pub repair_secs: f64,
}

/// What a stored entry is, as `ls` and the picture name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A folder.
    Dir,
    /// A symbolic link.
    Link,
}

impl From<shard_store::FileKind> for EntryKind {
    fn from(kind: shard_store::FileKind) -> Self {
        match kind {
            shard_store::FileKind::File => EntryKind::File,
            shard_store::FileKind::Dir => EntryKind::Dir,
            shard_store::FileKind::Symlink => EntryKind::Link,
        }
    }
}

/// What `ls` lists: the newest version of each name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listing {
    /// In name order.
    pub files: Vec<ListedFile>,
}

/// One name in a listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListedFile {
    /// Its name (lossy UTF-8).
    pub name: String,
    /// Its name's bytes, in hex.
    pub name_hex: String,
    /// File, folder or link.
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Unix mode bits.
    pub mode: u32,
    /// The newest version's number.
    pub version: u32,
    /// How many versions are kept.
    pub versions: usize,
    /// When the newest version was stored, seconds since the epoch.
    pub stored_at: i64,
    /// For a regular file, its health from the catalog (no peer asked); none for others.
    pub health: Option<StoredHealth>,
}

/// A file's health as the catalog records it and the connections show it, asking no peer:
/// by its chunk with the fewest acknowledged shares above `k`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredHealth {
    /// Healthy (every share acknowledged, on nodes connected now), unknown (every share
    /// acknowledged, some on nodes offline now: `check` says the same), degraded (at least
    /// `k`) or lost.
    pub state: ChunkHealth,
    /// The worst chunk's `k` (absent for an empty file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<u8>,
    /// The worst chunk's `n`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u8>,
    /// Its acknowledged shares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_acked: Option<u8>,
    /// Acknowledged shares beyond `k` (negative: lost; none for an empty file).
    pub spare: Option<i32>,
}

/// What `rm` removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Removal {
    /// Entries removed (every version, and what a folder held).
    pub removed: usize,
    /// Shares deleted on their nodes now.
    pub shares_deleted: u64,
    /// Shares whose nodes are offline: deleted when they are back.
    pub shares_queued_for_offline_peers: u64,
    /// Moved to the trash rather than deleted: nothing left the peers.
    #[serde(default)]
    pub trashed: bool,
    /// When the trash deletes it for good (seconds since the epoch), if it went there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_until: Option<i64>,
}

/// A name in the trash: what `shard trash` lists. A folder removed with everything in it is
/// one item (what lay under it is counted in it, not listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrashItem {
    /// The name (lossy UTF-8).
    pub name: String,
    /// The name's bytes, hex.
    pub name_hex: String,
    /// What its newest version in the trash is.
    pub kind: EntryKind,
    /// Its versions in the trash.
    pub versions: usize,
    /// For a folder: the entries under it removed with it.
    pub entries_under: usize,
    /// Bytes of the newest version (of a folder: of the newest versions of what lay under it).
    pub size: u64,
    /// When it was removed (the latest time, if it was removed more than once).
    pub removed_at: i64,
    /// When the trash deletes it for good (its first version in the trash decides).
    pub kept_until: i64,
}

/// What `shard trash restore` brought back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrashRestore {
    /// The name restored (lossy UTF-8).
    pub name: String,
    /// Entries made visible again (every version, and what a folder held).
    pub restored: usize,
    /// A newer version of the name was stored after it was removed: it stays the newest, and
    /// the restored ones are its earlier versions.
    pub newer_kept: bool,
}

/// Where a stored file's shares are, for the web UI's picture.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Picture {
    /// The file's name (lossy UTF-8).
    pub name: String,
    /// The version shown.
    pub version: u32,
    /// Its size.
    pub size: u64,
    /// File, folder or link.
    pub kind: EntryKind,
    /// Its chunks, in order.
    pub chunks: Vec<PictureChunk>,
    /// The nodes holding its shares, by name.
    pub nodes: Vec<PictureNode>,
}

/// One chunk in a picture.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PictureChunk {
    /// The first bytes of its id, in hex.
    pub id: String,
    /// Its plaintext length.
    pub size: u32,
    /// Shares needed.
    pub k: u8,
    /// Shares made.
    pub n: u8,
    /// The first bytes of the id of the pack it lies in, in hex (its shares are the pack's).
    #[serde(default)]
    pub pack: Option<String>,
    /// Each of its `n` shares.
    pub shares: Vec<PictureShare>,
}

/// One share in a picture.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PictureShare {
    /// Its index in the chunk's encoding.
    pub index: u8,
    /// The holder's fingerprint (none when no node holds it).
    pub node: Option<String>,
    /// The holder's name.
    pub node_name: String,
    /// Where it stands.
    pub state: ShareView,
}

/// A share's state as the picture shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShareView {
    /// Acknowledged, and its node is online.
    Present,
    /// Acknowledged, its node is not connected.
    Offline,
    /// Known lost or bad, or never stored.
    Missing,
    /// Sent, not acknowledged.
    Pending,
}

/// A node in a picture.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PictureNode {
    /// Its fingerprint.
    pub node: String,
    /// Its name.
    pub name: String,
    /// Connected now.
    pub online: bool,
}

/// What a recovery did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recovery {
    /// The account the vault now belongs to.
    pub account: String,
    /// Entries in the recovered catalog.
    pub files: usize,
    /// The catalog head recovered from.
    pub catalog_head: u64,
    /// When that head was written, seconds since the epoch.
    pub catalog_written_at: i64,
    /// Every head found, newest first.
    pub heads_available: Vec<HeadSeen>,
    /// Peers that handed the vault over.
    pub peers_handed_over: usize,
    /// Shares those moved to this node.
    pub shares_moved: u64,
    /// Shares brought back from their holders' grace period.
    pub shares_brought_back: u64,
    /// Offline peers that hand the vault over when they connect (while it is unlocked).
    pub peers_owing_hand_over: usize,
}

/// A catalog head found at recovery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadSeen {
    /// Its sequence number.
    pub head: u64,
    /// When it was written, seconds since the epoch.
    pub written_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_reads_and_orders_as_check_prints_it() {
        assert_eq!(
            serde_json::to_value(ChunkHealth::Degraded).ok(),
            Some(serde_json::json!("degraded"))
        );
        let mut all = [
            ChunkHealth::Lost,
            ChunkHealth::Healthy,
            ChunkHealth::Degraded,
            ChunkHealth::Unknown,
        ];
        all.sort();
        assert_eq!(
            all.map(ChunkHealth::as_str),
            ["healthy", "unknown", "degraded", "lost"]
        );
    }
}
