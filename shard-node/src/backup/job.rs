//! A backup job and its snapshots as the engine keeps them in the account's catalog (sealed
//! records of `shard-store`, carried by the catalog snapshot, so they come back with
//! `shard recover`), and the clock that says when a job is due.
//!
//! A job's record holds its rules ([`JobSpec`]) and how its runs went ([`JobState`]). A
//! snapshot's record holds a summary ([`SnapshotInfo`], read when listing) and the tree it
//! is: every name under the job's name with the version of it the run stored or found
//! unchanged ([`SnapshotTree`]), read when restoring or comparing.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use shard_store::{BackupKind, BackupRecord, VaultCatalog};

use super::{Every, KeepRules};
use crate::{Error, Result};

/// What a job is told to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Its name: the name of its snapshots' tree in the vault (one path component).
    pub name: String,
    /// The folder it backs up (absolute).
    pub path: PathBuf,
    /// How often it runs.
    pub every: Every,
    /// Which snapshots it keeps.
    pub keep: KeepRules,
    /// What it leaves out (gitignore syntax), besides the folder's `.shardignore`.
    pub exclude: Vec<String>,
    /// `k`-of-`n` (default: from the nodes online at each run).
    pub shares: Option<(u8, u8)>,
    /// Made by a web UI session: each run checks again that the folder (links resolved) lies
    /// under `[web] node_paths`, as the session could only reach it there.
    pub confined: bool,
    /// Watched (`--watch`): it runs soon after its folder changes, `every` being the shortest
    /// gap between runs, and at least daily (see [`super::watch`]).
    pub watch: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Everything was stored.
    Ok,
    /// Some files could not be read; the snapshot holds the rest.
    Partial,
    /// No snapshot was made.
    Failed,
}

impl Outcome {
    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
        }
    }
}

/// One run, as remembered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// When it started (seconds since the epoch, by the node's clock).
    pub started: i64,
    /// When it ended.
    pub ended: i64,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed or was partial.
    pub reason: Option<String>,
    /// Files in the snapshot.
    pub files: u64,
    /// Bytes of shares sent.
    pub bytes_sent: u64,
    /// The snapshot it made.
    pub snapshot: Option<u32>,
}

/// How a job's runs went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    /// When the job was made.
    pub created: i64,
    /// Its last run.
    pub last: Option<RunRecord>,
    /// When its last run that stored everything ended.
    pub last_ok: Option<i64>,
    /// The number the next snapshot gets (numbers are never given twice, so `NAME@N` always
    /// means one snapshot or a forgotten one).
    pub next_no: u32,
}

/// A job as kept: its rules and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupJob {
    /// Its rules.
    pub spec: JobSpec,
    /// Its runs.
    pub state: JobState,
}

/// A snapshot's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Its number.
    pub no: u32,
    /// When its run started (seconds since the epoch).
    pub at: i64,
    /// Regular files in it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Paths added since the snapshot before.
    pub added: u64,
    /// Paths removed since the snapshot before.
    pub removed: u64,
    /// Paths changed since the snapshot before.
    pub changed: u64,
    /// Some files could not be read: it holds the rest (and their earlier versions are not in it).
    pub partial: bool,
}

/// Names held one after another in one buffer, with where each ends: a name costs its bytes
/// and 8 more, not an allocation of its own (about three times that). What a backup run's
/// walk met, and the names of a [`SnapshotTree`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameList {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl NameList {
    /// Adds `name` at the end.
    pub fn push(&mut self, name: &[u8]) {
        self.bytes.extend_from_slice(name);
        self.ends.push(self.bytes.len());
    }

    /// How many names it holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it holds no name.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`th name.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let start = match i.checked_sub(1) {
            Some(before) => *self.ends.get(before)?,
            None => 0,
        };
        self.bytes.get(start..*self.ends.get(i)?)
    }

    /// Every name, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    pub(crate) fn with_capacity(names: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(names),
        }
    }

    /// Keeps, in order, the names `keep` says yes to (it is asked once for each name, with
    /// its place and bytes), moving them down within the buffer, which is then shrunk.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(usize, &[u8]) -> bool) {
        let (mut start, mut written, mut kept) = (0, 0, 0);
        for i in 0..self.ends.len() {
            let Some(&end) = self.ends.get(i) else { break };
            // `push` keeps every name inside the buffer. Were one not, it would be asked
            // about as empty and kept as empty: what `keep` says is always what is done, so
            // a caller keeping a list beside the names by place stays in step.
            let name = self.bytes.get(start..end);
            if keep(i, name.unwrap_or_default()) {
                if name.is_some() {
                    self.bytes.copy_within(start..end, written);
                    written += end - start;
                }
                if let Some(slot) = self.ends.get_mut(kept) {
                    *slot = written;
                }
                kept += 1;
            }
            start = end;
        }
        self.bytes.truncate(written);
        self.ends.truncate(kept);
        self.bytes.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

