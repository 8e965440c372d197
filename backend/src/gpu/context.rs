//! The device, its queue, and the plumbing every kernel call goes through: buffer creation within
//! limits, pipelines, uniform parameters, bind groups, dispatch grids, submission and readback.
//!
//! Every buffer, bind group and pipeline of the backend is created here, at one place each, and
//! counted ([`Context::created`]). Calls of the same shape create none after the first:
//!
//! * pipelines (and their shader modules) are built on first use and kept;
//! * dispatches are recorded into one command encoder and submitted together: when something
//!   needs their results or must follow them (a readback, a copy, a write into a buffer, a wait
//!   for the queue), or once [`MAX_RECORDED`] are waiting. A small call (a control step, a decode
//!   step) thus costs one submission, not one per kernel;
//! * each kernel has its own uniform buffers, one per position of the kernel in a submission,
//!   rewritten with `queue.write_buffer` as each dispatch is recorded (writes are ordered before
//!   the next submission, and no two dispatches of one submission share one); there are a few per
//!   kernel, so they are kept for the life of the backend;
//! * bind groups are cached by kernel, uniform slot and storage buffers, at most
//!   [`MAX_BIND_GROUPS`], least recently used out; a cached bind group keeps its buffers alive,
//!   so the cache also drops every bind group of a buffer when the buffer is released: a
//!   [`super::buffer::GpuBuffer`] when its owner drops it, a scratch buffer when its pool evicts it;
//! * scratch buffers (projections, materialised weights, update factors, fitness differences,
//!   targets) and readback staging buffers come from pools keyed by purpose and size, taken for
//!   the call and given back after it, so concurrent calls never share one. The scratch pool
//!   keeps idle buffers up to [`MAX_POOLED`] and a byte budget, the staging pool up to
//!   [`MAX_POOLED`] and [`STAGING_BYTES`], least recently used out.

use super::kernel::{Dispatch, KernelKey, BINDINGS};
use super::pool::{BindGroupCache, Binds, BufferPool};
use super::shaders::ModuleKey;
use crate::error::LimitError;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Invocations per workgroup of the one-dimensional kernels (`@workgroup_size(256)`).
pub(crate) const WORKGROUP: u64 = 256;

/// Most bind groups cached.
const MAX_BIND_GROUPS: usize = 1024;

/// Most idle buffers in each pool (scratch, staging).
const MAX_POOLED: usize = 64;

/// Byte budget of the idle readback staging buffers.
const STAGING_BYTES: u64 = 256 << 20;

/// Most dispatches recorded before they are submitted without waiting for a reason to.
const MAX_RECORDED: usize = 128;

/// How many buffers, bind groups and pipelines a backend has created since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreatedObjects {
    /// Buffers of every kind: storage, uniform, scratch, readback staging, timestamp.
    pub buffers: u64,
    /// Bind groups.
    pub bind_groups: u64,
    /// Compute pipelines.
    pub pipelines: u64,
}

#[derive(Default)]
struct Counters {
    buffers: AtomicU64,
    bind_groups: AtomicU64,
    pipelines: AtomicU64,
}

/// What a cached bind group binds: the kernel (its layout and uniform buffers), the uniform
/// slot, and the storage buffers by binding.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct BindGroupKey {
    kernel: KernelKey,
    slot: usize,
    storage: [Option<wgpu::Buffer>; BINDINGS],
}

impl Binds for BindGroupKey {
    fn binds(&self, buffer: &wgpu::Buffer) -> bool {
        self.storage.iter().flatten().any(|b| b == buffer)
    }
}

/// The bind group cache, shared with the buffers whose release must clear their entries.
pub(crate) type BindGroups = Mutex<BindGroupCache<BindGroupKey>>;

/// What a scratch buffer holds (with its size, the key of its pool).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ScratchUse {
    /// The projections `X B` of the forward.
    Projections,
    /// The shared `X Wᵀ` of a shared-input forward.
    SharedProduct,
    /// Materialised weights `W + E_i` of naive ES.
    Materialised,
    /// The factors `A'` of the update.
    UpdateA,
    /// The factors `d B'` of the update.
    UpdateB,
    /// The antithetic fitness differences of an update.
    FitnessDifferences,
    /// The target classes of a log-likelihood (u32).
    Targets,
    /// The token ids of an embedding lookup (u32).
    Tokens,
    /// Every pair's packed integer factors of a perturbed int8 product.
    IntFactors,
    /// The integer projections `x . b_q` of a perturbed int8 product (i32).
    IntProjections,
    /// The fitness of each pair of an integer update (i32).
    IntFitness,
    /// The packed `f_k a_kq` of an integer update.
    IntUpdateA,
    /// The packed `b_kq` of an integer update.
    IntUpdateB,
    /// The full-rank integer noise `E_k` of a chunk of pairs (i32).
    IntFullRank,
    /// The cache slots, then the starts, of an attention call's sequences (u32).
    Sequences,
    /// The member and position of each row of a sampling call (u32).
    SampleKeys,
}

