//! Where a peer can be dialed ([`Route`]), as a node writes it for its peers and reads it back
//! from theirs. Below both the transports and the Noise channel's hello, which carries routes.

use std::fmt;
use std::net::SocketAddr;

/// Where a peer can be dialed.
///
/// As text (in a peer's hello, an invite, the catalog's record of a peer): `IP:port` for TCP,
/// `iroh:<endpoint key, 64 hex digits>` optionally followed by `@<relay URL>` for iroh.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    /// TCP to this address.
    Tcp(SocketAddr),
    /// iroh, to this endpoint.
    Iroh(IrohRoute),
}

/// An iroh endpoint: its key (pinned like a Noise key) and the relay it is homed at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IrohRoute {
    /// The endpoint's public key.
    pub key: [u8; 32],
    /// Its home relay, when known.
    pub relay: Option<String>,
}

/// Longest relay URL kept from a peer or a code.
pub const MAX_RELAY_URL: usize = 200;

impl Route {
    /// Reads a route as written by [`Route`]'s `Display`; `None` for anything else (a peer's
    /// word is checked, never trusted to parse).
    pub fn parse(text: &str) -> Option<Route> {
        if let Some(rest) = text.strip_prefix("iroh:") {
            let (key, relay) = match rest.split_once('@') {
                Some((k, r)) => (k, Some(r)),
                None => (rest, None),
            };
            let key: [u8; 32] = hex::decode(key).ok()?.try_into().ok()?;
            let relay = match relay {
                Some(r) if valid_relay_url(r) => Some(r.to_string()),
                Some(_) => return None,
                None => None,
            };
            return Some(Route::Iroh(IrohRoute { key, relay }));
        }
        text.parse().ok().map(Route::Tcp)
    }

    /// The TCP address, for a TCP route.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Route::Tcp(a) => Some(*a),
            Route::Iroh(_) => None,
        }
    }
}

/// Whether `url` is one a node would dial as a relay: `http` or `https`, a host, printable
/// ASCII only (a URL is shown to peers, in codes and in `shard peers`: no spaces, control or
/// formatting characters such as a right-to-left override that would make it read as another;
/// an international host name goes in its `xn--` form), no user name, query or fragment, not
/// too long.
pub fn valid_relay_url(url: &str) -> bool {
    url.len() <= MAX_RELAY_URL
        && url
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'@' | b'?' | b'#'))
        && (url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://")))
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Tcp(a) => write!(f, "{a}"),
            Route::Iroh(r) => {
                write!(f, "iroh:{}", hex::encode(r.key))?;
                if let Some(relay) = &r.relay {
                    write!(f, "@{relay}")?;
                }
                Ok(())
            }
        }
    }
}

impl From<SocketAddr> for Route {
    fn from(addr: SocketAddr) -> Self {
        Route::Tcp(addr)
    }
}
