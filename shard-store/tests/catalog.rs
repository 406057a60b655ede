//! The owner's catalog as a user relies on it: accounts, files that appear only once safe,
//! versions, separate vaults, and a database that names and sizes nothing.
// Test code: panicking on failure and casting made-up numbers are the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use std::path::Path;

use shard_crypto::{KdfParams, KeyRecord, VaultKey, VaultKeys};
use shard_proto::{BlobAt, ChunkId, ChunkRef, Manifest, NodeId, PackId, PackRef, ShareId};
use shard_store::{Catalog, Error, FileKind, FileMeta, ShareState};

fn account(catalog: &Catalog, name: &str) -> (shard_store::AccountId, VaultKeys) {
    let key = VaultKey::generate().unwrap();
    let record = KeyRecord::wrap(&key, b"a good passphrase", KdfParams::INSECURE_FAST).unwrap();
    (
        catalog.create_account(name, &record).unwrap(),
        VaultKeys::derive(&key),
    )
}

fn meta(name: &str, size: u64) -> FileMeta {
    FileMeta {
        name: name.as_bytes().to_vec(),
        kind: FileKind::File,
        size,
        mtime: 1_700_000_000,
        mtime_nanos: 5,
        mode: 0o640,
        link_target: None,
    }
}

/// A manifest of at least `chunks` chunks (at most 4 MiB each) summing to `size`, with
/// distinct made-up ids from `seed`.
fn manifest(seed: u8, size: u64, chunks: u8) -> Manifest {
    let chunks = chunks.max(size.div_ceil(4 << 20) as u8);
    let each = size / u64::from(chunks);
    let chunks: Vec<ChunkRef> = (0..chunks)
        .map(|c| {
            let len = if c + 1 == chunks {
                size - each * u64::from(chunks - 1)
            } else {
                each
            };
            ChunkRef {
                id: ChunkId([seed ^ c.wrapping_mul(37); 32]),
                len: len as u32,
                k: 2,
                n: 3,
                share_len: (((len + 17) / 2 + 1) & !1) as u32 + 2,
                shares: (0..3)
                    .map(|i| ShareId([seed.wrapping_add(c * 3 + i + 1); 32]))
                    .collect(),
                pack: None,
            }
        })
        .collect();
    Manifest { size, chunks }
}

const PEERS: [NodeId; 3] = [NodeId([0xA1; 32]), NodeId([0xB2; 32]), NodeId([0xC3; 32])];

fn ack_all(vault: &shard_store::VaultCatalog<'_>, m: &Manifest) {
    let refs: Vec<_> = m.chunks.iter().map(|c| (c, &PEERS[..])).collect();
    vault.record_shares(&refs).unwrap();
    let acks: Vec<_> = m
        .chunks
        .iter()
        .flat_map(|c| c.shares.iter().map(|s| (*s, ShareState::Acked)))
        .collect();
    vault.set_share_states(&acks).unwrap();
}

#[test]
fn accounts_are_unique_and_keep_their_key_records() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let key = VaultKey::generate().unwrap();
    let record = KeyRecord::wrap(&key, b"first passphrase", KdfParams::INSECURE_FAST).unwrap();
    let id = catalog.create_account("alice", &record).unwrap();
    assert!(matches!(
        catalog.create_account("alice", &record),
        Err(Error::AccountExists(name)) if name == "alice"
    ));
    let stored = catalog.account("alice").unwrap().unwrap();
    assert_eq!(stored.id, id);
    assert_eq!(
        stored.key_record.unwrap_key(b"first passphrase").unwrap(),
        key
    );

    let new = record
        .rewrap(
            b"first passphrase",
            b"second passphrase",
            KdfParams::INSECURE_FAST,
        )
        .unwrap();
    catalog.update_key_record(id, &new).unwrap();
    drop(catalog);
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let stored = catalog.account("alice").unwrap().unwrap();
    assert_eq!(
        stored.key_record.unwrap_key(b"second passphrase").unwrap(),
        key
    );
    assert!(stored.key_record.unwrap_key(b"first passphrase").is_err());
    assert_eq!(catalog.accounts().unwrap().len(), 1);
    catalog.delete_account(id).unwrap();
    assert!(catalog.account("alice").unwrap().is_none());
}

#[test]
fn a_file_is_visible_only_once_every_share_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let (acct, keys) = account(&catalog, "alice");
    let vault = catalog.vault(acct, &keys);
    let m = manifest(1, 5_000_000, 3);
    let begun = vault
        .begin_files(&[(meta("papers/deed.pdf", 5_000_000), m.clone())])
        .unwrap();
    assert!(
        vault.list().unwrap().is_empty(),
        "pending files are not listed"
    );
    assert_eq!(vault.pending().unwrap().len(), 1);

    let refs: Vec<_> = m.chunks.iter().map(|c| (c, &PEERS[..])).collect();
    vault.record_shares(&refs).unwrap();
    // All but one share acknowledged: the commit is refused and changes nothing.
    let mut acks: Vec<_> = m
        .chunks
        .iter()
        .flat_map(|c| c.shares.iter().map(|s| (*s, ShareState::Acked)))
        .collect();
    let last = acks.pop().unwrap();
    vault.set_share_states(&acks).unwrap();
    match vault.commit_files(&[begun[0].id]) {
        Err(Error::NotAcknowledged { chunk, unacked }) => {
            assert_eq!(chunk, m.chunks[2].id);
            assert_eq!(unacked, 1);
        }
        other => panic!("expected NotAcknowledged, got {other:?}"),
    }
    assert!(vault.list().unwrap().is_empty());

    vault.set_share_states(&[last]).unwrap();
    vault.commit_files(&[begun[0].id]).unwrap();
    let listed = vault.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].meta, meta("papers/deed.pdf", 5_000_000));
    assert_eq!(vault.manifest(listed[0].id).unwrap(), m);
    let c = &m.chunks[0];
    let shares = vault.encoding_shares(&c.id, c.k, c.n).unwrap();
    assert_eq!(
        shares.iter().map(|s| s.peer).collect::<Vec<_>>(),
        PEERS.to_vec()
    );
    assert!(shares.iter().all(|s| s.state == ShareState::Acked));
}

#[test]
fn a_second_put_of_a_name_is_a_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let (acct, keys) = account(&catalog, "alice");
    let vault = catalog.vault(acct, &keys);
    for (seed, size) in [(10u8, 1000u64), (20, 2000)] {
        let m = manifest(seed, size, 1);
        let f = vault
            .begin_files(&[(meta("notes.txt", size), m.clone())])
            .unwrap();
        ack_all(&vault, &m);
        vault.commit_files(&[f[0].id]).unwrap();
    }
    let versions = vault.versions(b"notes.txt").unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version, v.meta.size))
            .collect::<Vec<_>>(),
        vec![(1, 1000), (2, 2000)]
    );
    assert!(vault.versions(b"other.txt").unwrap().is_empty());
}

