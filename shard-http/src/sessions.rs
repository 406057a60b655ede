//! The web UI's sessions (by cookie value: who, their CSRF token, when last seen, the vault
//! unlock they were opened with) and the link a person opens to reach the UI.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use shard_node::node::Node;

/// Sessions one account may have at once (its oldest goes first).
const SESSIONS_PER_ACCOUNT: usize = 8;
/// Sessions kept at once in all (then a new login is refused until some end).
const MAX_SESSIONS: usize = 256;

struct UiSession {
    user: String,
    csrf: String,
    last: Instant,
    /// The unlock of the vault this session was opened with: once that ends (a logout here
    /// or on the CLI, the account removed, another account of the same name), so does the
    /// session. Weak, so the session keeps no vault key alive.
    vault: std::sync::Weak<shard_node::session::Session>,
}

/// The web UI's sessions, by cookie value.
pub struct UiSessions {
    map: Mutex<HashMap<String, UiSession>>,
    /// A session ends after this long without a request.
    idle: Duration,
}

impl Default for UiSessions {
    fn default() -> Self {
        Self::new(Duration::from_secs(
            shard_node::home::WebConfig::default().session_idle_secs,
        ))
    }
}

impl UiSessions {
    /// No session yet; each ends after `idle` without a request.
    pub fn new(idle: Duration) -> Self {
        Self {
            map: Mutex::default(),
            idle,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UiSession>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session of `cookie` (its user and CSRF token), refreshed; `None` if unknown, idle
    /// too long, or its vault unlock on `node` has ended (then it is dropped).
    pub(crate) fn touch(&self, cookie: &str, node: &Node) -> Option<(String, String)> {
        let mut map = self.lock();
        let live = map.get(cookie).is_some_and(|s| {
            s.last.elapsed() < self.idle
                && node.session(Some(&s.user)).is_ok_and(|current| {
                    s.vault
                        .upgrade()
                        .is_some_and(|opened| Arc::ptr_eq(&opened, &current))
                })
        });
        if !live {
            map.remove(cookie);
            return None;
        }
        let s = map.get_mut(cookie)?;
        s.last = Instant::now();
        Some((s.user.clone(), s.csrf.clone()))
    }

    /// A new session for `user`. Its own oldest session goes when it has
    /// [`SESSIONS_PER_ACCOUNT`]; nobody else's ever does (so one account's logins cannot log
    /// the others out): with [`MAX_SESSIONS`] open, the login is refused instead.
    pub(crate) fn create(
        &self,
        user: &str,
        vault: &Arc<shard_node::session::Session>,
    ) -> shard_node::Result<(String, String)> {
        let (cookie, csrf) = (random_token()?, random_token()?);
        let mut map = self.lock();
        let idle = self.idle;
        map.retain(|_, s| s.last.elapsed() < idle);
        let mine: Vec<(&String, &UiSession)> = map.iter().filter(|(_, s)| s.user == user).collect();
        if mine.len() >= SESSIONS_PER_ACCOUNT
            && let Some(oldest) = mine
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| (*k).clone())
        {
            map.remove(&oldest);
        }
        if map.len() >= MAX_SESSIONS {
            return Err(shard_node::Error::TooManyAttempts(
                "too many web sessions are open on this node; try again later".into(),
            ));
        }
        map.insert(
            cookie.clone(),
            UiSession {
                user: user.to_string(),
                csrf: csrf.clone(),
                last: Instant::now(),
                vault: Arc::downgrade(vault),
            },
        );
        Ok((cookie, csrf))
    }

    pub(crate) fn end(&self, cookie: &str) -> Option<String> {
        self.lock().remove(cookie).map(|s| s.user)
    }
}

fn random_token() -> shard_node::Result<String> {
    let mut bytes = [0u8; 32];
    shard_crypto::fill_random(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The web UI's address for a person, `addr` being where it listens: with the one-time setup
/// token in the fragment (which browsers never send to a server) while the node has no
/// account, and only then.
pub fn link(node: &Node, addr: std::net::SocketAddr) -> shard_node::Result<String> {
    let host = if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    Ok(match node.setup_token()? {
        Some(token) => format!("http://{host}/#setup={token}"),
        None => format!("http://{host}/"),
    })
}
