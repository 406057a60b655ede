//! Restores in process: names at the file system's limit come back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use shard_testkit::swarm as common;

use common::Swarm;

/// A file whose name is 250 bytes long (the limit is 255) restores in place: the restore's
/// temporary name does not grow with the file's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_near_the_limit_restores() {
    let swarm = Swarm::start(2, 1).await;
    let long = "n".repeat(250);
    let src = swarm.path(&long);
    std::fs::write(&src, b"a long name, a short letter").unwrap();
    swarm.put(&src, "letter", Some((1, 2))).await.unwrap();
    let out_dir = swarm.path("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join(&long);
    swarm.get("letter", None, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"a long name, a short letter");
    for node in &swarm.nodes {
        node.shutdown();
    }
}