#[test]
fn two_accounts_do_not_see_each_others_files() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let (a, ka) = account(&catalog, "alice");
    let (b, kb) = account(&catalog, "bob");
    let va = catalog.vault(a, &ka);
    let m = manifest(30, 100, 1);
    let f = va
        .begin_files(&[(meta("alice-only.txt", 100), m.clone())])
        .unwrap();
    ack_all(&va, &m);
    va.commit_files(&[f[0].id]).unwrap();
    let vb = catalog.vault(b, &kb);
    assert!(vb.list().unwrap().is_empty());
    assert!(vb.versions(b"alice-only.txt").unwrap().is_empty());
    assert!(matches!(vb.manifest(f[0].id), Err(Error::NoSuchFile(_))));
    // Bob's keys on Alice's rows: nothing opens.
    let wrong = catalog.vault(a, &kb);
    assert!(wrong.list().is_err());
}

#[test]
fn the_database_names_and_sizes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let names = [
        "grandmother-will-2019.pdf",
        "passport scan ÅÄÖ.jpg",
        "bank;statements\n2024.xlsx",
    ];
    let sizes = [7_340_033u64, 1_234_567, 91_827_364];
    {
        let catalog = Catalog::open(&path).unwrap();
        let (acct, keys) = account(&catalog, "alice");
        let vault = catalog.vault(acct, &keys);
        for (i, (name, size)) in names.iter().zip(sizes).enumerate() {
            let m = manifest(40 + i as u8 * 16, size, 4);
            let f = vault.begin_files(&[(meta(name, size), m.clone())]).unwrap();
            ack_all(&vault, &m);
            vault.commit_files(&[f[0].id]).unwrap();
        }
        assert_eq!(vault.list().unwrap().len(), 3);
    }
    // Every value of every row of every table, read with plain SQLite.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut values = 0;
    for table in &tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for c in 0..columns {
                values += 1;
                match row.get_ref(c).unwrap() {
                    rusqlite::types::ValueRef::Integer(v) => {
                        assert!(
                            !sizes.contains(&(v as u64)),
                            "{table}: a file size is stored in the clear"
                        );
                    }
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        for name in names {
                            assert!(
                                !contains(t, name.as_bytes()),
                                "{table}: a file name is stored"
                            );
                        }
                        for size in sizes {
                            assert!(
                                !contains(t, size.to_string().as_bytes()),
                                "{table}: a size as text"
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(
        values > 50,
        "the scan looked at too little to mean anything ({values})"
    );
    // And the raw bytes of the database and its journal.
    for file in ["catalog.db", "catalog.db-wal"] {
        let p = dir.path().join(file);
        if Path::new(&p).exists() {
            let bytes = std::fs::read(&p).unwrap();
            for name in names {
                assert!(
                    !contains(&bytes, name.as_bytes()),
                    "{file} contains a file name"
                );
                assert!(
                    !contains(&bytes, &name.as_bytes()[..10]),
                    "{file} contains part of a name"
                );
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn sealed_rows_cannot_be_swapped_between_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let catalog = Catalog::open(&path).unwrap();
    let (acct, keys) = account(&catalog, "alice");
    let vault = catalog.vault(acct, &keys);
    for (i, name) in ["a.txt", "b.txt"].iter().enumerate() {
        let m = manifest(60 + i as u8 * 8, 10, 1);
        let f = vault.begin_files(&[(meta(name, 10), m.clone())]).unwrap();
        ack_all(&vault, &m);
        vault.commit_files(&[f[0].id]).unwrap();
    }
    // Someone with write access to the database swaps the two metadata blobs.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE files SET meta = (SELECT meta FROM files WHERE id = 2) WHERE id = 1;",
    )
    .unwrap();
    assert!(matches!(
        vault.list(),
        Err(Error::Crypto(shard_crypto::Error::Unauthentic))
    ));
}

#[test]
fn a_newer_schema_is_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    drop(Catalog::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    assert!(matches!(Catalog::open(&path), Err(Error::NewerCatalog(99))));
}

#[test]
fn peers_are_pinned_updated_and_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let mut peer = shard_store::PeerRecord {
        id: NodeId([7; 32]),
        name: "laptop".into(),
        addrs: vec!["127.0.0.1:7000".into(), "[::1]:7000".into()],
        last_seen: None,
    };
    catalog.upsert_peer(&peer).unwrap();
    assert_eq!(catalog.peers().unwrap(), vec![peer.clone()]);
    peer.addrs = vec!["127.0.0.2:7001".into()];
    peer.last_seen = Some(42);
    catalog.upsert_peer(&peer).unwrap();
    assert_eq!(catalog.peers().unwrap(), vec![peer.clone()]);
    assert!(catalog.remove_peer(&peer.id).unwrap());
    assert!(!catalog.remove_peer(&peer.id).unwrap());
    assert!(catalog.peers().unwrap().is_empty());
}

#[test]
fn acks_are_recorded_per_share_and_removing_files_frees_unshared_chunks() {
    use shard_store::AckedShare;
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let (acct, keys) = account(&catalog, "alice");
    let vault = catalog.vault(acct, &keys);
    let shared = manifest(70, 100, 1);
    let mut both = manifest(90, 200, 1);
    both.chunks.push(shared.chunks[0].clone());
    both.size += 100;
    let acks = |m: &Manifest| -> Vec<AckedShare> {
        m.chunks
            .iter()
            .flat_map(|c| {
                c.shares.iter().enumerate().map(|(i, s)| AckedShare {
                    chunk: c.id,
                    k: c.k,
                    n: c.n,
                    share_len: c.share_len,
                    index: i as u8,
                    share: *s,
                    peer: PEERS[i],
                })
            })
            .collect()
    };
    // Two of three shares acknowledged: the chunk's encoding is known, with two shares.
    vault.record_acks(&acks(&shared)[..2]).unwrap();
    let encodings = vault.encodings(&shared.chunks[0].id).unwrap();
    assert_eq!(encodings.len(), 1);
    assert_eq!(encodings[0].shares.len(), 2);
    vault.record_acks(&acks(&shared)).unwrap();
    vault.record_acks(&acks(&both)).unwrap();
    let f1 = vault
        .begin_files(&[(meta("one", 100), shared.clone())])
        .unwrap()[0]
        .id;
    let f2 = vault
        .begin_files(&[(meta("two", 300), both.clone())])
        .unwrap()[0]
        .id;
    vault.commit_files(&[f1, f2]).unwrap();

    // Removing "two" frees only its own chunk; the shared one is still used by "one".
    let freed = vault.delete_files(&[7; 16], &[f2]).unwrap();
    assert_eq!(
        freed.iter().map(|s| s.id).collect::<Vec<_>>(),
        both.chunks[0].shares
    );
    assert_eq!(vault.list().unwrap().len(), 1);
    let freed = vault.delete_files(&[7; 16], &[f1]).unwrap();
    assert_eq!(
        freed.iter().map(|s| s.id).collect::<Vec<_>>(),
        shared.chunks[0].shares
    );
    assert!(vault.encodings(&shared.chunks[0].id).unwrap().is_empty());

    // Every freed share was queued for deletion with the removal itself, until done.
    for share in &freed {
        assert!(
            catalog
                .pending_deletions(&share.peer)
                .unwrap()
                .contains(&(acct, [7; 16], share.id))
        );
        catalog
            .deletions_done(&share.peer, &[([7; 16], share.id)])
            .unwrap();
    }
    // Deletions for an offline peer wait in a queue until done.
    vault
        .queue_deletions(&[1; 16], &[(PEERS[0], freed[0].id)])
        .unwrap();
    assert!(
        catalog
            .pending_deletions(&PEERS[0])
            .unwrap()
            .contains(&(acct, [1; 16], freed[0].id))
    );
    catalog
        .deletions_done(&PEERS[0], &[([1; 16], freed[0].id)])
        .unwrap();
    assert!(
        !catalog
            .pending_deletions(&PEERS[0])
            .unwrap()
            .contains(&(acct, [1; 16], freed[0].id))
    );
    // Done deletions are remembered through the peers' grace period, then forgotten.
    let (in_grace, oldest) = catalog.deletions_in_grace(acct).unwrap();
    assert_eq!(in_grace, freed.len() as u64 + 1);
    assert!(oldest.is_some());
    assert_eq!(catalog.forget_deletions(0).unwrap(), 0);
    assert_eq!(catalog.forget_deletions(i64::MAX).unwrap(), in_grace);
    assert_eq!(catalog.deletions_in_grace(acct).unwrap(), (0, None));
}

/// A chunk stored again with another redundancy gets a second encoding of its own: the first
/// one's shares, manifests and health are untouched, and a manifest that names shares nobody
/// acknowledged is never committed, however many shares its chunk has otherwise.
#[test]
fn a_second_encoding_of_a_chunk_is_its_own_record() {
    use shard_store::AckedShare;
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let (acct, keys) = account(&catalog, "alice");
    let vault = catalog.vault(acct, &keys);
    let first = manifest(5, 1000, 1);
    let f1 = vault
        .begin_files(&[(meta("papers", 1000), first.clone())])
        .unwrap()[0]
        .id;
    ack_all(&vault, &first);
    vault.commit_files(&[f1]).unwrap();

    // The same chunk, 3-of-4 now: other share ids. Only the shares the first encoding had at
    // indices 0..3 are acknowledged — the count of acknowledged shares of the chunk (3 + 3)
    // would pass a count-based check; the ids do not.
    let mut second = first.clone();
    second.chunks[0].k = 3;
    second.chunks[0].n = 4;
    second.chunks[0].share_len = 400;
    second.chunks[0].shares = (0..4).map(|i| ShareId([200 + i; 32])).collect();
    let f2 = vault
        .begin_files(&[(meta("papers", 1000), second.clone())])
        .unwrap()[0]
        .id;
    let c = &second.chunks[0];
    let ack = |i: u8| AckedShare {
        chunk: c.id,
        k: 3,
        n: 4,
        share_len: 400,
        index: i,
        share: c.shares[usize::from(i)],
        peer: PEERS[usize::from(i % 3)],
    };
    vault.record_acks(&[ack(3)]).unwrap();
    match vault.commit_files(&[f2]) {
        Err(Error::NotAcknowledged { chunk, unacked }) => {
            assert_eq!((chunk, unacked), (c.id, 3));
        }
        other => panic!("expected NotAcknowledged, got {other:?}"),
    }
    vault.record_acks(&[ack(0), ack(1), ack(2)]).unwrap();
    vault.commit_files(&[f2]).unwrap();

    // Two encodings, each with its own shares; both versions list what they were stored with.
    let mut encodings = vault.encodings(&c.id).unwrap();
    encodings.sort_by_key(|e| e.n);
    assert_eq!(
        encodings
            .iter()
            .map(|e| (e.k, e.n, e.shares.len()))
            .collect::<Vec<_>>(),
        vec![(2, 3, 3), (3, 4, 4)]
    );
    let versions = vault.versions(b"papers").unwrap();
    assert_eq!(vault.manifest(versions[0].id).unwrap(), first);
    assert_eq!(vault.manifest(versions[1].id).unwrap(), second);
    let located = vault.locate(&first.chunks[0].shares).unwrap();
    assert!(located.values().all(|r| (r.k, r.n) == (2, 3)));

    // Removing the first version frees the first encoding only.
    let freed = vault.delete_files(&[7; 16], &[f1]).unwrap();
    assert_eq!(
        freed.iter().map(|s| s.id).collect::<Vec<_>>(),
        first.chunks[0].shares
    );
    assert_eq!(vault.encodings(&c.id).unwrap().len(), 1);
    assert_eq!(vault.export("alice").unwrap().shares.len(), 4);
}

/// A share id that is acknowledged, but for another index or chunk, does not count.
#[test]
fn a_share_acknowledged_at_another_index_does_not_commit_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let (acct, keys) = account(&catalog, "alice");
    let vault = catalog.vault(acct, &keys);
    let good = manifest(9, 500, 1);
    let f = vault
        .begin_files(&[(meta("a", 500), good.clone())])
        .unwrap()[0]
        .id;
    ack_all(&vault, &good);
    vault.commit_files(&[f]).unwrap();
    let mut swapped = good.clone();
    swapped.chunks[0].shares.swap(0, 1);
    let g = vault
        .begin_files(&[(meta("b", 500), swapped.clone())])
        .unwrap()[0]
        .id;
    assert!(matches!(
        vault.commit_files(&[g]),
        Err(Error::NotAcknowledged { unacked: 2, .. })
    ));
}

#[test]
fn a_version_one_catalog_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    drop(Catalog::open(&path).unwrap());
    // Take it back to version 1, as an older build left it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE deletions; DROP TABLE vault_state; DROP TABLE adoptions; DROP TABLE former_owners;
         ALTER TABLE accounts DROP COLUMN failed_logins; ALTER TABLE accounts DROP COLUMN last_failure;
         ALTER TABLE accounts DROP COLUMN admin; DROP TABLE blobs; DROP TABLE packs;
         ALTER TABLE chunks DROP COLUMN share_ids; DROP TABLE kept_heads;
         DROP TABLE backup_records; ALTER TABLE files DROP COLUMN trashed;
         UPDATE schema_version SET version = 1;",
    )
    .unwrap();
    drop(conn);
    let catalog = Catalog::open(&path).unwrap();
    assert!(catalog.pending_deletions(&PEERS[0]).unwrap().is_empty());
    let (acct, _) = account(&catalog, "after-migration");
    assert_eq!(catalog.login_failures(acct).unwrap(), (0, None));
}

/// A catalog of version 7 (blob rows naming their pack by its 32-byte id) keeps its blobs
/// through the migration to version 8: a put finds them again, prune counts them.
#[test]
fn a_version_seven_catalogs_blobs_survive_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let pack = PackId([77; 32]);
    let chunk = ChunkId([5; 32]);
    let (acct, keys, before) = {
        let catalog = Catalog::open(&path).unwrap();
        let (acct, keys) = account(&catalog, "alice");
        let vault = catalog.vault(acct, &keys);
        let acks: Vec<_> = (0u8..3)
            .map(|index| shard_store::AckedShare {
                chunk: ChunkId(pack.0),
                k: 2,
                n: 3,
                share_len: 4096,
                index,
                share: ShareId([200 + index; 32]),
                peer: PEERS[usize::from(index)],
            })
            .collect();
        let at = BlobAt { pack, offset: 16 };
        vault
            .record_acks_and_blobs(&acks, &[(chunk, at, 100)])
            .unwrap();
        let before = vault.blob_copies(&chunk).unwrap();
        (acct, keys, before)
    };
    assert_eq!(before.len(), 1);
    // Back to version 7's tables, as the build before left them.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE old_blobs (
                 account INTEGER NOT NULL, chunk BLOB NOT NULL, pack BLOB NOT NULL,
                 at INTEGER NOT NULL, len INTEGER NOT NULL DEFAULT 0,
                 live INTEGER NOT NULL DEFAULT 1,
                 PRIMARY KEY (account, chunk, pack)) WITHOUT ROWID;
             INSERT INTO old_blobs SELECT b.account, b.chunk, p.id, b.at, b.len, b.live
                 FROM blobs b JOIN packs p ON p.no = b.pack;
             DROP TABLE blobs; DROP TABLE packs;
             ALTER TABLE old_blobs RENAME TO blobs;
             CREATE INDEX blobs_by_pack ON blobs(account, pack);
             ALTER TABLE chunks DROP COLUMN share_ids; DROP TABLE kept_heads;
             ALTER TABLE vault_state DROP COLUMN told; DROP TABLE backup_records;
             ALTER TABLE files DROP COLUMN trashed;
             UPDATE schema_version SET version = 7;",
        )
        .unwrap();
    let catalog = Catalog::open(&path).unwrap();
    let vault = catalog.vault(acct, &keys);
    assert_eq!(vault.blob_copies(&chunk).unwrap(), before);
    assert_eq!(vault.live_blobs(&pack).unwrap().len(), 1);
}

