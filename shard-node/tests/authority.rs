//! Who may destroy or take over a vault's copies, with real nodes in this process: not a copy
//! of the owner's home without the passphrase; the owner, with the vault key, even to undo a
//! removal within the peers' grace period; and passphrase guessing costs its delays.
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

use shard_node::files::Removing;
use shard_testkit::swarm as common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Swarm, USER, wait_until};
use shard_node::node::Node;
use shard_proto::{ErrorCode, Namespace, Request, VaultAuth, VaultOp};

/// Everything the nodes of this process log (installed once, for the whole test binary).
fn log() -> &'static Mutex<Vec<u8>> {
    static LOG: std::sync::OnceLock<&'static Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        struct Writer(&'static Mutex<Vec<u8>>);
        impl std::io::Write for Writer {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_writer(move || Writer(buffer))
                .with_ansi(false)
                .finish(),
        );
        buffer
    })
}

fn log_text() -> String {
    String::from_utf8_lossy(&log().lock().unwrap()).into_owned()
}

/// A laptop is stolen (or copied by malware) without the passphrase: a node started from a
/// copy of the owner's home has the owner's node key, its catalog and its peers, but no
/// vault key. It can neither delete the owner's shares on a peer, nor replace the catalog
/// head recovery would use, nor take the vault over: each is refused, typed, and logged with
/// the sender's name; nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_the_owners_home_without_the_passphrase_can_destroy_nothing() {
    log();
    let swarm = Swarm::start(3, 2).await;
    let file = swarm.path("will.txt");
    std::fs::write(&file, vec![7u8; 300_000]).unwrap();
    swarm.put(&file, "will.txt", None).await.unwrap();
    let owner = swarm.owner().clone();
    let session = owner.session(Some(USER)).unwrap();
    let seq = shard_node::snapshot::write_snapshot(&owner, &session)
        .await
        .unwrap();
    let vault = session.vault();
    let peer = swarm.nodes[1].clone();
    let head_before = peer.heads().unwrap().get(&vault).unwrap().unwrap();
    assert_eq!(head_before.seq, seq);
    let ns = Namespace {
        owner: owner.node_id(),
        vault,
    };
    let held: Vec<_> = peer.store().list(&ns, None, 100).unwrap();
    assert!(!held.is_empty());

    // The owner's node stops; a copy of its home starts elsewhere.
    owner.shutdown();
    owner.stopped(Duration::from_secs(5)).await;
    drop(session);
    let copy = swarm.path("stolen");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(swarm.dir.path().join("node0"))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let thief = Node::start(shard_node::home::Home::new(copy), common::options())
        .await
        .unwrap();
    assert_eq!(thief.node_id(), swarm.id(0));
    wait_until(|| {
        thief
            .online_clients()
            .iter()
            .any(|c| c.peer().id == peer.node_id())
    })
    .await;
    let to_peer = thief
        .online_clients()
        .into_iter()
        .find(|c| c.peer().id == peer.node_id())
        .unwrap();
    // No account opens without the passphrase.
    assert!(
        thief
            .login(USER, zeroize::Zeroizing::new(b"a guess at it".to_vec()))
            .await
            .is_err()
    );

    // What it can send: its own vault key's signature, or none worth anything.
    let other = shard_crypto::VaultKeys::derive(&shard_crypto::VaultKey::generate().unwrap());
    let t = Duration::from_secs(10);
    let ops = [
        VaultOp::Delete {
            vault,
            ids: held.clone(),
            purge: true,
        },
        VaultOp::PutCatalogHead {
            vault,
            seq: u64::MAX - 1,
            head: Bytes::from_static(b"an empty catalog"),
        },
        VaultOp::Adopt {
            vault,
            from: vec![swarm.id(0)],
        },
    ];
    for op in ops {
        let nonce = to_peer.challenge(t).await.unwrap();
        let auth = VaultAuth {
            key: other.authority().public().0,
            challenge: nonce,
            signature: other
                .authority()
                .sign(&op.signed_message(&peer.node_id(), &nonce)),
        };
        let refused = to_peer
            .call(
                Request::Authorized {
                    op: op.clone(),
                    auth,
                },
                t,
            )
            .await;
        assert!(
            matches!(
                refused,
                Err(shard_net::Error::Remote {
                    code: ErrorCode::Unauthorized,
                    ..
                })
            ),
            "{op:?}: {refused:?}"
        );
    }
    // Nothing changed on the peer, and its log names who tried.
    assert_eq!(peer.store().list(&ns, None, 100).unwrap(), held);
    assert_eq!(
        peer.store().has(&ns, &held).unwrap(),
        vec![true; held.len()]
    );
    assert_eq!(
        peer.heads().unwrap().get(&vault).unwrap().unwrap(),
        head_before
    );
    let text = log_text();
    for what in [
        "refused a delete",
        "refused a catalog head",
        "refused a hand-over",
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(what) && l.contains("from node0")),
            "{what} not logged with the sender's name:\n{text}"
        );
    }
    thief.shutdown();
}

