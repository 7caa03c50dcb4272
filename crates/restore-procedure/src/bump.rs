//! How far a restore moves etcd's revision forward, and why that far. Pure.
//!
//! A restore puts etcd back at the snapshot's revision, older than what every client
//! of the live cluster has seen. Restored with a bump of `N` and the skipped revisions
//! marked compacted, the store starts at `snapshot + N`, and a watch resumed from any
//! resourceVersion below that gets "compacted" (410 Gone) and relists. So `N` must be
//! more than the revisions written since the snapshot: [`decide`] takes the live
//! cluster's revision when it could be read before the restore (plus
//! [`LIVE_MARGIN`] for what is written until the apiservers stop), else the
//! documented [`DEFAULT_BUMP`].

use serde::{Deserialize, Serialize};

use crate::procedure::ProcedureError;

/// The revision bump when the live revision cannot be read (etcd down, its
/// certificates unreadable): more than any cluster writes between a snapshot and its
/// restore, as etcd's recovery guide for Kubernetes uses it (`etcdutl snapshot restore
/// --bump-revision 1000000000 --mark-compacted`).
pub const DEFAULT_BUMP: u64 = 1_000_000_000;

/// Added to the revisions written since the snapshot when the live revision was read:
/// what the cluster may still write between that reading and the moment the
/// apiservers stop (a busy cluster's thousand writes a second for a quarter of an
/// hour, longer than planning every node of a restore takes).
pub const LIVE_MARGIN: u64 = 1_000_000;

/// What a saved plan's bump must still leave above the live revision when it is
/// applied (the writes of the seconds until the apiservers stop).
pub const APPLY_HEADROOM: u64 = 10_000;

/// The live cluster's etcd revision, read before anything is stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum LiveRevision {
    /// Read from an etcd member.
    Read {
        /// The store's revision.
        revision: i64,
        /// The member's client URL that said so (the highest of those that answered).
        endpoint: String,
    },
    /// Not read.
    Unread {
        /// Why.
        reason: String,
    },
}

/// What is asked of the revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum BumpAsk {
    /// No bump: restore at the snapshot's own revision.
    Off,
    /// Bump past every revision a client can have seen.
    Past {
        /// The live revision (or why there is none).
        live: LiveRevision,
    },
}

/// Where the size of a bump came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum BumpBasis {
    /// Not bumped (asked so).
    Off,
    /// The live revision: the revisions written since the snapshot plus [`LIVE_MARGIN`].
    Live {
        /// The live revision.
        live_revision: i64,
        /// Where it was read.
        endpoint: String,
        /// Live revision minus the snapshot's (0 when the live one is not newer).
        written_since_snapshot: u64,
        /// The margin added.
        margin: u64,
    },
    /// [`DEFAULT_BUMP`], the live revision being unknown.
    Default {
        /// Why the live revision is unknown.
        reason: String,
    },
}

/// The revision bump of a restore, decided once and the same on every member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionBump {
    /// The snapshot's latest revision.
    pub snapshot_revision: i64,
    /// Revisions added to it (0: none).
    pub bump: u64,
    /// The revision etcd starts from: `snapshot_revision + bump`, marked compacted when
    /// `bump > 0`.
    pub bumped_revision: i64,
    /// Where `bump` came from.
    pub basis: BumpBasis,
}

impl RevisionBump {
    /// One line for people: the revisions and where the figure came from.
    pub fn describe(&self) -> String {
        let head = format!(
            "revision {} -> {}",
            self.snapshot_revision, self.bumped_revision
        );
        match &self.basis {
            BumpBasis::Off => format!(
                "{head}: not bumped; watchers that resume from a resourceVersion taken after the snapshot are not told to relist and miss what the restore undid"
            ),
            BumpBasis::Live {
                live_revision,
                endpoint,
                written_since_snapshot,
                margin,
            } => format!(
                "{head}: bump {} = {written_since_snapshot} revisions written since the snapshot (live revision {live_revision} at {endpoint}) + margin {margin}; skipped revisions compacted",
                self.bump
            ),
            BumpBasis::Default { reason } => format!(
                "{head}: bump {} (the default; the live revision is unknown: {reason}); skipped revisions compacted",
                self.bump
            ),
        }
    }

