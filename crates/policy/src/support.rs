//! Release and end-of-life dates of each Kubernetes minor, and support status on a date.
//!
//! Source: the release history at <https://kubernetes.io/releases/> and
//! <https://kubernetes.io/releases/patch-releases/>, as collected by endoflife.date
//! (<https://endoflife.date/kubernetes>, data file `products/kubernetes.md` of
//! <https://github.com/endoflife-date/endoflife.date>, read at its commit of
//! 2026-08-22). `end_of_life` is the end of maintenance support (the last date patch
//! releases are made for the minor); for minors still maintained at that date it is the
//! date the patch-releases page announces. 1.19 and later get about 14 months (12 of
//! support and 2 of upgrade period), 1.18 and earlier got about 9 months.

use jiff::civil::{Date, date};
use serde::Serialize;

use crate::version::Minor;

/// One minor's dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Release {
    /// The minor.
    pub minor: Minor,
    /// The day its `.0` release was published.
    pub released: Date,
    /// The last day of maintenance support: after it, no patch releases.
    pub end_of_life: Date,
    /// `true` when the dates are an estimate on the documented cadence (a release every
    /// 15 weeks or so, KEP-2572) rather than published dates.
    pub estimated: bool,
}

const fn row(minor: u32, released: Date, end_of_life: Date) -> Release {
    Release {
        minor: Minor::new(minor),
        released,
        end_of_life,
        estimated: false,
    }
}

/// Every minor this crate knows, oldest first.
///
/// No row is estimated: the source publishes dates through 1.36 (the end of life of
/// 1.35 and 1.36 lies after the source was read and is the announced date). Rows for
/// minors released after the source would be estimated and marked `estimated: true`.
///
/// Known oddities of the source, kept as published: the end of life of 1.16
/// (2020-08-04) and 1.17 (2020-12-25) lie before their last patch releases (1.16.15 on
/// 2020-09-02, 1.17.17 on 2021-01-13); the release date of 1.17 is 2019-12-07, the day
/// of the v1.17.0 tag, while the announcement is dated 2019-12-09.
pub const RELEASES: &[Release] = &[
    row(16, date(2019, 9, 18), date(2020, 8, 4)),
    row(17, date(2019, 12, 7), date(2020, 12, 25)),
    row(18, date(2020, 3, 25), date(2021, 6, 18)),
    row(19, date(2020, 8, 26), date(2021, 10, 28)),
    row(20, date(2020, 12, 8), date(2022, 2, 28)),
    row(21, date(2021, 4, 8), date(2022, 6, 28)),
    row(22, date(2021, 8, 4), date(2022, 10, 28)),
    row(23, date(2021, 12, 7), date(2023, 2, 28)),
    row(24, date(2022, 5, 3), date(2023, 7, 28)),
    row(25, date(2022, 8, 23), date(2023, 10, 27)),
    row(26, date(2022, 12, 8), date(2024, 2, 28)),
    row(27, date(2023, 4, 11), date(2024, 6, 28)),
    row(28, date(2023, 8, 15), date(2024, 10, 28)),
    row(29, date(2023, 12, 13), date(2025, 2, 28)),
    row(30, date(2024, 4, 17), date(2025, 7, 15)),
    row(31, date(2024, 8, 13), date(2025, 11, 11)),
    row(32, date(2024, 12, 11), date(2026, 2, 28)),
    row(33, date(2025, 4, 23), date(2026, 6, 28)),
    row(34, date(2025, 8, 27), date(2026, 10, 27)),
    row(35, date(2025, 12, 17), date(2027, 2, 28)),
    row(36, date(2026, 4, 22), date(2027, 6, 28)),
];

/// The oldest minor in [`RELEASES`].
pub const OLDEST_KNOWN: Minor = Minor::new(16);

/// The newest minor in [`RELEASES`]: versions past it are unknown to this crate.
pub const NEWEST_KNOWN: Minor = Minor::new(36);

/// The row of `minor`, if the table has one.
pub fn release(minor: Minor) -> Option<&'static Release> {
    RELEASES.iter().find(|r| r.minor == minor)
}

/// Whether `minor` is in the tables of this crate.
pub fn is_known(minor: Minor) -> bool {
    (OLDEST_KNOWN..=NEWEST_KNOWN).contains(&minor)
}

/// The support status of a minor on a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum Support {
    /// Released and within maintenance support (the end-of-life day included).
    Supported {
        /// Days from the date to the end of life (0 on the last day).
        days_left: i64,
        /// Whether the row is an estimate.
        estimated: bool,
    },
    /// Past its end of life.
    PastEndOfLife {
        /// Days since the end of life (1 on the day after).
        days: i64,
        /// Whether the row is an estimate.
        estimated: bool,
    },
    /// Not released on that date.
    NotYetReleased {
        /// Days until the release.
        days: i64,
        /// Whether the row is an estimate.
        estimated: bool,
    },
    /// Not in the table.
    Unknown,
}

