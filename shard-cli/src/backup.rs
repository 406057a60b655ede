//! The backup commands: `backup add|ls|run|rm`, `snapshots`, `diff`, and how `NAME@…` reads.

use std::path::PathBuf;

use anyhow::{Result, bail};
use shard_http::client::Client as ApiClient;
use shard_http::types::{BackupAddBody, BackupNameBody, BackupRmBody};
use shard_node::backup::{Every, JobInfo, Outcome, WatchStatus};
use shard_node::home::Home;

use crate::network::{human, print_json};
use crate::vault::{absolute, expect_report, follow, when};

/// `backup add`'s options.
pub struct NewJob {
    pub path: PathBuf,
    pub name: Option<String>,
    pub every: Option<String>,
    pub keep: Option<String>,
    pub exclude: Vec<String>,
    pub shares: Option<String>,
    pub watch: bool,
}

pub fn add(home: &Home, json: bool, new: NewJob, user: Option<&str>) -> Result<()> {
    let client = ApiClient::for_home(home)?;
    let path = absolute(&new.path)?;
    let Some(text) = path.to_str() else {
        bail!("{}: the folder's path is not UTF-8", path.display());
    };
    let job = client.backup_add(&BackupAddBody {
        path: text.to_string(),
        name: new.name,
        every: new.every,
        keep: new.keep,
        exclude: new.exclude,
        shares: new.shares,
        user: user.map(str::to_string),
        watch: new.watch,
    })?;
    if json {
        return print_json(&job);
    }
    println!(
        "backup {} of {}: {}, keeping {}{}",
        job.name,
        job.path,
        schedule(&job),
        job.keep,
        if job.exclude.is_empty() {
            String::new()
        } else {
            format!(", leaving out {}", job.exclude.join(" "))
        }
    );
    let then = if job.watch {
        format!("soon after files in it change, at most every {}", job.every)
    } else {
        format!("every {}", job.every)
    };
    println!(
        "the node runs it now and then {then} while {} is unlocked; `shard backup run {}` runs it at once",
        user.unwrap_or("the account"),
        job.name
    );
    Ok(())
}

/// When a job runs, in words: `every 6h`, or for a watched job its shortest and longest gap.
fn schedule(job: &JobInfo) -> String {
    if !job.watch {
        return format!("every {}", job.every);
    }
    let longest = job
        .every
        .parse::<Every>()
        .map(shard_node::backup::watch::longest_gap)
        .unwrap_or(Every::DAY);
    format!(
        "on changes, at most every {}, at least every {longest}",
        job.every
    )
}

/// How a watched job's folder is watched, in words.
fn watching(job: &JobInfo) -> String {
    let fallback = format!("it runs every {} instead", job.every);
    let mut text = match &job.watcher {
        None => format!("not watched yet (the node starts watching within a minute; {fallback})"),
        Some(WatchStatus::Starting) => format!("starting ({fallback} until it watches)"),
        Some(WatchStatus::Watching { since }) => format!("watching since {}", when(*since)),
        Some(WatchStatus::Failed { reason }) => format!("cannot watch: {reason}; {fallback}"),
    };
    if let Some(at) = job.changed {
        text.push_str(&format!(
            "; changes seen at {} wait for the next run",
            when(at)
        ));
    }
    text
}

pub fn ls(home: &Home, json: bool, user: Option<&str>) -> Result<()> {
    let answer = ApiClient::for_home(home)?.backup_ls(user)?;
    if json {
        return print_json(&answer);
    }
    if answer.jobs.is_empty() {
        println!("no backup jobs; make one with `shard backup add FOLDER`");
        return Ok(());
    }
    for j in &answer.jobs {
        println!("{}  {}  {}  keep {}", j.name, j.path, schedule(j), j.keep);
        if j.watch {
            println!("  watch: {}", watching(j));
        }
        match &j.last {
            None => println!("  last run: never"),
            Some(r) => println!(
                "  last run: {} {}, {} files, {} sent{}",
                when(r.started),
                r.outcome.as_str(),
                r.files,
                human(r.bytes_sent),
                r.reason
                    .as_deref()
                    .map(|why| format!(": {why}"))
                    .unwrap_or_default()
            ),
        }
        let next = if j.running {
            "running now".to_string()
        } else {
            when(j.next_run)
        };
        println!("  next run: {next}; snapshots kept: {}", j.snapshots);
        if let Some(why) = &j.attention {
            println!("  needs attention: {why}");
        }
    }
    Ok(())
}

/// `backup run NAME`; `false` when the run failed or was partial (exit code 1).
pub fn run(home: &Home, json: bool, name: &str, user: Option<&str>) -> Result<bool> {
    let client = ApiClient::for_home(home)?;
    let job = client
        .backup_run(&BackupNameBody {
            name: name.to_string(),
            user: user.map(str::to_string),
        })?
        .job;
    let finished = follow(&client, job, json)?;
    if json {
        finished.print_json()?;
    }
    let run = expect_report!(finished, Backup);
    if !json {
        println!(
            "backup {} {}: snapshot {}, {} files ({}), {} unchanged, {} sent; {} added, {} removed, {} changed since the one before",
            run.job,
            run.outcome.as_str(),
            run.snapshot,
            run.files,
            human(run.bytes),
            run.unchanged,
            human(run.bytes_sent),
            run.added,
            run.removed,
            run.changed
        );
        if run.unreadable_count > 0 {
            println!("{} paths could not be read:", run.unreadable_count);
            for why in &run.unreadable {
                println!("  {why}");
            }
        }
        if !run.forgotten.is_empty() {
            let nos: Vec<String> = run.forgotten.iter().map(u32::to_string).collect();
            println!(
                "forgotten by the keep rules: snapshots {} ({} stored versions removed)",
                nos.join(", "),
                run.versions_removed
            );
        }
    }
    Ok(run.outcome == Outcome::Ok)
}

