//! Peers beyond the LAN: the Noise channel carried over an iroh QUIC stream.
//!
//! iroh dials an endpoint by its key: through a relay until a direct path exists, then (after
//! hole punching, when the NATs allow it) directly. shard's own authentication runs inside
//! the stream exactly as over TCP, so a peer is pinned by its Noise key as on the LAN, its iroh
//! key is pinned beside it, and a relay sees ciphertext twice over (QUIC's TLS, then Noise).
//!
//! What this endpoint does on the network, and what it never does: it talks only to the
//! relays it was given (their HTTPS, and their QUIC address discovery), to the HTTPS relay a
//! route names for a peer homed elsewhere, and to peers' addresses those relays or the peers
//! themselves report. It has no address lookup (no DNS or pkarr
//! publishing of the node), no port mapping (no UPnP, NAT-PMP or PCP to the router), and a
//! node with no relays has no iroh endpoint at all.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use iroh::endpoint::{
    Connection as QuicConnection, ConnectionError, QuicTransportConfig, TransportErrorCode, VarInt,
    WeakConnectionHandle, presets,
};
use iroh::{Endpoint, EndpointAddr, PublicKey, RelayMap, RelayMode, RelayUrl, SecretKey, Watcher};
use shard_proto::NodeId;

use crate::identity::NodeIdentity;
use crate::noise::{self, Hello, PairingKey, PathKind, PathProbe, Stream};
use crate::transport::{BoxFuture, Connection, Incoming, Listener, Route, Transport};
use crate::{Error, Result};

/// The code a connection is closed with when its key is not let in (see [`KeyFilter`]).
const REFUSED: u32 = 1;

/// What a node that dialed is told when the other end's key filter said no: before any
/// handshake, so the other end cannot say more.
pub const NOT_LET_IN: &str = "it did not let this node in over iroh: it lets in only its \
     paired peers (and, while one of its invite codes is waiting, the node that brings it), \
     and no one when its places for connections are full";

/// Whether the other end refused the connection: its key filter said no, on a relayed path
/// (the QUIC refusal) or a direct one (closed with [`REFUSED`] once the key was proved).
fn refused_by_peer(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if let Some(c) = err.downcast_ref::<ConnectionError>() {
            return match c {
                ConnectionError::ConnectionClosed(close) => {
                    close.error_code == TransportErrorCode::CONNECTION_REFUSED
                }
                ConnectionError::ApplicationClosed(close) => {
                    close.error_code == VarInt::from_u32(REFUSED)
                }
                _ => false,
            };
        }
        cause = err.source();
    }
    false
}

/// Whom a relay's certificate may come from besides `--relay-ca` (`extra`, parsed already):
/// the system's roots, as other programs on this machine trust them (on Linux `SSL_CERT_FILE`
/// and `SSL_CERT_DIR` are honoured). When they cannot be read (a broken `SSL_CERT_FILE`),
/// `--relay-ca` alone, if given: a user who narrowed the roots is not widened back to
/// Mozilla's. On a machine with none at all (a bare container) or none readable and no
/// `--relay-ca`, the Mozilla roots built into shard. Each fallback is said in the log.
fn relay_roots(extra: bool) -> iroh::tls::CaTlsConfig {
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!("a CA certificate of this machine could not be read: {e}");
    }
    // Counted as the system verifier will take them: unparsable ones are left out there too
    // (with none left it would refuse to start).
    let (usable, _) = rustls::RootCertStore::empty().add_parsable_certificates(native.certs);
    if usable > 0 {
        iroh::tls::CaTlsConfig::system()
    } else if !native.errors.is_empty() && extra {
        tracing::warn!(
            "this machine's CA certificates could not be read: relay certificates are checked \
             against --relay-ca alone"
        );
        iroh::tls::CaTlsConfig::custom_roots(std::iter::empty())
    } else {
        tracing::warn!(
            "this machine has no usable CA certificates: relay certificates are checked against \
             the Mozilla roots built into shard (and --relay-ca)"
        );
        iroh::tls::CaTlsConfig::embedded()
    }
}

