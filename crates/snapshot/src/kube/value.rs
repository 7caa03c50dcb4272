//! What a value of the API server's keyspace holds, decoded without ever printing
//! garbage: Kubernetes protobuf (`k8s\0` and a `runtime.Unknown` envelope), JSON
//! (custom resources), values encrypted at rest (`k8s:enc:<provider>:v1:<key>:`,
//! reported, not decoded), text, or opaque bytes shown as a length and hex preview.
//!
//! Every function here is total: arbitrary bytes give a [`Decoded`], never a panic
//! (see the proptests).

use prost::Message;
use serde::Serialize;
use serde_json::{Map, Value};

use super::types;

/// The magic that starts a Kubernetes protobuf value.
pub const PROTOBUF_MAGIC: &[u8] = b"k8s\0";
/// The prefix of a value encrypted at rest.
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";
/// How many bytes an opaque value's hex preview shows.
pub const HEX_PREVIEW: usize = 32;

/// How a value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Kubernetes protobuf (`k8s\0`).
    Protobuf,
    /// JSON (custom resources, or an API server storing JSON).
    Json,
    /// Encrypted at rest (`k8s:enc:`).
    Encrypted,
    /// Printable UTF-8 that is none of the above.
    Text,
    /// Anything else.
    Binary,
}

/// Who encrypted a value at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    /// The provider (`aescbc`, `aesgcm`, `secretbox`, `kms`).
    pub provider: String,
    /// The provider's format version (`v1`, `v2`).
    pub version: Option<String>,
    /// The key's (or KMS plugin's) name.
    pub key_name: Option<String>,
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decoded {
    /// How it is stored.
    pub encoding: Encoding,
    /// `apiVersion`, when known.
    pub api_version: Option<String>,
    /// `kind`, when known.
    pub kind: Option<String>,
    /// The object as the API would show it (for protobuf: the fields kastellan
    /// declares; see `complete`).
    pub object: Option<Value>,
    /// Whether `object` is the whole object (false: only apiVersion, kind and
    /// metadata could be decoded).
    pub complete: bool,
    /// Whether the object holds secret data (a Secret: its data is base64, not
    /// encrypted).
    pub secret: bool,
    /// Set when encrypted at rest.
    pub encryption: Option<Encryption>,
    /// The text, for a plain text value.
    pub text: Option<String>,
    /// Length of the bytes that could not be decoded.
    pub length: usize,
    /// Hex of the first [`HEX_PREVIEW`] bytes of what could not be decoded.
    pub hex_preview: Option<String>,
    /// Why something was not (fully) decoded.
    pub note: Option<String>,
}

impl Decoded {
    fn new(encoding: Encoding, length: usize) -> Decoded {
        Decoded {
            encoding,
            api_version: None,
            kind: None,
            object: None,
            complete: false,
            secret: false,
            encryption: None,
            text: None,
            length,
            hex_preview: None,
            note: None,
        }
    }

    fn opaque(encoding: Encoding, bytes: &[u8], note: impl Into<String>) -> Decoded {
        let mut d = Decoded::new(encoding, bytes.len());
        d.hex_preview = Some(hex::encode(&bytes[..bytes.len().min(HEX_PREVIEW)]));
        d.note = Some(note.into());
        d
    }
}

/// Tells how a value is stored, without decoding it.
pub fn encoding(value: &[u8]) -> Encoding {
    if value.starts_with(ENCRYPTED_PREFIX) {
        Encoding::Encrypted
    } else if value.starts_with(PROTOBUF_MAGIC) {
        Encoding::Protobuf
    } else if value.trim_ascii_start().starts_with(b"{") {
        Encoding::Json
    } else if printable(value).is_some() {
        Encoding::Text
    } else {
        Encoding::Binary
    }
}

/// Decodes the value of the etcd key `key`, decrypting it first when it was encrypted
/// at rest with a key of `keyring`. A decrypted value keeps its [`Decoded::encryption`]
/// (so that it still shows as encrypted at rest); one that the keyring cannot open stays
/// undecoded, with the reason in [`Decoded::note`].
pub fn decode_with(
    key: &[u8],
    value: &[u8],
    keyring: Option<&super::encryption::Keyring>,
) -> Decoded {
    let Some(keyring) = keyring.filter(|_| encoding(value) == Encoding::Encrypted) else {
        return decode(value);
    };
    let sealed = encrypted(value);
    match keyring.decrypt(key, value) {
        Ok(Some(plain)) => {
            let mut d = decode(&plain);
            d.encryption = sealed.encryption;
            d.note = Some(match d.note.take() {
                Some(n) => format!("decrypted with the encryption configuration; {n}"),
                None => "decrypted with the encryption configuration".into(),
            });
            d
        }
        Ok(None) => sealed,
        Err(e) => {
            let mut d = sealed;
            d.note = Some(format!("encrypted at rest; {e}"));
            d
        }
    }
}

/// Decodes a value.
pub fn decode(value: &[u8]) -> Decoded {
    match encoding(value) {
        Encoding::Encrypted => encrypted(value),
        Encoding::Protobuf => protobuf(value),
        Encoding::Json => match serde_json::from_slice::<Value>(value) {
            Ok(object) => {
                let mut d = Decoded::new(Encoding::Json, 0);
                d.api_version = str_field(&object, "apiVersion");
                d.kind = str_field(&object, "kind");
                d.secret = d.kind.as_deref() == Some("Secret");
                d.object = Some(object);
                d.complete = true;
                d
            }
            Err(e) => match printable(value) {
                Some(text) => {
                    let mut d = Decoded::new(Encoding::Text, 0);
                    d.text = Some(text.to_string());
                    d.note = Some(format!("starts like JSON but is not: {e}"));
                    d
                }
                None => Decoded::opaque(Encoding::Binary, value, format!("not JSON: {e}")),
            },
        },
        Encoding::Text => {
            let mut d = Decoded::new(Encoding::Text, 0);
            d.text = printable(value).map(str::to_string);
            d.complete = true;
            d
        }
        Encoding::Binary => Decoded::opaque(Encoding::Binary, value, "not a Kubernetes object"),
    }
}