    /// Whether a saved plan's bump still covers the live revision read now: it must stay
    /// [`APPLY_HEADROOM`] above it.
    pub fn still_covers(&self, live_revision: i64) -> Result<(), ProcedureError> {
        if self.bump == 0 {
            return Ok(());
        }
        let needed = i128::from(live_revision) + i128::from(APPLY_HEADROOM);
        if i128::from(self.bumped_revision) <= needed {
            return Err(ProcedureError::BumpTooSmall {
                bumped_revision: self.bumped_revision,
                live_revision,
                headroom: APPLY_HEADROOM,
            });
        }
        Ok(())
    }
}

/// Decides the bump for a snapshot at `snapshot_revision`.
pub fn decide(snapshot_revision: i64, ask: &BumpAsk) -> Result<RevisionBump, ProcedureError> {
    let (bump, basis) = match ask {
        BumpAsk::Off => (0, BumpBasis::Off),
        BumpAsk::Past {
            live: LiveRevision::Unread { reason },
        } => (
            DEFAULT_BUMP,
            BumpBasis::Default {
                reason: reason.clone(),
            },
        ),
        BumpAsk::Past {
            live: LiveRevision::Read { revision, endpoint },
        } => {
            // A snapshot newer than the live cluster (another cluster's, or one restored
            // before without a bump) needs only the margin.
            let written =
                u64::try_from(i128::from(*revision) - i128::from(snapshot_revision)).unwrap_or(0);
            (
                written.saturating_add(LIVE_MARGIN),
                BumpBasis::Live {
                    live_revision: *revision,
                    endpoint: endpoint.clone(),
                    written_since_snapshot: written,
                    margin: LIVE_MARGIN,
                },
            )
        }
    };
    let bumped_revision = i64::try_from(bump)
        .ok()
        .and_then(|b| snapshot_revision.checked_add(b))
        .ok_or(ProcedureError::BumpOverflow {
            snapshot_revision,
            bump,
        })?;
    Ok(RevisionBump {
        snapshot_revision,
        bump,
        bumped_revision,
        basis,
    })
}

