//! The vault commands: login, logout, put, get, ls, rm.

use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use shard_http::client::Client as ApiClient;
use shard_http::types::{GetBody, JobResult, JobState, PutBody, RmBody, TrashBody};
use shard_node::home::Home;
use shard_node::report::EntryKind;

use crate::network::{human, print_json, rate};

pub fn login(home: &Home, json: bool, user: &str, password_file: Option<&Path>) -> Result<()> {
    let client = ApiClient::for_home(home)?;
    let pass = crate::accounts::passphrase(password_file, user)?;
    let answer = client.login(user, pass.as_str())?;
    if json {
        print_json(&answer)?;
    } else {
        println!("{user} is unlocked on this node");
    }
    Ok(())
}

pub fn logout(home: &Home, json: bool, user: Option<&str>) -> Result<()> {
    let answer = ApiClient::for_home(home)?.logout(user)?;
    if json {
        print_json(&answer)?;
    } else if answer.locked {
        println!("locked; the vault keys are gone from the node's memory");
    } else {
        println!("nothing was unlocked");
    }
    Ok(())
}

/// A finished job's report and how long the job took.
pub struct Finished {
    /// What it returned.
    pub result: JobResult,
    /// Seconds from its start to its end, as the node measured them.
    pub elapsed_secs: f64,
}

impl Finished {
    /// Prints the report as `--json` shows it: the report with the job's time in it.
    pub fn print_json(&self) -> Result<()> {
        let mut value = serde_json::to_value(&self.result)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("elapsed_secs".into(), serde_json::json!(self.elapsed_secs));
        }
        print_json(&value)
    }
}

/// Follows a job to its end, with a progress bar on a terminal; returns its result.
pub fn follow(client: &ApiClient, job: u64, json: bool) -> Result<Finished> {
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
        let status = client.job(job)?;
        if let Some(bar) = &bar {
            bar.set_length(status.bytes_total);
            bar.set_position(status.bytes_done);
            bar.set_message(format!(
                "{}/{} files",
                status.files_done, status.files_total
            ));
        }
        match status.state {
            JobState::Done { result } => {
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                return Ok(Finished {
                    result: std::sync::Arc::unwrap_or_clone(result),
                    elapsed_secs: status.elapsed_secs,
                });
            }
            JobState::Failed { error, hint } => {
                if let Some(bar) = &bar {
                    bar.abandon();
                }
                bail!("{error}\n  hint: {hint}");
            }
            JobState::Running => std::thread::sleep(Duration::from_millis(150)),
        }
    }
}

/// The report a job of kind `what` returns, or an error naming what came instead.
macro_rules! expect_report {
    ($finished:expr, $variant:ident) => {
        match &$finished.result {
            shard_http::types::JobResult::$variant(report) => report,
            _ => anyhow::bail!(
                "the node's answer could not be read (a {} job returned another report)",
                stringify!($variant).to_lowercase()
            ),
        }
    };
}
pub(crate) use expect_report;

fn path_field(paths: &[PathBuf]) -> PutBody {
    if paths.iter().all(|p| p.to_str().is_some()) {
        PutBody {
            paths: Some(
                paths
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect(),
            ),
            ..PutBody::default()
        }
    } else {
        PutBody {
            paths_hex: Some(
                paths
                    .iter()
                    .map(|p| hex::encode(p.as_os_str().as_bytes()))
                    .collect(),
            ),
            ..PutBody::default()
        }
    }
}

