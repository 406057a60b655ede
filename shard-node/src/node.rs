//! The running node: serves paired peers, keeps a connection to each of them (reconnecting with
//! backoff), hands out invites and joins with them. `shard serve` starts it and puts the
//! control API and the web UI (`shard-http`) in front of it; a program can embed it alone.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shard_proto::{NodeId, PROTOCOL_VERSION};
use shard_store::{Catalog, PeerRecord, ShareStore, Usage};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::home::Home;
use crate::jobs::Jobs;
use crate::placement::{Placement, WeightedByFree};
use crate::session::{Pick, Session, Sessions};
use crate::target::Target;
use crate::{Error, Result};
use shard_net::Error as NetError;
use shard_net::discovery::{Discovery, Mdns, MdnsMode, Nearby, Sightings, StaticAddrs};
use shard_net::identity::{NodeIdentity, fingerprint, short_fingerprint};
use shard_net::noise::{Gatekeeper, Hello, PairingKey, PathKind, PeerInfo};
use shard_net::pairing::{DEFAULT_INVITE_TTL, Invite, Invites};
use shard_net::rpc::{PeerClient, ShareService, serve_channel};
use shard_net::transport::{Incoming, IrohRoute, Listener, NoiseTcp, Paths, Route, Transport};
use shard_net::wan::{IrohTransport, Relays, WanConfig, WanStatus};

/// Timings of a running node.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Overrides the config's peer address.
    pub listen: Option<SocketAddr>,
    /// Longest an incoming handshake may take.
    pub handshake_timeout: Duration,
    /// How often connected peers are pinged (round-trip time, usage).
    pub ping_interval: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// Timeout of each request to a peer.
    pub request_timeout: Duration,
    /// A connection on which nothing at all is heard this long is given up and dialed again
    /// (a cut link, a NAT that forgot the flow): the pings' timeout. 30 s; shorter in tests.
    pub silence_timeout: Duration,
    /// A share request of a restore unanswered this long gets another holder asked beside it.
    pub hedge_after: Duration,
    /// A peer connection with no frame for this long is closed (half-open connections).
    pub idle_timeout: Duration,
    /// How long a restore waits for a holder it had connected and then lost to be connected
    /// again (once per peer and restore, shared by every chunk that needs it): 20 s.
    pub reconnect_wait: Duration,
    /// Overrides the config's mDNS mode (`--no-mdns` makes it quiet).
    pub mdns: Option<shard_net::discovery::MdnsMode>,
    /// Overrides the config's mDNS interfaces.
    pub mdns_interfaces: Option<Vec<String>>,
    /// The unit of the delay after failed logins (1, 2, 4 … of it, at most 60): 1 s, but in
    /// tests.
    pub login_delay_unit: Duration,
    /// Overrides the config's relays (`--relay`; empty: none, no iroh).
    pub relays: Option<Vec<String>>,
    /// Overrides the config's extra relay certificates (`--relay-ca`).
    pub relay_ca: Option<PathBuf>,
    /// A file whose mtime or ctime is this close to the moment a put scans it is read again by
    /// the next put even when its size, times and inode look unchanged: file system clocks
    /// tick coarsely (a jiffy; 2 s on FAT), so a second write in the same tick would not show.
    /// 2 s; shorter in tests.
    pub racy_window: Duration,
    /// The time backup jobs are scheduled and snapshots dated by (the system's; a test's).
    pub clock: Arc<dyn crate::backup::Clock>,
    /// How often the node looks for backup jobs that are due: 30 s.
    pub backup_tick: Duration,
    /// How long a watched job's folder must be quiet after a change before it runs, by
    /// `clock` (see [`crate::backup::watch`]): 10 s.
    pub watch_quiet: Duration,
}

/// A wrapper put around the node's share store when it starts (a test's lying store); an
/// error is a configuration problem, said in words.
pub type StoreLayer =
    Box<dyn FnOnce(Arc<dyn ShareStore>) -> std::result::Result<Arc<dyn ShareStore>, String> + Send>;

/// Makes the node's transport from its identity (the Noise/TCP one unless a builder says
/// otherwise).
pub type MakeTransport = Box<dyn FnOnce(Arc<NodeIdentity>) -> Arc<dyn Transport> + Send>;

/// What a node is started with: its home, its timings and the seams a program (or a test)
/// may replace — the transport and a layer around the share store.
///
/// ```no_run
/// # async fn run(home: shard_node::home::Home) -> shard_node::Result<()> {
/// use shard_node::node::{Node, RunOptions};
/// let node = Node::builder(home)
///     .options(RunOptions::default())
///     .start()
///     .await?;
/// # let _ = node;
/// # Ok(())
/// # }
/// ```
pub struct NodeBuilder {
    home: Home,
    options: RunOptions,
    transport: Option<MakeTransport>,
    store_layer: Option<StoreLayer>,
    placement: Arc<dyn Placement>,
    discovery: Vec<Arc<dyn Discovery>>,
    background: bool,
}

impl NodeBuilder {
    /// Timings and overrides of the config.
    pub fn options(mut self, options: RunOptions) -> Self {
        self.options = options;
        self
    }

    /// Reaches peers through the transport `make` returns for the node's identity (an
    /// in-memory one, say) instead of Noise over TCP. mDNS stays off then: it announces a
    /// TCP port, which another transport does not serve.
    pub fn transport(
        mut self,
        make: impl FnOnce(Arc<NodeIdentity>) -> Arc<dyn Transport> + Send + 'static,
    ) -> Self {
        self.transport = Some(Box::new(make));
        self
    }

    /// Wraps the node's share store in what `layer` returns.
    pub fn store_layer(
        mut self,
        layer: impl FnOnce(Arc<dyn ShareStore>) -> std::result::Result<Arc<dyn ShareStore>, String>
        + Send
        + 'static,
    ) -> Self {
        self.store_layer = Some(Box::new(layer));
        self
    }

    /// Also looks for paired peers where `discovery` says they are (besides the addresses
    /// pinned at pairing, the config's static ones and mDNS); its addresses are read at each
    /// dial.
    pub fn discovery(mut self, discovery: Arc<dyn Discovery>) -> Self {
        self.discovery.push(discovery);
        self
    }

    /// Chooses the nodes for shares with `placement` instead of weighting by free room (a
    /// test that needs to know where shares go: [`crate::placement::InOrder`]).
    pub fn placement(mut self, placement: Arc<dyn Placement>) -> Self {
        self.placement = placement;
        self
    }

    /// Without the background loops of health (scrub, automatic repair): a test that drives
    /// repair itself.
    pub fn without_background_health(mut self) -> Self {
        self.background = false;
        self
    }

    /// Whether the background loops of health start with the node.
    pub(crate) fn wants_background(&self) -> bool {
        self.background
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            listen: None,
            handshake_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(10),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            silence_timeout: Duration::from_secs(30),
            hedge_after: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(300),
            reconnect_wait: Duration::from_secs(20),
            mdns: None,
            mdns_interfaces: None,
            login_delay_unit: crate::accounts::DELAY_UNIT,
            relays: None,
            relay_ca: None,
            racy_window: Duration::from_secs(2),
            clock: Arc::new(crate::backup::SystemClock),
            backup_tick: Duration::from_secs(30),
            watch_quiet: Duration::from_secs(10),
        }
    }
}

/// A paired peer as `shard peers` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerStatus {
    /// Full fingerprint.
    pub id: String,
    /// First two groups of the fingerprint.
    pub short_id: String,
    /// Its name.
    pub name: String,
    /// Connected now.
    pub online: bool,
    /// Address of the current connection.
    pub addr: Option<String>,
    /// How it is reached: `lan` (TCP), `direct` (iroh, a direct path) or `relay` (iroh,
    /// through a relay); none when offline.
    #[serde(default)]
    pub path: Option<String>,
    /// Last round-trip time, milliseconds.
    pub rtt_ms: Option<f64>,
    /// Bytes it stores (for everyone).
    pub used: Option<u64>,
    /// Its quota.
    pub quota: Option<u64>,
    /// Shares it stores.
    pub shares: Option<u64>,
    /// Addresses it is known by.
    pub addrs: Vec<String>,
    /// Why the last connection attempt failed, if it did.
    pub last_error: Option<String>,
}

/// This node, as `shard status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its name.
    pub name: String,
    /// Full fingerprint.
    pub id: String,
    /// Short fingerprint.
    pub short_id: String,
    /// Where it listens for peers.
    pub listen: String,
    /// Addresses it gives in invites.
    pub advertised: Vec<String>,
    /// Paired peers.
    pub peers: usize,
    /// Of which connected.
    pub online: usize,
    /// Its own store's use.
    pub usage: Usage,
    /// How it reaches peers beyond the LAN; none when it runs without relays.
    #[serde(default)]
    pub wan: Option<WanReport>,
    /// Backup jobs that need attention (failed, partial, overdue), and accounts whose jobs
    /// cannot run because they are locked.
    #[serde(default)]
    pub backups: Vec<crate::backup::BackupAlert>,
}

/// The iroh endpoint's state, as `shard status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WanReport {
    /// The endpoint key peers pin (hex).
    pub key: String,
    /// Relays it is connected to.
    pub relays: Vec<String>,
    /// Relays it could not reach, each with why.
    pub unreachable: Vec<String>,
    /// The addresses it offers for direct paths: its own interfaces' (from the start) and
    /// those the relays saw.
    pub direct: Vec<String>,
    /// Of those, where a relay saw its packets come from when that is on no interface of
    /// this machine: the outside of a NAT. Empty with no NAT, before a relay has answered,
    /// and with relays that do no address discovery (plain HTTP).
    #[serde(default)]
    pub outside: Vec<String>,
    /// Peers connected over iroh now on a direct path (a punched hole, or an address that
    /// was reachable), whichever side dialed: measured, not predicted.
    #[serde(default)]
    pub peers_direct: usize,
    /// Peers reached over iroh now through a relay.
    #[serde(default)]
    pub peers_relayed: usize,
}

impl From<WanStatus> for WanReport {
    fn from(s: WanStatus) -> Self {
        Self {
            key: hex::encode(s.key),
            relays: s.relays_connected,
            unreachable: s
                .relays_unreachable
                .into_iter()
                .map(|(url, why)| format!("{url}: {why}"))
                .collect(),
            direct: s.direct_addrs.iter().map(ToString::to_string).collect(),
            outside: s.outside_addrs.iter().map(ToString::to_string).collect(),
            peers_direct: 0,
            peers_relayed: 0,
        }
    }
}

struct PeerState {
    record: PeerRecord,
    client: Option<Arc<PeerClient>>,
    rtt: Option<Duration>,
    usage: Option<Usage>,
    last_error: Option<String>,
}

