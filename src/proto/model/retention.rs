//! Retention: which snapshots a library keeps. Pure, so the client (`forget --dry-run`) and
//! the server (which applies policies on a schedule) decide alike from the same inputs: each
//! snapshot's time, whether it is the head, and whether it carries a kept tag.
//!
//! Rules, as restic and Kopia have them: keep the last N; keep everything within a duration
//! of the newest; keep the newest snapshot of each of the last N hours, days, weeks (ISO,
//! Monday first), months and years (UTC). A snapshot any rule keeps is kept, with every rule
//! that keeps it named. The head is always kept.

use serde::{Deserialize, Serialize};

/// How many of each kind to keep. Defaults are Kopia's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub keep_last: u32,
    /// Seconds before the newest snapshot within which everything is kept (0: none).
    #[serde(default)]
    pub keep_within_secs: u64,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    /// Snapshots carrying one of these tags are kept. Tags travel as keyed hashes
    /// (`tag_mac`), so the server matches them without learning the tag.
    #[serde(default)]
    pub keep_tags: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            keep_last: 10,
            keep_within_secs: 0,
            keep_hourly: 48,
            keep_daily: 14,
            keep_weekly: 8,
            keep_monthly: 24,
            keep_yearly: 5,
            keep_tags: Vec::new(),
        }
    }
}

/// One snapshot as retention sees it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub time_ns: i64,
    pub head: bool,
    /// Carries a tag the policy keeps.
    pub kept_tag: bool,
}

/// Why a snapshot is kept: each rule that keeps it (empty: it is dropped).
pub type Reasons = Vec<String>;

/// Decides for every candidate (in any order) the rules that keep it.
pub fn decide(policy: &Policy, candidates: &[Candidate]) -> Vec<Reasons> {
    let mut reasons: Vec<Reasons> = vec![Vec::new(); candidates.len()];
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    // Newest first; ties in a stable order.
    order.sort_by(|a, b| {
        candidates[*b]
            .time_ns
            .cmp(&candidates[*a].time_ns)
            .then(a.cmp(b))
    });
    let Some(&newest) = order.first() else {
        return reasons;
    };
    for (i, candidate) in candidates.iter().enumerate() {
        if candidate.head {
            reasons[i].push("head".into());
        }
        if candidate.kept_tag {
            reasons[i].push("tag".into());
        }
    }
    for &i in order.iter().take(policy.keep_last as usize) {
        reasons[i].push("last".into());
    }
    if policy.keep_within_secs > 0 {
        let since = candidates[newest].time_ns - (policy.keep_within_secs as i64) * 1_000_000_000;
        for &i in &order {
            if candidates[i].time_ns >= since {
                reasons[i].push("within".into());
            }
        }
    }
    let buckets: [(&str, u32, Bucket); 5] = [
        ("hourly", policy.keep_hourly, hour),
        ("daily", policy.keep_daily, day),
        ("weekly", policy.keep_weekly, week),
        ("monthly", policy.keep_monthly, month),
        ("yearly", policy.keep_yearly, year),
    ];
    for (rule, count, bucket) in buckets {
        let mut seen: Vec<i64> = Vec::new();
        for &i in &order {
            if seen.len() >= count as usize {
                break;
            }
            let key = bucket(candidates[i].time_ns);
            if !seen.contains(&key) {
                seen.push(key);
                reasons[i].push(rule.into());
            }
        }
    }
    reasons
}

/// A calendar period's number: snapshots with the same number share the period.
type Bucket = fn(i64) -> i64;

fn secs(time_ns: i64) -> i64 {
    time_ns.div_euclid(1_000_000_000)
}

fn hour(time_ns: i64) -> i64 {
    secs(time_ns).div_euclid(3600)
}

fn day(time_ns: i64) -> i64 {
    secs(time_ns).div_euclid(86_400)
}

/// ISO weeks start on Monday; 1970-01-01 was a Thursday.
fn week(time_ns: i64) -> i64 {
    (day(time_ns) + 3).div_euclid(7)
}

/// (year, month) of a day since the epoch, by the civil-from-days algorithm.
fn civil(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

fn month(time_ns: i64) -> i64 {
    let (year, month) = civil(day(time_ns));
    year * 12 + month
}

fn year(time_ns: i64) -> i64 {
    civil(day(time_ns)).0
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000_000;

    fn at(hours: i64) -> Candidate {
        Candidate {
            // 2026-01-05 00:00 UTC (a Monday) plus `hours`.
            time_ns: 1_767_571_200_000_000_000 + hours * HOUR,
            head: false,
            kept_tag: false,
        }
    }

    fn none() -> Policy {
        Policy {
            keep_last: 0,
            keep_within_secs: 0,
            keep_hourly: 0,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            keep_yearly: 0,
            keep_tags: Vec::new(),
        }
    }

    #[test]
    fn calendar_buckets_are_utc_and_iso() {
        assert_eq!(civil(0), (1970, 1));
        assert_eq!(civil(19_723), (2024, 1)); // 2024-01-01
        assert_eq!(civil(19_782), (2024, 2)); // 2024-02-29 (leap day)
        assert_eq!(civil(19_783), (2024, 3));
        let monday = at(0).time_ns;
        assert_eq!(week(monday), week(monday + 6 * 24 * HOUR));
        assert_ne!(
            week(monday),
            week(monday - HOUR),
            "Sunday belongs to the week before"
        );
    }

    #[test]
    fn each_rule_keeps_the_newest_of_its_buckets_and_says_so() {
        // Three snapshots an hour for two days.
        let candidates: Vec<Candidate> = (0..48 * 3)
            .map(|i| at(0).time_ns + i * HOUR / 3)
            .map(|time_ns| Candidate {
                time_ns,
                head: false,
                kept_tag: false,
            })
            .collect();
        let policy = Policy {
            keep_last: 2,
            keep_hourly: 5,
            keep_daily: 3,
            ..none()
        };
        let reasons = decide(&policy, &candidates);
        let kept: Vec<usize> = (0..candidates.len())
            .filter(|&i| !reasons[i].is_empty())
            .collect();
        let newest = candidates.len() - 1;
        assert_eq!(reasons[newest], vec!["last", "hourly", "daily"]);
        assert_eq!(reasons[newest - 1], vec!["last"]);
        // Hourly: the newest of each of the last 5 hours (the last one of each hour).
        let hourly: Vec<usize> = (0..candidates.len())
            .filter(|&i| reasons[i].iter().any(|r| r == "hourly"))
            .collect();
        assert_eq!(
            hourly,
            vec![newest - 12, newest - 9, newest - 6, newest - 3, newest]
        );
        // Daily: two days exist, so two are kept, the newest of each.
        let daily: Vec<usize> = (0..candidates.len())
            .filter(|&i| reasons[i].iter().any(|r| r == "daily"))
            .collect();
        assert_eq!(daily, vec![71, newest]);
        assert_eq!(kept.len(), 7);
    }

    #[test]
    fn head_tags_and_within_are_always_kept() {
        let mut candidates = vec![at(0), at(10), at(20), at(30)];
        candidates[0].head = true;
        candidates[1].kept_tag = true;
        let policy = Policy {
            keep_within_secs: 11 * 3600,
            ..none()
        };
        let reasons = decide(&policy, &candidates);
        assert_eq!(reasons[0], vec!["head"]);
        assert_eq!(reasons[1], vec!["tag"]);
        assert!(reasons[2].contains(&"within".to_owned()));
        assert!(reasons[3].contains(&"within".to_owned()));
        assert!(decide(&none(), &[at(1)])[0].is_empty());
        assert!(decide(&Policy::default(), &[]).is_empty());
    }
}
