//! cache: compiled components on disk, so a plugin is compiled once, not on every run.
//!
//! An entry is keyed by the component's sha256 and the engine's `precompile_compatibility_hash`
//! (a different wasmtime or engine config gets its own entry). `Component::deserialize`
//! trusts its input completely, so every entry carries an HMAC-SHA256 over its bytes under a
//! random key private to this cache dir: an entry stasis did not write itself (tampered,
//! truncated, copied from elsewhere) fails the check, is logged and recompiled. The bytes
//! checked are the bytes deserialized (no re-read), so swapping the file after the check
//! gains nothing. Entries are written atomically.

use std::hash::Hasher;
use std::io::Read;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"STASISC1";
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
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl CompileCache {
    /// Open (creating if needed) a cache dir and its private key.
    pub fn open(dir: &Path, engine: &Engine) -> Result<CompileCache, CacheError> {
        let io = |source| CacheError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let key = load_or_create_key(&dir.join(KEY_FILE)).map_err(io)?;
        let mut h = ShaHasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
        let compat = hex(&h.0.finalize()[..8]);
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            key,
            compat,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry path for a component with this sha256.
    pub fn entry_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.compat))
    }

    fn mac(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let mut m =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        m.update(MAGIC);
        m.update(body);
        m.finalize().into_bytes().into()
    }

    /// Get the compiled component for `wasm` (whose sha256 is `sha256`), compiling and
    /// storing it on a miss or a rejected entry.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
    ) -> Result<(Component, CacheOutcome), CacheError> {
        let path = self.entry_path(sha256);
        let mut outcome = CacheOutcome::Miss;
        if let Ok(bytes) = std::fs::read(&path) {
            match self.verify(&bytes) {
                // SAFETY: the bytes carry our HMAC, so this cache wrote them from
                // `precompile_component` output, and the key hash pins the engine config.
                Some(body) => match unsafe { Component::deserialize(engine, body) } {
                    Ok(c) => return Ok((c, CacheOutcome::Hit)),
                    Err(_) => outcome = CacheOutcome::Rejected,
                },
                None => outcome = CacheOutcome::Rejected,
            }
        }
        let cwasm = engine
            .precompile_component(wasm)
            .map_err(CacheError::Compile)?;
        let mut file = Vec::with_capacity(MAGIC.len() + MAC_LEN + cwasm.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&self.mac(&cwasm));
        file.extend_from_slice(&cwasm);
        crate::atomic::write(&path, &file).map_err(|source| CacheError::Io {
            dir: self.dir.clone(),
            source,
        })?;
        // SAFETY: `cwasm` was produced just now by this engine.
        let component =
            unsafe { Component::deserialize(engine, &cwasm) }.map_err(CacheError::Compile)?;
        Ok((component, outcome))
    }

    /// The compiled body if the entry's MAC is ours.
    fn verify<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        if rest.len() < MAC_LEN {
            return None;
        }
        let (tag, body) = rest.split_at(MAC_LEN);
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).ok()?;
        m.update(MAGIC);
        m.update(body);
        m.verify_slice(tag).ok()?;
        Some(body)
    }
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
    match std::fs::read(path) {
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
