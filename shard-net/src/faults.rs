//! Fault hooks for tests (cargo feature `adversary`, never in a release build): the lies a
//! node can be told to tell through `SHARD_ADVERSARY`, and the crash points of `SHARD_CRASH_AT`.
//!
//! The share store's lies are told by `shard_testkit::adversary::Adversary`, a wrapper the
//! test binary puts around the node's store; what lives here are the words for them and the
//! hooks that must sit inside the code paths themselves (a crash between two steps of a put,
//! a head kept old in the request layer).

/// The environment variable that turns a node into an adversary.
pub const ENV: &str = "SHARD_ADVERSARY";

/// One way of lying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lie {
    /// Serves shares with a byte changed.
    WrongBytes,
    /// Serves the first half of each share.
    Truncated,
    /// Serves another share than the one asked for.
    OtherShare,
    /// Never answers a share request.
    Stall,
    /// Claims lots of room, refuses every put.
    FakeCapacity,
    /// Accepts this many more shares, then is full.
    FillAfter(u64),
    /// Fails every share read for this many milliseconds from its first one, then serves
    /// honestly: not a lie but a passing fault (a disk that hiccups, a link being re-made).
    FailReadsFor(u64),
    /// Keeps the first catalog head of a vault and serves it for ever.
    OldHeads,
    /// Shows another iroh endpoint key than the one its Noise key derives (what a peer
    /// replaced by an impostor that stole only the Noise key would show).
    OtherIrohKey,
}

/// Dies on the spot, as kill -9 would (no destructors, no flushing), when the environment
/// variable `SHARD_CRASH_AT` names `phase`: the crash tests stop the node at each phase of a
/// put, a removal, a repair and a snapshot, then check that nothing acknowledged is lost.
pub fn crash_point(phase: &str) {
    if std::env::var("SHARD_CRASH_AT").is_ok_and(|p| p == phase) {
        eprintln!("crash point {phase}: dying now");
        std::process::abort();
    }
}

/// Whether this node was told to tell `lie` (for the lies told outside the share store).
pub fn active(lie: Lie) -> bool {
    static LIES: std::sync::OnceLock<Vec<Lie>> = std::sync::OnceLock::new();
    LIES.get_or_init(|| {
        std::env::var(ENV)
            .ok()
            .and_then(|t| Lie::parse_list(&t).ok())
            .unwrap_or_default()
    })
    .contains(&lie)
}

impl Lie {
    /// Parses the `SHARD_ADVERSARY` list; unknown words are an error (a test typo must not
    /// silently start an honest node).
    pub fn parse_list(text: &str) -> Result<Vec<Lie>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(|word| match word {
                "wrong-bytes" => Ok(Lie::WrongBytes),
                "truncated" => Ok(Lie::Truncated),
                "other-share" => Ok(Lie::OtherShare),
                "stall" => Ok(Lie::Stall),
                "fake-capacity" => Ok(Lie::FakeCapacity),
                "old-heads" => Ok(Lie::OldHeads),
                "other-iroh-key" => Ok(Lie::OtherIrohKey),
                _ => {
                    let unknown = || format!("unknown {ENV} behaviour {word:?}");
                    if let Some(n) = word.strip_prefix("fill-after=") {
                        n.parse().map(Lie::FillAfter).map_err(|_| unknown())
                    } else if let Some(ms) = word.strip_prefix("fail-reads-for-ms=") {
                        ms.parse().map(Lie::FailReadsFor).map_err(|_| unknown())
                    } else {
                        Err(unknown())
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviours_parse_and_typos_are_refused() {
        assert_eq!(
            Lie::parse_list("wrong-bytes, fill-after=7"),
            Ok(vec![Lie::WrongBytes, Lie::FillAfter(7)])
        );
        assert_eq!(
            Lie::parse_list("fail-reads-for-ms=500"),
            Ok(vec![Lie::FailReadsFor(500)])
        );
        assert!(Lie::parse_list("fail-reads-for-ms=").is_err());
        assert!(Lie::parse_list("wrong-byte").is_err());
        assert!(Lie::parse_list("fill-after=x").is_err());
    }
}
