//! The trash as a user drives it from the CLI against real nodes on 127.0.0.1: `rm` moves to
//! the trash and says until when; `shard trash` lists it; `trash restore` brings back the
//! same bytes; `trash empty` and `rm --now` delete for good; the refusals, with their exit
//! codes and words.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use shard_testkit::nodes as common;

use std::fs;

use common::{random_bytes, stderr, stdout};

#[test]
fn the_trash_commands_keep_their_contract() {
    let (owner, _peers) = common::owner_with_peers(3);
    let work = tempfile::tempdir().unwrap();
    let will = work.path().join("will.txt");
    let will_bytes = random_bytes(200_000, 1);
    fs::write(&will, &will_bytes).unwrap();
    let photos = work.path().join("photos");
    fs::create_dir_all(photos.join("2025")).unwrap();
    fs::write(photos.join("2025/a.jpg"), random_bytes(300_000, 2)).unwrap();
    fs::write(photos.join("b.jpg"), random_bytes(100_000, 3)).unwrap();
    for path in [&will, &photos] {
        let put = owner.run(&["put", path.to_str().unwrap(), "--shares", "2/3"]);
        assert!(put.status.success(), "{}", stderr(&put));
    }

    // rm: to the trash, with the way back in its words.
    let rm = owner.run(&["rm", "will.txt"]);
    assert!(rm.status.success(), "{}", stderr(&rm));
    let said = stdout(&rm);
    assert!(
        said.contains("moved will.txt (1 entries) to the trash")
            && said.contains("`shard trash restore will.txt` brings it back until"),
        "{said}"
    );
    assert!(!stdout(&owner.run(&["ls"])).contains("will.txt"));
    let removed = owner.json(&["rm", "photos"]);
    assert_eq!(removed["trashed"], true, "{removed}");
    assert_eq!(removed["removed"], 4, "{removed}");
    assert_eq!(removed["shares_deleted"], 0, "{removed}");

    let listed = owner.json(&["trash"]);
    assert_eq!(listed["trash_days"], 30);
    let items = listed["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["photos", "will.txt"]);
    assert_eq!(items[0]["kind"], "dir");
    assert_eq!(items[0]["entries_under"], 3);
    assert_eq!(items[0]["size"], 400_000);
    assert_eq!(items[1]["size"], 200_000);
    let text = stdout(&owner.run(&["trash"]));
    assert!(text.contains("photos/ (3 entries)"), "{text}");
    assert!(text.contains("will.txt"), "{text}");

    // Restored: the same bytes come back.
    let back = owner.run(&["trash", "restore", "will.txt"]);
    assert!(back.status.success(), "{}", stderr(&back));
    assert!(
        stdout(&back).contains("restored will.txt (1 entries)"),
        "{}",
        stdout(&back)
    );
    let out = work.path().join("will.out");
    let got = owner.run(&["get", "will.txt", "-o", out.to_str().unwrap()]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(fs::read(&out).unwrap(), will_bytes);

    // Refusals: nothing by that name in the trash; empty without a name or --all.
    let again = owner.run(&["trash", "restore", "will.txt"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("\"will.txt\" is not in the trash")
            && stderr(&again).contains("hint: `shard trash` lists what is in the trash"),
        "{}",
        stderr(&again)
    );
    let bare = owner.run(&["trash", "empty"]);
    assert_eq!(bare.status.code(), Some(2), "{}", stderr(&bare));
    let twice = owner.run(&["rm", "photos"]);
    assert_eq!(twice.status.code(), Some(1), "{}", stdout(&twice));

    // Emptied: gone for good, shares and all.
    let emptied = owner.json(&["trash", "empty", "photos"]);
    assert_eq!(emptied["removed"], 4, "{emptied}");
    assert!(emptied["shares_deleted"].as_u64().unwrap() > 0, "{emptied}");
    let listed = owner.json(&["trash"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 0, "{listed}");
    assert!(stdout(&owner.run(&["trash"])).contains("the trash is empty"));
    let gone = owner.run(&["trash", "restore", "photos"]);
    assert_eq!(gone.status.code(), Some(1));

    // rm --now skips the trash.
    let now = owner.run(&["rm", "will.txt", "--now"]);
    assert!(now.status.success(), "{}", stderr(&now));
    assert!(
        stdout(&now).contains("deleted will.txt (1 entries) for good"),
        "{}",
        stdout(&now)
    );
    assert_eq!(owner.json(&["trash"])["items"].as_array().unwrap().len(), 0);
}
