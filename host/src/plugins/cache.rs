//! cache: compiled components on disk, so a plugin is compiled once, not on every run.
//!
//! An entry is keyed by the component's sha256 and the engine's `precompile_compatibility_hash`
//! (a different wasmtime or engine config gets its own entry). `Component::deserialize`
//! trusts its input completely, so every entry carries an HMAC-SHA256 under a random key
//! private to this cache dir, over its bytes **and** the component sha256, the engine hash and
//! the entry's own file name: an entry stasis did not write itself (tampered, truncated,
//! copied from elsewhere) or one written for another component (renamed, copied or linked
//! over another entry) fails the check, is logged and recompiled. Files are opened without
//! following symlinks (`O_NOFOLLOW`) and their stat data are taken from the open descriptor;
//! the bytes checked are the bytes deserialized (no re-read), so swapping the file after the
//! check gains nothing. Entries are written atomically.
//!
//! The cache directory must be an absolute path, a real directory (not a symlink) owned by
//! the user running stasis and not writable by group or others, and its key file likewise
//! private; otherwise it is refused with its path named. There is no fallback to a shared
//! directory (the caller gives the dir; see `plan::hooks::component_cache_dir`).
//!
//! It also remembers the sha256 of each component file it hashed, keyed by the file's path
//! and stamp (device, inode, size, mtime, ctime), HMAC-authenticated like the entries. A
//! component whose stamp is unchanged is not read or hashed again (18 MB of Python plugin
//! cost ~16 ms of SHA-256 on every run). As git does with its index, a record made less than
//! [`RACY_WINDOW`] after the file last changed is not trusted: a same-size rewrite within one
//! timestamp tick cannot hide behind it. `stasis plugin check` always hashes.

use std::hash::Hasher;
use std::io::Read;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"STASISC1";
const DIGEST_MAGIC: &[u8; 8] = b"STASISD1";
/// A digest record is trusted only if the file had not changed for this long when it was made.
pub const RACY_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);
const MAC_LEN: usize = 32;
const KEY_FILE: &str = "cache.key";

/// How a component was obtained from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A valid entry was loaded.
    Hit,
    /// No entry: compiled and stored.
    Miss,
    /// An entry failed authentication (or did not deserialize): recompiled and replaced.
    Rejected,
}

/// A compile cache directory.
pub struct CompileCache {
    dir: PathBuf,
    key: [u8; 32],
    compat: String,
    racy_window: std::time::Duration,
}

/// What identifies a file's content without reading it (git's stat data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileStamp {
    pub fn of(meta: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    fn line(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns
        )
    }
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("compile cache {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("compiling: {0:#}")]
    Compile(wasmtime::Error),
    #[error("compile cache {}: refused: {why}", dir.display())]
    Unsafe { dir: PathBuf, why: String },
}

/// Open `path` for reading without following a symlink in its last component.
fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Read a regular file opened with [`open_nofollow`]; its stamp from the descriptor before and
/// after the read (`None` when it changed meanwhile).
fn read_nofollow(path: &Path) -> std::io::Result<(Vec<u8>, FileStamp, bool)> {
    let mut f = open_nofollow(path)?;
    let before = f.metadata()?;
    if !before.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(before.len()).unwrap_or(0));
    f.read_to_end(&mut bytes)?;
    let before = FileStamp::of(&before);
    let steady = f.metadata().map(|m| FileStamp::of(&m)).ok() == Some(before);
    Ok((bytes, before, steady))
}

/// The directory must be ours alone: a real directory, owned by the effective user, not
/// writable by group or others (else another user could plant entries or a key).
pub(crate) fn check_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !m.file_type().is_dir() {
        return Err("not a directory (a symlink is not accepted)".into());
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        return Err(format!(
            "owned by uid {}, not by the user running stasis (uid {me})",
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "mode {:o} lets group or others write to it (chmod go-w)",
            m.mode() & 0o777
        ));
    }
    Ok(())
}

