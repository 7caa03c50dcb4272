//! Off-node copies: bundles in an S3 (or S3-compatible) bucket, through `object_store`.
//!
//! A location is `s3://BUCKET/PREFIX`; a bundle `NAME` lives at `PREFIX/NAME` and its
//! sidecar at `PREFIX/NAME.json`, as in a local directory. [`Remote::push`] uploads the
//! bundle first (multipart, its sha256 in the object's metadata `sha256`) and the
//! sidecar last: a bundle counts as copied only once its sidecar is there, so
//! [`Remote::list`] and [`Remote::prune`] see only whole copies (plus those without a
//! sidecar, which they mark as not verified and never protect).
//!
//! Uploads resume: a journal beside the local bundle (`<bundle>.s3-upload.json`, 0600)
//! is written before the first request and after each part (the multipart upload's id
//! and every finished part), so a run that failed or was killed half-way is continued
//! by the next push of the same bundle at the next part ([`interrupted`] finds them). A
//! push of a bundle whose remote copy already has the same size and sha256 uploads
//! nothing (or only the missing sidecar). Every push hashes the whole local file and
//! completes the upload only when the hash is the sidecar's; the completed object's
//! size and recorded sha256 are read back before the sidecar goes up.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use futures::StreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectStore, ObjectStoreExt as _, PutMultipartOptions,
    PutPayload,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, io_err};
use crate::manifest::{self, Sidecar};
use crate::retention::Rules;
use crate::store::{BundleInfo, PruneOutcome};

/// The scheme of a remote location.
pub const SCHEME: &str = "s3://";
/// The object metadata key that holds the bundle's sha256.
pub const SHA256_METADATA: &str = "sha256";
/// The size of one uploaded part unless asked otherwise (S3's minimum is 5 MiB, but
/// for the last part).
pub const DEFAULT_PART_SIZE: usize = 16 << 20;
/// S3's smallest part but for the last.
pub const MIN_PART_SIZE: usize = 5 << 20;

/// `s3://BUCKET/PREFIX`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The bucket.
    pub bucket: String,
    /// The prefix inside it, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl FromStr for Location {
    type Err = Error;

    fn from_str(s: &str) -> Result<Location> {
        let bad = |why: &str| Error::Usage(format!("{s}: {why} (expected s3://BUCKET/PREFIX)"));
        let rest = s
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty()
            || !bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Err(bad(
                "the bucket name must be lowercase letters, digits, '-' or '.'",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|p| p == "." || p == ".." || (p.is_empty() && !prefix.is_empty()))
        {
            return Err(bad("the prefix has an empty, '.' or '..' part"));
        }
        Ok(Location {
            bucket: bucket.into(),
            prefix: prefix.into(),
        })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "{SCHEME}{}", self.bucket)
        } else {
            write!(f, "{SCHEME}{}/{}", self.bucket, self.prefix)
        }
    }
}

impl Location {
    /// Splits `s3://BUCKET/PREFIX/NAME` into the location and a bundle name.
    pub fn of_bundle(url: &str) -> Result<(Location, String)> {
        let (dir, name) = url.rsplit_once('/').unwrap_or(("", url));
        if !manifest::is_bundle_name(name) {
            return Err(Error::Usage(format!(
                "{url}: not a bundle's URL (expected s3://BUCKET/PREFIX/{}...{})",
                manifest::NAME_PREFIX,
                manifest::PLAIN_SUFFIX
            )));
        }
        Ok((dir.parse()?, name.into()))
    }

    /// The key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.into()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// `s3://BUCKET/KEY` of `name`.
    pub fn url(&self, name: &str) -> String {
        format!("{SCHEME}{}/{}", self.bucket, self.key(name))
    }
}

/// How to reach the store: the endpoint of an S3-compatible server, the region, the
/// addressing style and the credentials.
#[derive(Clone, Default)]
pub struct Settings {
    /// `https://...` or `http://...` (plain HTTP is allowed only when asked for by the
    /// URL); None: AWS's endpoint for the region.
    pub endpoint: Option<String>,
    /// The region (`us-east-1` when None).
    pub region: Option<String>,
    /// `https://BUCKET.endpoint/KEY` instead of `https://endpoint/BUCKET/KEY`.
    pub virtual_hosted_style: bool,
    /// The access key id, secret and session token, when given.
    pub credentials: Option<Credentials>,
    /// The size of each uploaded part ([`DEFAULT_PART_SIZE`] when None).
    pub part_size: Option<usize>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("credentials", &self.credentials.as_ref().map(|_| ".."))
            .field("part_size", &self.part_size)
            .finish()
    }
}