#[test]
fn backup_records_of_schema_11_are_read_after_the_table_is_rebuilt() {
    use shard_store::{BackupKind, BackupRecord};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let body: Vec<u8> = (0..=250u8).cycle().take(300_000).collect();
    let (acct, keys) = {
        let catalog = Catalog::open(&path).unwrap();
        let (acct, keys) = account(&catalog, "alice");
        catalog
            .vault(acct, &keys)
            .put_backup(BackupRecord {
                kind: BackupKind::Snapshot,
                job: "papers".into(),
                no: 3,
                head: b"summary".to_vec(),
                body: body.clone(),
            })
            .unwrap();
        (acct, keys)
    };
    // Back to version 11's table, as the build before left it.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE old (
                 account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
                 kind INTEGER NOT NULL, key BLOB NOT NULL, no INTEGER NOT NULL,
                 head BLOB NOT NULL, body BLOB NOT NULL,
                 PRIMARY KEY (account, kind, key, no)) WITHOUT ROWID;
             INSERT INTO old SELECT account, kind, key, no, head, body FROM backup_records;
             DROP TABLE backup_records;
             ALTER TABLE old RENAME TO backup_records;
             UPDATE schema_version SET version = 11;",
        )
        .unwrap();
    let catalog = Catalog::open(&path).unwrap();
    let vault = catalog.vault(acct, &keys);
    assert_eq!(
        vault
            .backup_body(BackupKind::Snapshot, "papers", 3)
            .unwrap()
            .unwrap(),
        body
    );
    let heads = vault
        .backup_heads(BackupKind::Snapshot, Some("papers"))
        .unwrap();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].head, b"summary");
    // Written again under the same number: replaced, not a second row.
    vault
        .put_backup(BackupRecord {
            kind: BackupKind::Snapshot,
            job: "papers".into(),
            no: 3,
            head: b"again".to_vec(),
            body: b"short".to_vec(),
        })
        .unwrap();
    let heads = vault
        .backup_heads(BackupKind::Snapshot, Some("papers"))
        .unwrap();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].head, b"again");
    assert_eq!(
        vault
            .backup_body(BackupKind::Snapshot, "papers", 3)
            .unwrap()
            .unwrap(),
        b"short"
    );
}

