//! Promise: no machine that holds shares can read, name or size them, and a stranger on the
//! network gets nothing. After storing files with known names, contents and sizes, every byte
//! the peers wrote (shares, indexes, databases, logs), the owner's own databases and log, and
//! the traffic between the nodes (captured on loopback) are searched for them: nothing found.
// Test code: panicking on failure is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use shard_testkit::nodes as common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::random_bytes;

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// What must never appear: each needle with a label for the failure message.
fn needles(names: &[&str], markers: &[&[u8]], sizes: &[u64]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for name in names {
        out.push((format!("name {name:?}"), name.as_bytes().to_vec()));
    }
    for marker in markers {
        out.push((
            format!("content {:?}", String::from_utf8_lossy(marker)),
            marker.to_vec(),
        ));
    }
    for size in sizes {
        out.push((
            format!("size {size} (decimal)"),
            size.to_string().into_bytes(),
        ));
        out.push((format!("size {size} (u64 LE)"), size.to_le_bytes().to_vec()));
        out.push((
            format!("size {size} (u32 BE)"),
            u32::try_from(*size).unwrap().to_be_bytes().to_vec(),
        ));
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn assert_clean(what: &str, path: &Path, needles: &[(String, Vec<u8>)]) {
    let bytes = fs::read(path).unwrap_or_default();
    for (label, needle) in needles {
        if let Some(at) = find(&bytes, needle) {
            panic!("{what}: {label} found in {} at byte {at}", path.display());
        }
    }
}

/// tcpdump on loopback for the nodes' peer ports, when it can run (root, installed).
fn capture(ports: &[String], to: &Path) -> Option<Capture> {
    let is_root = fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !is_root || Command::new("tcpdump").arg("--version").output().is_err() {
        return None;
    }
    let filter = ports
        .iter()
        .map(|p| format!("tcp port {p}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let mut child = Command::new("tcpdump")
        // A 64 MiB kernel buffer (-B, in KiB) holds the whole exchange: with the default 2 MiB,
        // loopback's 64 KiB packets were dropped under load and the search missed them.
        .args(["-i", "lo", "-U", "-s", "0", "-B", "65536", "-w"])
        .arg(to)
        .arg(&filter)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    // Capturing once it says so ("listening on lo"), not after a guessed moment: under load
    // a fixed wait missed the start of the put. Every line goes to the test, which reads the
    // drop count tcpdump prints at exit.
    let stderr = child.stderr.take()?;
    let (line_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = line_tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains("listening on") => break,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // The kernel attaches the filter as tcpdump says it listens; a little margin.
    std::thread::sleep(Duration::from_millis(200));
    Some(Capture { child, lines })
}

/// A running tcpdump and the lines it prints on stderr.
struct Capture {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Capture {
    /// Stops the capture and returns how many packets the kernel dropped before tcpdump read
    /// them (`None` if it did not say).
    fn stop(mut self) -> Option<u64> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.lines.iter().find_map(|l| {
            l.strip_suffix(" packets dropped by kernel")?
                .trim()
                .parse()
                .ok()
        })
    }
}

#[test]
fn peers_logs_databases_and_the_wire_show_no_names_contents_or_sizes() {
    let (mut owner, peers) = common::owner_with_peers(3);

    let work = tempfile::tempdir().unwrap();
    let will_marker: &[u8] = b"I leave the blue house on Lindenweg to my granddaughter";
    let tax_marker: &[u8] = b"Steuer-ID 81 872 495 633, Finanzamt Nord";
    let (will_size, tax_size): (u64, u64) = (1_234_567, 987_653);
    let make = |path: &Path, marker: &[u8], size: u64, seed: u64| {
        // The marker at the start, in the middle and at the end, random bytes between.
        let mut data = random_bytes(usize::try_from(size).unwrap(), seed);
        let len = data.len();
        for at in [0, len / 2, len - marker.len()] {
            data[at..at + marker.len()].copy_from_slice(marker);
        }
        fs::write(path, data).unwrap();
    };
    let will = work.path().join("grandmas-will-Q7X.txt");
    make(&will, will_marker, will_size, 1);
    let folder = work.path().join("tax-records-Z4K");
    fs::create_dir(&folder).unwrap();
    make(&folder.join("return-2025-W2P.pdf"), tax_marker, tax_size, 2);

    let ports: Vec<String> = std::iter::once(&owner)
        .chain(&peers)
        .map(|n| {
            let addr = fs::read_to_string(n.home().join("listen.addr")).unwrap();
            addr.trim().rsplit(':').next().unwrap().to_string()
        })
        .collect();
    let pcap = work.path().join("wire.pcap");
    let tcpdump = capture(&ports, &pcap);
    if tcpdump.is_none() {
        eprintln!("NOTE: no loopback capture (needs root and tcpdump); files are still checked");
    }

    owner.json(&["put", will.to_str().unwrap(), folder.to_str().unwrap()]);
    owner.wait_log("catalog snapshot 1 written", Duration::from_secs(30));
    let back = work.path().join("back.txt");
    owner.json(&["get", "grandmas-will-Q7X.txt", "-o", back.to_str().unwrap()]);
    assert_eq!(fs::read(&back).unwrap().len() as u64, will_size);
    fs::remove_file(&back).unwrap();

    let captured = tcpdump.map(|capture| {
        std::thread::sleep(Duration::from_millis(500));
        capture.stop()
    });

    let needles = needles(
        &["grandmas-will-Q7X", "tax-records-Z4K", "return-2025-W2P"],
        &[will_marker, tax_marker],
        &[will_size, tax_size],
    );
    // The search finds what is there (the originals), so a clean result means something.
    assert_eq!(
        find(&fs::read(&will).unwrap(), will_marker),
        Some(0),
        "the search works"
    );
    // Everything each peer wrote: its whole home (shares, index, heads, catalog, config) and
    // its log.
    for p in &peers {
        let mut files = Vec::new();
        files_under(&p.home(), &mut files);
        files.push(p.log_path());
        assert!(files.len() > 5, "{files:?}");
        for f in &files {
            assert_clean(&p.name, f, &needles);
        }
    }
    // The owner's databases, its own share store and its log.
    let mut files = Vec::new();
    files_under(&owner.home(), &mut files);
    files.push(owner.log_path());
    for f in &files {
        assert_clean("owner", f, &needles);
    }
    // The wire.
    if let Some(dropped) = captured {
        // A packet the kernel dropped is a packet nobody searched: the capture buffer (-B)
        // holds the whole exchange, so none may be missing.
        assert_eq!(dropped, Some(0), "packets the capture missed");
        let size = fs::metadata(&pcap).unwrap().len();
        assert!(
            size > 2 * will_size,
            "the capture saw the shares go by: {size} bytes"
        );
        assert_clean("loopback capture", &pcap, &needles);
        println!("loopback capture: {size} bytes, none of the names, contents or sizes");
    }
    owner.stop();
}
