//! The node commands: init, serve, status, invite, join, peers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use shard_http::{HttpOptions, HttpServer};
use shard_net::discovery::MdnsMode;
use shard_net::identity::fingerprint;
use shard_node::home::{Home, NodeConfig, StoreConfig};
use shard_node::node::{Node, RunOptions};

use shard_http::client::Client as ApiClient;

/// Prints an answer as `--json` shows it: one line, keys sorted.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_value(value)?);
    Ok(())
}

/// Parses sizes like `500M`, `50G`, `1T` or plain bytes.
pub fn parse_size(text: &str) -> Result<u64> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len()),
    );
    let value: f64 = digits
        .parse()
        .with_context(|| format!("{text:?} is not a size like 500M or 50G"))?;
    let scale: f64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches(['B', 'I'])
    {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => bail!("{text:?} has an unknown unit; use K, M, G or T"),
    };
    let bytes = value * scale;
    if !(1.0..=1e18).contains(&bytes) {
        bail!("{text:?} is out of range");
    }
    // 1 ≤ bytes ≤ 1e18 was checked above, so the conversion neither truncates nor loses a sign.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes.round() as u64)
}

/// `bytes` over `secs` as a human-readable rate ("12.3 MiB/s").
pub fn rate(bytes: u64, secs: f64) -> String {
    let per_sec = bytes as f64 / secs.max(1e-3);
    // Non-negative and far below u64::MAX for any real transfer.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let per_sec = per_sec.min(1e18) as u64;
    format!("{}/s", human(per_sec))
}

/// Human-readable bytes.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What `shard init` was given.
pub struct InitOptions {
    pub name: Option<String>,
    pub listen: SocketAddr,
    pub api: SocketAddr,
    pub ui: String,
    pub store: Option<PathBuf>,
    pub layout: String,
    pub quota: Option<String>,
    pub mdns: String,
    pub relays: Vec<String>,
    pub relay_ca: Option<PathBuf>,
}

/// `--relay` as given: none given, the config decides; "none" (alone), no relays; otherwise
/// URLs, each checked now so a typo is said before the node starts.
fn relay_choice(relays: Vec<String>) -> Result<Option<Vec<String>>> {
    if relays.is_empty() {
        return Ok(None);
    }
    if relays.iter().any(|r| r == "none") {
        if relays.len() > 1 {
            bail!("--relay none turns relays off; it cannot go with relay URLs");
        }
        return Ok(Some(Vec::new()));
    }
    shard_net::wan::parse_relays(&relays).map_err(|e| anyhow::anyhow!("--relay: {e}"))?;
    Ok(Some(relays))
}

/// A `--relay-ca` file, checked now (it must hold a certificate); made absolute, since the
/// node reads it relative to its home.
fn relay_ca_path(path: Option<PathBuf>) -> Result<Option<PathBuf>> {
    let Some(path) = path else { return Ok(None) };
    let pem = std::fs::read(&path)
        .with_context(|| format!("reading the relay certificate {}", path.display()))?;
    shard_net::wan::read_pem_certificates(&pem)
        .map_err(|e| anyhow::anyhow!("--relay-ca {}: {e}", path.display()))?;
    Ok(Some(std::path::absolute(&path)?))
}

