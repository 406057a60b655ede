//! A typed client of the control API: what `shard-cli` (and any program on the node's machine)
//! uses to drive a running node. It finds the node from its home (`api.addr`, `api.token`),
//! makes the server prove it holds the home's token before anything secret is sent
//! ([`crate::proof`]), and speaks the bodies of [`crate::types`] — the server's own types.
//! Errors say what to do, in the same words whoever shows them.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use shard_node::home::Home;

use crate::types::{
    AccountRemoved, AccountRmBody, Accounts, AddPeer, BackupAddBody, BackupJobs, BackupNameBody,
    BackupRmBody, Failure, GetBody, HealthBody, Invitation, InviteBody, JobStarted, JobStatus,
    JoinBody, Joined, Listing, LoggedIn, LoggedOut, LoginBody, NodeStatus, PeerAdded, PeerRemoval,
    PeerRmBody, Peers, Proof, PruneBody, PutBody, RecoverBody, Recovery, Removal, RmBody,
    Snapshots, Trash, TrashBody, UiLink, UserBody,
};

/// Largest answer read from the node (a check of 10⁵ files is tens of MiB).
const MAX_ANSWER: u64 = 1 << 30;

/// What went wrong talking to the node; each message ends with what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The home has no node.
    #[error("no node at {root}\n  hint: create one with `shard init --home {root}`")]
    NoNode {
        /// The home.
        root: String,
    },
    /// The home's node is not running (no `api.addr`).
    #[error("no node is running from {root}\n  hint: start it with `shard serve --home {root}`")]
    NotRunning {
        /// The home.
        root: String,
    },
    /// The token could not be read.
    #[error("reading the control API token: {0}")]
    Token(shard_node::Error),
    /// No fresh nonce could be drawn.
    #[error("drawing a nonce: {0}")]
    Random(shard_crypto::Error),
    /// Nothing answers at the node's address.
    #[error(
        "the node at {base} does not answer ({reason})\n  hint: is `shard serve` still running? Start it again if not"
    )]
    NoAnswer {
        /// `http://ADDR`.
        base: String,
        /// What the connection said.
        reason: String,
    },
    /// Something answers at the address but cannot prove it holds the home's token.
    #[error(
        "the program answering at {addr} is not the node of {root}: it could not prove it holds the home's API token, so nothing was sent to it\n  hint: the node probably stopped without cleaning up; start it again with `shard serve --home {root}`"
    )]
    NotTheNode {
        /// Where it answers.
        addr: SocketAddr,
        /// The home.
        root: String,
    },
    /// The node answered something that is not the expected body.
    #[error("the node's answer could not be read ({0})")]
    BadAnswer(String),
    /// The node refused, with its reason and what to do.
    #[error("{}\n  hint: {}", .failure.error, .failure.hint)]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The node's reason and hint.
        failure: Failure,
    },
    /// The node failed without saying why (not an API answer).
    #[error("the node reported an error (HTTP {status})")]
    Failed {
        /// The HTTP status, as `400 Bad Request`.
        status: String,
    },
}

/// The result of a client call.
pub type Result<T> = std::result::Result<T, ClientError>;

/// A client for the node of one home.
pub struct Client {
    base: String,
    addr: SocketAddr,
    token: zeroize::Zeroizing<String>,
    agent: ureq::Agent,
}

impl Client {
    /// The client of the node running from `home`, once it proved it is that node; says how
    /// to start one if none runs.
    pub fn for_home(home: &Home) -> Result<Self> {
        let root = home.root().display().to_string();
        if !home.is_initialized() {
            return Err(ClientError::NoNode { root });
        }
        let Some(addr) = home.api_addr() else {
            return Err(ClientError::NotRunning { root });
        };
        let token = zeroize::Zeroizing::new(home.token().map_err(ClientError::Token)?);
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .new_agent();
        let client = Self {
            base: format!("http://{addr}"),
            addr,
            token,
            agent,
        };
        client.check_server(root)?;
        Ok(client)
    }

