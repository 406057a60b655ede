//! Compaction's catalog side as prune relies on it: dead bytes counted per pack, files
//! pointed at copies only when the copies are whole, old packs freed with their shares, and
//! packs nobody uses found.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use shard_crypto::{KdfParams, KeyRecord, VaultKey, VaultKeys};
use shard_proto::{BLOB_OVERHEAD, BlobAt, ChunkId, ChunkRef, Manifest, NodeId, PackId, ShareId};
use shard_store::{AckedShare, Catalog, Error, FileKind, FileMeta, VaultCatalog};

const PEERS: [NodeId; 3] = [NodeId([0xA1; 32]), NodeId([0xB2; 32]), NodeId([0xC3; 32])];
const VAULT: [u8; 16] = [7; 16];
const SHARE_LEN: u32 = 4096;

fn account(catalog: &Catalog) -> (shard_store::AccountId, VaultKeys) {
    let key = VaultKey::generate().unwrap();
    let record = KeyRecord::wrap(&key, b"a good passphrase", KdfParams::INSECURE_FAST).unwrap();
    (
        catalog.create_account("alice", &record).unwrap(),
        VaultKeys::derive(&key),
    )
}

fn meta(name: &str, size: u64) -> FileMeta {
    FileMeta {
        name: name.as_bytes().to_vec(),
        kind: FileKind::File,
        size,
        mtime: 1_700_000_000,
        mtime_nanos: 0,
        mode: 0o600,
        link_target: None,
    }
}

/// A made-up pack 2-of-3 and its share ids.
struct TestPack {
    id: PackId,
    shares: Vec<ShareId>,
}

impl TestPack {
    fn new(seed: u8) -> Self {
        Self {
            id: PackId([seed; 32]),
            shares: (0..3)
                .map(|i| ShareId([seed.wrapping_mul(4).wrapping_add(i); 32]))
                .collect(),
        }
    }

    /// The reference to a blob of `chunk` (`len` bytes) at `offset` of this pack.
    fn blob(&self, chunk: u8, len: u32, offset: u32) -> ChunkRef {
        ChunkRef {
            id: ChunkId([chunk; 32]),
            len,
            k: 2,
            n: 3,
            share_len: SHARE_LEN,
            shares: self.shares.clone(),
            pack: Some(BlobAt {
                pack: self.id,
                offset,
            }),
        }
    }

    /// Records the pack's shares acknowledged (only the first `acked` of them) and its blobs.
    fn record(&self, vault: &VaultCatalog<'_>, blobs: &[ChunkRef], acked: usize) {
        let acks: Vec<AckedShare> = (0u8..)
            .zip(&self.shares)
            .take(acked)
            .map(|(index, share)| AckedShare {
                chunk: ChunkId(self.id.0),
                k: 2,
                n: 3,
                share_len: SHARE_LEN,
                index,
                share: *share,
                peer: PEERS[usize::from(index)],
            })
            .collect();
        let blobs: Vec<_> = blobs
            .iter()
            .map(|b| (b.id, b.pack.unwrap(), b.len))
            .collect();
        vault.record_acks_and_blobs(&acks, &blobs).unwrap();
    }
}

fn store(vault: &VaultCatalog<'_>, name: &str, chunks: Vec<ChunkRef>) {
    let size = chunks.iter().map(|c| u64::from(c.len)).sum();
    let begun = vault
        .begin_files(&[(meta(name, size), Manifest { size, chunks })])
        .unwrap();
    vault.commit_files(&[begun[0].id]).unwrap();
}

fn manifest_of(vault: &VaultCatalog<'_>, name: &str) -> Manifest {
    let entry = vault.versions(name.as_bytes()).unwrap().pop().unwrap();
    vault.manifest(entry.id).unwrap()
}

