//! Homes on an "internet", and a relay they all reach: for tests of peers in other homes, made
//! of network namespaces (nothing is sent on the machine's real interfaces).
//!
//! An "internet" namespace holds the relays' addresses (10.99.9.9, and 10.99.9.10 for a second
//! relay, on its loopback). Two shapes:
//!
//! - [`Homes::new`]: each home is one machine (10.98.i.2) on a veth link to the internet, which
//!   does not forward between homes, so a home's address means nothing from another home:
//!   nodes there reach each other only through the relay. The relay speaks plain HTTP.
//! - [`Homes::behind_nats`]: each home is a router namespace (internet side 10.97.h.2) with a
//!   bridge for its machines (192.168.h.10+j), doing what a home router does — MASQUERADE,
//!   inbound only for established flows — either keeping one mapping per local endpoint (what
//!   most home routers do, and what lets hole punching work) or a fresh random port per flow
//!   (`--random-fully`, a symmetric NAT, which hole punching cannot cross). The internet
//!   forwards between the routers. The relays run over HTTPS with a self-signed certificate
//!   (naming both addresses) that the nodes are told to trust (`--relay-ca`), so it also answers QUIC address
//!   discovery, which hole punching needs.
//!
//! Everything is deleted on drop, also when the test fails. Needs root (and iptables for NATs).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::lan::{ip_cmd as ip, json_in, serve_in_env, shard_in};

/// The relays' addresses in the internet namespace: the one every test uses first, and a
/// second for peers homed on relays of their own.
pub const RELAY_IPS: [&str; 2] = ["10.99.9.9", "10.99.9.10"];
/// The first relay's address.
pub const RELAY_IP: &str = RELAY_IPS[0];
/// Their port.
pub const RELAY_PORT: u16 = 3340;

/// What a home's router does to the traffic of its machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// One public port per local endpoint, whoever it talks to (Linux MASQUERADE keeps the
    /// source port): hole punching works.
    PerEndpoint,
    /// A fresh random public port for every flow (`--random-fully`): hole punching cannot
    /// guess it, so peers stay on the relay.
    Symmetric,
}

pub struct Homes {
    /// What every namespace's name starts with (unique per process and world).
    prefix: String,
    internet: String,
    /// Router namespaces, one per home (behind NATs only).
    routers: Vec<String>,
    machines: Vec<Machine>,
    /// The relays running, by number (index into [`RELAY_IPS`]).
    relays: [Option<Child>; 2],
    /// The relays' certificate (naming both addresses) and key, PEM files (behind NATs only:
    /// HTTPS).
    tls: Option<(PathBuf, PathBuf)>,
    dir: tempfile::TempDir,
}

pub struct Machine {
    pub ns: String,
    pub dev: String,
    pub addr: String,
    /// Which home it is in (0-based; `usize::MAX` for a stranger on the internet).
    pub home_index: usize,
    pub home: PathBuf,
    child: Option<Child>,
}

fn prefix() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("sw{}x{serial}", std::process::id() % 100_000)
}

