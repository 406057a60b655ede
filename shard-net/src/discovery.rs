//! Finding peers: where a paired node may be reached, and who is nearby.
//!
//! A node tries the addresses pinned at pairing (from the invite code and the peer's own
//! hello, kept in the catalog and updated when a connection succeeds) and those of its
//! [`Discovery`] sources, none of them trusted — every address is only a hint, and the
//! handshake (which checks the node's key) decides:
//! - [`StaticAddrs`]: addresses from the config (`shard peers add ADDR`), tried for every
//!   paired peer;
//! - [`Sightings`], fed by mDNS/DNS-SD ([`Mdns`]): each node announces `_shard._tcp.local.`
//!   with its id, name and protocol version in TXT records, and browses for the others. A
//!   paired node seen at a new address is reconnected at once; an unpaired one is listed as
//!   "nearby", never sent data. Fed by hand, the same type is the test double.
//!
//! There is no address scanning. Announcing tells the LAN that shard runs here: `--no-mdns`
//! (mode `quiet`) only browses, and mode `off` runs no mDNS at all (not even a multicast
//! group join) — what tests on a shared machine use.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shard_proto::{NodeId, PROTOCOL_VERSION};

use crate::identity::{fingerprint, parse_fingerprint};

/// The DNS-SD service type.
pub const SERVICE_TYPE: &str = "_shard._tcp.local.";
/// Most nearby nodes remembered (a flood of announcements cannot grow memory past this).
pub const MAX_NEARBY: usize = 64;
/// Most addresses remembered per node.
const MAX_ADDRS: usize = 8;

/// How the node uses mDNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MdnsMode {
    /// Announce and browse.
    #[default]
    On,
    /// Browse only (find paired peers; tell nobody we are here).
    Quiet,
    /// No mDNS at all.
    Off,
}

/// A node seen on the LAN that is not paired with this one.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Nearby {
    /// Its fingerprint (as announced: a hint until a handshake proves it).
    pub id: String,
    /// The name it announces.
    pub name: String,
    /// Where it says it listens.
    pub addrs: Vec<String>,
    /// Seconds since it was last heard.
    pub seen_secs_ago: u64,
}

/// Where paired nodes may be, and who is nearby.
pub trait Discovery: Send + Sync {
    /// Addresses learned for `node` (besides the pinned ones), most recent first.
    fn addresses(&self, node: &NodeId) -> Vec<SocketAddr>;
    /// Nodes seen recently that are not among `paired`.
    fn nearby(&self, paired: &[NodeId]) -> Vec<Nearby>;
}

impl Discovery for Sightings {
    fn addresses(&self, node: &NodeId) -> Vec<SocketAddr> {
        self.addresses_of(node)
    }

    fn nearby(&self, paired: &[NodeId]) -> Vec<Nearby> {
        self.unpaired(paired)
    }
}

/// Addresses where any paired node may be (the config's `static_addrs`): tried for all.
#[derive(Default)]
pub struct StaticAddrs(Mutex<Vec<SocketAddr>>);

impl StaticAddrs {
    /// These addresses.
    pub fn new(addrs: Vec<SocketAddr>) -> Self {
        Self(Mutex::new(addrs))
    }

    /// Adds one; false if it was there already.
    pub fn add(&self, addr: SocketAddr) -> bool {
        let mut addrs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if addrs.contains(&addr) {
            return false;
        }
        addrs.push(addr);
        true
    }
}

impl Discovery for StaticAddrs {
    fn addresses(&self, _node: &NodeId) -> Vec<SocketAddr> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn nearby(&self, _paired: &[NodeId]) -> Vec<Nearby> {
        Vec::new()
    }
}

struct Seen {
    name: String,
    addrs: Vec<SocketAddr>,
    at: Instant,
}

/// Which ids a full [`Sightings`] keeps over newcomers (the node's paired peers).
pub type Keep = Arc<dyn Fn(&NodeId) -> bool + Send + Sync>;