/// How long a refused connection is kept open for the refusal to reach the other side.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// The ALPN of shard's protocol over iroh.
pub const ALPN: &[u8] = b"shard/1";

/// Which relays a node uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relays {
    /// The engine's public relays (n0's), so pairing across homes works out of the box.
    Public,
    /// Only these (`https://relay.example.org`, or `http://` for a relay-only server).
    Own(Vec<String>),
}

/// How the iroh endpoint is set up.
#[derive(Debug, Clone)]
pub struct WanConfig {
    /// The relays.
    pub relays: Relays,
    /// Certificates (DER) trusted for relays besides the built-in roots: for a relay with a
    /// self-signed certificate.
    pub extra_roots: Vec<Vec<u8>>,
    /// Where the endpoint's UDP socket binds (port 0: any).
    pub bind: SocketAddr,
    /// Only ever through the relay, never a direct path: for measuring the relayed path
    /// (benchmarks, tests); a node never sets it.
    pub relay_only: bool,
}

/// Checks and parses relay URLs as a user typed them.
pub fn parse_relays(urls: &[String]) -> Result<Vec<RelayUrl>> {
    urls.iter()
        .map(|u| {
            if !crate::transport::valid_relay_url(u) {
                return Err(Error::Relay(format!(
                    "{u:?} is not a relay URL (expected https://HOST[:PORT] or http://HOST[:PORT])"
                )));
            }
            u.parse::<RelayUrl>()
                .map_err(|e| Error::Relay(format!("{u:?} is not a relay URL: {e}")))
        })
        .collect()
}

/// Reads PEM certificates (one file may hold several) for [`WanConfig::extra_roots`].
pub fn read_pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Relay(format!("the certificate file does not read as PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Relay(
            "the certificate file holds no certificate".into(),
        ));
    }
    // Each one must do as a root: a block that is PEM but not a certificate would otherwise
    // stop the node at start, far from the file that holds it.
    for (i, der) in certs.iter().enumerate() {
        rustls::RootCertStore::empty()
            .add(CertificateDer::from(der.as_slice()))
            .map_err(|e| {
                Error::Relay(format!(
                    "certificate {} of the file cannot be used as a root: {e}",
                    i + 1
                ))
            })?;
    }
    Ok(certs)
}

/// The iroh endpoint key of a node: derived from its Noise static key, so the node's identity
/// file is all it keeps (a domain-separated SHA-256 of a 32-byte random secret).
fn endpoint_secret(identity: &NodeIdentity) -> SecretKey {
    let mut input = zeroize::Zeroizing::new(Vec::with_capacity(64));
    input.extend_from_slice(b"shard iroh endpoint key v1\0");
    #[cfg(feature = "adversary")]
    if crate::faults::active(crate::faults::Lie::OtherIrohKey) {
        input.extend_from_slice(b"a lie");
    }
    input.extend_from_slice(identity.private());
    let seed = zeroize::Zeroizing::new(shard_crypto::sha256(&input));
    SecretKey::from_bytes(&seed)
}

/// The iroh endpoint key `identity` has (what its peers pin).
pub fn endpoint_key(identity: &NodeIdentity) -> [u8; 32] {
    *endpoint_secret(identity).public().as_bytes()
}

/// What the endpoint knows of its own reachability, for `shard status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WanStatus {
    /// The endpoint key.
    pub key: [u8; 32],
    /// The relays it is connected to.
    pub relays_connected: Vec<String>,
    /// The relays it could not reach, each with the last error.
    pub relays_unreachable: Vec<(String, String)>,
    /// Addresses it can be reached at directly (its own, and what the relays saw).
    pub direct_addrs: Vec<SocketAddr>,
    /// Of those, the ones on none of this machine's interfaces: where a relay saw its packets
    /// come from, the outside of a NAT between it and the relay.
    pub outside_addrs: Vec<SocketAddr>,
}