/// The dispatches recorded since the last submission, and the uniform buffers they use.
#[derive(Default)]
struct Recording {
    /// Uniform buffers by kernel and position in a submission.
    uniforms: HashMap<(KernelKey, usize), wgpu::Buffer>,
    /// The command encoder of the recorded dispatches, when there are some.
    encoder: Option<wgpu::CommandEncoder>,
    /// How many dispatches of each kernel are recorded: the next one's uniform slot.
    slots: HashMap<KernelKey, usize>,
    /// How many dispatches are recorded.
    dispatches: usize,
}

#[derive(Default)]
struct Pipelines {
    modules: HashMap<ModuleKey, wgpu::ShaderModule>,
    kernels: HashMap<KernelKey, (wgpu::ComputePipeline, wgpu::BindGroupLayout)>,
}

/// Owns the device, the queue, the pipelines and the caches of reusable objects.
pub(crate) struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// Bound where a kernel's WGSL declares a buffer the call does not use.
    pub dummy: wgpu::Buffer,
    /// A second unused buffer, for a call that leaves two writable bindings unused: WebGPU
    /// (Dawn) refuses one buffer bound to two writable bindings of a dispatch, even unused ones.
    pub dummy_other: wgpu::Buffer,
    /// The first device error no error scope caught (validation, out of memory).
    errors: Arc<Mutex<Option<String>>>,
    /// Why the device was lost, once it is: every later call fails with it (a browser loses a
    /// device on a driver reset, a tab in the background too long, or `destroy`).
    lost: Arc<Mutex<Option<String>>>,
    created: Counters,
    pipelines: Mutex<Pipelines>,
    /// The recorded dispatches; held while dispatches are recorded, a buffer written or work
    /// submitted, which keeps every caller's work in the order of its calls.
    recording: Mutex<Recording>,
    bind_groups: Arc<BindGroups>,
    scratch: Mutex<BufferPool<(ScratchUse, u64)>>,
    staging: Mutex<BufferPool<u64>>,
}