/// Static credentials.
#[derive(Clone)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
}

impl Credentials {
    /// Reads a shared credentials file (`~/.aws/credentials` format): the
    /// `aws_access_key_id`, `aws_secret_access_key` and `aws_session_token` of
    /// `profile`.
    pub fn from_file(path: &Path, profile: &str) -> Result<Credentials> {
        let text = std::fs::read_to_string(path).map_err(io_err("reading", path))?;
        let mut section = String::new();
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s.trim().trim_start_matches("profile ").trim().into();
                continue;
            }
            if section == profile
                && let Some((k, v)) = line.split_once('=')
            {
                values.insert(k.trim().to_ascii_lowercase(), v.trim().into());
            }
        }
        let get = |k: &str| values.get(k).filter(|v| !v.is_empty()).cloned();
        match (get("aws_access_key_id"), get("aws_secret_access_key")) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
                access_key_id,
                secret_access_key,
                session_token: get("aws_session_token"),
            }),
            _ => Err(Error::Usage(format!(
                "{}: no aws_access_key_id and aws_secret_access_key in profile [{profile}]",
                path.display()
            ))),
        }
    }
}

/// A bucket and prefix holding bundles.
#[derive(Debug)]
pub struct Remote {
    store: Arc<AmazonS3>,
    location: Location,
    part_size: usize,
}

/// What [`Remote::push`] did with one bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pushed {
    /// The remote copy was already whole (same size and sha256, sidecar there).
    AlreadyThere,
    /// The bundle was there but not its sidecar: only the sidecar was uploaded.
    SidecarOnly,
    /// Uploaded from the first byte.
    Uploaded,
    /// An interrupted upload was continued at part `from` (0-based).
    Resumed {
        /// The first part sent by this run.
        from: usize,
    },
}

/// One push's outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushOutcome {
    /// The bundle's name.
    pub bundle: String,
    /// `s3://BUCKET/KEY` of the copy.
    pub url: String,
    /// What was done.
    pub pushed: Pushed,
    /// Parts in the upload (0 when nothing was uploaded).
    pub parts: usize,
    /// Bytes sent by this run.
    pub bytes_sent: u64,
}

/// The journal of an upload under way, beside the local bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Journal {
    bucket: String,
    key: String,
    upload_id: String,
    part_size: usize,
    size: u64,
    sha256: String,
    /// The content ids of the finished parts, in order.
    parts: Vec<String>,
}

/// The journal path of a local bundle's upload.
pub fn journal_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.file_name().unwrap_or_default().to_os_string();
    name.push(".s3-upload.json");
    bundle.with_file_name(name)
}

/// Local bundles in `dir` whose copy was started and did not finish (a journal is
/// beside them: written before the first request, removed once the sidecar is up).
pub fn interrupted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err("listing", dir))? {
        let e = e.map_err(io_err("listing", dir))?;
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(bundle) = name.strip_suffix(".s3-upload.json")
            && manifest::is_bundle_name(bundle)
            && dir.join(bundle).is_file()
        {
            out.push(dir.join(bundle));
        }
    }
    out.sort();
    Ok(out)
}

