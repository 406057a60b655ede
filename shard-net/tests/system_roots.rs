//! A relay's certificate is checked against the system's roots: one signed by a root the
//! system trusts is taken with no `--relay-ca`, one the system does not trust is not. (The
//! system's roots are pointed at a file of the test's own with `SSL_CERT_FILE`, in a child
//! process, since a test may not change its own environment.) The relay is the test's own,
//! on 127.0.0.1.
// The child tells its parent what happened on stdout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::sync::Arc;
use std::time::Duration;

use shard_net::identity::NodeIdentity;
use shard_net::relay::{Relay, RelayOptions};
use shard_net::wan::{IrohTransport, Relays, WanConfig};

/// Whether an endpoint told only `url` (no extra roots) reaches it within `limit`.
async fn reaches(url: &str, limit: Duration) -> bool {
    let identity = Arc::new(NodeIdentity::generate().unwrap());
    let config = WanConfig {
        relays: Relays::Own(vec![url.to_string()]),
        extra_roots: Vec::new(),
        bind: ([127, 0, 0, 1], 0).into(),
        relay_only: false,
    };
    let transport = IrohTransport::bind(identity, &config).await.unwrap();
    let online = transport.online(limit).await;
    transport.close().await;
    online
}

/// The relay's certificate and key, and where the roots the system is made to trust lie:
/// the relay's own certificate, or an unrelated one.
struct Setup {
    _dir: tempfile::TempDir,
    cert_pem: String,
    key_pem: String,
    trusted: std::path::PathBuf,
    unrelated: std::path::PathBuf,
    no_dir: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let relay = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let trusted = dir.path().join("trusted.pem");
    let unrelated = dir.path().join("unrelated.pem");
    std::fs::write(&trusted, relay.cert.pem()).unwrap();
    std::fs::write(&unrelated, other.cert.pem()).unwrap();
    let key_pem = relay.signing_key.serialize_pem();
    Setup {
        no_dir: dir.path().join("no-such-dir"),
        _dir: dir,
        cert_pem: relay.cert.pem(),
        key_pem,
        trusted,
        unrelated,
    }
}

/// Runs [`child_reaches_the_relay`] in a process of its own whose system roots are `roots`
/// (`SSL_CERT_FILE`; `SSL_CERT_DIR` pointed at nothing, so the machine's own do not count):
/// whether it reached the relay.
fn reached_with_roots(setup: &Setup, roots: &std::path::Path, wait: Duration) -> bool {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_reaches_the_relay",
            "--ignored",
            "--nocapture",
        ])
        .env("SSL_CERT_FILE", roots)
        .env("SSL_CERT_DIR", &setup.no_dir)
        .env("SHARD_TEST_RELAY_CERT", &setup.cert_pem)
        .env("SHARD_TEST_RELAY_KEY", &setup.key_pem)
        .env("SHARD_TEST_WAIT_MS", wait.as_millis().to_string())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && said.contains("running 1 test"),
        "the child failed: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if said.contains("REACHED yes") {
        true
    } else {
        // Not reached because the certificate was refused, not merely slow.
        assert!(
            said.contains("REACHED no") && said.contains("invalid peer certificate"),
            "{said}"
        );
        false
    }
}

#[test]
fn a_relay_certificate_is_trusted_by_the_systems_roots_alone() {
    let setup = setup();
    assert!(
        // Refused for 4 s: not taken (trusted, it is reached in well under a second).
        !reached_with_roots(&setup, &setup.unrelated, Duration::from_secs(4)),
        "a relay whose certificate no root vouches for was taken"
    );
    assert!(
        reached_with_roots(&setup, &setup.trusted, Duration::from_secs(20)),
        "the system's roots were not used for the relay's certificate"
    );
}

/// Not a test on its own: the child process of
/// [`a_relay_certificate_is_trusted_by_the_systems_roots_alone`], started with its roots in
/// the environment (which a test may not change in its own process). Starts an HTTPS relay
/// with the certificate it is given, and a node endpoint told only the relay's URL (no extra
/// roots); prints whether the endpoint reached it.
#[test]
#[ignore = "run by a_relay_certificate_is_trusted_by_the_systems_roots_alone in a process of its own"]
fn child_reaches_the_relay() {
    let cert = std::env::var("SHARD_TEST_RELAY_CERT").expect("run by the parent test");
    let key = std::env::var("SHARD_TEST_RELAY_KEY").expect("run by the parent test");
    let wait: u64 = std::env::var("SHARD_TEST_WAIT_MS")
        .expect("run by the parent test")
        .parse()
        .unwrap();
    // iroh's log says why a relay was not reached (the parent looks for the certificate's
    // refusal there).
    tracing_subscriber::fmt()
        .with_env_filter("iroh=debug,iroh_relay=debug")
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let relay = Relay::start(RelayOptions {
            listen: ([127, 0, 0, 1], 0).into(),
            tls: Some((cert.into_bytes(), key.into_bytes())),
            quic_port: 0,
        })
        .await
        .unwrap();
        let url = relay.url().to_string();
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        let reached = reaches(&url, Duration::from_millis(wait)).await;
        println!("REACHED {}", if reached { "yes" } else { "no" });
        relay.shutdown().await.unwrap();
    });
}
