//! GEMM configurations: the candidate tile and register-block sizes of matmul.wgsl, the rule
//! that picks one per adapter and shape, and the autotuner that times the candidates once per
//! shape bucket and caches the winner.

use super::lowrank::Gemm;
use super::{MatmulVariant, WgpuBackend};
use crate::{Error, Result};
use std::fmt;

/// One compilation of matmul.wgsl: kernel variant, workgroup shape and register block. The output
/// tile of a workgroup is `(workgroup[1] block[0]) x (workgroup[0] block[1])` (rows x columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GemmConfig {
    /// Workgroup-memory tiles with barriers, or straight global reads without them.
    pub variant: MatmulVariant,
    /// Invocations per workgroup: `[columns, rows]` (WGSL `@workgroup_size(x, y)`).
    pub workgroup: [u32; 2],
    /// Outputs per invocation: `[rows, columns]`.
    pub block: [u32; 2],
}

/// Depth of the operand slices the tiled variant stages in workgroup memory.
const KT: u32 = 8;

impl GemmConfig {
    const fn new(variant: MatmulVariant, workgroup: [u32; 2], block: [u32; 2]) -> Self {
        Self { variant, workgroup, block }
    }

    /// The candidates the backend compiles, chooses among and autotunes over. The last, 128 x 128 tiles of 8 x 8 register blocks (64 accumulators per invocation, 8 KiB
    /// of workgroup memory), is the usual shape of fast f32 GEMMs on large GPUs; only the
    /// autotuner picks it, where it measures fastest.
    pub const CANDIDATES: [GemmConfig; 8] = [
        GemmConfig::new(MatmulVariant::WorkgroupTiled, [16, 16], [4, 4]),
        GemmConfig::new(MatmulVariant::WorkgroupTiled, [16, 16], [8, 4]),
        GemmConfig::new(MatmulVariant::WorkgroupTiled, [16, 16], [2, 2]),
        GemmConfig::new(MatmulVariant::Direct, [16, 16], [4, 4]),
        GemmConfig::new(MatmulVariant::Direct, [16, 16], [2, 2]),
        GemmConfig::new(MatmulVariant::Direct, [16, 16], [8, 4]),
        GemmConfig::new(MatmulVariant::Direct, [8, 8], [4, 4]),
        GemmConfig::new(MatmulVariant::WorkgroupTiled, [16, 16], [8, 8]),
    ];

    /// The configuration the rule picks for a shape bucket within a variant family.
    pub fn by_rule(variant: MatmulVariant, bucket: ShapeBucket) -> GemmConfig {
        let (rows, cols, batch) = (bucket.rows, bucket.cols, bucket.batch);
        let groups = |tm: usize, tn: usize| rows.div_ceil(tm) * cols.div_ceil(tn) * batch;
        match variant {
            // GPUs: enough workgroups to fill every compute unit first, then the largest register
            // block (most reuse per load) that still leaves a few waves of 128 x 64 tiles.
            MatmulVariant::WorkgroupTiled => {
                if groups(64, 64) < 64 {
                    GemmConfig::CANDIDATES[2]
                } else if rows >= 128 && groups(128, 64) >= 256 {
                    GemmConfig::CANDIDATES[1]
                } else {
                    GemmConfig::CANDIDATES[0]
                }
            }
            // CPU adapters: one workgroup per thread at a time, SIMD across invocations. 64 x 64
            // tiles with 4 x 4 blocks were the fastest or within 20% on lavapipe and llvmpipe at
            // 256 and 512 (128 x 64 with 8 x 4 wins by 20% on llvmpipe at 512 but loses 12% on
            // lavapipe: the autotuner settles it); small outputs take 32 x 32 tiles of 8 x 8
            // workgroups so that every thread gets a tile.
            MatmulVariant::Direct => {
                if groups(64, 64) >= 8 {
                    GemmConfig::CANDIDATES[3]
                } else {
                    GemmConfig::CANDIDATES[6]
                }
            }
        }
    }

    /// The default of each variant: 64 x 64 tiles, 4 x 4 register blocks.
    pub fn default_for(variant: MatmulVariant) -> Self {
        Self::new(variant, [16, 16], [4, 4])
    }

