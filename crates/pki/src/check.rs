//! `certs check`: expiry, residual time, issuing CA and "externally managed" of every
//! certificate in an [`Inventory`]. Pure: the clock is a parameter.
//!
//! The columns kubeadm prints are computed the way `kubeadm certs check-expiration` does
//! (v1.20 source: `cmd/kubeadm/app/cmd/alpha/certs.go`, `phases/certs/renewal`):
//! the expiry date is formatted `Jan 02, 2006 15:04 MST` (truncated to the minute), the
//! residual time with apimachinery's `ShortHumanDuration`, and a certificate is
//! "externally managed" when the key of the CA that signs it is absent.
//!
//! Where kastellan says more than kubeadm v1.20: it also lists `kubelet.conf`,
//! `super-admin.conf` (kubeadm 1.29+) and the kubelet's own certificates; it fills the CA
//! column of the kubeconfig certificates (kubeadm 1.20 leaves it empty) after checking the
//! signature; it prints dates in UTC whatever the local zone; and it calls the etcd
//! certificates "externally managed" when `etcd/ca.key` is absent, where kubeadm 1.20
//! hard-codes "no" for the etcd CA (and then fails to renew them).

use std::path::PathBuf;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::inventory::{Entry, Found, Inventory, State};
use crate::layout::{CaId, Kind, Layout};
use crate::x509::KeyInfo;

/// How close to expiry is "expiring", in days, unless told otherwise.
pub const DEFAULT_WARN_DAYS: u32 = 30;

/// The verdict of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Valid beyond the warning window.
    Ok,
    /// Expires within the warning window.
    Expiring,
    /// Already expired.
    Expired,
    /// The file does not exist.
    Absent,
    /// The file exists but cannot be read or parsed.
    Error,
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct CertStatus {
    /// kubeadm's name (or kastellan's for the kubelet's certificates).
    pub name: String,
    /// What sort of certificate it is.
    pub kind: Kind,
    /// The verdict.
    pub status: Status,
    /// The file that holds the certificate (the kubeconfig for embedded ones).
    pub path: PathBuf,
    /// Whether the file may legitimately be absent.
    pub optional: bool,
    /// Subject DN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Issuer DN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The kubeadm CA that signed it (verified by signature), when it is one of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaId>,
    /// Whether the signing CA's private key is on disk (for a CA: its own key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_key_present: Option<bool>,
    /// kubeadm's "externally managed": the signing CA's key is absent, so it cannot be
    /// renewed here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub externally_managed: Option<bool>,
    /// Serial number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Start of validity (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    /// End of validity (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
    /// Time left, as kubeadm prints it (`364d`, `9y`, `<invalid>` once expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residual: Option<String>,
    /// Time left in seconds (negative once expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residual_seconds: Option<i64>,
    /// Subject alternative names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sans: Vec<String>,
    /// Public key type and size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyInfo>,
    /// Key usages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_usage: Vec<String>,
    /// Extended key usages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ext_key_usage: Vec<String>,
    /// Whether `certs renew` handles it.
    pub renewable: bool,
    /// Things wrong besides expiry (wrong signer, not yet valid, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Why the file could not be read, for [`Status::Error`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Counts per verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Valid beyond the window.
    pub ok: usize,
    /// Within the window.
    pub expiring: usize,
    /// Expired.
    pub expired: usize,
    /// Absent files.
    pub absent: usize,
    /// Unreadable files.
    pub errors: usize,
    /// Certificates with other problems.
    pub problems: usize,
}

/// The result of `certs check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// When the check ran.
    pub checked_at: Timestamp,
    /// The warning window in days.
    pub warn_days: u32,
    /// The directories read.
    pub layout: Layout,
    /// Non-CA certificates, sorted by name (kubeadm's order).
    pub certificates: Vec<CertStatus>,
    /// The CAs.
    pub authorities: Vec<CertStatus>,
    /// Counts.
    pub summary: Summary,
}

/// What the exit code should say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// All present certificates are fine (exit 0).
    Healthy,
    /// Something expires within the window, has expired, or has another problem (exit 1).
    Unhealthy,
    /// Some file could not be read (exit 2).
    Errors,
}

impl CheckReport {
    /// The verdict: errors beat expiry, expiry beats health.
    pub fn verdict(&self) -> Verdict {
        let s = &self.summary;
        if s.errors > 0 {
            Verdict::Errors
        } else if s.expiring + s.expired + s.problems > 0 {
            Verdict::Unhealthy
        } else {
            Verdict::Healthy
        }
    }

