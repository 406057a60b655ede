//! The trash, in process with a driven clock: `rm` hides a file or folder but keeps its shares
//! and its packs (a compaction in between does not take them), `trash restore` brings exactly
//! it back, also after a newer version was stored under the name; `trash empty` and the
//! expiry after `[vault] trash_days` delete it for good; `rm --now` skips the trash; no backup
//! job is made over a name the trash holds (it could not be restored into the job's tree).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use shard_testkit::swarm as common;

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use common::{Swarm, USER, content};
use shard_node::Error;
use shard_node::backup::{ManualClock, NewJob};
use shard_node::files::Removing;
use shard_node::node::{Node, RunOptions};
use shard_node::prune::{PruneRequest, run as prune_run};
use shard_node::report::{EntryKind, Removal};

/// 2026-11-30 09:00 UTC.
const T0: i64 = 1_796_029_200;
const DAY: i64 = 86_400;

async fn swarm(clock: &Arc<ManualClock>) -> Swarm {
    let options = RunOptions {
        clock: clock.clone(),
        backup_tick: Duration::from_secs(3600),
        ..common::options()
    };
    Swarm::in_memory_with(4, 3, &[], false, options).await
}

/// Sealed bytes of the blobs that files (visible or in the trash) use, by the catalog's count.
fn live_bytes(swarm: &Swarm) -> u64 {
    let node = swarm.owner();
    let session = node.session(Some(USER)).unwrap();
    node.catalog()
        .vault(session.account, &session.keys)
        .count_pack_usage()
        .unwrap()
        .iter()
        .map(|p| p.live_bytes)
        .sum()
}

/// Shares of the owner's vault the catalog knows (acknowledged or not).
fn shares(swarm: &Swarm) -> u64 {
    let node = swarm.owner();
    let session = node.session(Some(USER)).unwrap();
    node.catalog()
        .vault(session.account, &session.keys)
        .holders()
        .unwrap()
        .iter()
        .map(|(_, _, n)| n)
        .sum()
}

fn listed(swarm: &Swarm) -> Vec<String> {
    let node = swarm.owner();
    let session = node.session(Some(USER)).unwrap();
    shard_node::files::ls(node, &session, b"")
        .unwrap()
        .files
        .into_iter()
        .map(|f| f.name)
        .collect()
}