#[test]
fn a_catalog_with_accounts_of_the_earlier_format_is_refused_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    {
        let catalog = Catalog::open(&path).unwrap();
        account(&catalog, "alice");
    }
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE schema_version SET version = 4", [])
        .unwrap();
    // Version 4 is data format 1 (SHA-256 share ids, HMAC chunk ids).
    let err = Catalog::open(&path).err().unwrap();
    assert!(matches!(err, Error::OlderCatalog(4)));
    assert!(err.to_string().contains("shard init"), "{err}");
    assert!(err.to_string().contains("format 1"), "{err}");
}

#[test]
fn a_vault_exported_to_a_snapshot_imports_whole_on_a_new_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let old = Catalog::open(&dir.path().join("old.db")).unwrap();
    let key = VaultKey::generate().unwrap();
    let record = KeyRecord::wrap(&key, b"a good passphrase", KdfParams::INSECURE_FAST).unwrap();
    let acct = old.create_account("alice", &record).unwrap();
    let keys = VaultKeys::derive(&key);
    let vault = old.vault(acct, &keys);
    for (i, (name, size)) in [("a.txt", 100u64), ("b.txt", 200), ("a.txt", 300)]
        .iter()
        .enumerate()
    {
        let m = manifest(110 + i as u8 * 10, *size, 1);
        let f = vault
            .begin_files(&[(meta(name, *size), m.clone())])
            .unwrap();
        ack_all(&vault, &m);
        vault.commit_files(&[f[0].id]).unwrap();
    }
    let snapshot = vault.export("alice").unwrap();
    assert_eq!(snapshot.files.len(), 3);
    assert_eq!(snapshot.shares.len(), 9);
    assert_eq!(
        streamed(&vault),
        snapshot,
        "the bytes written straight from the catalog"
    );

    let new = Catalog::open(&dir.path().join("new.db")).unwrap();
    let record2 = KeyRecord::wrap(&key, b"a new passphrase!", KdfParams::INSECURE_FAST).unwrap();
    let acct2 = new.create_account(&snapshot.account, &record2).unwrap();
    let vault2 = new.vault(acct2, &keys);
    vault2.import(&snapshot).unwrap();
    let before: Vec<_> = vault
        .list()
        .unwrap()
        .into_iter()
        .map(|e| (e.meta, e.version))
        .collect();
    let after: Vec<_> = vault2
        .list()
        .unwrap()
        .into_iter()
        .map(|e| (e.meta, e.version))
        .collect();
    assert_eq!(before, after);
    let a2 = vault2.versions(b"a.txt").unwrap();
    assert_eq!(
        vault2.manifest(a2[1].id).unwrap(),
        vault
            .manifest(vault.versions(b"a.txt").unwrap()[1].id)
            .unwrap()
    );
    assert_eq!(vault2.export("alice").unwrap().shares.len(), 9);
    assert_eq!(vault2.state().unwrap(), shard_store::VaultState::default());
    vault2
        .set_state(&shard_store::VaultState {
            seq: 4,
            snapshot: Some(vec![1, 2]),
        })
        .unwrap();
    assert_eq!(vault2.state().unwrap().seq, 4);
}

