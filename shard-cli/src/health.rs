//! The health commands: check, repair, prune, and peers rm (which repairs before it forgets).

use anyhow::{Result, bail};
use shard_http::client::Client as ApiClient;
use shard_http::types::{HealthBody, PruneBody};
use shard_node::home::Home;
use shard_node::report::ChunkHealth;

use crate::network::{human, print_json};
use crate::vault::{expect_report, follow};

/// `--read-data[=PCT]` as a fraction: none, all ("100%", the default) or a percentage.
pub(crate) fn read_fraction(read_data: Option<&str>) -> Result<f64> {
    let Some(text) = read_data else {
        return Ok(0.0);
    };
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p / 100.0),
        _ => {
            bail!("--read-data={text} is not a percentage between 0 and 100, e.g. --read-data=10%")
        }
    }
}

pub fn check(
    home: &Home,
    json: bool,
    names: &[String],
    read_data: Option<&str>,
    user: Option<&str>,
) -> Result<bool> {
    let fraction = read_fraction(read_data)?;
    let client = ApiClient::for_home(home)?;
    let body = HealthBody {
        names: names.to_vec(),
        read_fraction: fraction,
        user: user.map(str::to_string),
    };
    let job = client.check(&body)?.job;
    let finished = follow(&client, job, json)?;
    let report = expect_report!(finished, Check);
    let ok = report.ok;
    if json {
        finished.print_json()?;
        return Ok(ok);
    }
    let files = &report.files;
    let total = report.healthy + report.degraded + report.lost + report.unknown;
    if total == 0 {
        println!("nothing stored to check");
        return Ok(true);
    }
    // Only the files that need attention; --json lists every state's first ones.
    let shown: Vec<_> = files
        .iter()
        .filter(|f| f.state != ChunkHealth::Healthy)
        .collect();
    if !shown.is_empty() {
        println!(
            "{:<9}  {:>10}  {:>6}  {:<22}  NAME",
            "STATE", "SIZE", "CHUNKS", "WORST CHUNK"
        );
    }
    for f in shown {
        let worst = match &f.worst_chunk {
            None => "-".to_string(),
            Some(w) => {
                let mut text = format!("{}/{} good", w.good, w.n);
                for (what, count) in [
                    ("missing", w.missing),
                    ("bad", w.bad),
                    ("unknown", w.unknown),
                ] {
                    if count > 0 {
                        text.push_str(&format!(", {count} {what}"));
                    }
                }
                text
            }
        };
        println!(
            "{:<9}  {:>10}  {}  {:<22}  {}",
            f.state.as_str(),
            human(f.size),
            f.chunks,
            worst,
            f.name.escape_debug()
        );
    }
    // Files of a state beyond the first listed: only those not healthy are worth a word.
    let unhealthy = report.degraded + report.lost + report.unknown;
    let unhealthy_listed = files
        .iter()
        .filter(|f| f.state != ChunkHealth::Healthy)
        .count();
    if unhealthy > unhealthy_listed {
        println!(
            "… and {} more not healthy (the first {} of each state are listed; `shard check NAME` narrows)",
            unhealthy - unhealthy_listed,
            shard_node::health::LISTED_PER_STATE
        );
    }
    println!();
    println!(
        "{} files: {} healthy, {} degraded, {} lost, {} unknown ({} chunks, {} shares)",
        total,
        report.healthy,
        report.degraded,
        report.lost,
        report.unknown,
        report.chunks,
        report.shares
    );
    if report.read.shares > 0 {
        let not_given = match report.read.unreadable {
            0 => String::new(),
            n => format!(", {n} not given by nodes that said they hold them"),
        };
        println!(
            "read back and verified {} shares: {} bad{not_given}",
            report.read.shares, report.read.bad
        );
    }
    for n in &report.nodes {
        let (missing, bad) = (n.missing, n.bad);
        if let Some(error) = &n.error {
            println!(
                "  {}: {} shares not checked ({error}): unknown, not lost",
                n.node, n.shares
            );
        } else if missing + bad > 0 {
            println!(
                "  {}: {missing} of {} shares missing, {bad} bad",
                n.node, n.shares
            );
        }
    }
    let unrecorded = report.unrecorded;
    if unrecorded > 0 {
        println!(
            "  {unrecorded} shares that stored files list were never acknowledged by any node: missing"
        );
    }
    if let Some(why) = &report.catalog_snapshot_failure {
        println!(
            "the catalog snapshot could not be written ({why}): a new machine would recover an older catalog; `shard repair` writes it again"
        );
    }
    let in_grace = &report.deleted_in_grace;
    if in_grace.shares > 0 {
        println!(
            "{} shares of removed files are still kept by their nodes for the {}-day grace period",
            in_grace.shares, in_grace.grace_days
        );
    }
    if !ok {
        println!("run `shard repair` to rebuild the missing shares from the good ones");
    }
    Ok(ok)
}

