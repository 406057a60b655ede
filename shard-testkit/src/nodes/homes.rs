//! Homes that cannot reach each other, and a relay they all reach: for tests of peers in other
//! homes, made of network namespaces (nothing is sent on the machine's real interfaces).
//!
//! An "internet" namespace holds the relay's address (10.99.9.9, on its loopback) and one veth
//! link to each home namespace (home `i`: 10.98.i.2, its gateway 10.98.i.1). The internet does
//! not forward between homes, so a home's address means nothing from another home: nodes there
//! reach each other only through the relay, exactly as two homes behind NATs with no direct
//! path would. Everything is deleted on drop, also when the test fails. Needs root.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::lan::{ip_cmd as ip, json_in, serve_in, shard_in};

/// The relay's address in the internet namespace.
pub const RELAY_IP: &str = "10.99.9.9";
/// Its port.
pub const RELAY_PORT: u16 = 3340;

pub struct Homes {
    internet: String,
    homes: Vec<Home>,
    relay: Option<Child>,
    dir: tempfile::TempDir,
}

pub struct Home {
    pub ns: String,
    pub dev: String,
    pub addr: String,
    pub home: PathBuf,
    child: Option<Child>,
}

impl Homes {
    /// `n` homes and the internet between them (no relay running yet).
    pub fn new(n: usize) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("sw{}x{serial}", std::process::id() % 100_000);
        let internet = format!("{prefix}i");
        ip(&["netns", "add", &internet]);
        let mut homes = Self {
            internet: internet.clone(),
            homes: Vec::new(),
            relay: None,
            dir: tempfile::tempdir().unwrap(),
        };
        ip(&["-n", &internet, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &internet,
            "addr",
            "add",
            &format!("{RELAY_IP}/32"),
            "dev",
            "lo",
        ]);
        sysctl(&internet, "net.ipv4.ip_forward=0");
        for i in 1..=n {
            let ns = format!("{prefix}h{i}");
            ip(&["netns", "add", &ns]);
            let dev = "e0".to_string();
            let far = format!("r{i}");
            ip(&[
                "link", "add", &dev, "netns", &ns, "type", "veth", "peer", "name", &far, "netns",
                &internet,
            ]);
            let addr = format!("10.98.{i}.2");
            let gateway = format!("10.98.{i}.1");
            ip(&[
                "-n",
                &internet,
                "addr",
                "add",
                &format!("{gateway}/24"),
                "dev",
                &far,
            ]);
            ip(&["-n", &internet, "link", "set", &far, "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", &dev]);
            ip(&["-n", &ns, "link", "set", &dev, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "route", "add", "default", "via", &gateway]);
            let home = homes.dir.path().join(format!("home{i}"));
            homes.homes.push(Home {
                ns,
                dev,
                addr,
                home,
                child: None,
            });
        }
        homes
    }

    /// The relay's URL.
    pub fn relay_url(&self) -> String {
        format!("http://{RELAY_IP}:{RELAY_PORT}")
    }

    /// Starts `shard relay --insecure-http` in the internet and waits until it answers.
    pub fn start_relay(&mut self) {
        let log = self.log_file("relay");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.internet, super::shard_bin(), "relay"])
            .args([
                "--listen",
                &format!("{RELAY_IP}:{RELAY_PORT}"),
                "--insecure-http",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.relay = Some(child);
        let start = Instant::now();
        while !self.read_log("relay").contains("relay: http://") {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the relay did not start: {}",
                self.read_log("relay")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the relay.
    pub fn stop_relay(&mut self) {
        if let Some(mut c) = self.relay.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn home(&self, i: usize) -> &Path {
        &self.homes[i].home
    }

    pub fn ns(&self, i: usize) -> &str {
        &self.homes[i].ns
    }

    pub fn dev(&self, i: usize) -> &str {
        &self.homes[i].dev
    }

    /// `shard --home HOME args…` in home `i`.
    pub fn shard(&self, i: usize, args: &[&str]) -> Output {
        let h = &self.homes[i];
        shard_in(&h.ns, &h.home, args)
    }

    /// `shard --json args…` in home `i`, which must succeed.
    pub fn json(&self, i: usize, args: &[&str]) -> Value {
        let h = &self.homes[i];
        json_in(&h.ns, &h.home, args)
    }

    /// `shard init` in home `i`, with `relay` (a URL, or "none").
    pub fn init(&self, i: usize, name: &str, relay: &str) {
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
                "--ui",
                "off",
                "--mdns",
                "off",
                "--relay",
                relay,
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `shard serve` in home `i` and waits for its API.
    pub fn serve(&mut self, i: usize, extra: &[&str]) {
        let log = self.log_file(&format!("home{}", i + 1));
        let h = &mut self.homes[i];
        h.child = Some(serve_in(&h.ns, &h.home, log, extra));
    }

    /// Stops the node of home `i` hard.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.homes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self, i: usize) -> String {
        self.read_log(&format!("home{}", i + 1))
    }

    fn log_file(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .unwrap()
    }

    pub fn read_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Waits (at most `limit`) until `check` holds for home `i`'s `shard peers`.
    pub fn wait_peers(&self, i: usize, limit: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let peers = self.json(i, &["peers"]);
            if check(&peers) {
                return peers;
            }
            assert!(
                start.elapsed() < limit,
                "home {}: peers never got there: {peers}\n{}",
                i + 1,
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn sysctl(ns: &str, setting: &str) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-q", "-w", setting])
        .output()
        .expect("run sysctl");
    assert!(
        out.status.success(),
        "sysctl {setting}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Homes {
    fn drop(&mut self) {
        for i in 0..self.homes.len() {
            self.kill(i);
        }
        self.stop_relay();
        for h in &self.homes {
            let _ = Command::new("ip").args(["netns", "del", &h.ns]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.internet])
            .status();
    }
}
