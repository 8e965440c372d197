//! [`WgpuBackend`]: the device context and the GEMM chooser, its construction and the
//! inspection methods, and the helpers its kernels share (single dispatches, chunking, the
//! fitness differences of an update).

use super::adapter;
use super::buffer::GpuBuffer;
use super::config::{GemmConfig, MatmulVariant, ShapeBucket, WgpuOptions};
use super::context::{word, Context, CreatedObjects, Scratch, ScratchUse};
use super::gemm::{Gemm, GemmChooser, GemmSource};
use super::kernel::{Dispatch, IntDot, Kernel, Operands};
use super::timing;
use crate::noise_cache::NoiseCache;
use crate::transformer::RotationMemo;
use crate::{DType, Result};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The EGGROLL kernels on a wgpu device. Implements [`crate::Backend`].
pub struct WgpuBackend {
    pub(crate) ctx: Context,
    gemms: GemmChooser,
    scratch_floats: usize,
    /// How the integer kernels compute their packed int8 dot products.
    pub(crate) int_dot: IntDot,
    /// The integer log-likelihood's tables (`int8::EXP2` then `int8::LOG2`), uploaded on first use.
    pub(crate) int_tables: OnceLock<wgpu::Buffer>,
    /// The noise cache ([`crate::Kernels::set_noise_cache`]): draws kept in device buffers.
    pub(crate) noise: NoiseCache<wgpu::Buffer>,
    /// The rotary embedding's last rotations, computed once per forward.
    pub(crate) rotations: RotationMemo,
    /// The rotations last uploaded and the buffer that holds them: written when the memo's
    /// rotations change (once per forward), read by every layer's `rope`.
    pub(crate) rotation_upload: Mutex<Option<(Arc<[f32]>, GpuBuffer)>>,
}

/// Default of [`WgpuOptions::scratch_bytes`].
const DEFAULT_SCRATCH_BYTES: u64 = 256 << 20;

impl WgpuBackend {
    /// Opens an adapter per `opts` and requests a device with the adapter's own limits and the
    /// optional features it has. Pipelines are built on their first use.
    pub async fn new(opts: &WgpuOptions) -> Result<Self> {
        let adapter::Opened { device, queue, info, packed_dot } = adapter::open(opts).await?;
        let int_dot = if packed_dot && !opts.int_dot_fallback { IntDot::Native } else { IntDot::Fallback };
        let variant =
            opts.gemm_config.map(|c| c.variant).or(opts.matmul_variant).unwrap_or_else(|| MatmulVariant::for_device_type(info.device_type));
        let scratch_bytes = opts.scratch_bytes.unwrap_or(DEFAULT_SCRATCH_BYTES);
        let scratch_floats = (scratch_bytes / 4).min(u64::from(u32::MAX)) as usize;
        // Idle scratch buffers kept: a few chunks' worth of the scratch cap.
        let ctx = Context::new(device, queue, info, scratch_bytes.saturating_mul(4))?;
        if let Some(c) = opts.gemm_config {
            c.check(&ctx.limits)?;
        }
        let gemms = GemmChooser::new(&ctx, variant, opts.gemm_config, opts.autotune, opts.autotune_cache.clone());
        Ok(Self {
            ctx,
            gemms,
            scratch_floats,
            int_dot,
            int_tables: OnceLock::new(),
            noise: NoiseCache::default(),
            rotations: RotationMemo::default(),
            rotation_upload: Mutex::new(None),
        })
    }

    /// Blocking [`WgpuBackend::new`] for native callers.
    #[cfg(feature = "native")]
    pub fn new_blocking(opts: &WgpuOptions) -> Result<Self> {
        pollster::block_on(Self::new(opts))
    }

    /// The GEMM kernel family in use.
    pub fn matmul_variant(&self) -> MatmulVariant {
        self.gemms.variant()
    }

    /// Whether the integer kernels use WGSL's `dot4I8Packed` (the instance has the language
    /// feature and [`WgpuOptions::int_dot_fallback`] is off) rather than its core-WGSL fallback.
    pub fn int_dot_native(&self) -> bool {
        self.int_dot == IntDot::Native
    }