pub fn init(home: &Home, json: bool, options: InitOptions) -> Result<()> {
    let InitOptions {
        name,
        listen,
        api,
        ui,
        store,
        layout,
        quota,
        mdns,
        relays,
        relay_ca,
    } = options;
    let net = shard_node::home::NetConfig {
        relays: relay_choice(relays)?,
        relay_ca: relay_ca_path(relay_ca)?,
    };
    let ui = ui.as_str();
    let mdns = mdns.as_str();
    if !api.ip().is_loopback() {
        bail!("the control API must listen on a loopback address such as 127.0.0.1, not {api}");
    }
    let ui: Option<SocketAddr> = match ui {
        "off" => None,
        addr => Some(addr.parse().map_err(|_| {
            anyhow::anyhow!("--ui {addr:?} is not an address such as 127.0.0.1:7716, nor \"off\"")
        })?),
    };
    let name = name
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "shard-node".into());
    let config = NodeConfig {
        name,
        listen,
        api,
        ui,
        store: StoreConfig {
            root: store,
            layout,
            quota_bytes: quota.as_deref().map(parse_size).transpose()?,
            deleted_grace_days: 7,
        },
        discovery: shard_node::home::DiscoveryConfig {
            mdns: match mdns {
                "quiet" => MdnsMode::Quiet,
                "off" => MdnsMode::Off,
                _ => MdnsMode::On,
            },
            ..Default::default()
        },
        health: shard_node::home::HealthConfig::default(),
        web: shard_node::home::WebConfig::default(),
        net,
        backup: shard_node::home::BackupConfig::default(),
        vault: shard_node::home::VaultConfig::default(),
    };
    let identity = home.init(&config)?;
    let id = fingerprint(&identity.node_id());
    if json {
        print_json(&json!({"name": config.name, "id": id, "home": home.root()}))?;
    } else {
        println!(
            "created node {:?} in {}",
            config.name,
            home.root().display()
        );
        println!("node id: {id}");
        println!("next: `shard serve` to run it, then `shard invite` / `shard join` to pair it");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
/// What `shard serve` was given.
pub struct ServeOptions {
    pub listen: Option<SocketAddr>,
    pub api: Option<SocketAddr>,
    pub ui: Option<SocketAddr>,
    pub ui_public: bool,
    pub login: Option<String>,
    pub password_file: Option<PathBuf>,
    pub no_mdns: bool,
    pub mdns_interfaces: Vec<String>,
    pub relays: Vec<String>,
    pub relay_ca: Option<PathBuf>,
}

pub fn serve(home: &Home, options: ServeOptions) -> Result<()> {
    let ServeOptions {
        listen,
        api,
        ui,
        ui_public,
        login,
        password_file,
        no_mdns,
        mdns_interfaces,
        relays,
        relay_ca,
    } = options;
    let relays = relay_choice(relays)?;
    let relay_ca = relay_ca_path(relay_ca)?;
    let login = login.as_deref();
    let password_file = password_file.as_deref();
    // Asked before anything starts, so a prompt is not buried under log lines.
    let passphrase = match login {
        Some(user) => Some(crate::accounts::passphrase(password_file, user)?),
        None => None,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let options = RunOptions {
            listen,
            mdns: no_mdns.then_some(MdnsMode::Quiet),
            mdns_interfaces: (!mdns_interfaces.is_empty()).then_some(mdns_interfaces),
            relays,
            relay_ca,
            ..RunOptions::default()
        };
        let node = Node::builder(home.clone()).options(options);
        // A test adversary's lies, when the test build asks for them (never in a release).
        #[cfg(feature = "adversary")]
        let node = node.store_layer(shard_testkit::adversary::Adversary::from_env);
        let node = node.start().await?;
        let http = HttpOptions { api, ui, ui_public };
        let http = match HttpServer::start(node.clone(), &http).await {
            Ok(http) => http,
            Err(e) => {
                node.shutdown();
                node.stopped(Duration::from_secs(5)).await;
                return Err(e.into());
            }
        };
        if let (Some(user), Some(pass)) = (login, passphrase) {
            let bytes = zeroize::Zeroizing::new(pass.as_bytes().to_vec());
            match node.login_as_owner(user, bytes).await {
                Ok(()) => {}
                // Started unattended (a service's password file): a passphrase changed since
                // must not take the node down in a restart loop, with the shares it keeps for
                // peers and other accounts. It serves locked and says so (`status` exits 1
                // while the account's backups wait).
                Err(e) if password_file.is_some() => tracing::error!(
                    "account {user} stays locked: {e}; the passphrase in the password file no longer unlocks it (update the file, then `shard login {user}` or restart)"
                ),
                Err(e) => {
                    node.shutdown();
                    node.stopped(Duration::from_secs(5)).await;
                    return Err(e.into());
                }
            }
        }
        http.announce()?;
        let status = node.status()?;
        println!(
            "node {:?} ({}) serving peers on {}; control API ready; Ctrl-C to stop",
            status.name, status.short_id, status.listen
        );
        if let Some(link) = http.ui_link()? {
            if link.contains("#setup=") {
                println!(
                    "web UI: {link}\n  (no account yet: this link creates the first one, the node's administrator; it works once, for an hour — `shard ui-link` prints a fresh one)"
                );
            } else {
                println!("web UI: {link}");
            }
        }
        let mut stop = node.shutdown_signal();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
            _ = term.recv() => tracing::info!("terminated; stopping"),
            _ = stop.wait_for(|s| *s) => tracing::info!("stop requested; stopping"),
        }
        node.shutdown();
        node.stopped(Duration::from_secs(10)).await;
        http.stopped(Duration::from_secs(5)).await;
        println!("node stopped");
        Ok::<(), anyhow::Error>(())
    })
}