/// Feeds `Hash` output into sha256 (`DefaultHasher` is not stable across Rust versions).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl CompileCache {
    /// Open (creating if needed, mode 0700) a cache dir and its private key. Refused when the
    /// path is empty or relative, or the dir is not private to this user.
    pub fn open(dir: &Path, engine: &Engine) -> Result<CompileCache, CacheError> {
        let io = |source| CacheError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        let unsafe_dir = |why: String| CacheError::Unsafe {
            dir: dir.to_path_buf(),
            why,
        };
        if dir.as_os_str().is_empty() {
            return Err(unsafe_dir(
                "no cache directory: set XDG_CACHE_HOME or HOME (stasis does not fall back to a shared directory)".into(),
            ));
        }
        if !dir.is_absolute() {
            return Err(unsafe_dir("not an absolute path".into()));
        }
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        check_private_dir(dir).map_err(unsafe_dir)?;
        let key = load_or_create_key(&dir.join(KEY_FILE)).map_err(io)?;
        let mut h = ShaHasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
        let compat = hex::encode(&h.0.finalize()[..8]);
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            key,
            compat,
            racy_window: RACY_WINDOW,
        })
    }

    /// The same cache with another racy window (tests and benchmarks use zero).
    pub fn with_racy_window(mut self, window: std::time::Duration) -> CompileCache {
        self.racy_window = window;
        self
    }

    fn digest_path(&self, file: &Path) -> PathBuf {
        let name = sha256_hex(file.as_os_str().as_encoded_bytes());
        self.dir.join("digests").join(&name[..32])
    }

    /// The sha256 recorded for `file` when it had `stamp`: `None` when there is no record, the
    /// record is not ours (bad MAC), names another path or stamp, or was made within the racy
    /// window of the file's last change.
    pub fn remembered_digest(&self, file: &Path, stamp: &FileStamp) -> Option<String> {
        let record = self.digest_path(file);
        let (bytes, _, _) = read_nofollow(&record).ok()?;
        let body = self.unseal(DIGEST_MAGIC, &binding(&record), &bytes)?;
        let text = std::str::from_utf8(body).ok()?;
        let (path, rest) = text.split_once('\0')?;
        let mut fields = rest.trim_end().rsplitn(3, ' ');
        let sha = fields.next()?;
        let recorded: i128 = fields.next()?.parse().ok()?;
        let stamp_line = fields.next()?;
        let changed = stamp.mtime_ns.max(stamp.ctime_ns);
        let settled = recorded - changed >= self.racy_window.as_nanos() as i128;
        (path.as_bytes() == file.as_os_str().as_encoded_bytes()
            && stamp_line == stamp.line()
            && settled
            && sha.len() == 64)
            .then(|| sha.to_string())
    }

    /// Record that `file`, with `stamp`, hashed to `sha256`. Best effort: a record that cannot
    /// be written only means hashing again next time.
    pub fn remember_digest(&self, file: &Path, stamp: &FileStamp, sha256: &str) {
        let mut body = file.as_os_str().as_encoded_bytes().to_vec();
        body.push(0);
        body.extend_from_slice(format!("{} {} {sha256}\n", stamp.line(), now_ns()).as_bytes());
        let path = self.digest_path(file);
        let out = self.seal(DIGEST_MAGIC, &binding(&path), &body);
        if let Some(parent) = path.parent()
            && std::fs::create_dir_all(parent).is_ok()
        {
            let _ = crate::atomic::write(&path, &out);
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry path for a component with this sha256.
    pub fn entry_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.compat))
    }

    /// What an entry's MAC binds besides its bytes: the component sha256, the engine hash and
    /// the entry's file name, so no entry verifies under another entry's name.
    fn entry_binding(&self, sha256: &str) -> Vec<u8> {
        let mut b = format!("{sha256}\0{}\0", self.compat).into_bytes();
        b.extend_from_slice(&binding(&self.entry_path(sha256)));
        b
    }

    /// `magic` + HMAC(`magic` + len(`bound`) + `bound` + `body`) + `body`: how entries and
    /// digest records are stored. `bound` (what the file is for) is not stored, only proven.
    fn seal(&self, magic: &[u8; 8], bound: &[u8], body: &[u8]) -> Vec<u8> {
        let mut m =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        m.update(magic);
        m.update(&(bound.len() as u64).to_le_bytes());
        m.update(bound);
        m.update(body);
        let mut out = Vec::with_capacity(magic.len() + MAC_LEN + body.len());
        out.extend_from_slice(magic);
        out.extend_from_slice(&m.finalize().into_bytes());
        out.extend_from_slice(body);
        out
    }

    /// The body of sealed `bytes` if the seal is ours and binds `bound`.
    fn unseal<'a>(&self, magic: &[u8; 8], bound: &[u8], bytes: &'a [u8]) -> Option<&'a [u8]> {
        let rest = bytes.strip_prefix(magic.as_slice())?;
        if rest.len() < MAC_LEN {
            return None;
        }
        let (tag, body) = rest.split_at(MAC_LEN);
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).ok()?;
        m.update(magic);
        m.update(&(bound.len() as u64).to_le_bytes());
        m.update(bound);
        m.update(body);
        m.verify_slice(tag).ok()?;
        Some(body)
    }

    /// Get the compiled component for `wasm` (whose sha256 is `sha256`), compiling and
    /// storing it on a miss or a rejected entry.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
    ) -> Result<(Component, CacheOutcome), CacheError> {
        let outcome = match self.load_cached(engine, sha256) {
            Ok(c) => return Ok((c, CacheOutcome::Hit)),
            Err(outcome) => outcome,
        };
        let cwasm = engine
            .precompile_component(wasm)
            .map_err(CacheError::Compile)?;
        let file = self.seal(MAGIC, &self.entry_binding(sha256), &cwasm);
        crate::atomic::write(&self.entry_path(sha256), &file).map_err(|source| CacheError::Io {
            dir: self.dir.clone(),
            source,
        })?;
        // SAFETY: `cwasm` was produced just now by this engine.
        let component =
            unsafe { Component::deserialize(engine, &cwasm) }.map_err(CacheError::Compile)?;
        Ok((component, outcome))
    }

    /// The compiled component with this sha256 if the cache holds a valid entry; otherwise
    /// why not (`Miss`: no entry, `Rejected`: an entry that failed authentication).
    ///
    /// The HMAC over a compiled entry (35 MB for an 18 MB Python plugin, ~30 ms) is checked
    /// once; a sealed record of the entry's stamp and tag then lets later loads skip it while
    /// the file is unchanged. The file is stat'ed before and after the read: a write in
    /// between changes its ctime, so the bytes deserialized are the bytes that were vouched for.
    pub fn load_cached(&self, engine: &Engine, sha256: &str) -> Result<Component, CacheOutcome> {
        let path = self.entry_path(sha256);
        let (bytes, before, steady) = match read_nofollow(&path) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CacheOutcome::Miss);
            }
            // A symlink (ELOOP), a directory, an unreadable file: not an entry we wrote.
            Err(_) => return Err(CacheOutcome::Rejected),
        };
        let tag = bytes
            .strip_prefix(MAGIC.as_slice())
            .and_then(|rest| rest.get(..MAC_LEN))
            .map(hex::encode)
            .ok_or(CacheOutcome::Rejected)?;
        let vouched = steady && self.remembered_digest(&path, &before).as_ref() == Some(&tag);
        let body = if vouched {
            &bytes[MAGIC.len() + MAC_LEN..]
        } else {
            let body = self
                .unseal(MAGIC, &self.entry_binding(sha256), &bytes)
                .ok_or(CacheOutcome::Rejected)?;
            if steady {
                self.remember_digest(&path, &before, &tag);
            }
            body
        };
        // SAFETY: the bytes carry our HMAC (checked now, or earlier for this very file, its
        // stamp unchanged), so this cache wrote them from `precompile_component` output, and
        // the key hash pins the engine config.
        unsafe { Component::deserialize(engine, body) }.map_err(|_| CacheOutcome::Rejected)
    }
}