/// A removal queues a share's deletion for an offline peer; the same share is stored there
/// again before the peer comes back: the queued deletion is dropped, never sent.
#[test]
fn a_share_stored_again_cancels_its_queued_deletion() {
    use shard_store::AckedShare;
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let (acct, keys) = account(&catalog, "alice");
    let vault = catalog.vault(acct, &keys);
    let m = manifest(44, 700, 1);
    let c = &m.chunks[0];
    vault
        .queue_deletions(&[7; 16], &[(PEERS[1], c.shares[1])])
        .unwrap();
    assert_eq!(catalog.pending_deletions(&PEERS[1]).unwrap().len(), 1);
    vault
        .record_acks(&[AckedShare {
            chunk: c.id,
            k: c.k,
            n: c.n,
            share_len: c.share_len,
            index: 1,
            share: c.shares[1],
            peer: PEERS[1],
        }])
        .unwrap();
    assert!(catalog.pending_deletions(&PEERS[1]).unwrap().is_empty());
}

#[test]
fn the_first_account_is_the_administrator_and_the_role_passes_on() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    assert!(catalog.has_no_account().unwrap());
    let (a, _) = account(&catalog, "alice");
    let (_b, _) = account(&catalog, "bob");
    let (_c, _) = account(&catalog, "carol");
    assert!(!catalog.has_no_account().unwrap());
    let admin = |n: &str| catalog.account(n).unwrap().unwrap().admin;
    assert!(admin("alice") && !admin("bob") && !admin("carol"));
    // The administrator leaves: the oldest remaining account takes over, only one.
    catalog.delete_account(a).unwrap();
    assert!(admin("bob") && !admin("carol"));
}

/// The bytes `export_to` writes, whole.
fn exported(vault: &shard_store::VaultCatalog<'_>) -> Vec<u8> {
    let mut bytes = Vec::new();
    vault
        .export_to("alice", &mut |piece| {
            bytes.extend_from_slice(piece);
            Ok(())
        })
        .unwrap();
    bytes
}

/// What `export_to` wrote, decoded, in `export`'s order.
fn streamed(vault: &shard_store::VaultCatalog<'_>) -> shard_store::VaultSnapshot {
    let mut snapshot = shard_store::VaultSnapshot::from_bytes(&exported(vault)).unwrap();
    snapshot
        .files
        .sort_by(|a, b| (&a.meta.name, a.version).cmp(&(&b.meta.name, b.version)));
    snapshot
}

/// Reads `bytes` given in pieces of `piece` bytes.
fn read_in_pieces(bytes: &[u8], piece: usize) -> shard_store::VaultSnapshot {
    let mut files = Vec::new();
    let mut shares = Vec::new();
    let mut backups = Vec::new();
    let mut each = |item| {
        match item {
            shard_store::SnapshotItem::File(f) => files.push(f),
            shard_store::SnapshotItem::Share(s) => shares.push(s),
            shard_store::SnapshotItem::Backup(b) => backups.push(b),
        }
        Ok(())
    };
    let mut reader = shard_store::SnapshotReader::new();
    for part in bytes.chunks(piece) {
        reader.push(part, &mut each).unwrap();
    }
    let account = reader.finish(&mut each).unwrap();
    shard_store::VaultSnapshot {
        version: shard_store::SNAPSHOT_VERSION,
        account,
        files,
        shares,
        backups,
    }
}

/// With more files than one page of the catalog's scans, the snapshot written straight from
/// the catalog, a record at a time, decodes to the very snapshot `export` builds, whether it
/// is read whole or in pieces of any size.
#[test]
fn a_large_vault_exports_the_same_snapshot_as_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
    let key = VaultKey::generate().unwrap();
    let record = KeyRecord::wrap(&key, b"a good passphrase", KdfParams::INSECURE_FAST).unwrap();
    let acct = catalog.create_account("alice", &record).unwrap();
    let keys = VaultKeys::derive(&key);
    let vault = catalog.vault(acct, &keys);
    let files: Vec<_> = (0..1100u32)
        .map(|i| {
            // 80 chunks of distinct ids, shared by many files (the helper's share ids are
            // `seed + 1 ..= seed + 3`).
            let seed = (i % 80 * 3) as u8;
            let size = 1000 + u64::from(seed);
            (
                meta(&format!("d/{i:05}.txt"), size),
                manifest(seed, size, 1),
            )
        })
        .collect();
    let begun = vault.begin_files(&files).unwrap();
    for (_, m) in files.iter().take(80) {
        ack_all(&vault, m);
    }
    let ids: Vec<_> = begun.iter().map(|f| f.id).collect();
    vault.commit_files(&ids).unwrap();
    let mut snapshot = vault.export("alice").unwrap();
    assert_eq!(snapshot.files.len(), 1100);
    // Handed over a record at a time: never more than one file's record in one piece.
    let mut largest = 0;
    let mut pieces = 0;
    let written = vault
        .export_to("alice", &mut |piece| {
            largest = largest.max(piece.len());
            pieces += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(written, 1100);
    assert!(pieces > 1100 + 240, "{pieces} pieces");
    assert!(largest < 512, "a piece of {largest} bytes");
    // A sink that fails stops the export with its error.
    let err = vault
        .export_to("alice", &mut |_| Err(shard_store::Error::Stopped))
        .unwrap_err();
    assert!(matches!(err, shard_store::Error::Stopped), "{err}");

    let bytes = exported(&vault);
    let mut from_bytes = streamed(&vault);
    for s in [&mut snapshot, &mut from_bytes] {
        s.shares.sort_by_key(|s| s.share);
    }
    assert_eq!(from_bytes, snapshot);
    for piece in [1, 7, 4096, 1 << 20] {
        let mut read = read_in_pieces(&bytes, piece);
        read.files
            .sort_by(|a, b| (&a.meta.name, a.version).cmp(&(&b.meta.name, b.version)));
        read.shares.sort_by_key(|s| s.share);
        assert_eq!(read, snapshot, "read in pieces of {piece}");
    }
    // Cut short anywhere, it is an error, never a smaller vault.
    for cut in [1, bytes.len() / 2, bytes.len() - 1] {
        let mut reader = shard_store::SnapshotReader::new();
        let mut each = |_| Ok(());
        reader.push(&bytes[..cut], &mut each).unwrap();
        let err = reader.finish(&mut each).unwrap_err();
        assert!(
            err.to_string().contains("ends early"),
            "cut at {cut}: {err}"
        );
    }
    // Imported from the stream into a new account (more files than one batch of the import),
    // it is the same vault: names, version numbers, times stored, chunk lists, shares.
    let other = Catalog::open(&dir.path().join("other.db")).unwrap();
    let acct2 = other.create_account("alice", &record).unwrap();
    let vault2 = other.vault(acct2, &keys);
    let mut import = vault2.import_stream();
    let mut reader = shard_store::SnapshotReader::new();
    let mut each = |item| import.add(item);
    for part in bytes.chunks(50_000) {
        reader.push(part, &mut each).unwrap();
    }
    reader.finish(&mut each).unwrap();
    assert_eq!(import.finish().unwrap(), 1100);
    let listed = |v: &shard_store::VaultCatalog<'_>| -> Vec<_> {
        v.list()
            .unwrap()
            .into_iter()
            .map(|e| (e.meta, e.version, e.stored_at))
            .collect()
    };
    assert_eq!(listed(&vault2), listed(&vault));
    let mut again = vault2.export("alice").unwrap();
    again.shares.sort_by_key(|s| s.share);
    assert_eq!(again, snapshot);
    // And nothing may follow its end.
    let mut longer = bytes.clone();
    longer.push(0);
    let err = shard_store::VaultSnapshot::from_bytes(&longer).unwrap_err();
    assert!(err.to_string().contains("after its end"), "{err}");
}

