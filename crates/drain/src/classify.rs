//! The rules of `kubectl drain` (v1.20 and current), one pod at a time: mirror pods
//! are skipped, DaemonSet pods are left (refused unless they are to be ignored), pods
//! with emptyDir data and pods without a controller are refused unless allowed,
//! finished pods are always removable. The rules run in kubectl's order and the first
//! one that keeps the pod decides.

use serde::{Deserialize, Serialize};

use crate::facts::PodInfo;

/// What the caller allows (kubectl's `--ignore-daemonsets`, `--delete-emptydir-data`,
/// `--force`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rules {
    /// Leave DaemonSet pods in place instead of refusing the drain.
    pub ignore_daemonsets: bool,
    /// Evict pods whose emptyDir data is lost with them.
    pub delete_emptydir_data: bool,
    /// Evict pods that no controller recreates (and DaemonSet pods whose DaemonSet is
    /// gone).
    pub force: bool,
}

/// Why a pod is skipped, refused, or evicted with a note. Serialised as a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The mirror pod of a static pod: the kubelet runs it from a file, not the API.
    Mirror,
    /// Managed by a DaemonSet, which would put it back on the node at once.
    DaemonSet,
    /// Managed by a DaemonSet that no longer exists.
    DaemonSetMissing,
    /// Has an emptyDir volume, whose data goes with the pod.
    LocalStorage,
    /// Declares no controller: nothing recreates it once it is gone.
    Unmanaged,
    /// Succeeded or Failed: removable whatever else holds.
    Finished,
    /// Already being deleted.
    Terminating,
}

impl Reason {
    /// A short description for humans (no CLI flags: the binary adds hints).
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Mirror => "mirror pod of a static pod",
            Reason::DaemonSet => "managed by a DaemonSet",
            Reason::DaemonSetMissing => "its DaemonSet no longer exists",
            Reason::LocalStorage => "emptyDir data is lost",
            Reason::Unmanaged => "no controller recreates it",
            Reason::Finished => "finished",
            Reason::Terminating => "already terminating",
        }
    }
}

/// What happens to one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Evicted, with notes on what is lost or overridden.
    Evict(Vec<Reason>),
    /// Left on the node, not in the way of the drain.
    Skip(Reason),
    /// Not allowed by the rules: the drain refuses.
    Refuse(Reason),
}