/// Whole days from `from` to `to` (negative when `to` is earlier).
fn days_between(from: Date, to: Date) -> i64 {
    to.duration_since(from).as_secs() / 86_400
}

/// The support status of `minor` on the day `on`.
pub fn status(minor: Minor, on: Date) -> Support {
    let Some(r) = release(minor) else {
        return Support::Unknown;
    };
    let estimated = r.estimated;
    if on < r.released {
        Support::NotYetReleased {
            days: days_between(on, r.released),
            estimated,
        }
    } else if on <= r.end_of_life {
        Support::Supported {
            days_left: days_between(on, r.end_of_life),
            estimated,
        }
    } else {
        Support::PastEndOfLife {
            days: days_between(r.end_of_life, on),
            estimated,
        }
    }
}

/// The newest minor released on or before `on`, or `None` before 1.16's release.
pub fn newest_released(on: Date) -> Option<Minor> {
    RELEASES
        .iter()
        .filter(|r| r.released <= on)
        .map(|r| r.minor)
        .max()
}

/// The minors supported on `on`, oldest first.
pub fn supported_on(on: Date) -> impl Iterator<Item = Minor> {
    RELEASES
        .iter()
        .filter(move |r| r.released <= on && on <= r.end_of_life)
        .map(|r| r.minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_ordered() {
        assert_eq!(RELEASES.len(), 21);
        for (i, r) in RELEASES.iter().enumerate() {
            assert_eq!(r.minor, Minor::new(16 + i as u32));
            assert!(r.released < r.end_of_life, "{}", r.minor);
        }
        for pair in RELEASES.windows(2) {
            assert!(pair[0].released < pair[1].released);
            assert!(pair[0].end_of_life < pair[1].end_of_life);
        }
        assert_eq!(RELEASES[0].minor, OLDEST_KNOWN);
        assert_eq!(RELEASES[RELEASES.len() - 1].minor, NEWEST_KNOWN);
        // 1.19 and later: about 14 months of support.
        for r in RELEASES.iter().filter(|r| r.minor >= Minor::new(19)) {
            let days = days_between(r.released, r.end_of_life);
            assert!((400..=500).contains(&days), "{}: {days} days", r.minor);
        }
    }

    #[test]
    fn support_windows() {
        let m20 = Minor::new(20);
        let cases = [
            (
                date(2020, 12, 7),
                Support::NotYetReleased {
                    days: 1,
                    estimated: false,
                },
            ),
            (
                date(2020, 12, 8),
                Support::Supported {
                    days_left: 447,
                    estimated: false,
                },
            ),
            (
                date(2022, 2, 28),
                Support::Supported {
                    days_left: 0,
                    estimated: false,
                },
            ),
            (
                date(2022, 3, 1),
                Support::PastEndOfLife {
                    days: 1,
                    estimated: false,
                },
            ),
            (
                date(2026, 12, 1),
                Support::PastEndOfLife {
                    days: 1737,
                    estimated: false,
                },
            ),
        ];
        for (on, want) in cases {
            assert_eq!(status(m20, on), want, "{on}");
        }
        assert_eq!(status(Minor::new(15), date(2020, 1, 1)), Support::Unknown);
        assert_eq!(status(Minor::new(37), date(2026, 12, 1)), Support::Unknown);
        assert!(matches!(
            status(Minor::new(34), date(2026, 10, 27)),
            Support::Supported { days_left: 0, .. }
        ));
        assert!(matches!(
            status(Minor::new(34), date(2026, 10, 28)),
            Support::PastEndOfLife { days: 1, .. }
        ));
    }

    #[test]
    fn newest_released_on_a_date() {
        assert_eq!(newest_released(date(2019, 9, 17)), None);
        assert_eq!(newest_released(date(2019, 9, 18)), Some(Minor::new(16)));
        assert_eq!(newest_released(date(2021, 8, 3)), Some(Minor::new(21)));
        assert_eq!(newest_released(date(2021, 8, 4)), Some(Minor::new(22)));
        assert_eq!(newest_released(date(2026, 12, 1)), Some(Minor::new(36)));
    }

    #[test]
    fn supported_minors_on_a_date() {
        let on = date(2026, 12, 1);
        let minors: Vec<Minor> = supported_on(on).collect();
        assert_eq!(minors, [Minor::new(35), Minor::new(36)]);
        let minors: Vec<Minor> = supported_on(date(2023, 9, 1)).collect();
        assert_eq!(
            minors,
            [25, 26, 27, 28].map(Minor::new),
            "three maintained branches plus the one in its upgrade period"
        );
    }

    #[test]
    fn serialises_status() {
        let s = serde_json::to_string(&status(Minor::new(20), date(2022, 3, 1))).unwrap();
        assert_eq!(
            s,
            r#"{"status":"past-end-of-life","days":1,"estimated":false}"#
        );
    }
}
