//! What the wgpu backend can be configured with: the options of [`super::WgpuBackend::new`], the
//! GEMM kernel families and configurations (the candidate tile and register-block sizes of
//! matmul.wgsl), the shape buckets a configuration is chosen for, and the rule that picks one.

use crate::{Error, Result};
use std::fmt;
use std::path::PathBuf;

/// Which GEMM kernel family [`super::WgpuBackend`] uses for `X Wᵀ`; the tile and register-block
/// sizes within it are a [`GemmConfig`], chosen per shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatmulVariant {
    /// Stages 8-deep slices of the operands in workgroup memory between barriers: the fast one
    /// on GPUs.
    WorkgroupTiled,
    /// Reads the operands straight from global memory, no workgroup memory and no barriers: the
    /// fast one on CPU adapters (lavapipe, llvmpipe, SwiftShader), where barriers are costly.
    Direct,
}

impl MatmulVariant {
    /// The variant that suits an adapter: [`MatmulVariant::Direct`] on CPU adapters,
    /// [`MatmulVariant::WorkgroupTiled`] elsewhere.
    pub fn for_device_type(device_type: wgpu::DeviceType) -> Self {
        if device_type == wgpu::DeviceType::Cpu {
            MatmulVariant::Direct
        } else {
            MatmulVariant::WorkgroupTiled
        }
    }

    /// Short name: `tiled` or `direct` (the prefix of [`GemmConfig::name`]).
    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::WorkgroupTiled => "tiled",
            MatmulVariant::Direct => "direct",
        }
    }
}

/// How [`super::WgpuBackend::new`] picks and configures the adapter.
#[derive(Clone, Debug)]
pub struct WgpuOptions {
    /// Graphics APIs to consider; `None` reads `WGPU_BACKEND` (e.g. "vulkan", "gl"), else all.
    pub backends: Option<wgpu::Backends>,
    /// Case-insensitive substring of the adapter name; `None` reads `WGPU_ADAPTER_NAME`, else the
    /// adapter wgpu prefers for `power_preference`.
    pub adapter_name: Option<String>,
    /// The adapter at this index of every adapter of `backends`, in wgpu's order (the list
    /// `eggroll info` numbers); overrides `adapter_name`. `None`: by name or preference.
    pub adapter_index: Option<usize>,
    /// Preference when no name is given.
    pub power_preference: wgpu::PowerPreference,
    /// GEMM kernel family; `None` chooses by device type ([`MatmulVariant::for_device_type`]).
    /// Within it, a rule picks the tile configuration per shape bucket ([`GemmConfig::by_rule`]).
    pub matmul_variant: Option<MatmulVariant>,
    /// One GEMM configuration for every shape (overrides `matmul_variant` and `autotune`).
    pub gemm_config: Option<GemmConfig>,
    /// Time the candidates of [`GemmConfig::CANDIDATES`] (all of them, or the direct ones when the
    /// family is [`MatmulVariant::Direct`], as on CPU adapters) on the first GEMM of each shape
    /// bucket and keep the fastest (see [`super::WgpuBackend::gemm_choices`]); `false`: the rule
    /// decides. On native targets the choices persist in the autotune cache file
    /// (`autotune_cache`), so that a later run on the same adapter does not time them again.
    pub autotune: bool,
    /// The autotune cache file. `None`: the path in `EGGROLL_AUTOTUNE_CACHE` when set and not
    /// empty, else `$XDG_CACHE_HOME/eggroll/gemm-autotune.json`, else
    /// `$HOME/.cache/eggroll/gemm-autotune.json` (no file when neither variable is set).
    /// Native targets only: on wasm32 the rule decides instead of the autotuner.
    pub autotune_cache: Option<PathBuf>,
    /// Cap on the scratch memory (bytes) that `full_rank_matmul` (materialised weights) and
    /// `lowrank_update` (materialised factors) use per buffer; the work is split into chunks
    /// that fit it and one storage binding. `None`: 256 MiB. Scratch buffers are kept between
    /// calls for reuse, idle ones up to four times this in all.
    pub scratch_bytes: Option<u64>,
    /// Compile the integer kernels with their packed int8 helpers built from core WGSL bit
    /// operations even where the instance offers WGSL's `packed_4x8_integer_dot_product`
    /// (`dot4I8Packed`); without that language feature they are built so anyway. Both give the
    /// same bits; this exercises the fallback on adapters that have the feature.
    pub int_dot_fallback: bool,
}

impl Default for WgpuOptions {
    fn default() -> Self {
        Self {
            backends: None,
            adapter_name: None,
            adapter_index: None,
            power_preference: wgpu::PowerPreference::HighPerformance,
            matmul_variant: None,
            gemm_config: None,
            autotune: false,
            autotune_cache: None,
            scratch_bytes: None,
            int_dot_fallback: false,
        }
    }
}

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
pub(crate) const KT: u32 = 8;

impl GemmConfig {
    const fn new(variant: MatmulVariant, workgroup: [u32; 2], block: [u32; 2]) -> Self {
        Self { variant, workgroup, block }
    }

    /// The candidates the backend compiles, chooses among and autotunes over. The last, 128 x 128
    /// tiles of 8 x 8 register blocks (64 accumulators per invocation, 8 KiB of workgroup
    /// memory), is the usual shape of fast f32 GEMMs on large GPUs; only the autotuner picks it,
    /// where it measures fastest.
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
            // tiles with 4 x 4 blocks are the fastest or close to it on both lavapipe and
            // llvmpipe at mid sizes (where the two disagree, the autotuner settles it); small
            // outputs take 32 x 32 tiles of 8 x 8 workgroups so that every thread gets a tile.
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

    /// The candidate named `name` (as [`GemmConfig::name`] writes it), if there is one.
    pub fn candidate_named(name: &str) -> Option<GemmConfig> {
        Self::CANDIDATES.into_iter().find(|c| c.name() == name)
    }

    /// Output tile of one workgroup: (rows, columns).
    pub fn tile(&self) -> (u32, u32) {
        (self.workgroup[1] * self.block[0], self.workgroup[0] * self.block[1])
    }

    /// E.g. `tiled-64x64-r4x4`, with `-wgXxY` when the workgroup is not 16 x 16.
    pub fn name(&self) -> String {
        let (tm, tn) = self.tile();
        let mut name = format!("{}-{tm}x{tn}-r{}x{}", self.variant.name(), self.block[0], self.block[1]);
        if self.workgroup != [16, 16] {
            name += &format!("-wg{}x{}", self.workgroup[0], self.workgroup[1]);
        }
        name
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
