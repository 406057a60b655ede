//! Accounts on a node: the passphrase rules, the delay after failed attempts, and the account
//! operations the CLI and the running node share (create, change passphrase, recovery code).
//!
//! Every check of a passphrase goes through [`wait_before_attempt`] and [`try_unwrap`], so the
//! delay after failures (1 s, 2 s, 4 s … at most 60 s, counted per account in the catalog and
//! so across restarts) applies to `login`, `account passwd` and `account recovery-code` alike:
//! none of them is a way around it. An attempt is counted as a failure *before* Argon2 runs
//! (and the count cleared if it succeeds), so nothing is gained by cutting one short; in a
//! running node the [`Gate`] lets one attempt per account run at a time (concurrent guesses
//! queue behind each other's delays), at most two Argon2 computations at once (64 MiB each),
//! and a bounded number of sign-ups a minute.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use shard_crypto::{KdfParams, KeyRecord, VaultKey, encode_recovery_code};
use shard_store::{Account, Catalog};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// Fewest characters a new passphrase may have.
pub const MIN_PASSPHRASE_CHARS: usize = 10;
/// Most bytes a passphrase may have (Argon2 takes any length; this bounds what is accepted).
pub const MAX_PASSPHRASE_BYTES: usize = 1024;

/// Lowest strength a new passphrase may have, as zxcvbn scores it: 3, at least 10⁸ guesses by
/// its estimate (it knows leaked-password and name lists, dictionary words, keyboard walks,
/// dates, repeats and l33t spellings). An attacker who took a machine's catalog pays one
/// Argon2id of 64 MiB per guess, about a tenth of a core-second: 10⁸ guesses are three
/// core-years. A higher floor turns away passphrases people can remember, and those get
/// written down.
const MIN_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

/// Checks a new passphrase (for `user`) against the rules; the error says which rule, and for
/// one too easy to guess, why and what would help (zxcvbn's words).
pub fn check_new_passphrase(user: &str, passphrase: &str) -> Result<()> {
    let weak = |why: &str| Err(Error::WeakPassphrase(why.to_string()));
    if passphrase.is_empty() {
        return weak("the passphrase is empty");
    }
    if passphrase.len() > MAX_PASSPHRASE_BYTES {
        return weak("the passphrase is longer than 1024 bytes");
    }
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return weak("the passphrase is shorter than 10 characters");
    }
    if passphrase.to_lowercase() == user.to_lowercase() {
        return weak("the passphrase is the account name");
    }
    // zxcvbn reads the first 100 characters: a longer passphrase is judged by its start.
    let estimate = zxcvbn::zxcvbn(passphrase, &[user, "shard"]);
    if estimate.score() < MIN_SCORE {
        let mut why = format!(
            "the passphrase is too easy to guess (about 10^{:.0} guesses)",
            estimate.guesses_log10()
        );
        if let Some(feedback) = estimate.feedback() {
            if let Some(warning) = feedback.warning() {
                why.push_str(&format!(": {warning}"));
            }
            for suggestion in feedback.suggestions() {
                why.push_str(&format!(" {suggestion}"));
            }
        }
        return Err(Error::WeakPassphrase(why));
    }
    Ok(())
}

/// Checks an account name: 1 to 64 characters, no control characters, no `/`.
pub fn check_account_name(user: &str) -> Result<()> {
    if user.is_empty()
        || user.chars().count() > 64
        || user.chars().any(|c| c.is_control() || c == '/')
    {
        return Err(Error::InvalidName(format!(
            "{user}: account names are 1 to 64 characters, without control characters or '/'"
        )));
    }
    Ok(())
}

/// How long the next passphrase attempt waits after `failures` failed ones in a row.
pub fn login_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs(1u64.checked_shl(failures - 1).unwrap_or(u64::MAX).min(60))
}

/// An account as `shard account ls` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AccountInfo {
    /// Its name.
    pub name: String,
    /// Stored file versions.
    pub files: u64,
    /// Unlocked in the running node.
    pub unlocked: bool,
    /// Failed passphrase attempts since the last success.
    pub failed_logins: u32,
}

