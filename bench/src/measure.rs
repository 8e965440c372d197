//! Timing the four operations of a point on a backend.

use crate::report::{AdapterInfo, PointResult, Stats, Timing};
use crate::sweep::PointSpec;
use crate::BenchError;
use crate::Precision;
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::WgpuBackend;
use eggroll_backend::int8::{self, IntBackend, IntMatrix, IntNoise};
use eggroll_backend::{Backend, Batch, DType, Error, InputLayout, LowRank, LowRankNoise, NoiseStream};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What the runner needs from a backend beyond [`Backend`] and [`IntBackend`]: a timer and its
/// limits.
pub trait BenchBackend: Backend + IntBackend {
    /// `cpu` or `wgpu`.
    fn kind(&self) -> &'static str;
    /// How [`BenchBackend::time`] measures.
    fn timing(&self) -> Timing;
    /// How long the work `f` enqueues takes to run (warm-up excluded by the caller).
    fn time(&self, f: &mut dyn FnMut(&Self) -> eggroll_backend::Result<()>) -> eggroll_backend::Result<Duration>;
    /// Why a buffer of `bytes` bytes (named `what`) cannot exist on this backend, if it cannot.
    fn buffer_fits(&self, what: &str, bytes: u64) -> Result<(), String>;
    /// The GEMM configuration chosen per shape bucket so far (wgpu), for the record.
    fn gemm_choices(&self) -> Vec<String> {
        Vec::new()
    }
}

impl BenchBackend for CpuBackend {
    fn kind(&self) -> &'static str {
        "cpu"
    }
    fn timing(&self) -> Timing {
        Timing::Wall
    }
    fn time(&self, f: &mut dyn FnMut(&Self) -> eggroll_backend::Result<()>) -> eggroll_backend::Result<Duration> {
        let start = Instant::now();
        f(self)?;
        Ok(start.elapsed())
    }
    fn buffer_fits(&self, what: &str, bytes: u64) -> Result<(), String> {
        if bytes <= isize::MAX as u64 {
            Ok(())
        } else {
            Err(format!("{what} of {bytes} bytes does not fit the address space"))
        }
    }
}

impl BenchBackend for WgpuBackend {
    fn kind(&self) -> &'static str {
        "wgpu"
    }
    fn timing(&self) -> Timing {
        if self.supports_timestamps() {
            Timing::GpuTimestamps
        } else {
            Timing::WallSynchronized
        }
    }
    fn time(&self, f: &mut dyn FnMut(&Self) -> eggroll_backend::Result<()>) -> eggroll_backend::Result<Duration> {
        pollster::block_on(self.time_gpu(|b| f(b)))
    }
    fn buffer_fits(&self, what: &str, bytes: u64) -> Result<(), String> {
        let limits = self.limits();
        if bytes > limits.max_buffer_size {
            return Err(format!("{what} needs {} > max_buffer_size {}", mib(bytes), mib(limits.max_buffer_size)));
        }
        if bytes > limits.max_storage_buffer_binding_size {
            return Err(format!(
                "{what} needs {} > max_storage_buffer_binding_size {}",
                mib(bytes),
                mib(limits.max_storage_buffer_binding_size)
            ));
        }
        Ok(())
    }
    fn gemm_choices(&self) -> Vec<String> {
        WgpuBackend::gemm_choices(self).into_iter().map(|(bucket, config)| format!("[{bucket}] {config}")).collect()
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Knobs of one measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct MeasureOptions {
    /// Timed samples per operation, after untimed warm-up runs.
    pub repeats: usize,
    /// Naive ES is skipped when one call is estimated to take longer than this (seconds).
    pub naive_limit_s: f64,
    /// Noise scale σ of the perturbations.
    pub sigma: f32,
    /// Seed of the noise and of the stand-in data.
    pub seed: u64,
    /// Forwards of one noise epoch, as in an episode: inference and EGGROLL are timed as this many
    /// back-to-back calls per episode, every episode a new noise epoch (at least 1).
    pub calls: usize,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        Self { repeats: 5, naive_limit_s: 5.0, sigma: 0.01, seed: 0x5eed, calls: 1 }
    }
}

