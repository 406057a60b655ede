//! `shard`: keep files safe by spreading them, encrypted and erasure-coded, over trusted machines.
//!
//! This binary parses arguments, prompts and prints; everything worth reusing lives in the
//! `shard-*` libraries. Exit codes: 0 success, 1 failure, 2 usage error.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// The doc comments of the arguments are the help text `shard --help` prints, not rustdoc: a
// `<home>` there is a placeholder for the user, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

mod accounts;
mod backup;
mod demo;
mod health;
mod network;
mod service;
mod vault;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shard_node::home::Home;

#[derive(Parser)]
#[command(
    name = "shard",
    version,
    about = "Keep files safe on machines you trust: encrypted, erasure-coded, out of sight."
)]
struct Cli {
    /// The node's home folder [default: $XDG_DATA_HOME/shard or ~/.local/share/shard].
    #[arg(long, global = true, env = "SHARD_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// Print the result as one JSON value instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a node: identity key, configuration, catalog and share store.
    Init {
        /// The node's name, shown to its peers [default: the host name].
        #[arg(long)]
        name: Option<String>,
        /// Address to listen on for peers.
        #[arg(long, default_value = "0.0.0.0:7714")]
        listen: SocketAddr,
        /// Address of the control API (loopback only).
        #[arg(long, default_value = "127.0.0.1:7715")]
        api: SocketAddr,
        /// Address of the web UI, or "off".
        #[arg(long, default_value = "127.0.0.1:7716")]
        ui: String,
        /// Folder for the shares kept for others [default: <home>/store].
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// Share layout: scatter (random folders, harmless names) or plain.
        #[arg(long, default_value = "scatter", value_parser = ["scatter", "plain"])]
        layout: String,
        /// Most space kept for others, e.g. 50G or 500M [default: no limit but the disk].
        #[arg(long, value_name = "SIZE")]
        quota: Option<String>,
        /// mDNS on the LAN: on (announce and browse), quiet (browse only) or off.
        #[arg(long, default_value = "on", value_parser = ["on", "quiet", "off"])]
        mdns: String,
        /// A relay for peers in other homes, `https://HOST:PORT` (repeatable); "none": no
        /// relays, LAN and forwarded addresses only [default: the public relays].
        #[arg(long = "relay", value_name = "URL")]
        relays: Vec<String>,
        /// Trust this PEM certificate for relays too (a relay with a self-signed certificate).
        #[arg(long, value_name = "PEM")]
        relay_ca: Option<PathBuf>,
    },
    /// Run the node: serve paired peers, keep connections to them, answer the CLI.
    Serve {
        /// Address to listen on for peers [default: from the config].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Address of the control API [default: from the config].
        #[arg(long)]
        api: Option<SocketAddr>,
        /// Address of the web UI [default: from the config].
        #[arg(long)]
        ui: Option<SocketAddr>,
        /// Allow the web UI on an address other machines can reach (plain HTTP: think twice).
        #[arg(long)]
        ui_public: bool,
        /// Unlock this account at start (passphrase from SHARD_PASSWORD, --password-file or a prompt).
        #[arg(long, value_name = "USER")]
        login: Option<String>,
        /// Read the passphrase from this file.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Do not announce this node on the LAN (still look for paired peers).
        #[arg(long)]
        no_mdns: bool,
        /// Use mDNS on this interface only (repeatable) [default: every up, non-loopback one].
        #[arg(long = "mdns-interface", value_name = "IF")]
        mdns_interfaces: Vec<String>,
        /// A relay for peers in other homes (repeatable); "none": no relays [default: from
        /// the config].
        #[arg(long = "relay", value_name = "URL")]
        relays: Vec<String>,
        /// Trust this PEM certificate for relays too [default: from the config].
        #[arg(long, value_name = "PEM")]
        relay_ca: Option<PathBuf>,
    },
    /// Run a relay of your own for nodes in different homes (iroh's relay server). Give nodes
    /// its URL with `--relay`.
    Relay {
        /// Address to serve on, e.g. 0.0.0.0:443.
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
        /// The certificate chain, PEM (with --key: HTTPS, plus QUIC address discovery).
        #[arg(long, value_name = "PEM", requires = "key")]
        cert: Option<PathBuf>,
        /// The certificate's private key, PEM.
        #[arg(long, value_name = "PEM", requires = "cert")]
        key: Option<PathBuf>,
        /// Serve plain HTTP without a certificate: relaying only, no address discovery (so no
        /// hole punching: peers stay on the relay).
        #[arg(long, conflicts_with_all = ["cert", "key"])]
        insecure_http: bool,
        /// UDP port of the QUIC address discovery (nodes assume 7842).
        #[arg(long, default_value_t = shard_net::relay::DEFAULT_QUIC_PORT)]
        quic_port: u16,
    },
    /// Accounts: each has its own vault.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Bring a vault back on this (new) node from its recovery code and the old peers.
    ///
    /// Pair this node with at least k of the old peers first; then the catalog is fetched
    /// from them, the vault handed over to this node, and the account created again with a
    /// new passphrase.
    Recover {
        /// The recovery code. Other users of this machine can read a command line: prefer the
        /// prompt, standard input, --code-file or SHARD_RECOVERY_CODE.
        #[arg(long)]
        code: Option<String>,
        /// Read the recovery code from this file.
        #[arg(long, value_name = "FILE", conflicts_with = "code")]
        code_file: Option<PathBuf>,
        /// Recover the catalog as catalog head N left it [default: the newest]. Peers keep the
        /// heads they replaced for their grace period: the way back when everything was
        /// removed by whoever had the vault unlocked. The output lists the heads available.
        #[arg(long, value_name = "N")]
        head: Option<u64>,
        /// Name of the recovered account [default: its old name].
        #[arg(long)]
        user: Option<String>,
        /// Read the new passphrase from this file.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Unlock an account's vault in the running node.
    Login {
        /// The account.
        user: String,
        /// Read the passphrase from this file.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Lock the vault again (every unlocked one without USER).
    Logout {
        /// The account.
        user: Option<String>,
    },
    /// Store files or folders (name in the vault: the last path component, or --as).
    Put {
        /// Files and folders to store.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Name in the vault (one path only).
        #[arg(long = "as", value_name = "NAME")]
        name: Option<String>,
        /// Shares per chunk and how many restore it, e.g. 3/5 [default: from the nodes online].
        #[arg(long, value_name = "K/N", value_parser = shares_arg)]
        shares: Option<String>,
        /// Delete the originals once stored and read back identical.
        #[arg(long = "move")]
        move_original: bool,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// Restore a file or folder: NAME, NAME@VERSION, or of a backup job NAME@N (snapshot N),
    /// NAME@2026-11-30 (that day's newest snapshot), NAME@N/sub/path (one file or folder of
    /// it); a job's NAME alone is its newest snapshot.
    Get {
        /// What to restore.
        name: String,
        /// Where [default: ./NAME].
        #[arg(short = 'o', long = "output", value_name = "PATH")]
        out: Option<PathBuf>,
        /// Overwrite what exists.
        #[arg(long)]
        force: bool,
        /// Restore setuid, setgid and sticky bits as stored (by default they are cleared: a
        /// restored file never runs as its restorer by accident).
        #[arg(long)]
        keep_special_bits: bool,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// List stored files: size, versions, health.
    Ls {
        /// Only names starting with this.
        prefix: Option<String>,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// Remove a stored file or folder, all its versions: to the trash, where it stays
    /// `[vault] trash_days` (30) and `shard trash restore` brings it back.
    Rm {
        /// What to remove.
        name: String,
        /// Delete it for good now, shares and all, instead.
        #[arg(long)]
        now: bool,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// What `rm` removed lately: list it, bring it back, or delete it for good.
    Trash {
        #[command(subcommand)]
        command: Option<TrashCommand>,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// Is every share where it should be? Files by health: healthy, degraded, lost, unknown.
    /// Exit code 1 if anything is degraded or lost.
    Check {
        /// Only these files or folders [default: everything].
        names: Vec<String>,
        /// Also fetch the shares and verify their bytes: all, or a random sample (e.g. 10%).
        #[arg(long, value_name = "PCT", num_args = 0..=1, default_missing_value = "100%", require_equals = true, value_parser = read_data_arg)]
        read_data: Option<String>,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// Rebuild missing and bad shares from good ones, onto nodes that hold none of the chunk.
    Repair {
        /// Only these files or folders [default: everything].
        names: Vec<String>,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// Give back the room of removed files: rewrite packs whose dead share reached PCT, and
    /// remove packs no file uses (left by a stopped put).
    Prune {
        /// Rewrite packs with at least this percentage of dead bytes (0: any dead byte).
        #[arg(long, value_name = "PCT", default_value_t = 5, value_parser = clap::value_parser!(u8).range(0..=100))]
        dead: u8,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// This node: name, id, addresses, peers online, relays; exit code 1 when a backup job
    /// failed its last run or has not succeeded for twice its period, or its account is locked.
    Status,
    /// Backups that run themselves: a folder stored again on a schedule as a new snapshot.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// A backup job's snapshots: number, time, files, size, what changed since the one before.
    Snapshots {
        /// The job.
        name: String,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// Paths added, removed and changed between two snapshots: NAME@A NAME@B (numbers or days
    /// like 2026-11-30).
    Diff {
        /// The older snapshot, NAME@A.
        from: String,
        /// The newer snapshot, NAME@B.
        to: String,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// Print the web UI's address (with a one-time setup link while the node has no account).
    UiLink,
    /// Print a one-time pairing code (valid 10 minutes, single use).
    Invite {
        /// Validity in seconds (at most 3600).
        #[arg(long, value_name = "SECS", default_value_t = 600)]
        valid_for: u64,
    },
    /// Pair with the node that printed CODE.
    Join {
        /// The code `shard invite` printed on the other node [default: read from standard
        /// input, or typed at a prompt; `-` reads standard input too].
        code: Option<String>,
    },
    /// Paired peers (online state, address, round-trip time, usage) and nodes nearby.
    Peers {
        #[command(subcommand)]
        action: Option<PeersAction>,
    },
    /// Run the node as a systemd user service, unlocking an account from a password file, so
    /// backups run whoever is logged in (`install`, `status`, `uninstall`).
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Five nodes on 127.0.0.1: store a sample 3-of-5, stop two, restore it; then keep running.
    /// With --home DIR the nodes' homes are kept there; otherwise they are temporary.
    Demo,
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Write the unit (~/.config/systemd/user/shard.service) and enable it.
    Install {
        /// The account it unlocks.
        #[arg(long)]
        user: String,
        /// The file holding its passphrase (mode 0600, yours).
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
        /// Only write the unit; do not enable or start it.
        #[arg(long)]
        no_enable: bool,
    },
    /// Whether the unit is installed and running.
    Status,
    /// Stop and disable the unit, and remove it.
    Uninstall,
}

#[derive(Subcommand)]
enum TrashCommand {
    /// What is in the trash (the default).
    Ls {
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// Bring a name back (a folder with what its removal took along).
    Restore {
        /// The name, as `shard trash` lists it.
        name: String,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// Delete a name from the trash for good, or everything with --all; the space returns.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["name", "all"])))]
    Empty {
        /// The name, as `shard trash` lists it.
        name: Option<String>,
        /// Everything in the trash.
        #[arg(long, conflicts_with = "name")]
        all: bool,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Make a job: back up PATH every period, keeping snapshots by the keep rules.
    Add {
        /// The folder.
        path: PathBuf,
        /// The job's name, and its snapshots' name in the vault [default: the folder's name].
        #[arg(long = "as", value_name = "NAME")]
        name: Option<String>,
        /// How often: 30m, 6h, 1d … [default: 1d; with --watch, the shortest gap between
        /// runs: 5m].
        #[arg(long, value_name = "DURATION")]
        every: Option<String>,
        /// Which snapshots to keep, restic's words: last=10,daily=7,weekly=4,monthly=12
        /// [default: that].
        #[arg(long, value_name = "RULES")]
        keep: Option<String>,
        /// Leave out what matches (gitignore syntax; repeatable). A `.shardignore` file at the
        /// top of the folder adds more.
        #[arg(long, value_name = "PATTERN")]
        exclude: Vec<String>,
        /// Shares per chunk and how many restore it, e.g. 3/5 [default: from the nodes online].
        #[arg(long, value_name = "K/N", value_parser = shares_arg)]
        shares: Option<String>,
        /// Also run soon after files in the folder change (once quiet for a few seconds);
        /// --every is then the shortest gap between runs [default: 5m], and it runs at least
        /// daily.
        #[arg(long)]
        watch: bool,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// The jobs: folder, period, last run (time, outcome, files, bytes sent), next run,
    /// snapshots kept.
    Ls {
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// Run a job now, with progress. Exit code 1 when it failed or was partial.
    Run {
        /// The job.
        name: String,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
    /// Stop a job. Its snapshots stay (restorable as NAME@N) unless --forget-snapshots.
    Rm {
        /// The job.
        name: String,
        /// Forget its snapshots too and remove the stored tree.
        #[arg(long)]
        forget_snapshots: bool,
        /// The account (when several are unlocked).
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Subcommand)]
enum PeersAction {
    /// Unpair a peer: its shares are moved to other nodes first (unless --now).
    Rm {
        /// Its id (full or short) or name.
        id: String,
        /// Forget it at once; the automatic repair rebuilds its shares later.
        #[arg(long)]
        now: bool,
    },
    /// A static address where paired peers may be found (tried for each; the handshake decides).
    Add {
        /// host:port
        addr: String,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account; prints its recovery code once.
    Create {
        /// The account's name.
        user: String,
        /// Read the passphrase from this file.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// The node's accounts: files stored, locked or unlocked.
    Ls,
    /// Change an account's passphrase (the vault, its files and its recovery code stay).
    Passwd {
        /// The account.
        user: String,
        /// Read the current passphrase from this file [default: SHARD_PASSWORD or a prompt].
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Read the new passphrase from this file [default: SHARD_NEW_PASSWORD or a prompt].
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// Remove an account, unlocked in the running node (refused while it has files, unless --purge).
    Rm {
        /// The account.
        user: String,
        /// Delete its files from every peer with it.
        #[arg(long)]
        purge: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Show an account's recovery code again (after its passphrase).
    RecoveryCode {
        /// The account.
        user: String,
        /// Read the passphrase from this file.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
}

/// `--shares K/N`, checked before anything runs: a malformed value is a usage error (exit 2).
/// The node parses it again with the same parser.
fn shares_arg(text: &str) -> Result<String, String> {
    text.parse::<shard_store::Redundancy>()
        .map(|_| text.to_string())
        .map_err(|e| e.to_string())
}

/// `--read-data=PCT`, checked before anything runs (exit 2 when malformed).
fn read_data_arg(text: &str) -> Result<String, String> {
    health::read_fraction(Some(text))
        .map(|_| text.to_string())
        .map_err(|e| e.to_string())
}

fn default_home() -> PathBuf {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("shard");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/shard")
}

/// jemalloc, not glibc's malloc: a node allocates and frees pack and share buffers of 4–16
/// MiB all day, which glibc keeps in its heaps (it raises its mmap threshold to the largest
/// block freed), so every operation started from what the last one left; jemalloc gives
/// freed pages back to the system as it goes on allocating (its decay), so a busy node's
/// memory follows what it holds (BENCHMARKS.md, "jemalloc as the `shard` binary's allocator").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cli_home = cli.home.clone();
    let home = Home::new(cli.home.clone().unwrap_or_else(default_home));
    let json = cli.json;
    let result = match cli.command {
        Command::Init {
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
        } => network::init(
            &home,
            json,
            network::InitOptions {
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
            },
        ),
        Command::Serve {
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
        } => network::serve(
            &home,
            network::ServeOptions {
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
            },
        ),
        Command::Relay {
            listen,
            cert,
            key,
            insecure_http,
            quic_port,
        } => network::relay(listen, cert.zip(key), insecure_http, quic_port),
        Command::Account(AccountCommand::Create {
            user,
            password_file,
        }) => accounts::create(&home, json, &user, password_file.as_deref()),
        Command::Account(AccountCommand::Ls) => accounts::ls(&home, json),
        Command::Account(AccountCommand::Passwd {
            user,
            password_file,
            new_password_file,
        }) => accounts::passwd(
            &home,
            json,
            &user,
            password_file.as_deref(),
            new_password_file.as_deref(),
        ),
        Command::Account(AccountCommand::Rm { user, purge, yes }) => {
            accounts::rm(&home, json, &user, purge, yes)
        }
        Command::Account(AccountCommand::RecoveryCode {
            user,
            password_file,
        }) => accounts::recovery_code(&home, json, &user, password_file.as_deref()),
        Command::Recover {
            code,
            code_file,
            head,
            user,
            password_file,
        } => accounts::recover(
            &home,
            json,
            accounts::CodeSource::new(code, code_file),
            head,
            user.as_deref(),
            password_file.as_deref(),
        ),
        Command::Login {
            user,
            password_file,
        } => vault::login(&home, json, &user, password_file.as_deref()),
        Command::Logout { user } => vault::logout(&home, json, user.as_deref()),
        Command::Put {
            paths,
            name,
            shares,
            move_original,
            user,
        } => vault::put(
            &home,
            json,
            &paths,
            name.as_deref(),
            shares.as_deref(),
            move_original,
            user.as_deref(),
        ),
        Command::Get {
            name,
            out,
            force,
            keep_special_bits,
            user,
        } => vault::get(
            &home,
            json,
            &name,
            vault::Restore {
                out: out.as_deref(),
                force,
                keep_special_bits,
            },
            user.as_deref(),
        ),
        Command::Ls { prefix, user } => vault::ls(&home, json, prefix.as_deref(), user.as_deref()),
        Command::Rm { name, now, user } => vault::rm(&home, json, &name, now, user.as_deref()),
        Command::Trash { command, user } => match command {
            None => vault::trash(&home, json, user.as_deref()),
            Some(TrashCommand::Ls { user: u }) => vault::trash(&home, json, u.or(user).as_deref()),
            Some(TrashCommand::Restore { name, user: u }) => {
                vault::trash_restore(&home, json, &name, u.or(user).as_deref())
            }
            Some(TrashCommand::Empty { name, all, user: u }) => {
                vault::trash_empty(&home, json, name.as_deref(), all, u.or(user).as_deref())
            }
        },
        Command::Check {
            names,
            read_data,
            user,
        } => match health::check(&home, json, &names, read_data.as_deref(), user.as_deref()) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::Repair { names, user } => {
            match health::repair(&home, json, &names, user.as_deref()) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::FAILURE,
                Err(e) => Err(e),
            }
        }
        Command::Prune { dead, user } => match health::prune(&home, json, dead, user.as_deref()) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::Status => match network::status(&home, json) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::Invite { valid_for } => network::invite(&home, json, valid_for),
        Command::Join { code } => network::join(&home, json, code),
        Command::UiLink => network::ui_link(&home, json),
        Command::Peers { action: None } => network::peers(&home, json),
        Command::Peers {
            action: Some(PeersAction::Add { addr }),
        } => network::peers_add(&home, json, &addr),
        Command::Peers {
            action: Some(PeersAction::Rm { id, now }),
        } => health::peers_rm(&home, json, &id, now),
        Command::Demo => demo::run(cli_home),
        Command::Service(ServiceCommand::Install {
            user,
            password_file,
            no_enable,
        }) => service::install(&home, json, &user, &password_file, !no_enable),
        Command::Service(ServiceCommand::Status) => service::status(json),
        Command::Service(ServiceCommand::Uninstall) => service::uninstall(json),
        Command::Backup(BackupCommand::Add {
            path,
            name,
            every,
            keep,
            exclude,
            shares,
            watch,
            user,
        }) => backup::add(
            &home,
            json,
            backup::NewJob {
                path,
                name,
                every,
                keep,
                exclude,
                shares,
                watch,
            },
            user.as_deref(),
        ),
        Command::Backup(BackupCommand::Ls { user }) => backup::ls(&home, json, user.as_deref()),
        Command::Backup(BackupCommand::Run { name, user }) => {
            match backup::run(&home, json, &name, user.as_deref()) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::FAILURE,
                Err(e) => Err(e),
            }
        }
        Command::Backup(BackupCommand::Rm {
            name,
            forget_snapshots,
            user,
        }) => backup::rm(&home, json, &name, forget_snapshots, user.as_deref()),
        Command::Snapshots { name, user } => backup::snapshots(&home, json, &name, user.as_deref()),
        Command::Diff { from, to, user } => backup::diff(&home, json, &from, &to, user.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(hint) = hint_of(&e) {
                eprintln!("  hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The fix the engine or the HTTP layer gives for an error this process met itself (errors
/// from the running node arrive with theirs already, through the API).
fn hint_of(e: &anyhow::Error) -> Option<&'static str> {
    if let Some(e) = e.downcast_ref::<shard_node::Error>() {
        return Some(e.hint());
    }
    e.downcast_ref::<shard_http::StartError>()
        .map(shard_http::StartError::hint)
}