/// What mDNS has heard, bounded in size.
#[derive(Default)]
pub struct Sightings {
    map: Mutex<HashMap<NodeId, Seen>>,
    rejected: Mutex<(u64, Option<Instant>)>,
    keep: Mutex<Option<Keep>>,
}

impl Sightings {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Seen>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets which ids a full table keeps: anyone on the LAN can announce made-up ids, and
    /// [`MAX_NEARBY`] of them must not push out where the node's own peers were seen.
    pub fn keep(&self, keep: Keep) {
        *self.keep.lock().unwrap_or_else(PoisonError::into_inner) = Some(keep);
    }

    /// Records a sighting; when full, the oldest one not kept (see [`Sightings::keep`]) is
    /// forgotten, or the oldest of all if every one is kept.
    pub fn record(&self, id: NodeId, name: String, addrs: Vec<SocketAddr>) {
        let keep = self
            .keep
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let full: Option<Vec<(NodeId, Instant)>> = {
            let map = self.lock();
            (!map.contains_key(&id) && map.len() >= MAX_NEARBY)
                .then(|| map.iter().map(|(id, s)| (*id, s.at)).collect())
        };
        // Asked without the table locked: `keep` takes the node's own locks.
        let victim = full.and_then(|seen| {
            let kept = |id: &NodeId| keep.as_ref().is_some_and(|k| k(id));
            seen.iter()
                .filter(|(id, _)| !kept(id))
                .min_by_key(|(_, at)| *at)
                .or_else(|| seen.iter().min_by_key(|(_, at)| *at))
                .map(|(id, _)| *id)
        });
        let mut map = self.lock();
        if let Some(victim) = victim {
            map.remove(&victim);
        }
        map.insert(
            id,
            Seen {
                name,
                addrs,
                at: Instant::now(),
            },
        );
    }

    /// Forgets a node (its announcement was withdrawn).
    pub fn forget(&self, id: &NodeId) {
        self.lock().remove(id);
    }

    /// Counts a record that was ignored, and says whether to log it (at most once a minute,
    /// so a flood does not flood the log either).
    fn reject(&self) -> Option<u64> {
        let mut r = self.rejected.lock().unwrap_or_else(PoisonError::into_inner);
        r.0 += 1;
        let due = r.1.is_none_or(|t| t.elapsed() > Duration::from_secs(60));
        if due {
            r.1 = Some(Instant::now());
            Some(r.0)
        } else {
            None
        }
    }

    /// Addresses of `id`, if seen.
    pub fn addresses_of(&self, id: &NodeId) -> Vec<SocketAddr> {
        self.lock()
            .get(id)
            .map(|s| s.addrs.clone())
            .unwrap_or_default()
    }

