//! Real `shard` nodes for end-to-end tests: temporary homes, peers and API on 127.0.0.1 with
//! ports the system picks, processes killed when the test ends. The `shard` binary is the one
//! cargo built beside the running test (`shard-cli`'s integration tests), or `SHARD_TEST_BIN`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod homes;
pub mod lan;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The passphrase of every test account.
pub const PASSWORD: &str = "correct horse battery staple";

/// The `shard` binary the tests run.
pub fn shard_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("SHARD_TEST_BIN") {
            return bin;
        }
        // target/<profile>/deps/<test> → target/<profile>/shard: where cargo puts the binary
        // it builds for shard-cli's integration tests.
        let exe = std::env::current_exe().expect("the test's own path");
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .map(|dir| dir.join("shard"))
            .expect("the test's target folder");
        assert!(
            bin.is_file(),
            "no shard binary at {} (run the tests of shard-cli, or set SHARD_TEST_BIN)",
            bin.display()
        );
        bin.to_string_lossy().into_owned()
    })
}

/// `len` pseudo-random bytes from `seed` (xorshift: fast, and the same on every run). Distinct
/// seeds below 2^63 give distinct bytes: the state was `seed | 1`, which gave seeds 2i and
/// 2i + 1 the same bytes, and a test's files deduplicated where it meant them apart.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = (seed << 1) | 1;
    let mut data = vec![0u8; len];
    for chunk in data.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    data
}

/// Writes `len` pseudo-random bytes from `seed` to `path`; returns them.
pub fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let data = random_bytes(len, seed);
    std::fs::write(path, &data).unwrap();
    data
}

