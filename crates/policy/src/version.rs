//! Kubernetes versions, minors, and the distro package versions that carry them.
//!
//! Kubernetes versions are `major.minor.patch` with an optional pre-release
//! (`v1.29.0-rc.1`), following Semantic Versioning
//! (<https://git.k8s.io/sig-release/release-engineering/versioning.md>). The major is 1
//! for every Kubernetes release, so a [`Minor`] is the minor number and skew
//! arithmetic is plain subtraction. Build metadata after `+` (`v1.20.2+k3s1`) names a
//! distribution's build of the upstream version; it is accepted and dropped.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// A Kubernetes minor release, `1.20`. Displayed and serialised as `1.20`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minor(u32);

impl Minor {
    /// The minor `1.<minor>`.
    pub const fn new(minor: u32) -> Minor {
        Minor(minor)
    }

    /// The minor number (20 for 1.20).
    pub const fn number(self) -> u32 {
        self.0
    }

    /// The next minor (1.21 after 1.20).
    pub const fn next(self) -> Minor {
        Minor(self.0 + 1)
    }

    /// `n` minors later.
    pub const fn plus(self, n: u32) -> Minor {
        Minor(self.0 + n)
    }

    /// `n` minors earlier (1.0 at the earliest).
    pub const fn minus(self, n: u32) -> Minor {
        Minor(self.0.saturating_sub(n))
    }

    /// How many minors `self` is newer than `other` (negative when older): the skew.
    pub const fn since(self, other: Minor) -> i64 {
        self.0 as i64 - other.0 as i64
    }

    /// The `.0` patch release of this minor (`v1.20.0`).
    pub fn first_release(self) -> Version {
        Version::new(self.0, 0)
    }
}

impl fmt::Display for Minor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.0)
    }
}

impl FromStr for Minor {
    type Err = Error;

    /// Parses `1.20` or `v1.20`.
    fn from_str(input: &str) -> Result<Minor> {
        let err = |reason: &str| Error::Minor {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let s = strip_v(input.trim());
        let (major, minor) = s
            .split_once('.')
            .ok_or_else(|| err("expected major.minor, as in 1.20"))?;
        let major = number(major).ok_or_else(|| err("the major is not a number"))?;
        if major != 1 {
            return Err(err("Kubernetes releases have major version 1"));
        }
        let minor = number(minor).ok_or_else(|| err("the minor is not a number"))?;
        Ok(Minor(minor))
    }
}

impl Serialize for Minor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Minor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Minor, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A Kubernetes version: `v1.20.2`, `v1.29.0-rc.1`.
///
/// Ordered as Semantic Versioning orders them: a pre-release comes before its release
/// (`v1.29.0-rc.1 < v1.29.0`), pre-release identifiers compare numerically when they
/// are numbers (`alpha.2 < alpha.10`). Displayed and serialised as `v1.20.2`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    minor: u32,
    patch: u32,
    /// Dot-separated identifiers, validated: non-empty, `[0-9A-Za-z-]`, numbers without
    /// leading zeros (so that equal strings and equal order agree).
    pre: Option<String>,
}

impl Version {
    /// The release `v1.<minor>.<patch>`.
    pub const fn new(minor: u32, patch: u32) -> Version {
        Version {
            minor,
            patch,
            pre: None,
        }
    }