/// A snapshot's tree: each name (the job's name, then paths under it) and its version, in
/// name order, each name once.
///
/// Its names are a [`NameList`]: a tree of 10⁶ paths is tens of MB where a list of owned
/// names was about three times that. It is encoded, as it always was, as the sequence of
/// `(name bytes, version)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotTree {
    names: NameList,
    versions: Vec<u32>,
}

impl SnapshotTree {
    /// The tree of `entries` in any order: sorted by name, and of a name given twice the
    /// lower version kept.
    pub fn from_entries(entries: Vec<(Vec<u8>, u32)>) -> Self {
        let entries: Vec<(&[u8], u32)> = entries.iter().map(|(n, v)| (n.as_slice(), *v)).collect();
        Self::build(&NameList::default(), Vec::new(), &entries)
    }

    /// The tree of the names of `met` that `found` gives a version (by their place in
    /// `met`), and of `lent`: sorted by name, and of a name given twice the lower version
    /// kept. Only the order is built aside (16 bytes a name), not the names again.
    pub fn build(met: &NameList, found: Vec<(usize, u32)>, lent: &[(&[u8], u32)]) -> Self {
        let name = |i: usize| -> &[u8] {
            match i.checked_sub(met.len()) {
                None => met.get(i).unwrap_or_default(),
                Some(j) => lent.get(j).map(|(n, _)| *n).unwrap_or_default(),
            }
        };
        let mut order = found;
        order.extend(
            lent.iter()
                .enumerate()
                .map(|(j, (_, v))| (met.len() + j, *v)),
        );
        order.sort_unstable_by(|a, b| name(a.0).cmp(name(b.0)).then(a.1.cmp(&b.1)));
        order.dedup_by(|a, b| name(a.0) == name(b.0));
        let bytes = order.iter().map(|(i, _)| name(*i).len()).sum();
        let mut tree = Self {
            names: NameList::with_capacity(order.len(), bytes),
            versions: Vec::with_capacity(order.len()),
        };
        for (i, version) in order {
            tree.push(name(i), version);
        }
        tree
    }

    fn push(&mut self, name: &[u8], version: u32) {
        self.names.push(name);
        self.versions.push(version);
    }

    /// Its names and their versions, by place.
    pub(crate) fn into_parts(self) -> (NameList, Vec<u32>) {
        (self.names, self.versions)
    }

    /// How many names it holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether it holds no name.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The `i`th name in name order, with its version.
    pub fn get(&self, i: usize) -> Option<(&[u8], u32)> {
        Some((self.names.get(i)?, *self.versions.get(i)?))
    }

