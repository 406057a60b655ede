//! The bad-input catalogue: one table of wrong commands, values and requests over the CLI and
//! the control API. Each must give its error (exit code 1 for a refusal, 2 for a usage error;
//! an HTTP status for the API) with words that name the cause, and none may change what is
//! stored: at the end every file restores bit-exact and `check` is healthy.
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

use common::{TestNode, random_bytes, stderr, stdout};

/// A CLI case: what it tries, its arguments, extra environment, the exit code, and words the
/// error must contain.
struct Cli<'a> {
    what: &'a str,
    /// Another home than the owner's.
    home: Option<std::path::PathBuf>,
    args: Vec<String>,
    env: Vec<(&'a str, &'a str)>,
    code: i32,
    says: &'a [&'a str],
}

fn with_home(mut case: Cli<'_>, home: std::path::PathBuf) -> Cli<'_> {
    case.home = Some(home);
    case
}

fn cli<'a>(what: &'a str, args: &[&str], code: i32, says: &'a [&'a str]) -> Cli<'a> {
    Cli {
        what,
        home: None,
        args: args.iter().map(ToString::to_string).collect(),
        env: Vec::new(),
        code,
        says,
    }
}

/// An API case: method, path, raw body, the status, and words the answer must contain.
struct Api<'a> {
    what: &'a str,
    method: &'a str,
    path: &'a str,
    body: Option<&'a str>,
    token: bool,
    status: u16,
    says: &'a [&'a str],
}