impl MeasureOptions {
    /// Whether the backend's noise cache is on while inference and EGGROLL are timed: when an
    /// episode has more than one call, so that its later calls read the factors its first drew.
    /// At one call per episode nothing reads them again, and keeping them only adds a pass over
    /// them (measured slower on the CPU), so the cache stays off and the forward draws on the fly.
    pub fn noise_cache(&self) -> bool {
        self.calls > 1
    }
}

/// Members the naive-ES time estimate runs on (at most).
const NAIVE_PROBE_MEMBERS: usize = 8;

/// Whether a failure means "this does not fit the adapter" (a skip) rather than a bug.
fn is_skip(e: &Error) -> bool {
    match e {
        Error::Limit(_) | Error::Unsupported(_) => true,
        Error::Device(msg) => {
            let msg = msg.to_ascii_lowercase();
            msg.contains("out of memory") || msg.contains("outofmemory") || msg.contains("allocat")
        }
        _ => false,
    }
}

/// int8 stand-in data of `len` values: [`data`] at deviation 16 (1.0 in the activations' 4
/// fractional bits, the initial deviation of an int8 weight), rounded and saturated.
fn int_data(len: usize, seed: u64, id: u32) -> Vec<i8> {
    data(len, seed, id, 16.0).iter().map(|v| int8::sat8(v.round() as i32)).collect()
}

/// The noise shift of the int8 EGGROLL forward (member i's weight about `W + s_i a bᵀ / 16`).
const INT_NOISE_SHIFT: u32 = 4;

/// The significance level of the int8 update's threshold.
const INT_UPDATE_ALPHA: f64 = 0.5;

/// `f32` stand-in data of `len` values: a block of standard normal draws tiled, times `scale`.
fn data(len: usize, seed: u64, id: u32, scale: f32) -> Vec<f32> {
    let mut block = vec![0.0f32; len.min(1 << 16)];
    NoiseStream::new(seed, id, 0).fill_normals(0, 0, &mut block);
    block.iter_mut().for_each(|v| *v *= scale);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let take = (len - out.len()).min(block.len());
        out.extend_from_slice(&block[..take]);
    }
    out
}

/// A timed sample lasts at least this long: short episodes are repeated within one sample and
/// the sample's time divided by the number of episodes.
const MIN_SAMPLE: Duration = Duration::from_millis(20);

/// Warm-up episodes (untimed) go on until this much time has passed (one episode at least): the
/// first calls pay for shader compilation, GEMM autotuning, page faults and idle threads waking up.
const MIN_WARM_UP: Duration = Duration::from_millis(100);

/// Most episodes in one sample (and in the warm-up).
const MAX_EPISODES_PER_SAMPLE: u32 = 1000;

/// Untimed warm-up calls (at least one, for [`MIN_WARM_UP`]), one calibration call (how many
/// calls make a sample of [`MIN_SAMPLE`]; a sample itself when it lasts that long), then timed
/// samples up to `repeats`; the times are per call. `op` gets the call number, used as the noise
/// epoch so that every call draws new noise.
fn time_op<B: BenchBackend>(
    b: &B, repeats: usize, mut op: impl FnMut(&B, u32) -> eggroll_backend::Result<()>,
) -> eggroll_backend::Result<Stats> {
    let [stats] = time_side_by_side(b, repeats, 1, |b, _, epoch| op(b, epoch))?;
    Ok(stats)
}

