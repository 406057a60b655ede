//! Unlocked accounts: the vault keys live here, in the node's memory only, from login to logout
//! (zeroized when the last reference drops).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use shard_crypto::VaultKeys;
use shard_store::AccountId;

/// One unlocked account.
pub struct Session {
    /// Login name.
    pub user: String,
    /// Catalog row.
    pub account: AccountId,
    /// The vault's keys (zeroized on drop).
    pub keys: Arc<VaultKeys>,
    /// Serializes operations that change what is stored (put, rm, repair) so that, say, an rm
    /// never deletes the shares of a chunk a concurrent put just found already stored.
    pub writer: tokio::sync::Mutex<()>,
    /// Held by a running prune: a second one is refused rather than queued behind it.
    pub pruning: tokio::sync::Mutex<()>,
    /// Whether files were removed since the last prune (the automatic compaction looks only
    /// then; set at login, as removals before it are not known).
    pub compaction_due: std::sync::atomic::AtomicBool,
}

impl Session {
    /// The vault id as requests name it.
    pub fn vault(&self) -> [u8; 16] {
        self.keys.vault_id().0
    }
}

/// The unlocked accounts of a node.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
}

/// Why no session could be picked.
#[derive(Debug, PartialEq, Eq)]
pub enum Pick {
    /// Nobody is logged in.
    None,
    /// Several are and none was named.
    Ambiguous,
    /// The named user is not logged in.
    NotLoggedIn(String),
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a session, or returns the one already open for the same account and vault (a
    /// second login while unlocked changes nothing: operations keep serializing on one
    /// writer lock, and web sessions opened with it stay valid). Another account under the
    /// same name replaces it.
    pub fn insert(&self, session: Session) -> Arc<Session> {
        let mut map = self.lock();
        if let Some(open) = map.get(&session.user)
            && open.account == session.account
            && open.vault() == session.vault()
        {
            return open.clone();
        }
        let session = Arc::new(session);
        map.insert(session.user.clone(), session.clone());
        session
    }

    /// Ends a session; true if there was one.
    pub fn remove(&self, user: &str) -> bool {
        self.lock().remove(user).is_some()
    }

    /// Ends every session.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The session of `user`, or the only one when no user is named.
    pub fn pick(&self, user: Option<&str>) -> Result<Arc<Session>, Pick> {
        let map = self.lock();
        match user {
            Some(u) => map
                .get(u)
                .cloned()
                .ok_or_else(|| Pick::NotLoggedIn(u.to_string())),
            None => match map.len() {
                0 => Err(Pick::None),
                1 => map.values().next().cloned().ok_or(Pick::None),
                _ => Err(Pick::Ambiguous),
            },
        }
    }

    /// The session of the account with row id `account`, if it is unlocked.
    pub fn by_account(&self, account: AccountId) -> Option<Arc<Session>> {
        self.lock().values().find(|s| s.account == account).cloned()
    }

    /// Names of the logged-in users.
    pub fn users(&self) -> Vec<String> {
        let mut users: Vec<String> = self.lock().keys().cloned().collect();
        users.sort();
        users
    }
}