impl Homes {
    fn internet(prefix: &str) -> Self {
        let internet = format!("{prefix}i");
        ip(&["netns", "add", &internet]);
        ip(&["-n", &internet, "link", "set", "lo", "up"]);
        for relay_ip in RELAY_IPS {
            ip(&[
                "-n",
                &internet,
                "addr",
                "add",
                &format!("{relay_ip}/32"),
                "dev",
                "lo",
            ]);
        }
        Self {
            prefix: prefix.to_string(),
            internet,
            routers: Vec::new(),
            machines: Vec::new(),
            relays: [None, None],
            tls: None,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `n` homes of one machine each and an internet that does not forward between them (no
    /// relay running yet).
    pub fn new(n: usize) -> Self {
        let prefix = prefix();
        let mut homes = Self::internet(&prefix);
        sysctl(&homes.internet, "net.ipv4.ip_forward=0");
        for i in 1..=n {
            let ns = format!("{prefix}h{i}");
            ip(&["netns", "add", &ns]);
            let dev = "e0".to_string();
            let addr = format!("10.98.{i}.2");
            let gateway = format!("10.98.{i}.1");
            link(
                &ns,
                &dev,
                &addr,
                &homes.internet,
                &format!("r{i}"),
                &gateway,
            );
            ip(&["-n", &ns, "route", "add", "default", "via", &gateway]);
            let home = homes.dir.path().join(format!("home{i}"));
            homes.machines.push(Machine {
                ns,
                dev,
                addr,
                home_index: i - 1,
                home,
                child: None,
            });
        }
        homes
    }

    /// Homes behind routers: `(nat, machines)` for each. Machines are numbered across homes
    /// in order (home 0's first, then home 1's…). No relay runs yet.
    pub fn behind_nats(homes_spec: &[(Nat, usize)]) -> Self {
        let prefix = prefix();
        let mut homes = Self::internet(&prefix);
        sysctl(&homes.internet, "net.ipv4.ip_forward=1");
        for (h, &(nat, count)) in homes_spec.iter().enumerate() {
            let h1 = h + 1;
            let router = format!("{prefix}r{h1}");
            ip(&["netns", "add", &router]);
            homes.routers.push(router.clone());
            let wan = format!("10.97.{h1}.2");
            let gateway = format!("10.97.{h1}.1");
            link(
                &router,
                "w0",
                &wan,
                &homes.internet,
                &format!("r{h1}"),
                &gateway,
            );
            ip(&["-n", &router, "route", "add", "default", "via", &gateway]);
            ip(&["-n", &router, "link", "add", "br0", "type", "bridge"]);
            ip(&[
                "-n",
                &router,
                "addr",
                "add",
                &format!("192.168.{h1}.1/24"),
                "dev",
                "br0",
            ]);
            ip(&["-n", &router, "link", "set", "br0", "up"]);
            sysctl(&router, "net.ipv4.ip_forward=1");
            let mut masquerade = vec!["-t", "nat", "-A", "POSTROUTING", "-o", "w0"];
            masquerade.extend(["-j", "MASQUERADE"]);
            if nat == Nat::Symmetric {
                masquerade.push("--random-fully");
            }
            iptables(&router, &masquerade);
            // Inbound only what answers a flow from inside; nothing to the router itself.
            for chain in ["FORWARD", "INPUT"] {
                let established = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED"];
                let mut rule = vec!["-A", chain, "-i", "w0"];
                rule.extend(established);
                rule.extend(["-j", "ACCEPT"]);
                iptables(&router, &rule);
                iptables(&router, &["-A", chain, "-i", "w0", "-j", "DROP"]);
            }
            for _ in 0..count {
                homes.add_machine(h);
            }
        }
        homes.make_certificate();
        homes
    }

    /// One more machine in home `h` (behind NATs only), returned by its number: a new laptop.
    pub fn add_machine(&mut self, h: usize) -> usize {
        let n = self.machines.len() + 1;
        let ns = &format!("{}m{n}", self.prefix);
        let j = self.machines.iter().filter(|m| m.home_index == h).count();
        let h1 = h + 1;
        let router = self.routers[h].clone();
        ip(&["netns", "add", ns]);
        let far = format!("m{j}");
        let addr = format!("192.168.{h1}.{}", 10 + j);
        ip(&[
            "link", "add", "e0", "netns", ns, "type", "veth", "peer", "name", &far, "netns",
            &router,
        ]);
        ip(&["-n", &router, "link", "set", &far, "master", "br0"]);
        ip(&["-n", &router, "link", "set", &far, "up"]);
        ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "e0"]);
        ip(&["-n", ns, "link", "set", "e0", "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            ns,
            "route",
            "add",
            "default",
            "via",
            &format!("192.168.{h1}.1"),
        ]);
        self.machines.push(Machine {
            ns: ns.to_string(),
            dev: "e0".into(),
            addr,
            home_index: h,
            home: self.dir.path().join(format!("home{n}")),
            child: None,
        });
        n - 1
    }

    /// A stranger's machine, returned by its number: it sits in the internet itself, beside
    /// the relays, on no home's LAN, and reaches the homes only as anyone on the internet does.
    pub fn add_stranger(&mut self) -> usize {
        let n = self.machines.len() + 1;
        self.machines.push(Machine {
            ns: self.internet.clone(),
            dev: "lo".into(),
            addr: RELAY_IP.into(),
            home_index: usize::MAX,
            home: self.dir.path().join(format!("home{n}")),
            child: None,
        });
        n - 1
    }

    /// A self-signed certificate for the relays' addresses, written beside the homes.
    fn make_certificate(&mut self) {
        let names = RELAY_IPS
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        let cert = rcgen::generate_simple_self_signed(names).unwrap();
        let cert_path = self.dir.path().join("relay-cert.pem");
        let key_path = self.dir.path().join("relay-key.pem");
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        self.tls = Some((cert_path, key_path));
    }

    /// The (first) relay's URL.
    pub fn relay_url(&self) -> String {
        self.relay_url_of(0)
    }

    /// Relay `r`'s URL.
    pub fn relay_url_of(&self, r: usize) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{RELAY_PORT}", RELAY_IPS[r])
    }