/// [`time_op`] for `K` operations measured side by side, in episodes of `calls` back-to-back
/// calls: `op(b, k, epoch)` runs one call of operation `k` at noise epoch `epoch`, which all the
/// calls of an episode share and no other episode has (so an episode's first call draws the
/// noise). Warm-up, calibration and samples count episodes, and the times are per call (an
/// episode's time over `calls`). Each operation is warmed up and calibrated on its own, then
/// their samples alternate, so that drift in the machine's speed (clock boost, heat, other load)
/// falls on all of them alike and their ratio stays fair.
fn time_side_by_side<B: BenchBackend, const K: usize>(
    b: &B, repeats: usize, calls: u32, mut op: impl FnMut(&B, usize, u32) -> eggroll_backend::Result<()>,
) -> eggroll_backend::Result<[Stats; K]> {
    let mut episode = |b: &B, k: usize, epoch: u32| (0..calls).try_for_each(|_| op(b, k, epoch));
    let mut epoch = 0u32;
    let mut times: [Vec<Duration>; K] = core::array::from_fn(|_| Vec::with_capacity(repeats));
    let mut episodes_per_sample = [1u32; K];
    for k in 0..K {
        let start = Instant::now();
        let first = epoch;
        while epoch == first || (start.elapsed() < MIN_WARM_UP && epoch - first < MAX_EPISODES_PER_SAMPLE) {
            episode(b, k, epoch)?;
            b.synchronize_blocking()?;
            epoch += 1;
        }
        let once = b.time(&mut |b| episode(b, k, epoch))?;
        epoch += 1;
        if once >= MIN_SAMPLE {
            // Long enough to be a sample itself.
            times[k].push(once / calls);
        } else {
            episodes_per_sample[k] =
                (MIN_SAMPLE.as_secs_f64() / once.as_secs_f64().max(1e-7)).ceil().min(f64::from(MAX_EPISODES_PER_SAMPLE)) as u32;
        }
    }
    while times.iter().any(|t| t.len() < repeats) {
        for k in 0..K {
            if times[k].len() == repeats {
                continue;
            }
            let episodes = episodes_per_sample[k];
            let t = b.time(&mut |b| (0..episodes).try_for_each(|j| episode(b, k, epoch + j)))?;
            epoch += episodes;
            times[k].push(t.div_f64(f64::from(episodes) * f64::from(calls)));
        }
    }
    Ok(times.map(|t| Stats::of(&t)))
}

/// Measures one point on `b`: inference, EGGROLL forward, naive ES (unless estimated too slow)
/// and update. A point that does not fit the adapter comes back with `skipped` set; other
/// failures are errors.
pub fn measure_point<B: BenchBackend>(b: &B, spec: &PointSpec, opts: &MeasureOptions) -> Result<PointResult, BenchError> {
    measure_point_memo(b, spec, opts, &mut NaiveMemo::default())
}

/// Naive ES outcomes (times, or why it was skipped) a sweep has measured, by point without its
/// rank: naive ES's work does not depend on the rank, so a sweep measures it once per
/// `(m, n, N, rows, dtype)` and reports it at every rank.
#[derive(Default)]
pub(crate) struct NaiveMemo(HashMap<PointSpec, Result<Stats, String>>);

/// [`measure_point`], taking naive ES from `memo` when a point differing only in its rank has
/// been measured, and adding to it otherwise.
pub(crate) fn measure_point_memo<B: BenchBackend>(
    b: &B, spec: &PointSpec, opts: &MeasureOptions, memo: &mut NaiveMemo,
) -> Result<PointResult, BenchError> {
    spec.validate()?;
    if opts.repeats == 0 {
        return Err(BenchError::InvalidArgument("repeats must be at least 1".into()));
    }
    if !(1..=u32::MAX as usize).contains(&opts.calls) {
        return Err(BenchError::InvalidArgument(format!("calls {}: must be 1..={}", opts.calls, u32::MAX)));
    }
    let mut result = PointResult::empty(spec, b.kind(), AdapterInfo::from(b.describe()), b.timing(), opts);
    match measure_into(Measuring { b, spec, opts, memo, r: &mut result }) {
        Ok(()) => Ok(result),
        Err(e) if is_skip(&e) => Ok(skipped_point(b, spec, opts, format!("skipped: {e}"))),
        Err(e) => Err(e.into()),
    }
}

