//! Read-only inspection of etcd snapshot files.
//!
//! An etcd snapshot is a bbolt database, optionally followed by the sha256 trailer that
//! `etcdctl snapshot save` appends. This crate reads one without ever opening it for
//! writing, checks its integrity (both meta pages, every page reachable at most once,
//! nothing beyond the high-water mark, freelist, key order, trailer), and computes the
//! figures of `etcdutl snapshot status` bit for bit.
//!
//! The work is pure: [`inspect`] takes the file's bytes. [`SnapshotFile`] is the thin
//! I/O layer that reads a file and names it in errors.
//!
//! ```no_run
//! use kastellan_snapshot::{Options, SnapshotFile};
//! let file = SnapshotFile::open("snapshot.db")?;
//! let report = file.inspect(&Options { verify_trailer: true })?;
//! if let Some(status) = report.status {
//!     println!("revision {} hash {:08x}", status.revision, status.hash);
//! }
//! println!("clean: {}", report.is_clean());
//! # Ok::<(), kastellan_snapshot::Error>(())
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod bbolt;
pub mod crc;
mod error;
pub mod etcd;
pub mod fault;
mod file;
pub mod hashkv;
pub mod kube;
pub mod mvcc;
pub mod trailer;

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::bbolt::{MetaInfo, PageStats};
pub use crate::error::Error;
pub use crate::etcd::{Status, Versions};
pub use crate::fault::{Check, Fault, FaultKind, MetaProblem, MetaSlot};
pub use crate::file::SnapshotFile;
pub use crate::trailer::Trailer;

/// What [`inspect`] does beyond the checks that cost nothing extra.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Hash the whole content to compare it with the sha256 trailer (if present).
    pub verify_trailer: bool,
}

/// Everything learnt about a snapshot file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// Length of the file in bytes, trailer included.
    pub file_size: u64,
    /// The sha256 trailer, if any.
    pub trailer: Trailer,
    /// The page size in bytes.
    pub page_size: u32,
    /// The meta page in force.
    pub active_meta: MetaSlot,
    /// The transaction id of the meta page in force.
    pub txid: u64,
    /// The verdict on both meta pages.
    pub metas: [MetaInfo; 2],
    /// Page counts.
    pub pages: PageStats,
    /// The `snapshot status` figures; `None` when the page tree is too damaged to
    /// iterate or does not have etcd's layout.
    pub status: Option<Status>,
    /// Versions recorded by etcd.
    pub versions: Versions,
    /// The first findings (at most [`bbolt::check::MAX_KEPT_FAULTS`]).
    pub faults: Vec<Fault>,
    /// How many findings there were in all.
    pub fault_count: u64,
    /// Findings per check.
    #[serde(skip)]
    per_check: BTreeMap<Check, u64>,
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The check ran and found nothing.
    Passed,
    /// The check found problems.
    Failed,
    /// The check did not run (see the note).
    Skipped,
}

/// One line of the verification report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// Which check.
    pub check: Check,
    /// Its verdict.
    pub verdict: Verdict,
    /// How many findings it made.
    pub faults: u64,
    /// Why it was skipped, or what it found notable.
    pub note: Option<String>,
}

impl Inspection {
    /// Whether no check found anything.
    pub fn is_clean(&self) -> bool {
        self.fault_count == 0
    }

    /// Findings of one check.
    pub fn faults_of(&self, check: Check) -> u64 {
        self.per_check.get(&check).copied().unwrap_or(0)
    }

    /// One verdict per check, in [`Check::ALL`] order.
    pub fn checks(&self) -> Vec<CheckResult> {
        Check::ALL
            .into_iter()
            .map(|check| {
                let faults = self.faults_of(check);
                let skipped = match check {
                    Check::Sha256Trailer => match &self.trailer {
                        Trailer::Absent if self.pages.high_water > self.pages.in_file => {
                            Some("no trailer: the file is cut short".to_string())
                        }
                        Trailer::Absent => {
                            Some("no trailer: a raw member/snap/db copy".to_string())
                        }
                        Trailer::Stray { .. } => None,
                        Trailer::Present { computed: None, .. } => {
                            Some("trailer present, not hashed (run verify)".to_string())
                        }
                        Trailer::Present { .. } => None,
                    },
                    Check::EtcdLayout if self.status.is_none() && faults == 0 => {
                        Some("page tree too damaged to read".to_string())
                    }
                    Check::KeyOrder | Check::EtcdLayout if self.faults_of(Check::PageTree) > 0 => {
                        Some("page tree damaged; partly checked".to_string())
                    }
                    _ => None,
                };
                let verdict = match (faults, &skipped) {
                    (0, Some(_)) => Verdict::Skipped,
                    (0, None) => Verdict::Passed,
                    _ => Verdict::Failed,
                };
                let note = match check {
                    Check::Freelist if !self.pages.freelist_stored && faults == 0 => Some(format!(
                        "freelist not stored (NoFreelistSync); {} unreached pages count as free",
                        self.pages.free
                    )),
                    _ => skipped,
                };
                CheckResult {
                    check,
                    verdict,
                    faults,
                    note,
                }
            })
            .collect()
    }

