//! `stasis:host/context`: build contexts inside the delivery tree. Lists files of the tree,
//! places files or trees at a destination as hard links (copies across filesystems), writes
//! and removes files. Reading covers the delivery tree; every write is checked on every call
//! against the grant's `write_dirs` (delivery-relative directories) and goes through the
//! tree's cap-std `Dir`, so `..`, absolute paths and symlinks cannot lead out of it. Files are
//! written under a temporary name and renamed, as everything stasis writes.
//!
//! It must not run programs (process, pipeline) or reach outside the delivery tree.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use cap_std::fs::Dir;

use crate::plugins::bindings::host_api::context::{Entry, EntryKind, Host, Placement};
use crate::plugins::bindings::host_api::types::CapError;
use crate::plugins::context::{PluginContext, PluginState};
use crate::plugins::grant::Denial;

use super::delivery_relative;

impl Host for PluginState {
    fn list(&mut self, dir: String) -> Result<Vec<Entry>, CapError> {
        let ctx = self.ctx.clone();
        let rel = inside(self, "context", &dir)?;
        let mut out = Vec::new();
        let root = match open_dir(&ctx.delivery_dir, &rel) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(CapError::Failed(format!("{}: {e}", rel.display()))),
        };
        walk(&root, Path::new(""), &mut out)
            .map_err(|e| CapError::Failed(format!("listing {}: {e}", rel.display())))?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn place(&mut self, source: String, destination: String) -> Result<Placement, CapError> {
        let ctx = self.ctx.clone();
        let src = inside(self, "context", &source)?;
        let dst = writable(self, "context", &destination)?;
        if dst.starts_with(&src) {
            return Err(CapError::Invalid(format!(
                "{} lies inside {}",
                dst.display(),
                src.display()
            )));
        }
        let dir = &ctx.delivery_dir;
        let meta = dir
            .symlink_metadata(&src)
            .map_err(|e| CapError::Failed(format!("{}: {e}", src.display())))?;
        remove_any(dir, &dst).map_err(|e| CapError::Failed(format!("{}: {e}", dst.display())))?;
        if let Some(parent) = dst.parent().filter(|p| !p.as_os_str().is_empty()) {
            dir.create_dir_all(parent)
                .map_err(|e| CapError::Failed(format!("{}: {e}", parent.display())))?;
        }
        let mut placed = Placement {
            files: 0,
            linked: 0,
            bytes: 0,
        };
        place_tree(dir, &src, &dst, meta.is_dir(), &mut placed).map_err(|e| {
            CapError::Failed(format!(
                "placing {} at {}: {e}",
                src.display(),
                dst.display()
            ))
        })?;
        Ok(placed)
    }

    fn write_file(&mut self, path: String, contents: Vec<u8>) -> Result<(), CapError> {
        let ctx = self.ctx.clone();
        let rel = writable(self, "context", &path)?;
        write_atomic(&ctx.delivery_dir, &rel, &contents)
            .map_err(|e| CapError::Failed(format!("writing {}: {e}", rel.display())))
    }

    fn remove(&mut self, path: String) -> Result<(), CapError> {
        let ctx = self.ctx.clone();
        let rel = writable(self, "context", &path)?;
        remove_any(&ctx.delivery_dir, &rel)
            .map_err(|e| CapError::Failed(format!("removing {}: {e}", rel.display())))
    }
}

/// A guest path as a plain path relative to the delivery root (`.` for the root itself):
/// only normal components, so `..` is refused before cap-std sees it.
pub(crate) fn inside(state: &PluginState, cap: &str, path: &str) -> Result<PathBuf, CapError> {
    let ctx = &state.ctx;
    let outside = || {
        ctx.deny(
            cap,
            Denial(format!("{path:?} is outside the delivery tree")),
        )
    };
    let rel = delivery_relative(state, path).ok_or_else(outside)?;
    let mut clean = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::CurDir => {}
            _ => return Err(outside()),
        }
    }
    Ok(if clean.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        clean
    })
}

/// [`inside`], and inside one of the grant's `write_dirs`.
pub(crate) fn writable(state: &PluginState, cap: &str, path: &str) -> Result<PathBuf, CapError> {
    let rel = inside(state, cap, path)?;
    check_write(&state.ctx, cap, &rel)?;
    Ok(rel)
}

fn check_write(ctx: &PluginContext, cap: &str, rel: &Path) -> Result<(), CapError> {
    ctx.grant.check_write(rel).map_err(|d| ctx.deny(cap, d))
}

fn open_dir(dir: &Dir, rel: &Path) -> std::io::Result<Dir> {
    if rel == Path::new(".") {
        dir.try_clone()
    } else {
        dir.open_dir(rel)
    }
}

fn walk(dir: &Dir, prefix: &Path, out: &mut Vec<Entry>) -> std::io::Result<()> {
    for e in dir.entries()? {
        let e = e?;
        let name = e.file_name();
        let path = prefix.join(&name);
        let ft = e.file_type()?;
        let kind = if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_dir() {
            EntryKind::Directory
        } else if ft.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        };
        let size = if ft.is_file() { e.metadata()?.len() } else { 0 };
        out.push(Entry {
            path: path.to_string_lossy().into_owned(),
            kind,
            size,
        });
        if ft.is_dir() && !ft.is_symlink() {
            walk(&e.open_dir()?, &path, out)?;
        }
    }
    Ok(())
}

fn place_tree(
    dir: &Dir,
    src: &Path,
    dst: &Path,
    is_dir: bool,
    placed: &mut Placement,
) -> std::io::Result<()> {
    if !is_dir {
        let size = dir.metadata(src)?.len();
        match dir.hard_link(src, dir, dst) {
            Ok(()) => placed.linked += 1,
            // Another filesystem (or one without hard links): copy.
            Err(_) => {
                dir.copy(src, dir, dst)?;
            }
        }
        placed.files += 1;
        placed.bytes += size;
        return Ok(());
    }
    dir.create_dir_all(dst)?;
    let mut names: Vec<_> = dir
        .read_dir(src)?
        .map(|e| e.map(|e| (e.file_name(), e.file_type())))
        .collect::<Result<_, _>>()?;
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, ft) in names {
        let ft = ft?;
        // Symlinks are skipped: a link placed in a build context could point anywhere.
        if ft.is_symlink() || !(ft.is_dir() || ft.is_file()) {
            continue;
        }
        place_tree(dir, &src.join(&name), &dst.join(&name), ft.is_dir(), placed)?;
    }
    Ok(())
}

fn remove_any(dir: &Dir, rel: &Path) -> std::io::Result<()> {
    match dir.symlink_metadata(rel) {
        Ok(m) if m.is_dir() => dir.remove_dir_all(rel),
        Ok(_) => dir.remove_file(rel),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A temporary name beside `rel`, unique within this process.
pub(crate) fn temp_beside(rel: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    rel.with_file_name(format!(
        ".stasis-tmp-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Write through the tree's `Dir`: a temporary file beside `rel`, synced, then renamed.
fn write_atomic(dir: &Dir, rel: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        dir.create_dir_all(parent)?;
    }
    let tmp = temp_beside(rel);
    let result = (|| {
        let mut f = dir.create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        dir.rename(&tmp, dir, rel)
    })();
    if result.is_err() {
        let _ = dir.remove_file(&tmp);
    }
    result
}