    /// Every name with its version, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u32)> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Where `name` is or would be in name order: the count of names before it.
    fn position(&self, name: &[u8]) -> usize {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            match self.get(mid) {
                Some((n, _)) if n < name => low = mid + 1,
                _ => high = mid,
            }
        }
        low
    }

    /// The version of `name` in it.
    pub fn version_of(&self, name: &[u8]) -> Option<u32> {
        self.get(self.position(name))
            .and_then(|(n, v)| (n == name).then_some(v))
    }

    /// The names from `name` on (itself, if held, first), in name order.
    pub fn from<'a>(&'a self, name: &[u8]) -> impl Iterator<Item = (&'a [u8], u32)> + 'a {
        (self.position(name)..self.len()).filter_map(|i| self.get(i))
    }

    /// The entries at `name` and under it (`name/…`). Names that start with `name` lie
    /// together in name order; of them, `name-x` and `name.txt` are not under it.
    pub fn under<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = (&'a [u8], u32)> + 'a {
        self.from(name)
            .take_while(move |(n, _)| n.starts_with(name))
            .filter(move |(n, _)| {
                n.get(name.len()..)
                    .is_some_and(|rest| rest.is_empty() || rest.first() == Some(&b'/'))
            })
    }
}

impl Serialize for SnapshotTree {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for (name, version) in self.iter() {
            seq.serialize_element(&(serde_bytes::Bytes::new(name), version))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for SnapshotTree {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = SnapshotTree;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a snapshot's names and versions in name order")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<SnapshotTree, A::Error> {
                // The count said up front is not trusted for an allocation.
                let mut tree = SnapshotTree::default();
                let room = seq.size_hint().unwrap_or(0).min(1 << 16);
                tree.names.ends.reserve(room);
                tree.versions.reserve(room);
                while let Some((name, version)) = seq.next_element::<(ByteBuf, u32)>()? {
                    // Lookups search by name: a tree out of order would find wrong versions.
                    if tree
                        .len()
                        .checked_sub(1)
                        .and_then(|last| tree.get(last))
                        .is_some_and(|(last, _)| last >= name.as_slice())
                    {
                        return Err(serde::de::Error::custom("snapshot names out of order"));
                    }
                    tree.push(&name, version);
                }
                // Grown by doubling, as the names came: not twice their bytes for as long as
                // the tree is held.
                tree.names.bytes.shrink_to_fit();
                Ok(tree)
            }
        }
        d.deserialize_seq(Entries)
    }
}

/// The version byte in front of a record's plaintext: a later build that changes one can
/// still read what this one wrote.
const RECORD_V1: u8 = 1;

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = vec![RECORD_V1];
    postcard::to_io(value, &mut out).map_err(|_| damaged("does not encode"))?;
    Ok(out)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&RECORD_V1, rest)) => {
            postcard::from_bytes(rest).map_err(|_| damaged("does not decode"))
        }
        _ => Err(damaged("is of an unknown version")),
    }
}

fn damaged(what: &str) -> Error {
    Error::Store(shard_store::Error::IndexDamaged(match what {
        "does not encode" => "a backup record does not encode",
        "does not decode" => "a backup record does not decode",
        _ => "a backup record is of an unknown version",
    }))
}

/// Reading and writing jobs and snapshots in a vault's catalog.
pub(crate) struct Records<'v, 'a>(pub &'v VaultCatalog<'a>);

impl Records<'_, '_> {
    pub fn jobs(&self) -> Result<Vec<BackupJob>> {
        self.0
            .backup_heads(BackupKind::Job, None)?
            .iter()
            .map(|r| decode(&r.head))
            .collect()
    }

    pub fn job(&self, name: &str) -> Result<Option<BackupJob>> {
        self.0
            .backup_heads(BackupKind::Job, Some(name))?
            .first()
            .map(|r| decode(&r.head))
            .transpose()
    }

    pub fn save_job(&self, job: &BackupJob) -> Result<()> {
        self.0.put_backup(BackupRecord {
            kind: BackupKind::Job,
            job: job.spec.name.clone(),
            no: 0,
            head: encode(job)?,
            body: Vec::new(),
        })?;
        Ok(())
    }

    pub fn remove_job(&self, name: &str) -> Result<bool> {
        Ok(self.0.remove_backups(BackupKind::Job, name, None)? > 0)
    }

    /// The snapshots of `job`, oldest first.
    pub fn snapshots(&self, job: &str) -> Result<Vec<SnapshotInfo>> {
        self.0
            .backup_heads(BackupKind::Snapshot, Some(job))?
            .iter()
            .map(|r| decode(&r.head))
            .collect()
    }

    pub fn tree(&self, job: &str, no: u32) -> Result<Option<SnapshotTree>> {
        self.0
            .backup_body(BackupKind::Snapshot, job, no)?
            .map(|b| decode(&b))
            .transpose()
    }

