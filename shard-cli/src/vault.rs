//! The vault commands: login, logout, put, get, ls, rm.

use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use shard_node::home::Home;

use crate::client::ApiClient;
use crate::network::{human, rate};

pub fn login(home: &Home, json: bool, user: &str, password_file: Option<&Path>) -> Result<()> {
    let client = ApiClient::for_home(home)?;
    let pass = crate::accounts::passphrase(password_file, user)?;
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
pub fn follow(client: &ApiClient, job: u64, json: bool) -> Result<Value> {
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

/// How `get` writes what it restores.
pub struct Restore<'a> {
    /// Where (default: the name's last part, here).
    pub out: Option<&'a Path>,
    /// Overwrite what exists.
    pub force: bool,
    /// Keep setuid, setgid and sticky bits.
    pub keep_special_bits: bool,
}

pub fn get(
    home: &Home,
    json: bool,
    spec: &str,
    how: Restore<'_>,
    user: Option<&str>,
) -> Result<()> {
    let client = ApiClient::for_home(home)?;
    let (name, version) = match spec.rsplit_once('@') {
        Some((n, v)) if !n.is_empty() && v.parse::<u32>().is_ok() => (n, v.parse::<u32>().ok()),
        _ => (spec, None),
    };
    let default_out = Path::new(name.rsplit('/').next().unwrap_or(name)).to_path_buf();
    let out = absolute(how.out.unwrap_or(&default_out))?;
    let body = json!({
        "name": name,
        "version": version,
        "out": out.to_string_lossy(),
        "force": how.force,
        "keep_special_bits": how.keep_special_bits,
        "user": user,
    });
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

/// A time the node reported (seconds since the epoch, in JSON) as people read it, in UTC.
pub fn when(secs: &serde_json::Value) -> String {
    match secs.as_u64() {
        Some(secs) => {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            let text = humantime::format_rfc3339_seconds(at).to_string();
            // 2026-11-30T12:00:00Z → 2026-11-30 12:00 UTC
            match (text.get(..10), text.get(11..16)) {
                (Some(day), Some(time)) => format!("{day} {time} UTC"),
                _ => text,
            }
        }
        None => "unknown time".to_string(),
    }
}