/// A running node.
pub struct Node {
    me: Weak<Node>,
    home: Home,
    identity: Arc<NodeIdentity>,
    transport: Arc<dyn Transport>,
    /// The iroh endpoint, unless the node runs without relays (or on a test's transport).
    wan: Option<Arc<IrohTransport>>,
    /// Whether `wan` uses the public relays (an invite then need not name one).
    public_relays: bool,
    placement: Arc<dyn Placement>,
    name: String,
    catalog: Arc<Catalog>,
    service: Arc<ShareService>,
    listen: SocketAddr,
    advertised: Vec<SocketAddr>,
    options: RunOptions,
    invites: Invites,
    peers: Mutex<HashMap<NodeId, PeerState>>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<JoinSet<()>>,
    sessions: Sessions,
    jobs: Jobs,
    sightings: Arc<Sightings>,
    /// The config's static addresses.
    static_addrs: Arc<StaticAddrs>,
    /// Where peers may be besides their pinned addresses: mDNS's sightings, the static
    /// addresses, and what the builder added.
    discovery: Vec<Arc<dyn Discovery>>,
    mdns: Mutex<Option<Mdns>>,
    /// Wakes a peer's connector early (mDNS saw it).
    wakers: Mutex<HashMap<NodeId, Arc<tokio::sync::Notify>>>,
    config: Mutex<crate::home::NodeConfig>,
    /// Wakes the automatic repair early (a peer connected).
    health_wake: tokio::sync::Notify,
    /// Bounds passphrase checks and sign-ups.
    passphrases: crate::accounts::Gate,
    /// Accounts whose last catalog snapshot failed, and why.
    snapshot_failures: Mutex<HashMap<shard_store::AccountId, String>>,
    /// Connections each paired node holds open here.
    inbound_per_peer: Arc<PeerConnections>,
    /// The one-time token of the web UI's setup link, while the node has no account.
    setup: Mutex<Option<(String, Instant)>>,
    /// The backup jobs running now (one run per job at a time).
    pub(crate) backups_running: Mutex<std::collections::HashSet<(shard_store::AccountId, String)>>,
    /// Accounts whose scheduled runs are under way (the loop starts no more for them).
    pub(crate) backup_accounts_busy: Mutex<std::collections::HashSet<shard_store::AccountId>>,
    /// The watchers of watched backup jobs.
    pub(crate) backup_watchers: crate::watchers::Watchers,
    /// Held while the node runs (see [`lock_home`]).
    _home_lock: std::fs::File,
}

/// How long a setup link works.
const SETUP_TTL: Duration = Duration::from_secs(3600);

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a single map update (or, elsewhere, as short and consistent).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Addresses peers can reach `listen` at: itself, or every up interface for 0.0.0.0 / [::].
/// Takes the home's lock (`node.lock`, an advisory `flock` the system drops when the process
/// ends, crash included), or says that another node runs from it.
fn lock_home(home: &Home) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = home.root().join("node.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::HomeInUse {
            home: home.root().to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// The iroh endpoint's settings from the config and the command line; `None`: no relays, no
/// iroh. With `SHARD_NO_PUBLIC_RELAYS` set (the test suite sets it), a node that would use
/// the public relays refuses to start: tests, benchmarks and demos never contact them.
fn wan_config(
    net: &crate::home::NetConfig,
    options: &RunOptions,
    home: &Path,
) -> Result<Option<WanConfig>> {
    let relays = options.relays.clone().or_else(|| net.relays.clone());
    let relays = match relays {
        None => Relays::Public,
        Some(urls) if urls.is_empty() || urls == ["none"] => return Ok(None),
        Some(urls) if urls.iter().any(|u| u == "none") => {
            return Err(Error::Net(NetError::Relay(
                "relays: \"none\" turns relays off; it cannot go with relay URLs".into(),
            )));
        }
        Some(urls) => {
            shard_net::wan::parse_relays(&urls)?;
            Relays::Own(urls)
        }
    };
    if relays == Relays::Public && std::env::var_os("SHARD_NO_PUBLIC_RELAYS").is_some() {
        return Err(Error::Net(NetError::Relay(
            "SHARD_NO_PUBLIC_RELAYS is set and this node would use the public relays; give it \
             --relay none or a relay of its own"
                .into(),
        )));
    }
    let ca = options.relay_ca.clone().or_else(|| net.relay_ca.clone());
    let extra_roots = match ca {
        Some(path) => {
            let path = if path.is_relative() {
                home.join(path)
            } else {
                path
            };
            let pem = std::fs::read(&path).map_err(|e| {
                NetError::Relay(format!(
                    "cannot read the relay certificate {}: {e}",
                    path.display()
                ))
            })?;
            shard_net::wan::read_pem_certificates(&pem)?
        }
        None => Vec::new(),
    };
    Ok(Some(WanConfig {
        relays,
        extra_roots,
        bind: SocketAddr::from(([0, 0, 0, 0], 0)),
        relay_only: false,
    }))
}

/// Says, once a few seconds after start and again whenever it changes, whether the node
/// reaches its relays: a relay that cannot be reached is named in the log (LAN peers keep
/// working meanwhile; nothing waits on it).
async fn watch_relays(node: Arc<Node>, wan: Arc<IrohTransport>) {
    let mut stop = node.shutdown_signal();
    let mut said: Option<Vec<String>> = None;
    let mut wait = Duration::from_secs(5);
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(wait) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopping {
            wan.close().await;
            return;
        }
        wait = Duration::from_secs(60);
        let status = wan.status();
        let now: Vec<String> = status.relays_connected.clone();
        if said.as_ref() == Some(&now) {
            continue;
        }
        if now.is_empty() {
            let why: Vec<String> = status
                .relays_unreachable
                .iter()
                .map(|(url, e)| format!("{url} ({e})"))
                .collect();
            tracing::warn!(
                "no relay reachable: {}; peers in other homes wait until one is (LAN peers are not affected)",
                if why.is_empty() {
                    "none answered yet".to_string()
                } else {
                    why.join("; ")
                }
            );
        } else {
            tracing::info!("reaching peers beyond the LAN through {}", now.join(", "));
        }
        said = Some(now);
    }
}

fn advertised_addrs(listen: SocketAddr) -> Vec<SocketAddr> {
    if !listen.ip().is_unspecified() {
        return vec![listen];
    }
    let mut addrs: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| ip.is_ipv4() == listen.is_ipv4())
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
        .map(|ip| SocketAddr::new(ip, listen.port()))
        .collect();
    // Loopback only when there is nothing else: other machines cannot use it, a node on this
    // machine can use the other addresses as well, and a joiner in another home that dials
    // 127.0.0.1 reaches itself (and logs a refused pairing attempt it never made).
    if addrs.iter().any(|a| !a.ip().is_loopback()) {
        addrs.retain(|a| !a.ip().is_loopback());
    }
    addrs
}

impl Node {
    /// A node of `home` to start, with default options and seams.
    pub fn builder(home: Home) -> NodeBuilder {
        NodeBuilder {
            home,
            options: RunOptions::default(),
            transport: None,
            store_layer: None,
            placement: Arc::new(WeightedByFree),
            discovery: Vec::new(),
            background: true,
        }
    }

