//! The web UI in a real browser: headless Chromium (Debian's) driven by playwright-core
//! (`tests/browser/run.mjs`) against a three-node swarm on 127.0.0.1 — the first account
//! through the one-time setup link (which works once; sign-up is closed otherwise), the
//! recovery code step, a wrong passphrase, log in, upload, the share picture with three
//! machines and then one offline, download (bytes compared here), a request without the CSRF
//! token refused, peers, health, delete, log out; and the Backups page: a job added on a
//! folder open to web sessions, run, a file changed, run again, the diff, snapshot 1 browsed,
//! one of its files downloaded and restored onto the node (bytes compared here), the job
//! removed with its snapshots. Screenshots go to
//! `<target>/tmp/ui-screenshots/`. `scripts/test` installs Chromium and playwright-core.
// Test code: panicking on failure is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use shard_testkit::nodes as common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestNode;

#[test]
fn a_person_uses_the_web_ui_in_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let ready =
        Path::new(&chromium).exists() && driver_dir.join("node_modules/playwright-core").exists();
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Chromium and playwright-core: scripts/test installs them"
        );
        eprintln!(
            "SKIPPED: no {chromium} or no {}/node_modules/playwright-core (scripts/test installs both)",
            driver_dir.display()
        );
        return;
    }

    // A folder open to web sessions ([web] node_paths), with one to back up in it.
    let work = tempfile::tempdir().unwrap();
    let open = work.path().join("open");
    let papers = open.join("papers");
    std::fs::create_dir_all(papers.join("sub")).unwrap();
    let letter_then = b"Dear Ada, the first draft.\n".to_vec();
    std::fs::write(papers.join("letter.txt"), &letter_then).unwrap();
    std::fs::write(papers.join("sub/deep.txt"), b"deep").unwrap();
    std::fs::write(papers.join("scratch.tmp"), b"left out").unwrap();
    let restored = open.join("letter-restored.txt");
    let backup_download = work.path().join("letter-downloaded.txt");

    let mut owner = TestNode::init("laptop");
    let config = owner.home().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("node_paths = []"), "{text}");
    std::fs::write(
        &config,
        text.replace(
            "node_paths = []",
            &format!("node_paths = [{:?}]", open.to_str().unwrap()),
        ),
    )
    .unwrap();
    owner.serve(&[]);
    let mut peers: Vec<TestNode> = (0..2)
        .map(|i| TestNode::start(&format!("peer{i}")))
        .collect();
    for p in &peers {
        owner.pair_with(p);
    }
    owner.wait_online(&["peer0", "peer1"], Duration::from_secs(15));
    // The node has no account: its web UI is set up through the one-time link.
    let link = owner.json(&["ui-link"]);
    assert_eq!(link["setup"], true, "{link}");
    let setup_url = link["url"].as_str().unwrap().to_string();

    let upload = work.path().join("family papers.pdf");
    let bytes = common::random_file(&upload, 700_000, 42);
    let downloaded = work.path().join("downloaded.pdf");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();

    let mut driver = Command::new("node")
        .current_dir(&driver_dir)
        .arg("run.mjs")
        .arg(&setup_url)
        .arg(&upload)
        .arg(&shots)
        .arg(&downloaded)
        .arg(&papers)
        .arg(&restored)
        .arg(&backup_download)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_driver = driver.stdin.take().unwrap();
    let from_driver = BufReader::new(driver.stdout.take().unwrap());
    let start = Instant::now();
    let mut seen = Vec::new();
    for line in from_driver.lines() {
        let line = line.unwrap();
        println!("browser: {line}");
        if line == "STOP_PEER" {
            peers[1].kill9();
            writeln!(to_driver, "OK").unwrap();
        }
        if line == "CHANGE_BACKUP" {
            // Between the two runs: a file changed, one added.
            std::fs::write(
                papers.join("letter.txt"),
                b"Dear Ada, the second draft, longer.\n",
            )
            .unwrap();
            std::fs::write(papers.join("new.txt"), b"new").unwrap();
            writeln!(to_driver, "OK").unwrap();
        }
        if line == "FAIL_BACKUP" {
            // A job whose folder is gone by its first run.
            let gone = work.path().join("gone");
            std::fs::create_dir_all(&gone).unwrap();
            std::fs::write(gone.join("a.txt"), b"a").unwrap();
            let added = owner.run(&["backup", "add", gone.to_str().unwrap(), "--every", "1d"]);
            assert!(added.status.success(), "{}", common::stderr(&added));
            std::fs::remove_dir_all(&gone).unwrap();
            let run = owner.run(&["backup", "run", "gone"]);
            assert_eq!(run.status.code(), Some(1), "{}", common::stdout(&run));
            writeln!(to_driver, "OK").unwrap();
        }
        seen.push(line);
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the browser run takes too long"
        );
    }
    let status = driver.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut driver.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        status.success() && seen.iter().any(|l| l == "DONE"),
        "the browser run failed:\n{}\n{stderr}\nnode log:\n{}",
        seen.join("\n"),
        owner.log()
    );
    assert!(
        std::fs::read(&downloaded).unwrap() == bytes,
        "downloaded bytes differ"
    );
    assert_eq!(
        std::fs::read(&backup_download).unwrap(),
        letter_then,
        "the file downloaded from snapshot 1 is not what it was then"
    );
    assert_eq!(
        std::fs::read(&restored).unwrap(),
        letter_then,
        "the file restored from snapshot 1 is not what it was then"
    );
    for name in [
        "login",
        "recovery-code",
        "wrong-passphrase",
        "files",
        "how-it-works",
        "how-it-works-offline",
        "backups",
        "backup-diff",
        "backup-tree",
        "peers",
        "health",
    ] {
        let size = std::fs::metadata(shots.join(format!("{name}.png")))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(
            size > 5_000,
            "screenshot {name} is missing or blank ({size} bytes)"
        );
    }
    drop(peers);
    owner.stop();
}
