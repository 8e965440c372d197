//! The GEMM of every kernel that multiplies (`X Wᵀ`, the shared product, naive ES, the update):
//! one (batched) GEMM as a dispatch of matmul.wgsl, and the choice of its configuration per shape
//! bucket and storage types: forced, autotuned (remembered in the autotune cache file on native
//! targets), or by rule.

use super::config::{GemmConfig, MatmulVariant, ShapeBucket};
use super::context::{word, Context};
use super::kernel::{Dispatch, Operands};
use super::kernels::{Matmul, MatmulBuffers};
use super::params::GemmParams;
use crate::Result;
use std::collections::HashMap;
use std::sync::Mutex;

/// One (batched) GEMM `y[b] = alpha x[b] w[b]ᵀ (+ y[b])`, offsets and strides in elements.
pub(crate) struct Gemm<'a> {
    pub x: &'a wgpu::Buffer,
    pub w: &'a wgpu::Buffer,
    pub y: &'a wgpu::Buffer,
    pub rows: usize,
    pub cols: usize,
    pub inner: usize,
    pub batch: usize,
    pub x_offset: usize,
    pub x_batch: usize,
    pub w_batch: usize,
    pub y_offset: usize,
    pub y_batch: usize,
    pub alpha: f32,
    pub accumulate: bool,
    /// Storage types of `x` and `w` (`y` is f32).
    pub operands: Operands,
}

impl<'a> Gemm<'a> {
    /// `y = x wᵀ` with x rows x inner, w cols x inner.
    pub(crate) fn plain(x: &'a wgpu::Buffer, w: &'a wgpu::Buffer, y: &'a wgpu::Buffer, rows: usize, cols: usize, inner: usize) -> Self {
        Self {
            x,
            w,
            y,
            rows,
            cols,
            inner,
            batch: 1,
            x_offset: 0,
            x_batch: 0,
            w_batch: 0,
            y_offset: 0,
            y_batch: 0,
            alpha: 1.0,
            accumulate: false,
            operands: Operands::F32,
        }
    }

    /// The shape bucket of this GEMM.
    fn bucket(&self) -> ShapeBucket {
        ShapeBucket::of(self.rows, self.cols, self.inner, self.batch)
    }

    /// What its configuration is chosen for: its shape bucket and storage types.
    fn class(&self) -> (ShapeBucket, Operands) {
        (self.bucket(), self.operands)
    }

    /// The dispatch of this GEMM with `config`.
    pub(crate) fn dispatch(self, ctx: &Context, config: GemmConfig) -> Result<Dispatch<'a>> {
        let g = self;
        let (tm, tn) = config.tile();
        let tiles = |v: usize, t: u32| word("GEMM tiles", v.div_ceil(t as usize));
        let groups = [tiles(g.cols, tn)?, tiles(g.rows, tm)?, word("GEMM batch", g.batch)?];
        ctx.check_grid("GEMM", groups)?;
        let params = GemmParams {
            rows: word("GEMM rows", g.rows)?,
            cols: word("GEMM columns", g.cols)?,
            inner: word("GEMM inner dimension", g.inner)?,
            accumulate: u32::from(g.accumulate),
            x_offset: word("GEMM input offset", g.x_offset)?,
            x_batch: word("GEMM input stride", g.x_batch)?,
            w_batch: word("GEMM weight stride", g.w_batch)?,
            y_offset: word("GEMM output offset", g.y_offset)?,
            y_batch: word("GEMM output stride", g.y_batch)?,
            alpha: g.alpha,
            ..GemmParams::default()
        };
        Ok(Dispatch::new(Matmul(config, g.operands), &params, MatmulBuffers { x: g.x, w: g.w, y: g.y }, groups))
    }
}

