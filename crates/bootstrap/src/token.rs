//! Bootstrap tokens: `ID.SECRET`, each part of `[a-z0-9]`, 6 and 16 characters long,
//! drawn from the operating system's CSPRNG without modulo bias; their usages and extra
//! groups, checked as the apiserver's bootstrap authenticator reads them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The characters of a token (`[a-z0-9]`).
const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
/// The length of a token's ID.
pub const ID_LEN: usize = 6;
/// The length of a token's secret.
pub const SECRET_LEN: usize = 16;

/// The group kubeadm gives the tokens nodes join with (and that the `kubeadm-certs`
/// Role is bound to).
pub const DEFAULT_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

fn well_formed(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// `len` characters of [`ALPHABET`] from the system CSPRNG. 256 is not a multiple of
/// 36, so bytes of 252 and above are drawn again: every character is equally likely.
fn random_chars(len: usize) -> Result<String> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 32];
    while out.len() < len {
        aws_lc_rs::rand::fill(&mut buf).map_err(|_| Error::Random)?;
        for b in buf {
            if out.len() == len {
                break;
            }
            if b < 252 {
                out.push(char::from(ALPHABET[usize::from(b % 36)]));
            }
        }
    }
    Ok(out)
}

/// A token's public part, which names its Secret (`bootstrap-token-<id>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TokenId(String);

impl TokenId {
    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of the token's Secret in `kube-system`.
    pub fn secret_name(&self) -> String {
        format!("{SECRET_PREFIX}{}", self.0)
    }

    /// The ID of a Secret named `bootstrap-token-<id>`, if the name is one.
    pub fn from_secret_name(name: &str) -> Option<TokenId> {
        name.strip_prefix(SECRET_PREFIX)
            .and_then(|id| id.parse().ok())
    }
}

/// The prefix of every bootstrap token Secret's name.
pub const SECRET_PREFIX: &str = "bootstrap-token-";

impl FromStr for TokenId {
    type Err = Error;

    /// Reads an ID, or the ID of a whole `ID.SECRET` token (as `kubeadm token delete`
    /// accepts both).
    fn from_str(s: &str) -> Result<Self> {
        if well_formed(s, ID_LEN) {
            return Ok(TokenId(s.to_string()));
        }
        match s.parse::<Token>() {
            Ok(t) => Ok(t.id),
            Err(_) => Err(Error::TokenId(redact(s))),
        }
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A whole token, `ID.SECRET`. `Debug` hides the secret; `Display` shows the token,
/// and is meant for the one place that prints it on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    id: TokenId,
    secret: String,
}

impl Token {
    /// A new random token.
    pub fn generate() -> Result<Token> {
        Ok(Token {
            id: TokenId(random_chars(ID_LEN)?),
            secret: random_chars(SECRET_LEN)?,
        })
    }

    /// The token from its two parts, each checked.
    pub fn from_parts(id: &str, secret: &str) -> Result<Token> {
        format!("{id}.{secret}").parse()
    }

    /// The public part.
    pub fn id(&self) -> &TokenId {
        &self.id
    }

    /// The secret part.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl FromStr for Token {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.split_once('.') {
            Some((id, secret)) if well_formed(id, ID_LEN) && well_formed(secret, SECRET_LEN) => {
                Ok(Token {
                    id: TokenId(id.to_string()),
                    secret: secret.to_string(),
                })
            }
            // The input may be a real token with one wrong character: never echo it.
            _ => Err(Error::Token(redact(s))),
        }
    }
}

/// `s` with everything after the first 6 characters replaced, so that a mistyped
/// token in an error message does not give its secret away.
fn redact(s: &str) -> String {
    let keep: String = s.chars().take(ID_LEN).collect();
    if s.chars().count() > ID_LEN {
        format!("{keep}...")
    } else {
        keep
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}.<secret>)", self.id)
    }
}

impl Serialize for Token {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a token may be used for (`usage-bootstrap-<usage>: "true"` in its Secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Usage {
    /// Signing the `cluster-info` ConfigMap (discovery).
    Signing,
    /// Authenticating to the apiserver (TLS bootstrap).
    Authentication,
}

impl Usage {
    /// Both usages, as kubeadm gives a node's token by default.
    pub const ALL: [Usage; 2] = [Usage::Signing, Usage::Authentication];

    /// The name in the Secret's key.
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::Signing => "signing",
            Usage::Authentication => "authentication",
        }
    }
}

