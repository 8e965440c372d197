//! [`MemoryLimits`]: what a device allows a run to allocate, for planning its memory.

/// The memory limits of a backend's device ([`crate::Kernels::memory_limits`]). `None` means the
/// backend has no such limit, or does not know it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MemoryLimits {
    /// The largest buffer the device can create, in bytes (wgpu's `max_buffer_size`).
    pub max_buffer_bytes: Option<u64>,
    /// The largest buffer one kernel may bind, in bytes (wgpu's
    /// `max_storage_buffer_binding_size`): every buffer passed to a kernel must fit it, since a
    /// backend splits only its own scratch space, never a caller's buffer.
    pub max_binding_bytes: Option<u64>,
    /// The device's memory in bytes, when the backend knows it.
    pub device_bytes: Option<u64>,
}