fn str_field(v: &Value, name: &str) -> Option<String> {
    v.get(name).and_then(Value::as_str).map(str::to_string)
}

/// UTF-8 without control characters other than tab, CR and LF.
fn printable(value: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(value).ok()?;
    s.chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .then_some(s)
}

/// `k8s:enc:<provider>:<version>:<key name>:<ciphertext>`.
fn encrypted(value: &[u8]) -> Decoded {
    let rest = &value[ENCRYPTED_PREFIX.len()..];
    let mut fields = rest.splitn(4, |&b| b == b':');
    let mut field = || {
        fields
            .next()
            .and_then(|f| std::str::from_utf8(f).ok())
            .filter(|f| !f.is_empty() && f.len() <= 256)
            .map(str::to_string)
    };
    let provider = field().unwrap_or_else(|| "unknown".to_string());
    let version = field();
    let key_name = field();
    let mut d = Decoded::new(Encoding::Encrypted, value.len());
    d.encryption = Some(Encryption {
        provider,
        version,
        key_name,
    });
    d.note = Some("encrypted at rest; not decoded".into());
    d
}

fn protobuf(value: &[u8]) -> Decoded {
    let body = &value[PROTOBUF_MAGIC.len()..];
    let Ok(envelope) = types::Unknown::decode(body) else {
        return Decoded::opaque(
            Encoding::Binary,
            value,
            "starts with the k8s protobuf magic but the envelope does not decode",
        );
    };
    let (api_version, kind) = envelope
        .type_meta
        .map(|t| (t.api_version, t.kind))
        .unwrap_or_default();
    let raw = envelope.raw.unwrap_or_default();
    let mut d = Decoded::new(Encoding::Protobuf, 0);
    d.api_version = api_version.clone();
    d.kind = kind.clone();
    d.secret = kind.as_deref() == Some("Secret");
    if let Some(enc) = envelope.content_encoding.filter(|e| !e.is_empty()) {
        let mut o = Decoded::opaque(
            Encoding::Protobuf,
            &raw,
            format!("content encoding {enc} is not supported"),
        );
        o.api_version = api_version;
        o.kind = kind;
        return o;
    }
    let typed = typed(
        api_version.as_deref().unwrap_or(""),
        kind.as_deref().unwrap_or(""),
        &raw,
    );
    let (body, complete, note) = match typed {
        Some(Ok((v, true))) => (Some(v), true, None),
        Some(Ok((v, false))) => (
            Some(v),
            false,
            Some(format!(
                "the {} holds fields kastellan does not declare; they are left out",
                kind.as_deref().unwrap_or("object")
            )),
        ),
        failed => {
            let why = match failed {
                Some(Err(e)) => format!(
                    "the {} does not decode: {e}",
                    kind.as_deref().unwrap_or("object")
                ),
                _ => "kastellan declares no protobuf schema for this kind; metadata only".into(),
            };
            match types::Generic::decode(raw.as_slice()) {
                Ok(g) if g.metadata.is_some() => (serde_json::to_value(&g).ok(), false, Some(why)),
                _ => {
                    let mut o = Decoded::opaque(Encoding::Protobuf, &raw, why);
                    o.api_version = api_version;
                    o.kind = kind;
                    o.secret = d.secret;
                    return o;
                }
            }
        }
    };
    let mut object = Map::new();
    if let Some(a) = &api_version {
        object.insert("apiVersion".into(), Value::String(a.clone()));
    }
    if let Some(k) = &kind {
        object.insert("kind".into(), Value::String(k.clone()));
    }
    if let Some(Value::Object(fields)) = body.map(prune) {
        object.extend(fields);
    }
    d.object = Some(Value::Object(object));
    d.complete = complete;
    d.note = note;
    d
}

/// Decodes `raw` as the message of a known kind; `None` if the kind is not declared.
/// The `bool` says whether the message re-encodes to exactly `raw`'s length: prost
/// skips the fields a message does not declare, so a shorter re-encoding means that
/// some of the object was left out (the API server's encoder writes every field it
/// holds, as kastellan's types do, so a complete decode re-encodes to the same length).
fn typed(api_version: &str, kind: &str, raw: &[u8]) -> Option<Result<(Value, bool), String>> {
    fn go<M: Message + Default + Serialize>(raw: &[u8]) -> Result<(Value, bool), String> {
        let m = M::decode(raw).map_err(|e| e.to_string())?;
        let exact = m.encoded_len() == raw.len();
        Ok((serde_json::to_value(&m).map_err(|e| e.to_string())?, exact))
    }
    Some(match (api_version, kind) {
        ("v1", "ConfigMap") => go::<types::ConfigMap>(raw),
        ("v1", "Secret") => go::<types::Secret>(raw),
        ("v1", "Namespace") => go::<types::Namespace>(raw),
        ("v1", "Pod") => go::<types::Pod>(raw),
        ("v1", "Service") => go::<types::Service>(raw),
        ("v1", "Node") => go::<types::Node>(raw),
        ("apps/v1", "Deployment") => go::<types::Deployment>(raw),
        ("coordination.k8s.io/v1", "Lease") => go::<types::Lease>(raw),
        _ => return None,
    })
}

/// Drops nulls, empty maps and empty lists, as `omitempty` does in the JSON form.
fn prune(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, prune(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(prune).collect()),
        other => other,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