/// A point of `b` left unmeasured for `reason` (which starts with `skipped:`).
pub(crate) fn skipped_point<B: BenchBackend>(b: &B, spec: &PointSpec, opts: &MeasureOptions, reason: String) -> PointResult {
    let mut r = PointResult::empty(spec, b.kind(), AdapterInfo::from(b.describe()), b.timing(), opts);
    r.skipped = Some(reason);
    r
}

/// A point being measured: the backend, the point, the options, naive ES's memo and the result.
struct Measuring<'a, B> {
    b: &'a B,
    spec: &'a PointSpec,
    opts: &'a MeasureOptions,
    memo: &'a mut NaiveMemo,
    r: &'a mut PointResult,
}

/// Measures the point into its result, or records why it is skipped.
fn measure_into<B: BenchBackend>(point: Measuring<'_, B>) -> eggroll_backend::Result<()> {
    let Measuring { b, spec, r, .. } = point;
    let PointSpec { m, n, population, rows, dtype, .. } = *spec;
    if dtype == Precision::Int8 && !(m.is_multiple_of(4) && n.is_multiple_of(4)) {
        r.skipped = Some(format!("skipped: int8 needs m and n multiples of 4 (values packed four to a word), got {m} x {n}"));
        return Ok(());
    }
    let total_rows = population * rows;
    // W and X in the point's storage type, Y in f32 (int8 at int8 points).
    let y_bytes = if dtype == Precision::Int8 { 1 } else { 4 };
    let sizes = [("weight W", m * n, dtype.bytes()), ("input X", total_rows * n, dtype.bytes()), ("output Y", total_rows * m, y_bytes)];
    for (what, values, bytes_each) in sizes {
        if let Err(reason) = b.buffer_fits(what, (values as u64).saturating_mul(bytes_each as u64)) {
            r.skipped = Some(format!("skipped: {reason}"));
            return Ok(());
        }
    }
    let point = Measuring { r, ..point };
    match dtype.float() {
        Some(float) => measure_float(point, float),
        None => measure_int8(point),
    }
}

/// The backend's noise cache while inference and the EGGROLL forward are timed: when the options
/// turn it on ([`MeasureOptions::noise_cache`]), its budget holds the factors of one episode (one
/// noise epoch of the point's pairs: `(N/2)·(m+n)·r` draws, 4 bytes each, 1 at int8 points), so
/// that each new episode's factors replace the last's; off again when the guard is dropped, so
/// that naive ES and the update draw their noise as without it.
struct NoiseCacheOn<'a, B: BenchBackend>(Option<&'a B>);

impl<'a, B: BenchBackend> NoiseCacheOn<'a, B> {
    /// Turns the cache on when `opts` say so.
    fn new(b: &'a B, opts: &MeasureOptions, spec: &PointSpec) -> Self {
        if !opts.noise_cache() {
            return Self(None);
        }
        let draw_bytes = if spec.dtype == Precision::Int8 { 1 } else { 4 };
        let draws = (spec.population / 2) as u64 * (spec.m + spec.n) as u64 * spec.rank as u64;
        b.set_noise_cache(draws.saturating_mul(draw_bytes));
        Self(Some(b))
    }
}

impl<B: BenchBackend> Drop for NoiseCacheOn<'_, B> {
    fn drop(&mut self) {
        if let Some(b) = self.0 {
            b.set_noise_cache(0);
        }
    }
}

