//! Retention rules: which bundles `prune` keeps. Pure logic.
//!
//! Like restic's and borg's policies: `keep_last` keeps the N newest; `keep_hourly` keeps
//! the newest bundle of each of the H most recent hours that have one, `keep_daily` of
//! each of the D most recent days, `keep_weekly` of each of the W most recent ISO weeks
//! and `keep_monthly` of each of the M most recent months (all in UTC). A bundle is kept
//! when any rule keeps it. The newest verified bundle is always kept, whatever the rules
//! say.

use serde::Serialize;

/// The rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rules {
    /// Keep the N newest.
    pub keep_last: usize,
    /// Keep the newest of each of the H most recent hours.
    pub keep_hourly: usize,
    /// Keep the newest of each of the D most recent days.
    pub keep_daily: usize,
    /// Keep the newest of each of the W most recent ISO weeks.
    pub keep_weekly: usize,
    /// Keep the newest of each of the M most recent months.
    pub keep_monthly: usize,
}

impl Rules {
    /// Whether no rule keeps anything (then every bundle but the newest verified would
    /// go, which `prune` refuses).
    pub fn is_empty(&self) -> bool {
        self.keep_last + self.keep_hourly + self.keep_daily + self.keep_weekly + self.keep_monthly
            == 0
    }
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
    /// The newest of its hour.
    Hourly,
    /// The newest of its day.
    Daily,
    /// The newest of its week.
    Weekly,
    /// The newest of its month.
    Monthly,
    /// The newest verified bundle.
    NewestVerified,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::Last => "last",
            Reason::Hourly => "hourly",
            Reason::Daily => "daily",
            Reason::Weekly => "weekly",
            Reason::Monthly => "monthly",
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
    let tiers = [
        (rules.keep_hourly, Reason::Hourly),
        (rules.keep_daily, Reason::Daily),
        (rules.keep_weekly, Reason::Weekly),
        (rules.keep_monthly, Reason::Monthly),
    ];
    for (count, reason) in tiers {
        bucket(&sorted, &mut out, count, reason);
    }
    if let Some(i) = sorted.iter().position(|i| i.verified) {
        out[i].keep.push(Reason::NewestVerified);
    }
    for d in &mut out {
        d.keep.sort();
    }
    out
}

/// The calendar period a tier's reason counts in, as a comparable key: (year, hour of
/// the year) for hours, and so on; ISO weeks carry their ISO year.
fn period(reason: Reason, t: jiff::Timestamp) -> (i16, i32) {
    let at = t.to_zoned(jiff::tz::TimeZone::UTC);
    let date = at.date();
    match reason {
        Reason::Hourly => (
            date.year(),
            i32::from(date.day_of_year()) * 24 + i32::from(at.hour()),
        ),
        Reason::Weekly => {
            let w = date.iso_week_date();
            (w.year(), i32::from(w.week()))
        }
        Reason::Monthly => (date.year(), i32::from(date.month())),
        Reason::Last | Reason::Daily | Reason::NewestVerified => {
            (date.year(), i32::from(date.day_of_year()))
        }
    }
}

