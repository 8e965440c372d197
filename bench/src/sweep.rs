//! The points of a benchmark and the preset sweeps.

use crate::BenchError;
use crate::Precision;
use eggroll_backend::{Batch, InputLayout, LowRank};

/// One benchmark point: `W` is `m x n`, `population` members with `rows` input rows each,
/// rank-`rank` perturbations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PointSpec {
    /// Output features (rows of `W`).
    pub m: usize,
    /// Input features (columns of `W`).
    pub n: usize,
    /// Population size N (even).
    pub population: usize,
    /// Rank r of the perturbations.
    pub rank: usize,
    /// Input rows per member.
    pub rows: usize,
    /// Storage type of the inputs and weights of the forwards (the update is f32 for f32 and f16
    /// points, int8 for int8 points).
    pub dtype: Precision,
}

impl PointSpec {
    /// The values of `--m --n --population --rank --rows` that are not given when others are.
    pub const SINGLE_DEFAULT: PointSpec = PointSpec { m: 1024, n: 1024, population: 256, rank: 1, rows: 1, dtype: Precision::F32 };

    /// Checks the point, with messages naming the flag.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |msg: String| Err(BenchError::InvalidArgument(msg));
        if self.m == 0 || self.n == 0 {
            return bad(format!("--m {} --n {}: both sides of W must be at least 1", self.m, self.n));
        }
        // The backends' own rules for a population, rows and rank, with the flags named.
        let batch = Batch { population: self.population, rows: self.rows, input: InputLayout::Shared, first_member: 0 };
        if let Err(e) = batch.validate() {
            return bad(format!("--population {} --rows {}: {e}", self.population, self.rows));
        }
        if let Err(e) = (LowRank { m: self.m, n: self.n, rank: self.rank, sigma: 0.0, piece: None }).validate() {
            return bad(format!("--rank {} --m {} --n {}: {e}", self.rank, self.m, self.n));
        }
        let too_big = [self.m, self.n, self.population, self.rows]
            .iter()
            .try_fold(1u64, |acc, &v| acc.checked_mul(v as u64))
            .is_none_or(|flops| flops > 1 << 50);
        if too_big {
            return bad(format!("point {self}: m·n·N·rows is too large to run"));
        }
        Ok(())
    }

    /// Flops (integer operations at int8 points) of the base matmul: `2·m·n·N·rows`.
    pub fn base_flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.population as f64 * self.rows as f64
    }

    /// Flops (integer operations at int8 points) of the update's product: `2·m·n·(N/2)·r`.
    pub fn update_flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * (self.population / 2) as f64 * self.rank as f64
    }
}

impl std::fmt::Display for PointSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "m={} n={} N={} rank={} rows={}", self.m, self.n, self.population, self.rank, self.rows)?;
        if self.dtype != Precision::F32 {
            write!(f, " dtype={}", self.dtype)?;
        }
        Ok(())
    }
}

/// The sweeps `eggroll bench` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// `--quick`: m=n=128, N in {64, 256}, rank in {1, 4}, rows in {1, 16}.
    Quick,
    /// No flag: m=n=1024, N in {64, 256, 1024}, rank in {1, 4}, rows in {1, 16}.
    Default,
    /// `--full`: m=n in {1024, 4096, 8192}, N in {64, 256, 1024}, rank in {1, 4, 16}, rows in {1, 16},
    /// in f32, f16 and int8.
    Full,
}

impl Preset {
    /// The storage types the preset sweeps when `--dtype` does not say: f32, and f16 and int8 too
    /// for `--full` (f16 skipped where the adapter lacks `shader-f16`).
    pub fn dtypes(self) -> &'static [Precision] {
        match self {
            Preset::Full => &Precision::ALL,
            _ => &[Precision::F32],
        }
    }

    /// The sweep's points in each of `dtypes`, ordered by size, dtype, rank and rows, then N (one
    /// series after the other).
    pub fn points(self, dtypes: &[Precision]) -> Vec<PointSpec> {
        let (sizes, populations, ranks, rows): (&[usize], &[usize], &[usize], &[usize]) = match self {
            Preset::Quick => (&[128], &[64, 256], &[1, 4], &[1, 16]),
            Preset::Default => (&[1024], &[64, 256, 1024], &[1, 4], &[1, 16]),
            Preset::Full => (&[1024, 4096, 8192], &[64, 256, 1024], &[1, 4, 16], &[1, 16]),
        };
        let mut points = Vec::new();
        for &size in sizes {
            for &dtype in dtypes {
                for &rank in ranks {
                    for &rows in rows {
                        for &population in populations {
                            points.push(PointSpec { m: size, n: size, population, rank, rows, dtype });
                        }
                    }
                }
            }
        }
        points
    }
}