    /// The rows with an error, as `name: message` lines.
    pub fn errors(&self) -> Vec<String> {
        self.rows()
            .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.name)))
            .collect()
    }

    /// Every row, certificates then CAs.
    pub fn rows(&self) -> impl Iterator<Item = &CertStatus> {
        self.certificates.iter().chain(self.authorities.iter())
    }

    /// The row of a name.
    pub fn row(&self, name: &str) -> Option<&CertStatus> {
        self.rows().find(|r| r.name == name)
    }
}

/// Checks every certificate of `inv` at time `now` with a warning window of `warn_days`.
pub fn check(inv: &Inventory, now: Timestamp, warn_days: u32) -> CheckReport {
    let certificates: Vec<CertStatus> = inv
        .certificates
        .iter()
        .map(|e| row(inv, e, now, warn_days))
        .collect();
    let authorities: Vec<CertStatus> = inv
        .authorities
        .iter()
        .map(|e| row(inv, e, now, warn_days))
        .collect();
    let mut summary = Summary::default();
    for r in certificates.iter().chain(authorities.iter()) {
        match r.status {
            Status::Ok => summary.ok += 1,
            Status::Expiring => summary.expiring += 1,
            Status::Expired => summary.expired += 1,
            Status::Absent => summary.absent += 1,
            Status::Error => summary.errors += 1,
        }
        if !r.problems.is_empty() {
            summary.problems += 1;
        }
    }
    CheckReport {
        checked_at: now,
        warn_days,
        layout: inv.layout.clone(),
        certificates,
        authorities,
        summary,
    }
}

fn empty_row(entry: &Entry, status: Status, path: PathBuf) -> CertStatus {
    CertStatus {
        name: entry.spec.name.to_string(),
        kind: entry.spec.kind,
        status,
        path,
        optional: entry.spec.optional,
        subject: None,
        issuer: None,
        ca: None,
        ca_key_present: None,
        externally_managed: None,
        serial: None,
        not_before: None,
        not_after: None,
        residual: None,
        residual_seconds: None,
        sans: Vec::new(),
        key: None,
        key_usage: Vec::new(),
        ext_key_usage: Vec::new(),
        renewable: entry.spec.renewable,
        problems: Vec::new(),
        error: None,
    }
}

fn row(inv: &Inventory, entry: &Entry, now: Timestamp, warn_days: u32) -> CertStatus {
    let found = match &entry.state {
        State::Absent { path } => return empty_row(entry, Status::Absent, path.clone()),
        State::Broken(e) => {
            let mut r = empty_row(
                entry,
                Status::Error,
                crate::inventory::primary_path(&inv.layout, entry.spec),
            );
            r.error = Some(e.to_string());
            return r;
        }
        State::Present(f) => f,
    };
    let facts = &found.cert.facts;
    let residual = facts.not_after.duration_since(now);
    let status = expiry_status(residual, warn_days);
    let mut r = empty_row(entry, status, found.cert_file.clone());
    r.subject = Some(facts.subject.clone());
    r.issuer = Some(facts.issuer.clone());
    r.serial = Some(facts.serial.clone());
    r.not_before = Some(facts.not_before);
    r.not_after = Some(facts.not_after);
    r.residual = Some(short_human_duration(residual));
    r.residual_seconds = Some(residual.as_secs());
    r.sans = facts.sans.clone();
    r.key = Some(facts.key.clone());
    r.key_usage = facts.key_usage.clone();
    r.ext_key_usage = facts.ext_key_usage.clone();
    if facts.not_before > now {
        r.problems
            .push(format!("not valid before {}", facts.not_before));
    }
    if entry.spec.kind == Kind::Authority {
        let ca = CaId::ALL.into_iter().find(|c| c.name() == entry.spec.name);
        if let Some(ca) = ca {
            let present = inv.ca_key_present(ca);
            r.ca_key_present = Some(present);
            r.externally_managed = Some(!present);
        }
        if !facts.is_ca {
            r.problems
                .push("not a CA certificate (basic constraints lack CA:TRUE)".into());
        }
        return r;
    }
    let (ca, problem) = signing_ca(inv, entry, found);
    if let Some(p) = problem {
        r.problems.push(p);
    }
    // kubeadm decides "externally managed" from the CA the certificate belongs to, which
    // for kubeadm's own certificates is the expected one even if the signature is off.
    if let Some(ca) = entry.spec.ca.or(ca) {
        let present = inv.ca_key_present(ca);
        r.ca_key_present = Some(present);
        r.externally_managed = Some(!present);
    }
    r.ca = ca;
    r
}

