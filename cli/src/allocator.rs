//! The C allocator's thresholds, held for a run's large short-lived buffers.
//!
//! glibc's `malloc` serves a block above its mapping threshold (128 KiB at first, raised as such
//! blocks are freed) with a fresh `mmap`, gives it back to the system when it is freed, and trims
//! the heap's free top beyond twice that threshold. A language model's forward allocates and
//! frees its activations (hundreds of KiB to megabytes) at every call: under the default
//! thresholds each of them costs page faults and the kernel's zeroing of fresh pages. With both
//! thresholds held high, a freed block stays in the heap for the next call's.

/// Blocks below this come from the heap (glibc's largest mapping threshold).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;

/// The heap keeps up to this much free memory at its top.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 512 << 20;

/// Holds the thresholds (glibc on Linux; elsewhere the allocator is left as it is). Call it
/// before any thread allocates.
pub fn keep_freed_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets the allocator's parameters; no thread is running yet. A refused
    // value leaves the default, which is only slower.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
