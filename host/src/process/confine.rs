//! confine: the Landlock confinement a [`super::Command`] can run under (the plugin `process`
//! capability uses it for every granted program that is not granted `unconfined`).
//!
//! The ruleset is built in the parent (opening the granted paths, allocating), and the child
//! only calls `prctl(PR_SET_NO_NEW_PRIVS)` and `landlock_restrict_self` between fork and
//! exec: both are plain syscalls, safe after `fork` in a multi-threaded process. The
//! ruleset's descriptor is close-on-exec, so the program never holds it.
//!
//! What a confined program may do: read and execute beneath the `read` paths, read, write,
//! create and remove beneath the `write` paths (a file gets only the file rights), connect
//! TCP only to the `connect_ports` (when given; Landlock filters by port, not by host), bind
//! no TCP port, send no signal and reach no abstract unix socket outside its own domain
//! (ABI 6 scopes, where the kernel has them). UDP and pathname unix sockets the paths allow
//! are not filtered by Landlock.
//!
//! It knows nothing about plugins: the caller hands it the paths and ports.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, Scope,
};

/// The oldest Landlock ABI stasis confines with: 4 filters TCP connect/bind besides files.
pub const MIN_ABI: i32 = 4;

/// What a confined program may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confinement {
    /// Read and execute beneath these (missing ones are skipped).
    pub read: Vec<PathBuf>,
    /// Full access beneath these (missing ones are skipped).
    pub write: Vec<PathBuf>,
    /// `Some(ports)`: TCP connect only to these ports (none: no TCP at all); `None`: TCP
    /// connect is not filtered (a grant with a `:*` port).
    pub connect_ports: Option<Vec<u16>>,
}

/// The Landlock ABI version the running kernel offers (0 when it has none).
pub fn landlock_abi() -> i32 {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION (1) with a null attr and size 0 only asks for
    // the version; it creates nothing.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    i32::try_from(v).unwrap_or(0).max(0)
}

/// A ruleset ready to be applied in a child (see [`apply_in_child`]).
#[derive(Debug)]
pub(crate) struct Prepared {
    fd: OwnedFd,
}

impl Prepared {
    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Confinement {
    /// Build the ruleset. Fails when the kernel offers less than [`MIN_ABI`].
    pub(crate) fn prepare(&self) -> Result<Prepared, String> {
        let have = landlock_abi();
        if have < MIN_ABI {
            return Err(format!(
                "Landlock ABI {MIN_ABI} or newer is needed to confine programs; this kernel offers {}",
                if have == 0 {
                    "none".to_string()
                } else {
                    have.to_string()
                }
            ));
        }
        let abi = ABI::V5.min(ABI::from(have));
        let err = |e: landlock::RulesetError| format!("building the Landlock ruleset: {e}");
        let mut rs = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_all(abi))
            .map_err(err)?;
        if self.connect_ports.is_some() {
            rs = rs
                .handle_access(AccessNet::ConnectTcp | AccessNet::BindTcp)
                .map_err(err)?;
        } else {
            rs = rs.handle_access(AccessNet::BindTcp).map_err(err)?;
        }
        if have >= 6 {
            rs = rs
                .scope(Scope::AbstractUnixSocket | Scope::Signal)
                .map_err(err)?;
        }
        let mut created = rs.create().map_err(err)?;
        for (paths, dir_rights) in [
            (&self.read, AccessFs::from_read(abi)),
            (&self.write, AccessFs::from_all(abi)),
        ] {
            for p in paths {
                let Some((fd, is_dir)) = open_path(p) else {
                    continue;
                };
                let rights = if is_dir {
                    dir_rights
                } else {
                    dir_rights & AccessFs::from_file(abi)
                };
                created = created
                    .add_rule(PathBeneath::new(fd, rights))
                    .map_err(|e| format!("Landlock rule for {}: {e}", p.display()))?;
            }
        }
        for port in self.connect_ports.iter().flatten() {
            created = created
                .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
                .map_err(err)?;
        }
        let fd: Option<OwnedFd> = created.into();
        fd.map(|fd| Prepared { fd })
            .ok_or_else(|| "Landlock is not enforced by this kernel".to_string())
    }
}

fn open_path(p: &Path) -> Option<(PathFd, bool)> {
    let meta = std::fs::metadata(p).ok()?;
    Some((PathFd::new(p).ok()?, meta.is_dir()))
}

/// In the child, between fork and exec: no new privileges, then the ruleset. Only syscalls.
pub(crate) fn apply_in_child(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: prctl and landlock_restrict_self are async-signal-safe syscalls; `fd` is the
    // parent's ruleset descriptor, still open in the child until exec (close-on-exec).
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
