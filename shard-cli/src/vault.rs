//! The vault commands: account create, login, logout, put, get, ls, rm.

use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use shard_crypto::{KdfParams, KeyRecord, VaultKey, encode_recovery_code};
use shard_net::home::Home;
use zeroize::Zeroizing;

use crate::client::ApiClient;
use crate::network::{human, rate};

/// Where a passphrase comes from: `--password-file`, `SHARD_PASSWORD`, or a prompt.
pub fn passphrase(file: Option<&Path>, prompt: &str, confirm: bool) -> Result<Zeroizing<String>> {
    if let Some(path) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        );
        return Ok(Zeroizing::new(
            text.trim_end_matches(['\n', '\r']).to_string(),
        ));
    }
    if let Ok(p) = std::env::var("SHARD_PASSWORD") {
        return Ok(Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "a passphrase is needed\n  hint: type it at a terminal, or use SHARD_PASSWORD or --password-file"
        );
    }
    let first =
        Zeroizing::new(rpassword::prompt_password(prompt).context("reading the passphrase")?);
    if confirm {
        let second = Zeroizing::new(
            rpassword::prompt_password("Repeat it: ").context("reading the passphrase")?,
        );
        if *first != *second {
            bail!("the two passphrases differ; nothing was changed");
        }
    }
    Ok(first)
}

pub fn account_create(
    home: &Home,
    json: bool,
    user: &str,
    password_file: Option<&Path>,
) -> Result<()> {
    if user.is_empty() || user.len() > 64 || user.chars().any(|c| c.is_control() || c == '/') {
        bail!("account names are 1 to 64 characters, without control characters or '/'");
    }
    home.config()?;
    let catalog = home.open_catalog()?;
    if catalog.account(user)?.is_some() {
        bail!("an account named {user:?} exists already");
    }
    let pass = passphrase(password_file, &format!("Passphrase for {user}: "), true)?;
    if pass.chars().count() < 10 {
        bail!(
            "the passphrase is too short: use at least 10 characters (a few unrelated words work well)"
        );
    }
    let key = VaultKey::generate()?;
    let record = KeyRecord::wrap(&key, pass.as_bytes(), KdfParams::DEFAULT)?;
    catalog.create_account(user, &record)?;
    let code = encode_recovery_code(&key);
    if json {
        println!("{}", json!({"user": user, "recovery_code": code.as_str()}));
    } else {
        println!("created account {user:?}");
        println!();
        println!("Recovery code (write it down and keep it safe; it is shown only now):");
        println!();
        println!("    {}", code.as_str());
        println!();
        println!(
            "With this code and your peers, a new machine gets every file back. Anyone with it"
        );
        println!("and access to your peers can read your files. Next: `shard login {user}`.");
    }
    Ok(())
}

pub fn login(home: &Home, json: bool, user: &str, password_file: Option<&Path>) -> Result<()> {
    let client = ApiClient::for_home(home)?;
    let pass = passphrase(password_file, &format!("Passphrase for {user}: "), false)?;
    let answer = client.post(
        "/v1/login",
        &json!({"user": user, "password": pass.as_str()}),
    )?;
    if json {
        println!("{answer}");
    } else {
        println!("{user} is unlocked on this node");
    }
    Ok(())
}

pub fn logout(home: &Home, json: bool, user: Option<&str>) -> Result<()> {
    let answer = ApiClient::for_home(home)?.post("/v1/logout", &json!({"user": user}))?;
    if json {
        println!("{answer}");
    } else if answer["locked"] == true {
        println!("locked; the vault keys are gone from the node's memory");
    } else {
        println!("nothing was unlocked");
    }
    Ok(())
}

/// Follows a job to its end, with a progress bar on a terminal; returns its result.
fn follow(client: &ApiClient, job: u64, json: bool) -> Result<Value> {
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    loop {
        let state = client.get(&format!("/v1/jobs/{job}"))?;
        if let Some(bar) = &bar {
            bar.set_length(state["bytes_total"].as_u64().unwrap_or(0));
            bar.set_position(state["bytes_done"].as_u64().unwrap_or(0));
            bar.set_message(format!(
                "{}/{} files",
                state["files_done"].as_u64().unwrap_or(0),
                state["files_total"].as_u64().unwrap_or(0)
            ));
        }
        match state["state"].as_str() {
            Some("done") => {
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                let mut result = state["result"].clone();
                result["elapsed_secs"] = state["elapsed_secs"].clone();
                return Ok(result);
            }
            Some("failed") => {
                if let Some(bar) = &bar {
                    bar.abandon();
                }
                let error = state["error"].as_str().unwrap_or("the job failed");
                match state["hint"].as_str() {
                    Some(hint) => bail!("{error}\n  hint: {hint}"),
                    None => bail!("{error}"),
                }
            }
            _ => std::thread::sleep(Duration::from_millis(150)),
        }
    }
}