#[test]
fn prune_counts_dead_bytes_moves_files_to_whole_copies_and_frees_the_old_pack() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let (acct, keys) = account(&catalog);
    let vault = catalog.vault(acct, &keys);

    let old = TestPack::new(1);
    let (a, b, c) = (
        old.blob(0xA, 100, 0),
        old.blob(0xB, 300, 128),
        old.blob(0xC, 50, 512),
    );
    old.record(&vault, &[a.clone(), b.clone(), c.clone()], 3);
    store(&vault, "a", vec![a.clone()]);
    store(&vault, "b", vec![b.clone()]);
    store(&vault, "ac", vec![a.clone(), c.clone()]);

    // Nothing removed: nothing dead.
    let usage = vault.count_pack_usage().unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].dead_bytes(), 0);
    assert_eq!(usage[0].bytes, 450 + 3 * BLOB_OVERHEAD);

    let b_file = vault.versions(b"b").unwrap()[0].id;
    assert!(vault.delete_files(&VAULT, &[b_file]).unwrap().is_empty());
    let usage = vault.count_pack_usage().unwrap();
    assert_eq!(usage[0].pack, old.id);
    assert_eq!((usage[0].blobs, usage[0].live_blobs), (3, 2));
    assert_eq!(usage[0].dead_bytes(), 300 + BLOB_OVERHEAD);
    let live: Vec<_> = vault
        .live_blobs(&old.id)
        .unwrap()
        .into_iter()
        .map(|l| (l.chunk, l.at.offset, l.len))
        .collect();
    assert_eq!(live, vec![(a.id, 0, 100), (c.id, 512, 50)]);

    // A copy whose pack is not whole yet: nothing changes.
    let half = TestPack::new(2);
    let (a2, c2) = (half.blob(0xA, 100, 64), half.blob(0xC, 50, 0));
    half.record(&vault, &[a2.clone(), c2.clone()], 2);
    let moves: HashMap<_, _> = [((a.id, old.id), a2.clone()), ((c.id, old.id), c2.clone())]
        .into_iter()
        .collect();
    let err = vault.relocate(&VAULT, &moves).unwrap_err();
    assert!(
        matches!(err, Error::NotAcknowledged { unacked: 1, .. }),
        "{err}"
    );
    assert_eq!(manifest_of(&vault, "ac").chunks, vec![a.clone(), c.clone()]);

    // The whole copy: every file moves, the old pack goes with its three shares.
    let new = TestPack::new(3);
    let (a3, c3) = (new.blob(0xA, 100, 64), new.blob(0xC, 50, 0));
    new.record(&vault, &[a3.clone(), c3.clone()], 3);
    let moves: HashMap<_, _> = [((a.id, old.id), a3.clone()), ((c.id, old.id), c3.clone())]
        .into_iter()
        .collect();
    let relocated = vault.relocate(&VAULT, &moves).unwrap();
    assert_eq!(relocated.files, 2);
    assert_eq!(relocated.packs_freed, 1);
    let mut freed: Vec<_> = relocated.freed.iter().map(|s| s.id).collect();
    freed.sort();
    assert_eq!(freed, old.shares);
    assert_eq!(manifest_of(&vault, "a").chunks, vec![a3.clone()]);
    assert_eq!(
        manifest_of(&vault, "ac").chunks,
        vec![a3.clone(), c3.clone()]
    );
    assert!(vault.encodings(&ChunkId(old.id.0)).unwrap().is_empty());
    assert!(vault.live_blobs(&old.id).unwrap().is_empty());

    // The half pack is used by nobody: found and dropped with its two acknowledged shares;
    // the new pack, used, stays, and has nothing dead.
    let (count, freed) = vault.drop_unused(&VAULT).unwrap();
    assert_eq!(count, 1);
    assert_eq!(freed.len(), 2);
    assert!(freed.iter().all(|s| s.chunk == ChunkId(half.id.0)));
    let usage = vault.count_pack_usage().unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].pack, new.id);
    assert_eq!(usage[0].dead_bytes(), 0);
    assert_eq!(vault.drop_unused(&VAULT).unwrap().0, 0);

    // Removing the last files frees the new pack like any other.
    let ids: Vec<_> = vault.list().unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(vault.delete_files(&VAULT, &ids).unwrap().len(), 3);
}

#[test]
fn a_chunk_live_in_two_packs_moves_from_both_and_a_pack_still_used_stays() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let (acct, keys) = account(&catalog);
    let vault = catalog.vault(acct, &keys);

    let (p, q) = (TestPack::new(10), TestPack::new(20));
    let (x_p, y_p) = (p.blob(0x1, 10, 0), p.blob(0x2, 10, 64));
    let (x_q, z_q) = (q.blob(0x1, 10, 0), q.blob(0x3, 10, 64));
    p.record(&vault, &[x_p.clone(), y_p.clone()], 3);
    q.record(&vault, &[x_q.clone(), z_q.clone()], 3);
    store(&vault, "x-in-p", vec![x_p.clone()]);
    store(&vault, "x-in-q", vec![x_q.clone()]);
    store(&vault, "z", vec![z_q.clone()]);

    // Only x moves from p; x moves from q too, but z keeps q in use.
    let r = TestPack::new(30);
    let x_r = r.blob(0x1, 10, 0);
    r.record(&vault, std::slice::from_ref(&x_r), 3);
    let moves: HashMap<_, _> = [((x_p.id, p.id), x_r.clone()), ((x_q.id, q.id), x_r.clone())]
        .into_iter()
        .collect();
    let relocated = vault.relocate(&VAULT, &moves).unwrap();
    assert_eq!(relocated.files, 2);
    // p is freed (y was never used by a file); q is not.
    assert_eq!(relocated.packs_freed, 1);
    assert!(relocated.freed.iter().all(|s| s.chunk == ChunkId(p.id.0)));
    assert_eq!(manifest_of(&vault, "x-in-p").chunks, vec![x_r.clone()]);
    assert_eq!(manifest_of(&vault, "x-in-q").chunks, vec![x_r.clone()]);
    assert_eq!(manifest_of(&vault, "z").chunks, vec![z_q.clone()]);
    let usage = vault.count_pack_usage().unwrap();
    let q_usage = usage.iter().find(|u| u.pack == q.id).unwrap();
    assert_eq!(q_usage.dead_bytes(), 10 + BLOB_OVERHEAD);
}