/// Classifies one pod. `daemonset_exists` says whether the DaemonSet of that name
/// exists in the pod's namespace.
pub fn classify(pod: &PodInfo, rules: Rules, daemonset_exists: impl Fn(&str) -> bool) -> Decision {
    let finished = pod.phase.finished();
    let mut notes = Vec::new();
    if pod.terminating {
        notes.push(Reason::Terminating);
    }
    // kubectl's daemonSetFilter.
    if let Some(c) = pod.controller.as_ref().filter(|c| c.kind == "DaemonSet")
        && !finished
    {
        if !daemonset_exists(&c.name) {
            if !rules.force {
                return Decision::Refuse(Reason::DaemonSetMissing);
            }
            notes.push(Reason::DaemonSetMissing);
        } else if rules.ignore_daemonsets {
            return Decision::Skip(Reason::DaemonSet);
        } else {
            return Decision::Refuse(Reason::DaemonSet);
        }
    }
    // mirrorPodFilter.
    if pod.is_mirror() {
        return Decision::Skip(Reason::Mirror);
    }
    // localStorageFilter.
    if pod.empty_dir && !finished {
        if !rules.delete_emptydir_data {
            return Decision::Refuse(Reason::LocalStorage);
        }
        notes.push(Reason::LocalStorage);
    }
    // unreplicatedFilter.
    if pod.controller.is_none() && !finished {
        if !rules.force {
            return Decision::Refuse(Reason::Unmanaged);
        }
        notes.push(Reason::Unmanaged);
    }
    if finished {
        notes.push(Reason::Finished);
    }
    Decision::Evict(notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Owner, Phase, PodRef};

    pub(crate) fn pod(name: &str) -> PodInfo {
        PodInfo {
            pod: PodRef {
                namespace: "default".into(),
                name: name.into(),
            },
            uid: format!("uid-{name}"),
            node: Some("w1".into()),
            phase: Phase::Active,
            labels: Default::default(),
            annotations: Default::default(),
            controller: Some(Owner {
                kind: "ReplicaSet".into(),
                name: "web-1".into(),
            }),
            workload: Some(Owner {
                kind: "Deployment".into(),
                name: "web".into(),
            }),
            ready: true,
            terminating: false,
            empty_dir: false,
        }
    }

    fn owned_by(mut p: PodInfo, kind: &str, name: &str) -> PodInfo {
        p.controller = Some(Owner {
            kind: kind.into(),
            name: name.into(),
        });
        p
    }

    #[test]
    fn table() {
        let none = Rules::default();
        let ds = Rules {
            ignore_daemonsets: true,
            ..none
        };
        let all = Rules {
            ignore_daemonsets: true,
            delete_emptydir_data: true,
            force: true,
        };
        let managed = pod("web-1-abc");
        let mut mirror = owned_by(pod("etcd-cp1"), "Node", "cp1");
        mirror
            .annotations
            .insert(crate::facts::MIRROR_ANNOTATION.into(), "abc".into());
        let daemon = owned_by(pod("proxy-x"), "DaemonSet", "proxy");
        let orphan_daemon = owned_by(pod("gone-x"), "DaemonSet", "gone");
        let mut bare = pod("bare");
        bare.controller = None;
        let mut scratch = pod("cache-1");
        scratch.empty_dir = true;
        let mut bare_scratch = bare.clone();
        bare_scratch.empty_dir = true;
        let mut done = bare_scratch.clone();
        done.phase = Phase::Succeeded;
        let mut failed_daemon = daemon.clone();
        failed_daemon.phase = Phase::Failed;
        let mut dying = pod("web-1-dying");
        dying.terminating = true;

        use Decision::*;
        use Reason::*;
        let cases: Vec<(&str, &PodInfo, Rules, Decision)> = vec![
            ("managed", &managed, none, Evict(vec![])),
            ("mirror", &mirror, none, Skip(Mirror)),
            ("mirror forced", &mirror, all, Skip(Mirror)),
            ("daemonset", &daemon, none, Refuse(DaemonSet)),
            ("daemonset ignored", &daemon, ds, Skip(DaemonSet)),
            (
                "daemonset gone",
                &orphan_daemon,
                ds,
                Refuse(DaemonSetMissing),
            ),
            (
                "daemonset gone forced",
                &orphan_daemon,
                all,
                Evict(vec![DaemonSetMissing]),
            ),
            (
                "finished daemonset pod",
                &failed_daemon,
                none,
                Evict(vec![Finished]),
            ),
            ("emptyDir", &scratch, none, Refuse(LocalStorage)),
            (
                "emptyDir allowed",
                &scratch,
                Rules {
                    delete_emptydir_data: true,
                    ..none
                },
                Evict(vec![LocalStorage]),
            ),
            ("bare", &bare, none, Refuse(Unmanaged)),
            ("bare forced", &bare, all, Evict(vec![Unmanaged])),
            // kubectl's order: local storage is refused before the missing controller.
            (
                "bare with emptyDir",
                &bare_scratch,
                none,
                Refuse(LocalStorage),
            ),
            (
                "bare with emptyDir, emptyDir allowed",
                &bare_scratch,
                Rules {
                    delete_emptydir_data: true,
                    ..none
                },
                Refuse(Unmanaged),
            ),
            (
                "finished bare pod with emptyDir",
                &done,
                none,
                Evict(vec![Finished]),
            ),
            ("terminating", &dying, none, Evict(vec![Terminating])),
        ];
        for (what, p, rules, want) in cases {
            let got = classify(p, rules, |name| name != "gone");
            assert_eq!(got, want, "{what}");
        }
    }
}