    /// Asks whoever answers at the address for proof that it holds this home's token, before
    /// anything secret is sent there: after a crash, `api.addr` is stale and any program may
    /// listen on its port.
    fn check_server(&self, root: String) -> Result<()> {
        let mut nonce = [0u8; crate::proof::NONCE_LEN];
        shard_crypto::fill_random(&mut nonce).map_err(ClientError::Random)?;
        let response = self
            .agent
            .get(format!("{}/v1/proof", self.base))
            .query("nonce", hex::encode(nonce))
            .call();
        match self.finish::<Proof>(response) {
            Ok(p) if crate::proof::check(&self.token, &nonce, self.addr, &p.proof) => Ok(()),
            // Nothing answers: the usual "is it running?".
            Err(e @ ClientError::NoAnswer { .. }) => Err(e),
            _ => Err(ClientError::NotTheNode {
                addr: self.addr,
                root,
            }),
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T> {
        let mut request = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token.as_str()));
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        self.finish(request.call())
    }

    fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token.as_str()))
            .send_json(body);
        self.finish(response)
    }

    fn finish<T: DeserializeOwned>(
        &self,
        response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T> {
        let mut response = response.map_err(|e| ClientError::NoAnswer {
            base: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status();
        let body = response.body_mut().with_config().limit(MAX_ANSWER);
        if status.is_success() {
            return body
                .read_json()
                .map_err(|e| ClientError::BadAnswer(e.to_string()));
        }
        match body.read_json::<Failure>() {
            Ok(failure) => Err(ClientError::Refused {
                status: status.as_u16(),
                failure,
            }),
            Err(_) => Err(ClientError::Failed {
                status: status.to_string(),
            }),
        }
    }

    /// The node (`shard status`).
    pub fn status(&self) -> Result<NodeStatus> {
        self.get("/v1/status", &[])
    }

    /// Paired peers and nodes nearby.
    pub fn peers(&self) -> Result<Peers> {
        self.get("/v1/peers", &[])
    }

    /// Adds `HOST:PORT` to the addresses peers are looked for at.
    pub fn add_peer(&self, addr: &str) -> Result<PeerAdded> {
        self.post(
            "/v1/peers/add",
            &AddPeer {
                addr: addr.to_string(),
            },
        )
    }

    /// Unpairs a peer (its shares moved first unless `now`).
    pub fn remove_peer(&self, id: &str, now: bool) -> Result<PeerRemoval> {
        self.post(
            "/v1/peers/rm",
            &PeerRmBody {
                id: id.to_string(),
                now,
            },
        )
    }

    /// A fresh invite code.
    pub fn invite(&self, valid_for_secs: Option<u64>) -> Result<Invitation> {
        self.post("/v1/invite", &InviteBody { valid_for_secs })
    }

    /// Pairs with the node whose invite `code` is.
    pub fn join(&self, code: &str) -> Result<Joined> {
        self.post(
            "/v1/join",
            &JoinBody {
                code: code.to_string(),
            },
        )
    }

    /// Unlocks `user` on the node.
    pub fn login(&self, user: &str, password: &str) -> Result<LoggedIn> {
        self.post(
            "/v1/login",
            &LoginBody {
                user: user.to_string(),
                password: password.to_string(),
            },
        )
    }

    /// Locks `user` (or the only account unlocked).
    pub fn logout(&self, user: Option<&str>) -> Result<LoggedOut> {
        self.post(
            "/v1/logout",
            &UserBody {
                user: user.map(str::to_string),
            },
        )
    }

    /// Starts a put.
    pub fn put(&self, body: &PutBody) -> Result<JobStarted> {
        self.post("/v1/put", body)
    }

    /// Starts a get.
    pub fn restore(&self, body: &GetBody) -> Result<JobStarted> {
        self.post("/v1/get", body)
    }

    /// Starts a check.
    pub fn check(&self, body: &HealthBody) -> Result<JobStarted> {
        self.post("/v1/check", body)
    }

    /// Starts a repair.
    pub fn repair(&self, body: &HealthBody) -> Result<JobStarted> {
        self.post("/v1/repair", body)
    }

    /// Starts a prune.
    pub fn prune(&self, body: &PruneBody) -> Result<JobStarted> {
        self.post("/v1/prune", body)
    }

    /// Where a job stands.
    pub fn job(&self, id: u64) -> Result<JobStatus> {
        self.get(&format!("/v1/jobs/{id}"), &[])
    }

    /// The stored files (under `prefix`), newest version of each.
    pub fn ls(&self, prefix: Option<&str>, user: Option<&str>) -> Result<Listing> {
        let mut query = Vec::new();
        if let Some(p) = prefix {
            query.push(("prefix", p));
        }
        if let Some(u) = user {
            query.push(("user", u));
        }
        self.get("/v1/ls", &query)
    }

    /// Removes a file or folder, every version.
    pub fn rm(&self, body: &RmBody) -> Result<Removal> {
        self.post("/v1/rm", body)
    }

    /// What is in the trash.
    pub fn trash(&self, user: Option<&str>) -> Result<Trash> {
        let query: Vec<(&str, &str)> = user.map(|u| ("user", u)).into_iter().collect();
        self.get("/v1/trash", &query)
    }

    /// Brings a name back from the trash.
    pub fn trash_restore(&self, body: &TrashBody) -> Result<shard_node::report::TrashRestore> {
        self.post("/v1/trash/restore", body)
    }

    /// Deletes a name, or everything, from the trash for good.
    pub fn trash_empty(&self, body: &TrashBody) -> Result<Removal> {
        self.post("/v1/trash/empty", body)
    }

    /// Recovers an account from the swarm with its recovery code.
    pub fn recover(&self, body: &RecoverBody) -> Result<Recovery> {
        self.post("/v1/recover", body)
    }

    /// The node's accounts.
    pub fn accounts(&self) -> Result<Accounts> {
        self.get("/v1/accounts", &[])
    }

    /// Removes an account (and with `purge`, its shares on every peer).
    pub fn remove_account(&self, user: &str, purge: bool) -> Result<AccountRemoved> {
        self.post(
            "/v1/accounts/rm",
            &AccountRmBody {
                user: user.to_string(),
                purge,
            },
        )
    }

    /// The web UI's address (with a setup token while the node has no account).
    pub fn ui_link(&self) -> Result<UiLink> {
        self.post("/v1/ui-link", &serde_json::json!({}))
    }

    /// Makes a backup job.
    pub fn backup_add(&self, body: &BackupAddBody) -> Result<shard_node::backup::JobInfo> {
        self.post("/v1/backup/add", body)
    }

    /// The backup jobs.
    pub fn backup_ls(&self, user: Option<&str>) -> Result<BackupJobs> {
        let query: Vec<(&str, &str)> = user.map(|u| ("user", u)).into_iter().collect();
        self.get("/v1/backup/ls", &query)
    }

    /// Starts a run of a backup job.
    pub fn backup_run(&self, body: &BackupNameBody) -> Result<JobStarted> {
        self.post("/v1/backup/run", body)
    }

    /// Removes a backup job.
    pub fn backup_rm(&self, body: &BackupRmBody) -> Result<shard_node::backup::JobRemoval> {
        self.post("/v1/backup/rm", body)
    }

    /// A job's snapshots.
    pub fn snapshots(&self, name: &str, user: Option<&str>) -> Result<Snapshots> {
        let mut query = vec![("name", name)];
        if let Some(u) = user {
            query.push(("user", u));
        }
        self.get("/v1/snapshots", &query)
    }

    /// What changed between two snapshots of a job.
    pub fn diff(
        &self,
        name: &str,
        from: &str,
        to: &str,
        user: Option<&str>,
    ) -> Result<shard_node::backup::TreeDiff> {
        let mut query = vec![("name", name), ("from", from), ("to", to)];
        if let Some(u) = user {
            query.push(("user", u));
        }
        self.get("/v1/diff", &query)
    }
}
