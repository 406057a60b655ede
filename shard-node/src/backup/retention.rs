//! Which snapshots a backup job keeps: restic's `forget` policy words (`last`, `hourly`,
//! `daily`, `weekly`, `monthly`, `yearly`), so people who know restic read them the same way.
//!
//! A snapshot is kept when any rule keeps it. `last=N` keeps the N newest. A calendar rule
//! with count N walks the snapshots newest first and keeps the newest one of each of N
//! different periods (days, ISO weeks, …) in the time zone given — the machine's own, so
//! "daily" means the owner's days, not UTC's.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// How many snapshots of each kind a job keeps. `None`: the rule is not used; `Some(u32::MAX)`
/// (written `all`): every period has one kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeepRules {
    /// The newest N.
    pub last: Option<u32>,
    /// The newest of each of N hours.
    pub hourly: Option<u32>,
    /// The newest of each of N days.
    pub daily: Option<u32>,
    /// The newest of each of N ISO weeks.
    pub weekly: Option<u32>,
    /// The newest of each of N months.
    pub monthly: Option<u32>,
    /// The newest of each of N years.
    pub yearly: Option<u32>,
}

/// Why a `--keep` text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadKeepRules {
    /// Not `WORD=COUNT`.
    #[error("{0:?} is not a keep rule (expected WORD=COUNT, e.g. daily=7)")]
    NotARule(String),
    /// A word restic's policy does not have.
    #[error("{0:?} is not a kind of keep rule (last, hourly, daily, weekly, monthly, yearly)")]
    UnknownWord(String),
    /// A count that is not a whole number or `all`.
    #[error("{word}={count:?}: the count is a whole number or `all`")]
    BadCount {
        /// The rule's word.
        word: String,
        /// What was given as its count.
        count: String,
    },
    /// A word given twice.
    #[error("{0} is given twice")]
    Twice(String),
    /// Nothing would be kept.
    #[error(
        "these rules keep no snapshot at all (every count is 0); give at least one, e.g. last=1"
    )]
    KeepsNothing,
}

/// The words, in the order they are printed.
const WORDS: [&str; 6] = ["last", "hourly", "daily", "weekly", "monthly", "yearly"];

impl KeepRules {
    /// Restic's usual policy for a daily job: the last 10, 7 days, 4 weeks, 12 months.
    pub fn standard() -> KeepRules {
        KeepRules {
            last: Some(10),
            hourly: None,
            daily: Some(7),
            weekly: Some(4),
            monthly: Some(12),
            yearly: None,
        }
    }

    fn slots(&self) -> [Option<u32>; 6] {
        [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ]
    }

    fn slot_mut(&mut self, word: &str) -> Option<&mut Option<u32>> {
        Some(match word {
            "last" => &mut self.last,
            "hourly" => &mut self.hourly,
            "daily" => &mut self.daily,
            "weekly" => &mut self.weekly,
            "monthly" => &mut self.monthly,
            "yearly" => &mut self.yearly,
            _ => return None,
        })
    }

    /// Which of `snapshots` (their times, in any order) are kept: one flag per snapshot, in
    /// the order given. Periods are cut in `zone`.
    pub fn apply(&self, snapshots: &[Timestamp], zone: &TimeZone) -> Vec<bool> {
        let mut order: Vec<usize> = (0..snapshots.len()).collect();
        // Newest first; equal times by position, the later given counts as newer.
        order.sort_by(|&a, &b| snapshots[b].cmp(&snapshots[a]).then(b.cmp(&a)));
        let mut kept = vec![false; snapshots.len()];
        let mut rules: Vec<(usize, u32, Option<i64>)> = self
            .slots()
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.map(|c| (i, c, None)))
            .collect();
        for (rank, &at) in order.iter().enumerate() {
            let when = snapshots[at].to_zoned(zone.clone());
            for (rule, left, last) in rules.iter_mut() {
                if *left == 0 {
                    continue;
                }
                let period = match *rule {
                    0 => i64::try_from(rank).unwrap_or(i64::MAX),
                    1 => hour_no(&when),
                    2 => day_no(&when),
                    3 => {
                        let week = when.date().iso_week_date();
                        i64::from(week.year()) * 100 + i64::from(week.week())
                    }
                    4 => i64::from(when.year()) * 100 + i64::from(when.month()),
                    _ => i64::from(when.year()),
                };
                if *last != Some(period) {
                    *last = Some(period);
                    kept[at] = true;
                    if *left != u32::MAX {
                        *left -= 1;
                    }
                }
            }
        }
        kept
    }
}