/// Naive ES at `spec` into `r`: its times, or why it was skipped. Taken from `memo` when a point
/// differing only in its rank has been measured, else measured and added to it: first estimated
/// from a probe of the first few members (`probe` readies naive ES on the members of the batch it
/// is given; skipped when one call would take longer than the naive limit), then `op` timed, which
/// runs call `i` on the whole population.
fn naive<B: BenchBackend, P: FnMut(&B, u32) -> eggroll_backend::Result<()>>(
    b: &B, spec: &PointSpec, opts: &MeasureOptions, memo: &mut NaiveMemo, r: &mut PointResult,
    probe: impl FnOnce(Batch) -> eggroll_backend::Result<P>, op: impl FnMut(&B, u32) -> eggroll_backend::Result<()>,
) -> eggroll_backend::Result<()> {
    let memo_key = PointSpec { rank: 0, ..*spec };
    let outcome = match memo.0.get(&memo_key) {
        Some(outcome) => outcome.clone(),
        None => {
            let measure = || -> eggroll_backend::Result<Result<Stats, String>> {
                let members = spec.population.min(NAIVE_PROBE_MEMBERS);
                if members < spec.population {
                    let mut call = probe(Batch { population: members, rows: spec.rows, input: InputLayout::PerMember, first_member: 0 })?;
                    call(b, 0)?;
                    b.synchronize_blocking()?;
                    let t = b.time(&mut |b| call(b, 1))?;
                    let estimate = t.as_secs_f64() * spec.population as f64 / members as f64;
                    if estimate > opts.naive_limit_s {
                        return Ok(Err(format!("skipped: estimated {estimate:.1} s per call > naive limit {} s", opts.naive_limit_s)));
                    }
                }
                Ok(Ok(time_op(b, opts.repeats, op)?))
            };
            let outcome = match measure() {
                Ok(outcome) => outcome,
                Err(e) if is_skip(&e) => Err(format!("skipped: {e}")),
                Err(e) => return Err(e),
            };
            memo.0.insert(memo_key, outcome.clone());
            outcome
        }
    };
    match outcome {
        Ok(stats) => r.set_naive(spec, stats),
        Err(reason) => r.naive_skipped = Some(reason),
    }
    Ok(())
}

/// Records the update's outcome: its times, or why it was skipped.
fn record_update(r: &mut PointResult, spec: &PointSpec, update: eggroll_backend::Result<Stats>) -> eggroll_backend::Result<()> {
    match update {
        Ok(stats) => r.set_update(spec, stats),
        Err(e) if is_skip(&e) => r.update_skipped = Some(format!("skipped: {e}")),
        Err(e) => return Err(e),
    }
    Ok(())
}

/// An f32 or f16 point: the [`Backend`] kernels.
fn measure_float<B: BenchBackend>(point: Measuring<'_, B>, dtype: DType) -> eggroll_backend::Result<()> {
    let Measuring { b, spec, opts, memo, r } = point;
    let PointSpec { m, n, population, rank, rows, .. } = *spec;
    let total_rows = population * rows;
    let shape = LowRank { m, n, rank, sigma: opts.sigma, piece: None };
    let noise = |epoch: u32| LowRankNoise { stream: NoiseStream::new(opts.seed, 1, epoch), shape };
    let batch = Batch { population, rows, input: InputLayout::PerMember, first_member: 0 };

    let w = b.upload_as(&data(m * n, opts.seed, 100, 1.0 / (n as f32).sqrt()), dtype)?;
    let x_host = data(total_rows * n, opts.seed, 101, 1.0);
    let x = b.upload_as(&x_host, dtype)?;
    let mut y = b.zeros(total_rows * m)?;

    // Inference and the EGGROLL forward side by side, their samples alternating.
    let cache = NoiseCacheOn::new(b, opts, spec);
    let [inference, eggroll] = time_side_by_side(b, opts.repeats, opts.calls as u32, |b, k, i| match k {
        0 => b.matmul(&x, &w, m, n, total_rows, &mut y),
        _ => b.perturbed_matmul(&x, &w, noise(i), batch, &mut y),
    })?;
    drop(cache);
    r.set_forward(spec, inference, eggroll);

    // Naive ES, unless measured at another rank.
    let w = &w;
    let probe = |batch: Batch| -> eggroll_backend::Result<_> {
        let x = b.upload_as(&x_host[..batch.population * rows * n], dtype)?;
        let mut y = b.zeros(batch.population * rows * m)?;
        Ok(move |b: &B, i| b.full_rank_matmul(&x, w, noise(i), batch, &mut y))
    };
    naive(b, spec, opts, memo, r, probe, |b, i| b.full_rank_matmul(&x, w, noise(i), batch, &mut y))?;
    drop((x, y));

    // Update: fitness values standing in for shaped scores.
    let fitness = data(population, opts.seed, 102, 1.0);
    let update = (|| -> eggroll_backend::Result<Stats> {
        let mut g = b.zeros(m * n)?;
        time_op(b, opts.repeats, |b, i| b.lowrank_update(&fitness, noise(i), &mut g))
    })();
    record_update(r, spec, update)
}