/// Every account of the catalog; `unlocked` names those unlocked in the running node.
pub fn list(catalog: &Catalog, unlocked: &[String]) -> Result<Vec<AccountInfo>> {
    catalog
        .accounts()?
        .into_iter()
        .map(|a| {
            Ok(AccountInfo {
                files: catalog.file_count(a.id)?,
                failed_logins: catalog.login_failures(a.id)?.0,
                unlocked: unlocked.contains(&a.name),
                name: a.name,
            })
        })
        .collect()
}

/// The account named `user`, or [`shard_store::Error::NoSuchAccount`].
pub fn account(catalog: &Catalog, user: &str) -> Result<Account> {
    Ok(catalog
        .account(user)?
        .ok_or_else(|| shard_store::Error::NoSuchAccount(user.to_string()))?)
}

/// The delay unit of a real node: 1 s, 2 s, 4 s … (tests run with a shorter one).
pub const DELAY_UNIT: Duration = Duration::from_secs(1);

/// What is left of the delay the account's failed attempts impose on the next one, in units of
/// `unit` ([`DELAY_UNIT`] but in tests).
pub fn wait_before_attempt(
    catalog: &Catalog,
    account: &Account,
    unit: Duration,
) -> Result<Duration> {
    let (failures, last) = catalog.login_failures(account.id)?;
    let since_ms = shard_store::unix_now_ms().saturating_sub(last.unwrap_or(0));
    let since = Duration::from_millis(u64::try_from(since_ms).unwrap_or(0));
    let delay = unit.saturating_mul(u32::try_from(login_delay(failures).as_secs()).unwrap_or(60));
    Ok(delay.saturating_sub(since))
}