    /// Opens the home, listens for peers and starts serving them (the background loops of
    /// health are started by [`NodeBuilder::start`], which calls this).
    pub(crate) async fn open(builder: NodeBuilder) -> Result<Arc<Node>> {
        let NodeBuilder {
            home,
            options,
            transport,
            store_layer,
            placement,
            discovery,
            background: _,
        } = builder;
        // One node per home: a second one would share its databases and, stopping, remove
        // the running node's address files and spool.
        let home_lock = lock_home(&home)?;
        let config = home.config()?;
        let identity = Arc::new(home.identity()?);
        let catalog = Arc::new(home.open_catalog()?);
        let store: Arc<dyn ShareStore> = Arc::new(home.open_store(&config)?);
        let store = match store_layer {
            Some(layer) => layer(store).map_err(Error::StoreLayer)?,
            None => store,
        };
        let heads = Arc::new(shard_store::HeadStore::open(&home.root().join("heads.db"))?);
        // Deletions of this node's own shares that a crash interrupted (peers get theirs when
        // they connect).
        flush_local_deletions(&catalog, store.as_ref(), identity.node_id());
        // Uploads and downloads in flight when the node last stopped (a crash, say) left their
        // bytes in the spool folder: they go now, they are nobody's any more.
        match std::fs::remove_dir_all(home.root().join("spool")) {
            Ok(()) => tracing::info!("removed the spool files of an earlier run"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("could not clear the spool folder: {e}"),
        }
        let listen_at = options.listen.unwrap_or(config.listen);
        let custom_transport = transport.is_some();
        let wan_config = if custom_transport {
            None
        } else {
            wan_config(&config.net, &options, home.root())?
        };
        let public_relays = wan_config
            .as_ref()
            .is_some_and(|c| c.relays == Relays::Public);
        let wan = match &wan_config {
            Some(c) => Some(Arc::new(IrohTransport::bind(identity.clone(), c).await?)),
            None => None,
        };
        let transport: Arc<dyn Transport> = match transport {
            Some(make) => make(identity.clone()),
            None => Arc::new(Paths::new(
                Arc::new(NoiseTcp::new(identity.clone())),
                wan.clone().map(|w| w as Arc<dyn Transport>),
            )),
        };
        let listener = transport
            .listen(listen_at)
            .await
            .map_err(|e| Error::Listen {
                addr: listen_at,
                reason: e.to_string(),
            })?;
        let listen = listener.local_addr();
        let (shutdown, _) = watch::channel(false);
        let advertised = advertised_addrs(listen);
        let service = ShareService::new(identity.node_id(), store, Some(heads));
        let sightings = Arc::new(Sightings::default());
        let static_addrs = Arc::new(StaticAddrs::new(
            config
                .discovery
                .static_addrs
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect(),
        ));
        let node = Arc::new_cyclic(|me| Node {
            me: me.clone(),
            home: home.clone(),
            identity,
            transport,
            wan,
            public_relays,
            placement,
            name: config.name.clone(),
            catalog,
            service,
            listen,
            advertised,
            options,
            invites: Invites::default(),
            peers: Mutex::new(HashMap::new()),
            shutdown,
            tasks: Mutex::new(JoinSet::new()),
            sessions: Sessions::default(),
            jobs: Jobs::default(),
            sightings: sightings.clone(),
            static_addrs: static_addrs.clone(),
            discovery: {
                let mut all: Vec<Arc<dyn Discovery>> = vec![sightings, static_addrs];
                all.extend(discovery);
                all
            },
            mdns: Mutex::new(None),
            wakers: Mutex::new(HashMap::new()),
            config: Mutex::new(config.clone()),
            health_wake: tokio::sync::Notify::new(),
            passphrases: crate::accounts::Gate::default(),
            snapshot_failures: Mutex::new(HashMap::new()),
            inbound_per_peer: Arc::default(),
            setup: Mutex::new(None),
            backups_running: Mutex::default(),
            backup_accounts_busy: Mutex::default(),
            backup_watchers: crate::watchers::Watchers::default(),
            _home_lock: home_lock,
        });
        let mode = if custom_transport {
            MdnsMode::Off
        } else {
            node.options.mdns.unwrap_or(config.discovery.mdns)
        };
        // Where a paired peer was seen is kept over made-up ids a flood announces.
        let weak = node.me.clone();
        node.sightings.keep(Arc::new(move |id| {
            weak.upgrade()
                .is_some_and(|n| lock(&n.peers).contains_key(id))
        }));
        if mode != MdnsMode::Off {
            let interfaces = node
                .options
                .mdns_interfaces
                .clone()
                .unwrap_or_else(|| config.discovery.interfaces.clone());
            let weak = node.me.clone();
            let started = Mdns::start(
                mode,
                &interfaces,
                node.node_id(),
                &config.name,
                listen.port(),
                node.sightings.clone(),
                move |seen| {
                    if let Some(node) = weak.upgrade() {
                        node.wake(&seen.id);
                    }
                },
            );
            match started {
                Ok(m) => *lock(&node.mdns) = Some(m),
                Err(e) => tracing::warn!(
                    "mDNS could not start ({e}); peers are found by their known addresses only"
                ),
            }
        }
        for record in node.catalog.peers()? {
            node.add_peer(record);
        }
        if node.public_relays {
            tracing::info!(
                "peers in other homes are reached through the public relays (iroh's); `--relay none` or `[net] relays = []` turns that off, `--relay URL` names your own"
            );
        }
        if let Some(wan) = &node.wan {
            let weak = node.me.clone();
            wan.set_filter(Arc::new(move |key| {
                weak.upgrade().is_some_and(|n| n.lets_in_iroh(key))
            }));
        }
        // As many descriptors as the system allows; peer connections get what is left after a
        // reserve for the API, the web UI, the store and the databases.
        let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
        let max_connections =
            usize::try_from(nofile.saturating_sub(RESERVED_FDS).clamp(16, 16_384)).unwrap_or(16);
        node.spawn(accept_loop(node.clone(), listener, max_connections));
        node.spawn(expire_loop(node.clone()));
        if let Some(wan) = node.wan.clone() {
            node.spawn(watch_relays(node.clone(), wan));
        }
        tracing::info!(
            "node {} ({}) listening for peers on {listen}",
            node.name,
            fingerprint(&node.identity.node_id())
        );
        Ok(node)
    }

    /// Where the node listens for peers.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The node's home folder.
    pub fn home(&self) -> &Home {
        &self.home
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        // Tasks that ended are dropped now, not kept until shutdown.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Asks the node to stop: no new connections or requests; requests in flight finish.
    pub fn shutdown(&self) {
        // send_replace: the flag must stick even when no task listens yet (send would drop it).
        self.shutdown.send_replace(true);
    }

    /// A receiver that turns true at shutdown.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Waits until the node has stopped (after [`Node::shutdown`]), at most `grace` for work in
    /// flight, then removes the address files.
    pub async fn stopped(&self, grace: Duration) {
        let mut signal = self.shutdown_signal();
        let _ = signal.wait_for(|stop| *stop).await;
        if let Some(mdns) = lock(&self.mdns).take() {
            mdns.stop();
        }
        let mut tasks = std::mem::take(&mut *lock(&self.tasks));
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("some connections did not finish within {grace:?}; stopping anyway");
            tasks.abort_all();
        }
        self.home.clear_addrs();
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.identity.node_id()
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The local share store.
    pub fn store(&self) -> &Arc<dyn ShareStore> {
        self.service.store()
    }

    /// The node's timings.
    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    /// How this node chooses the nodes for shares.
    pub(crate) fn placement(&self) -> Arc<dyn Placement> {
        self.placement.clone()
    }

    fn hello(&self) -> Hello {
        // The iroh route first: a peer keeps only the first entries of a long list.
        let mut listen: Vec<String> = self
            .transport
            .routes()
            .iter()
            .map(ToString::to_string)
            .collect();
        listen.extend(self.advertised.iter().map(ToString::to_string));
        Hello {
            name: self.name.clone(),
            listen,
            protocol: PROTOCOL_VERSION,
        }
    }

    /// This node's iroh endpoint as peers dial it (its key, its home relay), if it has one.
    fn iroh_route(&self) -> Option<IrohRoute> {
        self.transport.routes().into_iter().find_map(|r| match r {
            Route::Iroh(r) => Some(r),
            Route::Tcp(_) => None,
        })
    }

    /// What the iroh endpoint knows of this node's reachability (`None`: no relays).
    pub fn wan_status(&self) -> Option<WanStatus> {
        self.wan.as_ref().map(|w| w.status())
    }

    /// This node's status.
    pub fn status(&self) -> Result<NodeStatus> {
        // Asked before the peer table is locked: it lists the machine's interfaces.
        let wan_status = self.wan_status();
        let backups = self.backup_alerts();
        let peers = lock(&self.peers);
        let over = |path: PathKind| {
            peers
                .values()
                .filter_map(|p| p.client.as_ref().filter(|c| !c.is_closed()))
                .filter(|c| c.peer().path() == path)
                .count()
        };
        let wan = wan_status.map(|s| WanReport {
            peers_direct: over(PathKind::Direct),
            peers_relayed: over(PathKind::Relay),
            ..WanReport::from(s)
        });
        Ok(NodeStatus {
            name: self.name.clone(),
            id: fingerprint(&self.node_id()),
            short_id: short_fingerprint(&self.node_id()),
            listen: self.listen.to_string(),
            advertised: self.advertised.iter().map(ToString::to_string).collect(),
            peers: peers.len(),
            online: peers
                .values()
                .filter(|p| p.client.as_ref().is_some_and(|c| !c.is_closed()))
                .count(),
            usage: self.store().usage()?,
            wan,
            backups,
        })
    }

    /// Every paired peer, by name.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let peers = lock(&self.peers);
        let mut out: Vec<PeerStatus> = peers.values().map(status_of).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        out
    }

    /// The nodes that can be asked for a share now: this one and its connected peers.
    pub fn online_ids(&self) -> std::collections::HashSet<NodeId> {
        let mut ids: std::collections::HashSet<NodeId> = lock(&self.peers)
            .iter()
            .filter(|(_, p)| p.client.as_ref().is_some_and(|c| !c.is_closed()))
            .map(|(id, _)| *id)
            .collect();
        ids.insert(self.node_id());
        ids
    }

    /// Connected peers' clients.
    pub fn online_clients(&self) -> Vec<Arc<PeerClient>> {
        lock(&self.peers)
            .values()
            .filter_map(|p| p.client.clone())
            .filter(|c| !c.is_closed())
            .collect()
    }

    /// Unpaired nodes seen nearby (mDNS).
    pub fn nearby(&self) -> Vec<Nearby> {
        let paired: Vec<NodeId> = lock(&self.peers).keys().copied().collect();
        let mut all: Vec<Nearby> = Vec::new();
        for source in &self.discovery {
            for n in source.nearby(&paired) {
                if !all.iter().any(|a| a.id == n.id) {
                    all.push(n);
                }
            }
        }
        all
    }

    /// Adds a static address where paired peers may be found (kept in the config).
    pub fn add_static_addr(&self, addr: &str) -> Result<()> {
        let parsed: SocketAddr = addr
            .parse()
            .map_err(|_| Error::NotAnAddress(addr.to_string()))?;
        let mut config = lock(&self.config);
        if !config.discovery.static_addrs.contains(&parsed.to_string()) {
            config.discovery.static_addrs.push(parsed.to_string());
            self.home.save_config(&config)?;
        }
        drop(config);
        self.static_addrs.add(parsed);
        let ids: Vec<NodeId> = lock(&self.peers).keys().copied().collect();
        for id in ids {
            self.wake(&id);
        }
        Ok(())
    }

    /// Every address to try for `id`: what the discovery sources say (mDNS first), then the
    /// pinned ones.
    fn candidate_addrs(&self, id: &NodeId) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = self
            .discovery
            .iter()
            .flat_map(|d| d.addresses(id))
            .collect();
        if let Some(p) = lock(&self.peers).get(id) {
            out.extend(
                p.record
                    .addrs
                    .iter()
                    .filter_map(|a| a.parse::<SocketAddr>().ok()),
            );
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|a| seen.insert(*a));
        out
    }

    /// Every route to try for `id`: its TCP addresses (see `candidate_addrs`), then its pinned
    /// iroh endpoint when this node has iroh.
    fn candidate_routes(&self, id: &NodeId) -> Vec<Route> {
        let mut out: Vec<Route> = self
            .candidate_addrs(id)
            .into_iter()
            .map(Route::Tcp)
            .collect();
        if self.wan.is_some()
            && let Some(p) = lock(&self.peers).get(id)
        {
            out.extend(
                p.record
                    .addrs
                    .iter()
                    .filter_map(|a| Route::parse(a))
                    .filter(|r| matches!(r, Route::Iroh(_)))
                    .take(1),
            );
        }
        out
    }

    /// Feeds a sighting as if mDNS had reported it: for tests of what a forged or stale
    /// announcement can do (nothing the handshake does not confirm).
    #[doc(hidden)]
    pub fn inject_sighting(&self, id: NodeId, name: &str, addrs: Vec<SocketAddr>) {
        self.sightings.record(id, name.to_string(), addrs);
        self.wake(&id);
    }

    /// Makes a peer's connector look again now: if the peer is offline it tries to connect;
    /// if connected, it checks whether the peer moved (see the connector).
    fn wake(&self, id: &NodeId) {
        if let Some(n) = lock(&self.wakers).get(id) {
            n.notify_one();
        }
    }

    /// This node's own store, as a place for shares.
    pub fn local_target(&self) -> Target {
        Target::Local {
            id: self.node_id(),
            service: self.service.clone(),
        }
    }

    /// Connected peers with their last known usage.
    pub fn online_peers(&self) -> Vec<(Arc<PeerClient>, Option<Usage>)> {
        lock(&self.peers)
            .values()
            .filter_map(|p| {
                p.client
                    .clone()
                    .filter(|c| !c.is_closed())
                    .map(|c| (c, p.usage))
            })
            .collect()
    }

    /// This node and every connected peer, as places for shares.
    pub fn targets(&self) -> Vec<Target> {
        let mut out = vec![self.local_target()];
        out.extend(
            self.online_peers()
                .into_iter()
                .map(|(c, _)| Target::Peer(c)),
        );
        out
    }

    /// Last round-trip time of each peer.
    pub fn rtts(&self) -> HashMap<NodeId, Duration> {
        lock(&self.peers)
            .iter()
            .filter_map(|(id, p)| p.rtt.map(|r| (*id, r)))
            .collect()
    }

    /// How to call node `id` to a person: "this node", a paired peer's name, or else the short
    /// form of its id.
    pub fn name_of(&self, id: &NodeId) -> String {
        if *id == self.node_id() {
            return "this node".to_string();
        }
        lock(&self.peers)
            .get(id)
            .map(|p| p.record.name.clone())
            .unwrap_or_else(|| short_fingerprint(id))
    }

    /// Names of the paired peers.
    pub fn peer_names(&self) -> Vec<(NodeId, String)> {
        lock(&self.peers)
            .iter()
            .map(|(id, p)| (*id, p.record.name.clone()))
            .collect()
    }

