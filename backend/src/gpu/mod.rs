//! wgpu backend (being written).
