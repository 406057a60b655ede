//! The HTTP faces start in front of a running node, not inside it: a node alone binds no HTTP
//! socket and announces nothing; the server binds the API, says where in the home, answers
//! with the token, and stops with the node.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use shard_http::{HttpOptions, HttpServer};
use shard_node::home::{Home, NodeConfig};
use shard_node::node::{Node, RunOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn home(dir: &std::path::Path, name: &str) -> Home {
    let home = Home::new(dir.join(name));
    let mut config = NodeConfig::new(name);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.api = "127.0.0.1:0".parse().unwrap();
    // mDNS off: tests on the host must not multicast on its real interfaces.
    config.discovery.mdns = shard_net::discovery::MdnsMode::Off;
    // No relays: tests never contact the public ones.
    config.net.relays = Some(Vec::new());
    home.init(&config).unwrap();
    home
}

async fn http_get(addr: std::net::SocketAddr, path: &str, token: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_runs_in_front_of_the_node_and_stops_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = home(dir.path(), "attic");
    let node = Node::start(home.clone(), RunOptions::default())
        .await
        .unwrap();
    assert!(
        !home.api_addr_path().exists(),
        "a node alone serves no API and announces none"
    );

    let http = HttpServer::start(node.clone(), &HttpOptions::default())
        .await
        .unwrap();
    assert!(http.ui_addr().is_none(), "no web UI unless asked for");
    http.announce().unwrap();
    assert_eq!(home.api_addr(), Some(http.api_addr()));
    let answer = http_get(http.api_addr(), "/v1/status", &home.token().unwrap()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"name\":\"attic\""), "{answer}");
    let refused = http_get(http.api_addr(), "/v1/status", "not-the-token").await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");

    let api = http.api_addr();
    node.shutdown();
    node.stopped(Duration::from_secs(5)).await;
    http.stopped(Duration::from_secs(5)).await;
    assert!(
        tokio::net::TcpStream::connect(api).await.is_err(),
        "the API stopped with the node"
    );
    assert!(!home.api_addr_path().exists(), "the address files are gone");
}
