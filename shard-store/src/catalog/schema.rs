//! The catalog's schema and its migrations.
//!
//! `schema_version(version)` holds the version reached; each migration runs in one transaction
//! with its version bump, so a crash leaves the catalog at the old or the new version, never
//! between. A catalog from a newer build is refused rather than misread.
//!
//! Version 1:
//! ```text
//! accounts(id, name UNIQUE, vault_id UNIQUE, key_record, created)
//!     name: the login name (needed before unlocking); key_record: the wrapped vault key.
//! files(id, account, name_mac, version, meta, manifest, state, UNIQUE(account, name_mac, version))
//!     name_mac: HMAC of the name under the vault's name-index key; meta and manifest: sealed
//!     with the vault's catalog key (name, kind, size, times, mode / the chunk list).
//!     state: 0 pending (shares on their way), 1 visible, 2 being deleted.
//! chunks(account, id, k, n, share_len, refs)   refs: visible files (and, from version 11,
//!                                              those in the trash) that use the chunk
//! shares(id, account, chunk, idx, peer, state) state: 0 pending, 1 acked, 2 missing, 3 bad
//! peers(id, name, addrs, added, last_seen)
//! ```
//! Version 2 adds `deletions(account, peer, vault, share)`: shares of removed files still to be
//! deleted on a peer (it was offline); sent when it comes back.
//! Version 3 adds `accounts.failed_logins` and `accounts.last_failure` (the login delay survives
//! restarts) and `vault_state(account, seq, epoch, snapshot)`: the newest catalog snapshot's
//! head sequence, the vault's hand-over epoch, and where that snapshot's shares are (sealed).
//!
//! Version 4 (the vault id became the hash of the vault authority's key and chunk keys bind
//! the padded length, so data of earlier versions cannot be read: a catalog with accounts is
//! refused, an empty one is migrated):
//! ```text
//! chunks(account, id, k, n, share_len, refs, PRIMARY KEY(account, id, k, n))
//!     one row per *encoding* of a chunk: the same chunk stored k-of-n and k'-of-n' is two
//!     records with their own shares, and an encoding is never changed in place.
//! shares(id, account, chunk, k, n, idx, peer, state)      (k, n): the encoding it belongs to
//! deletions(account, peer, vault, share, done_at)
//!     done_at: NULL while waiting for the peer; else when it accepted the deletion (it keeps
//!     the share for its grace period from then).
//! adoptions(account, peer)      peers that still have to hand a recovered vault over
//! former_owners(account, node)  the nodes that held a recovered vault before (the hand-over
//!                               moves what they stored)
//! vault_state(account, seq, snapshot)
//! accounts.last_failure          now in milliseconds since the epoch (was seconds)
//! accounts.admin                 1 for the node's administrator (its first account)
//! ```
//!
//! Version 5 changes no table: it marks data format 2 (chunk ids are keyed BLAKE3, share ids
//! BLAKE3), so a catalog with accounts of version 4 is refused like older ones.
//!
//! Version 6 (packs: manifests of version 2 name the pack each blob lies in; a catalog with
//! accounts of an earlier version is refused):
//! ```text
//! blobs(account, chunk, pack, at, PRIMARY KEY(account, chunk, pack))
//!     a chunk stored as a blob at byte `at` of pack `pack` (whose encoding is the `chunks` row
//!     with id = pack): where a put finds a chunk it meets again. Written once every share of
//!     the pack is acknowledged; removed with the pack.
//! ```
//!
//! Version 7 (compaction; a catalog with accounts of an earlier version is refused, as blobs
//! sealed before carry no nonce of their own):
//! ```text
//! blobs.len    the chunk's length (what a pack's dead bytes are counted from)
//! blobs.live   1 when a visible file used the blob at the last count (`shard prune` recounts)
//! ```
//!
//! Version 8 (what a stored small file costs: manifests sealed in version 4, whose blobs leave
//! their pack's share ids to the pack's record — manifests of version 3 written before are
//! still read as they are —, and blob rows that name their pack by number):
//! ```text
//! chunks.share_ids   the encoding's n share ids, 32 bytes each, by index: set for a pack
//!                    when a manifest naming it is first sealed (NULL for records written
//!                    before, whose manifests list the ids themselves)
//! packs(no, account, id, UNIQUE(account, id))   a number for each pack blobs lie in, never
//!     given to another pack (AUTOINCREMENT: a blob row left behind can never name a new pack)
//! blobs(account, chunk, pack, at, len, live)     pack: packs.no; a table with row ids, found
//!     by chunk through an index of the chunk id's first 8 bytes (the row holds the whole id)
//!     and by pack through an index of the number: two 32-byte ids in each of two indexes
//!     were most of a blob's bytes
//! files.name_mac     rows written from now on hold the first 16 bytes of the name's HMAC
//!                    (rows written before keep all 32; a lookup asks for either)
//! ```
//!
//! Version 9 (earlier catalog snapshots kept while a peer has not got a newer head):
//! ```text
//! kept_heads(account, seq, head, told)   the sealed head of an earlier snapshot that a peer
//!     away when a newer one was written still points at: its shares stay until that peer has
//!     a newer head. told: the peers that took this head (32-byte ids), NULL when not known.
//! vault_state.told                       the same for the newest head
//! ```
//!
//! Version 10 (backups that run themselves; added tables only, so any catalog is migrated):
//! ```text
//! backup_records(account, kind, key, no, head, body, PRIMARY KEY(account, kind, key, no))
//!     kind 0: a backup job (no = 0); kind 1: one of a job's snapshots, number `no`.
//!     key: the name index key of the job's name. head and body: sealed with the catalog key
//!     (a job: its name and rules / nothing; a snapshot: its job, time and counts / the
//!     names and versions it holds), bound to the row's place.
//! ```
//!
//! Version 11 (the trash; an added column only, so any catalog is migrated):
//! ```text
//! files.state = 3   in the trash: hidden from every listing and restore, its chunks still
//!                   counted (refs) and kept by compaction, until it is restored or deleted
//! files.trashed     when it went to the trash (seconds since the epoch), NULL otherwise
//! ```
//!
//! Version 12 (the same columns; the table rebuilt, so any catalog is migrated):
//! ```text
//! backup_records    a table with row ids, its primary key a unique index: a row without row
//!                   ids is its own key, and SQLite copied a snapshot's body (tens of MB at
//!                   10⁶ paths) three times over to write one. Rows of an account that no
//!                   longer exists (none could reach them) are not carried over.
//! ```