    /// Output tile of one workgroup: (rows, columns).
    pub fn tile(&self) -> (u32, u32) {
        (self.workgroup[1] * self.block[0], self.workgroup[0] * self.block[1])
    }

    /// E.g. `tiled-64x64-r4x4`, with `-wgXxY` when the workgroup is not 16 x 16.
    pub fn name(&self) -> String {
        let kind = match self.variant {
            MatmulVariant::WorkgroupTiled => "tiled",
            MatmulVariant::Direct => "direct",
        };
        let (tm, tn) = self.tile();
        let mut name = format!("{kind}-{tm}x{tn}-r{}x{}", self.block[0], self.block[1]);
        if self.workgroup != [16, 16] {
            name += &format!("-wg{}x{}", self.workgroup[0], self.workgroup[1]);
        }
        name
    }

    /// The WGSL entry point of the variant.
    pub(crate) fn entry_point(&self) -> &'static str {
        match self.variant {
            MatmulVariant::WorkgroupTiled => "matmul_tiled",
            MatmulVariant::Direct => "matmul_direct",
        }
    }

    /// The full WGSL module of this configuration for inputs and weights stored as `dtype`: the
    /// storage type, the constants, then matmul.wgsl.
    pub fn wgsl(&self, dtype: crate::DType) -> String {
        format!(
            "{}// GEMM configuration {}\nconst WG_X: u32 = {}u;\nconst WG_Y: u32 = {}u;\nconst BM: u32 = {}u;\nconst BN: u32 = {}u;\nconst KT: u32 = {}u;\n\n{}",
            super::shaders::dtype_prelude(dtype),
            self.name(),
            self.workgroup[0],
            self.workgroup[1],
            self.block[0],
            self.block[1],
            KT,
            super::shaders::MATMUL
        )
    }

    /// Checks the configuration against a device's limits.
    pub(crate) fn check(&self, limits: &wgpu::Limits) -> Result<()> {
        let [wx, wy] = self.workgroup;
        let (tm, tn) = self.tile();
        let shared = 4 * KT * (tm + tn);
        let ok = wx > 0
            && wy > 0
            && self.block.iter().all(|&b| (1..=16).contains(&b))
            && wx <= limits.max_compute_workgroup_size_x
            && wy <= limits.max_compute_workgroup_size_y
            && wx * wy <= limits.max_compute_invocations_per_workgroup
            && shared <= limits.max_compute_workgroup_storage_size;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "GEMM configuration {} ({self:?}) does not fit this device (workgroup {wx}x{wy}, {shared} bytes of workgroup memory)",
                self.name()
            )))
        }
    }
}

impl fmt::Display for GemmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A class of GEMM shapes that share one configuration: every size rounded up to a power of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShapeBucket {
    /// Output rows (per batch entry), rounded up to a power of two.
    pub rows: usize,
    /// Output columns, rounded up to a power of two.
    pub cols: usize,
    /// Inner dimension, rounded up to a power of two.
    pub inner: usize,
    /// Batch entries (members of a batched GEMM), rounded up to a power of two.
    pub batch: usize,
}

impl ShapeBucket {
    /// The bucket of a `rows x inner` by `(cols x inner)ᵀ` GEMM repeated `batch` times.
    pub fn of(rows: usize, cols: usize, inner: usize, batch: usize) -> Self {
        let p = |v: usize| v.max(1).checked_next_power_of_two().unwrap_or(usize::MAX);
        Self { rows: p(rows), cols: p(cols), inner: p(inner), batch: p(batch) }
    }
}

impl fmt::Display for ShapeBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rows<={} cols<={} inner<={} batch<={}", self.rows, self.cols, self.inner, self.batch)
    }
}

/// Cap on the f32 the autotuner allocates for its stand-in operands.
#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
const TUNE_FLOATS: usize = 32 << 20;