    fn add(&mut self, fault: Fault) {
        *self.per_check.entry(fault.check()).or_default() += 1;
        self.fault_count += 1;
        self.keep(fault);
    }

    fn keep(&mut self, fault: Fault) {
        if self.faults.len() < bbolt::check::MAX_KEPT_FAULTS {
            self.faults.push(fault);
        }
    }
}

/// Inspects a snapshot file given as bytes (the whole file, trailer included).
///
/// Fails only when the bytes are not a bbolt database at all ([`FaultKind::TooSmall`]
/// or [`FaultKind::NoValidMeta`]); every other problem is listed in the result.
pub fn inspect(file: &[u8], options: &Options) -> Result<Inspection, Fault> {
    let (data, _) = trailer::split(file);
    let db = bbolt::Db::open(data)?;
    if !options.verify_trailer {
        let mut report = inspect_db(&db, file, Trailer::inspect(file, false));
        stray_fault(&mut report, data.len());
        return Ok(report);
    }
    // Hashing the whole file for the trailer is the slowest part: overlap it with the
    // page walk.
    std::thread::scope(|scope| {
        let sha = scope.spawn(|| Trailer::inspect(file, true));
        let mut report = inspect_db(&db, file, Trailer::Absent);
        report.trailer = match sha.join() {
            Ok(t) => t,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        if let Trailer::Present {
            stored,
            computed: Some(computed),
        } = &report.trailer
            && stored != computed
        {
            let kind = FaultKind::TrailerMismatch {
                stored: stored.clone(),
                computed: computed.clone(),
            };
            report.faults.insert(
                0,
                Fault {
                    page: None,
                    offset: Some(data.len() as u64),
                    kind,
                },
            );
            report.faults.truncate(bbolt::check::MAX_KEPT_FAULTS);
            *report.per_check.entry(Check::Sha256Trailer).or_default() += 1;
            report.fault_count += 1;
        }
        stray_fault(&mut report, data.len());
        Ok(report)
    })
}

/// Stray bytes at the end are a fault of the trailer check.
fn stray_fault(report: &mut Inspection, len: usize) {
    if let Trailer::Stray { bytes } = report.trailer {
        // After the page findings (a file cut short says more about itself first).
        if report.faults.len() < bbolt::check::MAX_KEPT_FAULTS {
            report.faults.push(Fault {
                page: None,
                offset: Some((len as u64).saturating_sub(bytes)),
                kind: FaultKind::StrayBytes { bytes },
            });
        }
        *report.per_check.entry(Check::Sha256Trailer).or_default() += 1;
        report.fault_count += 1;
    }
}

fn inspect_db(db: &bbolt::Db<'_>, file: &[u8], trailer: Trailer) -> Inspection {
    let (checked, status) = etcd::check_and_status(db);
    let mut report = Inspection {
        file_size: file.len() as u64,
        trailer,
        page_size: db.page_size(),
        active_meta: db.active_meta(),
        txid: db.meta().txid,
        metas: db.metas().clone(),
        pages: checked.stats.clone(),
        status: None,
        versions: Versions::default(),
        faults: Vec::new(),
        fault_count: 0,
        per_check: BTreeMap::new(),
    };
    for fault in db.meta_faults() {
        report.add(fault);
    }
    for fault in &checked.faults {
        report.keep(fault.clone());
    }
    for (&check, &n) in &checked.per_check {
        *report.per_check.entry(check).or_default() += n;
        report.fault_count += n;
    }
    match status {
        Some(Ok(status)) => report.status = Some(status),
        Some(Err(fault)) => report.add(fault),
        None => {}
    }
    if let Some(tree) = checked.tree() {
        report.versions = etcd::versions(&tree);
    }
    report
}
