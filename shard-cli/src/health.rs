//! The health commands: check, repair, and peers rm (which repairs before it forgets).

use anyhow::{Result, bail};
use serde_json::{Value, json};
use shard_node::home::Home;

use crate::client::ApiClient;
use crate::network::human;
use crate::vault::follow;

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
    let body = json!({"names": names, "read_fraction": fraction, "user": user});
    let job = client.post("/v1/check", &body)?["job"]
        .as_u64()
        .unwrap_or(0);
    let report = follow(&client, job, json)?;
    let ok = report["ok"] == true;
    if json {
        println!("{report}");
        return Ok(ok);
    }
    let files = report["files"].as_array().cloned().unwrap_or_default();
    if files.is_empty() {
        println!("nothing stored to check");
        return Ok(true);
    }
    // Only the files that need attention; --json lists them all.
    let shown: Vec<&Value> = files.iter().filter(|f| f["state"] != "healthy").collect();
    if !shown.is_empty() {
        println!(
            "{:<9}  {:>10}  {:>6}  {:<22}  NAME",
            "STATE", "SIZE", "CHUNKS", "WORST CHUNK"
        );
    }
    for f in shown {
        let w = &f["worst_chunk"];
        let worst = if w.is_null() {
            "-".to_string()
        } else {
            let mut text = format!("{}/{} good", w["good"], w["n"]);
            for what in ["missing", "bad", "unknown"] {
                if w[what].as_u64().unwrap_or(0) > 0 {
                    text.push_str(&format!(", {} {what}", w[what]));
                }
            }
            text
        };
        println!(
            "{:<9}  {:>10}  {:>6}  {:<22}  {}",
            f["state"].as_str().unwrap_or("?"),
            human(f["size"].as_u64().unwrap_or(0)),
            f["chunks"],
            worst,
            f["name"].as_str().unwrap_or("?").escape_debug()
        );
    }
    println!();
    println!(
        "{} files: {} healthy, {} degraded, {} lost, {} unknown ({} chunks, {} shares)",
        files.len(),
        report["healthy"],
        report["degraded"],
        report["lost"],
        report["unknown"],
        report["chunks"],
        report["shares"]
    );
    if report["read"]["shares"].as_u64().unwrap_or(0) > 0 {
        println!(
            "read back and verified {} shares: {} bad",
            report["read"]["shares"], report["read"]["bad"]
        );
    }
    for n in report["nodes"].as_array().into_iter().flatten() {
        let (missing, bad) = (
            n["missing"].as_u64().unwrap_or(0),
            n["bad"].as_u64().unwrap_or(0),
        );
        if let Some(error) = n["error"].as_str() {
            println!(
                "  {}: {} shares not checked ({error}): unknown, not lost",
                n["node"].as_str().unwrap_or("?"),
                n["shares"]
            );
        } else if missing + bad > 0 {
            println!(
                "  {}: {missing} of {} shares missing, {bad} bad",
                n["node"].as_str().unwrap_or("?"),
                n["shares"]
            );
        }
    }
    let unrecorded = report["unrecorded"].as_u64().unwrap_or(0);
    if unrecorded > 0 {
        println!(
            "  {unrecorded} shares that stored files list were never acknowledged by any node: missing"
        );
    }
    if let Some(why) = report["catalog_snapshot_failure"].as_str() {
        println!(
            "the catalog snapshot could not be written ({why}): a new machine would recover an older catalog; `shard repair` writes it again"
        );
    }
    let in_grace = &report["deleted_in_grace"];
    if in_grace["shares"].as_u64().unwrap_or(0) > 0 {
        println!(
            "{} shares of removed files are still kept by their nodes for the {}-day grace period",
            in_grace["shares"], in_grace["grace_days"]
        );
    }
    if !ok {
        println!("run `shard repair` to rebuild the missing shares from the good ones");
    }
    Ok(ok)
}

pub fn repair(home: &Home, json: bool, names: &[String], user: Option<&str>) -> Result<bool> {
    let client = ApiClient::for_home(home)?;
    let job = client.post("/v1/repair", &json!({"names": names, "user": user}))?["job"]
        .as_u64()
        .unwrap_or(0);
    let report: Value = follow(&client, job, json)?;
    let ok = report["ok"] == true;
    if json {
        println!("{report}");
        return Ok(ok);
    }
    let bytes = report["bytes_rebuilt"].as_u64().unwrap_or(0);
    if report["chunks_degraded"] == 0 && report["chunks_lost"] == 0 {
        println!("nothing to repair: every share checked is where it should be");
    } else {
        println!(
            "repaired {} of {} degraded chunks: {} shares rebuilt ({}) in {:.1} s",
            report["chunks_repaired"],
            report["chunks_degraded"],
            report["shares_rebuilt"],
            human(bytes),
            report["elapsed_secs"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(why) = report["waiting"].as_str() {
        println!(
            "{} chunks wait for room: {why}",
            report["chunks_waiting_for_room"]
        );
    }
    for failure in report["failures"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", failure.as_str().unwrap_or_default());
    }
    let lost = report["files_lost"].as_array().cloned().unwrap_or_default();
    if !lost.is_empty() {
        eprintln!(
            "{} chunks have fewer than k good shares and cannot be rebuilt; files affected: {}",
            report["chunks_lost"],
            lost.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        );
        eprintln!("  hint: start the offline peers, then run `shard check` again");
    }
    Ok(ok)
}

pub fn peers_rm(home: &Home, json: bool, id: &str, now: bool) -> Result<()> {
    let answer = ApiClient::for_home(home)?.post("/v1/peers/rm", &json!({"id": id, "now": now}))?;
    if json {
        println!("{answer}");
        return Ok(());
    }
    let moved: u64 = answer["moved"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["shares_moved"].as_u64())
        .sum();
    if now {
        println!(
            "forgot {}; the automatic repair rebuilds the shares it held on the other nodes",
            answer["removed"].as_str().unwrap_or("?")
        );
    } else {
        println!(
            "moved {moved} shares off {} and forgot it",
            answer["removed"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
