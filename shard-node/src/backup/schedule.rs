//! How often a job runs, and when it is due.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A job's period: `30m`, `6h`, `1d`, … (at least a minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Every(Duration);

/// Why a period was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPeriod {
    /// Not a duration.
    #[error("{0:?} is not a period (write it like 30m, 6h or 1d)")]
    NotAPeriod(String),
    /// Under [`Every::MIN`].
    #[error(
        "{0:?} is shorter than a minute; a backup that often would never rest (use 1m or more)"
    )]
    TooShort(String),
}

impl Every {
    /// The shortest period a job may have.
    pub const MIN: Duration = Duration::from_secs(60);
    /// A day: the default.
    pub const DAY: Every = Every(Duration::from_secs(24 * 3600));
    /// Five minutes: the default of a watched job (`--watch`), whose period is the shortest
    /// gap between its runs (see [`super::watch`]).
    pub const WATCHED: Every = Every(Duration::from_secs(5 * 60));

    /// The period.
    pub fn duration(self) -> Duration {
        self.0
    }

    /// The period in whole seconds.
    pub fn secs(self) -> u64 {
        self.0.as_secs()
    }

    /// When a job that last started at `last` (seconds since the epoch; none: never) is due.
    /// A job that never ran is due at once.
    pub fn due(self, last: Option<i64>) -> i64 {
        match last {
            None => i64::MIN,
            Some(at) => at.saturating_add(i64::try_from(self.secs()).unwrap_or(i64::MAX)),
        }
    }

    /// Whether a job whose last success was at `ok` (none: never, counted from `since`) is
    /// overdue at `now`: nothing succeeded for twice its period.
    pub fn overdue(self, ok: Option<i64>, since: i64, now: i64) -> bool {
        let twice = i64::try_from(self.secs().saturating_mul(2)).unwrap_or(i64::MAX);
        now.saturating_sub(ok.unwrap_or(since)) > twice
    }
}

impl Default for Every {
    fn default() -> Self {
        Every::DAY
    }
}

impl FromStr for Every {
    type Err = BadPeriod;

    fn from_str(text: &str) -> Result<Every, BadPeriod> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|_| BadPeriod::NotAPeriod(text.to_string()))?;
        if d < Every::MIN {
            return Err(BadPeriod::TooShort(text.to_string()));
        }
        Ok(Every(Duration::from_secs(d.as_secs())))
    }
}

impl fmt::Display for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.secs();
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if secs.is_multiple_of(size) {
                return write!(f, "{}{unit}", secs / size);
            }
        }
        write!(f, "{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_as_people_write_them() {
        for (text, secs, shown) in [
            ("30m", 1800, "30m"),
            ("6h", 21_600, "6h"),
            ("1d", 86_400, "1d"),
            ("90m", 5400, "90m"),
            ("1h 30m", 5400, "90m"),
            ("2days", 172_800, "2d"),
            ("61s", 61, "61s"),
        ] {
            let every: Every = text.parse().unwrap();
            assert_eq!(every.secs(), secs, "{text}");
            assert_eq!(every.to_string(), shown, "{text}");
        }
        assert_eq!(Every::default().to_string(), "1d");
    }

    #[test]
    fn bad_periods_say_why() {
        assert_eq!(
            "0s".parse::<Every>().unwrap_err().to_string(),
            "\"0s\" is shorter than a minute; a backup that often would never rest (use 1m or more)"
        );
        assert_eq!(
            "abc".parse::<Every>().unwrap_err().to_string(),
            "\"abc\" is not a period (write it like 30m, 6h or 1d)"
        );
        assert!("-1h".parse::<Every>().is_err());
        assert!("".parse::<Every>().is_err());
    }

    #[test]
    fn a_job_is_due_a_period_after_it_last_started_and_overdue_after_two() {
        let every: Every = "1h".parse().unwrap();
        assert_eq!(every.due(None), i64::MIN);
        assert_eq!(every.due(Some(1000)), 4600);
        assert!(!every.overdue(Some(0), 0, 7200));
        assert!(every.overdue(Some(0), 0, 7201));
        // Never succeeded: counted from when the job was made.
        assert!(!every.overdue(None, 100, 7300));
        assert!(every.overdue(None, 100, 7301));
    }
}
