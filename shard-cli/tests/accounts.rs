//! Accounts as a user meets them: passphrase rules, login delays, passwd, several accounts,
//! account removal, and disaster recovery on a new machine from the recovery code.
// Test code: panicking on failure is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use shard_testkit::nodes as common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{PASSWORD, TestNode, random_file, stderr, stdout};
use serde_json::Value;

const NEW_PASSWORD: &str = "violet kettle across the dunes";

fn names(listing: &Value) -> Vec<String> {
    listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

fn failed(out: &std::process::Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected failure: {}{}",
        stdout(out),
        stderr(out)
    );
    stderr(out)
}

#[test]
fn passphrase_rules_are_enforced_with_the_reason() {
    let node = TestNode::init("rules");
    let create =
        |pass: &str| node.run_env(&["account", "create", "alice"], &[("SHARD_PASSWORD", pass)]);
    assert!(failed(&create("")).contains("empty"));
    assert!(failed(&create("too short")).contains("shorter than 10 characters"));
    assert!(
        failed(&create("Password123"))
            .contains("too easy to guess (about 10^3 guesses): This is a very common password")
    );
    assert!(failed(&create("Summer2024!")).contains("similar to a commonly used password"));
    assert!(failed(&create(&"long passphrase ".repeat(100))).contains("longer than 1024 bytes"));
    // Non-UTF-8 from a file and from the environment: refused with the reason, not mangled.
    let file = node.home().join("../pass.bin");
    fs::write(&file, b"caf\xe9 au lait, please\n").unwrap();
    let out = node.run(&[
        "account",
        "create",
        "alice",
        "--password-file",
        file.to_str().unwrap(),
    ]);
    assert!(failed(&out).contains("not UTF-8"), "{}", stderr(&out));
    let out = Command::new(common::shard_bin())
        .arg("--home")
        .arg(node.home())
        .args(["account", "create", "alice"])
        .env(
            "SHARD_PASSWORD",
            OsStr::from_bytes(b"caf\xe9 au lait, please"),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        failed(&out).contains("SHARD_PASSWORD is not UTF-8"),
        "{}",
        stderr(&out)
    );
    // No terminal, no passphrase: says how to give one.
    let out = node.run(&["account", "create", "alice"]);
    assert!(failed(&out).contains("SHARD_PASSWORD"), "{}", stderr(&out));
    // Nothing was created by any of these.
    assert_eq!(
        node.json(&["account", "ls"])["accounts"],
        Value::Array(vec![])
    );
    // A bad name.
    let out = node.run_env(
        &["account", "create", "a/b"],
        &[("SHARD_PASSWORD", PASSWORD)],
    );
    assert!(failed(&out).contains("account names"), "{}", stderr(&out));
}

