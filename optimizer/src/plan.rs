//! A run's memory plan, made before anything is allocated: what the run will hold (the process as
//! it stands, the parameters with their optimiser state, the activations of the population
//! forward and of an evaluation, the task's own buffers) compared with what it may use (the host's
//! free memory, the device's buffer and binding limits). A run beyond them ends with one error
//! naming the need and the limit instead of an allocation failure or the kernel's OOM killer.
//!
//! The parameters and activations are measured, not estimated: the trainer is built with zeroed
//! tensors on a [`MeterBackend`], whose buffers hold only their length, and the model's forward
//! runs there on zeros, allocating the arenas a real forward of those shapes would.

use crate::config::EsConfig;
use crate::error::{EggrollError, Result};
use crate::es::Trainer;
use crate::es::Trains;
use crate::format::Input;
use crate::tasks::Footprint;
use eggroll_backend::meter::MeterBackend;
use eggroll_backend::{InputLayout, MemoryLimits};
use std::fmt::Write as _;

/// What a run needs, by part, in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Parts held in host memory, by name.
    pub host: Vec<(&'static str, u64)>,
    /// Parts held in device memory (none when the backend's memory is the host's), by name.
    pub device: Vec<(&'static str, u64)>,
    /// The largest single buffer the device must hold, in bytes.
    pub largest_buffer: u64,
    /// The bytes a noise epoch's draws take in the noise cache, and whether the run keeps them
    /// ([`MemoryPlan::with_noise_cache`]).
    pub noise_cache: NoiseCache,
}

/// A run's noise cache: the bytes of one noise epoch's draws of this process's members (every
/// matrix's low-rank factors and every vector's noise, for each pair), and whether they fit the
/// budget, so that the backend keeps them ([`eggroll_backend::Kernels::set_noise_cache`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoiseCache {
    /// Bytes of one noise epoch's draws.
    pub bytes: u64,
    /// The budget they were held against, in bytes.
    pub budget: u64,
    /// Whether the draws are kept: some to keep, within the budget.
    pub on: bool,
}

/// A bound on the host memory this process may still allocate, and what sets it
/// (`crate::limits::host_memory_limit` reads it on Linux).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostLimit {
    /// Bytes this process may still allocate.
    pub bytes: u64,
    /// What sets the bound: `"available memory"` (`MemAvailable` of `/proc/meminfo`), `"cgroup
    /// memory.max"` (the cgroup's limit less its usage) or `"RLIMIT_AS"` (the address-space limit
    /// less the process's address space).
    pub source: &'static str,
}

impl MemoryPlan {
    /// The plan of training `model` in format `F` with `config`: `members` of the population
    /// evaluated in this process, the task's `footprint`, `resident` bytes the process holds
    /// already; `device` when the backend's tensors live in device memory.
    pub fn of<M, F: Trains<MeterBackend, M>>(
        model: M, config: &EsConfig, members: usize, footprint: Footprint, resident: u64, device: bool,
    ) -> Result<Self> {
        let meter = MeterBackend::new();
        let mut trainer = Trainer::<MeterBackend, M, F>::zeroed(meter.clone(), model, config.clone())?;
        let params = meter.allocated_bytes();
        let input = F::input(trainer.model());
        trainer.forward_zeros(Some(members), footprint.rows)?;
        let population = meter.allocated_bytes() - params;
        trainer.forward_zeros(None, footprint.eval_rows)?;
        let evaluation = meter.allocated_bytes() - params - population;
        // The forward ran on the shared input; a per-member one holds every member's rows.
        let (per_member_input, input_buffer) = match (footprint.layout, input) {
            (InputLayout::PerMember, Input::Features(width)) => {
                let row = (footprint.rows * width * 4) as u64;
                (members.saturating_sub(1) as u64 * row, members as u64 * row)
            }
            _ => (0, 0),
        };
        let activations = population + per_member_input;
        let largest = meter.largest_bytes().max(input_buffer);
        // The initial values are drawn on the host before they are uploaded.
        let initial = trainer.specs().iter().map(|s| s.kind.len() as u64).sum::<u64>() * std::mem::size_of::<F::Value>() as u64;
        let on_device =
            [("parameters and optimiser state", params), ("population activations", activations), ("evaluation activations", evaluation)];
        let mut host = vec![("process", resident), ("initial values", initial), ("task buffers", footprint.host_bytes)];
        let device = if device {
            on_device.to_vec()
        } else {
            host.extend(on_device);
            Vec::new()
        };
        let draws = noise_draws(&trainer.specs(), config, members) * std::mem::size_of::<F::Value>() as u64;
        Ok(Self { host, device, largest_buffer: largest, noise_cache: NoiseCache { bytes: draws, budget: 0, on: false } })
    }

