//! The archive format: tar, compressed with zstd, optionally wrapped in age.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::collect::{Content, Member};
use crate::error::{Error, Result, io_err};

/// The first bytes of a binary age file.
pub(crate) const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";

/// sha256 and length of everything written through it.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
    pub(crate) fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// sha256 and length of everything read through it, shared so that it can be read after
/// the reader has been buried in a decoder chain.
#[derive(Clone, Default)]
pub(crate) struct Tally(Arc<Mutex<(Sha256, u64)>>);

impl Tally {
    /// Bytes read so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    pub(crate) fn result(&self) -> (u64, String) {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (g.1, hex::encode(g.0.clone().finalize()))
    }
}

pub(crate) struct HashReader<R> {
    inner: R,
    tally: Tally,
}

impl<R: Read> HashReader<R> {
    pub(crate) fn new(inner: R, tally: Tally) -> Self {
        HashReader { inner, tally }
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut g = self.tally.0.lock().unwrap_or_else(|p| p.into_inner());
        g.0.update(&buf[..n]);
        g.1 += n as u64;
        Ok(n)
    }
}

/// How the archive is protected.
pub(crate) enum Protection {
    Plain,
    Age(age::Encryptor),
}

enum Sink<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Age(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Age(w) => w.flush(),
        }
    }
}

impl<W: Write> Sink<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            Sink::Plain(w) => Ok(w),
            Sink::Age(w) => w.finish(),
        }
    }
}

/// Writes the archive to `file` (already created, mode 0600): `manifest.json` first,
/// then every member; fsyncs. Returns the size and sha256 of the file.
pub(crate) fn write(
    file: std::fs::File,
    path: &Path,
    manifest_json: &[u8],
    members: &[Member],
    mtime: u64,
    protection: Protection,
    meter: &crate::meter::Meter,
) -> Result<(u64, String)> {
    let werr = io_err("writing", path);
    let sizes: u64 = members
        .iter()
        .map(|m| match &m.content {
            Content::Memory(b) => b.len() as u64,
            Content::File(p) => std::fs::metadata(p).map_or(0, |m| m.len()),
        })
        .sum();
    meter.set_total(sizes);
    let hashing = HashWriter::new(io::BufWriter::with_capacity(1 << 20, file));
    let sink = match protection {
        Protection::Plain => Sink::Plain(hashing),
        Protection::Age(enc) => Sink::Age(enc.wrap_output(hashing).map_err(|e| Error::Io {
            action: "writing",
            path: path.to_path_buf(),
            source: e,
        })?),
    };
    let result = (|| -> io::Result<(u64, String, std::fs::File)> {
        let zst = zstd::Encoder::new(sink, 3)?;
        let mut tar = tar::Builder::new(zst);
        tar.mode(tar::HeaderMode::Deterministic);
        append(
            &mut tar,
            crate::manifest::MANIFEST_PATH,
            manifest_json.len() as u64,
            manifest_json,
            mtime,
        )?;
        for m in members {
            match &m.content {
                Content::Memory(b) => {
                    append(&mut tar, &m.path, b.len() as u64, &b[..], mtime)?;
                    meter.add(b.len() as u64);
                }
                Content::File(p) => {
                    let f = std::fs::File::open(p)?;
                    let len = f.metadata()?.len();
                    let f = crate::meter::MeteredReader { inner: f, meter };
                    append(&mut tar, &m.path, len, f, mtime)?;
                }
            }
        }
        let zst = tar.into_inner()?;
        let sink = zst.finish()?;
        let hashing = sink.finish()?;
        let (buf, bytes, sha) = hashing.finish();
        let file = buf.into_inner().map_err(|e| e.into_error())?;
        Ok((bytes, sha, file))
    })();
    let (bytes, sha, file) = result.map_err(werr)?;
    file.sync_all().map_err(io_err("syncing", path))?;
    Ok((bytes, sha))
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: impl Read,
    mtime: u64,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, path, data)
}

/// Opens a bundle for reading: the decompressed tar stream and the tally of the raw
/// file's bytes. `identities` are used when the file is age-encrypted.
pub(crate) fn open(
    path: &Path,
    identities: &[Box<dyn age::Identity + Send + Sync>],
) -> Result<(Box<dyn Read>, Tally, bool)> {
    let file = std::fs::File::open(path).map_err(io_err("opening", path))?;
    let tally = Tally::default();
    let mut reader = io::BufReader::with_capacity(1 << 20, HashReader::new(file, tally.clone()));
    let head = io::BufRead::fill_buf(&mut reader).map_err(io_err("reading", path))?;
    let encrypted = head.starts_with(AGE_MAGIC);
    let plain: Box<dyn Read> = if encrypted {
        if identities.is_empty() {
            return Err(Error::Decrypt {
                path: path.to_path_buf(),
                message:
                    "the bundle is age-encrypted: pass --identity FILE or --passphrase-file FILE"
                        .into(),
            });
        }
        let dec = age::Decryptor::new_buffered(reader).map_err(|e| Error::Decrypt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let stream = dec
            .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .map_err(|e| Error::Decrypt {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Box::new(stream)
    } else {
        Box::new(reader)
    };
    let zst = zstd::Decoder::new(plain).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        message: format!("not a zstd stream: {e}"),
    })?;
    Ok((Box::new(zst), tally, encrypted))
}
