//! Nodes in this test process, on 127.0.0.1 with ports the system picks (or on the in-memory
//! transport): an owner with an account and peers paired with it, driven through the library,
//! for engine tests and for tests that need many operations (property tests) and cannot afford
//! a process per command. Failures panic: this is a test harness.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::adversary::{Adversary, Lie};
use shard_crypto::{KdfParams, KeyRecord, VaultKey};
use shard_net::memory::{Link, MemoryNet};
use shard_node::get::GetRequest;
use shard_node::home::{Home, NodeConfig};
use shard_node::node::{Node, RunOptions};
use shard_node::put::PutRequest;
use shard_node::report::{CheckReport, GetReport, PutReport};
use shard_proto::NodeId;

/// The test account and its passphrase.
pub const USER: &str = "alice";
pub const PASSWORD: &[u8] = b"correct horse battery staple";

/// A node's home in `dir`: loopback only, no mDNS, no web UI.
pub fn home(dir: &Path, name: &str) -> Home {
    let home = Home::new(dir.join(name));
    let mut config = NodeConfig::new(name);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.api = "127.0.0.1:0".parse().unwrap();
    config.ui = None;
    // mDNS off: tests on the host must not multicast on its real interfaces.
    config.discovery.mdns = shard_net::discovery::MdnsMode::Off;
    // No relays: tests never contact the public ones (a test that wants iroh gives its own).
    config.net.relays = Some(Vec::new());
    home.init(&config).unwrap();
    home
}

/// Options for test nodes that wait out a dead path: 2 s of silence gives a connection up,
/// and a restore waits 2 s for a lost holder. For tests on the in-memory network that
/// measure those waits; requests still have [`options`]' 10 s, which a loaded machine does
/// not trip.
pub fn quick_options() -> RunOptions {
    RunOptions {
        silence_timeout: Duration::from_secs(2),
        reconnect_wait: Duration::from_secs(2),
        ..options()
    }
}

/// Options for test nodes: short timeouts, short login delays.
pub fn options() -> RunOptions {
    RunOptions {
        request_timeout: Duration::from_secs(10),
        silence_timeout: Duration::from_secs(10),
        hedge_after: Duration::from_millis(100),
        ping_interval: Duration::from_millis(500),
        max_backoff: Duration::from_secs(1),
        login_delay_unit: Duration::from_millis(10),
        // A coarse file system tick is a few milliseconds: enough for tests that write a file
        // and put it again at once.
        racy_window: Duration::from_millis(50),
        ..RunOptions::default()
    }
}

/// Nodes `0..` of which node 0 owns the account [`USER`] (unlocked); some are paired with it.
pub struct Swarm {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Arc<Node>>,
    pub paired: Vec<bool>,
    pub recovery_code: String,
    /// The in-memory network, when the nodes run on one.
    pub net: Option<Arc<MemoryNet>>,
}

/// Starts node `i` of a swarm in `dir`: on `net` when given (without background health, so a
/// test drives repair itself), telling `lies` from its store when there are any.
pub async fn start_node(
    dir: &Path,
    name: &str,
    net: Option<&Arc<MemoryNet>>,
    lies: Vec<Lie>,
    in_order: bool,
    options: RunOptions,
) -> Arc<Node> {
    let mut builder = Node::builder(home(dir, name)).options(options);
    if in_order {
        builder = builder.placement(Arc::new(shard_node::placement::InOrder));
    }
    if let Some(net) = net {
        let net = net.clone();
        builder = builder
            .transport(move |identity| net.transport(identity))
            .without_background_health();
    }
    if !lies.is_empty() {
        builder = builder.store_layer(move |inner| Ok(Adversary::wrap(inner, lies)));
    }
    builder.start().await.unwrap()
}

impl Swarm {
    /// `total` nodes on loopback TCP, the first `paired` of the others paired with the owner
    /// and online.
    pub async fn start(total: usize, paired: usize) -> Self {
        Self::start_with(total, paired, None, &[], false, options()).await
    }

    /// `total` nodes on an in-memory network, the first `paired` of the others paired with the
    /// owner; node `i` of `lies` tells that lie.
    pub async fn in_memory(total: usize, paired: usize, lies: &[(usize, Lie)]) -> Self {
        Self::start_with(
            total,
            paired,
            Some(MemoryNet::new()),
            lies,
            false,
            options(),
        )
        .await
    }

    /// As [`Swarm::in_memory`], with shares placed in order (this node, then peers by name):
    /// where each share goes is known in advance.
    pub async fn in_memory_in_order(total: usize, paired: usize, lies: &[(usize, Lie)]) -> Self {
        Self::start_with(total, paired, Some(MemoryNet::new()), lies, true, options()).await
    }

    /// As [`Swarm::in_memory`] or [`Swarm::in_memory_in_order`], the nodes started with
    /// `options` (see [`quick_options`]).
    pub async fn in_memory_with(
        total: usize,
        paired: usize,
        lies: &[(usize, Lie)],
        in_order: bool,
        options: RunOptions,
    ) -> Self {
        Self::start_with(
            total,
            paired,
            Some(MemoryNet::new()),
            lies,
            in_order,
            options,
        )
        .await
    }

