//! Per-user filesystem confinement — the security boundary of the server.
//!
//! A client path is first normalized lexically into a [`VirtualPath`] (`/` is the home,
//! `..` never climbs above it). Every operation then resolves that path beneath an open
//! handle of the home directory with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`:
//! the kernel refuses any `..` or symlink (absolute or relative) that would leave the home,
//! at the moment of use, so there is no check-then-use race. Operations on a final name
//! (unlink, mkdir, rename, ...) open the parent that way and call the `*at` syscall with a
//! single component.
//!
//! The kernel refuses every absolute symlink under `RESOLVE_BENEATH`, even one whose host
//! target is inside the home (`ln -s /srv/sftp/alice/shared /srv/sftp/alice/docs`). On
//! that refusal, and only then, the path is walked again component by component (each
//! step itself beneath the root fd), absolute targets inside the home mapped to paths
//! below the root, and the rewritten path is opened beneath the root fd once more: a link
//! changed in between is refused there, never followed out.

mod path;
mod root;

pub use path::{PathError, VirtualPath};
pub use root::{
    DirEntry, FileStat, OpenOptions, OpenedFile, Root, StatVfs, ensure_home, is_escape,
};