/// Locks `m`, recovering the data of a poisoned lock (every critical section leaves it whole).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Context {
    /// Wraps a freshly opened device: installs the error sink. Idle scratch buffers are kept up
    /// to `scratch_pool_bytes`.
    pub(crate) fn new(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo, scratch_pool_bytes: u64) -> Result<Self> {
        let errors = Arc::new(Mutex::new(None));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            let mut slot = lost_sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| format!("the GPU device was lost ({reason:?}): {message}"));
        });
        let created = Counters::default();
        let dummy = new_buffer(&device, &created, "unused binding", 16, wgpu::BufferUsages::STORAGE);
        let dummy_other = new_buffer(&device, &created, "second unused binding", 16, wgpu::BufferUsages::STORAGE);
        let ctx = Self {
            limits: device.limits(),
            features: device.features(),
            device,
            queue,
            info,
            dummy,
            dummy_other,
            errors,
            lost,
            created,
            pipelines: Mutex::default(),
            recording: Mutex::default(),
            // On wasm32 wgpu's handles are neither Send nor Sync (a page has one thread); the Arc
            // is for the native backends, where they are.
            #[allow(clippy::arc_with_non_send_sync)]
            bind_groups: Arc::new(Mutex::new(BindGroupCache::new(MAX_BIND_GROUPS))),
            scratch: Mutex::new(BufferPool::new(MAX_POOLED, scratch_pool_bytes)),
            staging: Mutex::new(BufferPool::new(MAX_POOLED, STAGING_BYTES)),
        };
        ctx.check_errors()?;
        Ok(ctx)
    }

    /// Returns (and clears) the first device error reported since the last check; once the
    /// device is lost, that it is lost, at every check.
    pub(crate) fn check_errors(&self) -> Result<()> {
        if let Some(why) = lock(&self.lost).as_ref() {
            return Err(Error::Device(why.clone()));
        }
        match lock(&self.errors).take() {
            Some(e) => Err(Error::Device(e)),
            None => Ok(()),
        }
    }

    /// How many buffers, bind groups and pipelines have been created so far.
    pub(crate) fn created(&self) -> CreatedObjects {
        CreatedObjects {
            buffers: self.created.buffers.load(Ordering::Relaxed),
            bind_groups: self.created.bind_groups.load(Ordering::Relaxed),
            pipelines: self.created.pipelines.load(Ordering::Relaxed),
        }
    }

    /// Creates a buffer, counted.
    pub(crate) fn create_buffer(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        new_buffer(&self.device, &self.created, label, size, usage)
    }

    /// A new storage buffer of `len` f32 (at least one, as empty bindings are invalid).
    pub(crate) fn storage(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        let size = byte_size(label, len)?;
        if size > self.limits.max_buffer_size {
            return Err(LimitError::new(label.to_string(), size, "bytes", self.limits.max_buffer_size, "max_buffer_size").into());
        }
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let buffer = self.create_buffer(label, size.max(4), usage);
        self.check_errors()?;
        Ok(buffer)
    }

    /// The bind group cache, for buffers that clear their entries when released.
    pub(crate) fn bind_groups(&self) -> Weak<BindGroups> {
        Arc::downgrade(&self.bind_groups)
    }

    /// A scratch storage buffer of `len` f32 for `what`, which must fit one storage binding:
    /// an idle one of the same purpose and size, else a new one. It returns to its pool when
    /// the [`Scratch`] is dropped.
    pub(crate) fn scratch(&self, what: ScratchUse, len: usize) -> Result<Scratch<'_>> {
        let max = self.max_binding_floats();
        if len > max {
            return Err(LimitError::new(format!("{what:?} scratch"), len as u64, "f32", max as u64, "storage binding").into());
        }
        let key = (what, byte_size("scratch", len)?.max(4));
        let buffer = match lock(&self.scratch).take(&key) {
            Some(b) => b,
            None => self.storage(&format!("{what:?} scratch"), len)?,
        };
        Ok(Scratch { ctx: self, key, buffer: Some(buffer) })
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
            return Err(LimitError::new(what.to_string(), invocations as u64, "invocations", u32::MAX, "32-bit index").into());
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
            return Err(LimitError::new(what.to_string(), groups, "workgroups", max * max, "two-dimensional grid").into());
        }
        Ok([x as u32, y as u32, 1])
    }

    /// Checks a grid against `max_compute_workgroups_per_dimension`.
    pub(crate) fn check_grid(&self, what: &str, groups: [u32; 3]) -> Result<()> {
        let max = self.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            let largest = groups.iter().copied().max().unwrap_or(0);
            return Err(LimitError::new(what.to_string(), largest, "workgroups", max, "max_compute_workgroups_per_dimension").into());
        }
        Ok(())
    }

    /// The pipeline of `kernel` and its bind group layout, built (with its shader module, once
    /// per module) on its first use, so that a backend compiles only the kernels and GEMM
    /// configurations it uses.
    fn pipeline(&self, kernel: KernelKey) -> (wgpu::ComputePipeline, wgpu::BindGroupLayout) {
        let mut cache = lock(&self.pipelines);
        if let Some(found) = cache.kernels.get(&kernel) {
            return found.clone();
        }
        let (key, label, source) = kernel.module();
        let module = cache
            .modules
            .entry(key)
            .or_insert_with(|| {
                self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&label),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                })
            })
            .clone();
        self.created.pipelines.fetch_add(1, Ordering::Relaxed);
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.entry),
            layout: None,
            module: &module,
            entry_point: Some(kernel.entry),
            compilation_options: Default::default(),
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        cache.kernels.insert(kernel, (pipeline.clone(), layout.clone()));
        (pipeline, layout)
    }

    /// The bind group of dispatch `d` with uniform buffer `uniform` (slot `slot` of its kernel):
    /// cached, else created.
    fn bind_group(&self, d: &Dispatch<'_>, slot: usize, uniform: &wgpu::Buffer, layout: &wgpu::BindGroupLayout) -> wgpu::BindGroup {
        let key = BindGroupKey { kernel: d.kernel, slot, storage: d.storage.0.map(|b| b.cloned()) };
        let mut cache = lock(&self.bind_groups);
        if let Some(group) = cache.get(&key) {
            return group;
        }
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        entries.extend(d.storage.bound().map(|(binding, b)| wgpu::BindGroupEntry { binding, resource: b.as_entire_binding() }));
        self.created.bind_groups.fetch_add(1, Ordering::Relaxed);
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout, entries: &entries });
        cache.insert(key, group.clone());
        group
    }

    /// Records `dispatches` in one compute pass, in order, after those already recorded; they are
    /// submitted with them (see the module's documentation).
    pub(crate) fn run(&self, dispatches: &[Dispatch<'_>]) -> Result<()> {
        let max_binding = self.limits.max_storage_buffer_binding_size;
        for d in dispatches {
            if let Some((binding, b)) = d.storage.bound().find(|(_, b)| b.size() > max_binding) {
                let what = format!("{} binding {binding}", d.kernel.entry);
                return Err(LimitError::new(what, b.size(), "bytes", max_binding, "max_storage_buffer_binding_size").into());
            }
        }
        let mut recording = lock(&self.recording);
        let Recording { uniforms, encoder, slots, dispatches: recorded } = &mut *recording;
        let encoder =
            encoder.get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("eggroll") }));
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("eggroll"), timestamp_writes: None });
            for d in dispatches {
                if d.groups.contains(&0) {
                    continue;
                }
                let next = slots.entry(d.kernel).or_default();
                let slot = *next;
                *next += 1;
                *recorded += 1;
                let (pipeline, layout) = self.pipeline(d.kernel);
                let params = d.params.bytes();
                let uniform = uniforms
                    .entry((d.kernel, slot))
                    .or_insert_with(|| {
                        self.create_buffer("params", params.len() as u64, wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST)
                    })
                    .clone();
                self.queue.write_buffer(&uniform, 0, params);
                let bind_group = self.bind_group(d, slot, &uniform, &layout);
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
            }
        }
        if recording.dispatches >= MAX_RECORDED {
            self.submit_recorded(&mut recording, None);
        }
        drop(recording);
        self.check_errors()
    }

    /// Submits the recorded dispatches, then `then` when given, and starts a new recording.
    fn submit_recorded(&self, recording: &mut Recording, then: Option<wgpu::CommandEncoder>) {
        let recorded = recording.encoder.take();
        recording.slots.clear();
        recording.dispatches = 0;
        let buffers: Vec<wgpu::CommandBuffer> = recorded.into_iter().chain(then).map(wgpu::CommandEncoder::finish).collect();
        if !buffers.is_empty() {
            self.queue.submit(buffers);
        }
    }

    /// Submits the recorded dispatches.
    pub(crate) fn flush(&self) -> Result<()> {
        self.submit_recorded(&mut lock(&self.recording), None);
        self.check_errors()
    }

    /// Submits the recorded dispatches, then `encoder`'s commands.
    pub(crate) fn submit(&self, encoder: wgpu::CommandEncoder) {
        self.submit_recorded(&mut lock(&self.recording), Some(encoder));
    }

    /// Writes `bytes` into `buffer` from byte `offset` on, after the recorded dispatches (which
    /// are submitted first: a write takes effect before the next submission's commands).
    pub(crate) fn write_buffer(&self, buffer: &wgpu::Buffer, offset: u64, bytes: &[u8]) {
        let mut recording = lock(&self.recording);
        self.submit_recorded(&mut recording, None);
        self.queue.write_buffer(buffer, offset, bytes);
    }

    /// Copies the first `size` bytes of `src` to the host once queued work has run, through a
    /// pooled staging buffer.
    pub(crate) async fn read_bytes(&self, src: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let staging = match lock(&self.staging).take(&size) {
            Some(b) => b,
            None => self.create_buffer("readback", size, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
        };
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        encoder.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.submit(encoder);
        self.check_errors()?;
        let bytes = self.map_read(&staging).await?;
        // Only a buffer that mapped and unmapped cleanly goes back to the pool (staging buffers
        // are never bound, so what it evicts has no bind groups).
        lock(&self.staging).give(size, staging);
        Ok(bytes)
    }

    /// Maps a MAP_READ buffer and copies its contents out.
    pub(crate) async fn map_read(&self, staging: &wgpu::Buffer) -> Result<Vec<u8>> {
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.poll()?;
        let mapped = rx.await.map_err(|_| Error::Readback("the map callback was dropped".into()))?;
        if let Err(e) = mapped {
            // A lost device fails every mapping: say so rather than only that the map failed.
            self.check_errors()?;
            return Err(Error::Readback(e.to_string()));
        }
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

/// A scratch buffer taken from the pool for one call; given back when dropped (and the bind
/// groups of any buffer the pool evicts for it are dropped with that buffer).
pub(crate) struct Scratch<'a> {
    ctx: &'a Context,
    key: (ScratchUse, u64),
    buffer: Option<wgpu::Buffer>,
}

impl Scratch<'_> {
    /// The buffer.
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("present until dropped")
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            let evicted = lock(&self.ctx.scratch).give(self.key, buffer);
            if !evicted.is_empty() {
                let mut groups = lock(&self.ctx.bind_groups);
                for b in &evicted {
                    groups.forget(b);
                }
            }
        }
    }
}

/// Creates a buffer and counts it: the one place the backend creates buffers.
fn new_buffer(device: &wgpu::Device, created: &Counters, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    created.buffers.fetch_add(1, Ordering::Relaxed);
    device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage, mapped_at_creation: false })
}

/// Bytes of `len` f32, refusing overflow.
pub(crate) fn byte_size(what: &str, len: usize) -> Result<u64> {
    (len as u64).checked_mul(4).ok_or_else(|| LimitError::new(what.to_string(), len as u64, "f32", u64::MAX / 4, "64-bit byte size").into())
}

/// Converts a size to a u32 shader parameter.
pub(crate) fn word(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| LimitError::new(what.to_string(), v as u64, "", u32::MAX, "32-bit shader index").into())
}
