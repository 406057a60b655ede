//! Backups that run themselves, as a user drives them from the CLI against real nodes on
//! 127.0.0.1: the command contract (`backup add|ls|run|rm`, `snapshots`, `diff`,
//! `get NAME@N[/path]`, `status`), its refusals, a job whose folder went missing, and the
//! owner killed in the middle of a run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use shard_testkit::nodes as common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{random_bytes, stderr, stdout};
use serde_json::Value;

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn snapshot_numbers(owner: &common::TestNode) -> Vec<u64> {
    owner.json(&["snapshots", "papers"])["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["no"].as_u64().unwrap())
        .collect()
}

#[test]
fn the_backup_commands_keep_their_contract() {
    let (owner, _peers) = common::owner_with_peers(3);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("papers");
    write(&src, "will.txt", b"first will");
    write(&src, "photos/2025.jpg", &random_bytes(400_000, 1));
    write(&src, "cache/big.iso", b"left out");
    write(&src, ".shardignore", b"cache/\n");
    write(&src, "draft.tmp", b"left out too");
    let src_text = src.to_str().unwrap();

    // Refusals, each with its reason and exit code 1; nothing is made.
    for (args, why) in [
        (vec!["--every", "0s"], "shorter than a minute"),
        (vec!["--every", "abc"], "is not a period"),
        (vec!["--keep", "last=0"], "keep no snapshot at all"),
        (
            vec!["--keep", "fortnightly=2"],
            "is not a kind of keep rule",
        ),
        (vec!["--exclude", "*"], "leave out everything"),
    ] {
        let mut full = vec!["backup", "add", src_text];
        full.extend(args.iter().copied());
        let out = owner.run(&full);
        assert_eq!(out.status.code(), Some(1), "{full:?}: {}", stdout(&out));
        assert!(stderr(&out).contains(why), "{full:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("hint:"), "{}", stderr(&out));
    }
    let missing = work.path().join("no such folder");
    let out = owner.run(&["backup", "add", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no such folder"), "{}", stderr(&out));
    assert_eq!(
        owner.json(&["backup", "ls"])["jobs"],
        Value::Array(Vec::new())
    );

    let job = owner.json(&[
        "backup",
        "add",
        src_text,
        "--every",
        "6h",
        "--keep",
        "last=3,daily=7",
        "--exclude",
        "*.tmp",
        "--shares",
        "2/4",
    ]);
    assert_eq!(job["name"], "papers");
    assert_eq!(job["every"], "6h");
    assert_eq!(job["keep"], "last=3,daily=7");
    let out = owner.run(&["backup", "add", src_text, "--as", "again"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is backed up by job \"papers\" already"),
        "{}",
        stderr(&out)
    );

    let run = owner.json(&["backup", "run", "papers"]);
    assert_eq!(run["outcome"], "ok", "{run}");
    assert_eq!(run["files"], 3, "will, photo and .shardignore: {run}");
    let first = run["snapshot"].as_u64().unwrap();

    write(&src, "will.txt", b"second will, changed");
    write(&src, "letters/new.txt", b"new");
    std::thread::sleep(Duration::from_millis(2100)); // past the racy window
    let out = owner.run(&["backup", "run", "papers"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("backup papers ok: snapshot"), "{text}");
    assert!(text.contains("2 added, 0 removed, 1 changed"), "{text}");
    let second = first + 1;
    assert_eq!(snapshot_numbers(&owner).last(), Some(&second));

    let listed = owner.json(&["backup", "ls"]);
    let j = &listed["jobs"][0];
    assert_eq!(j["path"], src_text);
    assert_eq!(j["last"]["outcome"], "ok");
    assert_eq!(j["attention"], Value::Null);

    let diff = owner.json(&[
        "diff",
        &format!("papers@{first}"),
        &format!("papers@{second}"),
    ]);
    assert_eq!(
        diff["added"],
        serde_json::json!(["papers/letters", "papers/letters/new.txt"])
    );
    assert_eq!(diff["removed"], serde_json::json!([]));
    assert_eq!(diff["changed"], serde_json::json!(["papers/will.txt"]));

    // The old will out of the first snapshot, the whole first snapshot, the newest by name.
    let out_file = work.path().join("old-will.txt");
    let got = owner.run(&[
        "get",
        &format!("papers@{first}/will.txt"),
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(fs::read(&out_file).unwrap(), b"first will");
    let whole = work.path().join("first");
    let got = owner.run(&[
        "get",
        &format!("papers@{first}"),
        "-o",
        whole.to_str().unwrap(),
    ]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert!(!whole.join("letters").exists(), "not in the first snapshot");
    assert!(!whole.join("cache").exists() && !whole.join("draft.tmp").exists());
    assert_eq!(
        fs::read(whole.join("photos/2025.jpg")).unwrap(),
        random_bytes(400_000, 1)
    );
    let newest = work.path().join("newest");
    let got = owner.run(&["get", "papers", "-o", newest.to_str().unwrap()]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(
        fs::read(newest.join("will.txt")).unwrap(),
        b"second will, changed"
    );
    let got = owner.run(&[
        "get",
        "papers@999",
        "-o",
        work.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(got.status.code(), Some(1));
    assert!(
        stderr(&got).contains("papers@999 is not a snapshot: no run made it"),
        "{}",
        stderr(&got)
    );
    // The job's tree is its own.
    let rm = owner.run(&["rm", "papers/will.txt"]);
    assert_eq!(rm.status.code(), Some(1));
    assert!(
        stderr(&rm).contains("belongs to backup job"),
        "{}",
        stderr(&rm)
    );

    let status = owner.run(&["status"]);
    assert!(status.status.success(), "{}", stdout(&status));

    // The folder goes away: the run fails visibly, status says so and exits 1, the
    // snapshots before stay.
    fs::rename(&src, work.path().join("elsewhere")).unwrap();
    let out = owner.run(&["backup", "run", "papers"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("it is missing"), "{}", stderr(&out));
    let status = owner.run(&["status"]);
    assert_eq!(status.status.code(), Some(1));
    assert!(
        stdout(&status).contains("backup papers (alice) needs attention: its last run failed"),
        "{}",
        stdout(&status)
    );
    assert_eq!(snapshot_numbers(&owner).last(), Some(&second));

    // Removed, its snapshots stay unless told.
    let removed = owner.json(&["backup", "rm", "papers"]);
    assert_eq!(
        removed["snapshots_kept"].as_u64(),
        Some(snapshot_numbers(&owner).len() as u64)
    );
    assert!(owner.run(&["status"]).status.success());
    let again = work.path().join("again");
    let got = owner.run(&[
        "get",
        &format!("papers@{first}"),
        "-o",
        again.to_str().unwrap(),
    ]);
    assert!(got.status.success(), "{}", stderr(&got));
    let removed = owner.json(&["backup", "rm", "papers", "--forget-snapshots"]);
    assert_eq!(removed["snapshots_kept"], 0);
    let out = owner.run(&["snapshots", "papers"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no backup job is named \"papers\""),
        "{}",
        stderr(&out)
    );

    // A watched job: its period is the shortest gap between runs (5m unless told), and `ls`
    // says how its folder is watched.
    let notes = work.path().join("notes");
    write(&notes, "todo.txt", b"watch me");
    let job = owner.json(&["backup", "add", notes.to_str().unwrap(), "--watch"]);
    assert_eq!(job["watch"], true, "{job}");
    assert_eq!(job["every"], "5m", "{job}");
    let listed = owner.json(&["backup", "ls"]);
    let j = &listed["jobs"][0];
    assert_eq!(
        (&j["name"], &j["watch"]),
        (&"notes".into(), &true.into()),
        "{j}"
    );
    assert!(
        ["starting", "watching"].contains(&j["watcher"]["state"].as_str().unwrap_or("")),
        "{j}"
    );
    let text = stdout(&owner.run(&["backup", "ls"]));
    assert!(
        text.contains("on changes, at most every 5m, at least every 1d"),
        "{text}"
    );
    assert!(text.contains("  watch: "), "{text}");
}

/// The owner killed in the middle of a run's put: after a restart the next run completes,
/// the snapshot before restores, and `check` is healthy.
#[cfg(feature = "adversary")]
#[test]
fn a_run_killed_midway_is_completed_by_the_next_and_nothing_earlier_is_lost() {
    let (mut owner, peers) = common::owner_with_peers(3);
    let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("papers");
    write(&src, "a.bin", &random_bytes(2 << 20, 1));
    let src_text = src.to_str().unwrap();
    owner.json(&[
        "backup", "add", src_text, "--every", "1d", "--shares", "2/4",
    ]);
    let first = owner.json(&["backup", "run", "papers"])["snapshot"]
        .as_u64()
        .unwrap();
    owner.stop();
    owner.restart_env(Some("alice"), &[("SHARD_CRASH_AT", "put:acks-recorded")]);
    owner.wait_online(&names, Duration::from_secs(15));
    write(&src, "b.bin", &random_bytes(3 << 20, 2));
    let killed = owner.run(&["backup", "run", "papers"]);
    let start = std::time::Instant::now();
    while owner.is_running() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the crash point was never reached: {}{}",
            stdout(&killed),
            stderr(&killed)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!killed.status.success());
    owner.restart(Some("alice"));
    owner.wait_online(&names, Duration::from_secs(15));
    let run = owner.json(&["backup", "run", "papers"]);
    assert_eq!(run["outcome"], "ok", "{run}");
    let next = run["snapshot"].as_u64().unwrap();
    assert!(next > first);
    for (at, file, seed, len) in [(first, "a.bin", 1, 2 << 20), (next, "b.bin", 2, 3 << 20)] {
        let out = work.path().join(format!("{at}-{file}"));
        let got = owner.run(&[
            "get",
            &format!("papers@{at}/{file}"),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(got.status.success(), "{}", stderr(&got));
        assert_eq!(fs::read(out).unwrap(), random_bytes(len, seed));
    }
    let check = owner.run(&["check"]);
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
}

/// `service install` writes a user unit that runs this binary's `serve` unlocking the account
/// from its password file (refused while others can read it); systemd's own checker accepts
/// the unit where it is installed; `uninstall` removes it.
#[test]
fn the_service_unit_runs_serve_with_the_password_file() {
    let node = common::TestNode::init("laptop");
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config");
    let pass = work.path().join("pass word");
    fs::write(&pass, "violet kettle across the dunes").unwrap();
    let env = [("XDG_CONFIG_HOME", config.to_str().unwrap())];
    let install = [
        "service",
        "install",
        "--user",
        "alice",
        "--password-file",
        pass.to_str().unwrap(),
        "--no-enable",
    ];
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&pass, fs::Permissions::from_mode(0o644)).unwrap();
    let out = node.run_env(&install, &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    fs::set_permissions(&pass, fs::Permissions::from_mode(0o600)).unwrap();
    let out = node.run_env(&install, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let unit = config.join("systemd/user/shard.service");
    let text = fs::read_to_string(&unit).unwrap();
    let exe = fs::canonicalize(common::shard_bin()).unwrap();
    let expected = format!(
        "ExecStart=\"{}\" --home \"{}\" serve --login \"alice\" --password-file \"{}\"\n",
        exe.display(),
        node.home().display(),
        pass.display()
    );
    assert!(text.contains(&expected), "{text}\nwanted {expected}");
    assert!(
        text.contains("[Install]\nWantedBy=default.target\n"),
        "{text}"
    );
    if Path::new("/usr/bin/systemd-analyze").exists() {
        let verify = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "systemd-analyze verify: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }
    let status = node.run_env(&["--json", "service", "status"], &env);
    let status: Value = serde_json::from_str(stdout(&status).trim()).unwrap();
    assert_eq!(status["installed"], true);
    let out = node.run_env(&["service", "uninstall"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!unit.exists());
}

/// A node started unattended whose password file no longer unlocks the account (the
/// passphrase was changed since) keeps serving, locked, and says why: a service must not
/// restart in a loop, taking down what it keeps for peers.
#[test]
fn a_password_file_that_no_longer_unlocks_leaves_the_node_serving_locked() {
    let mut node = common::TestNode::init("laptop");
    node.create_account("alice");
    let work = tempfile::tempdir().unwrap();
    let pass = work.path().join("pass");
    fs::write(&pass, "an old passphrase, changed since").unwrap();
    node.serve(&[
        "--login",
        "alice",
        "--password-file",
        pass.to_str().unwrap(),
    ]);
    assert!(node.is_running());
    node.wait_log("account alice stays locked", Duration::from_secs(10));
    let login = node.run_env(&["login", "alice"], &[("SHARD_PASSWORD", common::PASSWORD)]);
    assert!(login.status.success(), "{}", stderr(&login));
}