    /// Every sighting except the `paired` ones.
    pub fn unpaired(&self, paired: &[NodeId]) -> Vec<Nearby> {
        let mut out: Vec<Nearby> = self
            .lock()
            .iter()
            .filter(|(id, _)| !paired.contains(id))
            .map(|(id, s)| Nearby {
                id: fingerprint(id),
                name: s.name.clone(),
                addrs: s.addrs.iter().map(ToString::to_string).collect(),
                seen_secs_ago: s.at.elapsed().as_secs(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        out
    }
}

/// A validated announcement.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    /// Claimed id (a hint).
    pub id: NodeId,
    /// Announced name, cleaned.
    pub name: String,
    /// Addresses with the announced port.
    pub addrs: Vec<SocketAddr>,
}

/// Checks a resolved service's fields; anything malformed or oversized is refused.
pub fn parse_announcement(
    id: Option<&str>,
    name: Option<&str>,
    version: Option<&str>,
    ips: impl IntoIterator<Item = IpAddr>,
    port: u16,
) -> std::result::Result<Announcement, &'static str> {
    let id = id.ok_or("no id in the TXT record")?;
    if id.len() > 80 {
        return Err("id too long");
    }
    let id = parse_fingerprint(id).ok_or("id is not a node fingerprint")?;
    if version.and_then(|v| v.parse::<u8>().ok()) != Some(PROTOCOL_VERSION) {
        return Err("another protocol version");
    }
    if port == 0 {
        return Err("no port");
    }
    let name = crate::noise::clean_name(name.unwrap_or("?"));
    let mut addrs: Vec<SocketAddr> = ips
        .into_iter()
        .filter(|ip| crate::noise::dialable(*ip))
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs.truncate(MAX_ADDRS);
    if addrs.is_empty() {
        return Err("no usable address");
    }
    Ok(Announcement { id, name, addrs })
}

/// The mDNS side: announcing this node and browsing for the others.
pub struct Mdns {
    daemon: mdns_sd::ServiceDaemon,
    fullname: Option<String>,
}

impl Mdns {
    /// Starts mDNS on `interfaces` (all up, non-loopback ones when empty); announces unless
    /// `mode` is quiet. Sightings go to `sightings`; `on_seen` is called for each valid one.
    pub fn start(
        mode: MdnsMode,
        interfaces: &[String],
        me: NodeId,
        name: &str,
        port: u16,
        sightings: Arc<Sightings>,
        on_seen: impl Fn(&Announcement) + Send + Sync + 'static,
    ) -> std::result::Result<Self, mdns_sd::Error> {
        let daemon = mdns_sd::ServiceDaemon::new()?;
        // Notice address changes within seconds (the default is 30 s).
        daemon.set_ip_check_interval(1)?;
        daemon.disable_interface(mdns_sd::IfKind::LoopbackV4)?;
        daemon.disable_interface(mdns_sd::IfKind::LoopbackV6)?;
        if !interfaces.is_empty() {
            daemon.disable_interface(mdns_sd::IfKind::All)?;
            for name in interfaces {
                daemon.enable_interface(mdns_sd::IfKind::Name(name.clone()))?;
            }
        }
        let mut fullname = None;
        if mode == MdnsMode::On {
            let id = fingerprint(&me);
            let instance: String = id.chars().filter(|c| *c != '-').take(16).collect();
            let host = format!("shard-{}.local.", instance.to_lowercase());
            let version = PROTOCOL_VERSION.to_string();
            let txt = [("id", id.as_str()), ("name", name), ("v", version.as_str())];
            let info =
                mdns_sd::ServiceInfo::new(SERVICE_TYPE, &instance, &host, (), port, &txt[..])?
                    .enable_addr_auto();
            fullname = Some(info.get_fullname().to_string());
            daemon.register(info)?;
        }
        let events = daemon.browse(SERVICE_TYPE)?;
        tokio::spawn(async move {
            while let Ok(event) = events.recv_async().await {
                match event {
                    mdns_sd::ServiceEvent::ServiceResolved(service) => {
                        let txt = service.get_properties();
                        let parsed = parse_announcement(
                            txt.get_property_val_str("id"),
                            txt.get_property_val_str("name"),
                            txt.get_property_val_str("v"),
                            service
                                .get_addresses()
                                .iter()
                                .map(mdns_sd::ScopedIp::to_ip_addr),
                            service.port,
                        );
                        match parsed {
                            Ok(a) if a.id == me => {}
                            Ok(a) => {
                                sightings.record(a.id, a.name.clone(), a.addrs.clone());
                                on_seen(&a);
                            }
                            Err(why) => {
                                if let Some(count) = sightings.reject() {
                                    tracing::info!(
                                        "ignored an mDNS announcement ({why}); {count} ignored so far"
                                    );
                                }
                            }
                        }
                    }
                    mdns_sd::ServiceEvent::ServiceRemoved(_, fullname) => {
                        // The instance name is the start of the id; forget matching sightings.
                        let instance: String =
                            fullname.split('.').next().unwrap_or("").to_uppercase();
                        let ids: Vec<NodeId> = sightings
                            .lock()
                            .keys()
                            .filter(|id| fingerprint(id).replace('-', "").starts_with(&instance))
                            .copied()
                            .collect();
                        for id in ids {
                            sightings.forget(&id);
                        }
                    }
                    _ => {}
                }
            }
        });
        Ok(Self { daemon, fullname })
    }