/// Decides, before any work is done for it, whether a connection that a relay says comes
/// from this endpoint key is let in (the node: a paired peer's pinned key, or anyone while an
/// invite is pending).
pub type KeyFilter = Arc<dyn Fn(&[u8; 32]) -> bool + Send + Sync>;

/// The Noise channel over iroh.
pub struct IrohTransport {
    endpoint: Endpoint,
    identity: Arc<NodeIdentity>,
    relays: Vec<RelayUrl>,
    /// Whether `relays` were given (not the public ones).
    own_relays: bool,
    filter: Arc<std::sync::RwLock<Option<KeyFilter>>>,
}

impl IrohTransport {
    /// Binds the endpoint (its UDP socket) and starts reaching the relays.
    pub async fn bind(identity: Arc<NodeIdentity>, config: &WanConfig) -> Result<Self> {
        let (mode, relays) = match &config.relays {
            Relays::Public => {
                let mode = RelayMode::Default;
                let relays = mode.relay_map().urls::<Vec<RelayUrl>>();
                (mode, relays)
            }
            Relays::Own(urls) => {
                let relays = parse_relays(urls)?;
                if relays.is_empty() {
                    return Err(Error::Relay("no relay given".into()));
                }
                // A plain-HTTP relay has no QUIC address discovery (`shard relay
                // --insecure-http`): do not probe for it.
                let map: RelayMap = relays
                    .iter()
                    .map(|url| {
                        if url.scheme() == "http" {
                            iroh::RelayConfig::new(url.clone(), None)
                        } else {
                            iroh::RelayConfig::from(url.clone())
                        }
                    })
                    .collect();
                (RelayMode::Custom(map), relays)
            }
        };
        let roots = config
            .extra_roots
            .iter()
            .map(|der| rustls::pki_types::CertificateDer::from(der.clone()));
        let ca = relay_roots(!config.extra_roots.is_empty()).with_extra_roots(roots);
        // One stream per connection (the Noise channel), none the other way, no datagrams: a
        // connection cannot make this node buffer streams it never reads (with one stream,
        // the default stream window, 1.25 MB, bounds what it holds). A larger window was
        // measured to fail: with a direct and a relayed path at once, reordered packets left
        // "too many gaps in stream buffer" and noq closed the connection.
        let quic = QuicTransportConfig::builder()
            .max_concurrent_bidi_streams(VarInt::from_u32(1))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .datagram_receive_buffer_size(None)
            .build();
        // The system's resolver only (for a relay given by name): never a public fallback.
        let dns = iroh::dns::DnsResolver::builder()
            .with_system_defaults()
            .disable_fallback()
            .build();
        let builder = Endpoint::builder(presets::Minimal)
            .secret_key(endpoint_secret(&identity))
            .alpns(vec![ALPN.to_vec()])
            .relay_mode(mode)
            .ca_tls_config(ca)
            .transport_config(quic)
            .dns_resolver(dns);
        let builder = if config.relay_only {
            builder.clear_ip_transports()
        } else {
            builder
                .bind_addr(config.bind)
                .map_err(|e| Error::Relay(format!("cannot bind the iroh endpoint: {e}")))?
        };
        let endpoint = builder
            .bind()
            .await
            .map_err(|e| Error::Relay(format!("cannot start the iroh endpoint: {e}")))?;
        Ok(Self {
            endpoint,
            identity,
            relays,
            own_relays: matches!(config.relays, Relays::Own(_)),
            filter: Arc::default(),
        })
    }

    /// Lets relayed connections in only from keys `filter` accepts. Without one, every
    /// connection goes on to the Noise handshake (which still refuses strangers). A relayed
    /// connection names its key before the QUIC handshake; turning strangers away there keeps
    /// them from holding handshake slots and from learning this node's addresses, which iroh
    /// tells a connected peer.
    pub fn set_filter(&self, filter: KeyFilter) {
        *self
            .filter
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(filter);
    }

