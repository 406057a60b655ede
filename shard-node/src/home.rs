//! A node's home folder: its key, configuration, catalog, share store and control API files.
//!
//! ```text
//! <home>/config.toml     name, listen and API addresses, store location, layout and quota
//! <home>/node.key        the X25519 static key pair (mode 0600)
//! <home>/api.token       the control API's bearer token (mode 0600)
//! <home>/api.addr        where the running node's control API listens (written by `serve`)
//! <home>/listen.addr     where the running node listens for peers (written by `serve`)
//! <home>/catalog.db      the owner's catalog
//! <home>/store/          shares kept for others (unless the config puts them elsewhere)
//! <home>/store-index.db  the share store's index (kept here, not under the store's root)
//! ```
//! The home folder itself is created with mode 0700.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shard_store::{Catalog, DiskOptions, DiskStore, Layout};

use crate::{Error, Result};
use shard_net::identity::NodeIdentity;

/// Default port for peers.
pub const DEFAULT_PORT: u16 = 7714;
/// Default port of the control API (on 127.0.0.1).
pub const DEFAULT_API_PORT: u16 = 7715;
/// The web UI's default port (on 127.0.0.1).
pub const DEFAULT_UI_PORT: u16 = 7716;

/// The node's configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// The node's name, shown to its peers.
    pub name: String,
    /// Address to listen on for peers.
    pub listen: SocketAddr,
    /// Address of the control API (loopback only).
    pub api: SocketAddr,
    /// Address of the web UI (none: no web UI).
    #[serde(default)]
    pub ui: Option<SocketAddr>,
    /// Where and how shares for others are kept.
    pub store: StoreConfig,
    /// How peers are found.
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    /// Scrub and automatic repair.
    #[serde(default)]
    pub health: HealthConfig,
    /// The web UI's sessions.
    #[serde(default)]
    pub web: WebConfig,
    /// Reaching peers beyond the LAN.
    #[serde(default)]
    pub net: NetConfig,
    /// Backups that run themselves.
    #[serde(default)]
    pub backup: BackupConfig,
    /// The vault's own settings.
    #[serde(default)]
    pub vault: VaultConfig,
}

/// The vault's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VaultConfig {
    /// Days what `rm` removed stays in the trash (restorable with `shard trash restore`)
    /// before it is deleted for good; a change applies to what the trash holds already.
    /// 0: `rm` deletes at once, and the next expiry empties the trash.
    pub trash_days: u64,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self { trash_days: 30 }
    }
}

/// Backups that run themselves (see [`crate::backup`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupConfig {
    /// A command run (by `sh -c`) when a backup run fails or ends partial, with the job's
    /// name, account and reason in `SHARD_JOB`, `SHARD_USER` and `SHARD_REASON`: mail or a
    /// phone notification.
    pub on_failure: Option<String>,
}

/// Reaching peers in other homes: iroh, through relays (see `shard_net::wan`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NetConfig {
    /// The relays: absent, the engine's public relays; `[]`, none (no iroh: LAN and
    /// forwarded addresses only); otherwise these URLs (`https://HOST[:PORT]`).
    pub relays: Option<Vec<String>>,
    /// A PEM file of certificates trusted for relays besides the built-in roots (a relay with
    /// a self-signed certificate).
    pub relay_ca: Option<PathBuf>,
}

/// The web UI's sessions (see `shard_http::ui`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebConfig {
    /// A session with no request for this long ends (the browser goes back to the login
    /// page), seconds.
    pub session_idle_secs: u64,
    /// Folders on this node a web session may store from and restore into (and everything
    /// under them). Empty: a browser stores by upload and restores by download only. (The
    /// `shard` command, which holds the node's API token, is not limited.)
    pub node_paths: Vec<PathBuf>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            session_idle_secs: 30 * 60,
            node_paths: Vec::new(),
        }
    }
}