impl FromStr for Usage {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "signing" => Ok(Usage::Signing),
            "authentication" => Ok(Usage::Authentication),
            other => Err(Error::Usage(other.to_string())),
        }
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An extra group of a token: `system:bootstrappers:` then `[a-z0-9:-]{0,255}`
/// ending in `[a-z0-9]`, the only groups the apiserver's authenticator grants.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Group(String);

impl Group {
    /// The group's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Group {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let ok = s.strip_prefix("system:bootstrappers:").is_some_and(|rest| {
            (1..=256).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
                && rest
                    .bytes()
                    .last()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
        if ok {
            Ok(Group(s.to_string()))
        } else {
            Err(Error::Group(s.to_string()))
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches_kubeadm_pattern(s: &str) -> bool {
        // \A([a-z0-9]{6})\.([a-z0-9]{16})\z, written out.
        let b = s.as_bytes();
        b.len() == 23
            && b[6] == b'.'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 6 || c.is_ascii_digit() || c.is_ascii_lowercase())
    }

    #[test]
    fn generated_tokens_have_kubeadms_format_and_differ() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let t = Token::generate().unwrap();
            let s = t.to_string();
            assert!(matches_kubeadm_pattern(&s), "{s}");
            assert_eq!(s.parse::<Token>().unwrap(), t);
            assert!(seen.insert(s), "a repeated token");
        }
    }

    #[test]
    fn every_character_of_the_alphabet_comes_up() {
        let s = random_chars(5000).unwrap();
        for c in ALPHABET {
            assert!(s.as_bytes().contains(c), "{} never drawn", char::from(*c));
        }
    }

    #[test]
    fn bad_tokens_are_refused_without_their_secret() {
        for bad in [
            "abcdef.0123456789abcdeF",
            "abcde.0123456789abcdef",
            "abcdef0123456789abcdef",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdef0",
            "abcdef:0123456789abcdef",
            "",
        ] {
            let e = bad.parse::<Token>().unwrap_err().to_string();
            assert!(!e.contains("0123456789"), "{e}");
        }
        let t: Token = "abcdef.0123456789abcdef".parse().unwrap();
        assert_eq!(t.id().as_str(), "abcdef");
        assert_eq!(t.secret(), "0123456789abcdef");
        assert_eq!(format!("{t:?}"), "Token(abcdef.<secret>)");
    }

    #[test]
    fn ids_read_alone_or_from_a_token() {
        assert_eq!("abc123".parse::<TokenId>().unwrap().as_str(), "abc123");
        assert_eq!(
            "abc123.0123456789abcdef"
                .parse::<TokenId>()
                .unwrap()
                .as_str(),
            "abc123"
        );
        assert!("ABC123".parse::<TokenId>().is_err());
        assert!("abc12".parse::<TokenId>().is_err());
        let e = "abcdef.0123456789abcdeF"
            .parse::<TokenId>()
            .unwrap_err()
            .to_string();
        assert!(!e.contains("0123456789"), "{e}");
        let id: TokenId = "abc123".parse().unwrap();
        assert_eq!(id.secret_name(), "bootstrap-token-abc123");
        assert_eq!(
            TokenId::from_secret_name("bootstrap-token-abc123"),
            Some(id)
        );
        assert_eq!(TokenId::from_secret_name("bootstrap-token-x"), None);
        assert_eq!(TokenId::from_secret_name("default-token-abc123"), None);
    }

    #[test]
    fn groups_follow_the_authenticators_rule() {
        for ok in [
            DEFAULT_GROUP,
            "system:bootstrappers:a",
            "system:bootstrappers:worker-pool:2",
        ] {
            assert!(ok.parse::<Group>().is_ok(), "{ok}");
        }
        for bad in [
            "system:bootstrappers:",
            "system:bootstrappers:x-",
            "system:bootstrappers:X",
            "system:masters",
            "system:bootstrappers",
        ] {
            assert!(bad.parse::<Group>().is_err(), "{bad}");
        }
        let long = format!("system:bootstrappers:{}", "a".repeat(256));
        assert!(long.parse::<Group>().is_ok());
        let too_long = format!("system:bootstrappers:{}", "a".repeat(257));
        assert!(too_long.parse::<Group>().is_err());
    }

    #[test]
    fn usages_are_signing_and_authentication() {
        assert_eq!("signing".parse::<Usage>().unwrap(), Usage::Signing);
        assert_eq!(
            "authentication".parse::<Usage>().unwrap(),
            Usage::Authentication
        );
        assert!("Signing".parse::<Usage>().is_err());
        assert!("auth".parse::<Usage>().is_err());
    }
}