    /// Parses `v1.20.2`, `1.21.0`, `v1.29.0-rc.1`, `v1.20.2+k3s1` (the build metadata is
    /// dropped). Surrounding whitespace is ignored.
    pub fn parse(input: &str) -> Result<Version> {
        let err = |reason: &str| Error::Version {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let s = strip_v(input.trim());
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        let s = match s.split_once('+') {
            Some((_, build)) if !valid_identifiers(build, false) => {
                return Err(err(
                    "the build metadata after '+' is not dot-separated [0-9A-Za-z-]",
                ));
            }
            Some((core, _)) => core,
            None => s,
        };
        let (core, pre) = match s.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (s, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        let [major, minor, patch] = parts.as_slice() else {
            return Err(err("expected major.minor.patch, as in v1.20.2"));
        };
        let major = number(major).ok_or_else(|| err("the major is not a number"))?;
        if major != 1 {
            return Err(err("Kubernetes releases have major version 1"));
        }
        let minor = number(minor).ok_or_else(|| err("the minor is not a number"))?;
        let patch = number(patch).ok_or_else(|| err("the patch is not a number"))?;
        if let Some(pre) = pre
            && !valid_identifiers(pre, true)
        {
            return Err(err(
                "the pre-release after '-' is not dot-separated [0-9A-Za-z-] identifiers",
            ));
        }
        Ok(Version {
            minor,
            patch,
            pre: pre.map(str::to_string),
        })
    }

    /// The Kubernetes version in a distro package version, as the upstream package
    /// repositories name them:
    ///
    /// - `1.21.0-00`: the legacy `apt.kubernetes.io` (Debian revision `00`);
    /// - `1.28.3-1.1`: `pkgs.k8s.io` deb packages;
    /// - `1.28.3-150500.1.1`: `pkgs.k8s.io` rpm packages.
    ///
    /// An epoch (`1:`) is dropped; the revision is what follows the last `-`, as in
    /// Debian's version format; `~` in the upstream part (Debian's spelling of a
    /// pre-release, `1.30.0~rc.1`) reads as `-`. A version without a revision is read as
    /// a plain Kubernetes version.
    pub fn from_package(input: &str) -> Result<Version> {
        let err = |reason: String| Error::PackageVersion {
            input: input.to_string(),
            reason,
        };
        let s = input.trim();
        let s = match s.split_once(':') {
            Some((epoch, rest)) if number(epoch).is_some() => rest,
            Some(_) => return Err(err("the epoch before ':' is not a number".to_string())),
            None => s,
        };
        let upstream = match s.rsplit_once('-') {
            Some((_, "")) => return Err(err("the revision after '-' is empty".to_string())),
            Some((upstream, revision)) => {
                if !revision
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '_'))
                {
                    return Err(err(format!("{revision:?} is not a package revision")));
                }
                upstream
            }
            None => s,
        };
        let upstream = upstream.replace('~', "-");
        Version::parse(&upstream).map_err(|e| match e {
            Error::Version { reason, .. } => err(format!("upstream part {upstream:?}: {reason}")),
            other => other,
        })
    }

    /// The minor of this version (1.20 for v1.20.2).
    pub const fn minor(&self) -> Minor {
        Minor(self.minor)
    }

    /// The patch number.
    pub const fn patch(&self) -> u32 {
        self.patch
    }