/// Scrub and automatic repair (see [`crate::health`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    /// Rate of the background scrub of the shares kept for others, KiB/s (0: no scrub).
    pub scrub_kib_per_sec: u64,
    /// Pause between two scrub passes, seconds.
    pub scrub_every_secs: u64,
    /// A peer offline this long has its shares rebuilt on others, seconds.
    pub repair_after_secs: u64,
    /// How often the node looks for shares to repair, seconds (also when a peer connects).
    pub repair_check_secs: u64,
    /// The automatic compaction rewrites packs once this percentage of their bytes belongs
    /// to removed files (looked at after removals, with the repair check); 0: never.
    pub prune_dead_percent: u8,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            scrub_kib_per_sec: 8 * 1024,
            scrub_every_secs: 24 * 3600,
            repair_after_secs: 24 * 3600,
            repair_check_secs: 300,
            prune_dead_percent: 25,
        }
    }
}

/// How peers are found (see [`shard_net::discovery`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DiscoveryConfig {
    /// mDNS: `on` (announce and browse), `quiet` (browse only) or `off`.
    #[serde(default)]
    pub mdns: shard_net::discovery::MdnsMode,
    /// Interfaces to use for mDNS (empty: every up, non-loopback one).
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Addresses where paired peers may be found, tried for each of them.
    #[serde(default)]
    pub static_addrs: Vec<String>,
}

/// The share store's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    /// Root folder of the store (default: `<home>/store`).
    pub root: Option<PathBuf>,
    /// `scatter` (random folders, harmless names) or `plain`.
    pub layout: String,
    /// Most bytes kept for others; none for no limit but the disk.
    pub quota_bytes: Option<u64>,
    /// Days a share its owner deleted is kept before it is removed (it is removed earlier only
    /// by the owner's signed purge, or, oldest first, when the store needs the room).
    #[serde(default = "default_grace_days")]
    pub deleted_grace_days: u64,
}

fn default_grace_days() -> u64 {
    7
}

