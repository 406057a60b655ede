//! The web UI's HTTP side, as a browser meets it: pages with a strict CSP, sign-up with the
//! recovery code, login with the CLI's delay rules, a session cookie that is HttpOnly and
//! SameSite=Strict, CSRF tokens on every change, a session that acts only for its own
//! account, and a logout that locks the vault.
// Test code: panicking on failure is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use shard_testkit::nodes as common;

use common::{PASSWORD, TestNode, stderr};
use serde_json::{Value, json};

struct Browser {
    base: String,
    agent: ureq::Agent,
    cookie: Option<String>,
    csrf: Option<String>,
}

struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: String,
    bytes: Vec<u8>,
}

impl Answer {
    /// The whole answer (a body of up to 1 GiB: downloads are compared byte for byte).
    fn read(mut response: ureq::http::Response<ureq::Body>) -> Self {
        let bytes = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap_or_default();
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Browser {
    fn new(node: &TestNode) -> Self {
        let addr = std::fs::read_to_string(node.home().join("ui.addr")).unwrap();
        Self {
            base: format!("http://{}", addr.trim()),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .new_agent(),
            cookie: None,
            csrf: None,
        }
    }

    /// A request as the page makes it: the cookie, and the session key on every read; on a
    /// change only when `csrf` (to test its absence).
    fn call(&self, method: &str, path: &str, body: Option<Value>, csrf: bool) -> Answer {
        let key = csrf || method == "GET";
        self.send(
            method,
            path,
            body.map(|b| ("application/json", b.to_string())),
            key,
        )
    }

    /// A request with `body` (content type and text), with the session key or without it.
    fn send(&self, method: &str, path: &str, body: Option<(&str, String)>, key: bool) -> Answer {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        // What a browser sends with every change from the node's own page.
        if method != "GET" {
            request = request.header("Origin", &self.base);
        }
        if let Some(c) = &self.cookie {
            request = request.header("Cookie", c);
        }
        if key && let Some(t) = &self.csrf {
            request = request.header("X-CSRF-Token", t);
        }
        let response = match body {
            Some((kind, b)) => self
                .agent
                .run(request.header("Content-Type", kind).body(b).unwrap()),
            None => self.agent.run(request.body(()).unwrap()),
        };
        Answer::read(response.unwrap())
    }

    /// Uploads `bytes` as `name` and waits for the put; returns the job's end state.
    fn upload(&self, name: &str, bytes: &[u8]) -> Answer {
        self.upload_announcing(name, bytes, Some(bytes.len()))
    }

    /// An upload whose announced size may differ from its bytes (or be missing).
    fn upload_announcing(&self, name: &str, bytes: &[u8], size: Option<usize>) -> Answer {
        let url = format!(
            "{}/v1/upload?{}name={}",
            self.base,
            size.map(|s| format!("size={s}&")).unwrap_or_default(),
            name.bytes()
                .map(|b| if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                })
                .collect::<String>()
        );
        let request = ureq::http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("Origin", &self.base)
            .header("Cookie", self.cookie.clone().unwrap_or_default())
            .header("X-CSRF-Token", self.csrf.as_deref().unwrap_or(""))
            .body(bytes.to_vec())
            .unwrap();
        let answer = Answer::read(self.agent.run(request).unwrap());
        if answer.status != 200 {
            return answer;
        }
        let job = answer.json()["job"].as_u64().unwrap();
        // The same progress the page shows, as server-sent events, up to the "end" event.
        let events = self.call("GET", &format!("/v1/jobs/{job}/events"), None, false);
        let end = events
            .body
            .split("\n\n")
            .find(|e| e.contains("event: end"))
            .and_then(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .unwrap_or_else(|| panic!("no end event: {}", events.body))
            .to_string();
        Answer {
            status: 200,
            headers: events.headers,
            bytes: end.clone().into_bytes(),
            body: end,
        }
    }

    fn login(&mut self, user: &str, password: &str) -> Answer {
        let answer = self.call(
            "POST",
            "/ui/login",
            Some(json!({"user": user, "password": password})),
            false,
        );
        if answer.status == 200 {
            let set = answer.headers.get("set-cookie").unwrap().to_str().unwrap();
            let value = set.split(';').next().unwrap();
            self.cookie = Some(value.to_string());
            self.csrf = answer.json()["csrf"].as_str().map(str::to_string);
        }
        answer
    }
}

#[test]
fn the_web_ui_keeps_sessions_and_changes_safe() {
    let work = tempfile::tempdir().unwrap();
    let mut node = TestNode::init("home-server");
    // A folder on the node opened to web sessions (none is, by default).
    let config = node.home().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "node_paths = []",
            &format!("node_paths = [{:?}]", work.path().to_str().unwrap()),
        ),
    )
    .unwrap();
    node.create_account("bob");
    node.serve(&["--login", "bob"]);
    let mut browser = Browser::new(&node);