    /// This endpoint's key.
    pub fn key(&self) -> [u8; 32] {
        *self.endpoint.id().as_bytes()
    }

    /// The relay this endpoint is homed at, once it has reached one.
    pub fn home_relay(&self) -> Option<String> {
        let status = self.endpoint.home_relay_status().get();
        status
            .iter()
            .find(|s| s.is_connected())
            .map(|s| s.url().to_string())
    }

    /// Waits (at most `limit`) until a relay answers: true if one did.
    pub async fn online(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.endpoint.online())
            .await
            .is_ok()
    }

    /// What the endpoint knows of its reachability now.
    pub fn status(&self) -> WanStatus {
        let mut connected = Vec::new();
        let mut unreachable = Vec::new();
        for s in self.endpoint.home_relay_status().get() {
            if s.is_connected() {
                connected.push(s.url().to_string());
            } else {
                let why = s
                    .last_error()
                    .map_or_else(|| "not reached yet".to_string(), |e| e.to_string());
                unreachable.push((s.url().to_string(), why));
            }
        }
        // With no relay connected, one iroh has not taken up at all (none answered as a relay,
        // so no home relay was chosen) is unreachable too: each relay the node was given is
        // named. (With one connected, the others are merely not needed: iroh keeps only its
        // home relay and reaches others when a peer is homed there.)
        if connected.is_empty() {
            for url in &self.relays {
                let url = url.to_string();
                if !unreachable.iter().any(|(u, _)| *u == url) {
                    unreachable.push((url, "no answer as a relay yet".to_string()));
                }
            }
        }
        let direct: Vec<SocketAddr> = self.endpoint.addr().ip_addrs().copied().collect();
        // Unlisted interfaces: nothing is called outside (every address would seem to be).
        let outside_addrs = local_ips().map_or_else(Vec::new, |local| outside_of(&direct, &local));
        WanStatus {
            key: self.key(),
            relays_connected: connected,
            relays_unreachable: unreachable,
            direct_addrs: direct,
            outside_addrs,
        }
    }

    /// Closes the endpoint (tells peers and relays, waits briefly for that).
    pub async fn close(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.close()).await;
    }

    /// `relay` (a URL a route names), if this node would contact it: one of its own, or any
    /// over HTTPS (routes come only from a code the user typed or a paired peer).
    pub fn usable_relay(&self, relay: &str) -> Option<RelayUrl> {
        let url = relay.parse::<RelayUrl>().ok()?;
        (self.relays.contains(&url) || url.scheme() == "https").then_some(url)
    }

    /// Where to dial `key`: this node's own relays, plus the relay its route names if that
    /// one is HTTPS (or one of this node's own). Routes come only from an invite code the
    /// user typed or from a paired peer's authenticated hello, so a peer homed on a relay of
    /// its own is reached there after a restart as at pairing; a plain-HTTP relay that is
    /// not this node's own is never contacted (nothing would authenticate it).
    fn address(&self, key: PublicKey, relay: Option<&str>) -> EndpointAddr {
        let mut addr = EndpointAddr::new(key);
        if let Some(url) = relay.and_then(|r| self.usable_relay(r)) {
            addr = addr.with_relay_url(url);
        }
        for url in &self.relays {
            addr.addrs.insert(iroh::TransportAddr::Relay(url.clone()));
        }
        addr
    }
}

/// Which path an iroh connection takes, read from the connection while it lasts.
#[derive(Debug)]
struct IrohProbe {
    connection: WeakConnectionHandle,
}

impl PathProbe for IrohProbe {
    fn path(&self) -> PathKind {
        let Some(connection) = self.connection.upgrade() else {
            return PathKind::Relay;
        };
        let paths = connection.paths();
        let selected = paths.iter().find(|p| p.is_selected());
        match selected {
            Some(p) if p.is_ip() => PathKind::Direct,
            _ => PathKind::Relay,
        }
    }
}