/// The live revision of several members' readings: the highest read (what some client
/// may have seen), else every reason joined.
pub fn highest(readings: &[(String, LiveRevision)]) -> LiveRevision {
    let best = readings
        .iter()
        .filter_map(|(_, l)| match l {
            LiveRevision::Read { revision, endpoint } => Some((*revision, endpoint)),
            LiveRevision::Unread { .. } => None,
        })
        .max_by_key(|(r, _)| *r);
    match best {
        Some((revision, endpoint)) => LiveRevision::Read {
            revision,
            endpoint: endpoint.clone(),
        },
        None => LiveRevision::Unread {
            reason: readings
                .iter()
                .map(|(node, l)| match l {
                    LiveRevision::Unread { reason } => format!("{node}: {reason}"),
                    LiveRevision::Read { .. } => String::new(),
                })
                .collect::<Vec<_>>()
                .join("; "),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(revision: i64) -> BumpAsk {
        BumpAsk::Past {
            live: LiveRevision::Read {
                revision,
                endpoint: "https://127.0.0.1:2379".into(),
            },
        }
    }

    #[test]
    fn the_live_revision_gives_the_written_revisions_plus_the_margin() {
        let b = decide(700, &read(860)).unwrap();
        assert_eq!(b.bump, 160 + LIVE_MARGIN);
        assert_eq!(b.bumped_revision, 860 + LIVE_MARGIN as i64);
        assert!(b.bumped_revision > 860, "past every revision a client saw");
        assert_eq!(
            b.basis,
            BumpBasis::Live {
                live_revision: 860,
                endpoint: "https://127.0.0.1:2379".into(),
                written_since_snapshot: 160,
                margin: LIVE_MARGIN,
            }
        );
        let d = b.describe();
        assert!(
            d.contains("revision 700 -> 1000860")
                && d.contains("160 revisions written since the snapshot")
                && d.contains("live revision 860"),
            "{d}"
        );
    }

    #[test]
    fn a_snapshot_at_or_past_the_live_revision_gets_the_margin_only() {
        for live in [700, 650, 1] {
            let b = decide(700, &read(live)).unwrap();
            assert_eq!(b.bump, LIVE_MARGIN, "live {live}");
            assert_eq!(b.bumped_revision, 700 + LIVE_MARGIN as i64);
        }
    }

    #[test]
    fn an_unread_live_revision_gives_the_default_and_off_gives_none() {
        let unread = BumpAsk::Past {
            live: LiveRevision::Unread {
                reason: "etcd does not answer".into(),
            },
        };
        let b = decide(700, &unread).unwrap();
        assert_eq!((b.bump, b.bumped_revision), (DEFAULT_BUMP, 1_000_000_700));
        assert!(b.describe().contains("etcd does not answer"), "{b:?}");
        let off = decide(700, &BumpAsk::Off).unwrap();
        assert_eq!((off.bump, off.bumped_revision), (0, 700));
        assert_eq!(off.basis, BumpBasis::Off);
        assert!(off.describe().contains("not told to relist"));
    }

    #[test]
    fn a_bump_past_the_largest_revision_is_refused() {
        assert!(matches!(
            decide(i64::MAX - 10, &read(5)),
            Err(ProcedureError::BumpOverflow { .. })
        ));
        let live = decide(10, &read(i64::MAX)).unwrap_err();
        assert!(
            matches!(live, ProcedureError::BumpOverflow { .. }),
            "{live}"
        );
    }

    #[test]
    fn a_saved_bump_must_still_cover_the_live_revision() {
        let b = decide(700, &read(860)).unwrap();
        assert!(b.still_covers(860).is_ok());
        assert!(b.still_covers(860 + 500_000).is_ok());
        let limit = b.bumped_revision - APPLY_HEADROOM as i64;
        assert!(b.still_covers(limit - 1).is_ok());
        let e = b.still_covers(limit).unwrap_err().to_string();
        assert!(e.contains(&limit.to_string()), "{e}");
        // No bump: nothing to cover.
        assert!(
            decide(700, &BumpAsk::Off)
                .unwrap()
                .still_covers(i64::MAX)
                .is_ok()
        );
    }

    #[test]
    fn the_highest_reading_of_several_members_wins() {
        let r = |rev: i64, e: &str| LiveRevision::Read {
            revision: rev,
            endpoint: e.into(),
        };
        let u = |why: &str| LiveRevision::Unread { reason: why.into() };
        let got = highest(&[
            ("cp1".into(), r(900, "a")),
            ("cp2".into(), u("down")),
            ("cp3".into(), r(905, "c")),
        ]);
        assert_eq!(got, r(905, "c"));
        let none = highest(&[("cp1".into(), u("down")), ("cp2".into(), u("refused"))]);
        assert_eq!(
            none,
            LiveRevision::Unread {
                reason: "cp1: down; cp2: refused".into()
            }
        );
    }

    #[test]
    fn asks_and_bumps_round_trip_as_json() {
        let b = decide(700, &read(860)).unwrap();
        let json = serde_json::to_string(&b).unwrap();
        assert!(
            json.contains(r#""snapshotRevision":700"#)
                && json.contains(r#""bumpedRevision":1000860"#)
                && json.contains(r#""kind":"live""#)
                && json.contains(r#""writtenSinceSnapshot":160"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<RevisionBump>(&json).unwrap(), b);
        let ask = read(860);
        let json = serde_json::to_string(&ask).unwrap();
        assert_eq!(serde_json::from_str::<BumpAsk>(&json).unwrap(), ask);
    }
}