    /// Withdraws the announcement and stops.
    pub fn stop(&self) {
        if let Some(name) = &self.fullname {
            let _ = self.daemon.unregister(name);
        }
        let _ = self.daemon.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> String {
        fingerprint(&NodeId([9; 32]))
    }

    #[test]
    fn valid_announcements_are_read_and_cleaned() {
        let v1 = PROTOCOL_VERSION.to_string();
        let ip: IpAddr = "10.77.0.2".parse().unwrap();
        let a = parse_announcement(
            Some(&id()),
            Some("lap\ntop"),
            Some(v1.as_str()),
            [ip, ip],
            7714,
        )
        .unwrap();
        assert_eq!(a.id, NodeId([9; 32]));
        assert_eq!(a.name, "laptop");
        assert_eq!(a.addrs, vec!["10.77.0.2:7714".parse().unwrap()]);
    }

    #[test]
    fn malformed_announcements_are_refused() {
        let v1 = PROTOCOL_VERSION.to_string();
        let ip: IpAddr = "10.77.0.2".parse().unwrap();
        let long = "A".repeat(500);
        for (id, v, port, ips) in [
            (None, Some(v1.as_str()), 7714, vec![ip]),
            (Some("not-an-id"), Some(v1.as_str()), 7714, vec![ip]),
            (Some(long.as_str()), Some(v1.as_str()), 7714, vec![ip]),
            (Some(id().as_str()), Some("1"), 7714, vec![ip]),
            (Some(id().as_str()), None, 7714, vec![ip]),
            (Some(id().as_str()), Some(v1.as_str()), 0, vec![ip]),
            (Some(id().as_str()), Some(v1.as_str()), 7714, vec![]),
            (
                Some(id().as_str()),
                Some(v1.as_str()),
                7714,
                vec!["224.0.0.251".parse().unwrap()],
            ),
        ] {
            assert!(
                parse_announcement(id, Some("x"), v, ips, port).is_err(),
                "{id:?} {v:?} {port}"
            );
        }
        // A huge name is cut, not refused.
        let a = parse_announcement(
            Some(&id()),
            Some(&"n".repeat(10_000)),
            Some(v1.as_str()),
            [ip],
            1,
        )
        .unwrap();
        assert_eq!(a.name.len(), crate::noise::MAX_NAME_CHARS);
    }

    #[test]
    fn a_flood_of_announcements_stays_bounded() {
        let s = Sightings::default();
        for i in 0..10_000u32 {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.to_le_bytes());
            s.record(
                NodeId(b),
                format!("n{i}"),
                vec!["10.0.0.1:1".parse().unwrap()],
            );
        }
        assert_eq!(s.unpaired(&[]).len(), MAX_NEARBY);
        for _ in 0..1000 {
            s.reject();
        }
        assert_eq!(s.rejected.lock().unwrap().0, 1000);
    }

    #[test]
    fn made_up_ids_do_not_push_out_a_paired_peer() {
        let s = Sightings::default();
        let peer = NodeId([0xEE; 32]);
        s.keep(Arc::new(move |id| *id == peer));
        s.record(peer, "aunt".into(), vec!["10.0.0.9:7000".parse().unwrap()]);
        for i in 0..1_000u32 {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.to_le_bytes());
            s.record(
                NodeId(b),
                format!("fake{i}"),
                vec!["10.0.0.1:1".parse().unwrap()],
            );
        }
        assert_eq!(
            s.addresses_of(&peer),
            vec!["10.0.0.9:7000".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(s.lock().len(), MAX_NEARBY);
    }
}