/// Where the GEMM configuration of a shape bucket came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GemmSource {
    /// [`super::WgpuOptions::gemm_config`].
    Forced,
    /// [`GemmConfig::by_rule`].
    Rule,
    /// Timed by the autotuner in this run.
    Autotuned,
    /// The autotuner's choice of an earlier run, read from the autotune cache file.
    AutotuneCache,
}

/// Chooses the configuration of each GEMM and remembers the choice per shape bucket and storage
/// types.
pub(crate) struct GemmChooser {
    variant: MatmulVariant,
    forced: Option<GemmConfig>,
    autotune: bool,
    /// The configuration of every shape bucket and storage types met so far, and where it came
    /// from.
    choices: Mutex<HashMap<(ShapeBucket, Operands), (GemmConfig, GemmSource)>>,
    #[cfg(all(feature = "native", not(target_arch = "wasm32")))]
    file: Option<super::autotune_file::AutotuneFile>,
    /// The choices of the autotune cache file for this adapter and family.
    #[cfg(all(feature = "native", not(target_arch = "wasm32")))]
    remembered: HashMap<(ShapeBucket, Operands), GemmConfig>,
}

/// Cap on the f32 the autotuner allocates for its stand-in operands.
#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
const TUNE_FLOATS: usize = 32 << 20;

impl GemmChooser {
    /// Chooses within `variant`: `forced` for every shape, else the autotuner's choice when
    /// `autotune` (the file `cache_path` or the default one remembering them), else the rule.
    pub(crate) fn new(
        ctx: &Context, variant: MatmulVariant, forced: Option<GemmConfig>, autotune: bool, cache_path: Option<std::path::PathBuf>,
    ) -> Self {
        let autotune = autotune && forced.is_none();
        #[cfg(all(feature = "native", not(target_arch = "wasm32")))]
        {
            use super::autotune_file::{AutotuneFile, Owner};
            let owner = Owner {
                adapter: ctx.info.name.clone(),
                backend: format!("{:?}", ctx.info.backend),
                driver: super::adapter::driver(&ctx.info),
                family: variant,
            };
            let file = if autotune { AutotuneFile::new(cache_path, owner) } else { None };
            let remembered = file.as_ref().map(AutotuneFile::load).unwrap_or_default();
            Self { variant, forced, autotune, choices: Mutex::default(), file, remembered }
        }
        #[cfg(not(all(feature = "native", not(target_arch = "wasm32"))))]
        {
            let _ = (ctx, cache_path);
            Self { variant, forced, autotune, choices: Mutex::default() }
        }
    }

    /// The GEMM kernel family.
    pub(crate) fn variant(&self) -> MatmulVariant {
        self.variant
    }

