//! The device, its queue and pipelines, and the plumbing every kernel call goes through: buffer
//! creation within limits, uniform parameters, dispatch grids, submission and readback.

use super::shaders::{Kernel, Pipelines};
use crate::{Error, Result};
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// Invocations per workgroup of the one-dimensional kernels (`@workgroup_size(256)`).
pub(crate) const WORKGROUP: u64 = 256;

/// A uniform parameter block: u32 words in WGSL field order (f32 fields as bits).
pub(crate) type Params = Vec<u32>;

/// One compute dispatch: a kernel, its parameters, its storage buffers by binding, its grid.
pub(crate) struct Dispatch<'a> {
    pub kernel: Kernel,
    pub params: Params,
    pub buffers: Vec<(u32, &'a wgpu::Buffer)>,
    pub groups: [u32; 3],
}

/// Owns the device, the queue and the pipelines.
pub(crate) struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pipelines: Pipelines,
    /// Bound where a kernel's WGSL declares a buffer the call does not use.
    pub dummy: wgpu::Buffer,
    /// The first device error no error scope caught (validation, out of memory).
    errors: Arc<Mutex<Option<String>>>,
}

impl Context {
    /// Wraps a freshly opened device: installs the error sink and builds every pipeline.
    pub(crate) fn new(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Result<Self> {
        let errors = Arc::new(Mutex::new(None));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        let pipelines = Pipelines::new();
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unused binding"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let ctx = Self { limits: device.limits(), features: device.features(), device, queue, info, pipelines, dummy, errors };
        ctx.check_errors()?;
        Ok(ctx)
    }

    /// Returns (and clears) the first device error reported since the last check.
    pub(crate) fn check_errors(&self) -> Result<()> {
        match self.errors.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(Error::Device(e)),
            None => Ok(()),
        }
    }

    /// A new storage buffer of `len` f32 (at least one, as empty bindings are invalid).
    pub(crate) fn storage(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        let size = byte_size(label, len)?;
        if size > self.limits.max_buffer_size {
            return Err(Error::Limit(format!(
                "{label}: {len} f32 ({size} bytes) exceed the adapter's max_buffer_size of {} bytes",
                self.limits.max_buffer_size
            )));
        }
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.check_errors()?;
        Ok(buffer)
    }

    /// The largest number of f32 one storage binding may hold.
    pub(crate) fn max_binding_floats(&self) -> usize {
        let bytes = self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size);
        (bytes / 4).min(u64::from(u32::MAX)) as usize
    }

    /// A one-dimensional grid of [`WORKGROUP`]-wide groups covering `invocations`, folded into
    /// two dimensions when it exceeds `max_compute_workgroups_per_dimension`.
    pub(crate) fn grid(&self, what: &str, invocations: usize) -> Result<[u32; 3]> {
        if invocations > u32::MAX as usize {
            return Err(Error::Limit(format!("{what}: {invocations} invocations exceed 2^32 indices")));
        }
        self.groups_grid(what, (invocations as u64).div_ceil(WORKGROUP))
    }

    /// A grid of `groups` workgroups, folded into two dimensions when it exceeds
    /// `max_compute_workgroups_per_dimension` (kernels index it as `wid.y * nwg.x + wid.x` and
    /// skip the surplus).
    pub(crate) fn groups_grid(&self, what: &str, groups: u64) -> Result<[u32; 3]> {
        let max = u64::from(self.limits.max_compute_workgroups_per_dimension);
        let x = groups.min(max);
        let y = if x == 0 { 0 } else { groups.div_ceil(x) };
        if y > max {
            return Err(Error::Limit(format!("{what}: {groups} workgroups exceed a {max} x {max} grid")));
        }
        Ok([x as u32, y as u32, 1])
    }

    /// Checks a grid against `max_compute_workgroups_per_dimension`.
    pub(crate) fn check_grid(&self, what: &str, groups: [u32; 3]) -> Result<()> {
        let max = self.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(Error::Limit(format!("{what}: grid {groups:?} exceeds {max} workgroups per dimension")));
        }
        Ok(())
    }

    /// Encodes `dispatches` in one compute pass, in order, and submits them.
    pub(crate) fn run(&self, dispatches: &[Dispatch<'_>]) -> Result<()> {
        let max_binding = self.limits.max_storage_buffer_binding_size;
        for d in dispatches {
            if let Some((binding, b)) = d.buffers.iter().find(|(_, b)| b.size() > max_binding) {
                return Err(Error::Limit(format!(
                    "{:?} binding {binding}: a buffer of {} bytes exceeds max_storage_buffer_binding_size ({max_binding} bytes)",
                    d.kernel,
                    b.size()
                )));
            }
        }
        let pipelines: Vec<(wgpu::ComputePipeline, wgpu::BindGroupLayout)> =
            dispatches.iter().map(|d| self.pipelines.get(&self.device, d.kernel)).collect();
        let bind_groups: Vec<wgpu::BindGroup> =
            dispatches.iter().zip(&pipelines).map(|(d, (_, layout))| self.bind_group(d, layout)).collect();
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("eggroll") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("eggroll"), timestamp_writes: None });
            for ((d, bind_group), (pipeline, _)) in dispatches.iter().zip(&bind_groups).zip(&pipelines) {
                if d.groups.contains(&0) {
                    continue;
                }
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, bind_group, &[]);
                pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
            }
        }
        self.queue.submit([encoder.finish()]);
        self.check_errors()
    }

    fn bind_group(&self, d: &Dispatch<'_>, layout: &wgpu::BindGroupLayout) -> wgpu::BindGroup {
        let mut words = d.params.clone();
        words.resize(words.len().div_ceil(4).max(1) * 4, 0);
        let uniform = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::cast_slice(&words),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        entries.extend(d.buffers.iter().map(|(binding, b)| wgpu::BindGroupEntry { binding: *binding, resource: b.as_entire_binding() }));
        self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout, entries: &entries })
    }

    /// Copies the first `size` bytes of `src` to the host once queued work has run.
    pub(crate) async fn read_bytes(&self, src: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        encoder.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        self.check_errors()?;
        self.map_read(&staging).await
    }

    /// Maps a MAP_READ buffer and copies its contents out.
    pub(crate) async fn map_read(&self, staging: &wgpu::Buffer) -> Result<Vec<u8>> {
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.poll()?;
        rx.await.map_err(|_| Error::Readback("the map callback was dropped".into()))?.map_err(|e| Error::Readback(e.to_string()))?;
        let bytes = staging.get_mapped_range(..).map_err(|e| Error::Readback(e.to_string()))?.to_vec();
        staging.unmap();
        self.check_errors()?;
        Ok(bytes)
    }

    /// Waits for all submitted work (native); the browser drives the device itself on wasm32.
    pub(crate) fn poll(&self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Device(e.to_string()))?;
        Ok(())
    }
}

/// Bytes of `len` f32, refusing overflow.
pub(crate) fn byte_size(what: &str, len: usize) -> Result<u64> {
    (len as u64).checked_mul(4).ok_or_else(|| Error::Limit(format!("{what}: {len} f32 overflow a 64-bit byte size")))
}

/// Converts a size to a u32 shader parameter.
pub(crate) fn word(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Limit(format!("{what} = {v} exceeds the 32-bit indices of the shaders")))
}