fn day_no(when: &jiff::Zoned) -> i64 {
    (i64::from(when.year()) * 100 + i64::from(when.month())) * 100 + i64::from(when.day())
}

fn hour_no(when: &jiff::Zoned) -> i64 {
    day_no(when) * 100 + i64::from(when.hour())
}

impl FromStr for KeepRules {
    type Err = BadKeepRules;

    fn from_str(text: &str) -> Result<KeepRules, BadKeepRules> {
        let mut rules = KeepRules::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (word, count) = part
                .split_once('=')
                .ok_or_else(|| BadKeepRules::NotARule(part.to_string()))?;
            let (word, count) = (word.trim(), count.trim());
            let slot = rules
                .slot_mut(word)
                .ok_or_else(|| BadKeepRules::UnknownWord(word.to_string()))?;
            if slot.is_some() {
                return Err(BadKeepRules::Twice(word.to_string()));
            }
            let n = if count == "all" {
                u32::MAX
            } else {
                count.parse::<u32>().map_err(|_| BadKeepRules::BadCount {
                    word: word.to_string(),
                    count: count.to_string(),
                })?
            };
            *slot = Some(n);
        }
        if rules.slots().iter().all(|c| c.unwrap_or(0) == 0) {
            return Err(BadKeepRules::KeepsNothing);
        }
        Ok(rules)
    }
}

