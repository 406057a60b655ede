//! Chaos: six `shard` nodes on 127.0.0.1 (an owner and five peers) store and restore random
//! files and folders, 2-of-4, while a second thread breaks things at random moments: a node
//! killed with SIGKILL and restarted (the owner too, in the middle of a put or a get), a node
//! frozen with SIGSTOP for a few seconds (its connections stall), and a peer's disk "filled"
//! (restarted with a quota at what it holds, so every new share is refused, then freed again).
//! At the end the faults stop, every node runs, `shard repair` runs, and `shard check` must be
//! healthy and every file whose put was acknowledged must restore bit-exact. Removals and
//! `shard prune` (compaction) run among the operations, under the same faults.
//!
//! ```text
//! cargo build --release -p shard-cli
//! cargo run --release -p shard-examples --example chaos -- [--secs 600] [--seed N] [--dir DIR]
//! ```
//! (or `scripts/chaos [SECS]`). Bounded: it stops after `--secs` (default 600) or 100 000
//! operations, whichever comes first; traffic stays on 127.0.0.1. Prints operations done,
//! faults injected by kind, files verified and files lost (which must be 0: exit code 1
//! otherwise).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]

#[path = "bench_nodes/mod.rs"]
mod bench_nodes;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench_nodes::{PASSWORD, bench_dir, flag, shard, shard_bin};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

const MAX_OPS: u64 = 100_000;

/// A node the fault thread can kill and bring back.
struct Proc {
    home: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    owner: bool,
}