/// An int8 point: integer EGGROLL's [`IntBackend`] kernels (docs/int8.md).
fn measure_int8<B: BenchBackend>(point: Measuring<'_, B>) -> eggroll_backend::Result<()> {
    let Measuring { b, spec, opts, memo, r } = point;
    let PointSpec { m, n, population, rank, rows, .. } = *spec;
    let total_rows = population * rows;
    let shape = IntMatrix { m, n };
    let noise = |epoch: u32| IntNoise { stream: NoiseStream::new(opts.seed, 1, epoch), rank, shift: INT_NOISE_SHIFT };
    let batch = Batch { population, rows, input: InputLayout::PerMember, first_member: 0 };

    let w_host = int_data(m * n, opts.seed, 100);
    let w = b.upload_i8(&w_host)?;
    let x_host = int_data(total_rows * n, opts.seed, 101);
    let x = b.upload_i8(&x_host)?;
    let mut y = b.zeros_i8(total_rows * m)?;

    // Inference and the EGGROLL forward side by side, their samples alternating.
    let cache = NoiseCacheOn::new(b, opts, spec);
    let [inference, eggroll] = time_side_by_side(b, opts.repeats, opts.calls as u32, |b, k, i| match k {
        0 => b.int_matmul(&x, &w, shape, total_rows, &mut y),
        _ => b.int_perturbed_matmul(&x, &w, shape, noise(i), batch, &mut y),
    })?;
    drop(cache);
    r.set_forward(spec, inference, eggroll);

    // Naive ES on int8, unless measured at another rank.
    let w = &w;
    let probe = |batch: Batch| -> eggroll_backend::Result<_> {
        let x = b.upload_i8(&x_host[..batch.population * rows * n])?;
        let mut y = b.zeros_i8(batch.population * rows * m)?;
        Ok(move |b: &B, i| b.int_naive_matmul(&x, w, shape, noise(i).stream, batch, &mut y))
    };
    naive(b, spec, opts, memo, r, probe, |b, i| b.int_naive_matmul(&x, w, shape, noise(i).stream, batch, &mut y))?;
    drop((x, y));

    // Update: fitness ±1 per pair, the threshold of that many pairs at the rank. The weights it
    // moves are a copy, so W stays the forwards' W.
    let pairs = population / 2;
    let fitness: Vec<i8> = data(pairs, opts.seed, 102, 1.0).iter().map(|&f| if f < 0.0 { -1 } else { 1 }).collect();
    let threshold = int8::threshold(INT_UPDATE_ALPHA, pairs, rank);
    let update = (|| -> eggroll_backend::Result<Stats> {
        let mut moved = b.upload_i8(&w_host)?;
        time_op(b, opts.repeats, |b, i| b.int_lowrank_update(&fitness, noise(i), shape, threshold, &mut moved))
    })();
    record_update(r, spec, update)
}