/// An import keeps each version's number, gaps included (versions removed before the
/// snapshot), and the time it was stored; a snapshot naming one version twice is refused.
#[test]
fn an_import_keeps_version_numbers_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
    let (acct, keys) = account(&catalog, "alice");
    let vault = catalog.vault(acct, &keys);
    let m = manifest(30, 500, 1);
    let file = |version: u32, stored_at: i64| shard_store::SnapshotFile {
        meta: meta("diary.txt", 500),
        version,
        stored_at,
        manifest: m.clone(),
        trashed: None,
    };
    let snapshot = shard_store::VaultSnapshot {
        version: shard_store::SNAPSHOT_VERSION,
        account: "alice".into(),
        files: vec![file(2, 1_600_000_000), file(5, 1_700_000_000)],
        shares: Vec::new(),
        backups: Vec::new(),
    };
    vault.import(&snapshot).unwrap();
    let versions: Vec<_> = vault
        .versions(b"diary.txt")
        .unwrap()
        .into_iter()
        .map(|e| (e.version, e.stored_at))
        .collect();
    assert_eq!(versions, vec![(2, 1_600_000_000), (5, 1_700_000_000)]);
    // The next put of the name is version 6.
    let next = vault
        .begin_files(&[(meta("diary.txt", 500), m.clone())])
        .unwrap();
    assert_eq!(next[0].version, 6);

    let (acct2, keys2) = account(&catalog, "bob");
    let twice = shard_store::VaultSnapshot {
        files: vec![file(3, 1), file(3, 2)],
        ..snapshot
    };
    let err = catalog.vault(acct2, &keys2).import(&twice).unwrap_err();
    assert!(err.to_string().contains("one file version twice"), "{err}");
}

/// A catalog snapshot of an earlier data format (other chunk and share ids, or manifests
/// before packs) is refused by name, not misread.
#[test]
fn a_snapshot_of_an_earlier_data_format_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
    let (acct, keys) = account(&catalog, "alice");
    let vault = catalog.vault(acct, &keys);
    let mut bytes = exported(&vault);
    assert_eq!(bytes.first(), Some(&7), "the version leads the snapshot");
    shard_store::VaultSnapshot::from_bytes(&bytes).unwrap();
    for earlier in [1, 2] {
        bytes[0] = earlier;
        let err = shard_store::VaultSnapshot::from_bytes(&bytes).unwrap_err();
        assert!(
            err.to_string().contains("earlier, unreleased data format"),
            "{err}"
        );
    }
    // Version 5 is version 6 without backup records, and 6 is 7 without the trash: still read.
    for older in [5, 6] {
        bytes[0] = older;
        shard_store::VaultSnapshot::from_bytes(&bytes).unwrap();
    }
    bytes[0] = 8;
    let err = shard_store::VaultSnapshot::from_bytes(&bytes).unwrap_err();
    assert!(err.to_string().contains("unknown"), "{err}");
}