    pub fn save_snapshot(&self, job: &str, info: &SnapshotInfo, tree: &SnapshotTree) -> Result<()> {
        self.0.put_backup(BackupRecord {
            kind: BackupKind::Snapshot,
            job: job.to_string(),
            no: info.no,
            head: encode(info)?,
            body: encode(tree)?,
        })?;
        Ok(())
    }

    pub fn forget(&self, job: &str, nos: Option<&[u32]>) -> Result<usize> {
        Ok(self.0.remove_backups(BackupKind::Snapshot, job, nos)?)
    }
}

/// The top component of a vault name: what a job would be named.
pub(crate) fn top_of(name: &[u8]) -> &[u8] {
    name.split(|&b| b == b'/').next().unwrap_or(name)
}

/// The job (or the snapshots of a removed job) that holds `name`, if any: only its runs may
/// store or remove there.
pub(crate) fn holder_of(vault: &VaultCatalog<'_>, name: &[u8]) -> Result<Option<String>> {
    let Ok(top) = std::str::from_utf8(top_of(name)) else {
        return Ok(None);
    };
    let records = Records(vault);
    if records.job(top)?.is_some() || !records.snapshots(top)?.is_empty() {
        return Ok(Some(top.to_string()));
    }
    Ok(None)
}

/// Where the time comes from: the system's clock, or a test's.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the epoch.
    fn now(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// A clock a test sets and moves.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock at `at`.
    pub fn new(at: i64) -> Self {
        Self(AtomicI64::new(at))
    }

    /// Moves it on by `secs`.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// Sets it.
    pub fn set(&self, at: i64) {
        self.0.store(at, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_finds_versions_and_what_lies_under_a_path() {
        // Given out of order and with a name twice: sorted, the lower version kept.
        let names = ["p/b", "p/a/x", "p", "p/a.txt", "p/a", "p/ab"];
        let mut entries: Vec<(Vec<u8>, u32)> = names
            .iter()
            .zip([6u32, 4, 1, 3, 2, 5])
            .map(|(n, v)| (n.as_bytes().to_vec(), v))
            .collect();
        entries.push((b"p/a.txt".to_vec(), 9));
        let tree = SnapshotTree::from_entries(entries);
        let listed: Vec<(&[u8], u32)> = tree.iter().collect();
        assert_eq!(
            listed,
            [
                (&b"p"[..], 1),
                (b"p/a", 2),
                (b"p/a.txt", 3),
                (b"p/a/x", 4),
                (b"p/ab", 5),
                (b"p/b", 6)
            ],
            "in name order, each name once"
        );
        for (name, version) in &listed {
            assert_eq!(tree.version_of(name), Some(*version));
        }
        assert_eq!(tree.version_of(b"p/c"), None);
        assert_eq!(tree.version_of(b""), None);
        assert_eq!(SnapshotTree::default().version_of(b"p"), None);
        let under: Vec<&[u8]> = tree.under(b"p/a").map(|(n, _)| n).collect();
        assert_eq!(under, [&b"p/a"[..], b"p/a/x"], "not p/a.txt nor p/ab");
    }

    #[test]
    fn a_tree_is_built_from_the_names_a_walk_met_and_those_lent_to_it() {
        let mut met = NameList::default();
        for name in ["p", "p/b", "p/a", "p/x", ""] {
            met.push(name.as_bytes());
        }
        assert_eq!(met.len(), 5);
        assert_eq!(met.get(3), Some(&b"p/x"[..]));
        assert_eq!(met.get(4), Some(&b""[..]));
        assert_eq!(met.get(5), None);
        // p/x was met but not found stored; p/a is both met and lent, at two versions.
        let found = vec![(0, 1), (1, 2), (2, 3)];
        let lent = [(&b"p/c"[..], 5), (&b"p/a"[..], 1)];
        let tree = SnapshotTree::build(&met, found, &lent);
        let listed: Vec<(&[u8], u32)> = tree.iter().collect();
        assert_eq!(
            listed,
            [(&b"p"[..], 1), (b"p/a", 1), (b"p/b", 2), (b"p/c", 5)]
        );
        assert!(SnapshotTree::build(&met, Vec::new(), &[]).is_empty());
    }

    #[test]
    fn names_kept_move_down_in_order_and_the_rest_go() {
        let mut names = NameList::default();
        for name in ["alpha", "", "b", "gamma", "delta", "e"] {
            names.push(name.as_bytes());
        }
        let mut seen = Vec::new();
        names.retain(|i, name| {
            seen.push(i);
            name != b"b" && name != b"gamma" && name != b"e"
        });
        assert_eq!(
            seen,
            [0, 1, 2, 3, 4, 5],
            "each name asked about once, in order"
        );
        let left: Vec<&[u8]> = names.iter().collect();
        assert_eq!(left, [&b"alpha"[..], b"", b"delta"]);
        names.retain(|i, _| i == 2);
        assert_eq!(names.iter().collect::<Vec<_>>(), [&b"delta"[..]]);
        names.retain(|_, _| false);
        assert!(names.is_empty());
        names.push(b"again");
        assert_eq!(
            names.get(0),
            Some(&b"again"[..]),
            "and it takes names again"
        );
    }

    #[test]
    fn a_tree_encodes_as_the_list_of_names_it_always_was() {
        // Snapshots written before the tree was held in one buffer were this list: they
        // read the same, and what is written now reads back by the older builds.
        let list: Vec<(ByteBuf, u32)> = [("p", 1u32), ("p/a", 7), ("p/b\u{e9}", 2)]
            .iter()
            .map(|(n, v)| (ByteBuf::from(n.as_bytes().to_vec()), *v))
            .collect();
        let old = postcard::to_stdvec(&list).unwrap();
        let tree: SnapshotTree = postcard::from_bytes(&old).unwrap();
        assert_eq!(tree.version_of(b"p/a"), Some(7));
        assert_eq!(postcard::to_stdvec(&tree).unwrap(), old);
        // Out of order or a name twice: refused, not searched wrongly.
        for bad in [
            vec![
                (ByteBuf::from(b"p/b".to_vec()), 1u32),
                (ByteBuf::from(b"p/a".to_vec()), 1),
            ],
            vec![
                (ByteBuf::from(b"p".to_vec()), 1u32),
                (ByteBuf::from(b"p".to_vec()), 2),
            ],
        ] {
            let bytes = postcard::to_stdvec(&bad).unwrap();
            assert!(postcard::from_bytes::<SnapshotTree>(&bytes).is_err());
        }
        // A count far beyond the bytes that follow allocates nothing for it.
        let lying = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(postcard::from_bytes::<SnapshotTree>(&lying).is_err());
    }

    #[test]
    fn a_job_record_is_pinned() {
        let job = BackupJob {
            spec: JobSpec {
                name: "p".into(),
                path: "/p".into(),
                every: "5m".parse().unwrap(),
                keep: "last=2".parse().unwrap(),
                exclude: vec!["*.tmp".into()],
                shares: Some((2, 4)),
                confined: false,
                watch: true,
            },
            state: JobState {
                created: 7,
                last: None,
                last_ok: None,
                next_no: 1,
            },
        };
        let bytes = encode(&job).unwrap();
        // Version 1, then postcard in field order: name, path, period (secs, nanos), keep
        // rules, exclusions, shares, confined (00), watch (01), then the state.
        assert_eq!(
            hex::encode(&bytes),
            "010170022f70ac02000102000000000001052a2e746d7001020400010e000001"
        );
        assert_eq!(decode::<BackupJob>(&bytes).unwrap(), job);
    }

    #[test]
    fn records_carry_a_version_and_refuse_others() {
        let info = SnapshotInfo {
            no: 3,
            at: 1_700_000_000,
            files: 2,
            bytes: 10,
            added: 1,
            removed: 0,
            changed: 1,
            partial: false,
        };
        let bytes = encode(&info).unwrap();
        assert_eq!(bytes.first(), Some(&RECORD_V1));
        assert_eq!(decode::<SnapshotInfo>(&bytes).unwrap(), info);
        let mut later = bytes.clone();
        later[0] = 2;
        let err = decode::<SnapshotInfo>(&later).unwrap_err();
        assert!(err.to_string().contains("unknown version"), "{err}");
        assert!(decode::<SnapshotInfo>(&[]).is_err());
    }
}