/// Unwraps the account's vault key with `passphrase` (Argon2id: run it off async threads).
/// The attempt is counted as a failure before Argon2 runs, and the count cleared if it
/// succeeds: an attempt killed half-way still counts. A failure is answered with
/// [`Error::WrongPassphrase`] naming the next delay. Call [`wait_before_attempt`] first and
/// wait that long.
pub fn try_unwrap(catalog: &Catalog, account: &Account, passphrase: &[u8]) -> Result<VaultKey> {
    if passphrase.len() > MAX_PASSPHRASE_BYTES {
        // No passphrase this long was ever accepted; not worth an Argon2 run.
        return Err(Error::WeakPassphrase(
            "the passphrase is longer than 1024 bytes".into(),
        ));
    }
    catalog.record_login_failure(account.id)?;
    match account.key_record.unwrap_key(passphrase) {
        Ok(key) => {
            catalog.reset_login_failures(account.id)?;
            Ok(key)
        }
        Err(shard_crypto::Error::WrongPassphrase) => {
            catalog.restamp_login_failure(account.id)?;
            let (failures, _) = catalog.login_failures(account.id)?;
            Err(Error::WrongPassphrase {
                user: account.name.clone(),
                next_wait_secs: login_delay(failures).as_secs(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn fill(buf: &mut [u8]) {
    // A decoy's passphrase need not be secret, only unguessable: if randomness fails, a fixed
    // value still opens nothing a person types.
    if shard_crypto::fill_random(buf).is_err() {
        buf.fill(0xA5);
    }
}

/// Argon2 computations a node runs at once (each holds 64 MiB).
pub const ARGON2_AT_ONCE: usize = 2;
/// Sign-ups a node accepts in [`SIGNUP_WINDOW`].
pub const SIGNUPS_PER_WINDOW: usize = 5;
/// The window of [`SIGNUPS_PER_WINDOW`].
pub const SIGNUP_WINDOW: Duration = Duration::from_secs(60);

/// Passphrase attempts on one account that may wait for their turn at once; more are refused
/// at once (so guesses cannot queue up to keep the owner out for hours).
pub const WAITING_PER_ACCOUNT: usize = 4;

/// One account's turn: the lock, and how many attempts hold or wait for it.
#[derive(Default)]
struct Turn {
    lock: Arc<tokio::sync::Mutex<()>>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

/// An account's turn to check a passphrase, held until dropped.
pub struct TurnGuard {
    _lock: tokio::sync::OwnedMutexGuard<()>,
    _queued: Queued,
}

/// A place in a name's queue, given back when dropped — also when the attempt is given up
/// while it waits (a cancelled request must not keep its place for ever).
struct Queued {
    queued: Arc<std::sync::atomic::AtomicUsize>,
    name: String,
    turns: Arc<Mutex<HashMap<String, Turn>>>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        let mut turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
        let before = self
            .queued
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        // The last one out forgets the name (names with no account must not pile up).
        if before == 1 {
            turns.remove(&self.name);
        }
    }
}

/// Names with no account that logins were tried for, remembered (for their delays) at most.
const UNKNOWN_NAMES: usize = 1024;

/// Logins from the web UI waiting at once, whatever the name: more are refused with
/// [`Error::TooManyAttempts`], so a crowd of attempts (on names that exist or not) cannot
/// stand for minutes between the owner and the two Argon2 slots.
pub const WEB_LOGINS_WAITING: usize = 16;

/// What bounds passphrase work in a running node (see the module docs).
pub struct Gate {
    /// Turns by login name: accounts and names with no account alike.
    turns: Arc<Mutex<HashMap<String, Turn>>>,
    argon: Arc<tokio::sync::Semaphore>,
    signups: Mutex<VecDeque<Instant>>,
    /// Failed logins for names that have no account: (count, when the last one ended), so a
    /// wrong name waits exactly as a wrong passphrase would.
    unknown: Mutex<HashMap<String, (u32, Instant)>>,
    /// A key record no passphrase opens, checked for names with no account (same Argon2 cost).
    decoy: std::sync::OnceLock<Option<KeyRecord>>,
    /// Web logins under way (see [`WEB_LOGINS_WAITING`]).
    web_waiting: Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            turns: Arc::default(),
            argon: Arc::new(tokio::sync::Semaphore::new(ARGON2_AT_ONCE)),
            signups: Mutex::default(),
            unknown: Mutex::default(),
            decoy: std::sync::OnceLock::new(),
            web_waiting: Arc::default(),
        }
    }
}

impl Gate {
    /// Waits for the turn of login name `user`: one passphrase attempt per name at a time, at
    /// most [`WAITING_PER_ACCOUNT`] waiting (more are refused with
    /// [`Error::TooManyAttempts`]) — for names with no account too, so that the answers do not
    /// tell which names exist.
    pub async fn turn(&self, user: &str) -> Result<TurnGuard> {
        let (lock, queued) = {
            let mut turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
            let turn = turns.entry(user.to_string()).or_default();
            let before = turn
                .queued
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if before >= WAITING_PER_ACCOUNT {
                turn.queued
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                return Err(Error::TooManyAttempts(format!(
                    "{WAITING_PER_ACCOUNT} passphrase attempts for this account are already waiting; try again later"
                )));
            }
            (turn.lock.clone(), turn.queued.clone())
        };
        let place = Queued {
            queued,
            name: user.to_string(),
            turns: self.turns.clone(),
        };
        Ok(TurnGuard {
            _lock: lock.lock_owned().await,
            _queued: place,
        })
    }

    /// A place among the web logins under way, or [`Error::TooManyAttempts`] when
    /// [`WEB_LOGINS_WAITING`] are.
    pub fn web_login(&self) -> Result<WebLogin> {
        let before = self
            .web_waiting
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let place = WebLogin(self.web_waiting.clone());
        if before >= WEB_LOGINS_WAITING {
            return Err(Error::TooManyAttempts(
                "too many logins are waiting on this node; try again in a minute".into(),
            ));
        }
        Ok(place)
    }

    /// Waits for room to run Argon2.
    pub async fn argon(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.argon
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Stopping)
    }

    /// A login for `user`, a name with no account, answered exactly as a wrong passphrase
    /// would be — the same delay after earlier failures of that name, the same Argon2 run,
    /// the same error — so that the answer tells nobody which names exist.
    pub async fn wrong_name(&self, user: &str, passphrase: &[u8], unit: Duration) -> Error {
        let failures = {
            let map = self.unknown.lock().unwrap_or_else(PoisonError::into_inner);
            map.get(user).copied()
        };
        if let Some((count, last)) = failures {
            let delay =
                unit.saturating_mul(u32::try_from(login_delay(count).as_secs()).unwrap_or(60));
            let left = delay.saturating_sub(last.elapsed());
            tokio::time::sleep(left).await;
        }
        if let Ok(_argon) = self.argon().await {
            let decoy = self
                .decoy
                .get_or_init(|| {
                    let key = VaultKey::generate().ok()?;
                    let mut secret = [0u8; 32];
                    crate::accounts::fill(&mut secret);
                    KeyRecord::wrap(&key, &secret, KdfParams::DEFAULT).ok()
                })
                .clone();
            let passphrase = passphrase.to_vec();
            let _ = tokio::task::spawn_blocking(move || {
                decoy.map(|record| record.unwrap_key(&passphrase).is_ok())
            })
            .await;
        }
        let count = {
            let mut map = self.unknown.lock().unwrap_or_else(PoisonError::into_inner);
            if map.len() >= UNKNOWN_NAMES
                && !map.contains_key(user)
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
            let entry = map.entry(user.to_string()).or_insert((0, Instant::now()));
            entry.0 = entry.0.saturating_add(1);
            entry.1 = Instant::now();
            entry.0
        };
        Error::WrongPassphrase {
            user: user.to_string(),
            next_wait_secs: login_delay(count).as_secs(),
        }
    }

    /// Counts a sign-up, or refuses it when [`SIGNUPS_PER_WINDOW`] happened in the last
    /// [`SIGNUP_WINDOW`].
    pub fn signup(&self) -> Result<()> {
        let mut recent = self.signups.lock().unwrap_or_else(PoisonError::into_inner);
        while recent.front().is_some_and(|t| t.elapsed() >= SIGNUP_WINDOW) {
            recent.pop_front();
        }
        if recent.len() >= SIGNUPS_PER_WINDOW {
            return Err(Error::TooManyAttempts(format!(
                "{SIGNUPS_PER_WINDOW} accounts were created in the last minute; wait a minute"
            )));
        }
        recent.push_back(Instant::now());
        Ok(())
    }
}

/// [`wait_before_attempt`], sleeping, then [`try_unwrap`]: for blocking callers (the CLI).
pub fn unwrap_blocking(
    catalog: &Catalog,
    user: &str,
    passphrase: &[u8],
) -> Result<(Account, VaultKey)> {
    let account = account(catalog, user)?;
    std::thread::sleep(wait_before_attempt(catalog, &account, DELAY_UNIT)?);
    let key = try_unwrap(catalog, &account, passphrase)?;
    Ok((account, key))
}

/// Creates the account `user` with a new vault; returns its recovery code.
pub fn create(catalog: &Catalog, user: &str, passphrase: &str) -> Result<Zeroizing<String>> {
    check_account_name(user)?;
    check_new_passphrase(user, passphrase)?;
    if catalog.account(user)?.is_some() {
        return Err(shard_store::Error::AccountExists(user.to_string()).into());
    }
    let key = VaultKey::generate()?;
    let record = KeyRecord::wrap(&key, passphrase.as_bytes(), KdfParams::DEFAULT)?;
    catalog.create_account(user, &record)?;
    Ok(encode_recovery_code(&key))
}

/// Re-wraps `user`'s vault key under `new` after checking `old`: the old passphrase stops
/// working, the vault (its key, files and shares) is untouched. Returns whether the old key
/// record is gone from the catalog's write-ahead log too (see
/// [`Catalog::update_key_record`]).
pub fn change_passphrase(catalog: &Catalog, user: &str, old: &[u8], new: &str) -> Result<bool> {
    check_new_passphrase(user, new)?;
    let (account, key) = unwrap_blocking(catalog, user, old)?;
    let record = KeyRecord::wrap(&key, new.as_bytes(), KdfParams::DEFAULT)?;
    Ok(catalog.update_key_record(account.id, &record)?)
}

/// The recovery code of `user`'s vault, after checking the passphrase.
pub fn recovery_code(
    catalog: &Catalog,
    user: &str,
    passphrase: &[u8],
) -> Result<Zeroizing<String>> {
    let (_, key) = unwrap_blocking(catalog, user, passphrase)?;
    Ok(encode_recovery_code(&key))
}

/// A web login under way; its place is given back when dropped.
pub struct WebLogin(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for WebLogin {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_ups_beyond_five_a_minute_are_refused_and_say_why() {
        let gate = Gate::default();
        for _ in 0..SIGNUPS_PER_WINDOW {
            gate.signup().unwrap();
        }
        match gate.signup() {
            Err(Error::TooManyAttempts(why)) => assert_eq!(
                why,
                "5 accounts were created in the last minute; wait a minute"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn passphrase_rules_name_the_reason() {
        let reason = |p: &str| match check_new_passphrase("alice", p) {
            Err(Error::WeakPassphrase(why)) => why,
            other => panic!("{p:?}: {other:?}"),
        };
        assert!(reason("").contains("empty"));
        assert!(reason("short one").contains("shorter than 10"));
        assert!(reason(&"x".repeat(1025)).contains("1024 bytes"));
        assert!(matches!(
            check_new_passphrase("alicealice", "AliceAlice"),
            Err(Error::WeakPassphrase(why)) if why.contains("the account name")
        ));
        // What a list of ~50 common passphrases let through, and the reason each gets.
        for (weak, why) in [
            ("Password123", "very common password"),
            ("Summer2024!", "similar to a commonly used password"),
            ("Michael1985!", "names and surnames"),
            ("Jennifer2019", "names and surnames"),
            ("qwertyuiop[]", "rows of keys"),
            ("abcdefghijkl", "Sequences"),
            ("zzzzzzzzzzzz", "Repeats"),
            ("alice12345678", "too easy to guess"),
            ("shardshard1", "too easy to guess"),
        ] {
            let said = reason(weak);
            assert!(
                said.starts_with("the passphrase is too easy to guess (about 10^")
                    && said.contains(why),
                "{weak}: {said}"
            );
        }
        for strong in [
            "plum orbit candle",
            "correct horse battery staple",
            "violet kettle across the dunes",
            "Tr0ub4dor&3xy",
        ] {
            check_new_passphrase("alice", strong).unwrap();
        }
        // Ten characters, counted as characters, not bytes.
        check_new_passphrase("alice", "ünïcödé-ok").unwrap();
        assert!(reason("ünïcödé-o").contains("shorter than 10"));
    }

    #[test]
    fn delays_double_up_to_a_minute() {
        let secs: Vec<u64> = (0..9).map(|n| login_delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(login_delay(u32::MAX).as_secs(), 60);
    }

    #[test]
    fn names_are_checked() {
        check_account_name("alice").unwrap();
        check_account_name("Élodie B.").unwrap();
        for bad in ["", "a/b", "tab\there", &"n".repeat(65)] {
            assert!(
                matches!(check_account_name(bad), Err(Error::InvalidName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn passwd_rewraps_and_failures_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let code = create(&catalog, "alice", "plum orbit candle").unwrap();
        assert!(matches!(
            create(&catalog, "alice", "plum orbit candle"),
            Err(Error::Store(shard_store::Error::AccountExists(_)))
        ));
        change_passphrase(&catalog, "alice", b"plum orbit candle", "new river stone").unwrap();
        assert_eq!(
            recovery_code(&catalog, "alice", b"new river stone").unwrap(),
            code
        );
        // The old passphrase stops working; the failure is counted and the delay named.
        match recovery_code(&catalog, "alice", b"plum orbit candle") {
            Err(Error::WrongPassphrase {
                user,
                next_wait_secs,
            }) => {
                assert_eq!((user.as_str(), next_wait_secs), ("alice", 1));
            }
            other => panic!("{other:?}"),
        }
        let account = account(&catalog, "alice").unwrap();
        assert!(wait_before_attempt(&catalog, &account, DELAY_UNIT).unwrap() > Duration::ZERO);
        assert!(matches!(
            recovery_code(&catalog, "bob", b"whatever it is"),
            Err(Error::Store(shard_store::Error::NoSuchAccount(_)))
        ));
    }
}