    /// The node's jobs.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// Unlocks `user`'s vault in this node (the keys stay in memory until logout).
    ///
    /// Failed attempts are counted per account in the catalog (so across restarts): after `n`
    /// failures the next attempt waits 2^(n−1) s since the last one (1, 2, 4 … at most 60 s)
    /// before it is even tried. Attempts on one account run one at a time, so the delay holds
    /// for concurrent ones too, and at most two Argon2 runs share the node's memory.
    pub async fn login(&self, user: &str, passphrase: zeroize::Zeroizing<Vec<u8>>) -> Result<()> {
        let account = crate::accounts::account(&self.catalog, user)?;
        let _turn = self.passphrases.turn(user).await?;
        self.attempt(user, account, passphrase).await
    }

    /// One passphrase attempt on `account`: waits the delay its failures earned, takes a turn
    /// at Argon2, and unlocks the vault if the passphrase opens it.
    async fn attempt(
        &self,
        user: &str,
        account: shard_store::Account,
        passphrase: zeroize::Zeroizing<Vec<u8>>,
    ) -> Result<()> {
        let wait = crate::accounts::wait_before_attempt(
            &self.catalog,
            &account,
            self.options.login_delay_unit,
        )?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let _argon = self.passphrases.argon().await?;
        let catalog = self.catalog.clone();
        let checked = account.clone();
        let key = tokio::task::spawn_blocking(move || {
            crate::accounts::try_unwrap(&catalog, &checked, &passphrase)
        })
        .await
        .map_err(|e| Error::task(&e))??;
        self.unlock(
            user,
            account.id,
            Arc::new(shard_crypto::VaultKeys::derive(&key)),
        );
        tracing::info!("account {user} unlocked");
        Ok(())
    }

    /// [`Node::login`] as the web UI needs it: a name with no account gets exactly the answer
    /// (and the wait) of a wrong passphrase, so the login page tells nobody which names exist.
    pub async fn login_uniformly(
        &self,
        user: &str,
        passphrase: zeroize::Zeroizing<Vec<u8>>,
    ) -> Result<()> {
        let _place = self.passphrases.web_login()?;
        if crate::accounts::check_account_name(user).is_err() {
            // No account can have such a name (nor is it worth remembering): the answer of a
            // wrong passphrase, at once.
            return Err(Error::WrongPassphrase {
                user: user.chars().take(64).collect(),
                next_wait_secs: 1,
            });
        }
        if passphrase.len() > crate::accounts::MAX_PASSPHRASE_BYTES {
            // Said at once, whether the name exists or not.
            return Err(Error::WeakPassphrase(
                "the passphrase is longer than 1024 bytes".into(),
            ));
        }
        if self.catalog.account(user)?.is_none() {
            let _turn = self.passphrases.turn(user).await?;
            return Err(self
                .passphrases
                .wrong_name(user, &passphrase, self.options.login_delay_unit)
                .await);
        }
        self.login(user, passphrase).await
    }

    /// [`Node::login`] for whoever holds the node's API token (the CLI): it waits the delay
    /// earned by earlier failures like any attempt, but not in the account's queue, and is
    /// never turned away, so attempts kept waiting from the web cannot lock the owner out
    /// (the token holder could read the key record in the home anyway).
    pub async fn login_as_owner(
        &self,
        user: &str,
        passphrase: zeroize::Zeroizing<Vec<u8>>,
    ) -> Result<()> {
        let account = crate::accounts::account(&self.catalog, user)?;
        self.attempt(user, account, passphrase).await
    }

    /// Opens a session for a vault whose keys are already derived (after recovery).
    pub fn unlock(
        &self,
        user: &str,
        account: shard_store::AccountId,
        keys: Arc<shard_crypto::VaultKeys>,
    ) -> Arc<Session> {
        let session = self.sessions.insert(Session {
            user: user.to_string(),
            account,
            keys,
            writer: tokio::sync::Mutex::new(()),
            pruning: tokio::sync::Mutex::new(()),
            compaction_due: std::sync::atomic::AtomicBool::new(true),
        });
        // Deletions and hand-overs that waited for this vault's signature go out now.
        if let Some(node) = self.me.upgrade() {
            self.spawn(async move {
                for client in node.online_clients() {
                    settle_with(&node, &client).await;
                }
            });
        }
        session
    }

    /// Creates an account from a sign-up (the web UI): rate-limited, and its Argon2 run waits
    /// for room like a login's. Returns the recovery code.
    pub async fn sign_up(
        &self,
        user: &str,
        passphrase: zeroize::Zeroizing<String>,
    ) -> Result<zeroize::Zeroizing<String>> {
        self.passphrases.signup()?;
        let _argon = self.passphrases.argon().await?;
        let (catalog, user) = (self.catalog.clone(), user.to_string());
        tokio::task::spawn_blocking(move || crate::accounts::create(&catalog, &user, &passphrase))
            .await
            .map_err(|_| Error::Internal("the account creation crashed".into()))?
    }

    /// The service answering peers from this node's store.
    pub(crate) fn service(&self) -> &Arc<ShareService> {
        &self.service
    }

    /// The one-time token of the web UI's setup link while the node has no account (a fresh
    /// one once the last has expired), and `None` once it has one: whoever holds it may create
    /// the first account, the administrator.
    pub fn setup_token(&self) -> Result<Option<String>> {
        if !self.catalog.has_no_account()? {
            *lock(&self.setup) = None;
            return Ok(None);
        }
        let mut setup = lock(&self.setup);
        let token = match &*setup {
            Some((token, at)) if at.elapsed() < SETUP_TTL => token.clone(),
            _ => {
                let mut bytes = [0u8; 16];
                shard_crypto::fill_random(&mut bytes)?;
                let token = hex::encode(bytes);
                *setup = Some((token.clone(), Instant::now()));
                token
            }
        };
        Ok(Some(token))
    }