    // The page, with a strict policy: scripts and styles from the node only, no framing.
    let page = browser.call("GET", "/", None, false);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>shard</title>"));
    let csp = page
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!page.body.contains("<script>"), "no inline script");
    assert_eq!(browser.call("GET", "/app.js", None, false).status, 200);

    // Sign-up is the administrator's (bob, the node's first account): not open to anyone.
    let open = browser.call(
        "POST",
        "/ui/signup",
        Some(json!({"user": "alice", "password": PASSWORD})),
        false,
    );
    assert_eq!(open.status, 403, "{}", open.body);
    assert!(open.body.contains("administrator"), "{}", open.body);
    let mut admin = Browser::new(&node);
    assert_eq!(admin.login("bob", PASSWORD).status, 200);
    assert_eq!(
        admin.call("GET", "/ui/session", None, false).json()["admin"],
        true
    );
    // The rules with their reason; the recovery code once.
    let weak = admin.call(
        "POST",
        "/ui/signup",
        Some(json!({"user": "alice", "password": "short"})),
        true,
    );
    assert_eq!(weak.status, 400);
    assert!(
        weak.json()["error"]
            .as_str()
            .unwrap()
            .contains("shorter than 10"),
        "{}",
        weak.body
    );
    let created = admin.call(
        "POST",
        "/ui/signup",
        Some(json!({"user": "alice", "password": PASSWORD})),
        true,
    );
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.json()["recovery_code"].as_str().unwrap().len(), 71);

    // Without a session, nothing.
    assert_eq!(browser.call("GET", "/v1/ls", None, false).status, 401);
    assert_eq!(browser.call("GET", "/ui/session", None, false).status, 401);

    // A wrong passphrase: the CLI's message and delay.
    let wrong = browser.login("alice", "not the passphrase");
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.json()["error"]
            .as_str()
            .unwrap()
            .contains("wrong passphrase"),
        "{}",
        wrong.body
    );
    let ok = browser.login("alice", PASSWORD);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let set_cookie = ok.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    assert_eq!(
        browser.call("GET", "/ui/session", None, false).json()["user"],
        "alice"
    );
    // The cookie alone opens nothing, reads included: browsers send it to every port of the
    // host, so another local web server the owner visits has it. It lacks the page's key.
    for path in ["/ui/session", "/v1/ls", "/v1/peers", "/v1/download?name=x"] {
        let bare = browser.send("GET", path, None, false);
        // Answered as no session at all: the cookie's holder does not even learn it is live.
        assert_eq!(
            bare.status, 401,
            "{path} with the cookie alone: {}",
            bare.body
        );
        assert!(
            bare.body.contains("no session key"),
            "{path}: {}",
            bare.body
        );
        assert!(
            !bare.body.contains(browser.csrf.as_deref().unwrap()),
            "{path}"
        );
    }
    let bare_form = browser.send(
        "POST",
        "/v1/download",
        Some(("application/x-www-form-urlencoded", "name=x".to_string())),
        false,
    );
    assert_eq!(bare_form.status, 401, "{}", bare_form.body);

    // Acting as alice: her (empty) files; bob's are not reachable through her session.
    let listing = browser.call("GET", "/v1/ls", None, false);
    assert_eq!(listing.status, 200, "{}", listing.body);
    assert_eq!(listing.json()["files"], json!([]));
    assert_eq!(
        browser.call("GET", "/v1/ls?user=bob", None, false).status,
        403
    );

    // Store a file by a path on the node (under the folder opened to web sessions): needs the
    // CSRF token.
    let letter = work.path().join("letter.txt");
    std::fs::write(&letter, b"dear alice").unwrap();
    let put = json!({"paths": [letter.to_str().unwrap()]});
    let refused = browser.call("POST", "/v1/put", Some(put.clone()), false);
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("no session key"), "{}", refused.body);
    let job = browser.call("POST", "/v1/put", Some(put), true).json()["job"]
        .as_u64()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let state = browser
            .call("GET", &format!("/v1/jobs/{job}"), None, false)
            .json();
        if state["state"] == "done" {
            break;
        }
        assert_ne!(state["state"], "failed", "{state}");
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        browser.call("GET", "/v1/ls", None, false).json()["files"][0]["name"],
        "letter.txt"
    );
    // Uploads, streamed; odd names and an empty file are fine; bytes come back identical.
    let long = format!("{}.txt", "l".repeat(296));
    let awkward = ["semi;colon.txt", "héllo 🌍.bin", long.as_str(), "empty.dat"];
    for (i, name) in awkward.iter().enumerate() {
        let bytes: Vec<u8> = if *name == "empty.dat" {
            Vec::new()
        } else {
            common::random_bytes(300_000 + i, i as u64)
        };
        let end = browser.upload(name, &bytes);
        assert_eq!(end.json()["state"], "done", "{name}: {}", end.body);
        let back = browser.call(
            "GET",
            &format!(
                "/v1/download?name={}",
                name.bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect::<String>()
            ),
            None,
            false,
        );
        assert_eq!(back.status, 200, "{name}");
        // The page's way: a form posted with the key in a field (a link cannot carry it).
        let encoded: String = name.bytes().map(|b| format!("%{b:02X}")).collect();
        let key = browser.csrf.clone().unwrap();
        let form = browser.send(
            "POST",
            "/v1/download",
            Some((
                "application/x-www-form-urlencoded",
                format!("name={encoded}&csrf={key}"),
            )),
            false,
        );
        assert_eq!(form.status, 200, "{name}: {}", form.body);
        assert_eq!(form.bytes, bytes, "{name}: the form download differs");
        assert!(
            back.headers
                .get("content-disposition")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("attachment")
        );
        assert!(back.bytes == bytes, "{name}: bytes differ");
    }
    for bad in ["../escape", "/abs", "a//b"] {
        let refused = browser.upload(bad, b"x");
        assert_eq!(refused.status, 400, "{bad}: {}", refused.body);
    }
    // An upload that ends short, runs long or does not say its size stores nothing.
    let unsized_upload = browser.upload_announcing("nosize.bin", b"abc", None);
    assert_eq!(unsized_upload.status, 400, "{}", unsized_upload.body);
    assert!(
        unsized_upload.body.contains("size"),
        "{}",
        unsized_upload.body
    );
    let short = browser.upload_announcing("short.bin", &[7u8; 50_000], Some(100_000));
    assert_eq!(short.json()["state"], "failed", "{}", short.body);
    assert!(
        short.body.contains("ended after 50000 of 100000 bytes"),
        "{}",
        short.body
    );
    let long_body = browser.upload_announcing("long.bin", &[7u8; 50_000], Some(20_000));
    assert_ne!(long_body.json()["state"], "done", "{}", long_body.body);
    assert!(
        long_body
            .body
            .contains("more than the 20000 bytes announced"),
        "{}",
        long_body.body
    );
    let listed = browser.call("GET", "/v1/ls", None, false).body;
    assert!(
        !listed.contains("short.bin") && !listed.contains("long.bin") && !listed.contains("nosize"),
        "{listed}"
    );
    let missing = browser.call("GET", "/v1/download?name=nothing.here", None, false);
    assert_eq!(missing.status, 404, "{}", missing.body);
    // The picture: every chunk's shares, each with its node and state.
    let picture = browser
        .call("GET", "/v1/picture?name=semi%3Bcolon.txt", None, false)
        .json();
    let share = &picture["chunks"][0]["shares"][0];
    assert_eq!(
        (share["state"].clone(), share["node_name"].clone()),
        (json!("present"), json!("this node")),
        "{picture}"
    );

    // Not for the browser: stopping the node, other accounts.
    assert_eq!(browser.call("POST", "/v1/shutdown", None, true).status, 403);
    assert_eq!(browser.call("GET", "/v1/accounts", None, false).status, 403);

    // A cookie from another node (or made up) is nobody's.
    let mut stranger = Browser::new(&node);
    stranger.cookie = Some(format!("shard_session_0={}", "00".repeat(32)));
    stranger.csrf = browser.csrf.clone();
    assert_eq!(stranger.call("GET", "/v1/ls", None, false).status, 401);

    // Logout locks the vault for real: the CLI cannot read alice's files either.
    assert_eq!(
        browser.call("POST", "/ui/logout", None, false).status,
        401,
        "the key is needed"
    );
    let out = browser.call("POST", "/ui/logout", None, true);
    assert_eq!(
        (out.status, out.json()["locked"].clone()),
        (200, json!(true)),
        "{}",
        out.body
    );
    assert_eq!(browser.call("GET", "/v1/ls", None, false).status, 401);
    let cli = node.run(&["ls", "--user", "alice"]);
    assert_eq!(cli.status.code(), Some(1));
    assert!(
        stderr(&cli).contains("shard login alice"),
        "{}",
        stderr(&cli)
    );
    // bob, unlocked at start, is untouched.
    assert!(node.run(&["ls", "--user", "bob"]).status.success());
    node.stop();
}

