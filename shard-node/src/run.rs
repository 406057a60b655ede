//! Starting a node: open it ([`crate::node`]) and start the background loops that keep its
//! vaults healthy ([`crate::health`]: scrub and automatic repair).

use std::sync::Arc;

use crate::Result;
use crate::home::Home;
use crate::node::{Node, RunOptions};

impl Node {
    /// Opens the home, binds the peer socket and starts serving peers and the background
    /// loops, with the default seams ([`Node::builder`] chooses others). Returns once
    /// listening; [`Node::stopped`] waits for the end. It binds no HTTP socket (the control
    /// API and the web UI are `shard-http`'s, started in front of the node).
    pub async fn start(home: Home, options: RunOptions) -> Result<Arc<Node>> {
        Node::builder(home).options(options).start().await
    }
}