pub fn repair(home: &Home, json: bool, names: &[String], user: Option<&str>) -> Result<bool> {
    let client = ApiClient::for_home(home)?;
    let body = HealthBody {
        names: names.to_vec(),
        user: user.map(str::to_string),
        ..HealthBody::default()
    };
    let job = client.repair(&body)?.job;
    let finished = follow(&client, job, json)?;
    let report = expect_report!(finished, Repair);
    let ok = report.ok;
    if json {
        finished.print_json()?;
        return Ok(ok);
    }
    let bytes = report.bytes_rebuilt;
    if report.chunks_degraded == 0 && report.chunks_lost == 0 {
        println!("nothing to repair: every share checked is where it should be");
    } else {
        println!(
            "repaired {} of {} degraded chunks: {} shares rebuilt ({}) in {:.1} s",
            report.chunks_repaired,
            report.chunks_degraded,
            report.shares_rebuilt,
            human(bytes),
            finished.elapsed_secs
        );
    }
    if let Some(why) = &report.waiting {
        println!(
            "{} chunks wait for room: {why}",
            report.chunks_waiting_for_room
        );
    }
    for failure in &report.failures {
        eprintln!("warning: {failure}");
    }
    if !report.files_lost.is_empty() {
        eprintln!(
            "{} chunks have fewer than k good shares and cannot be rebuilt; files affected: {}{}",
            report.chunks_lost,
            report.files_lost.join(", "),
            if report.files_lost_not_listed > 0 {
                format!(" and {} more", report.files_lost_not_listed)
            } else {
                String::new()
            }
        );
        eprintln!("  hint: start the offline peers, then run `shard check` again");
    }
    Ok(ok)
}

pub fn prune(home: &Home, json: bool, dead: u8, user: Option<&str>) -> Result<bool> {
    let client = ApiClient::for_home(home)?;
    let body = PruneBody {
        dead_percent: Some(dead),
        user: user.map(str::to_string),
    };
    let job = client.prune(&body)?.job;
    let finished = follow(&client, job, json)?;
    let report = expect_report!(finished, Prune);
    if json {
        finished.print_json()?;
        return Ok(report.ok);
    }
    println!(
        "{} packs in use, {} of them dead (removed files)",
        report.packs,
        human(report.dead_bytes)
    );
    if report.unused_packs_removed > 0 {
        println!(
            "removed {} packs no file used (left by a stopped put or prune)",
            report.unused_packs_removed
        );
    }
    if report.packs_to_compact == 0 {
        println!(
            "nothing to compact: no pack has {}% or more dead bytes",
            report.dead_percent
        );
    } else {
        println!(
            "compacted {} of {} packs into {}: {} blobs ({}) copied, {} freed, in {:.1} s",
            report.packs_compacted,
            report.packs_to_compact,
            report.packs_written,
            report.blobs_moved,
            human(report.bytes_moved),
            human(report.bytes_freed),
            finished.elapsed_secs
        );
    }
    if report.shares_queued_for_offline_peers > 0 {
        println!(
            "{} shares are deleted when their offline nodes are back",
            report.shares_queued_for_offline_peers
        );
    }
    for failure in &report.failures {
        eprintln!("warning: {failure}");
    }
    if let Some(why) = &report.catalog_snapshot_failure {
        eprintln!(
            "warning: the catalog snapshot could not be written ({why}): a new machine would recover an older catalog; `shard repair` writes it again"
        );
    }
    if !report.ok {
        eprintln!(
            "  hint: the packs named were left as they were; start the offline nodes and run `shard prune` again"
        );
    }
    Ok(report.ok)
}

pub fn peers_rm(home: &Home, json: bool, id: &str, now: bool) -> Result<()> {
    let answer = ApiClient::for_home(home)?.remove_peer(id, now)?;
    if json {
        return print_json(&answer);
    }
    let moved: u64 = answer.moved.iter().map(|m| m.shares_moved).sum();
    if now {
        println!(
            "forgot {}; the automatic repair rebuilds the shares it held on the other nodes",
            answer.removed
        );
    } else {
        println!("moved {moved} shares off {} and forgot it", answer.removed);
    }
    Ok(())
}
