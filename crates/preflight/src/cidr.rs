//! IPv4 and IPv6 prefixes (`10.244.0.0/16`): parsing, overlap, size.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A network prefix. The address is kept as written (host bits and all, as an
/// interface address `10.0.0.5/24` is); [`Cidr::network`] masks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `addr/prefix`; `None` when the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        (prefix <= bits(addr)).then_some(Cidr { addr, prefix })
    }

    /// A single address (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Cidr {
        Cidr {
            addr,
            prefix: bits(addr),
        }
    }

    /// The address as written.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether this is an IPv4 prefix.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The address length of its family: 32 or 128.
    pub fn family_bits(&self) -> u8 {
        bits(self.addr)
    }

    /// The prefix with its host bits cleared.
    pub fn network(&self) -> Cidr {
        let masked = to_u128(self.addr) & mask(self.prefix, bits(self.addr));
        Cidr {
            addr: from_u128(masked, self.addr.is_ipv4()),
            prefix: self.prefix,
        }
    }

    /// Whether `ip` lies inside this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.overlaps(&Cidr::host(ip))
    }

    /// Whether the two prefixes share an address (same family only).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        if self.addr.is_ipv4() != other.addr.is_ipv4() {
            return false;
        }
        let shorter = self.prefix.min(other.prefix);
        let m = mask(shorter, bits(self.addr));
        to_u128(self.addr) & m == to_u128(other.addr) & m
    }
}

fn bits(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// The mask of `prefix` leading ones in an address of `width` bits, in the low bits of
/// a u128.
fn mask(prefix: u8, width: u8) -> u128 {
    let all: u128 = if width >= 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    let host = width.saturating_sub(prefix);
    let host_bits: u128 = if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    };
    all & !host_bits
}

fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        // The masked value of an IPv4 address fits in 32 bits.
        IpAddr::from(std::net::Ipv4Addr::from((v & 0xffff_ffff) as u32))
    } else {
        IpAddr::from(std::net::Ipv6Addr::from(v))
    }
}

impl FromStr for Cidr {
    type Err = Error;

    fn from_str(input: &str) -> Result<Cidr, Error> {
        let err = |reason: &str| Error::Cidr {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let (addr, prefix) = input
            .trim()
            .split_once('/')
            .ok_or_else(|| err("expected ADDRESS/PREFIX, as in 10.244.0.0/16"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| err("the address is not an IPv4 or IPv6 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| err("the prefix length is not a number"))?;
        Cidr::new(addr, prefix).ok_or_else(|| {
            err(&format!(
                "a prefix of /{prefix} is longer than the {}-bit address",
                bits(addr)
            ))
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!(c("10.244.0.0/16").to_string(), "10.244.0.0/16");
        assert_eq!(c("10.244.3.7/16").network().to_string(), "10.244.0.0/16");
        assert_eq!(c("fd00::1/64").network().to_string(), "fd00::/64");
        assert_eq!(c("0.0.0.0/0").network().to_string(), "0.0.0.0/0");
        for bad in [
            "10.244.0.0",
            "10.244.0.0/33",
            "10.300.0.0/16",
            "x/8",
            "::/129",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let e = "10.0.0.0/40".parse::<Cidr>().unwrap_err().to_string();
        assert!(e.contains("longer than the 32-bit address"), "{e}");
    }

    #[test]
    fn overlap_and_containment() {
        assert!(c("10.244.0.0/16").overlaps(&c("10.244.5.0/24")));
        assert!(c("10.244.5.0/24").overlaps(&c("10.244.0.0/16")));
        assert!(c("10.0.0.0/8").overlaps(&c("10.96.0.0/12")));
        assert!(!c("10.244.0.0/16").overlaps(&c("10.96.0.0/12")));
        assert!(!c("192.168.0.0/16").overlaps(&c("192.169.0.0/16")));
        assert!(!c("10.0.0.0/8").overlaps(&c("fd00::/8")));
        assert!(c("0.0.0.0/0").overlaps(&c("1.2.3.4/32")));
        assert!(c("fd00::/8").overlaps(&c("fd12::1/128")));
        assert!(c("10.96.0.0/12").contains("10.111.255.255".parse().unwrap()));
        assert!(!c("10.96.0.0/12").contains("10.112.0.0".parse().unwrap()));
        assert!(c("::/0").contains("2001:db8::1".parse().unwrap()));
    }
}