    /// The relays' certificate (behind NATs only), what nodes are told to trust.
    pub fn relay_ca(&self) -> Option<&Path> {
        self.tls.as_ref().map(|(cert, _)| cert.as_path())
    }

    /// Starts the (first) relay.
    pub fn start_relay(&mut self) {
        self.start_relay_of(0);
    }

    /// Starts `shard relay` number `r` in the internet (over HTTPS behind NATs, else
    /// `--insecure-http`) and waits until it answers.
    pub fn start_relay_of(&mut self, r: usize) {
        let name = relay_log(r);
        let log = self.log_file(&name);
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.internet, super::shard_bin(), "relay"])
            .args(["--listen", &format!("{}:{RELAY_PORT}", RELAY_IPS[r])]);
        match &self.tls {
            Some((cert, key)) => {
                command.arg("--cert").arg(cert).arg("--key").arg(key);
            }
            None => {
                command.arg("--insecure-http");
            }
        }
        let started = self.read_log(&name).matches("relay: http").count() + 1;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.relays[r] = Some(child);
        let start = Instant::now();
        while self.read_log(&name).matches("relay: http").count() < started {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "relay {r} did not start: {}",
                self.read_log(&name)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops every relay.
    pub fn stop_relay(&mut self) {
        for r in 0..self.relays.len() {
            self.stop_relay_of(r);
        }
    }

    /// Stops relay `r`.
    pub fn stop_relay_of(&mut self, r: usize) {
        if let Some(mut c) = self.relays[r].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Cuts home `h` off the internet (its router drops everything in and out, also of flows
    /// already established), or mends it.
    pub fn cut(&self, h: usize, cut: bool) {
        let action = if cut { "-I" } else { "-D" };
        for (chain, dir) in [
            ("FORWARD", "-i"),
            ("FORWARD", "-o"),
            ("INPUT", "-i"),
            ("OUTPUT", "-o"),
        ] {
            iptables(&self.routers[h], &[action, chain, dir, "w0", "-j", "DROP"]);
        }
    }

    /// Forwards TCP `port` of machine `i`'s home router (behind NATs only) to machine `i`, as
    /// someone who set up port forwarding would: the machine is then reachable from the
    /// internet at its router's outside address (returned).
    pub fn forward_port(&self, i: usize, port: u16) -> String {
        let m = &self.machines[i];
        assert!(
            m.home_index < self.routers.len(),
            "machine {i} is in no home"
        );
        let h1 = m.home_index + 1;
        let router = &self.routers[m.home_index];
        let port = port.to_string();
        let to = format!("{}:{port}", m.addr);
        let dnat = [
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-i",
            "w0",
            "-p",
            "tcp",
            "--dport",
            &port,
            "-j",
            "DNAT",
            "--to-destination",
            &to,
        ];
        iptables(router, &dnat);
        let accept = [
            "-I", "FORWARD", "-i", "w0", "-p", "tcp", "-d", &m.addr, "--dport", &port, "-j",
            "ACCEPT",
        ];
        iptables(router, &accept);
        format!("10.97.{h1}.2:{port}")
    }

    /// Makes the link between the internet and home `h` lose `loss_percent` of its packets
    /// each way (iptables `statistic`) and, with `kbit`, carry at most that rate, queueing up
    /// to 300 ms (`tbf`) — this kernel has no `netem`. `heal` undoes it. Everything home `h`
    /// sends to the relay or to other homes crosses that link.
    pub fn impair(&self, h: usize, loss_percent: u32, kbit: Option<u32>) {
        self.loss_rules(h, "-I", loss_percent);
        if let Some(kbit) = kbit {
            let rate = format!("{kbit}kbit");
            for (ns, dev) in self.link_ends(h) {
                in_ns(
                    &ns,
                    "tc",
                    &[
                        "qdisc", "replace", "dev", &dev, "root", "tbf", "rate", &rate, "burst",
                        "32k", "latency", "300ms",
                    ],
                );
            }
        }
    }

    /// Undoes [`Homes::impair`] (same arguments).
    pub fn heal(&self, h: usize, loss_percent: u32, kbit: Option<u32>) {
        self.loss_rules(h, "-D", loss_percent);
        if kbit.is_some() {
            for (ns, dev) in self.link_ends(h) {
                in_ns(&ns, "tc", &["qdisc", "del", "dev", &dev, "root"]);
            }
        }
    }

    /// The two ends of home `h`'s link: the internet's and the home's (its router, or its one
    /// machine).
    fn link_ends(&self, h: usize) -> [(String, String); 2] {
        let near = match self.routers.get(h) {
            Some(router) => (router.clone(), "w0".to_string()),
            None => (self.machines[h].ns.clone(), "e0".to_string()),
        };
        [(self.internet.clone(), format!("r{}", h + 1)), near]
    }

    fn loss_rules(&self, h: usize, action: &str, loss_percent: u32) {
        let p = format!("{:.2}", f64::from(loss_percent) / 100.0);
        let dev = format!("r{}", h + 1);
        for (chain, dir) in [
            ("FORWARD", "-i"),
            ("FORWARD", "-o"),
            ("INPUT", "-i"),
            ("OUTPUT", "-o"),
        ] {
            iptables(
                &self.internet,
                &[
                    action,
                    chain,
                    dir,
                    &dev,
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &p,
                    "-j",
                    "DROP",
                ],
            );
        }
    }

    /// Moves machine `i` (behind NATs) to another address on its home's LAN, as a laptop
    /// given a new lease would: the old address is gone, flows through it are dead.
    pub fn readdress(&mut self, i: usize, last_octet: u8) {
        let m = &self.machines[i];
        assert!(
            m.home_index < self.routers.len(),
            "machine {i} is in no home"
        );
        let h1 = m.home_index + 1;
        let new = format!("192.168.{h1}.{last_octet}");
        let old = format!("{}/24", m.addr);
        let new_cidr = format!("{new}/24");
        for (verb, addr) in [("del", old.as_str()), ("add", new_cidr.as_str())] {
            ip(&["-n", &m.ns, "addr", verb, addr, "dev", "e0"]);
        }
        // Deleting the address took the default route with it.
        ip(&[
            "-n",
            &m.ns,
            "route",
            "replace",
            "default",
            "via",
            &format!("192.168.{h1}.1"),
        ]);
        self.machines[i].addr = new;
    }

    pub fn home(&self, i: usize) -> &Path {
        &self.machines[i].home
    }

    pub fn machine(&self, i: usize) -> &Machine {
        &self.machines[i]
    }

    pub fn ns(&self, i: usize) -> &str {
        &self.machines[i].ns
    }

    pub fn dev(&self, i: usize) -> &str {
        &self.machines[i].dev
    }

    /// `shard --home HOME args…` on machine `i`.
    pub fn shard(&self, i: usize, args: &[&str]) -> Output {
        let m = &self.machines[i];
        shard_in(&m.ns, &m.home, args)
    }

    /// `shard --json args…` on machine `i`, which must succeed.
    pub fn json(&self, i: usize, args: &[&str]) -> Value {
        let m = &self.machines[i];
        json_in(&m.ns, &m.home, args)
    }

    /// `shard init` on machine `i`, with `relay` (a URL, or "none"); behind NATs also
    /// `--relay-ca` with the relay's certificate.
    pub fn init(&self, i: usize, name: &str, relay: &str) {
        let mut args = vec![
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
        ];
        let ca = self.relay_ca().map(|p| p.to_str().unwrap().to_string());
        if let Some(ca) = &ca {
            args.extend(["--relay-ca", ca]);
        }
        let out = self.shard(i, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `shard serve` on machine `i` and waits for its API.
    pub fn serve(&mut self, i: usize, extra: &[&str]) {
        self.serve_env(i, extra, &[]);
    }

    /// [`Homes::serve`] with more environment variables (e.g. `SHARD_ADVERSARY`).
    pub fn serve_env(&mut self, i: usize, extra: &[&str], env: &[(&str, &str)]) {
        let log = self.log_file(&machine_log(i));
        let m = &mut self.machines[i];
        m.child = Some(serve_in_env(&m.ns, &m.home, log, extra, env));
    }

    /// The pid of machine `i`'s node, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.machines[i].child.as_ref().map(Child::id)
    }

    /// Stops the node of machine `i` hard.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.machines[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self, i: usize) -> String {
        self.read_log(&machine_log(i))
    }

    /// The last `lines` lines of every machine's log and of the relays', each headed by
    /// whose it is: what a failed test prints to say why.
    pub fn log_tails(&self, lines: usize) -> String {
        let names = (0..self.machines.len())
            .map(machine_log)
            .chain((0..RELAY_IPS.len()).map(relay_log));
        let mut out = String::new();
        for name in names {
            let log = self.read_log(&name);
            if log.is_empty() {
                continue;
            }
            let all: Vec<&str> = log.lines().collect();
            let tail = all
                .get(all.len().saturating_sub(lines)..)
                .unwrap_or_default();
            out.push_str(&format!("--- {name}'s log ends:\n{}\n", tail.join("\n")));
        }
        out
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

    /// Waits (at most `limit`) until `check` holds for machine `i`'s `shard peers`.
    pub fn wait_peers(&self, i: usize, limit: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let peers = self.json(i, &["peers"]);
            if check(&peers) {
                return peers;
            }
            assert!(
                start.elapsed() < limit,
                "machine {}: peers never got there: {peers}\n{}",
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

/// Whether `peers` (`shard --json peers`) lists exactly `n` peers, all online over `path`
/// ("lan", "direct", "relay").
pub fn all_online_over(peers: &Value, n: usize, path: &str) -> bool {
    let list = peers["peers"].as_array().cloned().unwrap_or_default();
    list.len() == n
        && list
            .iter()
            .all(|p| p["online"] == true && p["path"].as_str() == Some(path))
}

/// A veth link from `ns` (device `dev`, address `addr`/24) to `far_ns` (device `far`, address
/// `gateway`/24), both up.
fn link(ns: &str, dev: &str, addr: &str, far_ns: &str, far: &str, gateway: &str) {
    ip(&[
        "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", far, "netns", far_ns,
    ]);
    ip(&[
        "-n",
        far_ns,
        "addr",
        "add",
        &format!("{gateway}/24"),
        "dev",
        far,
    ]);
    ip(&["-n", far_ns, "link", "set", far, "up"]);
    ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
    ip(&["-n", ns, "link", "set", dev, "up"]);
    ip(&["-n", ns, "link", "set", "lo", "up"]);
}

/// The log file name of machine `i`.
fn machine_log(i: usize) -> String {
    format!("home{}", i + 1)
}

/// The log file name of relay `r`.
fn relay_log(r: usize) -> String {
    match r {
        0 => "relay".to_string(),
        r => format!("relay{}", r + 1),
    }
}

fn in_ns(ns: &str, program: &str, args: &[&str]) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sysctl(ns: &str, setting: &str) {
    in_ns(ns, "sysctl", &["-q", "-w", setting]);
}

fn iptables(ns: &str, args: &[&str]) {
    in_ns(ns, "iptables", args);
}

impl Drop for Homes {
    fn drop(&mut self) {
        for i in 0..self.machines.len() {
            self.kill(i);
        }
        self.stop_relay();
        for ns in self
            .machines
            .iter()
            .map(|m| &m.ns)
            .chain(&self.routers)
            .chain(std::iter::once(&self.internet))
        {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