async fn compact(swarm: &Swarm) {
    let node = swarm.owner().clone();
    let session = node.session(Some(USER)).unwrap();
    let job = node.jobs().create("prune");
    prune_run(
        node,
        session,
        PruneRequest {
            dead_percent: 0,
            unused: true,
        },
        job,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_removed_file_waits_in_the_trash_and_comes_back_whole() {
    let clock = Arc::new(ManualClock::new(T0));
    let swarm = swarm(&clock).await;
    let owner = swarm.owner().clone();
    // Small files stored together: they lie in one pack, which a compaction rewrites when
    // part of it is dead.
    let will = content(3_000, 1);
    let other = content(5_000, 2);
    let docs = swarm.path("docs");
    fs::create_dir_all(&docs).unwrap();
    fs::write(docs.join("will.txt"), &will).unwrap();
    fs::write(docs.join("other.txt"), &other).unwrap();
    swarm.put(&docs, "docs", Some((2, 3))).await.unwrap();
    let will_path = swarm.path("will.txt");
    let before = shares(&swarm);

    let removal = owner
        .remove(Some(USER), b"docs/will.txt", Removing::ToTrash)
        .await
        .unwrap();
    assert!(removal.trashed);
    assert_eq!(removal.kept_until, Some(T0 + 30 * DAY));
    assert_eq!((removal.removed, removal.shares_deleted), (1, 0));
    assert_eq!(listed(&swarm), ["docs", "docs/other.txt"]);
    let out = swarm.path("out");
    let err = swarm.get("docs/will.txt", None, &out).await.unwrap_err();
    assert!(err.to_string().contains("docs/will.txt"), "{err}");
    assert_eq!(shares(&swarm), before, "nothing left the peers");
    let trash = owner.trash(Some(USER)).unwrap();
    assert_eq!(trash.len(), 1);
    assert_eq!(
        (trash[0].name.as_str(), trash[0].kind, trash[0].size),
        ("docs/will.txt", EntryKind::File, 3_000)
    );

    // A compaction keeps what the trash still holds.
    compact(&swarm).await;
    // Twice: the second removal of a name in the trash finds nothing to remove.
    let again = owner
        .remove(Some(USER), b"docs/will.txt", Removing::ToTrash)
        .await
        .unwrap_err();
    assert!(matches!(again, Error::Store(_)), "{again}");

    let restored = owner
        .trash_restore(Some(USER), b"docs/will.txt")
        .await
        .unwrap();
    assert_eq!((restored.restored, restored.newer_kept), (1, false));
    swarm.get("docs/will.txt", None, &out).await.unwrap();
    assert_eq!(fs::read(&out).unwrap(), will);
    assert!(owner.trash(Some(USER)).unwrap().is_empty());
    let err = owner
        .trash_restore(Some(USER), b"docs/will.txt")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "\"docs/will.txt\" is not in the trash");

    // Removed, then a new version stored under the name: restoring keeps the new one newest
    // and brings the old one back as its earlier version.
    owner
        .remove(Some(USER), b"docs/will.txt", Removing::ToTrash)
        .await
        .unwrap();
    let newer = content(4_000, 3);
    fs::write(&will_path, &newer).unwrap();
    swarm
        .put(&will_path, "docs/will.txt", Some((2, 3)))
        .await
        .unwrap();
    let restored = owner
        .trash_restore(Some(USER), b"docs/will.txt")
        .await
        .unwrap();
    assert!(restored.newer_kept);
    swarm.get("docs/will.txt", None, &out).await.unwrap();
    assert_eq!(fs::read(&out).unwrap(), newer);
    swarm.get("docs/will.txt", Some(1), &out).await.unwrap();
    assert_eq!(fs::read(&out).unwrap(), will);

    // `rm --now` skips the trash: its blob is dead at once (its pack stays for will.txt).
    let live = live_bytes(&swarm);
    let gone = owner
        .remove(Some(USER), b"docs/other.txt", Removing::Now)
        .await
        .unwrap();
    assert!(!gone.trashed);
    assert!(owner.trash(Some(USER)).unwrap().is_empty());
    assert!(live_bytes(&swarm) < live);
}

/// One expiry of the trash that looked at the account: while it is busy writing (the catalog
/// snapshot after a change runs in the background) an expiry skips it and says so.
async fn expire(owner: &Arc<Node>) -> Vec<(String, shard_node::Result<Removal>)> {
    for _ in 0..200 {
        let expiry = owner.expire_trash().await;
        if expiry.busy.is_empty() {
            return expiry.removed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the account stayed busy for 10 s");
}

#[tokio::test]
async fn a_folder_goes_to_the_trash_as_one_item_and_leaves_it_when_its_time_is_up() {
    let clock = Arc::new(ManualClock::new(T0));
    let swarm = swarm(&clock).await;
    let owner = swarm.owner().clone();
    let root = swarm.path("photos");
    fs::create_dir_all(root.join("2025")).unwrap();
    // Large enough to be chunks of its own, not a blob in a pack with b.jpg.
    fs::write(root.join("a.jpg"), content(3_000_000, 4)).unwrap();
    fs::write(root.join("2025/b.jpg"), content(30_000, 5)).unwrap();
    swarm.put(&root, "photos", Some((2, 3))).await.unwrap();
    let stored = live_bytes(&swarm);

    let removal = owner
        .remove(Some(USER), b"photos", Removing::ToTrash)
        .await
        .unwrap();
    assert_eq!(removal.removed, 4, "the folder, a subfolder and two files");
    assert_eq!(
        live_bytes(&swarm),
        stored,
        "the trash keeps every blob live"
    );
    assert!(listed(&swarm).is_empty());
    let trash = owner.trash(Some(USER)).unwrap();
    assert_eq!(trash.len(), 1, "{trash:?}");
    assert_eq!(
        (
            trash[0].name.as_str(),
            trash[0].kind,
            trash[0].entries_under,
            trash[0].size
        ),
        ("photos", EntryKind::Dir, 3, 3_030_000)
    );

    // One file out of it, by its own name.
    let one = owner
        .trash_restore(Some(USER), b"photos/2025/b.jpg")
        .await
        .unwrap();
    assert_eq!(one.restored, 1);
    assert_eq!(listed(&swarm), ["photos/2025/b.jpg"]);
    let out = swarm.path("b.jpg");
    swarm.get("photos/2025/b.jpg", None, &out).await.unwrap();
    assert_eq!(fs::read(&out).unwrap(), content(30_000, 5));

    // 29 days on, the expiry leaves it; a day and a bit later it is deleted for good.
    clock.set(T0 + 29 * DAY);
    assert!(expire(&owner).await.is_empty());
    assert_eq!(owner.trash(Some(USER)).unwrap().len(), 1);
    clock.set(T0 + 30 * DAY + 1);
    let expired = expire(&owner).await;
    assert_eq!(expired.len(), 1);
    let (user, removal) = &expired[0];
    assert_eq!(user, USER);
    assert_eq!(removal.as_ref().unwrap().removed, 3);
    assert!(owner.trash(Some(USER)).unwrap().is_empty());
    // Its blobs are dead now (a compaction gives their room back).
    let live = live_bytes(&swarm);
    assert!(live < stored - 2_900_000, "{live} of {stored}");
    swarm.get("photos/2025/b.jpg", None, &out).await.unwrap();
    assert_eq!(fs::read(&out).unwrap(), content(30_000, 5));
    let err = owner
        .trash_restore(Some(USER), b"photos")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotInTrash(_)), "{err}");
}

#[tokio::test]
async fn emptying_deletes_for_good_and_no_job_takes_a_name_the_trash_holds() {
    let clock = Arc::new(ManualClock::new(T0));
    let swarm = swarm(&clock).await;
    let owner = swarm.owner().clone();
    let root = swarm.path("papers");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("will.txt"), content(10_000, 6)).unwrap();
    swarm.put(&root, "papers", Some((2, 3))).await.unwrap();
    let scratch = swarm.path("scratch.bin");
    fs::write(&scratch, content(40_000, 7)).unwrap();
    swarm
        .put(&scratch, "scratch.bin", Some((2, 3)))
        .await
        .unwrap();

    // Emptying one name deletes it and only it.
    owner
        .remove(Some(USER), b"scratch.bin", Removing::ToTrash)
        .await
        .unwrap();
    owner
        .remove(Some(USER), b"papers", Removing::ToTrash)
        .await
        .unwrap();
    let before = shares(&swarm);
    let emptied = owner
        .trash_empty(Some(USER), Some(b"scratch.bin"))
        .await
        .unwrap();
    assert_eq!(emptied.removed, 1);
    assert!(emptied.shares_deleted > 0);
    assert!(shares(&swarm) < before);
    let names: Vec<String> = owner
        .trash(Some(USER))
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["papers"]);
    let err = owner
        .trash_empty(Some(USER), Some(b"scratch.bin"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotInTrash(_)), "{err}");

    // A backup job is not made over a name the trash holds...
    let err = owner
        .backup_add(
            Some(USER),
            NewJob {
                path: root.clone(),
                name: Some("papers".into()),
                ..NewJob::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"papers\" names files in the trash"),
        "{err}"
    );
    assert_eq!(owner.trash(Some(USER)).unwrap().len(), 1, "still there");

    // Everything.
    let all = owner.trash_empty(Some(USER), None).await.unwrap();
    assert_eq!(all.removed, 2, "the folder and its file");
    assert!(owner.trash(Some(USER)).unwrap().is_empty());
}

