//! Peers in other homes: nodes in network namespaces that cannot reach each other pair by
//! invite code, store and restore through a relay of the test's own (`shard relay`), come back
//! by themselves when the relay restarts; homes behind real NATs (MASQUERADE, one of them
//! symmetric) punch holes where the NATs allow it, keep their punched holes while the relay is
//! down, survive a cut link in the middle of a put and recover onto a new machine; a stranger
//! on the internet who knows a node's keys and relay is refused; a node with `--relay none`
//! sends nothing anywhere.
//! Nothing leaves the namespaces these tests create. Skipped, with the reason printed, when
//! not root; under CI that is a failure (a skip would pass unseen).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use shard_testkit::nodes as common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::homes::{Homes, Nat, all_online_over as online_over};
use common::lan::namespaces_or_skip;
use serde_json::Value;

/// Each peer named in `paths` is online over its path.
fn reached_over(peers: &Value, paths: &[(&str, &str)]) -> bool {
    let list = peers["peers"].as_array().cloned().unwrap_or_default();
    paths.iter().all(|(name, path)| {
        list.iter().any(|p| {
            p["name"].as_str() == Some(*name)
                && p["online"] == true
                && p["path"].as_str() == Some(*path)
        })
    })
}

/// Pairs home `joiner` with home `inviter` by a code, as two people on the phone would;
/// returns the code (spent now).
fn pair(homes: &Homes, inviter: usize, joiner: usize) -> String {
    let code = homes.json(inviter, &["invite"])["code"]
        .as_str()
        .unwrap()
        .to_string();
    let joined = homes.json(joiner, &["join", &code]);
    assert!(joined["peer"]["id"].is_string(), "{joined}");
    code
}

