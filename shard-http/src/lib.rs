//! The shard node's HTTP faces: the control API the CLI drives ([`api`], loopback only, with
//! the token in `<home>/api.token`) and the web UI ([`ui`], browser sessions, its pages
//! embedded), both guarded against requests for another host ([`hosts`]).
//!
//! `shard serve` starts a [`shard_node::node::Node`] and then an [`HttpServer`] in front of
//! it; a program that embeds the engine needs neither.

pub mod api;
pub mod client;
mod error;
pub mod hosts;
mod listener;
pub mod proof;
mod sessions;
pub mod stream;
pub mod types;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use shard_node::node::Node;
use shard_node::{Error, Result};
use tokio::net::TcpListener;

/// A value a stranger chose, as a log line may show it: at most 64 characters, escaped (a
/// megabyte of name must not become a megabyte of log).
pub(crate) fn shown(value: &str) -> String {
    let mut short: String = value.chars().take(64).collect();
    if short.len() < value.len() {
        short.push('…');
    }
    format!("{short:?}")
}

/// Where the API and the web UI listen (`None`: the node's config says).
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Overrides the config's control API address.
    pub api: Option<SocketAddr>,
    /// Overrides the config's web UI address.
    pub ui: Option<SocketAddr>,
    /// Allows the web UI on an address other than loopback.
    pub ui_public: bool,
}

/// Why the control API or the web UI could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The control API was asked to listen where other machines could reach it.
    #[error("the control API must listen on a loopback address, not {0}")]
    ApiNotLoopback(SocketAddr),
    /// The web UI was asked to listen where other machines could reach it, without
    /// `ui_public`.
    #[error(
        "the web UI would be reachable from other machines at {0}; to allow that, add --ui-public"
    )]
    UiNotLoopback(SocketAddr),
    /// The address cannot be listened on.
    #[error("cannot open the {what} on {addr}: {reason}")]
    Listen {
        /// "control API" or "web UI".
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: std::io::Error,
    },
    /// The node could not say what it needs (its config, its token).
    #[error(transparent)]
    Node(#[from] Error),
}

impl StartError {
    /// How to fix it, in a sentence.
    pub fn hint(&self) -> &'static str {
        match self {
            StartError::ApiNotLoopback(_) => {
                "the API hands out the node's whole power to whoever holds its token: give it a 127.0.0.1 address"
            }
            StartError::UiNotLoopback(_) => {
                "give the web UI a 127.0.0.1 address with --ui, or allow others with --ui-public"
            }
            StartError::Listen { .. } => {
                "another program holds that port: stop it, or choose another address (--api, --ui)"
            }
            StartError::Node(e) => e.hint(),
        }
    }
}

/// The control API and (if configured) the web UI of a running node; both stop when the
/// node shuts down.
pub struct HttpServer {
    node: Arc<Node>,
    api: SocketAddr,
    ui: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Binds `what` at `at`; the listener and the address it got (the port, when `at` asked for
/// any).
async fn bind(
    what: &'static str,
    at: SocketAddr,
) -> std::result::Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(at)
        .await
        .map_err(|reason| StartError::Listen {
            what,
            addr: at,
            reason,
        })?;
    let addr = listener.local_addr().map_err(Error::Io)?;
    Ok((listener, addr))
}

impl HttpServer {
    /// Binds the API (and the web UI, if asked for) and serves them in front of `node`.
    pub async fn start(
        node: Arc<Node>,
        options: &HttpOptions,
    ) -> std::result::Result<HttpServer, StartError> {
        let config = node.home().config()?;
        let api_at = options.api.unwrap_or(config.api);
        if !api_at.ip().is_loopback() {
            return Err(StartError::ApiNotLoopback(api_at));
        }
        let (api_listener, api) = bind("control API", api_at).await?;
        let ui_listener = match options.ui.or(config.ui) {
            Some(at) => {
                if !at.ip().is_loopback() && !options.ui_public {
                    return Err(StartError::UiNotLoopback(at));
                }
                if !at.ip().is_loopback() {
                    tracing::warn!(
                        "the web UI listens on {at}: anyone who can reach it can try passphrases (over plain HTTP)"
                    );
                }
                Some(bind("web UI", at).await?)
            }
            None => None,
        };
        let ui = ui_listener.as_ref().map(|(_, at)| *at);
        let token = node.home().token()?;
        let mut tasks = vec![tokio::spawn(api::serve(
            node.clone(),
            api_listener,
            token,
            ui,
        ))];
        if let Some((listener, _)) = ui_listener {
            tasks.push(tokio::spawn(ui::serve(node.clone(), listener)));
        }
        tracing::info!("control API on {api}");
        Ok(HttpServer {
            node,
            api,
            ui,
            tasks,
        })
    }

    /// Writes the address files the CLI finds the node by: call once the node is ready to
    /// answer (after an unattended login, say), so no command arrives before.
    pub fn announce(&self) -> Result<()> {
        let home = self.node.home();
        if let Some(ui) = self.ui {
            shard_node::home::write_private(&home.ui_addr_path(), ui.to_string().as_bytes())?;
        }
        home.write_addrs(self.api, self.node.listen_addr())
    }

    /// Waits (at most `limit`) until both servers have answered their last request; they
    /// stop once the node shuts down.
    pub async fn stopped(self, limit: std::time::Duration) {
        let all = futures_util::future::join_all(self.tasks);
        let _ = tokio::time::timeout(limit, all).await;
    }

    /// Where the control API answers.
    pub fn api_addr(&self) -> SocketAddr {
        self.api
    }

    /// Where the web UI answers, if it runs.
    pub fn ui_addr(&self) -> Option<SocketAddr> {
        self.ui
    }

    /// The web UI's address for a person (with the one-time setup token while the node has
    /// no account); `None` when no web UI runs.
    pub fn ui_link(&self) -> Result<Option<String>> {
        self.ui.map(|addr| ui::link(&self.node, addr)).transpose()
    }
}