/// `shard status`; `false` when backups need attention (exit code 1).
pub fn status(home: &Home, json: bool) -> Result<bool> {
    let status = ApiClient::for_home(home)?.status()?;
    if json {
        print_json(&status)?;
    } else {
        println!("node {} ({})", status.name, status.id);
        println!("peers: {} paired, {} online", status.peers, status.online);
        println!("listening on {}", status.listen);
        match &status.wan {
            None => println!("relays: none (peers on the LAN or at forwarded addresses only)"),
            Some(wan) => {
                if wan.relays.is_empty() {
                    println!("relays: none reachable now");
                } else {
                    println!("relays: {}", wan.relays.join(", "));
                }
                for why in &wan.unreachable {
                    println!("  unreachable: {why}");
                }
                println!("directly reachable: {}", reachability(wan));
            }
        }
        for alert in &status.backups {
            match &alert.job {
                Some(job) => println!(
                    "backup {job} ({}) needs attention: {}",
                    alert.user, alert.reason
                ),
                None => println!("backups wait: {}", alert.reason),
            }
        }
    }
    Ok(status.backups.is_empty())
}

/// Whether `ip` could be reached from the internet as it is: not private, shared (CGNAT),
/// loopback, link-local or unique-local.
fn public(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let shared = a == 100 && (b & 0xc0) == 64;
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || shared)
        }
        std::net::IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_unique_local()
                || v6.is_unicast_link_local())
        }
    }
}

/// What `shard status` says of whether peers in other homes get a direct path to this node:
/// what was measured first (peers connected directly now, whichever side dialed), then what
/// a relay saw (the outside of a NAT) or the machine's own public addresses.
fn reachability(wan: &shard_node::node::WanReport) -> String {
    let (direct, relayed) = (wan.peers_direct, wan.peers_relayed);
    let paths = match (direct, relayed) {
        (0, 0) => "no peer connected over iroh now".to_string(),
        (0, r) => format!("no peer connected directly, {r} through a relay"),
        (1, r) => format!("1 peer connected directly now, {r} through a relay"),
        (d, r) => format!("{d} peers connected directly now, {r} through a relay"),
    };
    let own: Vec<&String> = wan
        .direct
        .iter()
        .filter(|a| {
            a.parse::<std::net::SocketAddr>()
                .is_ok_and(|a| public(a.ip()))
        })
        .collect();
    let own = own
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let seen = if !wan.outside.is_empty() {
        format!("behind a NAT: relays see it at {}", wan.outside.join(", "))
    } else if wan.relays.is_empty() {
        "no relay reached, so its outside address is not known".to_string()
    } else if !own.is_empty() {
        format!("a public address of its own: {own}")
    } else {
        "no relay has reported its outside address (a relay over plain HTTP reports none)"
            .to_string()
    };
    if direct > 0 {
        format!("yes, {paths}; {seen}")
    } else if !wan.outside.is_empty() {
        format!(
            "not yet ({paths}); {seen}: a peer in another home gets a direct path once a hole \
             is punched through both NATs (a NAT that gives every destination another port \
             prevents it); until then, through a relay"
        )
    } else if !own.is_empty() && !wan.relays.is_empty() {
        format!("at {own} unless a firewall blocks it ({paths})")
    } else {
        format!("not known ({paths}); {seen}")
    }
}