/// The byte stream of one connection, as the Noise layer takes it.
fn stream_of(
    connection: &QuicConnection,
    send: iroh::endpoint::SendStream,
    recv: iroh::endpoint::RecvStream,
) -> Stream {
    let addr = {
        let paths = connection.paths();
        let ip = paths
            .iter()
            .find(|p| p.is_selected() && p.is_ip())
            .and_then(|p| match p.remote_addr() {
                iroh::TransportAddr::Ip(a) => Some(*a),
                _ => None,
            });
        ip.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    };
    Stream {
        read: Box::new(recv),
        write: Box::new(send),
        addr,
        transport_key: Some(*connection.remote_id().as_bytes()),
        probe: Some(Arc::new(IrohProbe {
            connection: connection.weak_handle(),
        })),
    }
}

impl Transport for IrohTransport {
    fn listen(&self, _addr: SocketAddr) -> BoxFuture<'_, Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let local = self
                .endpoint
                .bound_sockets()
                .first()
                .copied()
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
            Ok(Box::new(IrohListener {
                endpoint: self.endpoint.clone(),
                identity: self.identity.clone(),
                local,
                filter: self.filter.clone(),
            }) as Box<dyn Listener>)
        })
    }

    fn connect<'a>(
        &'a self,
        to: &'a Route,
        hello: &'a Hello,
        expect: Option<NodeId>,
        pairing: Option<&'a PairingKey>,
    ) -> BoxFuture<'a, Result<Connection>> {
        Box::pin(async move {
            let Route::Iroh(route) = to else {
                return Err(Error::NoRoute(to.to_string()));
            };
            let key = PublicKey::from_bytes(&route.key)
                .map_err(|_| Error::Relay("the peer's iroh key is not a valid key".into()))?;
            let connection = self
                .endpoint
                .connect(self.address(key, route.relay.as_deref()), ALPN)
                .await
                .map_err(|e| {
                    if refused_by_peer(&e) {
                        Error::Refused(NOT_LET_IN.into())
                    } else {
                        Error::Relay(format!("no iroh connection to {}: {e}", key.fmt_short()))
                    }
                })?;
            let (send, recv) = connection.open_bi().await.map_err(|e| {
                if refused_by_peer(&e) {
                    Error::Refused(NOT_LET_IN.into())
                } else {
                    Error::Relay(format!("iroh stream refused: {e}"))
                }
            })?;
            let stream = stream_of(&connection, send, recv);
            let channel = noise::connect_over(stream, &self.identity, hello, expect, pairing)
                .await
                .map_err(|e| {
                    // On a direct path the key is proved in the QUIC handshake, and the filter's
                    // refusal (a close with its code) comes after: the handshake's read fails.
                    match connection.close_reason() {
                        Some(c) if refused_by_peer(&c) => Error::Refused(NOT_LET_IN.into()),
                        _ => e,
                    }
                })?;
            Ok(channel.into())
        })
    }

    /// The endpoint, at its home relay; before one is reached (an invite made right after
    /// start), at the first of its own relays — without it a peer whose relays are others
    /// would have no way to find it. (Not one of the public relays: which of them becomes home
    /// is iroh's choice by latency, and a guess would send peers to the wrong one.)
    fn routes(&self) -> Vec<Route> {
        let relay = self.home_relay().or_else(|| {
            let first = self.relays.first().filter(|_| self.own_relays);
            first.map(ToString::to_string)
        });
        vec![Route::Iroh(crate::transport::IrohRoute {
            key: self.key(),
            relay,
        })]
    }
}

/// Incoming iroh connections; each authenticates with the Noise handshake in its first stream.
struct IrohListener {
    endpoint: Endpoint,
    identity: Arc<NodeIdentity>,
    local: SocketAddr,
    filter: Arc<std::sync::RwLock<Option<KeyFilter>>>,
}

impl IrohListener {
    fn lets_in(&self, key: &[u8; 32]) -> bool {
        lets_in(&self.filter, key)
    }
}

