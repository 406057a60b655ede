//! What the web UI's Backups page asks of the API, through a real browser session (cookie and
//! session key, `Host` and `Origin` as a browser sends them) in front of a node in this
//! process: a job made, run, changed and run again; one folder of a snapshot listed a page at
//! a time; one file of snapshot 1 downloaded and restored onto the node, bytes as they were
//! then. And what the session may not do: back up or restore outside the folders open to web
//! sessions, look into another account's job or snapshot, or download from it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shard_crypto::{KdfParams, KeyRecord, VaultKey};
use shard_http::{HttpOptions, HttpServer};
use shard_node::home::{Home, NodeConfig};
use shard_node::node::{Node, RunOptions};

const PASSWORD: &[u8] = b"correct horse battery staple";

/// A node's home whose web sessions may reach `open` (and nothing else on the node).
fn home(dir: &Path, open: &Path) -> Home {
    let home = Home::new(dir.join("desk"));
    let mut config = NodeConfig::new("desk");
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.api = "127.0.0.1:0".parse().unwrap();
    config.ui = Some("127.0.0.1:0".parse().unwrap());
    config.web.node_paths = vec![open.to_path_buf()];
    // mDNS off: tests on the host must not multicast on its real interfaces.
    config.discovery.mdns = shard_net::discovery::MdnsMode::Off;
    // No relays: tests never contact the public ones.
    config.net.relays = Some(Vec::new());
    home.init(&config).unwrap();
    home
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A browser's session with the web UI.
struct Browser {
    base: String,
    cookie: String,
    key: String,
    agent: ureq::Agent,
}

impl Browser {
    fn login(ui: std::net::SocketAddr, user: &str) -> Self {
        let base = format!("http://{ui}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let request = ureq::http::Request::builder()
            .method("POST")
            .uri(format!("{base}/ui/login"))
            .header("Origin", &base)
            .header("Content-Type", "application/json")
            .body(
                json!({"user": user, "password": std::str::from_utf8(PASSWORD).unwrap()})
                    .to_string(),
            )
            .unwrap();
        let mut response = agent.run(request).unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let body: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        Self {
            base,
            cookie,
            key: body["csrf"].as_str().unwrap().to_string(),
            agent,
        }
    }

    fn send(&self, method: &str, path: &str, kind: &str, body: String) -> Answer {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Origin", &self.base)
            .header("Cookie", &self.cookie)
            .header("X-CSRF-Token", &self.key)
            .header("Content-Type", kind)
            .body(body)
            .unwrap();
        let mut response = self.agent.run(request).unwrap();
        Answer {
            status: response.status().as_u16(),
            body: response
                .body_mut()
                .with_config()
                .limit(1 << 26)
                .read_to_vec()
                .unwrap_or_default(),
        }
    }

    fn get(&self, path: &str) -> Answer {
        self.send("GET", path, "application/json", String::new())
    }

    fn post(&self, path: &str, body: Value) -> Answer {
        self.send("POST", path, "application/json", body.to_string())
    }

    /// Follows the job a request started to its end; its status.
    fn finish(&self, started: &Answer) -> Value {
        assert_eq!(started.status, 200, "{}", started.text());
        let job = started.json()["job"].as_u64().unwrap();
        let since = Instant::now();
        loop {
            let status = self.get(&format!("/v1/jobs/{job}")).json();
            if status["state"] != "running" {
                return status;
            }
            assert!(since.elapsed() < Duration::from_secs(60), "{status}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The entries of one page of a snapshot's folder: (name, kind).
fn names(page: &Value) -> Vec<(String, String)> {
    page["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_web_session_browses_and_restores_its_own_snapshots_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(open.join("papers/sub")).unwrap();
    std::fs::create_dir_all(open.join("bobs")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let papers = open.join("papers");
    std::fs::write(papers.join("a.txt"), b"the first words").unwrap();
    std::fs::write(papers.join("sub/b.txt"), b"b").unwrap();
    std::fs::write(open.join("bobs/secret.txt"), b"bob's secret").unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (node, http) = runtime.block_on(async {
        let node = Node::start(home(dir.path(), &open), RunOptions::default())
            .await
            .unwrap();
        for user in ["alice", "bob"] {
            let key = VaultKey::generate().unwrap();
            let record = KeyRecord::wrap(&key, PASSWORD, KdfParams::INSECURE_FAST).unwrap();
            node.catalog().create_account(user, &record).unwrap();
        }
        let http = HttpServer::start(node.clone(), &HttpOptions::default())
            .await
            .unwrap();
        (node, http)
    });
    let ui = http.ui_addr().unwrap();
    let alice = Browser::login(ui, "alice");
    let bob = Browser::login(ui, "bob");

    // A job on a folder outside the open ones is refused; inside, it is made.
    let refused = alice.post(
        "/v1/backup/add",
        json!({"path": outside.to_str().unwrap(), "name": "outside"}),
    );
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.text().contains("node_paths"), "{}", refused.text());
    let added = alice.post(
        "/v1/backup/add",
        json!({"path": papers.to_str().unwrap(), "every": "1d", "keep": "last=5"}),
    );
    assert_eq!(added.status, 200, "{}", added.text());
    assert_eq!(added.json()["name"], "papers");

    // Two runs, the file changed and one added between them.
    let first = alice.finish(&alice.post("/v1/backup/run", json!({"name": "papers"})));
    assert_eq!(first["state"], "done", "{first}");
    assert_eq!(first["result"]["snapshot"], 1, "{first}");
    std::fs::write(papers.join("a.txt"), b"other words, later").unwrap();
    std::fs::write(papers.join("c.txt"), b"c").unwrap();
    let second = alice.finish(&alice.post("/v1/backup/run", json!({"name": "papers"})));
    assert_eq!(second["result"]["snapshot"], 2, "{second}");

    // One folder at a time, in name order, with kinds and sizes; a page at a time.
    let top = alice.get("/v1/snapshot/ls?name=papers&at=1").json();
    assert_eq!(top["snapshot"], 1, "{top}");
    assert_eq!(top["total"], 2, "{top}");
    assert_eq!(
        names(&top),
        [
            ("a.txt".into(), "file".into()),
            ("sub".into(), "dir".into())
        ]
    );
    assert_eq!(top["entries"][0]["size"], 15, "{top}");
    assert_eq!(top["entries"][0]["path"], "a.txt", "{top}");
    let sub = alice
        .get("/v1/snapshot/ls?name=papers&at=1&path=sub")
        .json();
    assert_eq!(names(&sub), [("b.txt".into(), "file".into())]);
    assert_eq!(sub["entries"][0]["path"], "sub/b.txt", "{sub}");
    let newest = alice.get("/v1/snapshot/ls?name=papers").json();
    assert_eq!(newest["snapshot"], 2, "{newest}");
    assert_eq!(newest["total"], 3, "{newest}");
    let page = alice
        .get("/v1/snapshot/ls?name=papers&at=2&offset=1&limit=1")
        .json();
    assert_eq!(
        (page["total"].as_u64(), page["offset"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(names(&page), [("c.txt".into(), "file".into())]);
    // Bad paths and snapshots are refused with their reasons.
    for (query, status, words) in [
        (
            "name=papers&at=1&path=../bobs",
            400,
            "not a path in a snapshot",
        ),
        ("name=papers&at=1&path=a.txt", 400, "not a folder"),
        (
            "name=papers&at=1&path=nothing",
            404,
            "not in snapshot papers@1",
        ),
        ("name=papers&at=9", 404, "papers@9 is not a snapshot"),
        (
            "name=papers&at=someday",
            400,
            "a snapshot's number or a day",
        ),
    ] {
        let refused = alice.get(&format!("/v1/snapshot/ls?{query}"));
        assert_eq!(refused.status, status, "{query}: {}", refused.text());
        assert!(
            refused.text().contains(words),
            "{query}: {}",
            refused.text()
        );
        assert!(refused.json()["hint"].is_string(), "{query}");
    }

    // What changed between the two.
    let diff = alice.get("/v1/diff?name=papers&from=1&to=2").json();
    assert_eq!(diff["added"], json!(["papers/c.txt"]), "{diff}");
    assert_eq!(diff["changed"], json!(["papers/a.txt"]), "{diff}");

    // One file of snapshot 1, downloaded (as a link would and as the page's form does) and
    // restored onto the node: its bytes as they were then.
    let link = alice.get("/v1/download?name=papers/a.txt&at=1");
    assert_eq!(link.status, 200, "{}", link.text());
    assert_eq!(link.body, b"the first words");
    let form = alice.send(
        "POST",
        "/v1/download",
        "application/x-www-form-urlencoded",
        format!("name=papers%2Fa.txt&at=1&csrf={}", alice.key),
    );
    assert_eq!(form.status, 200, "{}", form.text());
    assert_eq!(form.body, b"the first words");
    let now = alice.get("/v1/download?name=papers/a.txt");
    assert_eq!(
        now.body, b"other words, later",
        "no `at`: the newest snapshot"
    );
    let folder = alice.get("/v1/download?name=papers/sub&at=1");
    assert_eq!(folder.status, 400, "{}", folder.text());
    assert!(
        folder.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("papers/sub is a folder")),
        "{}",
        folder.text()
    );
    let restored = open.join("restored-a.txt");
    let done = alice.finish(&alice.post(
        "/v1/get",
        json!({"name": "papers/a.txt", "at": "1", "out": restored.to_str().unwrap()}),
    ));
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(std::fs::read(&restored).unwrap(), b"the first words");
    // The whole snapshot, as a folder.
    let tree = open.join("papers-1");
    let done = alice.finish(&alice.post(
        "/v1/get",
        json!({"name": "papers", "at": "1", "out": tree.to_str().unwrap()}),
    ));
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(std::fs::read(tree.join("sub/b.txt")).unwrap(), b"b");
    assert!(!tree.join("c.txt").exists(), "c.txt came after snapshot 1");
    // Not outside the open folders, and not over what is there.
    for (out, force) in [(outside.join("a.txt"), false), (restored.clone(), true)] {
        let refused = alice.post(
            "/v1/get",
            json!({"name": "papers/a.txt", "at": "1", "out": out.to_str().unwrap(), "force": force}),
        );
        assert_eq!(refused.status, 403, "{out:?}: {}", refused.text());
    }
    assert!(!outside.join("a.txt").exists());

    // Bob's job: alice's session sees none of it, by name or by asking for his account.
    let bobs = bob.post(
        "/v1/backup/add",
        json!({"path": open.join("bobs").to_str().unwrap()}),
    );
    assert_eq!(bobs.status, 200, "{}", bobs.text());
    let run = bob.finish(&bob.post("/v1/backup/run", json!({"name": "bobs"})));
    assert_eq!(run["state"], "done", "{run}");
    assert_eq!(
        bob.get("/v1/download?name=bobs/secret.txt&at=1").body,
        b"bob's secret"
    );
    for path in [
        "/v1/snapshot/ls?name=bobs&at=1",
        "/v1/snapshot/ls?name=bobs",
        "/v1/snapshots?name=bobs",
        "/v1/diff?name=bobs&from=1&to=1",
        "/v1/download?name=bobs/secret.txt&at=1",
    ] {
        let refused = alice.get(path);
        assert_eq!(refused.status, 404, "{path}: {}", refused.text());
        assert!(!refused.text().contains("bob's secret"), "{path}");
        let refused = alice.get(&format!("{path}&user=bob"));
        assert_eq!(refused.status, 403, "{path}&user=bob: {}", refused.text());
        assert!(
            refused.text().contains("another account"),
            "{}",
            refused.text()
        );
    }
    let refused = alice.post(
        "/v1/get",
        json!({"name": "bobs/secret.txt", "at": "1", "user": "bob",
               "out": open.join("stolen.txt").to_str().unwrap()}),
    );
    assert_eq!(refused.status, 403, "{}", refused.text());
    let missing = alice.finish(&alice.post(
        "/v1/get",
        json!({"name": "bobs/secret.txt", "at": "1",
               "out": open.join("stolen.txt").to_str().unwrap()}),
    ));
    assert_eq!(missing["state"], "failed", "{missing}");
    assert!(!open.join("stolen.txt").exists());
    let jobs = alice.get("/v1/backup/ls").json();
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1), "{jobs}");

    runtime.block_on(async {
        node.shutdown();
        node.stopped(Duration::from_secs(5)).await;
        http.stopped(Duration::from_secs(5)).await;
    });
}