#[test]
fn an_idle_session_ends_explains_itself_and_loses_nothing() {
    let mut node = TestNode::init("desk");
    let config = node.home().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("session_idle_secs = 1800"), "{text}");
    std::fs::write(
        &config,
        text.replace("session_idle_secs = 1800", "session_idle_secs = 2"),
    )
    .unwrap();
    node.create_account("alice");
    node.serve(&[]);
    let mut browser = Browser::new(&node);
    assert_eq!(browser.login("alice", PASSWORD).status, 200);
    let stored = browser.upload("kept.txt", b"the deeds to the house");
    assert_eq!(stored.json()["state"], "done", "{}", stored.body);

    // In use, the session lives on past its idle time.
    for _ in 0..4 {
        std::thread::sleep(std::time::Duration::from_millis(700));
        assert_eq!(browser.call("GET", "/v1/ls", None, false).status, 200);
    }
    // Left alone, it ends: reads and changes are refused with the reason and the fix.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let ls = browser.call("GET", "/v1/ls", None, false);
    assert_eq!(ls.status, 401, "{}", ls.body);
    assert!(
        ls.json()["error"].as_str().unwrap().contains("expired")
            && ls.json()["hint"].as_str().unwrap().contains("log in again"),
        "{}",
        ls.body
    );
    let late = browser.upload("late.txt", b"typed after lunch");
    assert_eq!(late.status, 401, "{}", late.body);
    // Nothing was lost or half-stored: a new login sees exactly what was there.
    assert_eq!(browser.login("alice", PASSWORD).status, 200);
    let names: Vec<String> = browser.call("GET", "/v1/ls", None, false).json()["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["kept.txt".to_string()]);
    let got = browser.call("GET", "/v1/download?name=kept.txt", None, false);
    assert_eq!(got.bytes, b"the deeds to the house");
    node.stop();
}

