//! What a web page, another account or a stranger can make the web UI do to the node's owner:
//! nothing outside what a browser session is for. Each refusal is checked with its status and
//! words, and the files it would have touched are checked untouched.
// Test code: panicking on failure is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use shard_testkit::nodes as common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{PASSWORD, TestNode, stderr};
use serde_json::{Value, json};

/// A client of the web UI that sends what a browser would (or, when told, what an attacker's
/// page could make it send).
struct Client {
    base: String,
    host: String,
    origin: Option<String>,
    cookie: Option<String>,
    csrf: Option<String>,
    agent: ureq::Agent,
}

struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Client {
    fn ui(node: &TestNode) -> Self {
        let addr = std::fs::read_to_string(node.home().join("ui.addr")).unwrap();
        let addr = addr.trim().to_string();
        Self {
            base: format!("http://{addr}"),
            host: addr.clone(),
            origin: Some(format!("http://{addr}")),
            cookie: None,
            csrf: None,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .new_agent(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Host", &self.host);
        if method != "GET"
            && let Some(o) = &self.origin
        {
            request = request.header("Origin", o);
        }
        if let Some(c) = &self.cookie {
            request = request.header("Cookie", c);
        }
        if let Some(t) = &self.csrf {
            request = request.header("X-CSRF-Token", t);
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut response = self
            .agent
            .run(
                request
                    .header("Content-Type", "application/json")
                    .body(body)
                    .unwrap(),
            )
            .unwrap();
        Answer {
            status: response.status().as_u16(),
            body: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }
}

/// Logs in through the real login (the cookie comes back in a header ureq does not keep).
fn session(node: &TestNode, user: &str) -> Client {
    let mut c = Client::ui(node);
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(format!("{}/ui/login", c.base))
        .header("Origin", c.origin.clone().unwrap())
        .header("Content-Type", "application/json")
        .body(json!({"user": user, "password": PASSWORD}).to_string())
        .unwrap();
    let mut response = c.agent.run(request).unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    c.cookie = Some(cookie);
    c.csrf = body["csrf"].as_str().map(str::to_string);
    c
}

fn wait_job(c: &Client, answer: &Answer) -> Value {
    let job = answer.json()["job"]
        .as_u64()
        .unwrap_or_else(|| panic!("{}", answer.body));
    let start = Instant::now();
    loop {
        let state = c.call("GET", &format!("/v1/jobs/{job}"), None).json();
        if state["state"] != "running" {
            return state;
        }
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Opens `folder` to web sessions in the node's config (before it starts).
fn open_to_web(node: &TestNode, folder: &std::path::Path) {
    let config = node.home().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("node_paths = []"), "{text}");
    std::fs::write(
        &config,
        text.replace(
            "node_paths = []",
            &format!("node_paths = [{:?}]", folder.to_str().unwrap()),
        ),
    )
    .unwrap();
}

/// A web session may not read the node's key or API token through a put, nor write over a
/// file outside the folders opened to it, nor escape them through a link; a page of another
/// site (another `Host`, another or no `Origin`) gets nothing; restores never make setuid
/// files for a browser.
#[test]
fn a_browser_session_reaches_only_the_folders_opened_to_it() {
    let open = tempfile::tempdir().unwrap();
    let mut node = TestNode::init("desk");
    open_to_web(&node, open.path());
    node.create_account("alice");
    node.serve(&["--login", "alice"]);
    let alice = session(&node, "alice");

    // Storing the node's secrets: refused, whatever the path looks like.
    let home = node.home();
    let inside_link = open.path().join("looks-inside");
    std::os::unix::fs::symlink(home.join("api.token"), &inside_link).unwrap();
    for secret in [
        home.join("node.key"),
        home.join("api.token"),
        open.path().join("../").join(home.file_name().unwrap()),
        inside_link.clone(),
    ] {
        let refused = alice.call(
            "POST",
            "/v1/put",
            Some(json!({"paths": [secret.to_str().unwrap()]})),
        );
        assert_eq!(refused.status, 403, "{secret:?}: {}", refused.body);
        assert!(refused.body.contains("node_paths"), "{}", refused.body);
    }
    assert!(alice.call("GET", "/v1/ls", None).json()["files"] == json!([]));

    // A file with setuid stored from the opened folder; a restore over a file outside it
    // (think ~/.bashrc) is refused and the file untouched; inside, it lands without setuid.
    let tool = open.path().join("tool");
    std::fs::write(&tool, b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let stored = wait_job(
        &alice,
        &alice.call(
            "POST",
            "/v1/put",
            Some(json!({"paths": [tool.to_str().unwrap()]})),
        ),
    );
    assert_eq!(stored["state"], "done", "{stored}");
    let outside = tempfile::tempdir().unwrap();
    let bashrc = outside.path().join(".bashrc");
    std::fs::write(&bashrc, b"# mine\n").unwrap();
    for target in [
        bashrc.clone(),
        home.join("config.toml"),
        inside_link.clone(),
    ] {
        let refused = alice.call(
            "POST",
            "/v1/get",
            Some(json!({"name": "tool", "out": target.to_str().unwrap()})),
        );
        assert_eq!(refused.status, 403, "{target:?}: {}", refused.body);
        assert!(refused.body.contains("node_paths"), "{}", refused.body);
    }
    assert_eq!(std::fs::read(&bashrc).unwrap(), b"# mine\n");
    // Inside the opened folder, which may hold other accounts' files, a session neither
    // overwrites (force) nor deletes (--move) anything.
    let theirs = open.path().join("theirs.txt");
    std::fs::write(&theirs, b"bob's\n").unwrap();
    let refused = alice.call(
        "POST",
        "/v1/get",
        Some(json!({"name": "tool", "out": theirs.to_str().unwrap(), "force": true})),
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("may not overwrite"),
        "{}",
        refused.body
    );
    let refused = alice.call(
        "POST",
        "/v1/put",
        Some(json!({"paths": [theirs.to_str().unwrap()], "move": true})),
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("may not delete"), "{}", refused.body);
    assert_eq!(std::fs::read(&theirs).unwrap(), b"bob's\n");
    let back = open.path().join("tool-back");
    let restored = wait_job(
        &alice,
        &alice.call(
            "POST",
            "/v1/get",
            Some(json!({"name": "tool", "out": back.to_str().unwrap(), "keep_special_bits": true})),
        ),
    );
    assert_eq!(restored["state"], "done", "{restored}");
    let mode = std::fs::metadata(&back).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755, "a browser restored a setuid file");

    // Another site's page, through DNS rebinding or a plain form: another Host, another or no
    // Origin. Refused before anything runs.
    let mut rebound = session(&node, "alice");
    rebound.host = format!(
        "attacker.example:{}",
        rebound.host.rsplit(':').next().unwrap()
    );
    let refused = rebound.call("GET", "/v1/ls", None);
    assert_eq!(refused.status, 421, "{}", refused.body);
    assert!(refused.body.contains("own address"), "{}", refused.body);
    let mut cross = session(&node, "alice");
    cross.origin = Some("http://attacker.example".into());
    let refused = cross.call("POST", "/v1/rm", Some(json!({"name": "tool"})));
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("origin"), "{}", refused.body);
    cross.origin = None;
    assert_eq!(
        cross
            .call("POST", "/v1/rm", Some(json!({"name": "tool"})))
            .status,
        403
    );
    assert_eq!(
        alice.call("GET", "/v1/ls", None).json()["files"][0]["name"],
        "tool"
    );
    // The control API answers its own address only, and refuses a browser's foreign Origin.
    let api = std::fs::read_to_string(home.join("api.addr")).unwrap();
    let token = std::fs::read_to_string(home.join("api.token")).unwrap();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let status = |host: &str, origin: Option<&str>| {
        let mut r = ureq::http::Request::builder()
            .method("POST")
            .uri(format!("http://{}/v1/logout", api.trim()))
            .header("Host", host)
            .header("Authorization", format!("Bearer {}", token.trim()))
            .header("Content-Type", "application/json");
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        agent
            .run(r.body("{}".to_string()).unwrap())
            .unwrap()
            .status()
            .as_u16()
    };
    let port = api.trim().rsplit(':').next().unwrap().to_string();
    assert_eq!(status(&format!("evil.example:{port}"), None), 421);
    assert_eq!(
        status(api.trim(), Some("http://evil.example")),
        403,
        "a foreign Origin at the API"
    );
    assert!(
        node.run(&["ls", "--user", "alice"]).status.success(),
        "still unlocked"
    );

    // The CLI (the node's owner, with the token) restores special bits when asked, only then.
    let cli_back = outside.path().join("tool-cli");
    let out = node.run(&["get", "tool", "-o", cli_back.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::metadata(&cli_back).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    let cli_keep = outside.path().join("tool-keep");
    let out = node.run(&[
        "get",
        "tool",
        "-o",
        cli_keep.to_str().unwrap(),
        "--keep-special-bits",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::metadata(&cli_keep).unwrap().permissions().mode() & 0o7777,
        0o4755
    );
}

/// Sign-up is not open: the first account comes through the one-time setup link, later ones
/// from the administrator's session; pairing and unpairing are the administrator's; a login
/// answers a wrong name exactly as a wrong passphrase.
#[test]
fn accounts_and_pairing_are_the_administrators() {
    let mut node = TestNode::init("house");
    node.serve(&[]);
    let peer = TestNode::start("cellar");
    let link = node.json(&["ui-link"]);
    assert_eq!(link["setup"], true, "{link}");
    let url = link["url"].as_str().unwrap();
    let token = url.split("#setup=").nth(1).unwrap().to_string();
    let anyone = Client::ui(&node);
    // Without the link: refused. With a wrong token: refused. With it: the administrator.
    for body in [
        json!({"user": "eve", "password": PASSWORD}),
        json!({"user": "eve", "password": PASSWORD, "setup": "00".repeat(16)}),
    ] {
        let refused = anyone.call("POST", "/ui/signup", Some(body));
        assert_eq!(refused.status, 403, "{}", refused.body);
    }
    // A weak passphrase does not spend the link.
    let weak = anyone.call(
        "POST",
        "/ui/signup",
        Some(json!({"user": "admin", "password": "short", "setup": token})),
    );
    assert_eq!(weak.status, 400, "{}", weak.body);
    let first = anyone.call(
        "POST",
        "/ui/signup",
        Some(json!({"user": "admin", "password": PASSWORD, "setup": token})),
    );
    assert_eq!(first.status, 200, "{}", first.body);
    let second = anyone.call(
        "POST",
        "/ui/signup",
        Some(json!({"user": "eve", "password": PASSWORD, "setup": token})),
    );
    assert_eq!(
        second.status, 403,
        "the setup link worked twice: {}",
        second.body
    );
    assert_eq!(node.json(&["ui-link"])["setup"], false);

    // The administrator adds bob; bob cannot add accounts, pair or unpair.
    let admin = session(&node, "admin");
    let added = admin.call(
        "POST",
        "/ui/signup",
        Some(json!({"user": "bob", "password": PASSWORD})),
    );
    assert_eq!(added.status, 200, "{}", added.body);
    let mut bob = session(&node, "bob");
    assert_eq!(bob.call("GET", "/ui/session", None).json()["admin"], false);
    let by_bob = bob.call(
        "POST",
        "/ui/signup",
        Some(json!({"user": "carol", "password": PASSWORD})),
    );
    assert_eq!(by_bob.status, 403, "{}", by_bob.body);
    let invite = bob.call("POST", "/v1/invite", Some(json!({})));
    assert_eq!(invite.status, 403, "{}", invite.body);
    assert!(invite.body.contains("administrator"), "{}", invite.body);
    let code = peer.json(&["invite"])["code"].as_str().unwrap().to_string();
    assert_eq!(
        bob.call("POST", "/v1/join", Some(json!({"code": code})))
            .status,
        403
    );
    assert!(node.peers().is_empty(), "bob paired a node");
    let joined = admin.call("POST", "/v1/join", Some(json!({"code": code})));
    assert_eq!(joined.status, 200, "{}", joined.body);
    let peer_id = node.peers()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        bob.call(
            "POST",
            "/v1/peers/rm",
            Some(json!({"id": peer_id, "now": true}))
        )
        .status,
        403
    );
    assert_eq!(node.peers().len(), 1, "bob unpaired a node");
    // Bob still sees the peers, read-only.
    assert_eq!(bob.call("GET", "/v1/peers", None).status, 200);

    // A wrong name and a wrong passphrase get the same answer.
    bob.cookie = None;
    let wrong_pass = bob.call(
        "POST",
        "/ui/login",
        Some(json!({"user": "bob", "password": "not bob's passphrase"})),
    );
    let no_such = bob.call(
        "POST",
        "/ui/login",
        Some(json!({"user": "bobb", "password": "not bob's passphrase"})),
    );
    assert_eq!((wrong_pass.status, no_such.status), (401, 401));
    let text = |a: &Answer| a.json()["error"].as_str().unwrap().replace("bobb", "bob");
    assert_eq!(text(&wrong_pass), text(&no_such));
    assert!(
        text(&no_such).contains("wrong passphrase"),
        "{}",
        no_such.body
    );
}

/// A restore never writes through a symbolic link: not one it restored itself (a folder that
/// became a link between two puts leaves the older files under it in the vault), not one that
/// was there.
#[test]
fn a_restore_never_writes_through_a_link() {
    let mut node = TestNode::init("solo");
    node.create_account("alice");
    node.serve(&["--login", "alice"]);
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    std::fs::create_dir_all(tree.join("x")).unwrap();
    std::fs::write(tree.join("x/authorized_keys"), b"ssh-ed25519 AAAA mallory").unwrap();
    assert!(node.run(&["put", tree.to_str().unwrap()]).status.success());
    // The folder becomes a link to somewhere else, and the tree is stored again.
    let elsewhere = work.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::remove_dir_all(tree.join("x")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, tree.join("x")).unwrap();
    assert!(node.run(&["put", tree.to_str().unwrap()]).status.success());
    let out = work.path().join("restored");
    let restore = node.run(&["get", "tree", "-o", out.to_str().unwrap()]);
    assert_eq!(restore.status.code(), Some(1), "{}", stderr(&restore));
    assert!(
        stderr(&restore).contains("symbolic link"),
        "{}",
        stderr(&restore)
    );
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "a file was written through the link"
    );
}

/// Another user of the machine plants a link where a restore writes its temporary file (the
/// name of earlier versions was predictable: `.NAME.shard-part`): the restore neither writes
/// through it nor changes the linked file's mode.
#[test]
fn a_restore_never_writes_through_a_planted_temporary_name() {
    let mut node = TestNode::init("solo");
    node.create_account("alice");
    node.serve(&["--login", "alice"]);
    let work = tempfile::tempdir().unwrap();
    let report = work.path().join("report.txt");
    std::fs::write(&report, b"the quarterly figures").unwrap();
    assert!(
        node.run(&["put", report.to_str().unwrap()])
            .status
            .success()
    );

    let victim = work.path().join("authorized_keys");
    std::fs::write(&victim, b"ssh-ed25519 AAAA owner").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let shared = work.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::os::unix::fs::symlink(&victim, shared.join(".report.txt.shard-part")).unwrap();

    let out = shared.join("report.txt");
    let restore = node.run(&["get", "report.txt", "-o", out.to_str().unwrap()]);
    assert!(restore.status.success(), "{}", stderr(&restore));
    assert_eq!(std::fs::read(&out).unwrap(), b"the quarterly figures");
    assert_eq!(std::fs::read(&victim).unwrap(), b"ssh-ed25519 AAAA owner");
    let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "the linked file's mode changed");
}

/// After a crash `api.addr` is stale and another program may listen on its port: the CLI asks
/// it to prove it holds the home's token and, when it cannot, sends it nothing secret (not
/// the token, not the passphrase) and says why.
#[test]
fn the_cli_tells_no_secret_to_a_program_squatting_the_api_port() {
    use std::io::{Read, Write};
    let mut node = TestNode::init("solo");
    node.create_account("alice");
    node.serve(&[]);
    let api: std::net::SocketAddr = std::fs::read_to_string(node.home().join("api.addr"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let token = std::fs::read_to_string(node.home().join("api.token")).unwrap();
    node.kill9();
    assert!(node.home().join("api.addr").exists(), "a crash leaves it");

    let squatter = std::net::TcpListener::bind(api).unwrap();
    squatter.set_nonblocking(true).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let heard = std::thread::spawn(move || {
        let mut heard = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut served = 0;
        while Instant::now() < deadline
            && served < 8
            && !stop.load(std::sync::atomic::Ordering::SeqCst)
        {
            let Ok((mut stream, _)) = squatter.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            served += 1;
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut buf = [0u8; 8192];
            if let Ok(n) = stream.read(&mut buf) {
                heard.extend_from_slice(&buf[..n]);
            }
            let body = format!("{{\"proof\":\"{}\",\"user\":\"alice\"}}", "00".repeat(32));
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        heard
    });
    let login = node.run_env(&["login", "alice"], &[("SHARD_PASSWORD", PASSWORD)]);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(login.status.code(), Some(1), "{}", stderr(&login));
    assert!(
        stderr(&login).contains("could not prove it holds the home's API token"),
        "{}",
        stderr(&login)
    );
    let heard = String::from_utf8_lossy(&heard.join().unwrap()).into_owned();
    assert!(heard.contains("/v1/proof"), "{heard}");
    assert!(!heard.contains(token.trim()), "the token was sent: {heard}");
    assert!(
        !heard.contains(PASSWORD),
        "the passphrase was sent: {heard}"
    );
}

/// A web session lasts only as long as the vault unlock it was opened with: a logout and a
/// new login on the CLI, or the account removed and another made with the same name, leave
/// the old cookie with nothing.
#[test]
fn a_web_session_ends_with_the_unlock_it_was_opened_with() {
    let mut node = TestNode::init("desk");
    node.create_account("admin");
    node.create_account("bob");
    node.serve(&[]);
    let bob = session(&node, "bob");
    assert_eq!(bob.call("GET", "/v1/ls", None).status, 200);

    assert!(node.run(&["logout", "bob"]).status.success());
    let login = node.run_env(&["login", "bob"], &[("SHARD_PASSWORD", PASSWORD)]);
    assert!(login.status.success(), "{}", stderr(&login));
    let stale = bob.call("GET", "/v1/ls", None);
    assert_eq!(stale.status, 401, "{}", stale.body);

    let again = session(&node, "bob");
    assert_eq!(again.call("GET", "/v1/ls", None).status, 200);
    let removed = node.run(&["account", "rm", "bob", "--yes"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    node.create_account("bob");
    let login = node.run_env(&["login", "bob"], &[("SHARD_PASSWORD", PASSWORD)]);
    assert!(login.status.success(), "{}", stderr(&login));
    let other_bob = again.call("GET", "/v1/ls", None);
    assert_eq!(other_bob.status, 401, "{}", other_bob.body);
}
