//! Retention rules: which bundles `prune` keeps. Pure logic.
//!
//! Like restic's and borg's policies: `keep_last` keeps the N newest; `keep_daily` keeps
//! the newest bundle of each of the D most recent days that have one (UTC);
//! `keep_weekly` the newest of each of the W most recent ISO weeks that have one. A
//! bundle is kept when any rule keeps it. The newest verified bundle is always kept,
//! whatever the rules say.

use serde::Serialize;

/// The rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rules {
    /// Keep the N newest.
    pub keep_last: usize,
    /// Keep the newest of each of the D most recent days.
    pub keep_daily: usize,
    /// Keep the newest of each of the W most recent ISO weeks.
    pub keep_weekly: usize,
}

/// One bundle as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its name.
    pub name: String,
    /// When it was made.
    pub created: jiff::Timestamp,
    /// Whether its content is known to be good.
    pub verified: bool,
}

/// Why a bundle is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Among the N newest.
    Last,
    /// The newest of its day.
    Daily,
    /// The newest of its week.
    Weekly,
    /// The newest verified bundle.
    NewestVerified,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::Last => "last",
            Reason::Daily => "daily",
            Reason::Weekly => "weekly",
            Reason::NewestVerified => "newest verified",
        })
    }
}

/// The decision for one bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// The bundle.
    pub name: String,
    /// Empty when it is to be deleted.
    pub keep: Vec<Reason>,
}

/// Applies the rules; the result is sorted newest first.
pub fn plan(items: &[Item], rules: Rules) -> Vec<Decision> {
    let mut sorted: Vec<&Item> = items.iter().collect();
    sorted.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    let mut out: Vec<Decision> = sorted
        .iter()
        .map(|i| Decision {
            name: i.name.clone(),
            keep: Vec::new(),
        })
        .collect();
    for d in out.iter_mut().take(rules.keep_last) {
        d.keep.push(Reason::Last);
    }
    let day = |t: jiff::Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC).date();
    let week = |t: jiff::Timestamp| {
        let w = day(t).iso_week_date();
        (w.year(), w.week())
    };
    bucket(&sorted, &mut out, rules.keep_daily, Reason::Daily, day);
    bucket(&sorted, &mut out, rules.keep_weekly, Reason::Weekly, week);
    if let Some(i) = sorted.iter().position(|i| i.verified) {
        out[i].keep.push(Reason::NewestVerified);
    }
    for d in &mut out {
        d.keep.sort();
    }
    out
}

fn bucket<K: PartialEq>(
    sorted: &[&Item],
    out: &mut [Decision],
    count: usize,
    reason: Reason,
    key: impl Fn(jiff::Timestamp) -> K,
) {
    let mut last: Option<K> = None;
    let mut taken = 0;
    for (i, item) in sorted.iter().enumerate() {
        if taken >= count {
            break;
        }
        let k = key(item.created);
        if last.as_ref() != Some(&k) {
            out[i].keep.push(reason);
            taken += 1;
            last = Some(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(name: &str, at: &str, verified: bool) -> Item {
        Item {
            name: name.into(),
            created: at.parse().unwrap(),
            verified,
        }
    }

    fn kept(d: &[Decision]) -> Vec<&str> {
        d.iter()
            .filter(|d| !d.keep.is_empty())
            .map(|d| d.name.as_str())
            .collect()
    }

    #[test]
    fn last_daily_weekly() {
        let items = vec![
            item("a", "2026-11-20T23:00:00Z", true),
            item("b", "2026-11-20T10:00:00Z", true),
            item("c", "2026-11-19T10:00:00Z", true),
            item("d", "2026-11-18T10:00:00Z", true),
            item("e", "2026-11-11T10:00:00Z", true), // previous ISO week
            item("f", "2026-11-03T10:00:00Z", true), // the week before
        ];
        let p = plan(
            &items,
            Rules {
                keep_last: 1,
                keep_daily: 2,
                keep_weekly: 2,
            },
        );
        // a: last + daily + weekly; c: daily; e: weekly (2nd week); the rest go.
        assert_eq!(kept(&p), ["a", "c", "e"]);
        assert_eq!(
            p[0].keep,
            [
                Reason::Last,
                Reason::Daily,
                Reason::Weekly,
                Reason::NewestVerified
            ]
        );
    }

    #[test]
    fn the_newest_verified_is_never_deleted() {
        let items = vec![
            item("new-unverified", "2026-11-20T10:00:00Z", false),
            item("old-verified", "2026-11-01T10:00:00Z", true),
        ];
        let p = plan(
            &items,
            Rules {
                keep_last: 1,
                ..Rules::default()
            },
        );
        assert_eq!(kept(&p), ["new-unverified", "old-verified"]);
        assert_eq!(p[1].keep, [Reason::NewestVerified]);
    }

    proptest! {
        #[test]
        fn invariants(
            times in proptest::collection::vec((0i64..100_000_000, any::<bool>()), 0..40),
            last in 0usize..5, daily in 0usize..5, weekly in 0usize..5,
        ) {
            let items: Vec<Item> = times.iter().enumerate().map(|(i, (s, v))| Item {
                name: format!("b{i}"),
                created: jiff::Timestamp::from_second(1_700_000_000 + s).unwrap(),
                verified: *v,
            }).collect();
            let p = plan(&items, Rules { keep_last: last, keep_daily: daily, keep_weekly: weekly });
            prop_assert_eq!(p.len(), items.len());
            let kept = p.iter().filter(|d| !d.keep.is_empty()).count();
            // Never more than the rules allow, plus the protected one.
            prop_assert!(kept <= last + daily + weekly + 1);
            prop_assert!(kept >= last.min(items.len()));
            // The newest verified bundle is kept.
            let newest_verified = items.iter().filter(|i| i.verified)
                .max_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
            if let Some(nv) = newest_verified {
                let d = p.iter().find(|d| d.name == nv.name).unwrap();
                prop_assert!(!d.keep.is_empty());
            }
        }
    }
}