    /// The plan with its noise cache held against `budget` bytes (`None`: a quarter of what the
    /// run leaves free of `host` or of the device's `limits`, or of the adapter's largest buffer
    /// when it does not say its memory): on when the draws fit, and then a part of the plan.
    pub fn with_noise_cache(mut self, budget: Option<u64>, host: Option<HostLimit>, limits: &MemoryLimits) -> Self {
        let budget = budget.unwrap_or_else(|| {
            let free = if self.device.is_empty() {
                let needed = self.host_bytes() - self.host.iter().find(|(name, _)| *name == "process").map_or(0, |(_, b)| *b);
                host.map(|h| h.bytes.saturating_sub(needed))
            } else {
                limits.device_bytes.map(|total| total.saturating_sub(self.device_bytes())).or(limits.max_buffer_bytes)
            };
            free.map_or(DEFAULT_NOISE_CACHE, |free| free / 4)
        });
        let bytes = self.noise_cache.bytes;
        let on = bytes > 0 && bytes <= budget;
        if on {
            let part = ("noise cache", bytes);
            if self.device.is_empty() {
                self.host.push(part);
            } else {
                self.device.push(part);
            }
        }
        self.noise_cache = NoiseCache { bytes, budget, on };
        self
    }

    /// Bytes of host memory the run needs.
    pub fn host_bytes(&self) -> u64 {
        self.host.iter().map(|(_, b)| b).sum()
    }

    /// Bytes of device memory the run needs.
    pub fn device_bytes(&self) -> u64 {
        self.device.iter().map(|(_, b)| b).sum()
    }

    /// Refuses a plan beyond `host` (free host memory beyond what the process holds already, its
    /// `process` part) or the device's `limits`, with one error naming the need and the limit.
    pub fn check(&self, host: Option<HostLimit>, limits: &MemoryLimits) -> Result<()> {
        let resident = self.host.iter().find(|(name, _)| *name == "process").map_or(0, |(_, b)| *b);
        if let Some(limit) = host {
            let more = self.host_bytes() - resident;
            if more > limit.bytes {
                return Err(EggrollError::Config(format!(
                    "this run needs {} of host memory ({}), {} more than the process holds, but only {} is free ({}): \
                     lower the population, the model's size or the rows per member",
                    bytes(self.host_bytes()),
                    parts(&self.host),
                    bytes(more),
                    bytes(limit.bytes),
                    limit.source
                )));
            }
        }
        let buffer = [("max_buffer_size", limits.max_buffer_bytes), ("max_storage_buffer_binding_size", limits.max_binding_bytes)];
        if let Some((what, max)) =
            buffer.iter().find_map(|&(what, max)| max.filter(|&m| !self.device.is_empty() && self.largest_buffer > m).map(|m| (what, m)))
        {
            return Err(EggrollError::Config(format!(
                "this run needs a device buffer of {}, beyond the adapter's {what} limit of {} (device memory: {}): \
                 lower the population, the model's size or the rows per member",
                bytes(self.largest_buffer),
                bytes(max),
                parts(&self.device)
            )));
        }
        if let Some(total) = limits.device_bytes.filter(|&t| self.device_bytes() > t) {
            return Err(EggrollError::Config(format!(
                "this run needs {} of device memory ({}), beyond the adapter's {}",
                bytes(self.device_bytes()),
                parts(&self.device),
                bytes(total)
            )));
        }
        Ok(())
    }
}

/// The noise cache's budget where nothing says how much memory is free (a browser).
const DEFAULT_NOISE_CACHE: u64 = 256 << 20;

/// Draws of one noise epoch for `members` members with `specs`: per pair, `(m + n) r` for a
/// matrix (rank clamped to its sides) and `len` for a vector; none under OpenES, whose full-rank
/// noise is drawn on the fly.
fn noise_draws(specs: &[crate::params::ParamSpec], config: &EsConfig, members: usize) -> u64 {
    if config.method != crate::config::Method::Eggroll {
        return 0;
    }
    let per_pair: u64 = specs
        .iter()
        .map(|spec| match spec.kind {
            crate::params::ParamKind::Matrix { m, n } => ((m + n) * config.rank.min(m).min(n)) as u64,
            // The pieces of a matrix read its one entry.
            crate::params::ParamKind::Rows { n, first, rows, .. } => match first {
                0 => ((rows + n) * config.rank.min(rows).min(n)) as u64,
                _ => 0,
            },
            crate::params::ParamKind::Vector { len } => len as u64,
        })
        .sum();
    per_pair * (members / 2) as u64
}