/// Snapshots list each pack's share ids once, not in every manifest; snapshots of versions 3
/// (whole manifests) and 4 (one structure, packs listed at its end), written by earlier builds,
/// still read to the same vault; a blob whose pack the snapshot does not list is refused.
#[test]
fn snapshots_list_a_packs_shares_once_and_versions_3_and_4_still_read() {
    #[derive(serde::Serialize)]
    struct V3<'a> {
        version: u8,
        account: &'a str,
        files: &'a [shard_store::SnapshotFile],
        shares: &'a [shard_store::SnapshotShare],
    }
    #[derive(serde::Serialize)]
    struct V4<'a> {
        version: u8,
        account: &'a str,
        files: &'a [shard_store::SnapshotFile],
        shares: &'a [shard_store::SnapshotShare],
        packs: &'a [PackRef],
    }
    /// Version 5's records, as the catalog writes them.
    #[derive(serde::Serialize)]
    enum Record<'a> {
        #[allow(dead_code)]
        Pack(&'a PackRef),
        #[allow(dead_code)]
        Share(&'a shard_store::SnapshotShare),
        File(&'a shard_store::SnapshotFile),
        End,
    }
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
    let (acct, keys) = account(&catalog, "alice");
    let vault = catalog.vault(acct, &keys);
    // 50 small files in one pack of three shares.
    let shares = [ShareId([201; 32]), ShareId([202; 32]), ShareId([203; 32])];
    let pack = PackId([77; 32]);
    let files: Vec<_> = (0..50u8)
        .map(|i| {
            let chunk = ChunkRef {
                id: ChunkId([i; 32]),
                len: 100,
                k: 2,
                n: 3,
                share_len: 4096,
                shares: shares.to_vec(),
                pack: Some(BlobAt {
                    pack,
                    offset: u32::from(i) * 128,
                }),
            };
            (
                meta(&format!("f{i:02}"), 100),
                Manifest {
                    size: 100,
                    chunks: vec![chunk],
                },
            )
        })
        .collect();
    let begun = vault.begin_files(&files).unwrap();
    ack_all(&vault, &files[0].1);
    vault
        .commit_files(&begun.iter().map(|f| f.id).collect::<Vec<_>>())
        .unwrap();
    let snapshot = vault.export("alice").unwrap();
    let v5 = exported(&vault);
    let count = |bytes: &[u8]| bytes.windows(32).filter(|w| *w == [201; 32]).count();
    // Share 201 once as an acknowledged share and once on the pack's record: not in the 50
    // chunk lists, as version 3 has it.
    assert_eq!(count(&v5), 2);
    let v3 = postcard::to_stdvec(&V3 {
        version: 3,
        account: "alice",
        files: &snapshot.files,
        shares: &snapshot.shares,
    })
    .unwrap();
    assert_eq!(count(&v3), 51);
    let list = vec![PackRef {
        id: pack,
        k: 2,
        n: 3,
        share_len: 4096,
        shares: shares.to_vec(),
    }];
    let compact: Vec<_> = snapshot
        .files
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f.manifest.chunks[0].shares.clear();
            f
        })
        .collect();
    let v4 = |packs: &[PackRef]| {
        postcard::to_stdvec(&V4 {
            version: 4,
            account: "alice",
            files: &compact,
            shares: &snapshot.shares,
            packs,
        })
        .unwrap()
    };
    let sorted = |mut s: shard_store::VaultSnapshot| {
        s.files
            .sort_by(|a, b| (&a.meta.name, a.version).cmp(&(&b.meta.name, b.version)));
        s.shares.sort_by_key(|s| s.share);
        s
    };
    let from_v5 = streamed(&vault);
    assert_eq!(
        sorted(shard_store::VaultSnapshot::from_bytes(&v3).unwrap()),
        sorted(from_v5.clone())
    );
    assert_eq!(
        sorted(shard_store::VaultSnapshot::from_bytes(&v4(&list)).unwrap()),
        sorted(from_v5.clone())
    );
    // Read in pieces, the earlier versions too.
    assert_eq!(
        sorted(read_in_pieces(&v4(&list), 5)),
        sorted(from_v5.clone())
    );
    assert_eq!(from_v5.files[7].manifest, files[7].1);
    // Version 3 with two files that name the pack with different shares: no catalog wrote it.
    let mut forged = snapshot.files.clone();
    forged[1].manifest.chunks[0].shares[0] = ShareId([9; 32]);
    let bad = postcard::to_stdvec(&V3 {
        version: 3,
        account: "alice",
        files: &forged,
        shares: &snapshot.shares,
    })
    .unwrap();
    let err = shard_store::VaultSnapshot::from_bytes(&bad).unwrap_err();
    assert!(
        err.to_string().contains("one pack with different shares"),
        "{err}"
    );
    let forged_snapshot = shard_store::VaultSnapshot {
        files: forged,
        ..snapshot.clone()
    };
    let err = forged_snapshot.to_bytes().unwrap_err();
    assert!(
        err.to_string().contains("one pack with different shares"),
        "{err}"
    );
    // A blob whose pack is not listed: version 4 with an empty list, version 5 without the
    // pack's record.
    let err = shard_store::VaultSnapshot::from_bytes(&v4(&[])).unwrap_err();
    assert!(
        err.to_string()
            .contains("a pack the snapshot does not list"),
        "{err}"
    );
    let mut orphaned = postcard::to_stdvec(&(5u8, "alice")).unwrap();
    orphaned.extend(postcard::to_stdvec(&Record::File(&compact[0])).unwrap());
    orphaned.extend(postcard::to_stdvec(&Record::End).unwrap());
    let err = shard_store::VaultSnapshot::from_bytes(&orphaned).unwrap_err();
    assert!(
        err.to_string()
            .contains("a pack the snapshot does not list"),
        "{err}"
    );
}

#[test]
fn a_files_stamp_comes_back_with_its_newest_visible_version_only() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let (acct, keys) = account(&catalog, "alice");
    let vault = catalog.vault(acct, &keys);
    let stamp = |ino| shard_store::FileStamp {
        ctime: 1_700_000_100,
        ctime_nanos: 7,
        inode: ino,
    };
    let new = |ino: Option<u64>, m: &Manifest| shard_store::NewFile {
        meta: meta("notes.txt", 100),
        stamp: ino.map(stamp),
        manifest: m.clone(),
    };
    let m = manifest(9, 100, 1);
    let first = vault.begin_stamped(&[new(Some(11), &m)]).unwrap();
    let names: [&[u8]; 2] = [b"notes.txt", b"never.txt"];
    // Pending: not yet what a put compares against.
    assert_eq!(vault.newest_stamped(&names).unwrap(), vec![None, None]);
    ack_all(&vault, &m);
    vault.commit_files(&[first[0].id]).unwrap();
    let found = vault.newest_stamped(&names).unwrap();
    let (entry, got) = found[0].clone().unwrap();
    assert_eq!((entry.version, got), (1, Some(stamp(11))));
    assert_eq!(found[1], None);
    // A second version begun but not committed leaves the first as the newest; committed
    // without a stamp (racily clean), it is the newest and has none.
    let second = vault.begin_stamped(&[new(None, &m)]).unwrap();
    assert_eq!(
        vault.newest_stamped(&names).unwrap()[0]
            .clone()
            .unwrap()
            .0
            .version,
        1
    );
    vault.commit_files(&[second[0].id]).unwrap();
    let (entry, got) = vault.newest_stamped(&names).unwrap()[0].clone().unwrap();
    assert_eq!((entry.version, got), (2, None));
    // The listing reads stamped and unstamped metadata alike.
    assert_eq!(vault.versions(b"notes.txt").unwrap().len(), 2);
}

