//! A private `XDG_RUNTIME_DIR` when the environment has none. Mesa's Vulkan device-select layer
//! prints `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` for every Vulkan
//! instance created without it (`--backend auto` and `eggroll info` create two), which reads as a
//! failure of the command although nothing failed.

/// When `XDG_RUNTIME_DIR` is unset or empty, points it at `<temp dir>/eggroll-runtime-<uid>`: a
/// folder created with mode 0700 and reused by later runs, taken only when it is a real directory
/// owned by this user (its mode is then set back to 0700 if it differs). Otherwise the variable is
/// left alone: it only silences a message.
///
/// Sets an environment variable, so it must run before any other thread exists (first thing in
/// `main`).
#[cfg(unix)]
pub fn ensure() {
    use std::fs::{self, DirBuilder, Permissions};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};

    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|v| !v.is_empty()) {
        return;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("eggroll-runtime-{uid}"));
    // An existing folder is checked below like a new one.
    let _ = DirBuilder::new().mode(0o700).create(&dir);
    // `symlink_metadata`: a link planted at that name by someone else is not followed.
    let Ok(meta) = fs::symlink_metadata(&dir) else { return };
    if !meta.is_dir() || meta.uid() != uid {
        return;
    }
    if meta.mode() & 0o777 != 0o700 && fs::set_permissions(&dir, Permissions::from_mode(0o700)).is_err() {
        return;
    }
    std::env::set_var("XDG_RUNTIME_DIR", &dir);
}

/// Nothing to do where Mesa's Vulkan layers do not run.
#[cfg(not(unix))]
pub fn ensure() {}