impl WgpuBackend {
    /// The configuration for GEMM `g`: the forced one, else the cached choice of its bucket, else
    /// the autotuner's or the rule's (then cached).
    pub(crate) fn gemm_config(&self, g: &Gemm<'_>) -> Result<GemmConfig> {
        let bucket = ShapeBucket::of(g.rows, g.cols, g.inner, g.batch);
        if let Some(c) = self.gemm_choices.lock().unwrap_or_else(|p| p.into_inner()).get(&bucket) {
            return Ok(*c);
        }
        let config = match self.forced_gemm {
            Some(c) => c,
            // A shape the stand-in operands cannot be timed on (limits) falls back to the rule.
            None if self.autotune => self.autotune(g).unwrap_or_else(|_| GemmConfig::by_rule(self.matmul_variant, bucket)),
            None => GemmConfig::by_rule(self.matmul_variant, bucket),
        };
        self.gemm_choices.lock().unwrap_or_else(|p| p.into_inner()).insert(bucket, config);
        Ok(config)
    }

    /// The configuration chosen for every shape bucket met so far (forced, autotuned or by rule),
    /// sorted by bucket: `(bucket, configuration name)`.
    pub fn gemm_choices(&self) -> Vec<(ShapeBucket, String)> {
        let choices = self.gemm_choices.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<(ShapeBucket, String)> = choices.iter().map(|(b, c)| (*b, c.name())).collect();
        v.sort();
        v
    }

    /// Times every candidate that fits the device (only the direct ones when the backend's family
    /// is [`MatmulVariant::Direct`]) on stand-in operands of `g`'s shape (a few runs
    /// each after a warm-up that compiles it; GPU timestamps when present, else wall time) and
    /// returns the fastest.
    #[cfg(all(feature = "native", not(target_arch = "wasm32")))]
    fn autotune(&self, g: &Gemm<'_>) -> Result<GemmConfig> {
        let (rows, cols, inner) = (g.rows, g.cols, g.inner);
        let per_entry = rows * inner + rows * cols + if g.w_batch > 0 { cols * inner } else { 0 };
        let batch = g.batch.min((TUNE_FLOATS / per_entry.max(1)).max(1));
        let w_batch = if g.w_batch > 0 { cols * inner } else { 0 };
        let x = self.ctx.storage("autotune x", batch * rows * inner)?;
        let w = self.ctx.storage("autotune w", if g.w_batch > 0 { batch } else { 1 } * cols * inner)?;
        let y = self.ctx.storage("autotune y", batch * rows * cols)?;
        let mut best: Option<(std::time::Duration, GemmConfig)> = None;
        for config in GemmConfig::CANDIDATES {
            // The direct family (CPU adapters) skips the tiled candidates: slow there, and slow to
            // compile (llvmpipe takes seconds per barrier kernel).
            let skip = self.matmul_variant == MatmulVariant::Direct && config.variant != MatmulVariant::Direct;
            if skip || config.check(&self.ctx.limits).is_err() {
                continue;
            }
            let stand_in =
                || Gemm { batch, x_batch: rows * inner, w_batch, y_batch: rows * cols, ..Gemm::plain(&x, &w, &y, rows, cols, inner) };
            let run = |b: &Self| b.ctx.run(&[stand_in().dispatch(&b.ctx, config)?]);
            let warm = pollster::block_on(self.time_gpu(run))?;
            let reps = if warm.as_secs_f64() > 0.5 { 1 } else { 3 };
            let mut time = std::time::Duration::MAX;
            for _ in 0..reps {
                time = time.min(pollster::block_on(self.time_gpu(run))?);
            }
            if best.is_none_or(|(t, _)| time < t) {
                best = Some((time, config));
            }
        }
        Ok(best.map_or_else(|| GemmConfig::by_rule(self.matmul_variant, ShapeBucket::of(rows, cols, inner, g.batch)), |(_, c)| c))
    }

    /// Without a blocking executor the autotuner cannot wait for its timings: the rule decides.
    #[cfg(not(all(feature = "native", not(target_arch = "wasm32"))))]
    fn autotune(&self, g: &Gemm<'_>) -> Result<GemmConfig> {
        Ok(GemmConfig::by_rule(self.matmul_variant, ShapeBucket::of(g.rows, g.cols, g.inner, g.batch)))
    }
}