impl fmt::Display for KeepRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (word, count) in WORDS.iter().zip(self.slots()) {
            let Some(count) = count else { continue };
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if count == u32::MAX {
                write!(f, "{word}=all")?;
            } else {
                write!(f, "{word}={count}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn kept_times(rules: &str, times: &[Timestamp]) -> Vec<String> {
        let rules: KeepRules = rules.parse().unwrap();
        let flags = rules.apply(times, &TimeZone::UTC);
        times
            .iter()
            .zip(flags)
            .filter(|(_, k)| *k)
            .map(|(t, _)| t.to_string())
            .collect()
    }

    #[test]
    fn rules_read_and_print_as_restic_writes_them() {
        let rules: KeepRules = "last=10, daily=7,weekly=4,monthly=12".parse().unwrap();
        assert_eq!(rules, KeepRules::standard());
        assert_eq!(rules.to_string(), "last=10,daily=7,weekly=4,monthly=12");
        assert_eq!(
            "yearly=all".parse::<KeepRules>().unwrap().to_string(),
            "yearly=all"
        );
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let cases = [
            (
                "daily",
                "\"daily\" is not a keep rule (expected WORD=COUNT, e.g. daily=7)",
            ),
            (
                "fortnightly=2",
                "\"fortnightly\" is not a kind of keep rule (last, hourly, daily, weekly, monthly, yearly)",
            ),
            (
                "daily=x",
                "daily=\"x\": the count is a whole number or `all`",
            ),
            (
                "daily=-1",
                "daily=\"-1\": the count is a whole number or `all`",
            ),
            ("daily=1,daily=2", "daily is given twice"),
            (
                "last=0,daily=0",
                "these rules keep no snapshot at all (every count is 0); give at least one, e.g. last=1",
            ),
            (
                "",
                "these rules keep no snapshot at all (every count is 0); give at least one, e.g. last=1",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                text.parse::<KeepRules>().unwrap_err().to_string(),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn last_keeps_the_newest_whatever_order_they_come_in() {
        let times = [
            at("2026-01-03T00:00:00Z"),
            at("2026-01-01T00:00:00Z"),
            at("2026-01-04T00:00:00Z"),
            at("2026-01-02T00:00:00Z"),
        ];
        assert_eq!(
            kept_times("last=2", &times),
            ["2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"]
        );
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        let times = [
            at("2026-03-01T08:00:00Z"),
            at("2026-03-01T20:00:00Z"),
            at("2026-03-02T08:00:00Z"),
            at("2026-03-02T20:00:00Z"),
            at("2026-03-04T09:00:00Z"),
        ];
        assert_eq!(
            kept_times("daily=2", &times),
            ["2026-03-02T20:00:00Z", "2026-03-04T09:00:00Z"]
        );
    }

    #[test]
    fn days_are_cut_in_the_zone_given() {
        // 23:30 UTC on the 1st is the 2nd in Tokyo: in Tokyo both runs fall on one day.
        let times = [at("2026-03-01T23:30:00Z"), at("2026-03-02T01:00:00Z")];
        let rules: KeepRules = "daily=5".parse().unwrap();
        assert_eq!(rules.apply(&times, &TimeZone::UTC), [true, true]);
        let tokyo = TimeZone::fixed(jiff::tz::offset(9));
        assert_eq!(rules.apply(&times, &tokyo), [false, true]);
    }

    #[test]
    fn weeks_are_iso_weeks_across_the_new_year() {
        // 2026-12-31 (Thu) and 2027-01-02 (Sat) are both in ISO week 53 of 2026.
        let times = [
            at("2026-12-28T12:00:00Z"),
            at("2027-01-02T12:00:00Z"),
            at("2027-01-04T12:00:00Z"),
        ];
        assert_eq!(
            kept_times("weekly=5", &times),
            ["2027-01-02T12:00:00Z", "2027-01-04T12:00:00Z"]
        );
    }

    /// A year of daily runs at 03:00 with the standard policy keeps exactly: the 10 newest,
    /// one a day for the 7 newest days, one a week for 4 ISO weeks and one a month for 12
    /// months — each the newest of its period — and nothing else.
    #[test]
    fn a_year_of_daily_runs_keeps_exactly_what_the_policy_names() {
        let start = at("2026-01-01T03:00:00Z");
        let times: Vec<Timestamp> = (0..365)
            .map(|d| start + jiff::SignedDuration::from_hours(24 * d))
            .collect();
        let kept = kept_times("last=10,daily=7,weekly=4,monthly=12", &times);
        let mut want: Vec<String> = Vec::new();
        // last=10 and daily=7: the newest 10 days (Dec 22 – Dec 31).
        for d in 22..=31 {
            want.push(format!("2026-12-{d:02}T03:00:00Z"));
        }
        // weekly=4: Sundays ending the ISO weeks newest first — Dec 31 (week 53, a Thu),
        // Dec 27, Dec 20, Dec 13: the last two are new.
        want.push("2026-12-13T03:00:00Z".into());
        want.push("2026-12-20T03:00:00Z".into());
        // monthly=12: the last day of each month; December's is Dec 31.
        for (m, last_day) in [
            (1, 31),
            (2, 28),
            (3, 31),
            (4, 30),
            (5, 31),
            (6, 30),
            (7, 31),
            (8, 31),
            (9, 30),
            (10, 31),
            (11, 30),
        ] {
            want.push(format!("2026-{m:02}-{last_day:02}T03:00:00Z"));
        }
        want.sort();
        assert_eq!(kept, want);
    }

    #[test]
    fn all_keeps_one_in_every_period() {
        let start = at("2020-06-01T00:00:00Z");
        let times: Vec<Timestamp> = (0..6)
            .map(|y| start + jiff::SignedDuration::from_hours(24 * 366 * y))
            .collect();
        assert_eq!(kept_times("yearly=all", &times).len(), 6);
    }
}
