//! Requests over a channel: the client side ([`PeerClient`]: ids, many calls in flight, a
//! timeout on every call) and the serving side ([`serve_channel`]: answers a peer's requests
//! from a [`ShareStore`], only ever in that peer's own namespace).
//!
//! What only a vault's owner may do — delete its shares, store or replace its catalog head,
//! take the vault over after a recovery — is answered only for a [`Request::Authorized`]: the
//! vault authority's signature (a key derived from the vault key, certified by the vault id)
//! over this node's id, a challenge this node issued to that peer moments ago and not used
//! since, and the operation. The node key alone (a stolen laptop without the passphrase, a
//! paired node that learned a vault id) gets a typed refusal and a log line naming it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shard_crypto::{AuthorityKey, VaultAuthority, VaultId};
use shard_proto::{
    CHALLENGE_LEN, ErrorCode, Message, Namespace, NodeId, Request, Response, Share, ShareId,
    VaultAuth, VaultOp, VaultRef,
};
use shard_store::{HeadStore, ShareStore, Usage};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use crate::noise::PeerInfo;
use crate::transport::{Connection, FrameRead, FrameWrite};
use crate::{Error, Result};

/// Requests one connection may have in flight at the serving end.
pub const MAX_IN_FLIGHT: usize = 64;
/// Most ids a list request returns.
const MAX_LIST: u32 = 10_000;

/// A request on its way out; a share travels beside it (not copied into the message).
struct Outgoing {
    id: u64,
    body: Request,
    share: Option<Share>,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// A connection to a peer, for making requests. Cheap to share (`Arc`).
pub struct PeerClient {
    peer: PeerInfo,
    requests: mpsc::Sender<Outgoing>,
    pending: Pending,
    next_id: AtomicU64,
    closed: Arc<Closed>,
}

/// The shortest request timeout whose silence gives a connection up, unless
/// [`PeerClient::give_up_after`] says less: a quick probe (a 2 s ping to check a sighting)
/// that goes unanswered says little, and nothing about the path.
const GIVE_UP_AFTER: Duration = Duration::from_secs(10);

/// Whether a connection has ended, and a way to wait for it; and when the peer was last heard
/// from on it.
#[derive(Default)]
struct Closed {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
    /// When the last frame came, in milliseconds since [`clock_base`].
    heard_ms: AtomicU64,
    /// The shortest request timeout whose silence gives the connection up, in milliseconds
    /// (0: [`GIVE_UP_AFTER`]).
    give_up_ms: AtomicU64,
}

/// The base of [`Closed::heard_ms`]: a monotonic clock's first reading in this process.
fn clock_base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(clock_base().elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Closed {
    fn heard(&self) {
        self.heard_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// The shortest request timeout whose silence gives the connection up.
    fn give_up_after(&self) -> Duration {
        match self.give_up_ms.load(Ordering::Relaxed) {
            0 => GIVE_UP_AFTER,
            ms => Duration::from_millis(ms),
        }
    }

    /// How long since the peer was last heard from on this connection.
    fn silent_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.heard_ms.load(Ordering::Relaxed)))
    }