/// A file's name as its MAC binds it.
fn binding(path: &Path) -> Vec<u8> {
    path.file_name()
        .map(|n| n.as_encoded_bytes().to_vec())
        .unwrap_or_default()
}

/// Read the cache's key, or create it (32 random bytes, mode 0600, published atomically so
/// two processes racing agree on one key).
fn load_or_create_key(path: &Path) -> std::io::Result<[u8; 32]> {
    if let Some(k) = read_key(path)? {
        return Ok(k);
    }
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".stasis-key-")
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, &key)?;
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))?;
    }
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(key),
        // Someone else won the race: use theirs.
        Err(_) => read_key(path)?.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "cache key vanished")
        }),
    }
}

fn read_key(path: &Path) -> std::io::Result<Option<[u8; 32]>> {
    use std::os::unix::fs::MetadataExt;
    let read = open_nofollow(path).and_then(|mut f| {
        let m = f.metadata()?;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if !m.is_file() || m.uid() != me || m.mode() & 0o077 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} must be a regular file owned by uid {me} with mode 0600",
                    path.display()
                ),
            ));
        }
        let mut b = Vec::new();
        f.read_to_end(&mut b)?;
        Ok(b)
    });
    match read {
        Ok(b) if b.len() == 32 => {
            let mut k = [0u8; 32];
            k.copy_from_slice(&b);
            Ok(Some(k))
        }
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is not a 32-byte key; delete it to reset the cache",
                path.display()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp_of(p: &Path) -> FileStamp {
        FileStamp::of(&std::fs::metadata(p).unwrap())
    }

    #[test]
    fn the_cache_dir_must_be_private_absolute_and_real() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let shared = d.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = CompileCache::open(&shared, &engine)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(&shared.display().to_string()) && e.contains("mode 777"),
            "{e}"
        );
        let link = d.path().join("link");
        std::os::unix::fs::symlink(d.path(), &link).unwrap();
        let e = CompileCache::open(&link, &engine)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("symlink"), "{e}");
        let e = CompileCache::open(Path::new(""), &engine)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("does not fall back"), "{e}");
        assert!(CompileCache::open(Path::new("rel/cache"), &engine).is_err());
        let fresh = d.path().join("a/fresh");
        CompileCache::open(&fresh, &engine).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // A key file others can read is refused.
        std::fs::set_permissions(fresh.join(KEY_FILE), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        assert!(CompileCache::open(&fresh, &engine).is_err());
    }

    #[test]
    fn a_seal_binds_what_the_file_is_for() {
        let d = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let cache = CompileCache::open(&d.path().join("c"), &engine).unwrap();
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let sealed = cache.seal(MAGIC, &cache.entry_binding(&a), b"compiled a");
        assert_eq!(
            cache.unseal(MAGIC, &cache.entry_binding(&a), &sealed),
            Some(&b"compiled a"[..])
        );
        assert_eq!(cache.unseal(MAGIC, &cache.entry_binding(&b), &sealed), None);
        assert_eq!(
            cache.unseal(DIGEST_MAGIC, &cache.entry_binding(&a), &sealed),
            None
        );
        // An entry file that is a symlink to a good entry is not followed.
        std::fs::write(cache.entry_path(&a), &sealed).unwrap();
        std::os::unix::fs::symlink(cache.entry_path(&a), cache.entry_path(&b)).unwrap();
        assert!(matches!(
            cache.load_cached(&engine, &b),
            Err(CacheOutcome::Rejected)
        ));
    }

    #[test]
    fn digests_are_remembered_by_path_and_stamp_and_sealed() {
        let d = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let cache = CompileCache::open(&d.path().join("c"), &engine)
            .unwrap()
            .with_racy_window(std::time::Duration::ZERO);
        let file = d.path().join("plugin.wasm");
        std::fs::write(&file, b"component bytes").unwrap();
        let sha = sha256_hex(b"component bytes");
        let stamp = stamp_of(&file);
        assert_eq!(cache.remembered_digest(&file, &stamp), None);
        cache.remember_digest(&file, &stamp, &sha);
        assert_eq!(cache.remembered_digest(&file, &stamp), Some(sha.clone()));

        // Another stamp (the file changed) or another path: not this record.
        let other = FileStamp {
            size: stamp.size + 1,
            ..stamp
        };
        assert_eq!(cache.remembered_digest(&file, &other), None);
        assert_eq!(
            cache.remembered_digest(&d.path().join("x.wasm"), &stamp),
            None
        );

        // A record made right after the file changed is not trusted (racy).
        let strict = CompileCache::open(&d.path().join("c"), &engine).unwrap();
        assert_eq!(strict.remembered_digest(&file, &stamp), None);

        // A record edited by someone else, or sealed with another cache's key, is ignored.
        let record = cache.digest_path(&file);
        let good = std::fs::read(&record).unwrap();
        let mut bad = good.clone();
        let last = bad.len() - 2;
        bad[last] ^= 1;
        std::fs::write(&record, &bad).unwrap();
        assert_eq!(cache.remembered_digest(&file, &stamp), None);
        let foreign = CompileCache::open(&d.path().join("other"), &engine)
            .unwrap()
            .with_racy_window(std::time::Duration::ZERO);
        std::fs::create_dir_all(foreign.digest_path(&file).parent().unwrap()).unwrap();
        std::fs::write(foreign.digest_path(&file), &good).unwrap();
        assert_eq!(foreign.remembered_digest(&file, &stamp), None);
    }
}