fn lets_in(filter: &std::sync::RwLock<Option<KeyFilter>>, key: &[u8; 32]) -> bool {
    let filter = filter
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    filter.as_ref().is_none_or(|f| f(key))
}

/// The address a relayed connection is counted under: one per claimed endpoint key, in the
/// discard-only prefix `100::/64` (RFC 6666), so the per-address handshake limit binds each
/// sender on its own rather than every relayed peer together.
pub fn relayed_from(key: &[u8; 32]) -> SocketAddr {
    let mut octets = [0u8; 16];
    octets[0] = 0x01;
    octets[8..].copy_from_slice(&key[..8]);
    SocketAddr::from((std::net::Ipv6Addr::from(octets), 0))
}

/// This machine's interface addresses (`None` when they cannot be listed).
fn local_ips() -> Option<Vec<IpAddr>> {
    if_addrs::get_if_addrs()
        .ok()
        .map(|list| list.into_iter().map(|i| i.ip()).collect())
}

/// The addresses of `direct` on no interface of this machine: where relays saw it from (its
/// NAT's outside).
fn outside_of(direct: &[SocketAddr], local: &[IpAddr]) -> Vec<SocketAddr> {
    direct
        .iter()
        .filter(|a| !local.contains(&a.ip()))
        .copied()
        .collect()
}