pub fn rm(home: &Home, json: bool, name: &str, forget: bool, user: Option<&str>) -> Result<()> {
    let answer = ApiClient::for_home(home)?.backup_rm(&BackupRmBody {
        name: name.to_string(),
        forget_snapshots: forget,
        user: user.map(str::to_string),
    })?;
    if json {
        return print_json(&answer);
    }
    if forget {
        println!(
            "removed backup {name} and its {} snapshots",
            answer.snapshots_forgotten
        );
    } else {
        println!(
            "removed backup {name}; its {} snapshots stay (`shard snapshots {name}`, `shard get {name}@N`)",
            answer.snapshots_kept
        );
    }
    Ok(())
}

pub fn snapshots(home: &Home, json: bool, name: &str, user: Option<&str>) -> Result<()> {
    let answer = ApiClient::for_home(home)?.snapshots(name, user)?;
    if json {
        return print_json(&answer);
    }
    if answer.snapshots.is_empty() {
        println!("{name} has no snapshot yet");
        return Ok(());
    }
    println!(
        "{:>4}  {:<20}  {:>8}  {:>10}  CHANGES",
        "N", "TIME", "FILES", "SIZE"
    );
    for s in &answer.snapshots {
        println!(
            "{:>4}  {:<20}  {:>8}  {:>10}  +{} -{} ~{}{}",
            s.no,
            when(s.at),
            s.files,
            human(s.bytes),
            s.added,
            s.removed,
            s.changed,
            if s.partial { "  (partial)" } else { "" }
        );
    }
    Ok(())
}

/// `NAME@SEL` of `diff`: the job and what follows the `@`.
fn job_and_snapshot(spec: &str) -> Result<(&str, &str)> {
    match spec.split_once('@') {
        Some((job, sel)) if !job.is_empty() && !sel.is_empty() => Ok((job, sel)),
        _ => bail!("{spec:?}: name a snapshot as NAME@N or NAME@2026-11-30"),
    }
}

pub fn diff(home: &Home, json: bool, from: &str, to: &str, user: Option<&str>) -> Result<()> {
    let (job, a) = job_and_snapshot(from)?;
    let (other, b) = job_and_snapshot(to)?;
    if job != other {
        bail!("{from} and {to} are snapshots of different jobs; compare two of one job");
    }
    let answer = ApiClient::for_home(home)?.diff(job, a, b, user)?;
    if json {
        return print_json(&answer);
    }
    for p in &answer.added {
        println!("+ {}", p.escape_debug());
    }
    for p in &answer.removed {
        println!("- {}", p.escape_debug());
    }
    for p in &answer.changed {
        println!("~ {}", p.escape_debug());
    }
    println!(
        "{job}@{} → {job}@{}: {} added, {} removed, {} changed",
        answer.from,
        answer.to,
        answer.added.len(),
        answer.removed.len(),
        answer.changed.len()
    );
    Ok(())
}

/// How `get` reads `NAME@…`: the name (with the path inside a snapshot appended) and what
/// followed the `@` — a number (a version, or a job's snapshot) or a day. An `@` followed by
/// neither is part of the name (`me@home.txt`).
pub fn split_at(spec: &str) -> (String, Option<String>) {
    for (i, _) in spec.match_indices('@') {
        let (name, rest) = (&spec[..i], &spec[i + 1..]);
        let (sel, sub) = match rest.split_once('/') {
            Some((sel, sub)) => (sel, Some(sub)),
            None => (rest, None),
        };
        let number = !sel.is_empty() && sel.bytes().all(|b| b.is_ascii_digit());
        // YYYY-MM-DD; the node checks it is a real day.
        let day = sel.len() == 10
            && sel.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if name.is_empty() || !(number || day) {
            continue;
        }
        let full = match sub.filter(|s| !s.is_empty()) {
            Some(sub) => format!("{name}/{}", sub.trim_end_matches('/')),
            None => name.to_string(),
        };
        return (full, Some(sel.to_string()));
    }
    (spec.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_reads_versions_snapshots_days_and_paths_inside() {
        let s = |spec: &str| {
            let (n, a) = split_at(spec);
            (n, a)
        };
        assert_eq!(s("papers"), ("papers".into(), None));
        assert_eq!(s("papers@3"), ("papers".into(), Some("3".into())));
        assert_eq!(
            s("papers@2026-11-30"),
            ("papers".into(), Some("2026-11-30".into()))
        );
        assert_eq!(
            s("papers@4/tax/2025.pdf"),
            ("papers/tax/2025.pdf".into(), Some("4".into()))
        );
        assert_eq!(s("papers@4/"), ("papers".into(), Some("4".into())));
        assert_eq!(s("me@home.txt"), ("me@home.txt".into(), None));
        assert_eq!(
            s("mail/me@home.txt@2"),
            ("mail/me@home.txt".into(), Some("2".into()))
        );
        assert_eq!(s("@3"), ("@3".into(), None));
    }
}