/// A node's home folder.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root` (nothing is read or created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// `node.key`.
    pub fn key_path(&self) -> PathBuf {
        self.root.join("node.key")
    }
    /// `api.token`.
    pub fn token_path(&self) -> PathBuf {
        self.root.join("api.token")
    }
    /// `api.addr`.
    pub fn api_addr_path(&self) -> PathBuf {
        self.root.join("api.addr")
    }
    /// `listen.addr`.
    pub fn listen_addr_path(&self) -> PathBuf {
        self.root.join("listen.addr")
    }
    /// `catalog.db`.
    pub fn catalog_path(&self) -> PathBuf {
        self.root.join("catalog.db")
    }

    /// Whether `init` has run here.
    pub fn is_initialized(&self) -> bool {
        self.key_path().exists() && self.config_path().exists()
    }

    /// Creates a node here: key, token, config, catalog, store. Refuses if one exists.
    pub fn init(&self, config: &NodeConfig) -> Result<NodeIdentity> {
        if self.is_initialized() {
            return Err(Error::AlreadyANode {
                home: self.root.clone(),
            });
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))?;
        let identity = NodeIdentity::generate()?;
        identity.save(&self.key_path())?;
        let mut token = [0u8; 32];
        shard_crypto::fill_random(&mut token)?;
        write_private(&self.token_path(), hex::encode(token).as_bytes())?;
        let text = toml::to_string(config)
            .map_err(|e| Error::Internal(format!("the config does not encode: {e}")))?;
        write_private(&self.config_path(), text.as_bytes())?;
        Catalog::open(&self.catalog_path())?;
        let store_root = self.store_root(config);
        fs::create_dir_all(&store_root)?;
        self.open_store(config)?;
        Ok(identity)
    }

    /// Rewrites `config.toml` (atomically, synced).
    pub fn save_config(&self, config: &NodeConfig) -> Result<()> {
        let text = toml::to_string(config)
            .map_err(|e| Error::Internal(format!("the config does not encode: {e}")))?;
        write_private(&self.config_path(), text.as_bytes())
    }

    /// Reads `config.toml`.
    pub fn config(&self) -> Result<NodeConfig> {
        if !self.is_initialized() {
            return Err(Error::NoNode {
                home: self.root.clone(),
            });
        }
        let text = fs::read_to_string(self.config_path())?;
        toml::from_str(&text).map_err(|e| Error::BadConfig {
            path: self.config_path(),
            reason: e.to_string(),
        })
    }

    /// The node's key.
    pub fn identity(&self) -> Result<NodeIdentity> {
        Ok(NodeIdentity::load(&self.key_path())?)
    }

    /// The control API token.
    pub fn token(&self) -> Result<String> {
        Ok(fs::read_to_string(self.token_path())?.trim().to_string())
    }

    fn store_root(&self, config: &NodeConfig) -> PathBuf {
        config
            .store
            .root
            .clone()
            .unwrap_or_else(|| self.root.join("store"))
    }

    /// Opens the share store the config describes.
    pub fn open_store(&self, config: &NodeConfig) -> Result<DiskStore> {
        let layout = match config.store.layout.as_str() {
            "scatter" => Layout::Scatter,
            "plain" => Layout::Plain,
            other => {
                return Err(Error::UnknownStoreLayout {
                    layout: other.to_string(),
                    config: self.config_path(),
                });
            }
        };
        let options = DiskOptions {
            layout,
            quota: config.store.quota_bytes,
            index_path: Some(self.root.join("store-index.db")),
        };
        Ok(DiskStore::open(&self.store_root(config), options)?)
    }

    /// Opens the catalog.
    pub fn open_catalog(&self) -> Result<Catalog> {
        Ok(Catalog::open(&self.catalog_path())?)
    }

    /// Records where the running node listens (the CLI reads it).
    pub fn write_addrs(&self, api: SocketAddr, listen: SocketAddr) -> Result<()> {
        write_private(&self.api_addr_path(), api.to_string().as_bytes())?;
        write_private(&self.listen_addr_path(), listen.to_string().as_bytes())
    }

    /// `ui.addr`: where the running node's web UI is.
    pub fn ui_addr_path(&self) -> PathBuf {
        self.root.join("ui.addr")
    }

    /// Removes the files of a running node (at shutdown).
    pub fn clear_addrs(&self) {
        let _ = fs::remove_file(self.ui_addr_path());
        let _ = fs::remove_file(self.api_addr_path());
        let _ = fs::remove_file(self.listen_addr_path());
    }

    /// The running node's control API address, if one runs.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        fs::read_to_string(self.api_addr_path())
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// Writes a file only its owner can read, replacing it atomically, synced.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

impl NodeConfig {
    /// Defaults for a new node called `name`: peers on all interfaces at 7714, the API on
    /// 127.0.0.1:7715, a scatter store in the home.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            api: SocketAddr::from(([127, 0, 0, 1], DEFAULT_API_PORT)),
            ui: None,
            store: StoreConfig {
                root: None,
                layout: "scatter".into(),
                quota_bytes: None,
                deleted_grace_days: default_grace_days(),
            },
            discovery: DiscoveryConfig::default(),
            health: HealthConfig::default(),
            web: WebConfig::default(),
            net: NetConfig::default(),
            backup: BackupConfig::default(),
            vault: VaultConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_a_private_home_once() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("node"));
        let config = NodeConfig::new("laptop");
        let identity = home.init(&config).unwrap();
        assert_eq!(home.config().unwrap(), config);
        assert_eq!(home.identity().unwrap().node_id(), identity.node_id());
        assert_eq!(home.token().unwrap().len(), 64);
        for path in [home.key_path(), home.token_path(), home.config_path()] {
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600,
                "{path:?}"
            );
        }
        assert_eq!(
            fs::metadata(home.root()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let err = home.init(&config).unwrap_err().to_string();
        assert!(err.contains("already a node's home"), "{err}");
        assert_eq!(
            home.identity().unwrap().node_id(),
            identity.node_id(),
            "key untouched"
        );
    }

    #[test]
    fn an_empty_folder_is_not_a_node() {
        let dir = tempfile::tempdir().unwrap();
        let err = Home::new(dir.path()).config().unwrap_err().to_string();
        assert!(err.contains("shard init"), "{err}");
    }
}