impl Proc {
    /// Creates a node (and, for the owner, its account) and starts it.
    fn init(dir: &Path, name: &str, owner: bool) -> Self {
        let home = bench_nodes::init(dir, name, owner);
        let mut p = Self {
            home,
            log: dir.join(format!("{name}.log")),
            child: None,
            owner,
        };
        p.start();
        p
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    /// Starts `shard serve` again on the same peer address (so the others find it).
    fn start(&mut self) {
        let _ = fs::remove_file(self.home.join("api.addr"));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        // The same peer address as before (the others know it); the first start picks one.
        let mut args = vec!["serve".to_string()];
        if let Ok(listen) = fs::read_to_string(self.home.join("listen.addr")) {
            args.extend(["--listen".into(), listen.trim().to_string()]);
        }
        if self.owner {
            args.extend(["--login".into(), "bench".into()]);
        }
        let child = Command::new(shard_bin())
            .arg("--home")
            .arg(&self.home)
            .args(&args)
            .env("SHARD_PASSWORD", PASSWORD)
            .env("SHARD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while !self.home.join("api.addr").exists() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn set_quota(&self, quota: Option<u64>) {
        let path = self.home.join("config.toml");
        let text = fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("quota_bytes"))
            .collect();
        let mut out = String::new();
        for line in kept {
            out.push_str(line);
            out.push('\n');
            if line.trim() == "[store]"
                && let Some(q) = quota
            {
                out.push_str(&format!("quota_bytes = {q}\n"));
            }
        }
        fs::write(path, out).unwrap();
    }
}

fn cli(home: &Path, args: &[&str]) -> Output {
    Command::new(shard_bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .env("SHARD_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[derive(Default, Debug)]
struct Faults {
    peer_killed: u64,
    owner_killed: u64,
    stalled: u64,
    disk_filled: u64,
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Sleeps `ms` in short steps; false when `stop` was set meanwhile.
fn nap(ms: u64, stop: &AtomicBool) -> bool {
    let until = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// The fault thread: one fault at a time, at random moments, until `stop`.
fn break_things(procs: &Mutex<Vec<Proc>>, stop: &AtomicBool, seed: u64) -> Faults {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut faults = Faults::default();
    let mut procs = procs.lock().unwrap();
    while nap(pick(&mut rng, 1000..4000), stop) {
        let peer = pick(&mut rng, 1..procs.len() as u64) as usize;
        match pick(&mut rng, 0..10) {
            0..=3 => {
                procs[peer].kill();
                faults.peer_killed += 1;
                nap(pick(&mut rng, 200..3000), stop);
                procs[peer].start();
            }
            4..=5 => {
                procs[0].kill();
                faults.owner_killed += 1;
                nap(pick(&mut rng, 100..1500), stop);
                procs[0].start();
            }
            6..=7 => {
                procs[peer].signal("-STOP");
                faults.stalled += 1;
                nap(pick(&mut rng, 500..4000), stop);
                procs[peer].signal("-CONT");
            }
            _ => {
                let used = json(&cli(&procs[peer].home, &["--json", "status"]))["usage"]["used"]
                    .as_u64()
                    .unwrap_or(0);
                procs[peer].kill();
                procs[peer].set_quota(Some(used));
                procs[peer].start();
                faults.disk_filled += 1;
                nap(pick(&mut rng, 2000..6000), stop);
                procs[peer].kill();
                procs[peer].set_quota(None);
                procs[peer].start();
            }
        }
    }
    faults
}

/// Writes `size` random bytes to `path`.
fn random_file(rng: &mut ChaCha8Rng, path: &Path, size: usize) {
    let mut data = vec![0u8; size];
    rng.fill_bytes(&mut data);
    fs::write(path, data).unwrap();
}

fn wait_online(owner: &Path, peers: usize, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        let out = cli(owner, &["--json", "peers"]);
        if String::from_utf8_lossy(&out.stdout)
            .matches("\"online\":true")
            .count()
            == peers
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn main() {
    let secs: u64 = flag("--secs").map(|v| v.parse().unwrap()).unwrap_or(600);
    let seed: u64 = flag("--seed").map(|v| v.parse().unwrap()).unwrap_or(1);
    let base = bench_dir("shard-chaos");
    let nodes_dir = base.join("nodes");
    let src = base.join("src");
    fs::create_dir_all(&nodes_dir).unwrap();
    fs::create_dir_all(&src).unwrap();
    println!(
        "chaos for {secs} s in {} (seed {seed}): 6 nodes, 2-of-4",
        base.display()
    );

    let mut procs = vec![Proc::init(&nodes_dir, "owner", true)];
    for i in 1..=5 {
        procs.push(Proc::init(&nodes_dir, &format!("peer{i}"), false));
    }
    let owner = procs[0].home.clone();
    for p in &procs[1..] {
        let code = String::from_utf8(shard(&p.home, &["invite"]).stdout).unwrap();
        shard(&owner, &["join", code.trim()]);
    }
    assert!(
        wait_online(&owner, 5, Duration::from_secs(30)),
        "peers did not connect"
    );

    let procs = Arc::new(Mutex::new(procs));
    let stop = Arc::new(AtomicBool::new(false));
    let breaker = {
        let (procs, stop) = (procs.clone(), stop.clone());
        std::thread::spawn(move || break_things(&procs, &stop, seed ^ 0x5eed))
    };

    // name in the vault → the file it came from (acknowledged puts only).
    let mut acked: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut uncertain = 0u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut ops, mut puts, mut gets, mut rms, mut failed, mut bad_restores) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut prunes = 0u64;
    let out = base.join("restored.bin");
    let started = Instant::now();
    let mut failed_before = 0;
    while started.elapsed() < Duration::from_secs(secs) && ops < MAX_OPS {
        // After a refusal (the owner restarting, too few nodes online), a short pause: the
        // count is of operations tried, not of refusals a second.
        if failed > failed_before {
            failed_before = failed;
            std::thread::sleep(Duration::from_millis(300));
        }
        ops += 1;
        let roll = pick(&mut rng, 0..100);
        if roll < 45 || acked.is_empty() {
            // A file, or a small folder of files.
            let (path, names): (PathBuf, Vec<(String, PathBuf)>) = if roll.is_multiple_of(3) {
                let dir = src.join(format!("t{ops}"));
                fs::create_dir_all(&dir).unwrap();
                let names = (0..pick(&mut rng, 2..6))
                    .map(|j| {
                        let f = dir.join(format!("f{j}.bin"));
                        let size = rng_size(&mut rng, 200_000);
                        random_file(&mut rng, &f, size);
                        (format!("t{ops}/f{j}.bin"), f)
                    })
                    .collect();
                (dir, names)
            } else {
                let f = src.join(format!("f{ops}.bin"));
                let size = rng_size(&mut rng, 3_000_000);
                random_file(&mut rng, &f, size);
                (f.clone(), vec![(format!("f{ops}.bin"), f)])
            };
            let put = cli(
                &owner,
                &["--json", "put", path.to_str().unwrap(), "--shares", "2/4"],
            );
            if put.status.success() {
                puts += 1;
                acked.extend(names);
            } else {
                failed += 1;
            }
        } else if roll < 92 {
            let i = pick(&mut rng, 0..acked.len() as u64) as usize;
            let (name, from) = acked
                .iter()
                .nth(i)
                .map(|(n, f)| (n.clone(), f.clone()))
                .unwrap();
            let get = cli(
                &owner,
                &["get", &name, "-o", out.to_str().unwrap(), "--force"],
            );
            if get.status.success() {
                gets += 1;
                if fs::read(&out).unwrap() != fs::read(&from).unwrap() {
                    bad_restores += 1;
                    println!("WRONG BYTES restoring {name}");
                }
            } else {
                failed += 1;
            }
        } else if roll >= 97 {
            // Compaction under faults: the files it moves must stay whole.
            let prune = cli(&owner, &["--json", "prune", "--dead", "0"]);
            if prune.status.success() && json(&prune)["ok"] == true {
                prunes += 1;
            } else {
                failed += 1;
            }
        } else {
            let i = pick(&mut rng, 0..acked.len() as u64) as usize;
            let name = acked.keys().nth(i).cloned().unwrap();
            let rm = cli(&owner, &["rm", &name, "--now"]);
            acked.remove(&name);
            if rm.status.success() {
                rms += 1;
            } else {
                // Removed or not: nothing to hold it to.
                uncertain += 1;
                failed += 1;
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    let faults = breaker.join().unwrap();
    let chaos_secs = started.elapsed().as_secs_f64();

    // Calm again: every node runs; the owner rebuilds what the faults cost and checks.
    let mut procs = Arc::try_unwrap(procs).ok().unwrap().into_inner().unwrap();
    for p in &mut procs {
        p.signal("-CONT");
        if p.child.is_none() {
            p.start();
        }
    }
    assert!(
        wait_online(&owner, 5, Duration::from_secs(60)),
        "peers did not come back"
    );
    // A last prune once calm: what the faults interrupted converges.
    let last_prune = cli(&owner, &["--json", "prune", "--dead", "0"]);
    let last_prune_ok = last_prune.status.success() && json(&last_prune)["ok"] == true;
    let mut healthy = false;
    for _ in 0..10 {
        let _ = cli(&owner, &["repair"]);
        if cli(&owner, &["check"]).status.success() {
            healthy = true;
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let (mut verified, mut lost) = (0u64, Vec::new());
    for (name, from) in &acked {
        let get = cli(
            &owner,
            &["get", name, "-o", out.to_str().unwrap(), "--force"],
        );
        if get.status.success() && fs::read(&out).unwrap() == fs::read(from).unwrap() {
            verified += 1;
        } else {
            lost.push(name.clone());
        }
    }
    println!(
        "operations: {ops} in {chaos_secs:.0} s ({puts} puts, {gets} gets checked, {rms} removals acknowledged, {prunes} prunes done; {failed} refused or cut short by a fault, {uncertain} removals of unknown outcome); last prune once calm: {}",
        if last_prune_ok { "ok" } else { "FAILED" }
    );
    println!(
        "faults: {} in all — peer killed and restarted {}, owner killed mid-operation and restarted {}, peer frozen (SIGSTOP) {}, peer disk filled {}",
        faults.peer_killed + faults.owner_killed + faults.stalled + faults.disk_filled,
        faults.peer_killed,
        faults.owner_killed,
        faults.stalled,
        faults.disk_filled
    );
    println!(
        "after repair: check {}",
        if healthy { "healthy" } else { "NOT HEALTHY" }
    );
    println!(
        "files verified: {verified}; files lost: {}; wrong bytes during the run: {bad_restores}",
        lost.len()
    );
    for p in &mut procs {
        p.kill();
    }
    if !lost.is_empty() || bad_restores > 0 || !healthy || !last_prune_ok {
        println!("lost: {lost:?}");
        std::process::exit(1);
    }
}

/// A number in `range` (not exactly uniform; chaos does not need it to be).
fn pick(rng: &mut ChaCha8Rng, range: std::ops::Range<u64>) -> u64 {
    range.start + rng.next_u64() % (range.end - range.start).max(1)
}

/// A size up to `max`, most of them small.
fn rng_size(rng: &mut ChaCha8Rng, max: usize) -> usize {
    let r = pick(rng, 0..1_000_000) as f64 / 1e6;
    ((r * r * r) * max as f64) as usize + pick(rng, 0..1000) as usize
}