#[test]
fn the_web_ui_stays_on_loopback_unless_told() {
    let mut node = TestNode::init("lan-box");
    let out = node.run(&["serve", "--ui", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--ui-public"), "{}", stderr(&out));
    node.serve(&[]);
    let addr = std::fs::read_to_string(node.home().join("ui.addr")).unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
}

/// A download held open: its request sent raw, the answer's status line read, the rest left
/// unread (as a slow browser would).
fn held_download(browser: &Browser, name: &str) -> (std::net::TcpStream, String) {
    use std::io::{Read, Write};
    let host = browser.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    write!(
        stream,
        "GET /v1/download?name={name} HTTP/1.1\r\nHost: {host}\r\nCookie: {}\r\nX-CSRF-Token: {}\r\n\r\n",
        browser.cookie.as_deref().unwrap(),
        browser.csrf.as_deref().unwrap(),
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    (stream, String::from_utf8_lossy(&head).into_owned())
}

#[test]
fn downloads_at_once_are_bounded_and_their_places_come_back() {
    let mut node = TestNode::init("desk");
    node.create_account("alice");
    node.create_account("bob");
    node.serve(&[]);
    let mut browser = Browser::new(&node);
    assert_eq!(browser.login("alice", PASSWORD).status, 200);
    let mut bob = Browser::new(&node);
    assert_eq!(bob.login("bob", PASSWORD).status, 200);
    assert_eq!(bob.upload("note.txt", b"bob's").json()["state"], "done");
    // Larger than what the sockets buffer, so a download not read stays under way.
    let bytes = common::random_bytes(24 << 20, 7);
    let stored = browser.upload("big.bin", &bytes);
    assert_eq!(stored.json()["state"], "done", "{}", stored.body);

    // Each download keeps a whole copy in the spool until it is sent: two at once per account.
    let first = held_download(&browser, "big.bin");
    let second = held_download(&browser, "big.bin");
    assert_eq!(first.1, "HTTP/1.1 200");
    assert_eq!(second.1, "HTTP/1.1 200");
    let third = browser.call("GET", "/v1/download?name=big.bin", None, false);
    assert_eq!(third.status, 503, "{}", third.body);
    assert!(third.body.contains("under way"), "{}", third.body);
    assert!(third.json()["hint"].as_str().unwrap().contains("wait"));
    // Alice's downloads left hanging do not keep Bob from his.
    let his = bob.call("GET", "/v1/download?name=note.txt", None, false);
    assert_eq!(his.status, 200, "{}", his.body);
    assert_eq!(his.bytes, b"bob's");

    // Given up, they give their places back.
    drop(first);
    drop(second);
    let start = std::time::Instant::now();
    loop {
        let again = browser.call("GET", "/v1/download?name=big.bin", None, false);
        if again.status == 200 {
            assert!(again.bytes == bytes, "the download differs");
            break;
        }
        assert_eq!(again.status, 503, "{}", again.body);
        assert!(start.elapsed().as_secs() < 30, "the places never came back");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    node.stop();
}

/// Two tabs of one browser: each login has a cookie of its own, the browser sends both, and
/// each tab's key opens its own session (a login in one tab does not end the other, as a
/// shared cookie name did), and a cookie planted under the old name cannot shadow them.
#[test]
fn a_second_tab_does_not_end_the_first() {
    let mut node = TestNode::init("desk");
    node.create_account("alice");
    node.serve(&[]);
    let mut first = Browser::new(&node);
    assert_eq!(first.login("alice", PASSWORD).status, 200);
    let mut second = Browser::new(&node);
    assert_eq!(second.login("alice", PASSWORD).status, 200);
    let (a, b) = (
        first.cookie.clone().unwrap(),
        second.cookie.clone().unwrap(),
    );
    assert_ne!(
        a.split('=').next(),
        b.split('=').next(),
        "one cookie name for two logins"
    );
    // What the browser sends from either tab: 40 stale or planted cookies first (ended
    // sessions leave theirs behind; another port can plant more, even under a real cookie's
    // name), then both of its own.
    let name_b = b.split('=').next().unwrap();
    let stale: Vec<String> = (0..40)
        .map(|i| format!("shard_session_{i:02}={}", "ab".repeat(32)))
        .collect();
    let all = format!("{name_b}=planted; {}; {a}; {b}", stale.join("; "));
    first.cookie = Some(all.clone());
    second.cookie = Some(all);
    for tab in [&first, &second] {
        let ls = tab.call("GET", "/v1/ls", None, false);
        assert_eq!(ls.status, 200, "{}", ls.body);
        assert_eq!(
            tab.call("GET", "/ui/session", None, false).json()["csrf"],
            tab.csrf.clone().unwrap()
        );
    }
    // One tab logs out: its cookie is cleared, and the vault is locked, which ends every
    // session opened with that unlock (the other tab's too).
    let out = second.call("POST", "/ui/logout", None, true);
    assert_eq!(out.status, 200, "{}", out.body);
    let cleared = out.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        cleared.starts_with(b.split('=').next().unwrap()),
        "{cleared}"
    );
    assert_eq!(second.call("GET", "/v1/ls", None, false).status, 401);
    assert_eq!(first.call("GET", "/v1/ls", None, false).status, 401);
    node.stop();
}