pub fn invite(home: &Home, json: bool, valid_for: u64) -> Result<()> {
    let answer = ApiClient::for_home(home)?.invite(Some(valid_for))?;
    if json {
        print_json(&answer)?;
    } else {
        let code = &answer.code;
        println!("{code}");
        eprintln!(
            "On the other machine run `shard join {code}` within {} minutes. The code works once.",
            answer.valid_for_secs.div_ceil(60)
        );
    }
    Ok(())
}

/// Pairs with the node that printed the code: given, or read from standard input (or typed at
/// a prompt) so that it stays off the command line.
pub fn join(home: &Home, json: bool, code: Option<String>) -> Result<()> {
    let code = match code.filter(|c| c != "-") {
        Some(code) => zeroize::Zeroizing::new(code),
        None => crate::accounts::read_secret_line(
            "Invite code: ",
            "the invite code",
            "`shard join CODE`",
        )?,
    };
    let answer = ApiClient::for_home(home)?.join(code.as_str())?;
    if json {
        print_json(&answer)?;
    } else {
        println!("paired with {:?} ({})", answer.peer.name, answer.peer.id);
    }
    Ok(())
}

pub fn peers(home: &Home, json: bool) -> Result<()> {
    let answer = ApiClient::for_home(home)?.peers()?;
    if json {
        return print_json(&answer);
    }
    let (peers, nearby) = (answer.peers, answer.nearby);
    if !nearby.is_empty() {
        println!("nearby, not paired (pair with `shard invite` / `shard join`):");
        for n in &nearby {
            println!(
                "  {:<20} {}  {}",
                n.name,
                n.id,
                n.addrs.first().map_or("-", String::as_str)
            );
        }
        println!();
    }
    if peers.is_empty() {
        println!(
            "no paired peers yet: run `shard invite` here and `shard join CODE` on the other machine"
        );
        return Ok(());
    }
    println!(
        "{:<20} {:<10} {:<8} {:<6} {:<22} {:>9}  USED",
        "NAME", "ID", "STATE", "PATH", "ADDRESS", "RTT"
    );
    for p in peers {
        let state = if p.online { "online" } else { "offline" };
        let rtt = p
            .rtt_ms
            .map(|ms| format!("{ms:.1} ms"))
            .unwrap_or_else(|| "-".into());
        let used = match (p.used, p.quota) {
            (Some(u), Some(q)) => format!("{} of {}", human(u), human(q)),
            (Some(u), None) => human(u),
            _ => "-".into(),
        };
        let path = p.path.as_deref().unwrap_or("-");
        // Over a relay there is no address of the peer's to show.
        let addr = match p.path.as_deref() {
            Some("relay") => "(relayed)".to_string(),
            _ => p
                .addr
                .clone()
                .or_else(|| p.addrs.iter().find(|a| !a.starts_with("iroh:")).cloned())
                .unwrap_or_else(|| "-".into()),
        };
        println!(
            "{:<20} {:<10} {:<8} {:<6} {:<22} {:>9}  {used}",
            p.name, p.short_id, state, path, addr, rtt
        );
    }
    Ok(())
}

pub fn peers_add(home: &Home, json: bool, addr: &str) -> Result<()> {
    let answer = ApiClient::for_home(home)?.add_peer(addr)?;
    if json {
        print_json(&answer)?;
    } else {
        println!("will look for paired peers at {addr} too");
    }
    Ok(())
}