/// Marks the newest item of each of the `count` most recent periods that have one.
fn bucket(sorted: &[&Item], out: &mut [Decision], count: usize, reason: Reason) {
    let mut last = None;
    let mut taken = 0;
    for (i, item) in sorted.iter().enumerate() {
        if taken >= count {
            break;
        }
        let k = period(reason, item.created);
        if last != Some(k) {
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
                ..Rules::default()
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
    fn hourly_and_monthly() {
        let items = vec![
            item("h1", "2026-11-20T10:50:00Z", false),
            item("h1-older", "2026-11-20T10:05:00Z", false),
            item("h2", "2026-11-20T09:30:00Z", false),
            item("h3", "2026-11-20T07:59:59Z", false),
            item("oct", "2026-10-31T23:59:00Z", false),
            item("oct-older", "2026-10-02T00:00:00Z", false),
            item("sep", "2026-09-15T12:00:00Z", false),
            item("aug", "2026-08-15T12:00:00Z", false),
        ];
        let p = plan(
            &items,
            Rules {
                keep_hourly: 2,
                keep_monthly: 3,
                ..Rules::default()
            },
        );
        // Hours 10 and 9 (the 2 most recent with a bundle); months 11, 10 and 9.
        assert_eq!(kept(&p), ["h1", "h2", "oct", "sep"]);
        assert_eq!(p[0].keep, [Reason::Hourly, Reason::Monthly]);
        // An hour is the same hour of another day only on that day.
        let days = vec![
            item("today-10h", "2026-11-20T10:00:00Z", false),
            item("yesterday-10h", "2026-11-19T10:00:00Z", false),
        ];
        let p = plan(
            &days,
            Rules {
                keep_hourly: 2,
                ..Rules::default()
            },
        );
        assert_eq!(kept(&p), ["today-10h", "yesterday-10h"]);
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

    /// The calendar of a period, computed differently from `period`: by formatting.
    fn label(reason: Reason, t: jiff::Timestamp) -> String {
        let at = t.to_zoned(jiff::tz::TimeZone::UTC);
        match reason {
            Reason::Hourly => at.strftime("%Y-%m-%d %H").to_string(),
            Reason::Daily => at.strftime("%Y-%m-%d").to_string(),
            Reason::Weekly => at.strftime("%G-W%V").to_string(),
            Reason::Monthly => at.strftime("%Y-%m").to_string(),
            Reason::Last | Reason::NewestVerified => unreachable!(),
        }
    }

    fn items_from(times: &[(i64, bool)]) -> Vec<Item> {
        times
            .iter()
            .enumerate()
            .map(|(i, (s, v))| Item {
                name: format!("b{i}"),
                created: jiff::Timestamp::from_second(1_700_000_000 + s).unwrap(),
                verified: *v,
            })
            .collect()
    }

    fn arb_rules() -> impl Strategy<Value = Rules> {
        (0usize..5, 0usize..5, 0usize..5, 0usize..5, 0usize..5).prop_map(|(l, h, d, w, m)| Rules {
            keep_last: l,
            keep_hourly: h,
            keep_daily: d,
            keep_weekly: w,
            keep_monthly: m,
        })
    }

    proptest! {
        // Up to 40 bundles over about 3 years, with many in the same hour or day.
        #[test]
        fn invariants(
            times in proptest::collection::vec((0i64..100_000_000, any::<bool>()), 0..40),
            rules in arb_rules(),
        ) {
            let items = items_from(&times);
            let p = plan(&items, rules);
            prop_assert_eq!(p.len(), items.len());
            // Newest first.
            let created = |name: &str| items.iter().find(|i| i.name == name).unwrap().created;
            prop_assert!(p.windows(2).all(|w| created(&w[0].name) >= created(&w[1].name)));
            let kept = p.iter().filter(|d| !d.keep.is_empty()).count();
            // Never more than the rules allow, plus the protected one.
            let allowed = rules.keep_last + rules.keep_hourly + rules.keep_daily
                + rules.keep_weekly + rules.keep_monthly + 1;
            prop_assert!(kept <= allowed);
            prop_assert!(kept >= rules.keep_last.min(items.len()));
            // The newest verified bundle is kept.
            let newest_verified = items.iter().filter(|i| i.verified)
                .max_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
            if let Some(nv) = newest_verified {
                let d = p.iter().find(|d| d.name == nv.name).unwrap();
                prop_assert!(d.keep.contains(&Reason::NewestVerified));
            }
            // Each tier keeps exactly the newest bundle of each of its N most recent
            // periods that have one (checked against a by-label grouping).
            let tiers = [
                (rules.keep_hourly, Reason::Hourly),
                (rules.keep_daily, Reason::Daily),
                (rules.keep_weekly, Reason::Weekly),
                (rules.keep_monthly, Reason::Monthly),
            ];
            for (count, reason) in tiers {
                let mut labels: Vec<String> = Vec::new();
                let mut expected: Vec<&str> = Vec::new();
                for d in &p {
                    let l = label(reason, created(&d.name));
                    if !labels.contains(&l) {
                        labels.push(l);
                        if labels.len() <= count {
                            expected.push(&d.name);
                        }
                    }
                }
                let got: Vec<&str> = p.iter()
                    .filter(|d| d.keep.contains(&reason))
                    .map(|d| d.name.as_str())
                    .collect();
                prop_assert_eq!(got, expected, "{}", reason);
            }
        }

        // More of any tier never deletes a bundle that fewer kept.
        #[test]
        fn raising_a_rule_keeps_a_superset(
            times in proptest::collection::vec((0i64..100_000_000, any::<bool>()), 0..40),
            rules in arb_rules(),
            which in 0usize..5,
        ) {
            let items = items_from(&times);
            let mut more = rules;
            match which {
                0 => more.keep_last += 1,
                1 => more.keep_hourly += 1,
                2 => more.keep_daily += 1,
                3 => more.keep_weekly += 1,
                _ => more.keep_monthly += 1,
            }
            let before = plan(&items, rules);
            let after = plan(&items, more);
            for (b, a) in before.iter().zip(&after) {
                prop_assert_eq!(&b.name, &a.name);
                prop_assert!(b.keep.is_empty() || !a.keep.is_empty(), "{} lost", b.name);
            }
        }
    }
}