use rusqlite::Connection;

use crate::{Error, Result};

/// Schema version this build writes.
pub const SCHEMA_VERSION: i64 = 12;

const MIGRATIONS: &[&str] = &[
    // 0 → 1
    "CREATE TABLE accounts (
         id INTEGER PRIMARY KEY,
         name TEXT NOT NULL UNIQUE,
         vault_id BLOB NOT NULL UNIQUE,
         key_record BLOB NOT NULL,
         created INTEGER NOT NULL);
     CREATE TABLE files (
         id INTEGER PRIMARY KEY,
         account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
         name_mac BLOB NOT NULL,
         version INTEGER NOT NULL,
         meta BLOB NOT NULL,
         manifest BLOB NOT NULL,
         state INTEGER NOT NULL,
         UNIQUE (account, name_mac, version));
     CREATE INDEX files_by_state ON files(account, state);
     CREATE TABLE chunks (
         account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
         id BLOB NOT NULL,
         k INTEGER NOT NULL,
         n INTEGER NOT NULL,
         share_len INTEGER NOT NULL,
         refs INTEGER NOT NULL DEFAULT 0,
         PRIMARY KEY (account, id)) WITHOUT ROWID;
     CREATE TABLE shares (
         id BLOB NOT NULL PRIMARY KEY,
         account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
         chunk BLOB NOT NULL,
         idx INTEGER NOT NULL,
         peer BLOB NOT NULL,
         state INTEGER NOT NULL) WITHOUT ROWID;
     CREATE INDEX shares_by_chunk ON shares(account, chunk);
     CREATE INDEX shares_by_peer ON shares(peer, state);
     CREATE TABLE peers (
         id BLOB NOT NULL PRIMARY KEY,
         name TEXT NOT NULL,
         addrs TEXT NOT NULL DEFAULT '',
         added INTEGER NOT NULL,
         last_seen INTEGER) WITHOUT ROWID;",
    // 1 → 2: shares to delete on peers that were offline when their files were removed.
    "CREATE TABLE deletions (
         account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
         peer BLOB NOT NULL,
         vault BLOB NOT NULL,
         share BLOB NOT NULL,         PRIMARY KEY (peer, vault, share)) WITHOUT ROWID;",
    // 2 → 3: failed logins counted across restarts; each vault's snapshot state.
    "ALTER TABLE accounts ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE accounts ADD COLUMN last_failure INTEGER;
     CREATE TABLE vault_state (
         account INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
         seq INTEGER NOT NULL,
         epoch INTEGER NOT NULL,
         snapshot BLOB);",
    // 3 → 4: encodings as their own records; deletions remembered through the peers' grace
    // period; hand-overs still owed. Only ever run on a catalog without accounts (checked).
    "DROP TABLE shares;
     DROP TABLE chunks;
     DROP TABLE vault_state;
     CREATE TABLE chunks (
         account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
         id BLOB NOT NULL,
         k INTEGER NOT NULL,
         n INTEGER NOT NULL,
         share_len INTEGER NOT NULL,
         refs INTEGER NOT NULL DEFAULT 0,
         PRIMARY KEY (account, id, k, n)) WITHOUT ROWID;
     CREATE TABLE shares (
         id BLOB NOT NULL PRIMARY KEY,
         account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
         chunk BLOB NOT NULL,
         k INTEGER NOT NULL,
         n INTEGER NOT NULL,
         idx INTEGER NOT NULL,
         peer BLOB NOT NULL,
         state INTEGER NOT NULL) WITHOUT ROWID;
     CREATE INDEX shares_by_chunk ON shares(account, chunk, k, n);
     CREATE INDEX shares_by_peer ON shares(peer, state);
     ALTER TABLE deletions ADD COLUMN done_at INTEGER;
     CREATE TABLE adoptions (
         account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
         peer BLOB NOT NULL,
         PRIMARY KEY (account, peer)) WITHOUT ROWID;
     CREATE TABLE vault_state (
         account INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
         seq INTEGER NOT NULL,
         snapshot BLOB);
     CREATE TABLE former_owners (
         account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
         node BLOB NOT NULL,
         PRIMARY KEY (account, node)) WITHOUT ROWID;
     ALTER TABLE accounts ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;",
    // 4 → 5: no table changes; data format 2 (BLAKE3 share ids and chunk ids). Only ever run
    // on a catalog without accounts (checked).
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);",
    // 5 → 6: packs. Only ever run on a catalog without accounts (checked).
    "CREATE TABLE blobs (
         account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
         chunk BLOB NOT NULL,
         pack BLOB NOT NULL,
         at INTEGER NOT NULL,
         PRIMARY KEY (account, chunk, pack)) WITHOUT ROWID;
     CREATE INDEX blobs_by_pack ON blobs(account, pack);",
    // 6 → 7: what prune counts. Only ever run on a catalog without accounts (checked).
    "ALTER TABLE blobs ADD COLUMN len INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE blobs ADD COLUMN live INTEGER NOT NULL DEFAULT 1;",
    // 7 → 8: a pack's share ids on its record, not in every manifest that names it; packs
    // numbered for the blob rows.
    "ALTER TABLE chunks ADD COLUMN share_ids BLOB;
     CREATE TABLE packs (
         no INTEGER PRIMARY KEY AUTOINCREMENT,
         account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
         id BLOB NOT NULL,
         UNIQUE (account, id));
     INSERT INTO packs (account, id) SELECT DISTINCT account, pack FROM blobs;
     CREATE TABLE blobs_by_number (
         account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
         chunk BLOB NOT NULL,
         pack INTEGER NOT NULL REFERENCES packs(no) ON DELETE CASCADE,
         at INTEGER NOT NULL,
         len INTEGER NOT NULL,
         live INTEGER NOT NULL DEFAULT 1);
     INSERT INTO blobs_by_number (account, chunk, pack, at, len, live)
         SELECT b.account, b.chunk, p.no, b.at, b.len, b.live
         FROM blobs b JOIN packs p ON p.account = b.account AND p.id = b.pack;
     DROP TABLE blobs;
     ALTER TABLE blobs_by_number RENAME TO blobs;
     CREATE INDEX blobs_by_chunk ON blobs(substr(chunk, 1, 8));
     CREATE INDEX blobs_by_pack ON blobs(pack);",
    // 8 → 9: snapshots kept for holders that have not got a newer head.
    "CREATE TABLE kept_heads (
         account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
         seq INTEGER NOT NULL,
         head BLOB NOT NULL,
         told BLOB,
         PRIMARY KEY (account, seq)) WITHOUT ROWID;
     ALTER TABLE vault_state ADD COLUMN told BLOB;",
    // 9 → 10: backup jobs and their snapshots.
    "CREATE TABLE backup_records (
         account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
         kind INTEGER NOT NULL,
         key BLOB NOT NULL,
         no INTEGER NOT NULL,
         head BLOB NOT NULL,
         body BLOB NOT NULL,
         PRIMARY KEY (account, kind, key, no)) WITHOUT ROWID;",
    // 10 → 11: the trash.
    "ALTER TABLE files ADD COLUMN trashed INTEGER;",
    // 11 → 12: backup records in a table with row ids.
    "CREATE TABLE backup_records_12 (
         account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
         kind INTEGER NOT NULL,
         key BLOB NOT NULL,
         no INTEGER NOT NULL,
         head BLOB NOT NULL,
         body BLOB NOT NULL,
         UNIQUE (account, kind, key, no));
     INSERT INTO backup_records_12 (account, kind, key, no, head, body)
         SELECT account, kind, key, no, head, body FROM backup_records
         WHERE account IN (SELECT id FROM accounts);
     DROP TABLE backup_records;
     ALTER TABLE backup_records_12 RENAME TO backup_records;",
];

/// The first schema version whose data this build reads (earlier vault ids, chunk keys, chunk
/// ids and share ids are derived differently, manifests before packs are of version 1, and blobs before version 7 share a nonce).
const OLDEST_READABLE: i64 = 7;

/// Brings `conn` to [`SCHEMA_VERSION`].
pub fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    if current > SCHEMA_VERSION {
        return Err(Error::NewerCatalog(current));
    }
    if current > 0 && current < OLDEST_READABLE {
        let accounts: i64 = conn.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?;
        if accounts > 0 {
            return Err(Error::OlderCatalog(current));
        }
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version],
        )?;
        tx.commit()?;
    }
    Ok(())
}