/// `shard ui-link`: the web UI's address, with a one-time setup token while the node has no
/// account yet.
pub fn ui_link(home: &Home, json: bool) -> Result<()> {
    let answer = ApiClient::for_home(home)?.ui_link()?;
    if json {
        return print_json(&answer);
    }
    match answer.url {
        Some(url) => {
            println!("{url}");
            if answer.setup {
                eprintln!(
                    "Open it to create the node's first account (its administrator). It works once, for an hour."
                );
            }
        }
        None => bail!(
            "this node runs no web UI\n  hint: start it with `shard serve --ui 127.0.0.1:7716`"
        ),
    }
    Ok(())
}

/// Runs a relay until Ctrl-C: over HTTPS with `tls` (certificate and key files), or plain HTTP.
pub fn relay(
    listen: SocketAddr,
    tls: Option<(PathBuf, PathBuf)>,
    insecure_http: bool,
    quic_port: u16,
) -> Result<()> {
    if tls.is_none() && !insecure_http {
        bail!(
            "give the relay a certificate (--cert PEM --key PEM), or run it without one with --insecure-http"
        );
    }
    let tls = match tls {
        Some((cert, key)) => Some((
            std::fs::read(&cert).with_context(|| format!("reading {}", cert.display()))?,
            std::fs::read(&key).with_context(|| format!("reading {}", key.display()))?,
        )),
        None => None,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let relay = shard_net::relay::Relay::start(shard_net::relay::RelayOptions {
            listen,
            tls,
            quic_port,
        })
        .await?;
        println!("relay: {}", relay.url());
        match relay.quic_addr() {
            Some(quic) => println!("QUIC address discovery on udp {quic}"),
            None => println!(
                "plain HTTP: relaying only, no address discovery, so no hole punching (peers stay on the relay); the relay link is protected only by the peers' own encryption"
            ),
        }
        println!("give nodes `--relay {}`; Ctrl-C to stop", relay.url());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        relay.shutdown().await?;
        println!("relay stopped");
        Ok::<(), anyhow::Error>(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500M").unwrap(), 500 << 20);
        assert_eq!(parse_size("50G").unwrap(), 50 << 30);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("0").is_err());
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(12), "12 B");
    }

    fn wan(relays: &[&str], direct: &[&str], outside: &[&str], paths: (usize, usize)) -> String {
        let strings = |l: &[&str]| l.iter().map(ToString::to_string).collect();
        reachability(&shard_node::node::WanReport {
            key: String::new(),
            relays: strings(relays),
            unreachable: Vec::new(),
            direct: strings(direct),
            outside: strings(outside),
            peers_direct: paths.0,
            peers_relayed: paths.1,
        })
    }

    #[test]
    fn reachability_says_what_was_measured_and_never_offers_a_private_address() {
        let relay = ["https://relay.example/"];
        let lan = "192.168.1.10:4000";
        // A punched hole.
        assert_eq!(
            wan(
                &relay,
                &[lan, "203.0.113.7:61000"],
                &["203.0.113.7:61000"],
                (1, 2)
            ),
            "yes, 1 peer connected directly now, 2 through a relay; \
             behind a NAT: relays see it at 203.0.113.7:61000"
        );
        // Behind a NAT, nobody direct yet.
        assert!(
            wan(&relay, &[lan], &["203.0.113.7:61000"], (0, 1)).starts_with(
                "not yet (no peer connected directly, 1 through a relay); behind a NAT: \
                 relays see it at 203.0.113.7:61000: a peer in another home"
            )
        );
        // Only private addresses and no outside one reported (a plain-HTTP relay, or none
        // answered yet): not known, and the LAN address is not offered.
        for relays in [&relay[..], &[]] {
            let said = wan(
                relays,
                &[lan, "[fd00::1]:4000", "100.64.0.9:4000"],
                &[],
                (0, 0),
            );
            assert!(
                said.starts_with("not known (no peer connected over iroh now)"),
                "{said}"
            );
            assert!(
                !said.contains("192.168") && !said.contains("fd00") && !said.contains("100.64")
            );
        }
        // A public address of its own.
        assert_eq!(
            wan(&relay, &[lan, "198.51.100.4:4000"], &[], (0, 0)),
            "at 198.51.100.4:4000 unless a firewall blocks it (no peer connected over iroh now)"
        );
    }
}
