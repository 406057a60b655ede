//! The web UI in a real browser: headless Chromium (Debian's) driven by playwright-core
//! (`tests/browser/run.mjs`) against a three-node swarm on 127.0.0.1 — the first account
//! through the one-time setup link (which works once; sign-up is closed otherwise), the
//! recovery code step, a wrong passphrase, log in, upload, the share picture with three
//! machines and then one offline, download (bytes compared here), a request without the CSRF
//! token refused, peers, health, delete, log out. Screenshots go to
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

    let mut owner = TestNode::start("laptop");
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

    let work = tempfile::tempdir().unwrap();
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
    for name in [
        "login",
        "recovery-code",
        "wrong-passphrase",
        "files",
        "how-it-works",
        "how-it-works-offline",
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
