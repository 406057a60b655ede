//! A relay of one's own: iroh's relay server, for people who do not want to use the public
//! ones (`shard relay`).
//!
//! Over HTTPS it also answers QUIC address discovery (UDP, port
//! [`DEFAULT_QUIC_PORT`] on the same address — the port nodes assume for an `https://` relay),
//! which nodes behind NAT need to learn their public address and punch holes. Over plain HTTP
//! (`--insecure-http`) it only relays: peers stay on the relay, and the link between a node and
//! the relay is protected only by the encryption the peers do themselves (QUIC's TLS and Noise
//! inside it; the relay never sees plaintext either way).

use std::net::SocketAddr;

use iroh_relay::server::{CertConfig, QuicConfig, RelayConfig, Server, ServerConfig, TlsConfig};

use crate::{Error, Result};

/// The UDP port of a relay's QUIC address discovery, as nodes assume it.
pub const DEFAULT_QUIC_PORT: u16 = iroh_relay::defaults::DEFAULT_RELAY_QUIC_PORT;

/// How a relay is run.
pub struct RelayOptions {
    /// Where it serves HTTPS (or, with no certificate, plain HTTP).
    pub listen: SocketAddr,
    /// Its certificate chain and key, PEM; none: plain HTTP, relay only.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// The UDP port of QUIC address discovery (HTTPS only).
    pub quic_port: u16,
}

/// A running relay.
pub struct Relay {
    server: Server,
    url: String,
    quic: Option<SocketAddr>,
}

impl Relay {
    /// Starts a relay.
    pub async fn start(options: RelayOptions) -> Result<Relay> {
        let mut relay = match &options.tls {
            Some((cert, key)) => {
                let server_config = server_tls(cert, key)?;
                // The plain-HTTP side (captive-portal probes) on a port of the system's choosing.
                let mut relay = RelayConfig::new(SocketAddr::new(options.listen.ip(), 0));
                relay.tls = Some(TlsConfig::new(
                    options.listen,
                    CertConfig::Manual { server_config },
                ));
                relay
            }
            None => RelayConfig::new(options.listen),
        };
        relay.key_cache_capacity = Some(1024);
        let mut config = ServerConfig::default();
        if options.tls.is_some() {
            config.quic = Some(QuicConfig::new(SocketAddr::new(
                options.listen.ip(),
                options.quic_port,
            )));
        }
        config.relay = Some(relay);
        let server = Server::spawn(config)
            .await
            .map_err(|e| Error::Relay(format!("the relay could not start: {e}")))?;
        // By address; with a certificate for a name, nodes are given that name instead.
        let url = match (server.https_addr(), server.http_addr()) {
            (Some(a), _) if options.tls.is_some() => format!("https://{a}"),
            (_, Some(a)) => format!("http://{a}"),
            _ => return Err(Error::Relay("the relay has no address".into())),
        };
        let quic = server.quic_addr();
        Ok(Relay { server, url, quic })
    }

    /// The URL nodes are given (`--relay URL`).
    pub fn url(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// Where QUIC address discovery answers, if it runs.
    pub fn quic_addr(&self) -> Option<SocketAddr> {
        self.quic
    }

    /// Stops the relay.
    pub async fn shutdown(self) -> Result<()> {
        self.server
            .shutdown()
            .await
            .map_err(|e| Error::Relay(format!("the relay did not stop cleanly: {e}")))
    }
}

/// A rustls server configuration from a PEM certificate chain and key.
fn server_tls(cert: &[u8], key: &[u8]) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Relay(format!("the certificate file does not read as PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Relay(
            "the certificate file holds no certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| Error::Relay(format!("the key file holds no usable private key: {e}")))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Relay(format!("TLS setup failed: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Relay(format!("the certificate and key do not go together: {e}")))
}