#[test]
fn accounts_are_separate_and_logins_slow_down_after_failures() {
    let mut node = TestNode::init("home-server");
    let alice_code = node.create_account("alice");
    node.create_account("bob");
    let out = node.run_env(
        &["account", "create", "bob"],
        &[("SHARD_PASSWORD", PASSWORD)],
    );
    assert!(failed(&out).contains("exists already"));
    let listed = node.json(&["account", "ls"]);
    let accounts: Vec<&str> = listed["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, ["alice", "bob"]);
    node.serve(&[]);

    // Wrong passphrases: one clear message, then a growing delay, remembered across restarts.
    let login = |pass: &str| node.run_env(&["login", "alice"], &[("SHARD_PASSWORD", pass)]);
    let err = failed(&login("not the passphrase"));
    assert!(
        err.contains("wrong passphrase for account \"alice\"; the next attempt waits 1 s"),
        "{err}"
    );
    let start = Instant::now();
    let err = failed(&login("still not the passphrase"));
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "no delay: {:?}",
        start.elapsed()
    );
    assert!(err.contains("the next attempt waits 2 s"), "{err}");
    node.kill9();
    node.restart(None);
    let failures = |node: &TestNode| {
        node.json(&["account", "ls"])["accounts"][0]["failed_logins"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(failures(&node), 2);
    // The right passphrase still works (after the delay) and clears the count.
    let out = node.run_env(&["login", "alice"], &[("SHARD_PASSWORD", PASSWORD)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(failures(&node), 0);
    let out = node.run_env(&["login", "bob"], &[("SHARD_PASSWORD", PASSWORD)]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Two accounts on one node do not see each other's files.
    let work = tempfile::tempdir().unwrap();
    let letter = work.path().join("letter.txt");
    fs::write(&letter, b"for alice only").unwrap();
    let stored = node.json(&["put", letter.to_str().unwrap(), "--user", "alice"]);
    assert_eq!(stored["files"], 1);
    assert_eq!(
        names(&node.json(&["ls", "--user", "alice"])),
        ["letter.txt"]
    );
    assert!(names(&node.json(&["ls", "--user", "bob"])).is_empty());
    let out = node.run(&[
        "get",
        "letter.txt",
        "--user",
        "bob",
        "-o",
        work.path().join("x").to_str().unwrap(),
    ]);
    assert!(
        failed(&out).contains("no stored file matches"),
        "{}",
        stderr(&out)
    );
    let out = node.run(&["ls"]);
    assert!(failed(&out).contains("--user"), "{}", stderr(&out));

    // Locked: bob's side works, alice's files cannot be read or stored.
    assert!(node.run(&["logout", "alice"]).status.success());
    let out = node.run(&["ls", "--user", "alice"]);
    assert!(
        failed(&out).contains("shard login alice"),
        "{}",
        stderr(&out)
    );
    let out = node.run(&["put", letter.to_str().unwrap(), "--user", "alice"]);
    assert!(failed(&out).contains("not unlocked"), "{}", stderr(&out));
    assert!(node.json(&["ls"])["files"].as_array().unwrap().is_empty());

    // passwd: the old passphrase stops working, the files stay, the recovery code too.
    let out = node.run_env(
        &["account", "passwd", "alice"],
        &[
            ("SHARD_PASSWORD", PASSWORD),
            ("SHARD_NEW_PASSWORD", "short"),
        ],
    );
    assert!(failed(&out).contains("shorter than 10"), "{}", stderr(&out));
    let out = node.run_env(
        &["account", "passwd", "alice"],
        &[
            ("SHARD_PASSWORD", PASSWORD),
            ("SHARD_NEW_PASSWORD", NEW_PASSWORD),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = failed(&node.run_env(&["login", "alice"], &[("SHARD_PASSWORD", PASSWORD)]));
    assert!(err.contains("wrong passphrase"), "{err}");
    let out = node.run_env(&["login", "alice"], &[("SHARD_PASSWORD", NEW_PASSWORD)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let back = work.path().join("back.txt");
    node.json(&[
        "get",
        "letter.txt",
        "--user",
        "alice",
        "-o",
        back.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(&back).unwrap(), b"for alice only");
    let shown = node.json_env(
        &["account", "recovery-code", "alice"],
        &[("SHARD_PASSWORD", NEW_PASSWORD)],
    );
    assert_eq!(shown["recovery_code"].as_str().unwrap(), alice_code);

    // Removal: asks first; refuses while files exist; --purge takes them along.
    let out = node.run(&["account", "rm", "bob"]);
    assert!(failed(&out).contains("--yes"), "{}", stderr(&out));
    assert!(node.run(&["logout", "bob"]).status.success());
    let out = node.run(&["account", "rm", "bob", "--yes"]);
    assert!(failed(&out).contains("shard login bob"), "{}", stderr(&out));
    let out = node.run_env(&["login", "bob"], &[("SHARD_PASSWORD", PASSWORD)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        node.run(&["account", "rm", "bob", "--yes"])
            .status
            .success()
    );
    let out = node.run(&["account", "rm", "alice", "--yes"]);
    assert!(
        failed(&out).contains("still has 1 stored file versions"),
        "{}",
        stderr(&out)
    );
    let removed = node.json(&["account", "rm", "alice", "--purge", "--yes"]);
    assert_eq!(removed["file_versions_removed"], 1);
    assert_eq!(
        node.json(&["account", "ls"])["accounts"],
        Value::Array(vec![])
    );
    assert_eq!(
        node.json(&["status"])["usage"]["shares"],
        0,
        "the shares went with the files"
    );
}

/// The whole disaster: the owner's machine is gone; a new one with the recovery code and the
/// old peers gets every file back, and the old machine, back from a backup, cannot delete them.
#[test]
fn a_new_machine_recovers_the_vault_from_the_code_and_the_peers() {
    let mut owner = TestNode::init("laptop");
    let code = owner.create_account("alice");
    owner.serve(&["--login", "alice"]);
    let peers: Vec<TestNode> = (0..4)
        .map(|i| TestNode::start(&format!("peer{i}")))
        .collect();
    for p in &peers {
        owner.pair_with(p);
    }
    let peer_names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
    owner.wait_online(&peer_names, Duration::from_secs(15));

    let work = tempfile::tempdir().unwrap();
    let mut expected: Vec<(String, Vec<u8>)> = Vec::new();
    let deeds = work.path().join("deeds.pdf");
    expected.push(("deeds.pdf".into(), random_file(&deeds, 3 << 20, 1)));
    let photos = work.path().join("photos");
    fs::create_dir_all(photos.join("1998")).unwrap();
    expected.push((
        "photos/1998/beach.jpg".into(),
        random_file(&photos.join("1998/beach.jpg"), 700_000, 2),
    ));
    expected.push((
        "photos/notes; \"quoted\".txt".into(),
        random_file(&photos.join("notes; \"quoted\".txt"), 10, 3),
    ));
    owner.json(&["put", deeds.to_str().unwrap(), photos.to_str().unwrap()]);
    owner.wait_log("catalog snapshot 1 written", Duration::from_secs(30));
    // Changes after the first snapshot: a file added, one stored and removed again.
    let will = work.path().join("will.txt");
    expected.push(("will.txt".into(), random_file(&will, 50_000, 4)));
    owner.json(&["put", will.to_str().unwrap()]);
    let draft = work.path().join("draft.txt");
    random_file(&draft, 1000, 5);
    owner.json(&["put", draft.to_str().unwrap()]);
    owner.json(&["rm", "draft.txt"]);
    owner.wait_log("catalog snapshot 4 written", Duration::from_secs(30));

    // The laptop is lost. (A copy of its home is kept aside to play the thief later.)
    owner.stop();
    let old = owner.copy_home("old-laptop");
    drop(owner);

    let fresh = TestNode::start("new-laptop");
    // Invite codes given on standard input (`shard join` with no code), off the command line.
    for p in &peers {
        let invite = p.json(&["invite"])["code"].as_str().unwrap().to_string();
        let out = fresh.run_stdin(&["join"], &[], &format!("{invite}\n"));
        assert!(out.status.success(), "join from stdin: {}", stderr(&out));
    }
    fresh.wait_online(&peer_names, Duration::from_secs(15));
    // The code from standard input; no warning, as nothing sat on the command line.
    let recover = |code: &str, pass: &str| {
        let out = fresh.run_stdin(
            &["--json", "recover"],
            &[("SHARD_PASSWORD", pass)],
            &format!("{code}\n"),
        );
        assert!(!stderr(&out).contains("warning:"), "{}", stderr(&out));
        out
    };
    // A code on the command line still works, with a warning; so does a code file.
    let out = fresh.run_env(
        &["--json", "recover", "--code", "AAAA-BBBB"],
        &[("SHARD_PASSWORD", NEW_PASSWORD)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "warning: a recovery code on the command line can be read by other users of this machine"
        ),
        "{}",
        stderr(&out)
    );

    // A mistyped code names its bad group; a code of another vault finds nothing.
    let mut typo: Vec<char> = code.chars().collect();
    let at = code.match_indices('-').nth(1).map(|(i, _)| i + 3).unwrap(); // inside group 3
    typo[at] = if typo[at] == 'A' { 'B' } else { 'A' };
    let typo: String = typo.into_iter().collect();
    let err = failed(&recover(&typo, NEW_PASSWORD));
    assert!(err.contains("group 3"), "{err}");
    let code_file = work.path().join("recovery-code.txt");
    std::fs::write(&code_file, format!("{typo}\n")).unwrap();
    let out = fresh.run_env(
        &["recover", "--code-file", code_file.to_str().unwrap()],
        &[("SHARD_PASSWORD", NEW_PASSWORD)],
    );
    let err = failed(&out);
    assert!(
        err.contains("group 3") && !err.contains("warning:"),
        "{err}"
    );
    let stranger = TestNode::init("stranger");
    let other_code = stranger.create_account("mallory");
    let err = failed(&recover(&other_code, NEW_PASSWORD));
    assert!(err.contains("keeps a catalog for this vault"), "{err}");
    let err = failed(&recover(&code, "weak"));
    assert!(err.contains("shorter than 10"), "{err}");
    assert!(
        fresh.json(&["account", "ls"])["accounts"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let out = recover(&code, NEW_PASSWORD);
    assert!(
        out.status.success(),
        "recover: {}{}",
        stderr(&out),
        fresh.log()
    );
    let recovered: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(recovered["account"], "alice");
    assert_eq!(recovered["peers_handed_over"], 4);

    // Every file, bit-exact; the removed one stays removed.
    let mut listed = names(&fresh.json(&["ls"]));
    listed.sort();
    assert_eq!(
        listed,
        [
            "deeds.pdf",
            "photos",
            "photos/1998",
            "photos/1998/beach.jpg",
            "photos/notes; \"quoted\".txt",
            "will.txt"
        ]
    );
    let check_all = |node: &TestNode, into: &Path| {
        node.json(&[
            "get",
            "deeds.pdf",
            "-o",
            into.join("deeds.pdf").to_str().unwrap(),
        ]);
        node.json(&["get", "photos", "-o", into.join("photos").to_str().unwrap()]);
        node.json(&[
            "get",
            "will.txt",
            "-o",
            into.join("will.txt").to_str().unwrap(),
        ]);
        for (name, bytes) in &expected {
            assert_eq!(&fs::read(into.join(name)).unwrap(), bytes, "{name}");
        }
    };
    let restored = tempfile::tempdir().unwrap();
    check_all(&fresh, restored.path());
    // The account works as any other: a new passphrase, a new snapshot, new files.
    fresh.wait_log("catalog snapshot", Duration::from_secs(30));
    let after = work.path().join("after.txt");
    random_file(&after, 2000, 6);
    fresh.json(&["put", after.to_str().unwrap()]);

    // The old laptop comes back from its backup and tries to delete everything.
    let mut old = old;
    old.restart(Some("alice"));
    old.wait_online(&peer_names, Duration::from_secs(20));
    for name in ["deeds.pdf", "photos", "will.txt"] {
        let out = old.run(&["rm", name, "--now"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    old.wait_log("did not keep the catalog head", Duration::from_secs(30));
    old.stop();
    let again = tempfile::tempdir().unwrap();
    check_all(&fresh, again.path());
    assert!(names(&fresh.json(&["ls"])).contains(&"after.txt".to_string()));
}

/// After `account passwd`, nothing left in the catalog's files (the database, its write-ahead
/// log, its shared memory) holds the old key record: the old passphrase opens nothing there,
/// however the files are read. (The vault key itself stays: that is what keeps the files and
/// the recovery code valid.)
#[test]
fn passwd_leaves_no_trace_of_the_old_key_record() {
    let mut node = TestNode::init("solo");
    node.create_account("alice");
    node.serve(&["--login", "alice"]);
    let catalog_path = node.home().join("catalog.db");
    let old = {
        let catalog = shard_store::Catalog::open(&catalog_path).unwrap();
        catalog
            .account("alice")
            .unwrap()
            .unwrap()
            .key_record
            .as_bytes()
            .to_vec()
    };
    // Its salt and its wrapped key are what only this record has (the vault id stays).
    let (salt, wrapped) = (&old[16..32], &old[48..]);
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    let home = node.home();
    let files = || {
        ["catalog.db", "catalog.db-wal", "catalog.db-shm"]
            .iter()
            .filter_map(|f| fs::read(home.join(f)).ok())
            .collect::<Vec<_>>()
    };
    assert!(
        files().iter().any(|b| contains(b, salt)),
        "the old record should be found before the change (else the search proves nothing)"
    );
    let out = node.run_env(
        &["account", "passwd", "alice"],
        &[
            ("SHARD_PASSWORD", PASSWORD),
            ("SHARD_NEW_PASSWORD", NEW_PASSWORD),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for bytes in files() {
        assert!(!contains(&bytes, salt), "the old salt is still on disk");
        assert!(
            !contains(&bytes, wrapped),
            "the old wrapped key is still on disk"
        );
    }
    node.stop();
    for bytes in files() {
        assert!(
            !contains(&bytes, salt),
            "the old salt came back at shutdown"
        );
    }
}