    /// The dispatch of `g` with the configuration chosen for its shape.
    pub(crate) fn dispatch<'a>(&self, ctx: &Context, g: Gemm<'a>) -> Result<Dispatch<'a>> {
        let config = self.config(ctx, &g);
        g.dispatch(ctx, config)
    }

    /// The configuration for GEMM `g`: the cached choice of its bucket and storage types, else
    /// the forced one, the autotuner's (remembered or timed now) or the rule's (then cached).
    fn config(&self, ctx: &Context, g: &Gemm<'_>) -> GemmConfig {
        let class = g.class();
        if let Some((c, _)) = self.choices.lock().unwrap_or_else(|p| p.into_inner()).get(&class) {
            return *c;
        }
        let choice = match self.forced {
            Some(c) => (c, GemmSource::Forced),
            None if self.autotune => self.autotuned(ctx, g),
            None => (GemmConfig::by_rule(self.variant, g.bucket()), GemmSource::Rule),
        };
        self.choices.lock().unwrap_or_else(|p| p.into_inner()).insert(class, choice);
        choice.0
    }

    /// The configuration of every shape bucket and storage types met so far, and its source,
    /// sorted by bucket.
    pub(crate) fn choices(&self) -> Vec<(ShapeBucket, Operands, GemmConfig, GemmSource)> {
        let choices = self.choices.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = choices.iter().map(|(&(b, o), &(c, s))| (b, o, c, s)).collect();
        v.sort();
        v
    }

    /// The autotuner's choice for `g`: remembered in the file, else timed now and stored there.
    /// A shape the stand-in operands cannot be timed on (limits) falls back to the rule.
    #[cfg(all(feature = "native", not(target_arch = "wasm32")))]
    fn autotuned(&self, ctx: &Context, g: &Gemm<'_>) -> (GemmConfig, GemmSource) {
        let (bucket, operands) = g.class();
        if let Some(c) = self.remembered.get(&(bucket, operands)) {
            return (*c, GemmSource::AutotuneCache);
        }
        match self.time_candidates(ctx, g) {
            Ok(c) => {
                if let Some(file) = &self.file {
                    file.store(bucket, operands, c);
                }
                (c, GemmSource::Autotuned)
            }
            Err(_) => (GemmConfig::by_rule(self.variant, bucket), GemmSource::Rule),
        }
    }

    /// Without a blocking executor the autotuner cannot wait for its timings: the rule decides.
    #[cfg(not(all(feature = "native", not(target_arch = "wasm32"))))]
    fn autotuned(&self, _ctx: &Context, g: &Gemm<'_>) -> (GemmConfig, GemmSource) {
        (GemmConfig::by_rule(self.variant, g.bucket()), GemmSource::Rule)
    }

    /// Times every candidate that fits the device (only the direct ones when the family is
    /// [`MatmulVariant::Direct`]) on stand-in operands of `g`'s shape and storage types (a few
    /// runs each after a warm-up that compiles it; GPU timestamps when present, else wall time)
    /// and returns the fastest.
    #[cfg(all(feature = "native", not(target_arch = "wasm32")))]
    fn time_candidates(&self, ctx: &Context, g: &Gemm<'_>) -> Result<GemmConfig> {
        let (rows, cols, inner) = (g.rows, g.cols, g.inner);
        let per_entry = rows * inner + rows * cols + if g.w_batch > 0 { cols * inner } else { 0 };
        let batch = g.batch.min((TUNE_FLOATS / per_entry.max(1)).max(1));
        let w_batch = if g.w_batch > 0 { cols * inner } else { 0 };
        let Operands { x: x_type, w: w_type } = g.operands;
        let x = ctx.storage("autotune x", x_type.words(batch * rows * inner))?;
        let w = ctx.storage("autotune w", w_type.words(if g.w_batch > 0 { batch } else { 1 } * cols * inner))?;
        let y = ctx.storage("autotune y", batch * rows * cols)?;
        let mut best: Option<(std::time::Duration, GemmConfig)> = None;
        for config in GemmConfig::CANDIDATES {
            // The direct family (CPU adapters) skips the tiled candidates: slow there, and slow to
            // compile (llvmpipe takes seconds per barrier kernel).
            let skip = self.variant == MatmulVariant::Direct && config.variant != MatmulVariant::Direct;
            if skip || config.check(&ctx.limits).is_err() {
                continue;
            }
            let stand_in = || Gemm {
                batch,
                x_batch: rows * inner,
                w_batch,
                y_batch: rows * cols,
                operands: g.operands,
                ..Gemm::plain(&x, &w, &y, rows, cols, inner)
            };
            let run = || ctx.run(&[stand_in().dispatch(ctx, config)?]);
            let warm = pollster::block_on(super::timing::time(ctx, run))?;
            let reps = if warm.as_secs_f64() > 0.5 { 1 } else { 3 };
            let mut time = std::time::Duration::MAX;
            for _ in 0..reps {
                time = time.min(pollster::block_on(super::timing::time(ctx, run))?);
            }
            if best.is_none_or(|(t, _)| time < t) {
                best = Some((time, config));
            }
        }
        Ok(best.map_or_else(|| GemmConfig::by_rule(self.variant, g.bucket()), |(_, c)| c))
    }
}