#[test]
fn homes_that_cannot_reach_each_other_pair_store_and_restore_through_a_relay() {
    if !namespaces_or_skip() {
        return;
    }
    let mut homes = Homes::new(3);
    homes.start_relay();
    let relay = homes.relay_url();
    for (i, name) in ["owner", "aunt", "friend"].iter().enumerate() {
        homes.init(i, name, &relay);
    }
    let out = homes.shard(0, &["--json", "account", "create", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    homes.serve(0, &["--login", "alice"]);
    homes.serve(1, &[]);
    homes.serve(2, &[]);

    // The codes carry the owner's LAN address too, which means nothing from the other homes:
    // pairing goes through the relay.
    let spent = pair(&homes, 0, 1);
    // The aunt's code, used again from another home (it reaches the owner only through the
    // relay): refused, saying why, and nothing pinned on either side.
    let again = homes.shard(2, &["join", &spent]);
    let said = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{said}");
    assert!(
        said.contains("no invite code of its is waiting") && said.contains("already used"),
        "{said}"
    );
    assert_eq!(
        homes.json(2, &["peers"])["peers"].as_array().map(Vec::len),
        Some(0)
    );
    assert_eq!(
        homes.json(0, &["peers"])["peers"].as_array().map(Vec::len),
        Some(1),
        "the owner pinned the friend"
    );
    pair(&homes, 0, 2);
    let peers = homes.wait_peers(0, Duration::from_secs(60), |p| online_over(p, 2, "relay"));
    for p in peers["peers"].as_array().unwrap() {
        assert!(
            p["addrs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a.as_str().unwrap().starts_with("iroh:")),
            "the peer's iroh key is pinned: {p}"
        );
    }
    let status = homes.json(0, &["status"]);
    assert!(
        status["wan"]["relays"][0]
            .as_str()
            .is_some_and(|r| r.starts_with(&relay)),
        "status names the relay: {status}"
    );

    // A file and a tree, 2-of-3 over the three homes.
    let work = homes.dir().join("work");
    std::fs::create_dir_all(work.join("tree/sub")).unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect();
    std::fs::write(work.join("papers.bin"), &big).unwrap();
    std::fs::write(work.join("tree/a.txt"), b"the deeds").unwrap();
    std::fs::write(work.join("tree/sub/b.txt"), b"the will").unwrap();
    let stored = homes.json(
        0,
        &[
            "put",
            work.join("papers.bin").to_str().unwrap(),
            work.join("tree").to_str().unwrap(),
            "--shares",
            "2/3",
        ],
    );
    assert_eq!(stored["files"], 3, "{stored}");

    // The aunt's laptop is off: the owner and the friend are enough.
    homes.kill(1);
    let out_dir = homes.dir().join("restored");
    homes.json(
        0,
        &[
            "get",
            "papers.bin",
            "-o",
            out_dir.join("papers.bin").to_str().unwrap(),
        ],
    );
    homes.json(
        0,
        &["get", "tree", "-o", out_dir.join("tree").to_str().unwrap()],
    );
    assert!(std::fs::read(out_dir.join("papers.bin")).unwrap() == big);
    assert_eq!(
        std::fs::read(out_dir.join("tree/a.txt")).unwrap(),
        b"the deeds"
    );
    assert_eq!(
        std::fs::read(out_dir.join("tree/sub/b.txt")).unwrap(),
        b"the will"
    );

    // The relay goes down and comes back: the friend comes back by itself.
    homes.stop_relay();
    homes.wait_peers(0, Duration::from_secs(60), |p| {
        p["peers"]
            .as_array()
            .is_some_and(|l| l.iter().all(|p| p["online"] == false))
    });
    homes.start_relay();
    // The aunt's laptop comes back too; both come back through the relay by themselves.
    homes.serve(1, &[]);
    homes.wait_peers(0, Duration::from_secs(90), |p| online_over(p, 2, "relay"));
    // A catalog snapshot sent while the aunt's laptop went off fails; the node writes it
    // again by itself once she is back (within its repair check), no `repair` typed.
    check_settles(&homes, 0, "check");

    // A relay path that loses packets and queues them on a slow link: a put still lands,
    // byte-exact.
    for h in [1, 2] {
        homes.impair(h, 10, Some(8_000));
    }
    let letter = common::random_file(&work.join("letter.bin"), 1_500_000, 3);
    assert_ok(
        &homes.shard(
            0,
            &[
                "put",
                work.join("letter.bin").to_str().unwrap(),
                "--shares",
                "2/3",
            ],
        ),
        "put over a lossy relay path",
    );
    let letter_out = out_dir.join("letter.bin");
    assert_ok(
        &homes.shard(
            0,
            &["get", "letter.bin", "-o", letter_out.to_str().unwrap()],
        ),
        "get over a lossy relay path",
    );
    assert!(std::fs::read(&letter_out).unwrap() == letter);

    // A relay path that drops everything: the put fails and says which peers it could not
    // reach; what was stored before is untouched and restores once the path heals.
    for h in [1, 2] {
        homes.heal(h, 10, Some(8_000));
        homes.impair(h, 100, None);
    }
    std::fs::write(work.join("lost.txt"), b"never acknowledged").unwrap();
    let out = homes.shard(
        0,
        &[
            "put",
            work.join("lost.txt").to_str().unwrap(),
            "--shares",
            "2/3",
        ],
    );
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("the put with no path to the peers said: {said}");
    assert!(
        !out.status.success(),
        "a put with no peer reachable succeeded"
    );
    assert!(
        said.contains("aunt") || said.contains("friend") || said.contains("online"),
        "the failure names no cause: {said}"
    );
    for h in [1, 2] {
        homes.heal(h, 100, None);
    }
    homes.wait_peers(0, Duration::from_secs(90), |p| online_over(p, 2, "relay"));
    let again = out_dir.join("papers-again.bin");
    assert_ok(
        &homes.shard(0, &["get", "papers.bin", "-o", again.to_str().unwrap()]),
        "get after the path healed",
    );
    assert!(std::fs::read(&again).unwrap() == big);
    // The head of a snapshot written while the path was dead reaches the peers once they are
    // back (the repair check, woken by their return): until then check says so.
    check_settles(&homes, 0, "check after the path healed");
}

/// What home `i` sends on its one link (to the "internet") while its node starts, runs for a
/// few seconds and answers `shard status`, as tcpdump printed it.
fn sent_while_serving(homes: &mut Homes, i: usize) -> String {
    let capture = homes.dir().join(format!("capture{i}.txt"));
    let mut tcpdump = Command::new("ip")
        .args([
            "netns",
            "exec",
            homes.ns(i),
            "tcpdump",
            "-n",
            "-l",
            "-i",
            homes.dev(i),
        ])
        .args(["udp or tcp"])
        .stdout(std::fs::File::create(&capture).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump (scripts/test installs it)");
    std::thread::sleep(Duration::from_millis(500));
    homes.serve(i, &[]);
    let _ = homes.json(i, &["status"]);
    std::thread::sleep(Duration::from_secs(6));
    homes.kill(i);
    let _ = tcpdump.kill();
    let _ = tcpdump.wait();
    std::fs::read_to_string(&capture).unwrap_or_default()
}

#[test]
fn a_node_without_relays_sends_nothing_off_its_machine() {
    if !namespaces_or_skip() {
        return;
    }
    let mut homes = Homes::new(2);
    homes.init(0, "quiet", "none");
    // The control: a node given a relay (none runs) is seen trying to reach it, so the
    // capture does see what a node sends.
    let relay = homes.relay_url();
    homes.init(1, "control", &relay);
    let seen = sent_while_serving(&mut homes, 1);
    assert!(
        seen.contains("10.99.9.9"),
        "the capture saw nothing: {seen:?}"
    );

    homes.serve(0, &[]);
    let status = homes.json(0, &["status"]);
    assert!(status["wan"].is_null(), "{status}");
    let out = homes.shard(0, &["status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("relays: none"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    homes.kill(0);
    // No DNS lookup, no relay, nothing.
    let seen = sent_while_serving(&mut homes, 0);
    assert!(seen.trim().is_empty(), "the node sent:\n{seen}");
}

/// How many shares a node's store holds (its files, less the index and temporaries).
fn stored_shares(home: &std::path::Path) -> usize {
    fn walk(dir: &std::path::Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }
    walk(&home.join("store"))
}

fn wait_snapshot_after(homes: &Homes, i: usize, before: usize) {
    let start = Instant::now();
    while written(homes, i) <= before {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no catalog snapshot written:\n{}",
            homes.log(i)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How many catalog snapshots machine `i`'s log says it wrote.
fn written(homes: &Homes, i: usize) -> usize {
    homes
        .log(i)
        .lines()
        .filter(|l| l.contains("catalog snapshot") && l.contains("written"))
        .count()
}

/// `shard check` on machine `i` passes within a minute: a catalog head that did not reach a
/// peer while its path was down reaches it by itself once it is back.
fn check_settles(homes: &Homes, i: usize, what: &str) {
    let start = Instant::now();
    let mut checked = homes.shard(i, &["check"]);
    while !checked.status.success() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(2));
        checked = homes.shard(i, &["check"]);
    }
    assert_ok_logged(homes, &checked, what);
}

/// [`assert_ok`], and when it fails the ends of every machine's log and the relay's say why.
fn assert_ok_logged(homes: &Homes, out: &std::process::Output, what: &str) {
    if !out.status.success() {
        eprintln!("{}", homes.log_tails(60));
    }
    assert_ok(out, what);
}

fn assert_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The three homes: A (the owner and one more machine on one LAN, behind a NAT that
/// keeps one mapping per endpoint), B (one machine behind such a NAT) and C (one machine
/// behind a symmetric NAT), and a relay over HTTPS on the internet between them.
#[test]
fn homes_behind_nats_punch_holes_store_survive_a_cut_link_and_recover_on_a_new_machine() {
    if !namespaces_or_skip() {
        return;
    }
    let mut homes = Homes::behind_nats(&[
        (Nat::PerEndpoint, 2),
        (Nat::PerEndpoint, 1),
        (Nat::Symmetric, 1),
    ]);
    homes.start_relay();
    let relay = homes.relay_url();
    assert!(relay.starts_with("https://"), "{relay}");
    for (i, name) in ["owner", "den", "aunt", "friend"].iter().enumerate() {
        homes.init(i, name, &relay);
    }
    let created = homes.json(0, &["account", "create", "alice"]);
    let code = created["recovery_code"].as_str().unwrap().to_string();
    homes.serve(0, &["--login", "alice"]);
    for i in 1..4 {
        homes.serve(i, &[]);
    }
    for joiner in 1..4 {
        pair(&homes, 0, joiner);
    }
    // The den is on the owner's LAN; the aunt's NAT lets a hole be punched; the friend's
    // (symmetric) does not, so the friend stays on the relay.
    let wanted = [("den", "lan"), ("aunt", "direct"), ("friend", "relay")];
    homes.wait_peers(0, Duration::from_secs(90), |p| reached_over(p, &wanted));
    let status = homes.json(0, &["status"]);
    assert!(
        status["wan"]["relays"][0]
            .as_str()
            .is_some_and(|r| r.starts_with(&relay)),
        "{status}"
    );
    // Whether it is directly reachable: what was measured (the aunt on a punched hole, the
    // friend through the relay) and the NAT the relay saw it behind (its router's outside).
    // The friend, behind a NAT that gives every destination another port, has no direct
    // path to anyone. (Waited for: a path may move for a moment on a loaded machine.)
    for (i, words) in [
        (
            0,
            "directly reachable: yes, 1 peer connected directly now, 1 through a relay; \
             behind a NAT: relays see it at 10.97.1.2:",
        ),
        (
            3,
            "directly reachable: not yet (no peer connected directly, 1 through a relay); \
             behind a NAT: relays see it at 10.97.3.2:",
        ),
    ] {
        let start = Instant::now();
        loop {
            let said = String::from_utf8_lossy(&homes.shard(i, &["status"]).stdout).to_string();
            if said.contains(words) {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{said}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    // A file and a tree, 2-of-4 across the three homes.
    let work = homes.dir().join("work");
    std::fs::create_dir_all(work.join("tree/sub")).unwrap();
    let papers = common::random_file(&work.join("papers.bin"), 3_000_000, 1);
    std::fs::write(work.join("tree/a.txt"), b"the deeds").unwrap();
    std::fs::write(work.join("tree/sub/b.txt"), b"the will").unwrap();
    let put = homes.shard(
        0,
        &[
            "put",
            work.join("papers.bin").to_str().unwrap(),
            work.join("tree").to_str().unwrap(),
            "--shares",
            "2/4",
        ],
    );
    assert_ok(&put, "put");

    // Any two machines off: the owner restores with the one that is left, over the relay and
    // over the punched hole.
    let restore = |homes: &Homes, tag: &str| {
        let out_dir = homes.dir().join(format!("restored-{tag}"));
        let papers_out = out_dir.join("papers.bin");
        assert_ok_logged(
            homes,
            &homes.shard(
                0,
                &["get", "papers.bin", "-o", papers_out.to_str().unwrap()],
            ),
            "get papers",
        );
        let tree_out = out_dir.join("tree");
        assert_ok_logged(
            homes,
            &homes.shard(0, &["get", "tree", "-o", tree_out.to_str().unwrap()]),
            "get tree",
        );
        assert!(
            std::fs::read(&papers_out).unwrap() == papers,
            "{tag}: papers differ"
        );
        assert_eq!(std::fs::read(tree_out.join("a.txt")).unwrap(), b"the deeds");
        assert_eq!(
            std::fs::read(tree_out.join("sub/b.txt")).unwrap(),
            b"the will"
        );
    };
    homes.kill(1);
    homes.kill(2);
    restore(&homes, "with-friend");
    homes.serve(1, &[]);
    homes.serve(2, &[]);
    homes.kill(3);
    homes.wait_peers(0, Duration::from_secs(90), |p| {
        reached_over(p, &[("den", "lan"), ("aunt", "direct")])
    });
    homes.kill(1);
    restore(&homes, "with-aunt");
    homes.serve(1, &[]);
    homes.serve(3, &[]);
    homes.wait_peers(0, Duration::from_secs(90), |p| reached_over(p, &wanted));

    // The relay goes down. The punched hole to the aunt and the LAN carry on: a put 2-of-3
    // lands on the owner, the den and the aunt. Only the friend, whom nothing but the relay
    // reaches, is lost, and comes back by itself when the relay does.
    homes.stop_relay();
    homes.wait_peers(0, Duration::from_secs(90), |p| {
        p["peers"]
            .as_array()
            .and_then(|l| l.iter().find(|p| p["name"] == "friend"))
            .is_some_and(|f| f["online"] == false)
    });
    let peers = homes.json(0, &["peers"]);
    assert!(
        reached_over(&peers, &[("den", "lan"), ("aunt", "direct")]),
        "the direct path did not outlive the relay: {peers}"
    );
    std::fs::write(
        work.join("no-relay.txt"),
        b"written while the relay was down",
    )
    .unwrap();
    assert_ok_logged(
        &homes,
        &homes.shard(
            0,
            &[
                "put",
                work.join("no-relay.txt").to_str().unwrap(),
                "--shares",
                "2/3",
            ],
        ),
        "put with the relay down",
    );
    homes.start_relay();
    homes.wait_peers(0, Duration::from_secs(90), |p| reached_over(p, &wanted));

    // The aunt's home loses its link in the middle of a put.
    // Long enough that the cut falls in its middle: the link is cut once the aunt has
    // received a few of its shares.
    let big = common::random_file(&work.join("film.bin"), 160 << 20, 2);
    let aunt_had = stored_shares(homes.home(2));
    let film = work.join("film.bin");
    let machine = homes.machine(0);
    let mut running = Command::new("ip")
        .args(["netns", "exec", &machine.ns, common::shard_bin(), "--home"])
        .arg(&machine.home)
        .args(["put", film.to_str().unwrap(), "--shares", "2/4"])
        .env("SHARD_PASSWORD", common::PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while stored_shares(homes.home(2)) < aunt_had + 8 {
        assert!(
            start.elapsed() < Duration::from_secs(60) && running.try_wait().unwrap().is_none(),
            "the put never reached the aunt:\n{}",
            homes.log(0)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    homes.cut(1, true);
    let start = Instant::now();
    while running.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the put hangs on the cut link:\n{}",
            homes.log(0)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let cut_put = running.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&cut_put.stdout),
        String::from_utf8_lossy(&cut_put.stderr)
    );
    eprintln!(
        "the put across the cut link said ({:?}): {said}",
        cut_put.status.code()
    );
    // Either it failed naming the machine it lost, or it placed all four shares of every
    // chunk elsewhere — which `check` (it verifies every acknowledged share id) confirms below.
    if !cut_put.status.success() {
        assert!(said.contains("aunt"), "the failure names no cause: {said}");
    }
    homes.cut(1, false);
    homes.wait_peers(0, Duration::from_secs(120), |p| reached_over(p, &wanted));
    let before = written(&homes, 0);
    let rerun = homes.json(0, &["put", film.to_str().unwrap(), "--shares", "2/4"]);
    eprintln!("the put again: {rerun}");
    if !cut_put.status.success() {
        assert!(
            rerun["chunks_already_stored"].as_u64().unwrap_or(0) > 0,
            "the rerun resumed nothing: {rerun}"
        );
    }
    check_settles(&homes, 0, "check after the rerun");
    wait_snapshot_after(&homes, 0, before);

    // The owner's laptop is lost; a new laptop in the aunt's home pairs with the survivors
    // across the NATs and gets everything back with the recovery code.
    homes.kill(0);
    let fresh = homes.add_machine(1);
    homes.init(fresh, "new-laptop", &relay);
    homes.serve(fresh, &[]);
    for survivor in 1..4 {
        pair(&homes, survivor, fresh);
    }
    homes.wait_peers(fresh, Duration::from_secs(90), |p| {
        reached_over(
            p,
            &[("aunt", "lan"), ("den", "direct"), ("friend", "relay")],
        )
    });
    let recovered = homes.json(fresh, &["recover", "--code", &code]);
    assert!(
        recovered["catalog_head"].as_u64().unwrap_or(0) >= 1,
        "{recovered}"
    );
    let out_dir = homes.dir().join("recovered");
    for (name, bytes) in [("papers.bin", &papers), ("film.bin", &big)] {
        let out = out_dir.join(name);
        assert_ok(
            &homes.shard(fresh, &["get", name, "-o", out.to_str().unwrap()]),
            "get after recovery",
        );
        assert!(
            std::fs::read(&out).unwrap() == *bytes,
            "{name} differs after recovery"
        );
    }
    let tree_out = out_dir.join("tree");
    assert_ok(
        &homes.shard(fresh, &["get", "tree", "-o", tree_out.to_str().unwrap()]),
        "get tree after recovery",
    );
    assert_eq!(
        std::fs::read(tree_out.join("sub/b.txt")).unwrap(),
        b"the will"
    );
}

/// Two homes, each with a relay of its own: the aunt joins with the owner's code (which names
/// the owner's relay), they store 2-of-2, and after both restart each reaches the other again
/// at the other's relay — the one named by the code, or by the peer's hello at pairing — even
/// with its own relay down.
#[test]
fn peers_homed_on_different_relays_meet_again_after_a_restart() {
    if !namespaces_or_skip() {
        return;
    }
    // Symmetric NATs both: no hole is punched, everything goes through the relays.
    let mut homes = Homes::behind_nats(&[(Nat::Symmetric, 1), (Nat::Symmetric, 1)]);
    homes.start_relay_of(0);
    homes.start_relay_of(1);
    let (owners, aunts) = (homes.relay_url_of(0), homes.relay_url_of(1));
    homes.init(0, "owner", &owners);
    homes.init(1, "aunt", &aunts);
    homes.json(0, &["account", "create", "alice"]);
    homes.serve(0, &["--login", "alice"]);
    homes.serve(1, &[]);
    pair(&homes, 0, 1);
    homes.wait_peers(0, Duration::from_secs(60), |p| online_over(p, 1, "relay"));
    // Each pinned the other at the other's relay.
    for (i, relay) in [(0, &aunts), (1, &owners)] {
        let peers = homes.json(i, &["peers"]);
        let addrs = peers["peers"][0]["addrs"].as_array().cloned().unwrap();
        assert!(
            addrs
                .iter()
                .any(|a| a.as_str().unwrap().contains(&format!("@{relay}"))),
            "machine {i} records its peer at {relay}: {peers}"
        );
    }

    let work = homes.dir().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let papers = common::random_file(&work.join("papers.bin"), 1_000_000, 3);
    let file = work.join("papers.bin");
    assert_ok(
        &homes.shard(0, &["put", file.to_str().unwrap(), "--shares", "2/2"]),
        "put before the restart",
    );

    // Both machines restart (an update, a power cut): neither has a connection left. With
    // only the aunt's relay up, the owner — homed at a relay that is down — reaches her only
    // by dialing her at hers; 2-of-2, so the restore needs her share.
    let restart = |homes: &mut Homes| {
        homes.kill(0);
        homes.kill(1);
        homes.serve(1, &[]);
        homes.serve(0, &["--login", "alice"]);
        for i in 0..2 {
            homes.wait_peers(i, Duration::from_secs(60), |p| online_over(p, 1, "relay"));
        }
    };
    homes.stop_relay_of(0);
    restart(&mut homes);
    let out = homes.dir().join("papers.out");
    assert_ok(
        &homes.shard(0, &["get", "papers.bin", "-o", out.to_str().unwrap()]),
        "get through the aunt's relay",
    );
    assert!(std::fs::read(&out).unwrap() == papers, "papers differ");

    // The other way: only the owner's relay up, the aunt dials the owner at his.
    homes.start_relay_of(0);
    homes.stop_relay_of(1);
    restart(&mut homes);
    std::fs::write(work.join("later.txt"), b"written after the restart").unwrap();
    assert_ok(
        &homes.shard(
            0,
            &[
                "put",
                work.join("later.txt").to_str().unwrap(),
                "--shares",
                "2/2",
            ],
        ),
        "put through the owner's relay",
    );
    check_settles(&homes, 0, "check after the restarts");
}

/// A paired peer that comes back over iroh with another endpoint key than the one pinned for
/// it (an impostor holding only its Noise key, or a tampered node) is refused, and the log
/// names it and both keys; the real one is let in again.
#[test]
fn a_peer_showing_another_iroh_key_than_the_pinned_one_is_refused_and_named() {
    if !namespaces_or_skip() {
        return;
    }
    let mut homes = Homes::new(2);
    homes.start_relay();
    let relay = homes.relay_url();
    homes.init(0, "owner", &relay);
    homes.init(1, "aunt", &relay);
    homes.serve(0, &[]);
    homes.serve(1, &[]);
    pair(&homes, 0, 1);
    homes.wait_peers(0, Duration::from_secs(60), |p| online_over(p, 1, "relay"));
    let pinned = homes.json(0, &["peers"])["peers"][0]["addrs"].clone();

    homes.kill(1);
    homes.wait_peers(0, Duration::from_secs(60), |p| {
        p["peers"][0]["online"] == false
    });
    // An invite pending on the owner lets unknown iroh keys as far as the Noise handshake,
    // where the aunt's id is learnt and compared with what is pinned for it.
    homes.json(0, &["invite"]);
    homes.serve_env(1, &[], &[("SHARD_ADVERSARY", "other-iroh-key")]);
    let start = std::time::Instant::now();
    while !homes.log(0).contains("refused aunt") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the owner never refused the aunt's other key:\n{}",
            homes.log(0)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let line = homes
        .log(0)
        .lines()
        .find(|l| l.contains("refused aunt"))
        .unwrap()
        .to_string();
    assert!(line.contains("is pinned for it"), "{line}");
    let peers = homes.json(0, &["peers"]);
    assert_eq!(peers["peers"][0]["online"], false, "{peers}");
    assert_eq!(peers["peers"][0]["addrs"], pinned, "the pin moved: {peers}");

    // The real aunt, with the pinned key, is let in again.
    homes.kill(1);
    homes.serve(1, &[]);
    homes.wait_peers(0, Duration::from_secs(60), |p| online_over(p, 1, "relay"));
}

/// A peer's laptop moves to another address (a new lease on its home's LAN): its old flows
/// are dead, and it is reached again by itself, directly.
#[test]
fn a_peer_that_changes_network_is_reached_again_by_itself() {
    if !namespaces_or_skip() {
        return;
    }
    let mut homes = Homes::behind_nats(&[(Nat::PerEndpoint, 1), (Nat::PerEndpoint, 1)]);
    homes.start_relay();
    let relay = homes.relay_url();
    homes.init(0, "owner", &relay);
    homes.init(1, "aunt", &relay);
    homes.json(0, &["account", "create", "alice"]);
    homes.serve(0, &["--login", "alice"]);
    homes.serve(1, &[]);
    pair(&homes, 0, 1);
    homes.wait_peers(0, Duration::from_secs(60), |p| online_over(p, 1, "direct"));

    homes.readdress(1, 77);
    // A put 1-of-2 right after the move needs the aunt: it goes through only once the aunt is
    // reached again at its new address. (Measured: about 21 s — iroh abandons the dead direct
    // path after its 15 s path idle timeout, and the stream moves on; README says so.)
    let work = homes.dir().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let bytes = common::random_file(&work.join("moved.bin"), 2_000_000, 4);
    let start = Instant::now();
    assert_ok(
        &homes.shard(
            0,
            &[
                "put",
                work.join("moved.bin").to_str().unwrap(),
                "--shares",
                "1/2",
            ],
        ),
        "put after the move",
    );
    eprintln!("the put after the move took {:?}", start.elapsed());
    // And the path is direct again (a fresh hole from the new address).
    homes.wait_peers(0, Duration::from_secs(120), |p| online_over(p, 1, "direct"));
    eprintln!("direct again after {:?}", start.elapsed());
    homes.kill(0);
    homes.serve(0, &["--login", "alice"]);
    let out = homes.dir().join("moved-back.bin");
    homes.wait_peers(0, Duration::from_secs(60), |p| online_over(p, 1, "direct"));
    assert_ok(
        &homes.shard(0, &["get", "moved.bin", "-o", out.to_str().unwrap()]),
        "get",
    );
    assert!(std::fs::read(&out).unwrap() == bytes);
}

/// A stranger on the internet who knows a node's id, its iroh key and its relay (all of which
/// any code of the node shows) gets a refused handshake and no data. While a code of the
/// node is waiting, unknown keys get as far as the pairing handshake (and iroh tells them the
/// addresses it offers for a direct path, as it tells anyone it lets connect), where a
/// guessed secret fails, and the real code still works after it. With no code waiting, the node does not let
/// the stranger past its key check. Nothing is pinned on either side.
#[test]
fn a_stranger_on_the_internet_who_knows_a_nodes_keys_and_relay_gets_nothing() {
    if !namespaces_or_skip() {
        return;
    }
    let mut homes = Homes::behind_nats(&[(Nat::PerEndpoint, 1), (Nat::PerEndpoint, 1)]);
    homes.start_relay();
    let relay = homes.relay_url();
    let stranger = homes.add_stranger();
    for (i, name) in [(0, "owner"), (1, "aunt"), (stranger, "stranger")] {
        homes.init(i, name, &relay);
        homes.serve(i, &[]);
    }
    let status = homes.json(0, &["status"]);
    let id = shard_net::identity::parse_fingerprint(status["id"].as_str().unwrap()).unwrap();
    let key: [u8; 32] = hex::decode(status["wan"]["key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    // What the stranger can make: a well-formed code naming the owner, its key and its relay,
    // with a secret of its own guessing.
    let forge = || {
        let route = shard_net::route::IrohRoute {
            key,
            relay: Some(relay.clone()),
        };
        shard_net::pairing::Invites::default()
            .create(id, Vec::new(), Some(route), Duration::from_secs(600))
            .unwrap()
            .encode()
            .to_string()
    };
    let stranger_joins = |homes: &Homes| {
        let out = homes.shard(stranger, &["join", &forge()]);
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "the stranger joined: {said}");
        said
    };
    let nobody_pinned = |homes: &Homes, owner_has: usize| {
        let peers = homes.json(0, &["peers"]);
        assert_eq!(
            peers["peers"].as_array().map(Vec::len),
            Some(owner_has),
            "{peers}"
        );
        let theirs = homes.json(stranger, &["peers"]);
        assert_eq!(
            theirs["peers"].as_array().map(Vec::len),
            Some(0),
            "{theirs}"
        );
    };

    // A code of the owner's is waiting: the stranger's guess fails the handshake.
    let code = homes.json(0, &["invite"])["code"]
        .as_str()
        .unwrap()
        .to_string();
    let said = stranger_joins(&homes);
    assert!(said.contains("unknown invite code"), "{said}");
    nobody_pinned(&homes, 0);
    // The guess did not spend the owner's code: the aunt joins with it.
    let joined = homes.json(1, &["join", &code]);
    assert!(joined["peer"]["id"].is_string(), "{joined}");
    nobody_pinned(&homes, 1);

    // No code waiting: the stranger gets no further than the owner's key check.
    let said = stranger_joins(&homes);
    assert!(
        said.contains("let this node no further than its key check"),
        "{said}"
    );
    nobody_pinned(&homes, 1);
    homes.wait_peers(0, Duration::from_secs(60), |p| {
        reached_over(p, &[("aunt", "direct")]) || reached_over(p, &[("aunt", "relay")])
    });
}