impl Remote {
    /// A client for `location` (no request is made yet).
    pub fn new(location: Location, settings: &Settings) -> Result<Remote> {
        let part_size = settings.part_size.unwrap_or(DEFAULT_PART_SIZE);
        if part_size < MIN_PART_SIZE {
            return Err(Error::Usage(format!(
                "a part of {part_size} bytes is below S3's minimum of {MIN_PART_SIZE}"
            )));
        }
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&location.bucket)
            .with_region(settings.region.as_deref().unwrap_or("us-east-1"))
            .with_virtual_hosted_style_request(settings.virtual_hosted_style)
            .with_retry(object_store::RetryConfig {
                max_retries: 3,
                retry_timeout: std::time::Duration::from_secs(60),
                ..Default::default()
            });
        if let Some(e) = &settings.endpoint {
            b = b
                .with_endpoint(e.trim_end_matches('/'))
                .with_allow_http(e.starts_with("http://"));
        }
        match &settings.credentials {
            Some(c) => {
                b = b
                    .with_access_key_id(&c.access_key_id)
                    .with_secret_access_key(&c.secret_access_key);
                if let Some(t) = &c.session_token {
                    b = b.with_token(t);
                }
            }
            None => b = b.with_skip_signature(true),
        }
        let store = b.build().map_err(|e| Error::Remote {
            action: "configuring the client for",
            bucket: location.bucket.clone(),
            key: location.prefix.clone(),
            cause: Box::new(e),
        })?;
        Ok(Remote {
            store: Arc::new(store),
            location,
            part_size,
        })
    }

    /// The location.
    pub fn location(&self) -> &Location {
        &self.location
    }

    fn err(&self, action: &'static str, key: &str) -> impl FnOnce(object_store::Error) -> Error {
        let bucket = self.location.bucket.clone();
        let key = key.to_string();
        move |source| Error::Remote {
            action,
            bucket,
            key,
            cause: Box::new(source),
        }
    }

    fn state(&self, key: &str, message: String) -> Error {
        Error::RemoteState {
            bucket: self.location.bucket.clone(),
            key: key.into(),
            message,
        }
    }

    /// The remote sidecar of `name`, if there is one (and it parses).
    async fn sidecar(&self, name: &str) -> Result<Option<Sidecar>> {
        let key = self.location.key(&format!("{name}.json"));
        match self.store.get(&Key::from(key.as_str())).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(self.err("reading", &key))?;
                Ok(serde_json::from_slice(&bytes).ok())
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("reading", &key)(e)),
        }
    }

    /// The size and recorded sha256 of the object of `name`, if it exists.
    async fn object(&self, name: &str) -> Result<Option<(u64, Option<String>)>> {
        let key = self.location.key(name);
        let opts = GetOptions::default().with_head(true);
        match self.store.get_opts(&Key::from(key.as_str()), opts).await {
            Ok(r) => {
                let sha = r
                    .attributes
                    .get(&Attribute::Metadata(SHA256_METADATA.into()))
                    .map(|v| v.to_string());
                Ok(Some((r.meta.size, sha)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("reading", &key)(e)),
        }
    }

    async fn put_sidecar(&self, sidecar: &Sidecar) -> Result<()> {
        let key = self.location.key(&format!("{}.json", sidecar.bundle));
        let json = serde_json::to_vec_pretty(sidecar).map_err(|e| Error::Encode {
            what: "sidecar".into(),
            message: e.to_string(),
        })?;
        self.store
            .put(&Key::from(key.as_str()), PutPayload::from(json))
            .await
            .map_err(self.err("uploading", &key))?;
        Ok(())
    }

    /// Copies the local bundle (with its sidecar beside it) to the remote location:
    /// the bundle first, the sidecar last; skips what is already there and continues
    /// an interrupted upload. `progress` is told the bytes sent so far and the total.
    pub async fn push(
        &self,
        bundle: &Path,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<PushOutcome> {
        let name = bundle
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let side_path = manifest::sidecar_path(bundle);
        let local: Sidecar = serde_json::from_slice(
            &std::fs::read(&side_path).map_err(io_err("reading", &side_path))?,
        )
        .map_err(|e| Error::Corrupt {
            path: side_path.clone(),
            message: format!("not a sidecar: {e}"),
        })?;
        let key = self.location.key(&name);
        let url = self.location.url(&name);
        let journal_file = journal_path(bundle);
        let outcome = |pushed, parts, bytes_sent| PushOutcome {
            bundle: name.clone(),
            url: url.clone(),
            pushed,
            parts,
            bytes_sent,
        };

        // Marked as to be copied before the first request, so that a run that fails
        // (or is killed) before its upload starts is still picked up by the next one.
        if !journal_file.exists() {
            write_journal(
                &journal_file,
                &Journal {
                    bucket: self.location.bucket.clone(),
                    key: key.clone(),
                    upload_id: String::new(),
                    part_size: self.part_size,
                    size: local.size,
                    sha256: local.sha256.clone(),
                    parts: Vec::new(),
                },
            )?;
        }

        // Already whole there?
        let remote_side = self.sidecar(&name).await?;
        if let Some(s) = &remote_side
            && (s.sha256 != local.sha256 || s.size != local.size)
        {
            return Err(self.state(
                &key,
                format!(
                    "another bundle of this name is there (sha256 {}, {} bytes; this one's is {}, {} bytes); nothing was uploaded",
                    s.sha256, s.size, local.sha256, local.size
                ),
            ));
        }
        let object = self.object(&name).await?;
        let whole = object
            .as_ref()
            .is_some_and(|(size, sha)| *size == local.size && sha.as_ref() == Some(&local.sha256));
        if whole {
            remove_journal(&journal_file)?;
            if remote_side.is_some() {
                return Ok(outcome(Pushed::AlreadyThere, 0, 0));
            }
            self.put_sidecar(&local).await?;
            return Ok(outcome(Pushed::SidecarOnly, 0, 0));
        }

        // Continue the journaled upload, or start one.
        let journal: Option<Journal> = std::fs::read(&journal_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|j: &Journal| {
                j.bucket == self.location.bucket
                    && j.key == key
                    && j.size == local.size
                    && j.sha256 == local.sha256
                    && j.part_size >= MIN_PART_SIZE
                    && !j.upload_id.is_empty()
            });
        let (pushed, parts, sent) = match journal {
            Some(j) => match self.upload(bundle, &local, &key, j, progress).await {
                Ok((parts, sent, from)) => (Pushed::Resumed { from }, parts, sent),
                // The upload id is gone (aborted, expired or completed): start over.
                Err(Error::Remote { cause, .. })
                    if matches!(*cause, object_store::Error::NotFound { .. }) =>
                {
                    tracing::warn!("{url}: the interrupted upload is gone; uploading again");
                    let j = self.start(&local, &key).await?;
                    let (parts, sent, _) = self.upload(bundle, &local, &key, j, progress).await?;
                    (Pushed::Uploaded, parts, sent)
                }
                Err(e) => return Err(e),
            },
            None => {
                let j = self.start(&local, &key).await?;
                let (parts, sent, _) = self.upload(bundle, &local, &key, j, progress).await?;
                (Pushed::Uploaded, parts, sent)
            }
        };
        // Read back: the object's size and recorded sha256 are the local bundle's.
        match self.object(&name).await? {
            Some((size, Some(sha))) if size == local.size && sha == local.sha256 => {}
            other => {
                return Err(self.state(
                    &key,
                    format!(
                        "after the upload the object reads as {other:?} (size, sha256), not {} bytes with sha256 {}; no sidecar was uploaded",
                        local.size, local.sha256
                    ),
                ));
            }
        }
        pause_before_sidecar();
        self.put_sidecar(&local).await?;
        remove_journal(&journal_file)?;
        Ok(outcome(pushed, parts, sent))
    }

    async fn start(&self, local: &Sidecar, key: &str) -> Result<Journal> {
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(SHA256_METADATA.into()),
            local.sha256.clone().into(),
        );
        let opts = PutMultipartOptions {
            attributes,
            ..Default::default()
        };
        let id = self
            .store
            .create_multipart_opts(&Key::from(key), opts)
            .await
            .map_err(self.err("starting the upload of", key))?;
        Ok(Journal {
            bucket: self.location.bucket.clone(),
            key: key.into(),
            upload_id: id,
            part_size: self.part_size,
            size: local.size,
            sha256: local.sha256.clone(),
            parts: Vec::new(),
        })
    }

    /// Sends the parts not in the journal, journaling each; hashes every byte of the
    /// file and completes the upload only when the hash is the sidecar's. Returns the
    /// parts, the bytes sent and the first part sent.
    async fn upload(
        &self,
        bundle: &Path,
        local: &Sidecar,
        key: &str,
        mut journal: Journal,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<(usize, u64, usize)> {
        let journal_file = journal_path(bundle);
        let location = Key::from(key);
        let mut file = std::fs::File::open(bundle).map_err(io_err("reading", bundle))?;
        let mut hasher = Sha256::new();
        let from = journal.parts.len();
        let mut sent = 0u64;
        let mut offset = 0u64;
        let mut index = 0usize;
        let mut buf = vec![0u8; journal.part_size];
        loop {
            let n = read_full(&mut file, &mut buf).map_err(io_err("reading", bundle))?;
            if n == 0 && index > 0 {
                break;
            }
            let chunk = &buf[..n];
            hasher.update(chunk);
            offset += n as u64;
            if index >= from {
                let part = self
                    .store
                    .put_part(
                        &location,
                        &journal.upload_id,
                        index,
                        PutPayload::from(chunk.to_vec()),
                    )
                    .await
                    .map_err(self.err("uploading a part of", key))?;
                journal.parts.push(part.content_id);
                write_journal(&journal_file, &journal)?;
                sent += n as u64;
                pause_after_part(index);
            }
            progress(offset, local.size);
            index += 1;
            if n < buf.len() {
                break;
            }
        }
        // The file must be what the sidecar says before the object is made whole.
        let sha = hex::encode(hasher.finalize());
        if offset != local.size || sha != local.sha256 {
            let _ = self
                .store
                .abort_multipart(&location, &journal.upload_id)
                .await;
            remove_journal(&journal_file)?;
            return Err(Error::Corrupt {
                path: bundle.to_path_buf(),
                message: format!(
                    "its sha256 is {sha} ({offset} bytes), its sidecar says {} ({} bytes); the upload was abandoned",
                    local.sha256, local.size
                ),
            });
        }
        let parts = journal
            .parts
            .iter()
            .map(|c| PartId {
                content_id: c.clone(),
            })
            .collect::<Vec<_>>();
        let count = parts.len();
        self.store
            .complete_multipart(&location, &journal.upload_id, parts)
            .await
            .map_err(self.err("completing the upload of", key))?;
        Ok((count, sent, from))
    }

    /// The bundles at the location, newest first (as [`crate::list`] lists a
    /// directory). `path` is the bundle's `s3://` URL.
    pub async fn list(&self) -> Result<Vec<BundleInfo>> {
        let prefix =
            (!self.location.prefix.is_empty()).then(|| Key::from(self.location.prefix.as_str()));
        let listing = self
            .store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(self.err("listing", &self.location.prefix))?;
        let mut sizes = BTreeMap::new();
        for o in listing.objects {
            if let Some(name) = o.location.filename() {
                sizes.insert(name.to_string(), o.size);
            }
        }
        let mut out = Vec::new();
        for (name, size) in &sizes {
            if !manifest::is_bundle_name(name) {
                continue;
            }
            let sidecar = if sizes.contains_key(&format!("{name}.json")) {
                self.sidecar(name).await?
            } else {
                None
            };
            out.push(crate::store::info(
                name.clone(),
                PathBuf::from(self.location.url(name)),
                *size,
                sidecar,
            ));
        }
        crate::store::sort(&mut out);
        Ok(out)
    }

    /// Downloads bundle `name` into `dir` (a private directory): the bundle (mode
    /// 0600) and its sidecar beside it. The bytes' size and sha256 must be the remote
    /// sidecar's; a bundle without a sidecar is not a whole copy and is refused.
    pub async fn fetch(
        &self,
        name: &str,
        dir: &Path,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<PathBuf> {
        let key = self.location.key(name);
        let Some(sidecar) = self.sidecar(name).await? else {
            return Err(self.state(
                &key,
                "no sidecar beside it: not a whole copy (an upload that did not finish?)".into(),
            ));
        };
        let to = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&to)
            .map_err(io_err("creating", &to))?;
        let got = self
            .store
            .get(&Key::from(key.as_str()))
            .await
            .map_err(self.err("downloading", &key))?;
        let mut stream = got.into_stream();
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(self.err("downloading", &key))?;
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(io_err("writing", &to))?;
            n += chunk.len() as u64;
            progress(n, sidecar.size);
        }
        file.sync_all().map_err(io_err("syncing", &to))?;
        let sha = hex::encode(hasher.finalize());
        if n != sidecar.size || sha != sidecar.sha256 {
            return Err(self.state(
                &key,
                format!(
                    "downloaded {n} bytes with sha256 {sha}; its sidecar says {} bytes, {}",
                    sidecar.size, sidecar.sha256
                ),
            ));
        }
        crate::create::write_sidecar(&to, &sidecar)?;
        Ok(to)
    }

    /// Downloads bundle `name` into a private temp directory (0700, removed after) and
    /// verifies it as [`crate::verify`] does; on success records the verification in
    /// the remote sidecar.
    pub async fn verify(
        &self,
        name: &str,
        decryption: &crate::Decryption,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<crate::Verified> {
        let scratch = tempfile::Builder::new()
            .prefix("kastellan-s3-")
            .tempdir()
            .map_err(io_err(
                "creating a temp directory in",
                &std::env::temp_dir(),
            ))?;
        let path = self.fetch(name, scratch.path(), progress).await?;
        // Reading and hashing: blocking, as `backup verify` of a local file is.
        let v = crate::verify(&path, decryption, &crate::meter::Meter::default())?;
        let side_path = manifest::sidecar_path(&path);
        if let Ok(b) = std::fs::read(&side_path)
            && let Ok(s) = serde_json::from_slice::<Sidecar>(&b)
        {
            self.put_sidecar(&s).await?;
        }
        Ok(v)
    }

    /// Applies the rules to the bundles at the location as [`crate::prune`] does in a
    /// directory; deletes (the sidecar first, then the bundle) unless `dry_run`. The
    /// newest verified bundle is protected only when its object's size and recorded
    /// sha256 are still its sidecar's.
    pub async fn prune(&self, rules: Rules, dry_run: bool) -> Result<PruneOutcome> {
        crate::store::check_rules(rules)?;
        let mut bundles = self.list().await?;
        let mut newest_verified = None;
        for b in bundles.iter_mut() {
            if !b.verified {
                continue;
            }
            let recorded = b.sidecar.as_ref().map(|s| (s.size, s.sha256.clone()));
            if let Some((size, sha)) = recorded
                && let Some((osize, Some(osha))) = self.object(&b.name).await?
                && osize == size
                && osha == sha
            {
                newest_verified = Some(b.name.clone());
                break;
            }
            tracing::warn!(
                "{}: its object no longer matches its sidecar",
                self.location.url(&b.name)
            );
            b.verified = false;
        }
        let decisions = crate::store::decide(&bundles, newest_verified.as_deref(), rules);
        if !dry_run {
            for d in decisions.iter().filter(|d| d.keep.is_empty()) {
                for name in [format!("{}.json", d.name), d.name.clone()] {
                    let key = self.location.key(&name);
                    match self.store.delete(&Key::from(key.as_str())).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(self.err("deleting", &key)(e)),
                    }
                }
            }
        }
        Ok(PruneOutcome {
            rules,
            decisions,
            newest_verified,
            deleted: !dry_run,
        })
    }
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn write_journal(path: &Path, journal: &Journal) -> Result<()> {
    let json = serde_json::to_vec_pretty(journal).map_err(|e| Error::Encode {
        what: "upload journal".into(),
        message: e.to_string(),
    })?;
    kastellan_fs::write_atomic(path, &json, 0o600).map_err(crate::create::fs_err)
}

fn remove_journal(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            action: "removing",
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Debug builds only: with `KASTELLAN_S3_PAUSE_AFTER_PART=N`, waits forever once part
/// N (0-based) is uploaded and journaled, so that a crash test can kill the process
/// with SIGKILL in the middle of an upload.
#[cfg(debug_assertions)]
fn pause_after_part(index: usize) {
    if std::env::var("KASTELLAN_S3_PAUSE_AFTER_PART").ok() == Some(index.to_string()) {
        tracing::warn!("paused after uploading part {index} for a crash test");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

#[cfg(not(debug_assertions))]
fn pause_after_part(_index: usize) {}

/// Debug builds only: with `KASTELLAN_S3_PAUSE_BEFORE_SIDECAR` set, waits forever once
/// the bundle's object is complete and read back, before its sidecar is uploaded.
#[cfg(debug_assertions)]
fn pause_before_sidecar() {
    if std::env::var_os("KASTELLAN_S3_PAUSE_BEFORE_SIDECAR").is_some() {
        tracing::warn!("paused before uploading the sidecar for a crash test");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

#[cfg(not(debug_assertions))]
fn pause_before_sidecar() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let l: Location = "s3://backups/cluster/a/".parse().unwrap();
        assert_eq!(l.bucket, "backups");
        assert_eq!(l.prefix, "cluster/a");
        assert_eq!(l.to_string(), "s3://backups/cluster/a");
        assert_eq!(l.key("x"), "cluster/a/x");
        let l: Location = "s3://backups".parse().unwrap();
        assert_eq!(l.prefix, "");
        assert_eq!(l.url("x"), "s3://backups/x");
        for bad in [
            "backups",
            "s3://",
            "s3://Up/x",
            "s3://b/x//y",
            "s3://b/../y",
        ] {
            assert!(bad.parse::<Location>().is_err(), "{bad}");
        }
        let (l, n) =
            Location::of_bundle("s3://b/p/kastellan-backup-c-20261121T102030Z.tar.zst").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("b", "p"));
        assert_eq!(n, "kastellan-backup-c-20261121T102030Z.tar.zst");
        assert!(Location::of_bundle("s3://b/p/other.tar").is_err());
    }

    #[test]
    fn credentials_file_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("credentials");
        std::fs::write(
            &f,
            "[default]\naws_access_key_id = A\naws_secret_access_key = S\n\n[profile other]\naws_access_key_id=B\naws_secret_access_key=T\naws_session_token=X\n",
        )
        .unwrap();
        let c = Credentials::from_file(&f, "default").unwrap();
        assert_eq!((c.access_key_id.as_str(), c.session_token), ("A", None));
        let c = Credentials::from_file(&f, "other").unwrap();
        assert_eq!(c.session_token.as_deref(), Some("X"));
        assert!(Credentials::from_file(&f, "none").is_err());
    }
}
