//! The web UI's sessions (by their key: who, the cookie that must come with the key, when
//! last seen, the vault unlock they were opened with) and the link a person opens to reach
//! the UI.

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
    /// The cookie's value, which must come with the key (the key alone, were it ever to
    /// leak from the page, opens nothing either).
    cookie: String,
    last: Instant,
    /// The unlock of the vault this session was opened with: once that ends (a logout here
    /// or on the CLI, the account removed, another account of the same name), so does the
    /// session. Weak, so the session keeps no vault key alive.
    vault: std::sync::Weak<shard_node::session::Session>,
}

/// The web UI's sessions, by key.
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

    /// The session whose key is `key`, if one of `cookies` (values) is its cookie (compared
    /// in constant time): refreshed only then, so a cookie alone, as another local server
    /// may hold it, neither opens nor keeps a session alive (nor learns whether it is one).
    /// Returns the user and the cookie's value. A session idle too long, or whose vault
    /// unlock on `node` has ended, is dropped.
    pub(crate) fn touch(
        &self,
        key: &str,
        cookies: &[String],
        node: &Node,
    ) -> Option<(String, String)> {
        if key.is_empty() {
            return None;
        }
        let mut map = self.lock();
        let live = map.get(key).is_some_and(|s| {
            s.last.elapsed() < self.idle
                && node.session(Some(&s.user)).is_ok_and(|current| {
                    s.vault
                        .upgrade()
                        .is_some_and(|opened| Arc::ptr_eq(&opened, &current))
                })
        });
        if !live {
            map.remove(key);
            return None;
        }
        let s = map.get_mut(key)?;
        // Every cookie is compared, so the time does not say which matched.
        let matched = cookies.iter().fold(false, |found, c| {
            shard_crypto::ct_eq(c.as_bytes(), s.cookie.as_bytes()) | found
        });
        if !matched {
            return None;
        }
        s.last = Instant::now();
        Some((s.user.clone(), s.cookie.clone()))
    }

    /// Marks the session of `key` used now (after a long request, an upload, so the page's
    /// next call does not find it idle).
    pub(crate) fn refresh(&self, key: &str) {
        if let Some(s) = self.lock().get_mut(key) {
            s.last = Instant::now();
        }
    }

    /// A new session for `user`: its (cookie value, key). Its own oldest session goes when
    /// it has [`SESSIONS_PER_ACCOUNT`]; nobody else's ever does (so one account's logins
    /// cannot log the others out): with [`MAX_SESSIONS`] open, the login is refused instead.
    pub(crate) fn create(
        &self,
        user: &str,
        vault: &Arc<shard_node::session::Session>,
    ) -> shard_node::Result<(String, String)> {
        let (cookie, key) = (random_token()?, random_token()?);
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
            key.clone(),
            UiSession {
                user: user.to_string(),
                cookie: cookie.clone(),
                last: Instant::now(),
                vault: Arc::downgrade(vault),
            },
        );
        Ok((cookie, key))
    }

    /// Ends the session of `key`; its user.
    pub(crate) fn end(&self, key: &str) -> Option<String> {
        self.lock().remove(key).map(|s| s.user)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(user: &str) -> Arc<shard_node::session::Session> {
        let key = shard_crypto::VaultKey::from_bytes([7; 32]);
        Arc::new(shard_node::session::Session {
            user: user.to_string(),
            account: shard_store::AccountId(1),
            keys: Arc::new(shard_crypto::VaultKeys::derive(&key)),
            writer: tokio::sync::Mutex::new(()),
            pruning: tokio::sync::Mutex::new(()),
            compaction_due: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn users_of(sessions: &UiSessions) -> Vec<String> {
        let mut users: Vec<String> = sessions.lock().values().map(|s| s.user.clone()).collect();
        users.sort();
        users
    }

    #[test]
    fn an_account_has_eight_sessions_and_the_node_two_hundred_fifty_six() {
        let sessions = UiSessions::new(Duration::from_secs(600));
        let (alice, bob) = (vault("alice"), vault("bob"));
        let (_, bobs) = sessions.create("bob", &bob).unwrap();
        // Alice's ninth login ends her oldest session, never Bob's.
        let mut hers = Vec::new();
        for _ in 0..SESSIONS_PER_ACCOUNT {
            hers.push(sessions.create("alice", &alice).unwrap().1);
            std::thread::sleep(Duration::from_millis(2));
        }
        sessions.create("alice", &alice).unwrap();
        let open = sessions.lock();
        assert!(!open.contains_key(&hers[0]), "her oldest session stayed");
        assert!(hers[1..].iter().all(|c| open.contains_key(c)));
        assert!(open.contains_key(&bobs), "another account's session went");
        drop(open);
        assert_eq!(
            users_of(&sessions).iter().filter(|u| *u == "alice").count(),
            SESSIONS_PER_ACCOUNT
        );

        // Many accounts fill the node: the next login is refused, and nobody is logged out.
        let mut n = 0;
        while sessions.lock().len() < MAX_SESSIONS {
            let user = format!("user{n}");
            sessions.create(&user, &vault(&user)).unwrap();
            n += 1;
        }
        let before = users_of(&sessions);
        let refused = sessions.create("carol", &vault("carol")).unwrap_err();
        assert!(
            refused.to_string().contains("too many web sessions"),
            "{refused}"
        );
        assert_eq!(users_of(&sessions), before);
        // Alice at her limit still logs in (her own oldest goes).
        sessions.create("alice", &alice).unwrap();
        assert_eq!(sessions.lock().len(), MAX_SESSIONS);
        assert!(sessions.lock().contains_key(&bobs));
    }

    #[test]
    fn sessions_left_idle_make_room() {
        let sessions = UiSessions::new(Duration::from_millis(50));
        for n in 0..MAX_SESSIONS {
            let user = format!("user{n}");
            sessions.create(&user, &vault(&user)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(80));
        sessions.create("late", &vault("late")).unwrap();
        assert_eq!(users_of(&sessions), vec!["late".to_string()]);
    }
}