/// What the trash holds is repaired like what is visible (the trash promises it restores): a
/// node lost while a file is in the trash has its share rebuilt elsewhere, and the file
/// restores with that node and one more holder gone.
#[tokio::test]
async fn the_trash_is_repaired_like_the_rest() {
    let clock = Arc::new(ManualClock::new(T0));
    let options = RunOptions {
        clock: clock.clone(),
        ..common::options()
    };
    let swarm = Swarm::in_memory_with(5, 4, &[], false, options).await;
    let owner = swarm.owner().clone();
    let bytes = content(50_000, 9);
    let path = swarm.path("deeds.pdf");
    fs::write(&path, &bytes).unwrap();
    swarm.put(&path, "deeds.pdf", Some((2, 3))).await.unwrap();
    owner
        .remove(Some(USER), b"deeds.pdf", Removing::ToTrash)
        .await
        .unwrap();
    let session = owner.session(Some(USER)).unwrap();
    let me = owner.node_id();
    let holder = owner
        .catalog()
        .vault(session.account, &session.keys)
        .holders()
        .unwrap()
        .into_iter()
        .map(|(peer, _, _)| peer)
        .find(|peer| *peer != me)
        .unwrap();
    let job = owner.jobs().create("repair");
    let report = shard_node::health::repair(
        owner.clone(),
        session.clone(),
        Vec::new(),
        std::collections::HashSet::from([holder]),
        job,
    )
    .await
    .unwrap();
    assert!(report.shares_rebuilt >= 1, "{report:?}");
    // The lost node and one more holder off: 2-of-3 restores only if the share was rebuilt.
    let other = owner
        .catalog()
        .vault(session.account, &session.keys)
        .holders()
        .unwrap()
        .into_iter()
        .map(|(peer, _, _)| peer)
        .find(|peer| *peer != me && *peer != holder)
        .unwrap();
    for gone in [holder, other] {
        let i = (0..5).find(|i| swarm.id(*i) == gone).unwrap();
        swarm.set_link(i, shard_net::memory::Link::Down);
        swarm.gone(i).await;
    }
    owner.trash_restore(Some(USER), b"deeds.pdf").await.unwrap();
    let out = swarm.path("deeds.out");
    swarm.get("deeds.pdf", None, &out).await.unwrap();
    assert_eq!(fs::read(&out).unwrap(), bytes);
}
