//! Real `shard` nodes for the end-to-end benchmarks: release binaries on 127.0.0.1, mDNS off,
//! killed when dropped.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "benchmark passphrase";

pub fn shard_bin() -> PathBuf {
    std::env::var_os("SHARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/shard"))
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn shard(home: &Path, args: &[&str]) -> Output {
    run(Command::new(shard_bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .env("SHARD_PASSWORD", PASSWORD))
}

/// Creates the node `name` under `dir` (loopback, ports the system picks, no web UI, mDNS off)
/// and, with `login`, its account "bench"; returns its home.
pub fn init(dir: &Path, name: &str, login: bool) -> PathBuf {
    let home = dir.join(name);
    shard(
        &home,
        &[
            "init",
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
            "--ui",
            "off",
            "--mdns",
            "off",
            "--relay",
            "none",
        ],
    );
    if login {
        shard(&home, &["account", "create", "bench"]);
    }
    home
}

pub struct Node {
    pub home: PathBuf,
    pub child: Child,
    log: PathBuf,
}

impl Node {
    pub fn start(dir: &Path, name: &str, login: bool) -> Self {
        let home = init(dir, name, login);
        let mut args = vec!["serve"];
        if login {
            args.extend(["--login", "bench"]);
        }
        let log = fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(shard_bin())
            .arg("--home")
            .arg(&home)
            .args(&args)
            .env("SHARD_PASSWORD", PASSWORD)
            .env(
                "SHARD_LOG",
                "warn,shard_node::health=debug,shard_node::snapshot=info",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !home.join("api.addr").exists() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{name} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            home,
            child,
            log: dir.join(format!("{name}.log")),
        }
    }

    /// Waits (at most `limit`) until catalog snapshot `seq` is written: the snapshot after a
    /// put runs beside whatever comes next, and a step measured alone must not count it.
    pub fn wait_snapshot(&self, seq: u64, limit: Duration) -> bool {
        let start = Instant::now();
        let line = format!("catalog snapshot {seq} written");
        while start.elapsed() < limit {
            if fs::read_to_string(&self.log).is_ok_and(|l| l.contains(&line)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Starts this node's peak RSS afresh (`5` to `/proc/PID/clear_refs`, Linux ≥ 4.0), so the
    /// next [`Self::peak_rss_mib`] is the peak of what ran since, not of the process's life.
    pub fn reset_peak_rss(&self) {
        let _ = fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    pub fn peak_rss_mib(&self) -> u64 {
        fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .unwrap_or(0)
            / 1024
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user and system) from a `/proc/…/stat` line: the process's own (`children`
/// false) or those of its children it has waited for (true). Clock ticks are taken as 100 a
/// second, as on every Linux this runs on.
fn stat_cpu_seconds(stat: &str, children: bool) -> f64 {
    // utime and stime are fields 14 and 15, cutime and cstime 16 and 17.
    let at = if children { 16 } else { 14 };
    (stat_field(stat, at) + stat_field(stat, at + 1)) as f64 / 100.0
}

/// Field `number` (1-based, as proc(5) counts them; 4 or later) of a `/proc/…/stat` line.
fn stat_field(stat: &str, number: usize) -> u64 {
    // The fields after the command name (which may hold spaces) start with the state, field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .nth(number.saturating_sub(3))
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds process `pid` has used so far (0 once it is gone).
pub fn pid_cpu_seconds(pid: u32) -> f64 {
    fs::read_to_string(format!("/proc/{pid}/stat")).map_or(0.0, |s| stat_cpu_seconds(&s, false))
}

impl Node {
    /// CPU seconds this node has used so far, and its minor page faults (field 10, `minflt`):
    /// each is a page the kernel handed it, most of them zeroed first; a count that does not
    /// move with the machine's load, unlike CPU seconds here. One read of its stat line.
    pub fn usage(&self) -> (f64, u64) {
        fs::read_to_string(format!("/proc/{}/stat", self.child.id())).map_or((0.0, 0), |s| {
            (stat_cpu_seconds(&s, false), stat_field(&s, 10))
        })
    }
}

/// CPU seconds used by this program's children it waited for (the CLI runs, restic).
pub fn children_cpu_seconds() -> f64 {
    fs::read_to_string("/proc/self/stat").map_or(0.0, |s| stat_cpu_seconds(&s, true))
}

/// One measured step: its wall time and the CPU seconds the owner, the peers together and
/// the waited-for children (CLI runs, restic) used meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub wall: f64,
    pub owner: f64,
    pub peers: f64,
    pub children: f64,
    /// Minor page faults of the owner and of the peers together.
    pub faults: (u64, u64),
}

impl Step {
    /// All the CPU seconds it took.
    pub fn cpu(&self) -> f64 {
        self.owner + self.peers + self.children
    }
}

/// Runs `f` and measures it as a [`Step`] (no nodes: `owner` and `peers` are 0).
pub fn timed_cpu(nodes: Option<(&Node, &[Node])>, f: impl FnOnce()) -> Step {
    // (owner's CPU, peers' CPU, owner's faults, peers' faults)
    let usage = || {
        nodes.map_or((0.0, 0.0, 0, 0), |(owner, peers)| {
            let (oc, of) = owner.usage();
            let (pc, pf) = peers
                .iter()
                .map(Node::usage)
                .fold((0.0, 0), |(c, f), (nc, nf)| (c + nc, f + nf));
            (oc, pc, of, pf)
        })
    };
    let ((o, p, fo, fp), c) = (usage(), children_cpu_seconds());
    let wall = timed(f);
    let (o2, p2, fo2, fp2) = usage();
    Step {
        wall,
        owner: o2 - o,
        peers: p2 - p,
        children: children_cpu_seconds() - c,
        faults: (fo2.saturating_sub(fo), fp2.saturating_sub(fp)),
    }
}

pub fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

/// The value after `--name` on the command line.
pub fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// `--dir` (default `$TMPDIR/default`), emptied; checks the release binary exists.
pub fn bench_dir(default: &str) -> PathBuf {
    let base = flag("--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(default));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&base).unwrap();
    assert!(
        shard_bin().exists(),
        "build the release binary first: cargo build --release -p shard-cli"
    );
    base
}

/// Every node's peak RSS (VmHWM), as a benchmark prints it: `owner N MiB, peer1 N MiB, …`.
pub fn peak_rss_line(owner: &Node, peers: &[Node]) -> String {
    std::iter::once(format!("owner {} MiB", owner.peak_rss_mib()))
        .chain(
            peers
                .iter()
                .enumerate()
                .map(|(i, p)| format!("peer{} {} MiB", i + 1, p.peak_rss_mib())),
        )
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pairs every peer with the owner and waits until all are online.
pub fn pair_all(owner: &Node, peers: &[Node]) {
    for p in peers {
        let code = String::from_utf8(shard(&p.home, &["invite"]).stdout).unwrap();
        shard(&owner.home, &["join", code.trim()]);
    }
    let start = Instant::now();
    loop {
        let out = String::from_utf8(shard(&owner.home, &["--json", "peers"]).stdout).unwrap();
        if out.matches("\"online\":true").count() == peers.len() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "peers did not connect: {out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `restic -r REPO ARGS…` with the benchmarks' password and `cache` as its cache.
pub fn restic(repo: &Path, cache: &Path, args: &[&str]) {
    run(Command::new("restic")
        .arg("-r")
        .arg(repo)
        .args(args)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", cache));
}

/// Writes `files` files of 0.5–8 KiB of `rng`'s bytes into 200 folders under `tree`, as the
/// benchmarks' small-file trees are; returns their bytes.
pub fn small_tree(tree: &Path, files: usize, rng: &mut rand_chacha::ChaCha8Rng) -> u64 {
    use rand_core::Rng;
    let mut bytes = 0u64;
    for i in 0..files {
        let sub = tree.join(format!("d{:03}", i % 200));
        if i < 200 {
            fs::create_dir_all(&sub).unwrap();
        }
        let len = 512 + (rng.next_u32() as usize % 7680);
        let mut data = vec![0u8; len];
        rng.fill_bytes(&mut data);
        fs::write(sub.join(format!("f{i:05}.dat")), &data).unwrap();
        bytes += len as u64;
    }
    bytes
}