    /// The device's limits (the adapter's own, as requested).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.ctx.limits
    }

    /// How many buffers, bind groups and compute pipelines this backend has created since it was
    /// opened (every one it creates is counted). Calls of shapes met before create none: their
    /// uniform, scratch and readback buffers, bind groups and pipelines are reused.
    pub fn created(&self) -> CreatedObjects {
        self.ctx.created()
    }

    /// The configuration chosen for every shape bucket and storage types met so far (forced,
    /// autotuned or by rule), sorted by bucket: `(bucket, module name)`, the configuration's name
    /// with the storage types' [`Operands::suffix`] (none for f32).
    pub fn gemm_choices(&self) -> Vec<(ShapeBucket, String)> {
        self.gemms.choices().into_iter().map(|(b, o, c, _)| (b, format!("{}{}", c.name(), o.suffix()))).collect()
    }

    /// The configuration chosen for every shape bucket and storage types met so far and where it
    /// came from (e.g. [`GemmSource::AutotuneCache`] when the autotune cache file held it),
    /// sorted by bucket.
    pub fn gemm_choice_sources(&self) -> Vec<(ShapeBucket, Operands, GemmConfig, GemmSource)> {
        self.gemms.choices()
    }

    /// Whether [`WgpuBackend::time_gpu`] measures with GPU timestamp queries.
    pub fn supports_timestamps(&self) -> bool {
        timing::has_timestamps(&self.ctx)
    }

    /// Runs `f` (which enqueues work) and returns how long the device took for it: between
    /// timestamps written before and after `f`'s submissions when the adapter supports timestamp
    /// queries, else wall time until the queue drains (native only: on wasm32 without timestamps
    /// this returns [`crate::Error::Unsupported`]). Never blocks on wasm32.
    pub async fn time_gpu<F: FnOnce(&Self) -> Result<()>>(&self, f: F) -> Result<Duration> {
        timing::time(&self.ctx, || f(self)).await
    }

    /// A new buffer of `len` values stored as `dtype` (zero-filled: wgpu zero-initialises new
    /// buffers).
    pub(crate) fn new_buffer(&self, len: usize, dtype: DType) -> Result<GpuBuffer> {
        Ok(GpuBuffer::new(self.ctx.storage("buffer", dtype.words(len))?, len, dtype, self.ctx.bind_groups()))
    }

    /// The dispatch of `g` with the configuration chosen for its shape.
    pub(crate) fn gemm<'a>(&self, g: Gemm<'a>) -> Result<Dispatch<'a>> {
        self.gemms.dispatch(&self.ctx, g)
    }

    /// A dispatch of `kernel` over `invocations` one-dimensional invocations.
    pub(crate) fn over<'a, K: Kernel>(
        &self, kernel: K, invocations: usize, params: &K::Params, buffers: K::Buffers<'a>,
    ) -> Result<Dispatch<'a>> {
        let groups = self.ctx.grid(kernel.key().entry, invocations)?;
        Ok(Dispatch::new(kernel, params, buffers, groups))
    }

    /// Runs one kernel over `invocations` one-dimensional invocations.
    pub(crate) fn dispatch<K: Kernel>(&self, kernel: K, invocations: usize, params: &K::Params, buffers: K::Buffers<'_>) -> Result<()> {
        let d = self.over(kernel, invocations, params, buffers)?;
        self.ctx.run(&[d])
    }

    /// A scratch buffer holding `values` (f32, u32 or i32 words).
    pub(crate) fn upload_scratch<T: bytemuck::Pod>(&self, what: ScratchUse, values: &[T]) -> Result<Scratch<'_>> {
        let s = self.ctx.scratch(what, values.len())?;
        self.ctx.write_buffer(s.buffer(), 0, bytemuck::cast_slice(values));
        Ok(s)
    }

    /// How many items of `per_item` f32 fit one scratch buffer (at least 1, at most `total`).
    pub(crate) fn chunk(&self, what: &str, per_item: usize, total: usize) -> Result<usize> {
        let budget = self.ctx.max_binding_floats().min(self.scratch_floats);
        if per_item > self.ctx.max_binding_floats() {
            let max = self.ctx.max_binding_floats() as u64;
            return Err(crate::error::LimitError::new(what.to_string(), per_item as u64, "f32 per item", max, "storage binding").into());
        }
        let max_batch = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        Ok((budget / per_item).clamp(1, total.min(max_batch)))
    }

    /// The antithetic fitness differences `d_k = f_2k - f_2k+1` in a scratch buffer.
    pub(crate) fn fitness_differences(&self, fitness: &[f32]) -> Result<Scratch<'_>> {
        let differences: Vec<f32> = fitness.chunks_exact(2).map(|f| f[0] - f[1]).collect();
        word("pairs", differences.len())?;
        self.upload_scratch(ScratchUse::FitnessDifferences, &differences)
    }
}