    async fn start_with(
        total: usize,
        paired: usize,
        net: Option<Arc<MemoryNet>>,
        lies: &[(usize, Lie)],
        in_order: bool,
        options: RunOptions,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for i in 0..total {
            let told: Vec<Lie> = lies
                .iter()
                .filter(|(at, _)| *at == i)
                .map(|(_, lie)| *lie)
                .collect();
            nodes.push(
                start_node(
                    dir.path(),
                    &format!("node{i}"),
                    net.as_ref(),
                    told,
                    in_order,
                    options.clone(),
                )
                .await,
            );
        }
        let owner = nodes[0].clone();
        let key = VaultKey::generate().unwrap();
        let record = KeyRecord::wrap(&key, PASSWORD, KdfParams::INSECURE_FAST).unwrap();
        owner.catalog().create_account(USER, &record).unwrap();
        owner
            .login(USER, zeroize::Zeroizing::new(PASSWORD.to_vec()))
            .await
            .unwrap();
        let recovery_code = shard_crypto::encode_recovery_code(&key).to_string();
        let mut swarm = Swarm {
            dir,
            nodes,
            paired: vec![false; total],
            recovery_code,
            net,
        };
        swarm.paired[0] = true;
        for i in 1..=paired {
            swarm.pair(i).await;
        }
        swarm
    }

    /// Sets node `i`'s links on the in-memory network.
    pub fn set_link(&self, i: usize, link: Link) {
        let net = self.net.as_ref().expect("an in-memory swarm");
        net.set_link(self.nodes[i].listen_addr(), link);
    }

    /// Waits until the owner no longer counts node `i` as connected (after its link went
    /// down): a restore begun then does not wait for it to come back.
    pub async fn gone(&self, i: usize) {
        let id = self.id(i);
        wait_until(|| {
            !self
                .owner()
                .online_clients()
                .iter()
                .any(|c| c.peer().id == id)
        })
        .await;
    }

    /// The index of the node called `name`.
    pub fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.status().unwrap().name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn owner(&self) -> &Arc<Node> {
        &self.nodes[0]
    }

    pub fn id(&self, i: usize) -> NodeId {
        self.nodes[i].node_id()
    }

    /// Pairs node `i` with the owner and waits until they are connected.
    pub async fn pair(&mut self, i: usize) {
        let code = self.nodes[i].invite(None).unwrap().encode();
        self.owner().join(&code).await.unwrap();
        self.paired[i] = true;
        let id = self.id(i);
        wait_until(|| {
            self.owner()
                .online_clients()
                .iter()
                .any(|c| c.peer().id == id)
        })
        .await;
    }

    /// Pairs node `machine` (a new machine) with each of `peers` (it joins their invites) and
    /// waits until it is connected to all of them.
    pub async fn join_peers(&self, machine: usize, peers: impl IntoIterator<Item = usize>) {
        let new = self.nodes[machine].clone();
        let mut count = 0;
        for i in peers {
            let code = self.nodes[i].invite(None).unwrap().encode();
            new.join(&code).await.unwrap();
            count += 1;
        }
        wait_until(|| new.online_clients().len() >= count).await;
    }

    /// Recovers the owner's vault on node `machine` with the recovery code and a new
    /// passphrase.
    pub async fn recover_on(
        &self,
        machine: usize,
    ) -> shard_node::Result<shard_node::report::Recovery> {
        shard_node::recover::recover(
            &self.nodes[machine],
            &self.recovery_code,
            None,
            zeroize::Zeroizing::new(b"a passphrase for the new laptop".to_vec()),
            None,
        )
        .await
    }

    /// Nodes paired with the owner, itself included.
    pub fn paired_count(&self) -> usize {
        self.paired.iter().filter(|p| **p).count()
    }

    /// Stores `path` as `name` with `shares`; the put's summary, or its error.
    pub async fn put(
        &self,
        path: &Path,
        name: &str,
        shares: Option<(u8, u8)>,
    ) -> shard_node::Result<PutReport> {
        self.owner()
            .put(
                Some(USER),
                PutRequest {
                    paths: vec![path.to_path_buf()],
                    name: Some(name.as_bytes().to_vec()),
                    redundancy: shares,
                    move_original: false,
                },
            )
            .await
    }

    /// Restores `name` (`@version`) into `out`.
    pub async fn get(
        &self,
        name: &str,
        version: Option<u32>,
        out: &Path,
    ) -> shard_node::Result<GetReport> {
        self.owner()
            .get(
                Some(USER),
                GetRequest {
                    name: name.as_bytes().to_vec(),
                    version,
                    at: None,
                    out: out.to_path_buf(),
                    force: true,
                    keep_special_bits: false,
                },
            )
            .await
    }

    /// `check` of every file, reading `fraction` of the shares back.
    pub async fn check(&self, fraction: f64) -> CheckReport {
        let node = self.owner().clone();
        let session = node.session(Some(USER)).unwrap();
        let job = node.jobs().create("check");
        shard_node::health::check(node, session, Vec::new(), fraction, job)
            .await
            .unwrap()
    }

    /// Every stored file version: (name, version).
    pub fn versions(&self) -> Vec<(String, u32)> {
        let node = self.owner();
        let session = node.session(Some(USER)).unwrap();
        node.catalog()
            .vault(session.account, &session.keys)
            .list()
            .unwrap()
            .into_iter()
            .filter(|e| e.meta.kind == shard_store::FileKind::File)
            .map(|e| (String::from_utf8(e.meta.name).unwrap(), e.version))
            .collect()
    }

    /// A scratch path under the swarm's folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Bytes that differ per seed and do not compress into one chunk (test files).
pub fn content(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let i = u32::try_from(i).unwrap();
            (i.wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(97))
                >> 11)
                .to_le_bytes()[0]
        })
        .collect()
}

/// Waits (at most 15 s) until `cond` holds.
pub async fn wait_until(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "condition not met in 15 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
