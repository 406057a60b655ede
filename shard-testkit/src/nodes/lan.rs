//! A private LAN made of network namespaces, for tests that need real multicast (mDNS) without
//! sending a packet on the machine's real interfaces.
//!
//! A hub namespace holds a bridge; each node namespace has one veth end in the hub, attached to
//! the bridge, and an address in 10.77.0.0/24 that exists nowhere else. The root namespace gets
//! no interface at all. Everything is deleted on drop, also when the test fails. Needs root.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether this test may build network namespaces: as root, yes; otherwise it is skipped on a
/// developer's machine, and fails under CI, where a skip would let it pass unseen.
pub fn namespaces_or_skip() -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the network-namespace tests as root: skipped, they would pass unseen"
    );
    eprintln!("SKIPPED: creating network namespaces needs root");
    false
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `shard --home HOME args…` inside namespace `ns`.
pub fn shard_in(ns: &str, home: &Path, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns, super::shard_bin(), "--home"])
        .arg(home)
        .args(args)
        .env("SHARD_PASSWORD", super::PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `shard --json args…` inside namespace `ns`, which must succeed; its answer.
pub fn json_in(ns: &str, home: &Path, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = shard_in(ns, home, &full);
    assert!(
        out.status.success(),
        "shard {args:?} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Starts `shard serve` for `home` inside namespace `ns`, logging to `log`, and waits for its
/// API.
pub fn serve_in(ns: &str, home: &Path, log: std::fs::File, extra: &[&str]) -> Child {
    serve_in_env(ns, home, log, extra, &[])
}

/// [`serve_in`] with more environment variables (e.g. `SHARD_ADVERSARY`).
pub fn serve_in_env(
    ns: &str,
    home: &Path,
    log: std::fs::File,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Child {
    let _ = std::fs::remove_file(home.join("api.addr"));
    let child = Command::new("ip")
        .args(["netns", "exec", ns, super::shard_bin(), "--home"])
        .arg(home)
        .arg("serve")
        .args(extra)
        .env("SHARD_LOG", "info,shard_net=debug")
        .env("SHARD_PASSWORD", super::PASSWORD)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !home.join("api.addr").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the node in {ns} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

pub(crate) fn ip_cmd(args: &[&str]) {
    ip(args);
}

/// The LAN and the nodes on it.
pub struct Lan {
    prefix: String,
    nodes: Vec<LanNode>,
    dir: tempfile::TempDir,
}

pub struct LanNode {
    pub ns: String,
    pub dev: String,
    pub addr: String,
    pub home: PathBuf,
    child: Option<Child>,
}

impl Lan {
    /// A LAN of `n` namespaces (nodes not yet created).
    pub fn new(n: usize) -> Self {
        // Unique per LAN: tests of one binary run as threads of one process.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("sh{}x{serial}", std::process::id() % 100_000);
        let hub = format!("{prefix}h");
        let lan = Self {
            prefix: prefix.clone(),
            nodes: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        ip(&["netns", "add", &hub]);
        let mut lan = lan;
        ip(&[
            "-n",
            &hub,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        for i in 1..=n {
            let ns = format!("{prefix}n{i}");
            ip(&["netns", "add", &ns]);
            let dev = format!("e{i}");
            let hub_end = format!("h{i}");
            ip(&[
                "link", "add", &dev, "netns", &ns, "type", "veth", "peer", "name", &hub_end,
                "netns", &hub,
            ]);
            ip(&["-n", &hub, "link", "set", &hub_end, "master", "br0"]);
            ip(&["-n", &hub, "link", "set", &hub_end, "up"]);
            let addr = format!("10.77.0.{i}");
            ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", &dev]);
            ip(&["-n", &ns, "link", "set", &dev, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            let home = lan.dir.path().join(format!("node{i}"));
            lan.nodes.push(LanNode {
                ns,
                dev,
                addr,
                home,
                child: None,
            });
        }
        lan
    }

    pub fn node(&self, i: usize) -> &LanNode {
        &self.nodes[i]
    }

    /// Runs `shard --home HOME args…` inside node `i`'s namespace.
    pub fn shard(&self, i: usize, args: &[&str]) -> Output {
        let n = &self.nodes[i];
        shard_in(&n.ns, &n.home, args)
    }

    pub fn json(&self, i: usize, args: &[&str]) -> Value {
        let n = &self.nodes[i];
        json_in(&n.ns, &n.home, args)
    }

    /// `shard init` in node `i` (listening for peers on all its interfaces, port 7714).
    pub fn init(&self, i: usize, name: &str, mdns: &str) {
        let out = self.shard(
            i,
            &[
                "init",
                "--name",
                name,
                "--listen",
                "0.0.0.0:7714",
                "--api",
                "127.0.0.1:7715",
                "--mdns",
                mdns,
                "--relay",
                "none",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `shard serve` in node `i` and waits for its API.
    pub fn serve(&mut self, i: usize, extra: &[&str]) {
        let log_path = self.dir.path().join(format!("node{}.log", i + 1));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let n = &mut self.nodes[i];
        n.child = Some(serve_in(&n.ns, &n.home, log, extra));
    }

    /// Stops node `i` hard.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{}.log", i + 1)))
            .unwrap_or_default()
    }

    /// Moves node `i` to another address on the LAN (as a new DHCP lease would).
    pub fn change_addr(&mut self, i: usize, new: &str) {
        let n = &mut self.nodes[i];
        ip(&[
            "-n",
            &n.ns,
            "addr",
            "del",
            &format!("{}/24", n.addr),
            "dev",
            &n.dev,
        ]);
        ip(&[
            "-n",
            &n.ns,
            "addr",
            "add",
            &format!("{new}/24"),
            "dev",
            &n.dev,
        ]);
        n.addr = new.to_string();
    }

    pub fn home(&self, i: usize) -> &Path {
        &self.nodes[i].home
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        for n in &self.nodes {
            let _ = Command::new("ip").args(["netns", "del", &n.ns]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &format!("{}h", self.prefix)])
            .status();
    }
}