fn path_field(paths: &[PathBuf]) -> Value {
    if paths.iter().all(|p| p.to_str().is_some()) {
        json!({"paths": paths.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>()})
    } else {
        json!({"paths_hex": paths.iter().map(|p| hex::encode(p.as_os_str().as_bytes())).collect::<Vec<_>>()})
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(path))
    }
}

#[allow(clippy::too_many_arguments)]
pub fn put(
    home: &Home,
    json: bool,
    paths: &[PathBuf],
    name: Option<&str>,
    shares: Option<&str>,
    move_original: bool,
    user: Option<&str>,
) -> Result<()> {
    let client = ApiClient::for_home(home)?;
    let paths: Vec<PathBuf> = paths.iter().map(|p| absolute(p)).collect::<Result<_>>()?;
    let mut body = path_field(&paths);
    body["as"] = json!(name);
    body["shares"] = json!(shares);
    body["move"] = json!(move_original);
    body["user"] = json!(user);
    let job = client.post("/v1/put", &body)?["job"].as_u64().unwrap_or(0);
    let result = follow(&client, job, json)?;
    if json {
        println!("{result}");
        return Ok(());
    }
    for warning in result["skipped"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", warning.as_str().unwrap_or_default());
    }
    let bytes = result["bytes"].as_u64().unwrap_or(0);
    let secs = result["elapsed_secs"].as_f64().unwrap_or(0.0).max(1e-3);
    println!(
        "stored {} files, {} folders, {} links ({}) as {} in {:.1} s ({}); {} of {} chunks were already stored",
        result["files"],
        result["dirs"],
        result["links"],
        human(bytes),
        result["redundancy"].as_str().unwrap_or("?"),
        secs,
        rate(bytes, secs),
        result["chunks_already_stored"],
        result["chunks"],
    );
    if result["moved"] == true {
        println!("the originals were read back from the shares, found identical, and deleted");
    }
    Ok(())
}

pub fn get(
    home: &Home,
    json: bool,
    spec: &str,
    out: Option<&Path>,
    force: bool,
    user: Option<&str>,
) -> Result<()> {
    let client = ApiClient::for_home(home)?;
    let (name, version) = match spec.rsplit_once('@') {
        Some((n, v)) if !n.is_empty() && v.parse::<u32>().is_ok() => (n, v.parse::<u32>().ok()),
        _ => (spec, None),
    };
    let default_out = Path::new(name.rsplit('/').next().unwrap_or(name)).to_path_buf();
    let out = absolute(out.unwrap_or(&default_out))?;
    let body = json!({"name": name, "version": version, "out": out.to_string_lossy(), "force": force, "user": user});
    let job = client.post("/v1/get", &body)?["job"].as_u64().unwrap_or(0);
    let result = follow(&client, job, json)?;
    if json {
        println!("{result}");
    } else {
        let bytes = result["bytes"].as_u64().unwrap_or(0);
        let secs = result["elapsed_secs"].as_f64().unwrap_or(0.0).max(1e-3);
        println!(
            "restored {} to {} ({} files, {}) in {:.1} s ({})",
            name,
            out.display(),
            result["files"],
            human(bytes),
            secs,
            rate(bytes, secs)
        );
    }
    Ok(())
}

pub fn ls(home: &Home, json: bool, prefix: Option<&str>, user: Option<&str>) -> Result<()> {
    let client = ApiClient::for_home(home)?;
    let mut query = String::from("/v1/ls?");
    if let Some(p) = prefix {
        query.push_str(&format!("prefix={}&", urlencode(p)));
    }
    if let Some(u) = user {
        query.push_str(&format!("user={}", urlencode(u)));
    }
    let answer = client.get(&query)?;
    if json {
        println!("{answer}");
        return Ok(());
    }
    let files = answer["files"].as_array().cloned().unwrap_or_default();
    if files.is_empty() {
        println!(
            "nothing stored{}",
            prefix.map(|p| format!(" under {p:?}")).unwrap_or_default()
        );
        return Ok(());
    }
    println!("{:>10}  {:>3}  {:<9}  NAME", "SIZE", "VER", "HEALTH");
    for f in files {
        let health = f["health"]["state"].as_str().unwrap_or("-");
        let size = if f["kind"] == "dir" {
            "folder".to_string()
        } else {
            human(f["size"].as_u64().unwrap_or(0))
        };
        println!(
            "{size:>10}  {:>3}  {health:<9}  {}",
            f["versions"],
            f["name"].as_str().unwrap_or("?").escape_debug()
        );
    }
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn rm(home: &Home, json: bool, name: &str, user: Option<&str>) -> Result<()> {
    let answer = ApiClient::for_home(home)?.post("/v1/rm", &json!({"name": name, "user": user}))?;
    if json {
        println!("{answer}");
    } else {
        println!(
            "removed {name} ({} entries); {} shares deleted, {} to delete when their peers come back",
            answer["removed"], answer["shares_deleted"], answer["shares_queued_for_offline_peers"]
        );
    }
    Ok(())
}