/// Backup jobs and snapshots: kept sealed, listed by job and number, read back whole, carried
/// by the catalog snapshot into another account (what `recover` does), and a row moved to
/// another job's place by whoever can write the file is refused, not read as the other's.
#[test]
fn backup_records_are_sealed_listed_and_travel_in_the_catalog_snapshot() {
    use shard_store::{BackupKind, BackupRecord};
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
    let (acct, keys) = account(&catalog, "alice");
    let vault = catalog.vault(acct, &keys);
    let rec = |kind, job: &str, no, head: &[u8], body: &[u8]| BackupRecord {
        kind,
        job: job.into(),
        no,
        head: head.to_vec(),
        body: body.to_vec(),
    };
    vault
        .put_backup(rec(BackupKind::Job, "papers", 0, b"rules", b""))
        .unwrap();
    vault
        .put_backup(rec(BackupKind::Job, "photos", 0, b"other rules", b""))
        .unwrap();
    for no in [2, 1, 3] {
        vault
            .put_backup(rec(
                BackupKind::Snapshot,
                "papers",
                no,
                format!("summary {no}").as_bytes(),
                format!("names {no}").as_bytes(),
            ))
            .unwrap();
    }
    let jobs = vault.backup_heads(BackupKind::Job, None).unwrap();
    let names: Vec<(&str, &[u8])> = jobs
        .iter()
        .map(|j| (j.job.as_str(), j.head.as_slice()))
        .collect();
    assert_eq!(
        names,
        [("papers", &b"rules"[..]), ("photos", &b"other rules"[..])]
    );
    let snaps = vault
        .backup_heads(BackupKind::Snapshot, Some("papers"))
        .unwrap();
    let nos: Vec<u32> = snaps.iter().map(|s| s.no).collect();
    assert_eq!(nos, [1, 2, 3]);
    assert!(snaps.iter().all(|s| s.body.is_empty()), "heads only");
    assert_eq!(
        vault
            .backup_body(BackupKind::Snapshot, "papers", 2)
            .unwrap()
            .as_deref(),
        Some(&b"names 2"[..])
    );
    assert_eq!(
        vault
            .backup_heads(BackupKind::Snapshot, Some("photos"))
            .unwrap(),
        []
    );
    // Replacing a job's record keeps one.
    vault
        .put_backup(rec(BackupKind::Job, "papers", 0, b"new rules", b""))
        .unwrap();
    assert_eq!(vault.backup_heads(BackupKind::Job, None).unwrap().len(), 2);

    // Through a catalog snapshot into another account.
    let snapshot = shard_store::VaultSnapshot::from_bytes(&exported(&vault)).unwrap();
    assert_eq!(snapshot.backups.len(), 5);
    let (acct2, keys2) = account(&catalog, "alice-again");
    let vault2 = catalog.vault(acct2, &keys2);
    vault2.import(&snapshot).unwrap();
    let back = vault2.backup_heads(BackupKind::Job, None).unwrap();
    assert_eq!(back[0].head, b"new rules");
    assert_eq!(
        vault2
            .backup_body(BackupKind::Snapshot, "papers", 3)
            .unwrap()
            .as_deref(),
        Some(&b"names 3"[..])
    );

    // Forgetting snapshots 1 and 2.
    assert_eq!(
        vault
            .remove_backups(BackupKind::Snapshot, "papers", Some(&[1, 2]))
            .unwrap(),
        2
    );
    let nos: Vec<u32> = vault
        .backup_heads(BackupKind::Snapshot, Some("papers"))
        .unwrap()
        .iter()
        .map(|s| s.no)
        .collect();
    assert_eq!(nos, [3]);

    // A snapshot row renumbered in the file is refused: its seal binds its place.
    rusqlite::Connection::open(dir.path().join("c.db"))
        .unwrap()
        .execute(
            "UPDATE backup_records SET no = 7 WHERE account = ?1 AND kind = 1",
            [acct.0],
        )
        .unwrap();
    let err = vault
        .backup_heads(BackupKind::Snapshot, Some("papers"))
        .unwrap_err();
    assert!(matches!(err, Error::Crypto(_)), "{err:?}");
    // Another account's keys open nothing of it.
    assert!(
        catalog
            .vault(acct2, &keys2)
            .backup_body(BackupKind::Snapshot, "papers", 7)
            .unwrap()
            .is_none()
    );
}

/// A version in the trash is hidden from every listing but keeps its chunks (they are not
/// freed, and removing the visible file that shares them frees only what is not shared); it
/// comes back whole, travels in the catalog snapshot with its time, keeps its number taken,
/// and deleting it from the trash frees its chunks.
#[test]
fn the_trash_hides_versions_keeps_their_chunks_and_travels_in_the_snapshot() {
    use shard_store::AckedShare;
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
    let (acct, keys) = account(&catalog, "alice");
    let vault = catalog.vault(acct, &keys);
    let m = manifest(40, 100, 1);
    let acks: Vec<AckedShare> = m.chunks[0]
        .shares
        .iter()
        .enumerate()
        .map(|(i, s)| AckedShare {
            chunk: m.chunks[0].id,
            k: m.chunks[0].k,
            n: m.chunks[0].n,
            share_len: m.chunks[0].share_len,
            index: i as u8,
            share: *s,
            peer: PEERS[i],
        })
        .collect();
    vault.record_acks(&acks).unwrap();
    let ids: Vec<_> = vault
        .begin_files(&[
            (meta("will.txt", 100), m.clone()),
            (meta("copy.txt", 100), m.clone()),
        ])
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    vault.commit_files(&ids).unwrap();

    assert_eq!(vault.trash_files(&ids[..1], 1_000).unwrap(), 1);
    // Twice is nothing more.
    assert_eq!(vault.trash_files(&ids[..1], 2_000).unwrap(), 0);
    let names: Vec<_> = vault
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.meta.name)
        .collect();
    assert_eq!(names, [b"copy.txt".to_vec()]);
    assert!(vault.versions(b"will.txt").unwrap().is_empty());
    let trashed = vault.trashed().unwrap();
    assert_eq!(trashed.len(), 1);
    assert_eq!(
        (trashed[0].entry.meta.name.as_slice(), trashed[0].trashed_at),
        (&b"will.txt"[..], 1_000)
    );

    // The visible copy removed: the chunk stays, the trashed version still uses it.
    assert!(vault.delete_files(&[7; 16], &ids[1..]).unwrap().is_empty());
    assert_eq!(vault.encodings(&m.chunks[0].id).unwrap().len(), 1);

    // Through a catalog snapshot: still in the trash, with its time.
    let snapshot = shard_store::VaultSnapshot::from_bytes(&exported(&vault)).unwrap();
    assert_eq!(snapshot.files.len(), 1);
    assert_eq!(snapshot.files[0].trashed, Some(1_000));
    let (acct2, keys2) = account(&catalog, "alice-again");
    let vault2 = catalog.vault(acct2, &keys2);
    vault2.import(&snapshot).unwrap();
    assert!(vault2.list().unwrap().is_empty());
    assert_eq!(vault2.trashed().unwrap().len(), 1);
    assert_eq!(vault2.trashed().unwrap()[0].trashed_at, 1_000);

    // A file stored under the name meanwhile gets the next number.
    let next = vault
        .begin_files(&[(meta("will.txt", 100), m.clone())])
        .unwrap();
    assert_eq!(next[0].version, 2);
    vault.delete_files(&[7; 16], &[next[0].id]).unwrap();

    // Restored: visible again, same version.
    assert_eq!(vault.untrash_files(&ids[..1]).unwrap(), 1);
    assert!(vault.trashed().unwrap().is_empty());
    let back = vault.versions(b"will.txt").unwrap();
    assert_eq!((back.len(), back[0].version), (1, 1));

    // Deleted from the trash: its chunk is freed.
    vault.trash_files(&ids[..1], 3_000).unwrap();
    let freed = vault.delete_files(&[7; 16], &ids[..1]).unwrap();
    assert_eq!(
        freed.iter().map(|s| s.id).collect::<Vec<_>>(),
        m.chunks[0].shares
    );
    assert!(vault.trashed().unwrap().is_empty());
}