    fn set(&self) {
        self.flag.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Resolves once the connection is closed (by either task, or given up).
    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

impl PeerClient {
    /// Starts the reader and writer tasks of an established connection.
    pub fn start(connection: impl Into<Connection>) -> Arc<Self> {
        let Connection {
            reader,
            writer,
            peer,
        } = connection.into();
        let (requests, queue) = mpsc::channel(MAX_IN_FLIGHT);
        let pending: Pending = Arc::default();
        let closed = Arc::new(Closed::default());
        closed.heard();
        tokio::spawn(client_writer(writer, queue, closed.clone()));
        tokio::spawn(client_reader(
            reader,
            pending.clone(),
            closed.clone(),
            peer.id,
        ));
        Arc::new(Self {
            peer,
            requests,
            pending,
            next_id: AtomicU64::new(1),
            closed,
        })
    }

    /// Lowers the shortest request timeout whose silence gives the connection up (10 s) to
    /// `floor`: a node whose own request timeout is shorter (a test's) gives a dead path up
    /// after that timeout. Raising it is not possible.
    pub fn give_up_after(&self, floor: Duration) {
        if floor < GIVE_UP_AFTER {
            let ms = u64::try_from(floor.as_millis()).unwrap_or(u64::MAX).max(1);
            self.closed.give_up_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// Who is at the other end.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// True once the connection has failed or closed; make a new one.
    pub fn is_closed(&self) -> bool {
        self.closed.is_set()
    }

    /// Resolves once the connection has failed or closed.
    pub async fn closed(&self) {
        self.closed.wait().await;
    }

    /// Sends a request and waits (at most `timeout`) for its answer. An error answer is
    /// [`Error::Remote`].
    pub async fn call(&self, body: Request, timeout: Duration) -> Result<Response> {
        self.call_with(body, None, timeout).await
    }

    async fn call_with(
        &self,
        body: Request,
        share: Option<Share>,
        timeout: Duration,
    ) -> Result<Response> {
        if self.is_closed() {
            return Err(Error::Disconnected);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let answer =
            match tokio::time::timeout(timeout, self.requests.send(Outgoing { id, body, share }))
                .await
            {
                Ok(Ok(())) => tokio::time::timeout(timeout, rx).await,
                Ok(Err(_)) => {
                    lock(&self.pending).remove(&id);
                    return Err(Error::Disconnected);
                }
                Err(elapsed) => Err(elapsed),
            };
        match answer {
            Ok(Ok(Response::Error { code, message })) => Err(Error::Remote { code, message }),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err(Error::Disconnected),
            Err(_) => {
                lock(&self.pending).remove(&id);
                // Nothing at all came back while this request waited (not even the answers to
                // the pings sent every few seconds): the path is dead, though no error said so
                // (a cut link, a NAT that forgot the flow). The connection is given up, so the
                // node dials again rather than sending into it for ever.
                if timeout >= self.closed.give_up_after()
                    && self.closed.silent_for() >= timeout
                    && !self.is_closed()
                {
                    tracing::warn!(
                        peer = %self.peer.hello.name,
                        "nothing heard on the connection for {timeout:?}: giving it up"
                    );
                    self.closed.set();
                    lock(&self.pending).clear();
                }
                Err(Error::Timeout(timeout))
            }
        }
    }

    /// Round-trip time.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        match self.call(Request::Ping { nonce: 7 }, timeout).await? {
            Response::Pong { nonce: 7 } => Ok(start.elapsed()),
            _ => Err(Error::UnexpectedResponse("ping")),
        }
    }

    /// Stores a share; `Ok` means the peer has it on disk.
    pub async fn put_share(&self, vault: VaultRef, share: &Share, timeout: Duration) -> Result<()> {
        let body = Request::PutShare {
            vault,
            share: Bytes::new(),
        };
        match self.call_with(body, Some(share.clone()), timeout).await? {
            Response::Stored => Ok(()),
            _ => Err(Error::UnexpectedResponse("put share")),
        }
    }

    /// Fetches a share, verified against its id; `None` if the peer does not have it.
    pub async fn get_share(
        &self,
        vault: VaultRef,
        id: ShareId,
        timeout: Duration,
    ) -> Result<Option<Share>> {
        match self.call(Request::GetShare { vault, id }, timeout).await {
            Ok(Response::Share { share }) => {
                let share = Share::decode(share)?;
                if share.id() != id {
                    return Err(Error::Remote {
                        code: ErrorCode::Corrupt,
                        message: format!("peer served other bytes for share {id}"),
                    });
                }
                Ok(Some(share))
            }
            Ok(_) => Err(Error::UnexpectedResponse("get share")),
            Err(Error::Remote {
                code: ErrorCode::NotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Bytes `start..end` of a share's payload; `None` if the peer does not have the share.
    /// The bytes cannot be checked against the share id here: the caller authenticates them.
    /// A range the share does not have is [`Error::Remote`] with [`ErrorCode::BadRequest`].
    pub async fn get_share_range(
        &self,
        vault: VaultRef,
        id: ShareId,
        range: std::ops::Range<u32>,
        timeout: Duration,
    ) -> Result<Option<Bytes>> {
        let asked = range.end.saturating_sub(range.start) as usize;
        let body = Request::GetShareRange {
            vault,
            id,
            start: range.start,
            end: range.end,
        };
        match self.call(body, timeout).await {
            Ok(Response::ShareRange { bytes }) if bytes.len() == asked => Ok(Some(bytes)),
            Ok(Response::ShareRange { bytes }) => Err(Error::Remote {
                code: ErrorCode::Corrupt,
                message: format!(
                    "peer served {} bytes of share {id} for a range of {asked}",
                    bytes.len()
                ),
            }),
            Ok(_) => Err(Error::UnexpectedResponse("get share range")),
            Err(Error::Remote {
                code: ErrorCode::NotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Which of `ids` the peer holds.
    pub async fn have(
        &self,
        vault: VaultRef,
        ids: Vec<ShareId>,
        timeout: Duration,
    ) -> Result<Vec<bool>> {
        let asked = ids.len();
        match self.call(Request::Have { vault, ids }, timeout).await? {
            Response::Have { have } if have.len() == asked => Ok(have),
            _ => Err(Error::UnexpectedResponse("have")),
        }
    }

    /// A fresh challenge for an authorized request.
    pub async fn challenge(&self, timeout: Duration) -> Result<[u8; CHALLENGE_LEN]> {
        match self.call(Request::Challenge, timeout).await? {
            Response::Challenge { nonce } => Ok(nonce),
            _ => Err(Error::UnexpectedResponse("challenge")),
        }
    }

    /// Asks for what only the vault's owner may do, signed by `authority` for this peer and a
    /// fresh challenge from it.
    pub async fn authorized(
        &self,
        op: VaultOp,
        authority: &VaultAuthority,
        timeout: Duration,
    ) -> Result<Response> {
        let challenge = self.challenge(timeout).await?;
        let auth = VaultAuth {
            key: authority.public().0,
            challenge,
            signature: authority.sign(&op.signed_message(&self.peer.id, &challenge)),
        };
        self.call(Request::Authorized { op, auth }, timeout).await
    }

    /// Deletes shares (kept through the peer's grace period unless `purge`); returns how many
    /// the peer deleted.
    pub async fn delete(
        &self,
        vault: VaultRef,
        ids: Vec<ShareId>,
        purge: bool,
        authority: &VaultAuthority,
        timeout: Duration,
    ) -> Result<u64> {
        let op = VaultOp::Delete { vault, ids, purge };
        match self.authorized(op, authority, timeout).await? {
            Response::Deleted { count } => Ok(count),
            _ => Err(Error::UnexpectedResponse("delete")),
        }
    }

    /// A page of our share ids held by the peer for `vault`.
    pub async fn list(
        &self,
        vault: VaultRef,
        after: Option<ShareId>,
        limit: u32,
        timeout: Duration,
    ) -> Result<Vec<ShareId>> {
        match self
            .call(
                Request::List {
                    vault,
                    after,
                    limit,
                },
                timeout,
            )
            .await?
        {
            Response::List { ids } => Ok(ids),
            _ => Err(Error::UnexpectedResponse("list")),
        }
    }

    /// The catalog heads the peer keeps for `vault`, newest first: the current one and those
    /// it replaced within its grace period (read a page at a time, with the vault's signature).
    pub async fn catalog_heads(
        &self,
        vault: VaultRef,
        authority: &VaultAuthority,
        timeout: Duration,
    ) -> Result<Vec<(u64, Bytes)>> {
        let mut out: Vec<(u64, Bytes)> = Vec::new();
        let mut before = None;
        // Bounded: a peer keeps a few dozen heads per vault; a liar gets no more pages.
        for _ in 0..16 {
            let op = VaultOp::Heads { vault, before };
            let page = match self.authorized(op, authority, timeout).await? {
                Response::CatalogHeads { heads } => heads,
                _ => return Err(Error::UnexpectedResponse("catalog heads")),
            };
            let last = page.last().map(|(seq, _)| *seq);
            let full = page.len() >= shard_proto::MAX_HEADS_LISTED;
            out.extend(page);
            match last {
                Some(seq) if full && before.is_none_or(|b| seq < b) => before = Some(seq),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Brings back this node's deleted shares of `vault` that the peer still keeps; returns
    /// how many came back.
    pub async fn undelete(
        &self,
        vault: VaultRef,
        ids: Vec<ShareId>,
        authority: &VaultAuthority,
        timeout: Duration,
    ) -> Result<u64> {
        match self
            .authorized(VaultOp::Undelete { vault, ids }, authority, timeout)
            .await?
        {
            Response::Undeleted { count } => Ok(count),
            _ => Err(Error::UnexpectedResponse("undelete")),
        }
    }

    /// Asks the peer to keep a catalog head.
    pub async fn put_catalog_head(
        &self,
        vault: VaultRef,
        seq: u64,
        head: Bytes,
        authority: &VaultAuthority,
        timeout: Duration,
    ) -> Result<()> {
        let op = VaultOp::PutCatalogHead { vault, seq, head };
        match self.authorized(op, authority, timeout).await? {
            Response::HeadStored => Ok(()),
            _ => Err(Error::UnexpectedResponse("put catalog head")),
        }
    }

    /// Takes the vault over on the peer: the shares the nodes in `from` stored for it move to
    /// this node; returns how many.
    pub async fn adopt(
        &self,
        vault: VaultRef,
        from: Vec<NodeId>,
        authority: &VaultAuthority,
        timeout: Duration,
    ) -> Result<u64> {
        match self
            .authorized(VaultOp::Adopt { vault, from }, authority, timeout)
            .await?
        {
            Response::Adopted { moved } => Ok(moved),
            _ => Err(Error::UnexpectedResponse("adopt")),
        }
    }

    /// This node's shares of `vault` that the peer quarantined as corrupt.
    pub async fn quarantined(&self, vault: VaultRef, timeout: Duration) -> Result<Vec<ShareId>> {
        match self.call(Request::Quarantined { vault }, timeout).await? {
            Response::Quarantined { ids } => Ok(ids),
            _ => Err(Error::UnexpectedResponse("quarantined")),
        }
    }

    /// The peer's storage use.
    pub async fn usage(&self, timeout: Duration) -> Result<Usage> {
        match self.call(Request::Usage, timeout).await? {
            Response::Usage {
                used,
                shares,
                quota,
                reclaimable,
            } => Ok(Usage {
                used,
                shares,
                quota,
                reclaimable,
            }),
            _ => Err(Error::UnexpectedResponse("usage")),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps guarded here are updated by single inserts and removes.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn client_writer(
    mut writer: Box<dyn FrameWrite>,
    mut queue: mpsc::Receiver<Outgoing>,
    closed: Arc<Closed>,
) {
    // A connection given up (see `call_with`) stops here too, even while a write into a dead
    // path waits for room that never comes.
    loop {
        let next = tokio::select! {
            next = queue.recv() => next,
            () = closed.wait() => break,
        };
        let Some(Outgoing { id, body, share }) = next else {
            break;
        };
        let message = Message::Request { id, body };
        let written = tokio::select! {
            written = async {
                match &share {
                    Some(share) => writer.write_share_frame(&message, share).await,
                    None => writer.write_frame(&message).await,
                }
            } => written,
            () = closed.wait() => break,
        };
        if let Err(e) = written {
            tracing::debug!("connection write failed: {e}");
            break;
        }
    }
    closed.set();
    // Bounded: on a dead path a shutdown would wait for the peer as long as a write would.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer.shutdown()).await;
}

async fn client_reader(
    mut reader: Box<dyn FrameRead>,
    pending: Pending,
    closed: Arc<Closed>,
    peer: NodeId,
) {
    loop {
        let frame = tokio::select! {
            frame = reader.read_frame() => frame,
            // Given up: the reader of a dead path would otherwise wait on it for ever.
            () = closed.wait() => break,
        };
        closed.heard();
        match frame {
            Ok(Message::Response { id, body }) => {
                if let Some(tx) = lock(&pending).remove(&id) {
                    let _ = tx.send(body);
                }
            }
            Ok(Message::Request { .. }) => {
                tracing::warn!(peer = %peer, "peer sent a request on a client connection; closing");
                break;
            }
            Err(Error::Disconnected) => break,
            Err(e) => {
                tracing::warn!(peer = %peer, "closing connection: {e}");
                break;
            }
        }
    }
    closed.set();
    // Dropping the senders wakes every waiting call with `Disconnected`.
    lock(&pending).clear();
}

/// A put waiting for the batcher.
type PutJob = (
    Namespace,
    Share,
    oneshot::Sender<std::result::Result<(), shard_store::Error>>,
);

/// How long a challenge stays good.
const CHALLENGE_TTL: Duration = Duration::from_secs(120);
/// Challenges outstanding per connection (older ones are forgotten first).
const CHALLENGES_PER_CONNECTION: usize = 16;
/// Bytes of catalog heads (kept and replaced) one node may leave here: heads are pointers to
/// shares (kilobytes for a real vault), not storage.
pub const HEAD_BYTES_PER_NODE: u64 = 64 << 20;

/// Challenges this node issued on one connection for authorized requests: a few, each good
/// once and for `CHALLENGE_TTL`, and only on that connection — so another connection of
/// the same node id (a copy of its key) cannot crowd out the owner's.
#[derive(Default)]
pub struct Challenges {
    issued: Mutex<VecDeque<Issued>>,
}

/// A challenge and when it was issued.
type Issued = ([u8; CHALLENGE_LEN], Instant);

impl Challenges {
    fn issue(&self) -> Result<[u8; CHALLENGE_LEN]> {
        let mut nonce = [0u8; CHALLENGE_LEN];
        shard_crypto::fill_random(&mut nonce)?;
        let mut queue = lock(&self.issued);
        queue.retain(|(_, at)| at.elapsed() < CHALLENGE_TTL);
        if queue.len() >= CHALLENGES_PER_CONNECTION {
            queue.pop_front();
        }
        queue.push_back((nonce, Instant::now()));
        Ok(nonce)
    }

    /// Spends `nonce` if it was issued here, is fresh and unused.
    fn spend(&self, nonce: &[u8; CHALLENGE_LEN]) -> bool {
        let mut queue = lock(&self.issued);
        let found = queue
            .iter()
            .position(|(n, at)| shard_crypto::ct_eq(n, nonce) && at.elapsed() < CHALLENGE_TTL);
        found.and_then(|i| queue.remove(i)).is_some()
    }
}

/// Answers peers' requests from a share store.
pub struct ShareService {
    me: NodeId,
    store: Arc<dyn ShareStore>,
    heads: Option<Arc<HeadStore>>,
    puts: mpsc::Sender<PutJob>,
}

impl ShareService {
    /// A service of node `me` over `store` (and `heads`, if this node keeps catalog heads);
    /// starts the put batcher.
    pub fn new(me: NodeId, store: Arc<dyn ShareStore>, heads: Option<Arc<HeadStore>>) -> Arc<Self> {
        let (puts, jobs) = mpsc::channel(1024);
        tokio::spawn(put_batcher(store.clone(), jobs));
        Arc::new(Self {
            me,
            store,
            heads,
            puts,
        })
    }

    /// The catalog heads this node keeps.
    pub fn heads(&self) -> Option<&Arc<HeadStore>> {
        self.heads.as_ref()
    }

    async fn with_heads<T: Send + 'static>(
        &self,
        f: impl FnOnce(&HeadStore, &dyn ShareStore) -> shard_store::Result<T> + Send + 'static,
    ) -> std::result::Result<T, Response> {
        let Some(heads) = self.heads.clone() else {
            return Err(error(
                ErrorCode::Unsupported,
                "this node keeps no catalog heads",
            ));
        };
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&heads, store.as_ref())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(store_error(&e)),
            Err(_) => Err(error(ErrorCode::Internal, "head task failed")),
        }
    }

    /// The store behind the service.
    pub fn store(&self) -> &Arc<dyn ShareStore> {
        &self.store
    }

    /// Stores a share of this node's own in its store, through the same group commit as
    /// peers' puts.
    pub async fn put_local(
        &self,
        ns: Namespace,
        share: Share,
    ) -> std::result::Result<(), shard_store::Error> {
        let (tx, rx) = oneshot::channel();
        if self.puts.send((ns, share, tx)).await.is_err() {
            return Err(shard_store::Error::InvalidParameters(
                "node is shutting down",
            ));
        }
        rx.await
            .unwrap_or(Err(shard_store::Error::InvalidParameters(
                "node is shutting down",
            )))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ShareStore) -> shard_store::Result<T> + Send + 'static,
    ) -> std::result::Result<T, Response> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(store_error(&e)),
            Err(_) => Err(error(ErrorCode::Internal, "store task failed")),
        }
    }

    /// The answer to one request from `owner` (called `who` in logs) on a connection whose
    /// challenges are `challenges`.
    pub async fn handle(
        &self,
        owner: NodeId,
        who: &str,
        challenges: &Challenges,
        body: Request,
    ) -> Response {
        match self.handle_with_share(owner, who, challenges, body).await {
            (Response::Share { .. }, Some(share)) => Response::Share {
                share: Bytes::from(share.to_bytes()),
            },
            (response, _) => response,
        }
    }

    /// Checks an authorized request: its challenge is one this node issued on this connection
    /// and is spent now (whatever follows), and the signature is the vault authority's — the
    /// key the vault id certifies — over this node's id, the challenge and `op`.
    fn authorize(
        &self,
        challenges: &Challenges,
        op: &VaultOp,
        auth: &VaultAuth,
    ) -> std::result::Result<(), &'static str> {
        if !challenges.spend(&auth.challenge) {
            return Err("its challenge is unknown, expired or already used");
        }
        let message = op.signed_message(&self.me, &auth.challenge);
        AuthorityKey(auth.key)
            .verify(&VaultId(*op.vault()), &message, &auth.signature)
            .map_err(|_| "it is not signed by the vault's authority for this node")
    }

    /// Carries out an authorized operation (already checked).
    async fn vault_op(
        &self,
        owner: NodeId,
        op: VaultOp,
    ) -> std::result::Result<Response, Response> {
        match op {
            VaultOp::Delete { vault, ids, purge } => {
                let ns = Namespace { owner, vault };
                self.blocking(move |s| {
                    if purge {
                        s.purge(&ns, &ids)
                    } else {
                        s.delete(&ns, &ids)
                    }
                })
                .await
                .map(|count| Response::Deleted { count })
            }
            VaultOp::PutCatalogHead { vault, seq, head } => self
                .with_heads(move |h, store| {
                    #[cfg(feature = "adversary")]
                    if crate::faults::active(crate::faults::Lie::OldHeads)
                        && h.get(&vault)?.is_some()
                    {
                        return Ok(());
                    }
                    keep_head(h, store, owner, vault, seq, &head)
                })
                .await
                .map(|()| Response::HeadStored),
            VaultOp::Adopt { vault, from } => self
                .hand_over(owner, vault, from)
                .await
                .map(|moved| Response::Adopted { moved }),
            VaultOp::Heads { vault, before } => self
                .with_heads(move |h, _| h.list(&vault, before, shard_proto::MAX_HEADS_LISTED))
                .await
                .map(|heads| Response::CatalogHeads {
                    heads: heads
                        .into_iter()
                        .map(|(seq, head)| (seq, Bytes::from(head)))
                        .collect(),
                }),
            VaultOp::Undelete { vault, ids } => {
                let ns = Namespace { owner, vault };
                self.blocking(move |s| s.undelete(&ns, &ids))
                    .await
                    .map(|count| Response::Undeleted { count })
            }
        }
    }

    /// Hands `vault` over to `owner`: the shares the nodes in `from` stored for it (its former
    /// owners, named by its heads — not every namespace with that vault id, which a node that
    /// learned the id could fill with junk) move to it, then the head. Both steps are
    /// idempotent: a crash in between is finished by the next hand-over. Returns how many
    /// shares moved.
    async fn hand_over(
        &self,
        owner: NodeId,
        vault: VaultRef,
        from: Vec<NodeId>,
    ) -> std::result::Result<u64, Response> {
        self.with_heads(move |h, store| {
            let to = Namespace { owner, vault };
            let mut moved = 0;
            for former in from.iter().filter(|f| **f != owner) {
                let ns = Namespace {
                    owner: *former,
                    vault,
                };
                moved += store.move_namespace(&ns, &to)?;
            }
            h.adopt(&owner, &vault)?;
            Ok(moved)
        })
        .await
    }

    /// This node takes `vault` over in its own store (a recovery on a node that kept shares of
    /// the vault for its former owners `from`).
    pub async fn adopt_here(&self, vault: VaultRef, from: Vec<NodeId>) -> Result<u64> {
        self.hand_over(self.me, vault, from)
            .await
            .map_err(|e| match e {
                Response::Error { code, message } => Error::Remote { code, message },
                _ => Error::UnexpectedResponse("hand-over"),
            })
    }

    /// The answer to one request; a share to send back travels beside it (a placeholder in the
    /// response), so it is not copied into the message.
    async fn handle_with_share(
        &self,
        owner: NodeId,
        who: &str,
        challenges: &Challenges,
        body: Request,
    ) -> (Response, Option<Share>) {
        let ns = |vault: VaultRef| Namespace { owner, vault };
        let result = match body {
            Request::Ping { nonce } => Ok(Response::Pong { nonce }),
            Request::PutShare { vault, share } => match Share::decode(share) {
                Err(e) => Err(error(
                    ErrorCode::BadRequest,
                    &format!("not a valid share: {e}"),
                )),
                Ok(share) => {
                    let (tx, rx) = oneshot::channel();
                    if self.puts.send((ns(vault), share, tx)).await.is_err() {
                        Err(error(ErrorCode::Unavailable, "node is shutting down"))
                    } else {
                        match rx.await {
                            Ok(Ok(())) => Ok(Response::Stored),
                            Ok(Err(e)) => Err(store_error(&e)),
                            Err(_) => Err(error(ErrorCode::Unavailable, "node is shutting down")),
                        }
                    }
                }
            },
            Request::GetShare { vault, id } => {
                let ns = ns(vault);
                match self.blocking(move |s| s.get(&ns, &id)).await {
                    Ok(Some(share)) => {
                        return (
                            Response::Share {
                                share: Bytes::new(),
                            },
                            Some(share),
                        );
                    }
                    Ok(None) => Err(error(ErrorCode::NotFound, "share not held")),
                    Err(e) => Err(e),
                }
            }
            Request::GetShareRange {
                vault,
                id,
                start,
                end,
            } => {
                let ns = ns(vault);
                match self
                    .blocking(move |s| s.get_range(&ns, &id, start, end))
                    .await
                {
                    Ok(Some(bytes)) => Ok(Response::ShareRange { bytes }),
                    Ok(None) => Err(error(ErrorCode::NotFound, "share not held")),
                    Err(e) => Err(e),
                }
            }
            Request::Have { vault, ids } => {
                let ns = ns(vault);
                self.blocking(move |s| s.has(&ns, &ids))
                    .await
                    .map(|have| Response::Have { have })
            }
            Request::List {
                vault,
                after,
                limit,
            } => {
                let ns = ns(vault);
                let limit = limit.min(MAX_LIST) as usize;
                self.blocking(move |s| s.list(&ns, after.as_ref(), limit))
                    .await
                    .map(|ids| Response::List { ids })
            }
            Request::Usage => {
                let heads = self.heads.clone();
                self.blocking(move |s| {
                    let mut usage = s.usage()?;
                    // Catalog heads take room too.
                    if let Some(h) = heads {
                        usage.used = usage.used.saturating_add(h.total_bytes()?);
                    }
                    Ok(usage)
                })
                .await
                .map(|u| Response::Usage {
                    used: u.used,
                    shares: u.shares,
                    quota: u.quota,
                    reclaimable: u.reclaimable,
                })
            }
            Request::Challenge => match challenges.issue() {
                Ok(nonce) => Ok(Response::Challenge { nonce }),
                Err(_) => Err(error(ErrorCode::Internal, "no randomness for a challenge")),
            },
            Request::Authorized { op, auth } => match self.authorize(challenges, &op, &auth) {
                Ok(()) => self.vault_op(owner, op).await,
                Err(why) => {
                    tracing::warn!(
                        "refused a {} for vault {} from {who} ({}): {why}",
                        op.name(),
                        hex::encode(op.vault()),
                        crate::identity::short_fingerprint(&owner),
                    );
                    Err(error(
                        ErrorCode::Unauthorized,
                        &format!("{} refused: {why}", op.name()),
                    ))
                }
            },
            Request::Quarantined { vault } => {
                let ns = ns(vault);
                self.blocking(move |s| s.quarantined(&ns))
                    .await
                    .map(|mut ids| {
                        ids.truncate(shard_proto::MAX_IDS_PER_REQUEST);
                        Response::Quarantined { ids }
                    })
            }
        };
        (result.unwrap_or_else(|e| e), None)
    }
}

/// Keeps a catalog head from `owner`, if it may: for a vault whose shares it keeps here (or
/// whose head it owns already: a head points at shares, it is not storage), within what one
/// node may leave here in heads, and within the quota.
fn keep_head(
    h: &HeadStore,
    store: &dyn ShareStore,
    owner: NodeId,
    vault: VaultRef,
    seq: u64,
    head: &[u8],
) -> shard_store::Result<()> {
    let holds = !store.list(&Namespace { owner, vault }, None, 1)?.is_empty()
        || h.get(&vault)?.is_some_and(|kept| kept.owner == owner);
    if !holds {
        return Err(shard_store::Error::NoSharesForHead);
    }
    let len = head.len() as u64;
    let mine = h.bytes_of(&owner)?;
    if mine.saturating_add(len) > HEAD_BYTES_PER_NODE {
        return Err(shard_store::Error::Full {
            needed: len,
            free: HEAD_BYTES_PER_NODE.saturating_sub(mine),
        });
    }
    let usage = store.usage()?;
    if let Some(quota) = usage.quota {
        let used = usage
            .used
            .saturating_sub(usage.reclaimable)
            .saturating_add(h.total_bytes()?);
        if used.saturating_add(len) > quota {
            return Err(shard_store::Error::Full {
                needed: len,
                free: quota.saturating_sub(used),
            });
        }
    }
    h.put(&owner, &vault, seq, head)
}

fn error(code: ErrorCode, message: &str) -> Response {
    Response::Error {
        code,
        message: message.to_string(),
    }
}

fn store_error(e: &shard_store::Error) -> Response {
    use shard_store::Error as S;
    let code = match e {
        S::Full { .. } => ErrorCode::Full,
        S::StaleHead { .. } | S::NotHeadOwner | S::NoSharesForHead => ErrorCode::Refused,
        S::NoSuchFile(_) => ErrorCode::NotFound,
        S::Corrupt { .. } => ErrorCode::Corrupt,
        S::Format(_) | S::InvalidParameters(_) | S::RangeOutOfBounds { .. } => {
            ErrorCode::BadRequest
        }
        S::ReadOnly(_) | S::NotWritable(_) => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    };
    error(code, &e.to_string())
}

/// Group commit: takes every put waiting (up to 64), stores them with one `put` per namespace
/// (one sync pass), then answers them all. While a batch is on its way to disk, the next one
/// gathers.
async fn put_batcher(store: Arc<dyn ShareStore>, mut jobs: mpsc::Receiver<PutJob>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < 64 {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let store = store.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut by_ns: HashMap<Namespace, Vec<usize>> = HashMap::new();
            for (i, (ns, _, _)) in batch.iter().enumerate() {
                by_ns.entry(*ns).or_default().push(i);
            }
            let mut results: Vec<Option<std::result::Result<(), shard_store::Error>>> =
                (0..batch.len()).map(|_| None).collect();
            for (ns, idx) in by_ns {
                let shares: Vec<Share> = idx
                    .iter()
                    .filter_map(|&i| batch.get(i).map(|j| j.1.clone()))
                    .collect();
                let outcome = store.put(&ns, &shares);
                for &i in &idx {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = Some(match &outcome {
                            Ok(()) => Ok(()),
                            Err(e) => Err(clone_store_error(e)),
                        });
                    }
                }
            }
            for ((_, _, tx), result) in batch.into_iter().zip(results) {
                let _ = tx.send(
                    result.unwrap_or(Err(shard_store::Error::InvalidParameters("lost in batch"))),
                );
            }
        })
        .await;
        if done.is_err() {
            tracing::error!("share store task panicked during a put batch");
        }
    }
}

fn clone_store_error(e: &shard_store::Error) -> shard_store::Error {
    use shard_store::Error as S;
    match e {
        S::Full { needed, free } => S::Full {
            needed: *needed,
            free: *free,
        },
        S::ReadOnly(p) => S::ReadOnly(p.clone()),
        S::NotWritable(p) => S::NotWritable(p.clone()),
        other => S::Io(std::io::Error::other(other.to_string())),
    }
}

/// Bytes (KiB) of requests and answers one connection may hold in memory at once: the reader
/// stops reading requests while they are spent, and they come back once the answers are
/// written. A peer that asks without reading pins at most this much.
pub const CONNECTION_BUDGET_KIB: u32 = 64 * 1024;
/// An answer that cannot be written for this long (the peer reads nothing) ends the
/// connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a request may hold in memory until its answer is written, in KiB: its own bytes, and
/// the most its answer can carry.
fn request_cost_kib(body: &Request) -> u32 {
    let kib = |bytes: usize| u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
    let largest_share = shard_proto::SHARE_HEADER_LEN + shard_proto::MAX_SHARE_PAYLOAD as usize;
    let cost = match body {
        Request::PutShare { share, .. } => kib(share.len()),
        Request::GetShare { .. } => kib(largest_share),
        // At least 64 KiB: tiny ranges must not let a peer keep endless reads in flight.
        Request::GetShareRange { start, end, .. } => {
            kib(end.saturating_sub(*start) as usize).max(64)
        }
        Request::Have { ids, .. } => kib(ids.len() * 33),
        Request::List { limit, .. } => kib(*limit as usize * 32),
        Request::Authorized { op, .. } => match op {
            VaultOp::Heads { .. } => kib(shard_proto::MAX_HEADS_LISTED * shard_proto::MAX_HEAD),
            VaultOp::PutCatalogHead { head, .. } => kib(head.len()),
            VaultOp::Delete { ids, .. } | VaultOp::Undelete { ids, .. } => kib(ids.len() * 32),
            VaultOp::Adopt { .. } => 1,
        },
        _ => 1,
    };
    cost.clamp(1, CONNECTION_BUDGET_KIB)
}

/// Serves one admitted peer's requests until it disconnects, breaks the protocol, sends no
/// frame for `idle` (a half-open connection), leaves its answers unread for [`WRITE_TIMEOUT`],
/// or `shutdown` turns true. Memory is bounded by [`CONNECTION_BUDGET_KIB`]. Requests in
/// flight when shutdown comes are finished (a put that completes is acknowledged, one that
/// does not never is). Dropping the future instead ends the connection at once: its writer
/// is aborted and the answers it held are freed with it.
pub async fn serve_channel(
    connection: impl Into<Connection>,
    service: Arc<ShareService>,
    mut shutdown: watch::Receiver<bool>,
    idle: Duration,
) {
    let Connection {
        mut reader,
        mut writer,
        peer,
    } = connection.into();
    let owner = peer.id;
    let (answers, mut outbox) =
        mpsc::channel::<(Message, Option<Share>, OwnedSemaphorePermit)>(MAX_IN_FLIGHT);
    let (writer_gone, mut writer_ended) = watch::channel(false);
    let addr = peer.addr;
    let mut writer_task = AbortOnDrop(tokio::spawn(async move {
        while let Some((message, share, budget)) = outbox.recv().await {
            let write = async {
                match &share {
                    Some(share) => writer.write_share_frame(&message, share).await,
                    None => writer.write_frame(&message).await,
                }
            };
            match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!("answer write failed: {e}");
                    break;
                }
                Err(_) => {
                    tracing::warn!(
                        peer = %addr,
                        "closing connection: its answers went unread for {WRITE_TIMEOUT:?}"
                    );
                    break;
                }
            }
            drop(budget);
        }
        writer_gone.send_replace(true);
        let _ = writer.shutdown().await;
    }));
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let budget = Arc::new(Semaphore::new(CONNECTION_BUDGET_KIB as usize));
    let challenges = Arc::new(Challenges::default());
    // The requests being served, owned by this connection: when it is dropped (evicted by a
    // newer connection of the same peer, or the node stopping) they go with it, and so does
    // the memory they hold — a peer cannot pile up budgets by opening connection after
    // connection.
    let mut requests = tokio::task::JoinSet::new();
    loop {
        while requests.try_join_next().is_some() {}
        let frame = tokio::select! {
            frame = tokio::time::timeout(idle, reader.read_frame()) => match frame {
                Ok(frame) => frame,
                Err(_) => {
                    tracing::warn!(peer = %peer.addr, "closing connection: no frame for {idle:?}");
                    break;
                }
            },
            _ = shutdown.changed() => break,
            _ = writer_ended.wait_for(|gone| *gone) => break,
        };
        match frame {
            Ok(Message::Request { id, body }) => {
                // No further reading while this connection's memory is spent: the peer waits
                // (TCP holds it back) until answers are written.
                let cost = request_cost_kib(&body);
                let held = tokio::select! {
                    held = budget.clone().acquire_many_owned(cost) => held,
                    _ = writer_ended.wait_for(|gone| *gone) => break,
                };
                let Ok(held) = held else { break };
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let service = service.clone();
                let answers = answers.clone();
                let who = peer.hello.name.clone();
                let challenges = challenges.clone();
                requests.spawn(async move {
                    let (body, share) = service
                        .handle_with_share(owner, &who, &challenges, body)
                        .await;
                    let _ = answers
                        .send((Message::Response { id, body }, share, held))
                        .await;
                    drop(permit);
                });
            }
            Ok(Message::Response { .. }) => {
                tracing::warn!(peer = %peer.addr, "peer sent an answer nobody asked for; closing");
                break;
            }
            Err(Error::Disconnected) => break,
            Err(e) => {
                tracing::warn!(peer = %peer.addr, "closing connection: {e}");
                break;
            }
        }
    }
    // Let requests in flight finish and their answers go out, then close.
    while requests.join_next().await.is_some() {}
    drop(slots);
    drop(answers);
    let _ = (&mut writer_task.0).await;
}

/// A task aborted when its handle is dropped (a connection's writer dies with its reader).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