/// Which kubeadm CA signed the certificate, and a problem when it is not the expected one.
fn signing_ca(inv: &Inventory, entry: &Entry, found: &Found) -> (Option<CaId>, Option<String>) {
    if let Some(expected) = entry.spec.ca {
        match inv.authority(expected) {
            Some(ca) if found.cert.is_signed_by(&ca.cert) => return (Some(expected), None),
            Some(ca) => {
                let other = CaId::ALL.into_iter().filter(|c| *c != expected).find(|c| {
                    inv.authority(*c)
                        .is_some_and(|o| found.cert.is_signed_by(&o.cert))
                });
                let msg = format!(
                    "not signed by CA '{}' ({})",
                    expected.name(),
                    ca.cert_file.display()
                );
                return (other, Some(msg));
            }
            None => return (None, None),
        }
    }
    let ca = CaId::ALL.into_iter().find(|c| {
        inv.authority(*c)
            .is_some_and(|o| found.cert.is_signed_by(&o.cert))
    });
    (ca, None)
}

/// The verdict for a certificate with `residual` time left.
pub fn expiry_status(residual: SignedDuration, warn_days: u32) -> Status {
    let window = SignedDuration::from_hours(i64::from(warn_days) * 24);
    if residual <= SignedDuration::ZERO {
        Status::Expired
    } else if residual < window {
        Status::Expiring
    } else {
        Status::Ok
    }
}

/// apimachinery's `duration.ShortHumanDuration`, which kubeadm prints as "RESIDUAL TIME".
pub fn short_human_duration(d: SignedDuration) -> String {
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 60 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 24 {
        return format!("{hours}h");
    }
    if hours < 24 * 365 {
        return format!("{}d", hours / 24);
    }
    // Go: int(d.Hours()/24/365), float division truncated.
    let years = d.as_secs_f64() / 3600.0 / 24.0 / 365.0;
    format!("{}y", years.trunc())
}

/// A date as kubeadm prints it: `Nov 21, 2027 20:58 UTC` (always UTC here).
pub fn kubeadm_date(t: Timestamp) -> String {
    t.strftime("%b %d, %Y %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(secs: i64) -> SignedDuration {
        SignedDuration::from_secs(secs)
    }

    #[test]
    fn short_human_duration_matches_apimachinery() {
        assert_eq!(short_human_duration(d(-5)), "<invalid>");
        assert_eq!(
            short_human_duration(SignedDuration::from_millis(-1500)),
            "0s"
        );
        assert_eq!(short_human_duration(d(0)), "0s");
        assert_eq!(short_human_duration(d(59)), "59s");
        assert_eq!(short_human_duration(d(60)), "1m");
        assert_eq!(short_human_duration(d(3599)), "59m");
        assert_eq!(short_human_duration(d(3600)), "1h");
        assert_eq!(short_human_duration(d(86399)), "23h");
        assert_eq!(short_human_duration(d(86400)), "1d");
        assert_eq!(short_human_duration(d(365 * 86400 - 1)), "364d");
        assert_eq!(short_human_duration(d(365 * 86400)), "1y");
        assert_eq!(short_human_duration(d(3650 * 86400 - 1)), "9y");
    }

    #[test]
    fn expiry_window() {
        assert_eq!(expiry_status(d(31 * 86400), 30), Status::Ok);
        assert_eq!(expiry_status(d(30 * 86400), 30), Status::Ok);
        assert_eq!(expiry_status(d(30 * 86400 - 1), 30), Status::Expiring);
        assert_eq!(expiry_status(d(1), 30), Status::Expiring);
        assert_eq!(expiry_status(d(0), 30), Status::Expired);
        assert_eq!(expiry_status(d(-86400), 0), Status::Expired);
        assert_eq!(expiry_status(d(5), 0), Status::Ok);
    }

    #[test]
    fn kubeadm_date_truncates_to_the_minute() {
        let t: Timestamp = "2027-11-21T20:58:59Z".parse().unwrap();
        assert_eq!(kubeadm_date(t), "Nov 21, 2027 20:58 UTC");
        let t: Timestamp = "2027-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(kubeadm_date(t), "Jan 02, 2027 03:04 UTC");
    }
}