/// Runs `shard --home HOME args…` and returns its output.
pub fn run(home: &Path, args: &[&str]) -> Output {
    Command::new(shard_bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run shard")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command expected to succeed and print JSON.
pub fn run_json(home: &Path, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = run(home, &full);
    assert!(
        out.status.success(),
        "shard {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(&out)))
}

/// A node: its home and, while it runs, its `shard serve` process.
pub struct TestNode {
    pub name: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The peer address of the last run (a clean stop removes `listen.addr`).
    last_listen: Option<String>,
}

impl TestNode {
    /// Initializes a node called `name` (not started).
    pub fn init(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let out = run(
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
                "127.0.0.1:0",
                // mDNS off: tests on the host must not multicast on its real interfaces.
                "--mdns",
                "off",
                // No relays: tests never contact the public ones.
                "--relay",
                "none",
            ],
        );
        assert!(out.status.success(), "init failed: {}", stderr(&out));
        Self {
            name: name.to_string(),
            dir,
            child: None,
            last_listen: None,
        }
    }

    /// Initializes and starts a node.
    pub fn start(name: &str) -> Self {
        let mut node = Self::init(name);
        node.serve(&[]);
        node
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts `shard serve` (with extra arguments) and waits until its API answers.
    pub fn serve(&mut self, extra: &[&str]) {
        self.serve_env(extra, &[]);
    }

    /// Starts `shard serve` with extra arguments and environment variables.
    pub fn serve_env(&mut self, extra: &[&str], env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "already running");
        let _ = std::fs::remove_file(self.home().join("api.addr"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(shard_bin())
            .arg("--home")
            .arg(self.home())
            .arg("serve")
            .args(extra)
            .env("SHARD_LOG", "info,shard_net=debug")
            .env("SHARD_PASSWORD", PASSWORD)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if self.home().join("api.addr").exists()
                && run(&self.home(), &["status"]).status.success()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "{} exited with {status} at start:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not start:\n{}", self.name, self.log());
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run(&self.home(), args)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        run_json(&self.home(), args)
    }

    /// Creates an account (passphrase from the environment) and returns its recovery code.
    pub fn create_account(&self, user: &str) -> String {
        let out = Command::new(shard_bin())
            .arg("--home")
            .arg(self.home())
            .args(["--json", "account", "create", user])
            .env("SHARD_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "account create: {}", stderr(&out));
        let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        v["recovery_code"].as_str().unwrap().to_string()
    }

    /// A copy of this (stopped) node's home, as another node called `name`: the same
    /// identity, accounts and catalog, as if the machine came back from a backup.
    pub fn copy_home(&self, name: &str) -> TestNode {
        assert!(
            self.child.is_none(),
            "stop the node before copying its home"
        );
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(self.home())
            .arg(dir.path().join("home"))
            .status()
            .unwrap();
        assert!(status.success());
        TestNode {
            name: name.to_string(),
            dir,
            child: None,
            last_listen: None,
        }
    }

    /// Runs `shard` with extra environment variables (e.g. passphrases).
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(shard_bin());
        command.arg("--home").arg(self.home()).args(args);
        for (k, v) in env {
            command.env(k, v);
        }
        command.stdin(Stdio::null()).output().unwrap()
    }

    /// Runs `shard` with extra environment variables and `input` on its standard input.
    pub fn run_stdin(&self, args: &[&str], env: &[(&str, &str)], input: &str) -> Output {
        use std::io::Write;
        let mut command = Command::new(shard_bin());
        command.arg("--home").arg(self.home()).args(args);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Like [`Self::run_env`], expecting success and JSON.
    pub fn json_env(&self, args: &[&str], env: &[(&str, &str)]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run_env(&full, env);
        assert!(
            out.status.success(),
            "shard {args:?} failed: {}{}",
            stdout(&out),
            stderr(&out)
        );
        serde_json::from_str(stdout(&out).trim()).unwrap()
    }

    /// Waits until the node's log shows `text`.
    pub fn wait_log(&self, text: &str, within: Duration) {
        let start = Instant::now();
        while !self.log().contains(text) {
            if start.elapsed() > within {
                panic!(
                    "{}: {text:?} not in the log after {within:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Restarts a stopped or killed node on the peer port it had, unlocking `login`.
    pub fn restart(&mut self, login: Option<&str>) {
        self.restart_env(login, &[]);
    }

    /// Starts the node again on its peer address, with extra environment variables.
    pub fn restart_env(&mut self, login: Option<&str>, env: &[(&str, &str)]) {
        let listen = std::fs::read_to_string(self.home().join("listen.addr"))
            .ok()
            .or_else(|| self.last_listen.clone());
        let mut args: Vec<String> = Vec::new();
        if let Some(l) = listen {
            args.extend(["--listen".into(), l.trim().to_string()]);
        }
        if let Some(user) = login {
            args.extend(["--login".into(), user.to_string()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.serve_env(&refs, env);
    }

    /// Calls the running node's control API directly.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let addr = std::fs::read_to_string(self.home().join("api.addr")).unwrap();
        let token = std::fs::read_to_string(self.home().join("api.token")).unwrap();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let url = format!("http://{}{path}", addr.trim());
        let auth = format!("Bearer {}", token.trim());
        let mut response = match (method, body) {
            ("GET", _) => agent
                .get(&url)
                .header("Authorization", &auth)
                .call()
                .unwrap(),
            (_, Some(b)) => agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(b)
                .unwrap(),
            (_, None) => agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty()
                .unwrap(),
        };
        response.body_mut().read_json().unwrap_or(Value::Null)
    }

    /// The running node's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident memory of the running node now, bytes (VmRSS).
    pub fn rss(&self) -> u64 {
        let pid = self.pid().expect("the node runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    /// Open file descriptors of the running node.
    pub fn open_fds(&self) -> usize {
        let pid = self.pid().expect("the node runs");
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    }

    /// The address the node listens on for peers.
    pub fn listen_addr(&self) -> std::net::SocketAddr {
        std::fs::read_to_string(self.home().join("listen.addr"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then waits for the exit; returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        self.last_listen = std::fs::read_to_string(self.home().join("listen.addr")).ok();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if start.elapsed() > Duration::from_secs(20) {
                child.kill().unwrap();
                panic!("{} did not stop on SIGTERM:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process still runs; one that ended is forgotten (it can be started again).
    pub fn is_running(&mut self) -> bool {
        let running = self
            .child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none());
        if !running {
            self.child = None;
        }
        running
    }

    /// The node's id as `peers` shows it.
    pub fn id(&self) -> String {
        self.json(&["status"])["id"].as_str().unwrap().to_string()
    }

    /// Peers as `peers --json` lists them.
    pub fn peers(&self) -> Vec<Value> {
        self.json(&["peers"])["peers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Pairs `other` with this node (this one invites).
    pub fn pair_with(&self, other: &TestNode) {
        let code = self.json(&["invite"])["code"].as_str().unwrap().to_string();
        let out = other.run(&["join", &code]);
        assert!(out.status.success(), "join failed: {}", stderr(&out));
    }

    /// Waits until every peer named in `names` is online here.
    pub fn wait_online(&self, names: &[&str], within: Duration) {
        let start = Instant::now();
        loop {
            let peers = self.peers();
            let online = |n: &str| peers.iter().any(|p| p["name"] == n && p["online"] == true);
            if names.iter().all(|n| online(n)) {
                return;
            }
            if start.elapsed() > within {
                panic!(
                    "{}: peers {names:?} not all online after {within:?}: {peers:?}\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An owner node with the account "alice", logged in, and `peers` peers ("peer0", …) paired
/// with it and online.
pub fn owner_with_peers(peers: usize) -> (TestNode, Vec<TestNode>) {
    let mut owner = TestNode::init("owner");
    owner.create_account("alice");
    owner.serve(&["--login", "alice"]);
    let peers: Vec<TestNode> = (0..peers)
        .map(|i| TestNode::start(&format!("peer{i}")))
        .collect();
    for p in &peers {
        owner.pair_with(p);
    }
    let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
    owner.wait_online(&names, Duration::from_secs(15));
    (owner, peers)
}