/// `parts` as `name 1.2 MiB, ...`, the largest first.
fn parts(parts: &[(&'static str, u64)]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_by_key(|&(_, b)| std::cmp::Reverse(b));
    let mut out = String::new();
    for (i, (name, b)) in sorted.iter().enumerate() {
        let _ = write!(out, "{}{name} {}", if i > 0 { ", " } else { "" }, short(*b));
    }
    out
}

/// `n` bytes in binary units with the exact count: `1.5 GiB (1610612736 bytes)`.
fn bytes(n: u64) -> String {
    format!("{} ({n} bytes)", short(n))
}

/// `n` bytes in binary units.
fn short(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let (mut value, mut unit) = (n as f64, 0);
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::F32;
    use crate::model::Mlp;

    fn mlp() -> Mlp {
        Mlp::builder(4).linear(32).tanh().linear(2).build().unwrap()
    }

    #[test]
    fn parameters_and_activations_are_what_the_trainer_allocates() {
        let config = EsConfig { population: 8, optimizer: crate::OptimizerKind::Adam, ..EsConfig::default() };
        let footprint = Footprint { rows: 3, layout: InputLayout::Shared, eval_rows: 5, host_bytes: 100 };
        let plan = MemoryPlan::of::<_, F32>(mlp(), &config, 8, footprint, 1000, false).unwrap();
        let part = |name: &str| plan.host.iter().find(|(n, _)| *n == name).unwrap().1;
        // Values, gradients and two moments of 4*32 + 32 + 32*2 + 2 values, in f32.
        assert_eq!(part("parameters and optimiser state"), 4 * 4 * (4 * 32 + 32 + 32 * 2 + 2));
        // The input (3 x 4, shared), the hidden layer and the output of every member's 3 rows.
        assert_eq!(part("population activations"), 4 * (3 * 4 + 8 * 3 * 32 + 8 * 3 * 2));
        assert_eq!(part("evaluation activations"), 4 * (5 * 4 + 5 * 32 + 5 * 2));
        assert_eq!((part("process"), part("task buffers")), (1000, 100));
        assert!(plan.device.is_empty());
    }

    #[test]
    fn the_noise_cache_holds_an_epochs_draws_when_they_fit_the_budget() {
        let config = EsConfig { population: 8, rank: 2, ..EsConfig::default() };
        let footprint = Footprint { rows: 3, layout: InputLayout::Shared, eval_rows: 5, host_bytes: 100 };
        let plan = MemoryPlan::of::<_, F32>(mlp(), &config, 8, footprint, 1000, false).unwrap();
        // Per pair: (32 + 4) 2 + 32 for the first layer, (2 + 32) 2 + 2 for the second; 4 pairs.
        let bytes = 4 * 4 * ((32 + 4) * 2 + 32 + (2 + 32) * 2 + 2);
        assert_eq!(plan.noise_cache.bytes, bytes);
        let on = plan.clone().with_noise_cache(Some(bytes), None, &MemoryLimits::default());
        assert_eq!(on.noise_cache, NoiseCache { bytes, budget: bytes, on: true });
        assert_eq!(on.host_bytes(), plan.host_bytes() + bytes);
        for budget in [Some(bytes - 1), Some(0)] {
            let off = plan.clone().with_noise_cache(budget, None, &MemoryLimits::default());
            assert!(!off.noise_cache.on && off.host_bytes() == plan.host_bytes());
        }
        // By default, a quarter of the free memory the plan leaves.
        let host = HostLimit { bytes: 4 * bytes + (plan.host_bytes() - 1000), source: "available memory" };
        assert!(plan.clone().with_noise_cache(None, Some(host), &MemoryLimits::default()).noise_cache.on);
        let host = HostLimit { bytes: 4 * bytes - 4 + (plan.host_bytes() - 1000), source: "available memory" };
        assert!(!plan.clone().with_noise_cache(None, Some(host), &MemoryLimits::default()).noise_cache.on);
        // OpenES draws its full-rank noise on the fly: nothing to keep.
        let openes = EsConfig { method: crate::config::Method::OpenEs, ..config };
        assert_eq!(MemoryPlan::of::<_, F32>(mlp(), &openes, 8, footprint, 1000, false).unwrap().noise_cache.bytes, 0);
    }

    #[test]
    fn a_plan_beyond_a_limit_names_the_need_and_the_limit() {
        let config = EsConfig { population: 8, ..EsConfig::default() };
        let footprint = Footprint { rows: 3, layout: InputLayout::PerMember, eval_rows: 5, host_bytes: 1 << 40 };
        let plan = MemoryPlan::of::<_, F32>(mlp(), &config, 8, footprint, 0, false).unwrap();
        let e = plan.check(Some(HostLimit { bytes: 1 << 30, source: "available memory" }), &MemoryLimits::default()).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("host memory") && e.contains("1.0 GiB (1073741824 bytes)") && e.contains("available memory"), "{e}");
        assert!(plan.check(None, &MemoryLimits::default()).is_ok());
        let on_device = MemoryPlan::of::<_, F32>(mlp(), &config, 8, Footprint { host_bytes: 0, ..footprint }, 0, true).unwrap();
        let limits = MemoryLimits { max_binding_bytes: Some(16), ..MemoryLimits::default() };
        let e = on_device.check(None, &limits).unwrap_err().to_string();
        assert!(e.contains("max_storage_buffer_binding_size limit of 16 bytes"), "{e}");
        let limits = MemoryLimits { max_buffer_bytes: Some(16), ..limits };
        let e = on_device.check(None, &limits).unwrap_err().to_string();
        assert!(e.contains("max_buffer_size limit of 16 bytes"), "{e}");
    }
}