fn call(node: &TestNode, case: &Api<'_>) -> (u16, String) {
    let addr = fs::read_to_string(node.home().join("api.addr")).unwrap();
    let token = fs::read_to_string(node.home().join("api.token")).unwrap();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut request = ureq::http::Request::builder()
        .method(case.method)
        .uri(format!("http://{}{}", addr.trim(), case.path));
    if case.token {
        request = request.header("Authorization", format!("Bearer {}", token.trim()));
    }
    if case.body.is_some() {
        request = request.header("Content-Type", "application/json");
    }
    let request = request
        .body(case.body.unwrap_or_default().as_bytes().to_vec())
        .unwrap();
    let mut response = agent.run(request).unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

#[test]
fn bad_inputs_are_refused_with_their_reason_and_change_nothing() {
    let (mut owner, peers) = common::owner_with_peers(2);
    // A node that exists but does not run.
    let idle = TestNode::init("idle");

    let work = tempfile::tempdir().unwrap();
    let keep = work.path().join("keep.txt");
    let keep_bytes = random_bytes(300_000, 5);
    fs::write(&keep, &keep_bytes).unwrap();
    owner.json(&["put", keep.to_str().unwrap()]);
    let p = |name: &str| work.path().join(name).to_str().unwrap().to_string();
    let keep_s = p("keep.txt");
    let existing = p("existing.txt");
    fs::write(&existing, b"do not overwrite me").unwrap();
    let invite = peers[0].json(&["invite"])["code"]
        .as_str()
        .unwrap()
        .to_string();
    let mut tampered: Vec<char> = invite.chars().collect();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();

    let mut cases = vec![
        cli(
            "get a name never stored",
            &["get", "nothing.txt"],
            1,
            &["no stored file matches", "shard ls"],
        ),
        cli(
            "get a version that does not exist",
            &["get", "keep.txt@7"],
            1,
            &["its versions: 1"],
        ),
        cli(
            "get version 0",
            &["get", "keep.txt@0"],
            1,
            &["no stored file matches"],
        ),
        cli(
            "get over an existing file",
            &["get", "keep.txt", "-o", &existing],
            1,
            &["already exists", "--force"],
        ),
        cli(
            "get into a folder that cannot exist",
            &["get", "keep.txt", "-o", "/proc/nope/x"],
            1,
            &["cannot access"],
        ),
        cli(
            "rm a name never stored",
            &["rm", "nothing.txt"],
            1,
            &["no stored file matches"],
        ),
        cli(
            "put a missing path",
            &["put", "/no/such/path"],
            1,
            &["does not exist"],
        ),
        cli(
            "--shares with K > N",
            &["put", &keep_s, "--shares", "5/3"],
            2,
            &["K must be at least 1"],
        ),
        cli(
            "--shares with K = 0",
            &["put", &keep_s, "--shares", "0/3"],
            2,
            &["K must be at least 1"],
        ),
        cli(
            "--shares with N over the limit",
            &["put", &keep_s, "--shares", "2/40"],
            2,
            &["N at most 32"],
        ),
        cli(
            "--shares not K/N",
            &["put", &keep_s, "--shares", "abc"],
            2,
            &["not K/N"],
        ),
        cli(
            "--shares needing more nodes than online",
            &["put", &keep_s, "--shares", "2/9"],
            1,
            &["9 storage nodes must be online", "3 online"],
        ),
        cli(
            "--as climbing out",
            &["put", &keep_s, "--as", "../up"],
            1,
            &["invalid name", "relative path"],
        ),
        cli(
            "--as absolute",
            &["put", &keep_s, "--as", "/abs"],
            1,
            &["invalid name"],
        ),
        cli(
            "--as empty",
            &["put", &keep_s, "--as", ""],
            1,
            &["invalid name"],
        ),
        cli(
            "--as with an empty part",
            &["put", &keep_s, "--as", "a//b"],
            1,
            &["invalid name"],
        ),
        cli(
            "--as with two paths",
            &["put", &keep_s, &existing, "--as", "two"],
            1,
            &["exactly one path"],
        ),
        cli("put with no path", &["put"], 2, &["required"]),
        cli(
            "an unknown command",
            &["frobnicate"],
            2,
            &["unrecognized subcommand"],
        ),
        cli(
            "an unknown option",
            &["ls", "--colour"],
            2,
            &["unexpected argument"],
        ),
        cli(
            "join with garbage",
            &["join", "garbage"],
            1,
            &["does not start with SHARD2-", "shard invite"],
        ),
        cli(
            "join with a cut code",
            &["join", "SHARD2-AAAA"],
            1,
            &["too short"],
        ),
        cli(
            "join with a mistyped code",
            &["join", &tampered],
            1,
            &["invite"],
        ),
        cli(
            "peers rm of a stranger",
            &["peers", "rm", "nobody"],
            1,
            &["no paired peer", "shard peers"],
        ),
        cli(
            "--read-data not a number",
            &["check", "--read-data=abc"],
            2,
            &["percentage"],
        ),
        cli(
            "--read-data zero",
            &["check", "--read-data=0%"],
            2,
            &["percentage"],
        ),
        cli(
            "--read-data over 100%",
            &["check", "--read-data=150%"],
            2,
            &["percentage"],
        ),
        cli(
            "logout of no account",
            &["logout", "nobody"],
            1,
            &["no account named"],
        ),
        cli(
            "account create of a taken name",
            &["account", "create", "alice"],
            1,
            &["alice"],
        ),
        cli(
            "account name with a slash",
            &["account", "create", "a/b"],
            1,
            &["name"],
        ),
        cli(
            "account name empty",
            &["account", "create", ""],
            1,
            &["name"],
        ),
        cli(
            "account rm of no account",
            &["account", "rm", "nobody", "--yes"],
            1,
            &["nobody"],
        ),
        cli(
            "recover with a code that is not one",
            &["recover", "--code", "garbage"],
            1,
            &["recovery code"],
        ),
        cli(
            "init over an existing node",
            &["init", "--name", "again"],
            1,
            &["already"],
        ),
        with_home(
            cli(
                "a command on a node that does not run",
                &["ls"],
                1,
                &["shard serve"],
            ),
            idle.home(),
        ),
        with_home(
            cli("a home that does not exist", &["ls"], 1, &["shard init"]),
            std::path::PathBuf::from("/nonexistent/shard"),
        ),
        with_home(
            cli(
                "the web UI on a public address unasked",
                &["serve", "--ui", "0.0.0.0:0"],
                1,
                &["--ui-public"],
            ),
            idle.home(),
        ),
        with_home(
            cli(
                "init with a relay that is not a URL",
                &["init", "--relay", "not a url"],
                1,
                &["\"not a url\" is not a relay URL", "https://HOST"],
            ),
            work.path().join("no-home-1"),
        ),
        with_home(
            cli(
                "init with a relay URL of another scheme",
                &["init", "--relay", "ftp://relay.example"],
                1,
                &["\"ftp://relay.example\" is not a relay URL"],
            ),
            work.path().join("no-home-2"),
        ),
        with_home(
            cli(
                "init with relays both off and on",
                &[
                    "init",
                    "--relay",
                    "none",
                    "--relay",
                    "https://relay.example",
                ],
                1,
                &["--relay none turns relays off"],
            ),
            work.path().join("no-home-3"),
        ),
        with_home(
            cli(
                "init with a relay certificate that is not one",
                &[
                    "init",
                    "--relay",
                    "https://relay.example",
                    "--relay-ca",
                    &keep_s,
                ],
                1,
                &["holds no certificate"],
            ),
            work.path().join("no-home-4"),
        ),
        with_home(
            cli(
                "init with a relay certificate that does not exist",
                &[
                    "init",
                    "--relay",
                    "https://relay.example",
                    "--relay-ca",
                    "/no/such/ca.pem",
                ],
                1,
                &["/no/such/ca.pem"],
            ),
            work.path().join("no-home-5"),
        ),
        cli(
            "a password file that does not exist",
            &[
                "account",
                "create",
                "bob",
                "--password-file",
                "/no/such/file",
            ],
            1,
            &["/no/such/file"],
        ),
    ];
    let mut weak = cli(
        "a passphrase too short",
        &["account", "create", "bob"],
        1,
        &["shorter than 10"],
    );
    weak.env.push(("SHARD_PASSWORD", "short"));
    cases.push(weak);
    let mut common_pass = cli(
        "a common passphrase",
        &["account", "create", "bob"],
        1,
        &["common"],
    );
    common_pass.env.push(("SHARD_PASSWORD", "password123"));
    cases.push(common_pass);
    let mut nobody = cli(
        "login to no account",
        &["login", "nobody"],
        1,
        &["no account named", "account ls"],
    );
    nobody
        .env
        .push(("SHARD_PASSWORD", "correct horse battery staple"));
    cases.push(nobody);
    let mut bad_pass = cli(
        "login with the wrong passphrase",
        &["login", "alice"],
        1,
        &["wrong passphrase"],
    );
    bad_pass
        .env
        .push(("SHARD_PASSWORD", "not the passphrase at all"));
    cases.push(bad_pass);
    let mut new_weak = cli(
        "passwd to a weak passphrase",
        &["account", "passwd", "alice"],
        1,
        &["shorter than 10"],
    );
    new_weak.env.push(("SHARD_NEW_PASSWORD", "short"));
    new_weak
        .env
        .push(("SHARD_PASSWORD", "correct horse battery staple"));
    cases.push(new_weak);

    let api = [
        Api {
            what: "no token",
            method: "GET",
            path: "/v1/ls",
            body: None,
            token: false,
            status: 401,
            says: &["token"],
        },
        Api {
            what: "JSON that does not parse",
            method: "POST",
            path: "/v1/put",
            body: Some("{\"paths\": [\"/tmp\""),
            token: true,
            status: 400,
            says: &["JSON"],
        },
        Api {
            what: "a put without paths",
            method: "POST",
            path: "/v1/put",
            body: Some("{}"),
            token: true,
            status: 400,
            says: &["no path to store"],
        },
        Api {
            what: "shares out of range",
            method: "POST",
            path: "/v1/put",
            body: Some("{\"paths\": [\"/tmp\"], \"shares\": \"9/3\"}"),
            token: true,
            status: 400,
            says: &["K must be at least 1"],
        },
        Api {
            what: "a job that does not exist",
            method: "GET",
            path: "/v1/jobs/999999",
            body: None,
            token: true,
            status: 404,
            says: &["job"],
        },
        Api {
            what: "a picture of nothing",
            method: "GET",
            path: "/v1/picture?name=nothing.txt",
            body: None,
            token: true,
            status: 404,
            says: &["nothing.txt"],
        },
        Api {
            what: "an unknown endpoint",
            method: "GET",
            path: "/v1/nothing",
            body: None,
            token: true,
            status: 404,
            says: &[],
        },
        Api {
            what: "join with garbage",
            method: "POST",
            path: "/v1/join",
            body: Some("{\"code\": \"garbage\"}"),
            token: true,
            status: 400,
            says: &["SHARD2-"],
        },
        Api {
            what: "an upload without its size",
            method: "POST",
            path: "/v1/upload?name=x.bin",
            body: None,
            token: true,
            status: 400,
            says: &["size"],
        },
        Api {
            what: "an upload named ..",
            method: "POST",
            path: "/v1/upload?name=..&size=0",
            body: None,
            token: true,
            status: 400,
            says: &["name"],
        },
        Api {
            what: "ls for an account not unlocked",
            method: "GET",
            path: "/v1/ls?user=nobody",
            body: None,
            token: true,
            status: 401,
            says: &["nobody"],
        },
    ];

    // Every case runs; the failures are listed together.
    let mut tried = 0;
    let mut wrong = Vec::new();
    for case in &cases {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let out = match &case.home {
            Some(home) => common::run(home, &args),
            None => owner.run_env(&args, &case.env),
        };
        let text = format!("{}{}", stderr(&out), stdout(&out));
        if out.status.code() != Some(case.code) {
            wrong.push(format!(
                "{}: exit {:?}, not {}: {text}",
                case.what,
                out.status.code(),
                case.code
            ));
        }
        for word in case.says {
            if !text.contains(word) {
                wrong.push(format!("{}: {word:?} not in: {text}", case.what));
            }
        }
        tried += 1;
    }
    for case in &api {
        let (status, body) = call(&owner, case);
        if status != case.status {
            wrong.push(format!(
                "{}: {status}, not {}: {body}",
                case.what, case.status
            ));
        }
        for word in case.says {
            if !body.contains(word) {
                wrong.push(format!("{}: {word:?} not in {body}", case.what));
            }
        }
        tried += 1;
    }
    for i in 1..=5 {
        let home = work.path().join(format!("no-home-{i}"));
        if home.exists() {
            wrong.push(format!("a refused init left a home at {}", home.display()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    println!(
        "bad inputs tried: {tried} ({} CLI, {} API)",
        cases.len(),
        api.len()
    );
    assert!(tried >= 40);

    // Nothing changed: the one file, bit-exact; the file not to overwrite, untouched; healthy.
    let listed: Vec<String> = owner.json(&["ls"])["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ["keep.txt"]);
    let back = p("back.txt");
    owner.json(&["get", "keep.txt", "-o", &back]);
    assert!(fs::read(&back).unwrap() == keep_bytes);
    assert_eq!(fs::read(&existing).unwrap(), b"do not overwrite me");
    assert!(owner.run(&["check"]).status.success());
    assert_eq!(
        owner.json(&["account", "ls"])["accounts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    owner.stop();
}