/// The first 8 bytes of a key in hex, for logs.
fn hex_short(key: &[u8; 32]) -> String {
    key[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl Listener for IrohListener {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<Incoming>> {
        Box::pin(async move {
            // Where it comes from, and the key a relay says sent it (checked against the key
            // the connection proves).
            let (incoming, from, claimed) = loop {
                let Some(incoming) = self.endpoint.accept().await else {
                    // Closed (the node is stopping): no more connections will come.
                    tracing::debug!("the iroh endpoint closed; no more connections over iroh");
                    return std::future::pending().await;
                };
                match incoming.remote_addr() {
                    // A direct packet's source may be forged: make it prove the address
                    // (a retry round trip) before it counts against that address's slots.
                    iroh::endpoint::IncomingAddr::Ip(a) => {
                        if incoming.remote_addr_validated() {
                            break (incoming, a, None);
                        }
                        if let Err(e) = incoming.retry() {
                            e.into_incoming().ignore();
                        }
                    }
                    iroh::endpoint::IncomingAddr::Relay { endpoint_id, .. } => {
                        if self.lets_in(endpoint_id.as_bytes()) {
                            let claimed = *endpoint_id.as_bytes();
                            break (incoming, relayed_from(&claimed), Some(claimed));
                        }
                        tracing::debug!(
                            "refused a relayed connection from unknown key {}",
                            endpoint_id.fmt_short()
                        );
                        incoming.refuse();
                    }
                    _ => incoming.refuse(),
                }
            };
            let identity = self.identity.clone();
            let filter = self.filter.clone();
            Ok(Incoming::new(
                from,
                Box::new(move |hello, gate| {
                    Box::pin(async move {
                        let accepting = incoming
                            .accept()
                            .map_err(|e| Error::Relay(format!("iroh connection failed: {e}")))?;
                        let connection = accepting
                            .await
                            .map_err(|e| Error::Relay(format!("iroh connection failed: {e}")))?;
                        // The key the connection proved, whatever path it came by: a direct
                        // path skips the relay's (claimed) key check above, and a relay may
                        // claim a key the sender does not hold. Closed before any stream.
                        let proved = *connection.remote_id().as_bytes();
                        let allowed = lets_in(&filter, &proved);
                        if !allowed || claimed.is_some_and(|c| c != proved) {
                            connection.close(VarInt::from_u32(REFUSED), b"refused");
                            return Err(Error::Relay(format!(
                                "refused an iroh connection from key {}: {}",
                                hex_short(&proved),
                                if allowed {
                                    "the relay named another key"
                                } else {
                                    "not a paired peer's"
                                }
                            )));
                        }
                        let (send, recv) = connection
                            .accept_bi()
                            .await
                            .map_err(|e| Error::Relay(format!("iroh stream failed: {e}")))?;
                        let stream = stream_of(&connection, send, recv);
                        match noise::accept_over(stream, &identity, &hello, gate.as_ref()).await {
                            Ok(channel) => Ok(channel.into()),
                            Err(e) => {
                                // Dropping the last handle would close the connection at once
                                // and lose the refusal still in its buffers: let the other
                                // side read it and hang up first (briefly).
                                let _ =
                                    tokio::time::timeout(REFUSAL_LINGER, connection.closed()).await;
                                Err(e)
                            }
                        }
                    })
                }),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_relay_ca_file_must_hold_certificates_usable_as_roots() {
        // PEM framing around bytes that are no certificate: refused when read, by number.
        let junk = "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";
        let err = read_pem_certificates(junk.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .contains("certificate 1 of the file cannot be used as a root"),
            "{err}"
        );
        assert!(read_pem_certificates(b"no pem here").is_err());
        let cert = rcgen::generate_simple_self_signed(vec!["relay.example".into()]).unwrap();
        let read = read_pem_certificates(cert.cert.pem().as_bytes()).unwrap();
        assert_eq!(read, vec![cert.cert.der().to_vec()]);
    }

    #[test]
    fn addresses_on_no_interface_of_the_machine_are_the_ones_a_relay_saw() {
        let local: Vec<IpAddr> = vec![[192, 168, 1, 10].into(), [127, 0, 0, 1].into()];
        let lan: SocketAddr = ([192, 168, 1, 10], 4000).into();
        let outside: SocketAddr = ([203, 0, 113, 7], 61000).into();
        assert_eq!(outside_of(&[lan, outside], &local), vec![outside]);
        assert!(outside_of(&[lan], &local).is_empty());
    }

    /// An endpoint whose one relay (plain HTTP, on a loopback port nothing answers on) is
    /// never reached.
    async fn endpoint() -> IrohTransport {
        let identity = Arc::new(NodeIdentity::generate().unwrap());
        let config = WanConfig {
            relays: Relays::Own(vec!["http://127.0.0.1:9".into()]),
            extra_roots: Vec::new(),
            bind: ([127, 0, 0, 1], 0).into(),
            relay_only: false,
        };
        IrohTransport::bind(identity, &config).await.unwrap()
    }

    fn relays_of(addr: &EndpointAddr) -> Vec<String> {
        let mut urls: Vec<String> = addr.relay_urls().map(ToString::to_string).collect();
        urls.sort();
        urls
    }

    #[tokio::test]
    async fn a_route_adds_its_https_relay_but_never_a_plain_http_one_not_our_own() {
        let transport = endpoint().await;
        let key = SecretKey::from_bytes(&[7; 32]).public();
        let own = "http://127.0.0.1:9/".to_string();
        // A peer homed on a relay of its own over HTTPS: dialed there, and at ours.
        let theirs = "https://relay.example.org/";
        assert_eq!(
            relays_of(&transport.address(key, Some(theirs))),
            vec![own.clone(), theirs.to_string()]
        );
        // Plain HTTP authenticates nothing: only our own.
        assert_eq!(
            relays_of(&transport.address(key, Some("http://10.1.2.3:3340"))),
            vec![own.clone()]
        );
        assert_eq!(
            relays_of(&transport.address(key, Some("not a url"))),
            vec![own.clone()]
        );
        assert_eq!(relays_of(&transport.address(key, None)), vec![own.clone()]);
        transport.close().await;
    }

    #[tokio::test]
    async fn before_a_relay_answers_the_route_names_the_first_one_given() {
        let transport = endpoint().await;
        let routes = transport.routes();
        let Some(Route::Iroh(route)) = routes.first() else {
            panic!("no iroh route: {routes:?}");
        };
        assert_eq!(route.key, transport.key());
        assert_eq!(route.relay.as_deref(), Some("http://127.0.0.1:9/"));
        transport.close().await;
    }
}