pub fn absolute(path: &Path) -> Result<PathBuf> {
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
    let body = PutBody {
        name: name.map(str::to_string),
        shares: shares.map(str::to_string),
        move_original,
        user: user.map(str::to_string),
        ..path_field(&paths)
    };
    let job = client.put(&body)?.job;
    let finished = follow(&client, job, json)?;
    if json {
        return finished.print_json();
    }
    let result = expect_report!(finished, Put);
    for warning in &result.skipped {
        eprintln!("warning: {warning}");
    }
    let bytes = result.bytes;
    let secs = finished.elapsed_secs.max(1e-3);
    println!(
        "stored {} files, {} folders, {} links ({}) as {} in {:.1} s ({}); {} of {} chunks were already stored",
        result.files,
        result.dirs,
        result.links,
        human(bytes),
        result.redundancy,
        secs,
        rate(bytes, secs),
        result.chunks_already_stored,
        result.chunks,
    );
    if result.unchanged > 0 {
        println!(
            "{} {} ({}) unchanged since stored, not read again",
            result.unchanged,
            if result.unchanged == 1 {
                "file"
            } else {
                "files"
            },
            human(result.unchanged_bytes)
        );
    }
    if result.moved {
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
    let (name, at) = crate::backup::split_at(spec);
    let name = name.as_str();
    let default_out = Path::new(name.rsplit('/').next().unwrap_or(name)).to_path_buf();
    let out = absolute(how.out.unwrap_or(&default_out))?;
    let body = GetBody {
        name: Some(name.to_string()),
        at,
        out: out.to_string_lossy().into_owned(),
        force: how.force,
        keep_special_bits: how.keep_special_bits,
        user: user.map(str::to_string),
        ..GetBody::default()
    };
    let job = client.restore(&body)?.job;
    let finished = follow(&client, job, json)?;
    if json {
        finished.print_json()?;
    } else {
        let result = expect_report!(finished, Get);
        let bytes = result.bytes;
        let secs = finished.elapsed_secs.max(1e-3);
        println!(
            "restored {} to {} ({} files, {}) in {:.1} s ({})",
            name,
            out.display(),
            result.files,
            human(bytes),
            secs,
            rate(bytes, secs)
        );
    }
    Ok(())
}

pub fn ls(home: &Home, json: bool, prefix: Option<&str>, user: Option<&str>) -> Result<()> {
    let client = ApiClient::for_home(home)?;
    let answer = client.ls(prefix, user)?;
    if json {
        return print_json(&answer);
    }
    let files = answer.files;
    if files.is_empty() {
        println!(
            "nothing stored{}",
            prefix.map(|p| format!(" under {p:?}")).unwrap_or_default()
        );
        return Ok(());
    }
    println!("{:>10}  {:>3}  {:<9}  NAME", "SIZE", "VER", "HEALTH");
    for f in files {
        let health = f.health.as_ref().map_or("-", |h| h.state.as_str());
        let size = if f.kind == EntryKind::Dir {
            "folder".to_string()
        } else {
            human(f.size)
        };
        println!(
            "{size:>10}  {}  {health:<9}  {}",
            f.versions,
            f.name.escape_debug()
        );
    }
    Ok(())
}

pub fn rm(home: &Home, json: bool, name: &str, now: bool, user: Option<&str>) -> Result<()> {
    let answer = ApiClient::for_home(home)?.rm(&RmBody {
        name: Some(name.to_string()),
        user: user.map(str::to_string),
        now,
        ..RmBody::default()
    })?;
    if json {
        print_json(&answer)?;
    } else if answer.trashed {
        let until = answer.kept_until.map(when).unwrap_or_default();
        println!(
            "moved {name} ({} entries) to the trash; `shard trash restore {name}` brings it back until {until}, `shard trash empty {name}` deletes it now",
            answer.removed
        );
    } else {
        print_deleted(name, &answer);
    }
    Ok(())
}

fn print_deleted(name: &str, answer: &shard_node::report::Removal) {
    println!(
        "deleted {name} ({} entries) for good; {} shares deleted, {} to delete when their peers come back",
        answer.removed, answer.shares_deleted, answer.shares_queued_for_offline_peers
    );
}

/// `shard trash`: what is in the trash, by name.
pub fn trash(home: &Home, json: bool, user: Option<&str>) -> Result<()> {
    let answer = ApiClient::for_home(home)?.trash(user)?;
    if json {
        return print_json(&answer);
    }
    if answer.items.is_empty() {
        println!("the trash is empty");
        return Ok(());
    }
    println!(
        "{:>10}  {:<20}  {:<20}  name",
        "size", "removed", "deleted for good"
    );
    for item in &answer.items {
        let what = match (item.kind, item.entries_under, item.versions) {
            (shard_node::report::EntryKind::Dir, n, _) => format!("/ ({n} entries)"),
            (_, _, 1) => String::new(),
            (_, _, v) => format!(" ({v} versions)"),
        };
        println!(
            "{:>10}  {:<20}  {:<20}  {}{what}",
            human(item.size),
            when(item.removed_at),
            when(item.kept_until),
            item.name.escape_debug()
        );
    }
    Ok(())
}

fn trash_body(name: Option<&str>, all: bool, user: Option<&str>) -> TrashBody {
    TrashBody {
        // `shard trash` shows a folder as `photos/`: the name is `photos`.
        name: name.map(|n| {
            n.strip_suffix('/')
                .filter(|n| !n.is_empty())
                .unwrap_or(n)
                .to_string()
        }),
        name_hex: None,
        user: user.map(str::to_string),
        all,
    }
}

/// `shard trash restore NAME`.
pub fn trash_restore(home: &Home, json: bool, name: &str, user: Option<&str>) -> Result<()> {
    let answer = ApiClient::for_home(home)?.trash_restore(&trash_body(Some(name), false, user))?;
    if json {
        return print_json(&answer);
    }
    println!("restored {name} ({} entries)", answer.restored);
    if answer.newer_kept {
        println!(
            "a newer {name} was stored after it was removed: it stays the newest, the restored versions are the ones before it (`shard ls` counts them)"
        );
    }
    Ok(())
}

/// `shard trash empty NAME|--all`.
pub fn trash_empty(
    home: &Home,
    json: bool,
    name: Option<&str>,
    all: bool,
    user: Option<&str>,
) -> Result<()> {
    let answer = ApiClient::for_home(home)?.trash_empty(&trash_body(name, all, user))?;
    if json {
        return print_json(&answer);
    }
    print_deleted(name.unwrap_or("the trash"), &answer);
    Ok(())
}

/// A time the node reported (seconds since the epoch) as people read it, in UTC.
pub fn when(secs: i64) -> String {
    match u64::try_from(secs) {
        Ok(secs) => {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            let text = humantime::format_rfc3339_seconds(at).to_string();
            // 2026-11-30T12:00:00Z → 2026-11-30 12:00 UTC
            match (text.get(..10), text.get(11..16)) {
                (Some(day), Some(time)) => format!("{day} {time} UTC"),
                _ => text,
            }
        }
        Err(_) => "unknown time".to_string(),
    }
}
