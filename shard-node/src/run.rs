//! Starting a node: open it ([`crate::node`]) and start the background loops that keep its
//! vaults healthy ([`crate::health`]: scrub and automatic repair).

use std::sync::Arc;

use crate::Result;
use crate::home::Home;
use crate::node::{Node, NodeBuilder, RunOptions};

impl Node {
    /// Opens the home, binds the peer socket and starts serving peers and the background
    /// loops, with the default seams ([`Node::builder`] chooses others). Returns once
    /// listening; [`Node::stopped`] waits for the end. It binds no HTTP socket (the control
    /// API and the web UI are `shard-http`'s, started in front of the node).
    pub async fn start(home: Home, options: RunOptions) -> Result<Arc<Node>> {
        Node::builder(home).options(options).start().await
    }
}

impl NodeBuilder {
    /// Opens the home, listens for peers and starts serving them, and the background loops
    /// (unless left out). Returns once listening; [`Node::stopped`] waits for the end.
    pub async fn start(self) -> Result<Arc<Node>> {
        let background = self.wants_background();
        let node = Node::open(self).await?;
        if background {
            node.spawn_task(crate::health::scrub_loop(node.clone()));
            node.spawn_task(crate::health::repair_loop(node.clone()));
        }
        node.spawn_task(crate::backups::backup_loop(node.clone()));
        Ok(node)
    }
}