    /// The pre-release (`rc.1`), if any.
    pub fn pre(&self) -> Option<&str> {
        self.pre.as_deref()
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        (self.minor, self.patch)
            .cmp(&(other.minor, other.patch))
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => compare_pre(a, b),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Semantic Versioning's precedence of two pre-releases: identifier by identifier,
/// numbers numerically and before words, a shorter list first when it is a prefix.
fn compare_pre(a: &str, b: &str) -> Ordering {
    let mut a = a.split('.');
    let mut b = b.split('.');
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v1.{}.{}", self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

impl FromStr for Version {
    type Err = Error;

    fn from_str(s: &str) -> Result<Version> {
        Version::parse(s)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        let s = String::deserialize(d)?;
        Version::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn strip_v(s: &str) -> &str {
    s.strip_prefix(['v', 'V']).unwrap_or(s)
}

/// A decimal number without sign, leading zeros or other characters.
fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Dot-separated non-empty `[0-9A-Za-z-]` identifiers; with `strict_numbers`, an
/// all-digit identifier has no leading zero (Semantic Versioning's pre-release rule).
fn valid_identifiers(s: &str, strict_numbers: bool) -> bool {
    s.split('.').all(|id| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !(strict_numbers
                && id.len() > 1
                && id.starts_with('0')
                && id.bytes().all(|b| b.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_spellings() {
        let cases = [
            ("v1.20.2", "v1.20.2", 20, 2, None),
            ("1.21.0", "v1.21.0", 21, 0, None),
            ("  v1.28.15\n", "v1.28.15", 28, 15, None),
            ("v1.29.0-rc.1", "v1.29.0-rc.1", 29, 0, Some("rc.1")),
            ("v1.30.0-alpha.0", "v1.30.0-alpha.0", 30, 0, Some("alpha.0")),
            ("v1.20.2+k3s1", "v1.20.2", 20, 2, None),
            (
                "v1.27.3-eks-a5565ad",
                "v1.27.3-eks-a5565ad",
                27,
                3,
                Some("eks-a5565ad"),
            ),
            ("v1.26.1+rke2r1", "v1.26.1", 26, 1, None),
        ];
        for (input, shown, minor, patch, pre) in cases {
            let v = Version::parse(input).unwrap();
            assert_eq!(v.to_string(), shown, "{input}");
            assert_eq!(v.minor(), Minor::new(minor), "{input}");
            assert_eq!(v.patch(), patch, "{input}");
            assert_eq!(v.pre(), pre, "{input}");
        }
    }

    #[test]
    fn refuses_bad_versions_naming_the_input() {
        let cases = [
            ("", "empty"),
            ("v1.20", "major.minor.patch"),
            ("1.20.2.1", "major.minor.patch"),
            ("v2.0.0", "major version 1"),
            ("v1.x.0", "minor is not a number"),
            ("v1.20.-1", "patch is not a number"),
            ("v1.020.1", "minor is not a number"),
            ("v1.20.2-", "pre-release"),
            ("v1.20.2-rc..1", "pre-release"),
            ("v1.20.2-rc.01", "pre-release"),
            ("v1.20.2+", "build metadata"),
            ("kubelet", "major.minor.patch"),
        ];
        for (input, reason) in cases {
            let e = Version::parse(input).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(&format!("{input:?}")), "{text}");
            assert!(text.contains(reason), "{input}: {text}");
        }
    }

    #[test]
    fn orders_as_semver() {
        let ordered = [
            "v1.9.11",
            "v1.20.0-alpha.2",
            "v1.20.0-alpha.10",
            "v1.20.0-beta.0",
            "v1.20.0-rc.0",
            "v1.20.0-rc.1",
            "v1.20.0",
            "v1.20.2",
            "v1.20.10",
            "v1.21.0",
        ];
        let versions: Vec<Version> = ordered.iter().map(|s| s.parse().unwrap()).collect();
        for pair in versions.windows(2) {
            assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(
            Version::parse("v1.20.2+k3s1").unwrap(),
            Version::parse("1.20.2").unwrap()
        );
    }

    #[test]
    fn package_versions() {
        let cases = [
            ("1.21.0-00", "v1.21.0"),
            ("1.20.2-00", "v1.20.2"),
            ("1.28.3-1.1", "v1.28.3"),
            ("1.28.3-150500.1.1", "v1.28.3"),
            ("1:1.28.3-1.1", "v1.28.3"),
            ("1.30.0~rc.1-1.1", "v1.30.0-rc.1"),
            ("1.29.2", "v1.29.2"),
        ];
        for (input, want) in cases {
            assert_eq!(
                Version::from_package(input).unwrap().to_string(),
                want,
                "{input}"
            );
        }
        for input in [
            "1.28.3-",
            "1.28-1.1",
            "x:1.28.3-1.1",
            "1.28.3-1 1",
            "kubeadm",
        ] {
            let e = Version::from_package(input).unwrap_err();
            assert!(matches!(e, Error::PackageVersion { .. }), "{input}: {e:?}");
            assert!(e.to_string().contains(&format!("{input:?}")), "{e}");
        }
    }

    #[test]
    fn minors() {
        assert_eq!("1.20".parse::<Minor>().unwrap(), Minor::new(20));
        assert_eq!("v1.28".parse::<Minor>().unwrap(), Minor::new(28));
        assert_eq!(Minor::new(20).to_string(), "1.20");
        assert_eq!(Minor::new(28).since(Minor::new(25)), 3);
        assert_eq!(Minor::new(25).since(Minor::new(28)), -3);
        assert_eq!(Minor::new(20).next(), Minor::new(21));
        for bad in ["1", "2.1", "1.x", "1.20.1", ""] {
            let e = bad.parse::<Minor>().unwrap_err();
            assert!(matches!(e, Error::Minor { .. }), "{bad}");
        }
    }

    #[test]
    fn serde_as_strings() {
        let v = Version::parse("v1.29.0-rc.1").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"v1.29.0-rc.1\"");
        assert_eq!(
            serde_json::from_str::<Version>("\"1.29.0-rc.1\"").unwrap(),
            v
        );
        assert!(serde_json::from_str::<Version>("\"1.29\"").is_err());
        assert_eq!(serde_json::to_string(&Minor::new(20)).unwrap(), "\"1.20\"");
        assert_eq!(
            serde_json::from_str::<Minor>("\"1.20\"").unwrap(),
            Minor::new(20)
        );
    }
}