    /// Spends the setup token (constant-time comparison): true if `token` is the live one and
    /// the node still has no account.
    pub fn spend_setup(&self, token: &str) -> Result<bool> {
        let mut setup = lock(&self.setup);
        let good = setup.as_ref().is_some_and(|(live, at)| {
            at.elapsed() < SETUP_TTL && shard_crypto::ct_eq(live.as_bytes(), token.as_bytes())
        });
        if good && self.catalog.has_no_account()? {
            *setup = None;
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether `user` is the node's administrator (its first account).
    pub fn is_admin(&self, user: &str) -> Result<bool> {
        Ok(self.catalog.account(user)?.is_some_and(|a| a.admin))
    }

    /// The catalog heads this node keeps for others.
    pub fn heads(&self) -> Option<&Arc<shard_store::HeadStore>> {
        self.service.heads()
    }

    /// Why the last catalog snapshot of `account` could not be written, if it could not.
    pub fn snapshot_failure(&self, account: shard_store::AccountId) -> Option<String> {
        lock(&self.snapshot_failures).get(&account).cloned()
    }

    /// Locks `user`'s vault (or every vault): its keys are dropped and zeroized.
    pub fn logout(&self, user: Option<&str>) -> bool {
        match user {
            Some(u) => self.sessions.remove(u),
            None => {
                let any = !self.sessions.users().is_empty();
                self.sessions.clear();
                any
            }
        }
    }

    /// The web UI's settings.
    pub fn web_config(&self) -> crate::home::WebConfig {
        lock(&self.config).web.clone()
    }

    /// The share store's settings.
    pub fn store_config(&self) -> crate::home::StoreConfig {
        lock(&self.config).store.clone()
    }

    /// The scrub and repair settings.
    pub fn health_config(&self) -> crate::home::HealthConfig {
        lock(&self.config).health.clone()
    }

    /// The config's `[backup]` section.
    pub fn backup_config(&self) -> crate::home::BackupConfig {
        lock(&self.config).backup.clone()
    }

    /// The config's `[vault]` section.
    pub fn vault_config(&self) -> crate::home::VaultConfig {
        lock(&self.config).vault.clone()
    }

    /// Wakes the automatic repair now.
    pub fn wake_health(&self) {
        self.health_wake.notify_one();
    }

    pub(crate) async fn health_woken(&self) {
        self.health_wake.notified().await;
    }

    /// Paired peers that are offline and were last seen more than `after` ago.
    pub fn gone_for(&self, after: Duration) -> Vec<NodeId> {
        let now = unix_now();
        lock(&self.peers)
            .iter()
            .filter(|(_, p)| p.client.as_ref().is_none_or(|c| c.is_closed()))
            .filter(|(_, p)| {
                let seen = p.record.last_seen.unwrap_or(0);
                u64::try_from(now.saturating_sub(seen)).unwrap_or(0) > after.as_secs()
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// The paired peer that `text` names: its id (full or short, any case, with or without
    /// dashes) or its name, if only one peer has it.
    pub fn resolve_peer(&self, text: &str) -> Result<NodeId> {
        let norm = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_uppercase())
                .collect()
        };
        let wanted = norm(text);
        let peers = lock(&self.peers);
        let matches: Vec<NodeId> = peers
            .iter()
            .filter(|(id, p)| {
                p.record.name == text
                    || (!wanted.is_empty()
                        && (norm(&fingerprint(id)) == wanted
                            || norm(&short_fingerprint(id)) == wanted))
            })
            .map(|(id, _)| *id)
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::UnknownPeer(format!(
                "no paired peer is called or has the id {text:?}"
            ))),
            _ => Err(Error::UnknownPeer(format!(
                "several paired peers are called {text:?}; give its id instead"
            ))),
        }
    }

    /// Remembers how the latest catalog snapshot of `account` went: a failure stays until a
    /// later snapshot succeeds (`check` reports it).
    pub(crate) fn record_snapshot(
        &self,
        account: shard_store::AccountId,
        outcome: std::result::Result<(), String>,
    ) {
        let mut failures = lock(&self.snapshot_failures);
        match outcome {
            Ok(()) => {
                failures.remove(&account);
            }
            Err(e) => {
                failures.insert(account, e);
            }
        }
    }

    /// Runs `task` with the node's other tasks (joined at shutdown).
    pub(crate) fn spawn_task(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.spawn(task);
    }

    /// The display name of paired peer `id`.
    /// The ids of the paired peers.
    pub(crate) fn paired_ids(&self) -> Vec<NodeId> {
        lock(&self.peers).keys().copied().collect()
    }

    pub(crate) fn paired_name(&self, id: &NodeId) -> Option<String> {
        lock(&self.peers).get(id).map(|p| p.record.name.clone())
    }

    /// Forgets paired peer `id` (its connection, its record) and lets health look again.
    pub(crate) fn forget_peer(&self, id: &NodeId, name: &str) -> Result<()> {
        lock(&self.peers).remove(id);
        self.catalog.remove_peer(id)?;
        tracing::info!("forgot peer {name} ({})", fingerprint(id));
        self.wake_health();
        Ok(())
    }

    /// The node's accounts, and which are unlocked.
    pub fn accounts(&self) -> Result<Vec<crate::accounts::AccountInfo>> {
        crate::accounts::list(&self.catalog, &self.sessions.users())
    }

    /// Logged-in users.
    pub fn users(&self) -> Vec<String> {
        self.sessions.users()
    }

    /// The session a request acts for.
    pub fn session(&self, user: Option<&str>) -> Result<Arc<Session>> {
        self.sessions.pick(user).map_err(|p| {
            Error::NotLoggedIn(match p {
                Pick::None => {
                    "no account is unlocked on this node; run `shard login USER` first".into()
                }
                Pick::Ambiguous => "several accounts are unlocked; say which with --user".into(),
                Pick::NotLoggedIn(u) => {
                    format!("account {u:?} is not unlocked; run `shard login {u}`")
                }
            })
        })
    }

    /// Whether `session` is still the unlocked session of its account (not logged out, and
    /// not replaced by a new login): long work holding a session's keys checks this as it goes.
    pub fn is_current(&self, session: &Session) -> bool {
        self.sessions
            .pick(Some(&session.user))
            .is_ok_and(|current| std::ptr::eq(Arc::as_ptr(&current), session))
    }

    /// A new invite code for this node, valid for `ttl` (10 minutes by default, at most an hour).
    pub fn invite(&self, ttl: Option<Duration>) -> Result<Invite> {
        let ttl = ttl
            .unwrap_or(DEFAULT_INVITE_TTL)
            .min(Duration::from_secs(3600));
        // The relay goes in the code only when it is not a public one (a joiner on the public
        // relays finds the inviter through its own).
        let iroh = self.iroh_route().map(|mut r| {
            if self.public_relays {
                r.relay = None;
            }
            r
        });
        Ok(self
            .invites
            .create(self.node_id(), self.advertised.clone(), iroh, ttl)?)
    }

    /// Pairs with the node that made `code`: both pin each other's key and name.
    pub async fn join(&self, code: &str) -> Result<PeerStatus> {
        let invite = Invite::decode(code)?;
        if invite.node == self.node_id() {
            return Err(NetError::InvalidInvite("it was made by this very node").into());
        }
        if invite.is_expired() {
            return Err(
                NetError::InvalidInvite("it expired; ask for a new one (`shard invite`)").into(),
            );
        }
        let key = invite.key();
        let mut routes: Vec<Route> = invite.addrs.iter().copied().map(Route::Tcp).collect();
        if let Some(iroh) = &invite.iroh {
            if self.wan.is_some() {
                routes.push(Route::Iroh(iroh.clone()));
            } else if routes.is_empty() {
                return Err(NetError::Relay(
                    "the code reaches its node through a relay only, and this node runs \
                     without relays (--relay none); start it with a relay"
                        .into(),
                )
                .into());
            }
        }
        // A code that reaches its node through a relay this node does not contact (a
        // plain-HTTP one not its own): said if nothing else answers, rather than "timed out".
        // (Still dialed through this node's own relays: the inviter may be at one of them
        // under another spelling.)
        let unusable_relay = match (&self.wan, &invite.iroh) {
            (Some(wan), Some(iroh)) => iroh
                .relay
                .clone()
                .filter(|relay| wan.usable_relay(relay).is_none()),
            _ => None,
        };
        // Every route at once (the inviter's LAN addresses may mean nothing from another
        // home); the first handshake wins. An invite is single-use: a second route's
        // handshake may be refused because the first spent it, so a refusal only counts when
        // no route succeeds.
        let hello = self.hello();
        let mut attempts = JoinSet::new();
        let lan = routes.iter().any(|r| matches!(r, Route::Tcp(_)));
        for route in routes {
            let transport = self.transport.clone();
            let hello = hello.clone();
            let key = key.clone();
            let limit = route_timeout(&route, self.options.handshake_timeout);
            let node = invite.node;
            attempts.spawn(async move {
                if lan && matches!(route, Route::Iroh(_)) {
                    // A head start for the LAN: two nodes in one house pair over TCP.
                    tokio::time::sleep(IROH_HEAD_START).await;
                }
                let attempt = tokio::time::timeout(
                    limit,
                    transport.connect(&route, &hello, Some(node), Some(&key)),
                )
                .await
                .unwrap_or(Err(NetError::Timeout(limit)));
                (route, attempt)
            });
        }
        let mut refused: Option<Error> = None;
        let mut last: Error = NetError::InvalidInvite("it lists no address").into();
        let mut channel = None;
        while let Some(joined) = attempts.join_next().await {
            match joined {
                Ok((_, Ok(c))) => {
                    channel = Some(c);
                    break;
                }
                // Its key filter said no before any handshake: no code of the inviter's is
                // waiting (this one was used, has expired, was lost with a restart, or is not
                // its), or its places for connections were full.
                Ok((Route::Iroh(_), Err(NetError::Refused(why))))
                    if why == shard_net::wan::NOT_LET_IN =>
                {
                    refused = Some(
                        NetError::Refused(
                            "the inviting node let this node no further than its key check: no \
                             invite code of its is waiting (this one was already used, has \
                             expired, or was made before it restarted), or it is at its limit \
                             of connections; make a new code with `shard invite` and try again"
                                .into(),
                        )
                        .into(),
                    );
                }
                // The inviter answered and said no (or another node answered).
                Ok((_, Err(e @ (NetError::Refused(_) | NetError::UnexpectedPeer { .. })))) => {
                    refused = Some(e.into());
                }
                Ok((_, Err(e))) => last = e.into(),
                Err(_) => {}
            }
        }
        attempts.abort_all();
        let Some(channel) = channel else {
            // (Another node answering at a LAN address of the code is not the inviter's no.)
            let inviter_said_no = matches!(&refused, Some(Error::Net(NetError::Refused(_))));
            if !inviter_said_no && let Some(relay) = unusable_relay {
                return Err(Error::UnusableRelay { relay });
            }
            return Err(refused.unwrap_or(last));
        };
        let mut addrs: Vec<String> = invite.addrs.iter().map(ToString::to_string).collect();
        for said in &channel.peer.hello.listen {
            match Route::parse(said) {
                // The iroh key pinned is the one in the code (the inviter's own word, checked
                // by the handshake the code keys); its hello may only add the relay.
                Some(Route::Iroh(r)) => {
                    if invite.iroh.as_ref().is_none_or(|i| i.key == r.key) {
                        addrs.push(Route::Iroh(r).to_string());
                    } else {
                        tracing::warn!(
                            "the inviting node's hello names another iroh key than its code; pinning the code's"
                        );
                    }
                }
                Some(Route::Tcp(_)) => addrs.push(said.clone()),
                None => {}
            }
        }
        if let Some(iroh) = &invite.iroh
            && !addrs
                .iter()
                .any(|a| matches!(Route::parse(a), Some(Route::Iroh(_))))
        {
            addrs.push(Route::Iroh(iroh.clone()).to_string());
        }
        let mut seen = std::collections::HashSet::new();
        addrs.retain(|a| seen.insert(a.clone()));
        self.own_iroh_keys(
            &mut lock(&self.peers),
            &channel.peer.id,
            &mut addrs,
            channel.peer.transport_key,
        );
        let record = PeerRecord {
            id: channel.peer.id,
            name: channel.peer.hello.name.clone(),
            addrs,
            last_seen: Some(unix_now()),
        };
        self.catalog.upsert_peer(&record)?;
        self.add_peer(record);
        tracing::info!(
            "paired with {} ({}) over {}",
            channel.peer.hello.name,
            fingerprint(&channel.peer.id),
            channel.peer.path().as_str()
        );
        let status = lock(&self.peers).get(&channel.peer.id).map(status_of);
        status.ok_or(Error::Net(NetError::Disconnected))
    }

    /// Starts tracking (and connecting to) a pinned peer, unless already tracked.
    fn add_peer(&self, record: PeerRecord) {
        let id = record.id;
        let mut peers = lock(&self.peers);
        if let Some(existing) = peers.get_mut(&id) {
            existing.record = record;
            return;
        }
        peers.insert(
            id,
            PeerState {
                record,
                client: None,
                rtt: None,
                usage: None,
                last_error: None,
            },
        );
        drop(peers);
        if let Some(me) = self.me.upgrade() {
            self.spawn(connector(me, id));
        }
    }

    fn update_peer(&self, id: &NodeId, f: impl FnOnce(&mut PeerState)) -> bool {
        lock(&self.peers).get_mut(id).map(f).is_some()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn status_of(p: &PeerState) -> PeerStatus {
    let client = p.client.as_ref().filter(|c| !c.is_closed());
    PeerStatus {
        id: fingerprint(&p.record.id),
        short_id: short_fingerprint(&p.record.id),
        name: p.record.name.clone(),
        online: client.is_some(),
        addr: client.map(|c| c.peer().addr.to_string()),
        path: client.map(|c| c.peer().path().as_str().to_string()),
        rtt_ms: p.rtt.map(|d| d.as_secs_f64() * 1e3),
        used: p.usage.map(|u| u.used),
        quota: p.usage.and_then(|u| u.quota),
        shares: p.usage.map(|u| u.shares),
        addrs: p.record.addrs.clone(),
        last_error: p.last_error.clone(),
    }
}

impl Gatekeeper for Node {
    fn pairing_key(&self, invite_id: &[u8; 8]) -> std::result::Result<PairingKey, String> {
        self.invites.key_for(invite_id)
    }

    fn admit(&self, peer: &PeerInfo, paired: Option<&[u8; 8]>) -> std::result::Result<(), String> {
        if let Some(invite) = paired {
            if !self.invites.spend(invite) {
                return Err("this invite code was already used or just expired".into());
            }
            // Over iroh, the key the connection proved is the one pinned; a hello naming
            // another (a joiner pointing this node at somebody else) is not taken.
            let mut addrs: Vec<String> = peer
                .hello
                .listen
                .iter()
                .filter(|a| match (Route::parse(a), peer.transport_key) {
                    (Some(Route::Iroh(r)), Some(proved)) => r.key == proved,
                    _ => true,
                })
                .cloned()
                .collect();
            if let Some(proved) = peer.transport_key
                && !addrs
                    .iter()
                    .any(|a| matches!(Route::parse(a), Some(Route::Iroh(_))))
            {
                addrs.insert(
                    0,
                    Route::Iroh(IrohRoute {
                        key: proved,
                        relay: None,
                    })
                    .to_string(),
                );
            }
            self.own_iroh_keys(
                &mut lock(&self.peers),
                &peer.id,
                &mut addrs,
                peer.transport_key,
            );
            let record = PeerRecord {
                id: peer.id,
                name: peer.hello.name.clone(),
                addrs,
                last_seen: Some(unix_now()),
            };
            self.catalog
                .upsert_peer(&record)
                .map_err(|e| format!("the inviting node could not record the pairing: {e}"))?;
            tracing::info!(
                "paired with {} ({})",
                peer.hello.name,
                fingerprint(&peer.id)
            );
            self.add_peer(record);
            return Ok(());
        }
        if lock(&self.peers).contains_key(&peer.id) {
            self.check_transport_key(peer)
        } else {
            Err(format!(
                "node {} is not paired with this node; pair first (`shard invite` here, `shard join CODE` there)",
                fingerprint(&peer.id)
            ))
        }
    }
}

/// The iroh key of an iroh route, if `addr` is one.
fn iroh_key(addr: &str) -> Option<[u8; 32]> {
    match Route::parse(addr) {
        Some(Route::Iroh(r)) => Some(r.key),
        _ => None,
    }
}

impl Node {
    /// Whether `ip` is where a paired peer was last seen: the IP of its latest TCP address
    /// (only the latest: a forged sighting relayed to the peer can pin a new one, and must
    /// not collect many), or the address a relayed connection from its iroh key is counted
    /// under.
    fn is_peer_address(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        lock(&self.peers).values().any(|p| {
            let latest_tcp = p
                .record
                .addrs
                .iter()
                .filter_map(|a| Route::parse(a))
                .find_map(|r| match r {
                    Route::Tcp(addr) => Some(addr.ip().to_canonical()),
                    Route::Iroh(_) => None,
                });
            latest_tcp == Some(ip)
                || p.record.addrs.iter().any(|a| {
                    iroh_key(a).is_some_and(|key| shard_net::wan::relayed_from(&key).ip() == ip)
                })
        })
    }

    /// Keeps one iroh key with one peer. A key named but not proved (a hello over TCP, a code)
    /// that is pinned for another peer is dropped from `addrs` — else a paired peer could
    /// attach its relay to another peer's key and draw that peer's traffic through it. A key
    /// `proved` by the connection wins: it is taken off the other peer's record (whose claim
    /// was never proved, and is now shown false).
    fn own_iroh_keys(
        &self,
        peers: &mut HashMap<NodeId, PeerState>,
        id: &NodeId,
        addrs: &mut Vec<String>,
        proved: Option<[u8; 32]>,
    ) {
        let mut changed = Vec::new();
        addrs.retain(|a| {
            let Some(key) = iroh_key(a) else {
                return true;
            };
            let holders: Vec<NodeId> = peers
                .iter()
                .filter(|(other, p)| {
                    *other != id && p.record.addrs.iter().any(|b| iroh_key(b) == Some(key))
                })
                .map(|(other, _)| *other)
                .collect();
            if holders.is_empty() {
                return true;
            }
            if proved != Some(key) {
                tracing::warn!(
                    "{} names iroh key {}, which is pinned for another peer; not taken",
                    fingerprint(id),
                    hex_short(&key)
                );
                return false;
            }
            for other in holders {
                if let Some(p) = peers.get_mut(&other) {
                    tracing::warn!(
                        "{} proved iroh key {}, which {} had named as its own; taken off its record",
                        fingerprint(id),
                        hex_short(&key),
                        p.record.name
                    );
                    p.record.addrs.retain(|b| iroh_key(b) != Some(key));
                    changed.push(p.record.clone());
                }
            }
            true
        });
        for record in changed {
            if let Err(e) = self.catalog.upsert_peer(&record) {
                tracing::warn!("could not update the record of {}: {e}", record.name);
            }
        }
    }

    /// A paired peer that came over iroh must show the iroh key pinned for it; one with none
    /// pinned yet (paired on the LAN, or before it had one) has this one pinned now — its
    /// Noise key, checked already, vouches for it.
    fn check_transport_key(&self, peer: &PeerInfo) -> std::result::Result<(), String> {
        // Over TCP, the key its (Noise-authenticated) hello names; over iroh, the one the
        // connection proved.
        let said_route = peer
            .hello
            .listen
            .iter()
            .find_map(|a| match Route::parse(a) {
                Some(Route::Iroh(r)) => Some(r),
                _ => None,
            });
        let Some(key) = peer.transport_key.or(said_route.as_ref().map(|r| r.key)) else {
            return Ok(());
        };
        let said = said_route.filter(|r| r.key == key).and_then(|r| r.relay);
        let record = {
            let mut peers = lock(&self.peers);
            let Some(p) = peers.get_mut(&peer.id) else {
                return Err("not paired".into());
            };
            let pinned =
                p.record
                    .addrs
                    .iter()
                    .enumerate()
                    .find_map(|(i, a)| match Route::parse(a) {
                        Some(Route::Iroh(r)) => Some((i, r)),
                        _ => None,
                    });
            match pinned {
                // A hello over TCP naming another key than the pinned one: not proof of
                // anything, keep the pin and say nothing more.
                Some((_, r)) if r.key != key && peer.transport_key.is_none() => return Ok(()),
                Some((_, r)) if r.key != key => {
                    tracing::warn!(
                        "refused {} ({}): it came over iroh with key {}, but key {} is pinned for it",
                        p.record.name,
                        fingerprint(&peer.id),
                        hex_short(&key),
                        hex_short(&r.key),
                    );
                    return Err(format!(
                        "node {} showed iroh key {}, not the one pinned for it ({}); unpair and pair it again if it really changed",
                        fingerprint(&peer.id),
                        hex_short(&key),
                        hex_short(&r.key)
                    ));
                }
                Some((i, r)) => {
                    // The same key; note its relay if it moved to another.
                    if said.is_none() || said == r.relay {
                        return Ok(());
                    }
                    let route = Route::Iroh(IrohRoute { key, relay: said }).to_string();
                    if let Some(slot) = p.record.addrs.get_mut(i) {
                        *slot = route;
                    }
                    p.record.clone()
                }
                None => {
                    let mut new = vec![Route::Iroh(IrohRoute { key, relay: said }).to_string()];
                    self.own_iroh_keys(&mut peers, &peer.id, &mut new, peer.transport_key);
                    let Some(p) = peers.get_mut(&peer.id) else {
                        return Err("not paired".into());
                    };
                    if new.is_empty() {
                        return Ok(());
                    }
                    tracing::info!(
                        "pinned the iroh key {} of {}",
                        hex_short(&key),
                        p.record.name
                    );
                    p.record.addrs.extend(new);
                    p.record.clone()
                }
            }
        };
        if let Err(e) = self.catalog.upsert_peer(&record) {
            tracing::warn!("could not record the iroh key of {}: {e}", record.name);
        }
        Ok(())
    }
}

impl Node {
    /// Whether a connection over iroh from `key` may go on to the handshake: a paired peer's
    /// pinned key, or anyone while an invite is pending (the joiner's key is not known yet).
    fn lets_in_iroh(&self, key: &[u8; 32]) -> bool {
        if self.invites.any_pending() {
            return true;
        }
        lock(&self.peers)
            .values()
            .any(|p| p.record.addrs.iter().any(|a| iroh_key(a) == Some(*key)))
    }
}

/// The first 8 bytes of a key in hex, for logs.
fn hex_short(key: &[u8; 32]) -> String {
    key.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// How often a peer reached over iroh is tried on its LAN addresses.
const LAN_RETRY: Duration = Duration::from_secs(60);

/// How long the LAN gets before the iroh route is tried as well.
const IROH_HEAD_START: Duration = Duration::from_millis(300);

/// How long a handshake on `route` may take: over iroh it may first go through a relay (and
/// its TLS), so it gets longer than a LAN handshake.
fn route_timeout(route: &Route, handshake_timeout: Duration) -> Duration {
    match route {
        Route::Tcp(_) => handshake_timeout,
        Route::Iroh(_) => handshake_timeout.max(Duration::from_secs(15)),
    }
}

/// How long a connection has to answer when its peer is announced at another address too.
const SIGHTING_PING: Duration = Duration::from_secs(2);

/// Handshakes in progress at once (strangers' included: before a handshake nobody is known).
pub const MAX_HANDSHAKES: usize = 64;
/// Of those, kept for connections from where a paired peer was last seen (its pinned address's
/// IP, or its iroh key): strangers filling every other place from many addresses still leave
/// the node's own peers room.
pub const HANDSHAKES_FOR_PEERS: usize = 16;
/// Handshakes in progress at once from one address.
pub const HANDSHAKES_PER_ADDRESS: usize = 8;
/// Of the places kept for peers, how many one address may hold.
pub const KEPT_HANDSHAKES_PER_ADDRESS: usize = 4;
/// Connections one paired node may hold open here at once.
pub const CONNECTIONS_PER_PEER: usize = 4;
/// File descriptors kept back from peer connections for the control API, the web UI, the
/// store and the databases.
const RESERVED_FDS: u64 = 256;

/// Counts held while something lasts (handshakes per address, connections per peer): the
/// count drops when the guard does.
struct Held<K: std::hash::Hash + Eq + Clone> {
    key: K,
    counts: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: std::hash::Hash + Eq + Clone> Held<K> {
    /// One more for `key`, unless it has `max` already.
    fn take(counts: &Arc<Mutex<HashMap<K, usize>>>, key: K, max: usize) -> Option<Self> {
        let mut map = lock(counts);
        let count = map.entry(key.clone()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Self {
            key,
            counts: counts.clone(),
        })
    }
}

impl<K: std::hash::Hash + Eq + Clone> Drop for Held<K> {
    fn drop(&mut self) {
        let mut map = lock(&self.counts);
        if let Some(count) = map.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// The connections each paired peer has open to this node, oldest first: at most
/// [`CONNECTIONS_PER_PEER`]; a new one closes the oldest.
#[derive(Default)]
struct PeerConnections {
    /// Per peer: (connection number, how to tell it to close), oldest first.
    open: Mutex<HashMap<NodeId, std::collections::VecDeque<OpenConnection>>>,
    next: std::sync::atomic::AtomicU64,
}

impl PeerConnections {
    /// A place for a new connection of `peer`, and whether an older one was told to close
    /// to make room.
    fn take(self: &Arc<Self>, peer: NodeId) -> (PeerSlot, bool) {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let close = Arc::new(tokio::sync::Notify::new());
        let mut open = lock(&self.open);
        let mine = open.entry(peer).or_default();
        mine.push_back((id, close.clone()));
        let mut evicted = false;
        while mine.len() > CONNECTIONS_PER_PEER {
            if let Some((_, oldest)) = mine.pop_front() {
                // A permit is kept if that connection is not waiting yet.
                oldest.notify_one();
                evicted = true;
            }
        }
        let slot = PeerSlot {
            peer,
            id,
            close,
            all: self.clone(),
        };
        (slot, evicted)
    }
}

/// A connection's number, and how to tell it to close.
type OpenConnection = (u64, Arc<tokio::sync::Notify>);

/// One connection's place among its peer's; given back when dropped.
struct PeerSlot {
    peer: NodeId,
    id: u64,
    close: Arc<tokio::sync::Notify>,
    all: Arc<PeerConnections>,
}

impl PeerSlot {
    /// Resolves when a newer connection of the same peer needs the place.
    async fn closed(&self) {
        self.close.notified().await;
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.all.open);
        if let Some(mine) = open.get_mut(&self.peer) {
            mine.retain(|(id, _)| *id != self.id);
            if mine.is_empty() {
                open.remove(&self.peer);
            }
        }
    }
}

/// Logs a line at most once a second, saying how many were left out meanwhile (a storm of
/// refused connections must not become a storm of log lines).
struct Quiet {
    last: Mutex<Option<Instant>>,
    skipped: std::sync::atomic::AtomicU64,
}

impl Quiet {
    fn new() -> Self {
        Self {
            last: Mutex::new(None),
            skipped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn warn(&self, line: impl FnOnce() -> String) {
        let mut last = lock(&self.last);
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            self.skipped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        *last = Some(Instant::now());
        let skipped = self.skipped.swap(0, std::sync::atomic::Ordering::Relaxed);
        if skipped > 0 {
            tracing::warn!("{} ({skipped} more like it in the last second)", line());
        } else {
            tracing::warn!("{}", line());
        }
    }
}

/// Accepts peer connections within bounds, so that a stranger's flood cannot take the
/// descriptors the control API, the web UI and the store need: at most [`MAX_HANDSHAKES`]
/// handshakes at once ([`HANDSHAKES_PER_ADDRESS`] from one address), each within the
/// handshake timeout, and peer connections within the descriptors left after
/// [`RESERVED_FDS`]. Connection tasks are reaped as they end.
async fn accept_loop(node: Arc<Node>, mut listener: Box<dyn Listener>, max_connections: usize) {
    let mut stop = node.shutdown_signal();
    let handshakes = Arc::new(tokio::sync::Semaphore::new(
        MAX_HANDSHAKES - HANDSHAKES_FOR_PEERS,
    ));
    let for_peers = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_FOR_PEERS));
    let kept_per_address: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let connections = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let per_address: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let quiet = Arc::new(Quiet::new());
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        while conns.try_join_next().is_some() {}
        let incoming = match accepted {
            Ok(incoming) => incoming,
            Err(e) => {
                quiet.warn(|| format!("accepting a connection failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over a bound: closed at once, before any work.
        let from = incoming.from;
        let Ok(connection) = connections.clone().try_acquire_owned() else {
            quiet.warn(|| {
                format!("refused a connection from {from}: {max_connections} connections open")
            });
            continue;
        };
        let handshake = match handshakes.clone().try_acquire_owned() {
            Ok(permit) => Some((permit, None)),
            Err(_) if node.is_peer_address(from.ip()) => {
                Held::take(&kept_per_address, from.ip(), KEPT_HANDSHAKES_PER_ADDRESS).and_then(
                    |kept| {
                        let permit = for_peers.clone().try_acquire_owned().ok()?;
                        Some((permit, Some(kept)))
                    },
                )
            }
            Err(_) => None,
        };
        let Some(handshake) = handshake else {
            quiet.warn(|| {
                format!("refused a connection from {from}: {MAX_HANDSHAKES} handshakes in progress")
            });
            continue;
        };
        let Some(from_here) = Held::take(&per_address, from.ip(), HANDSHAKES_PER_ADDRESS) else {
            quiet.warn(|| {
                format!(
                    "refused a connection from {from}: {HANDSHAKES_PER_ADDRESS} handshakes in progress from that address"
                )
            });
            continue;
        };
        let (node, quiet) = (node.clone(), quiet.clone());
        conns.spawn(async move {
            let _connection = connection;
            inbound(node, incoming, (handshake, from_here), quiet).await;
        });
    }
    // Requests in flight finish (the node's stop waits, within its grace).
    while conns.join_next().await.is_some() {}
}

async fn inbound(
    node: Arc<Node>,
    incoming: Incoming,
    handshaking: (
        (tokio::sync::OwnedSemaphorePermit, Option<Held<IpAddr>>),
        Held<IpAddr>,
    ),
    quiet: Arc<Quiet>,
) {
    let from = incoming.from;
    let handshake = incoming.authenticate(node.hello(), node.clone());
    let outcome = tokio::time::timeout(node.options.handshake_timeout, handshake).await;
    drop(handshaking);
    match outcome {
        Ok(Ok(channel)) => {
            let (slot, evicted) = node.inbound_per_peer.take(channel.peer.id);
            if evicted {
                // The newest connection wins, so copies of a node's key (a stolen home) cannot
                // hold every place and lock the real node out; they can only take turns with it.
                quiet.warn(|| {
                    format!(
                        "{} ({from}) opened more than {CONNECTIONS_PER_PEER} connections: closed its oldest (if this repeats, its key may be in use on two machines)",
                        channel.peer.hello.name
                    )
                });
            }
            tracing::debug!("serving {} ({from})", channel.peer.hello.name);
            // A newer connection of the same peer that needs the place ends this one at
            // once: dropping the service's future aborts its writer and frees the answers it
            // held (a peer must not keep closed connections' memory by opening new ones).
            tokio::select! {
                () = serve_channel(
                    channel,
                    node.service.clone(),
                    node.shutdown_signal(),
                    node.options.idle_timeout,
                ) => {}
                () = slot.closed() => tracing::debug!("closed an older connection of a peer"),
            }
            drop(slot);
        }
        Ok(Err(e)) => quiet.warn(|| format!("connection from {from} closed: {e}")),
        Err(_) => quiet.warn(|| {
            format!(
                "connection from {from} closed: no handshake within {:?}",
                node.options.handshake_timeout
            )
        }),
    }
}

/// What one round of dialing a peer came to.
enum Dialed {
    Connected(Box<shard_net::transport::Connection>),
    /// Nothing yet (waited out the backoff, or new addresses appeared): try again.
    Again,
    Stop,
}

/// Dials every address known for `id` at once; the first successful handshake wins (an old
/// address nobody answers on must not hold up the new one). On failure, records why and waits
/// out the backoff (or a sighting).
async fn dial(
    node: &Arc<Node>,
    id: NodeId,
    waker: &tokio::sync::Notify,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
) -> Dialed {
    let mut routes = node.candidate_routes(&id);
    let mut attempts = JoinSet::new();
    handshakes(node, id, &routes, &mut attempts);
    let mut channel = None;
    // Every address's failure, so `shard peers` shows them all (one may be an impostor's).
    let mut failures: Vec<String> = Vec::new();
    while channel.is_none() {
        tokio::select! {
            joined = attempts.join_next() => match joined {
                None => break,
                Some(joined) => match outcome(joined) {
                    Some(Ok(c)) => channel = Some(c),
                    Some(Err(failure)) => failures.push(failure),
                    None => {}
                },
            },
            _ = waker.notified() => {
                // Seen at an address not being tried: try it too, alongside the attempts
                // under way (a sighting is anyone's word, and forged ones every 200 ms must
                // not keep cancelling a dial that takes seconds, as an iroh one does).
                let new: Vec<Route> = node
                    .candidate_routes(&id)
                    .into_iter()
                    .filter(|r| !routes.contains(r))
                    .take(MAX_ROUTES_PER_DIAL.saturating_sub(routes.len()))
                    .collect();
                handshakes(node, id, &new, &mut attempts);
                routes.extend(new);
            }
            _ = stop.wait_for(|s| *s) => return Dialed::Stop,
        }
    }
    attempts.abort_all();
    if let Some(channel) = channel {
        *backoff = Duration::from_secs(1);
        return Dialed::Connected(Box::new(channel));
    }
    let failure = if failures.is_empty() {
        "no address known".to_string()
    } else {
        failures.join("; ")
    };
    node.update_peer(&id, |p| p.last_error = Some(failure));
    tokio::select! {
        _ = tokio::time::sleep(*backoff) => {}
        _ = waker.notified() => {}
        _ = stop.wait_for(|s| *s) => return Dialed::Stop,
    }
    *backoff = (*backoff * 2).min(node.options.max_backoff);
    Dialed::Again
}

/// How many routes one dial tries at most (sightings while it runs add theirs up to this).
const MAX_ROUTES_PER_DIAL: usize = 64;

/// A finished or running handshake per route.
type Attempts = JoinSet<(Route, shard_net::Result<shard_net::transport::Connection>)>;

/// One handshake attempt per route added to `attempts`, at once (iroh after the LAN's head
/// start), each within its timeout.
fn handshakes(node: &Arc<Node>, id: NodeId, routes: &[Route], attempts: &mut Attempts) {
    let lan = routes.iter().any(|r| matches!(r, Route::Tcp(_)));
    for route in routes.iter().cloned() {
        let node = node.clone();
        attempts.spawn(async move {
            if lan && matches!(route, Route::Iroh(_)) {
                tokio::time::sleep(IROH_HEAD_START).await;
            }
            let limit = route_timeout(&route, node.options.handshake_timeout);
            let hello = node.hello();
            let attempt = tokio::time::timeout(
                limit,
                node.transport.connect(&route, &hello, Some(id), None),
            )
            .await
            .unwrap_or(Err(NetError::Timeout(limit)));
            (route, attempt)
        });
    }
}

/// A finished attempt: the connection, or the failure as `shard peers` shows it (`None` for
/// a task that was cancelled).
fn outcome(
    joined: std::result::Result<
        (Route, shard_net::Result<shard_net::transport::Connection>),
        tokio::task::JoinError,
    >,
) -> Option<std::result::Result<shard_net::transport::Connection, String>> {
    let name = |r: &Route| match r {
        Route::Tcp(a) => a.to_string(),
        Route::Iroh(_) => "iroh".to_string(),
    };
    match joined {
        Ok((_, Ok(c))) => Some(Ok(c)),
        Ok((route, Err(NetError::Timeout(_)))) => Some(Err(format!("{}: no answer", name(&route)))),
        Ok((route, Err(e))) => Some(Err(format!("{}: {e}", name(&route)))),
        Err(_) => None,
    }
}

/// The first of `addrs` where a handshake with the pinned key of `id` succeeds, or every
/// address's failure.
async fn first_handshake(
    node: &Arc<Node>,
    id: NodeId,
    addrs: &[SocketAddr],
) -> std::result::Result<shard_net::transport::Connection, Vec<String>> {
    let routes: Vec<Route> = addrs.iter().copied().map(Route::Tcp).collect();
    let mut attempts = JoinSet::new();
    handshakes(node, id, &routes, &mut attempts);
    let mut failures = Vec::new();
    while let Some(joined) = attempts.join_next().await {
        match outcome(joined) {
            Some(Ok(c)) => return Ok(c),
            Some(Err(failure)) => failures.push(failure),
            None => {}
        }
    }
    Err(failures)
}

/// Keeps a connection to one paired peer: connect, ping, and on loss retry with backoff.
async fn connector(node: Arc<Node>, id: NodeId) {
    let mut stop = node.shutdown_signal();
    let waker = lock(&node.wakers).entry(id).or_default().clone();
    let mut backoff = Duration::from_secs(1);
    // Wait before redialing a peer whose connections end soon after they start (one that
    // accepts and hangs up must not make this node dial it in a loop).
    let mut flapping = Duration::ZERO;
    // A connection already made to where the peer was seen anew (it moved).
    let mut moved_to: Option<shard_net::transport::Connection> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        if !lock(&node.peers).contains_key(&id) {
            return;
        }
        let channel = match moved_to.take() {
            Some(channel) => channel,
            None => match dial(&node, id, &waker, &mut stop, &mut backoff).await {
                Dialed::Connected(channel) => *channel,
                Dialed::Again => continue,
                Dialed::Stop => return,
            },
        };
        backoff = Duration::from_secs(1);
        let client = PeerClient::start(channel);
        // A request that waited its whole timeout with nothing heard gives the connection up
        // (the pings, every few seconds, wait the silence timeout); a node told a silence
        // timeout shorter than the client's floor (a test's) gives up as soon.
        client.give_up_after(node.options.silence_timeout);
        let over_iroh = client.peer().probe.is_some();
        if over_iroh {
            tracing::info!(
                "connected to {} over iroh ({})",
                client.peer().hello.name,
                client.peer().path().as_str()
            );
        } else {
            node.repin(&id, client.peer().addr);
            tracing::info!(
                "connected to {} at {}",
                client.peer().hello.name,
                client.peer().addr
            );
        }
        let mut lan_tried = Instant::now();
        if !node.update_peer(&id, |p| {
            p.client = Some(client.clone());
            p.last_error = None;
        }) {
            return;
        }
        settle_with(&node, &client).await;
        // It may report corrupt shares, or end a long absence: let the repair look.
        node.wake_health();
        let started = Instant::now();
        while !client.is_closed() {
            let timeout = node.options.request_timeout;
            let rtt = client.ping(node.options.silence_timeout).await.ok();
            let usage = client.usage(timeout).await.ok();
            let mut persist = None;
            let paired = node.update_peer(&id, |p| {
                if rtt.is_some() {
                    p.rtt = rtt;
                    // Last seen: kept in the catalog (at most once a minute), so a peer's
                    // absence is measured across restarts of this node.
                    let now = unix_now();
                    if p.record
                        .last_seen
                        .is_none_or(|s| now.saturating_sub(s) >= 60)
                    {
                        p.record.last_seen = Some(now);
                        persist = Some(p.record.clone());
                    }
                }
                if usage.is_some() {
                    p.usage = usage;
                }
            });
            if !paired {
                // Unpaired meanwhile (`shard peers rm`).
                return;
            }
            if let Some(record) = persist
                && let Err(e) = node.catalog.upsert_peer(&record)
            {
                tracing::warn!("could not record when {} was last seen: {e}", record.name);
            }
            let mut periodic = false;
            let mut still_here = false;
            let mut seen_elsewhere = tokio::select! {
                _ = tokio::time::sleep(node.options.ping_interval) => {
                    // Over iroh, the LAN path is the better one: try it now and then (the peer
                    // may have come home, or a forwarded address may answer now).
                    if over_iroh && lan_tried.elapsed() >= LAN_RETRY {
                        lan_tried = Instant::now();
                        periodic = true;
                        node.candidate_addrs(&id)
                    } else {
                        Vec::new()
                    }
                }
                // A closed connection is redialed at once, not at the next ping.
                () = client.closed() => Vec::new(),
                _ = waker.notified() => {
                    // Seen again on the LAN: if none of its announced addresses is the one this
                    // connection goes to, it may have moved (DHCP, Wi-Fi to cable).
                    let seen = node.sightings.addresses_of(&id);
                    let here = client.peer().addr.ip();
                    let others: Vec<SocketAddr> =
                        seen.iter().filter(|a| a.ip() != here).copied().collect();
                    if others.is_empty() {
                        Vec::new()
                    } else {
                        // Announced here and elsewhere (a cache may still hold the address it
                        // left, or it has two): the connection decides, below.
                        still_here = seen.iter().any(|a| a.ip() == here);
                        others
                    }
                }
                _ = stop.wait_for(|s| *s) => return,
            };
            // While the connection answers, the peer is still where it was.
            if still_here && client.ping(SIGHTING_PING).await.is_ok() {
                seen_elsewhere.clear();
            }
            if !seen_elsewhere.is_empty() {
                // A sighting is anyone's word: the working connection stays until the new
                // address proves, by a handshake with the pinned key, that the peer is there.
                match first_handshake(&node, id, &seen_elsewhere).await {
                    Ok(channel) => {
                        tracing::info!(
                            "{} moved to {}; switching to it",
                            client.peer().hello.name,
                            channel.peer.addr
                        );
                        moved_to = Some(channel);
                        break;
                    }
                    Err(failures) if periodic => tracing::debug!(
                        "{} is not reachable on its LAN addresses ({}); staying on iroh",
                        client.peer().hello.name,
                        failures.join("; ")
                    ),
                    Err(failures) => tracing::warn!(
                        "{} was announced at {seen_elsewhere:?}, but not there ({}); keeping the connection to {}",
                        client.peer().hello.name,
                        failures.join("; "),
                        client.peer().addr
                    ),
                }
            }
        }
        tracing::info!(
            "lost the connection to {} after {:?}",
            client.peer().hello.name,
            started.elapsed()
        );
        node.update_peer(&id, |p| {
            p.client = None;
            p.last_error = Some("connection closed".into());
        });
        flapping = if started.elapsed() < SHORT_LIVED {
            (flapping * 2)
                .max(Duration::from_millis(500))
                .min(node.options.max_backoff)
        } else {
            Duration::ZERO
        };
        if !flapping.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(flapping) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// A connection that ends sooner than this after it was made counts as flapping.
const SHORT_LIVED: Duration = Duration::from_secs(5);

impl Node {
    /// Puts the address a connection just succeeded on first in the peer's pinned list (and in
    /// the catalog), so the next start tries it first.
    fn repin(&self, id: &NodeId, addr: SocketAddr) {
        let record = {
            let mut peers = lock(&self.peers);
            let Some(p) = peers.get_mut(id) else { return };
            let addr = addr.to_string();
            if p.record.addrs.first() == Some(&addr) {
                return;
            }
            p.record.addrs.retain(|a| *a != addr);
            p.record.addrs.insert(0, addr);
            // At most 8 TCP addresses; the iroh route (the pinned key) is never dropped.
            let mut tcp = 0;
            p.record.addrs.retain(|a| {
                if a.starts_with("iroh:") {
                    return true;
                }
                tcp += 1;
                tcp <= 8
            });
            p.record.clone()
        };
        if let Err(e) = self.catalog.upsert_peer(&record) {
            tracing::warn!("could not record the new address of {}: {e}", record.name);
        }
    }
}

/// Ends the grace period of deleted shares: every hour (and soon after start), shares their
/// owners deleted more than `[store] deleted_grace_days` ago are removed from this node's store,
/// and the catalog forgets the deletions its peers carried out as long ago. First the unlocked
/// accounts' trash is emptied of what has been there longer than `[vault] trash_days`.
async fn expire_loop(node: Arc<Node>) {
    let mut stop = node.shutdown_signal();
    let mut wait = Duration::from_secs(5);
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        wait = Duration::from_secs(3600);
        let expiry = node.expire_trash().await;
        for user in &expiry.busy {
            tracing::debug!("the trash of {user} waits: the account is busy writing");
        }
        for (user, expired) in expiry.removed {
            match expired {
                Ok(r) => tracing::info!(
                    "deleted {} entries of {user}'s trash whose {} days were up",
                    r.removed,
                    node.vault_config().trash_days
                ),
                Err(e) => tracing::warn!("the trash of {user} could not be emptied: {e}"),
            }
        }
        let grace_days = lock(&node.config).store.deleted_grace_days;
        let grace = i64::try_from(grace_days.saturating_mul(86_400)).unwrap_or(i64::MAX);
        let before = unix_now().saturating_sub(grace);
        let store = node.store().clone();
        let catalog = node.catalog.clone();
        let heads = node.heads().cloned();
        let done = tokio::task::spawn_blocking(move || {
            let expired = store.expire(before)?;
            let forgotten = catalog.forget_deletions(before)?;
            if let Some(heads) = heads {
                heads.expire(before)?;
            }
            Ok::<_, shard_store::Error>((expired, forgotten))
        })
        .await;
        match done {
            Ok(Ok(((0, _), _))) => {}
            Ok(Ok(((count, bytes), _))) => tracing::info!(
                "removed {count} deleted shares ({bytes} bytes) whose {grace_days}-day grace period ended"
            ),
            Ok(Err(e)) => tracing::warn!("deleted shares could not be expired: {e}"),
            Err(_) => tracing::warn!("the expiry of deleted shares failed"),
        }
    }
}

/// Carries out the deletions queued for this node's own store.
fn flush_local_deletions(catalog: &Catalog, store: &dyn ShareStore, me: NodeId) {
    let Ok(pending) = catalog.pending_deletions(&me) else {
        return;
    };
    let mut by_vault: HashMap<[u8; 16], Vec<shard_proto::ShareId>> = HashMap::new();
    for (_, vault, share) in &pending {
        by_vault.entry(*vault).or_default().push(*share);
    }
    for (vault, shares) in by_vault {
        let ns = shard_proto::Namespace { owner: me, vault };
        if store.delete(&ns, &shares).is_ok() {
            let done: Vec<_> = shares.into_iter().map(|s| (vault, s)).collect();
            if let Err(e) = catalog.deletions_done(&me, &done) {
                tracing::warn!("could not record local deletions: {e}");
            }
        }
    }
}

/// Settles what this node owes a connected peer for the unlocked accounts: deletions queued
/// while it was away, and hand-overs of recovered vaults it missed. Both need the vault
/// authority's signature, so a locked account's wait for its next login.
async fn settle_with(node: &Node, client: &Arc<PeerClient>) {
    let peer = client.peer().id;
    let name = &client.peer().hello.name;
    let timeout = node.options.request_timeout;
    match node.catalog.pending_adoptions(&peer) {
        Ok(accounts) => {
            for account in accounts {
                let Some(session) = node.sessions.by_account(account) else {
                    continue;
                };
                let former = node.catalog.former_owners(account).unwrap_or_default();
                match client
                    .adopt(session.vault(), former, session.keys.authority(), timeout)
                    .await
                {
                    Ok(moved) => {
                        if let Err(e) = node.catalog.adoption_done(account, &peer) {
                            tracing::warn!("could not record the hand-over by {name}: {e}");
                        }
                        // Its head may be the old node's: a fresh one from here replaces it.
                        if let Some(me) = node.me.upgrade() {
                            me.catalog_changed(&session);
                        }
                        tracing::info!(
                            "{name} handed the vault of {} over to this node ({moved} shares)",
                            session.user
                        );
                    }
                    Err(e) => tracing::warn!("{name} did not hand the vault over yet: {e}"),
                }
            }
        }
        Err(e) => tracing::warn!("could not read the hand-overs owed by {name}: {e}"),
    }
    let Ok(pending) = node.catalog.pending_deletions(&peer) else {
        return;
    };
    let mut by_vault: HashMap<(shard_store::AccountId, [u8; 16]), Vec<shard_proto::ShareId>> =
        HashMap::new();
    for (account, vault, share) in &pending {
        by_vault.entry((*account, *vault)).or_default().push(*share);
    }
    for ((account, vault), shares) in by_vault {
        let Some(session) = node.sessions.by_account(account) else {
            continue;
        };
        for batch in shares.chunks(shard_proto::MAX_IDS_PER_REQUEST) {
            let sent = client
                .delete(
                    vault,
                    batch.to_vec(),
                    false,
                    session.keys.authority(),
                    timeout,
                )
                .await;
            if let Err(e) = sent {
                tracing::warn!("{name} did not take the queued deletions: {e}");
                break;
            }
            let done: Vec<_> = batch.iter().map(|s| (vault, *s)).collect();
            if let Err(e) = node.catalog.deletions_done(&peer, &done) {
                tracing::warn!("could not record deletions on {name}: {e}");
            } else {
                tracing::info!(
                    "deleted {} shares on {name} queued while it was offline",
                    done.len()
                );
            }
        }
    }
}