/// Whoever held the unlocked vault removed the owner's file (and the catalog that listed it).
/// Within the peers' grace period, the owner — on a new machine, with the recovery code —
/// recovers the catalog as it was before (an older head the peers kept) and gets the file back
/// byte-exact, from shares the peers kept as deleted; they are live again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_file_comes_back_from_the_grace_period_with_an_earlier_catalog() {
    let mut swarm = Swarm::start(4, 2).await;
    let owner = swarm.owner().clone();
    let session = owner.session(Some(USER)).unwrap();
    let file = swarm.path("papers.pdf");
    let bytes: Vec<u8> = (0..900_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    swarm.put(&file, "papers.pdf", None).await.unwrap();
    let before = shard_node::snapshot::write_snapshot(&owner, &session)
        .await
        .unwrap();
    owner
        .remove(Some(USER), b"papers.pdf", Removing::Now)
        .await
        .unwrap();
    let after = shard_node::snapshot::write_snapshot(&owner, &session)
        .await
        .unwrap();
    assert!(after > before);
    // The owner's machine is gone; a new one (node 3) pairs with the two peers.
    owner.shutdown();
    owner.stopped(Duration::from_secs(5)).await;
    let new = swarm.nodes[3].clone();
    for i in [1, 2] {
        let code = swarm.nodes[i].invite(None).unwrap().encode();
        new.join(&code).await.unwrap();
    }
    wait_until(|| new.online_clients().len() == 2).await;

    // The newest catalog has no file; the one before does.
    let latest = shard_node::recover::recover(
        &new,
        &swarm.recovery_code,
        None,
        zeroize::Zeroizing::new(b"a brand new passphrase".to_vec()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(latest.files, 0, "{latest:?}");
    let heads: Vec<u64> = latest.heads_available.iter().map(|h| h.head).collect();
    assert!(heads.contains(&before), "{latest:?}");
    let earlier = shard_node::recover::recover(
        &new,
        &swarm.recovery_code,
        None,
        zeroize::Zeroizing::new(b"a brand new passphrase".to_vec()),
        Some(before),
    )
    .await
    .unwrap();
    assert_eq!(earlier.files, 1, "{earlier:?}");
    assert!(earlier.shares_brought_back >= 2, "{earlier:?}");
    let out = swarm.path("restored.pdf");
    swarm.nodes[0] = new.clone();
    swarm.get("papers.pdf", None, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    // The shares are live again: nothing missing (the old owner's share is gone with it).
    let report = swarm.check(1.0).await;
    assert_eq!(report.lost, 0, "{report:?}");
    for node in &swarm.nodes {
        node.shutdown();
    }
}

/// Peak resident memory of this process so far (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// 32 wrong passphrases at once for one account: those let in take at least the sum of the
/// delays they earn (they queue behind each other instead of all running after one delay),
/// and the rest are refused at once (at most four wait, so guesses cannot queue up to keep
/// the owner out); wrong passphrases for eight accounts at once never run more than two
/// Argon2 computations (64 MiB each) together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_logins_wait_their_turn_and_bound_memory() {
    let swarm = Swarm::start(1, 0).await;
    let node = swarm.owner().clone();
    // Real Argon2 parameters (64 MiB), so that memory tells how many ran at once.
    let mut users = Vec::new();
    for i in 0..8 {
        let user = format!("user{i}");
        shard_node::accounts::create(node.catalog(), &user, "a fine long passphrase").unwrap();
        users.push(user);
    }
    let baseline = peak_rss();

    let started = Instant::now();
    let mut attempts = Vec::new();
    for _ in 0..32 {
        let node = node.clone();
        attempts.push(tokio::spawn(async move {
            node.login(
                "user0",
                zeroize::Zeroizing::new(b"not the passphrase".to_vec()),
            )
            .await
        }));
    }
    let (mut ran, mut turned_away) = (0u32, 0u32);
    for a in attempts {
        match a.await.unwrap() {
            Err(shard_node::Error::WrongPassphrase { .. }) => ran += 1,
            Err(shard_node::Error::TooManyAttempts(_)) => turned_away += 1,
            other => panic!("{other:?}"),
        }
    }
    let took = started.elapsed();
    assert_eq!(ran + turned_away, 32);
    assert!(ran >= 1, "{ran}");
    // Delay units (10 ms in tests): 0, 1, 2, 4, … 60, 60 … for the failures that ran.
    let units: u64 = (0..ran)
        .map(|n| shard_node::accounts::login_delay(n).as_secs())
        .sum();
    let owed = common::options().login_delay_unit * u32::try_from(units).unwrap();
    assert!(
        took >= owed,
        "{ran} attempts took {took:?}, their delays {owed:?}"
    );
    assert_eq!(
        node.catalog()
            .login_failures(node.catalog().account("user0").unwrap().unwrap().id)
            .unwrap()
            .0,
        ran
    );
    // Guessing on, one after the other (as fast as allowed), costs each delay in turn.
    let started = Instant::now();
    for _ in 0..8 {
        let wrong = zeroize::Zeroizing::new(b"still not it".to_vec());
        assert!(node.login("user0", wrong).await.is_err());
    }
    let units: u64 = (ran..ran + 8)
        .map(|n| shard_node::accounts::login_delay(n).as_secs())
        .sum();
    let owed_more = common::options().login_delay_unit * u32::try_from(units).unwrap();
    assert!(started.elapsed() >= owed_more);

    let mut attempts = Vec::new();
    for user in &users[1..] {
        for _ in 0..3 {
            let (node, user) = (node.clone(), user.clone());
            attempts.push(tokio::spawn(async move {
                node.login(&user, zeroize::Zeroizing::new(b"not it either".to_vec()))
                    .await
            }));
        }
    }
    for a in attempts {
        assert!(a.await.unwrap().is_err());
    }
    let grown = peak_rss().saturating_sub(baseline);
    println!(
        "32 attempts at once on one account: {ran} ran in {took:?} (delays owed {owed:?}), {turned_away} turned away; peak RSS grew {} MiB",
        grown >> 20
    );
    // Two Argon2 runs of 64 MiB at once, and some slack; 21 at once would be 1.3 GiB.
    assert!(grown < 200 << 20, "peak RSS grew by {} MiB", grown >> 20);
    node.shutdown();
}

/// A crowd of web logins — wrong passphrases for a name that exists, and names that do not —
/// is turned away beyond a bound, treats both kinds of name alike, and never keeps the owner
/// (who holds the API token) out: the owner's login is never refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_web_logins_cannot_keep_the_owner_out() {
    let swarm = Swarm::start(1, 0).await;
    let node = swarm.owner().clone();
    shard_node::accounts::create(node.catalog(), "owner", "the owner's long passphrase").unwrap();
    let mut crowd = Vec::new();
    for i in 0..48 {
        let node = node.clone();
        let user = if i % 2 == 0 {
            "owner".to_string()
        } else {
            format!("nobody{i}")
        };
        crowd.push(tokio::spawn(async move {
            node.login_uniformly(&user, zeroize::Zeroizing::new(b"a guess".to_vec()))
                .await
        }));
    }
    // While the crowd waits, the owner comes in.
    tokio::time::sleep(Duration::from_millis(50)).await;
    node.login_as_owner(
        "owner",
        zeroize::Zeroizing::new(b"the owner's long passphrase".to_vec()),
    )
    .await
    .unwrap();
    assert!(node.session(Some("owner")).is_ok());
    let (mut wrong, mut too_many) = (0, 0);
    for attempt in crowd {
        match attempt.await.unwrap() {
            Err(shard_node::Error::WrongPassphrase { .. }) => wrong += 1,
            Err(shard_node::Error::TooManyAttempts(_)) => too_many += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(wrong + too_many, 48);
    assert!(
        too_many >= 48 - shard_node::accounts::WEB_LOGINS_WAITING,
        "{too_many} turned away"
    );
}

/// A login for a name with no account answers as a wrong passphrase does, after the same
/// Argon2 work: neither the words nor the time tell which names exist. (Timed as a ratio of
/// two runs in one process; without the decoy Argon2, a missing name answers in microseconds
/// against hundreds of milliseconds.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_with_no_account_is_answered_like_a_wrong_passphrase() {
    let swarm = Swarm::start(1, 0).await;
    let node = swarm.owner().clone();
    let mut real = Duration::MAX;
    let mut missing = Duration::MAX;
    for i in 0..2 {
        // First attempts on fresh names: no delay is owed, only the Argon2 run counts.
        let user = format!("owner{i}");
        shard_node::accounts::create(node.catalog(), &user, "the owner's long passphrase").unwrap();
        let start = std::time::Instant::now();
        let wrong = node
            .login_uniformly(&user, zeroize::Zeroizing::new(b"a guess".to_vec()))
            .await
            .unwrap_err();
        real = real.min(start.elapsed());
        let start = std::time::Instant::now();
        let nobody = node
            .login_uniformly(
                &format!("nobody{i}"),
                zeroize::Zeroizing::new(b"a guess".to_vec()),
            )
            .await
            .unwrap_err();
        missing = missing.min(start.elapsed());
        match (&wrong, &nobody) {
            (
                shard_node::Error::WrongPassphrase {
                    next_wait_secs: a, ..
                },
                shard_node::Error::WrongPassphrase {
                    next_wait_secs: b, ..
                },
            ) => assert_eq!(a, b),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            wrong.to_string().replace(&user, "NAME"),
            nobody.to_string().replace(&format!("nobody{i}"), "NAME")
        );
    }
    println!("wrong passphrase {real:?}, no such account {missing:?}");
    let ratio = missing.as_secs_f64() / real.as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "a missing name took {missing:?}, a wrong passphrase {real:?}"
    );
}
