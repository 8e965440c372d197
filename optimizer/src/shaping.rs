//! Fitness shaping on the host: raw fitness (one value per member) to the weights `f_i` of the
//! gradient estimate `G = (σ/√r)/√N Σ f_i s_i A_i B_iᵀ`.

use crate::config::Shaping;
use crate::error::{EggrollError, Result};

/// Variance floor of the z-score, as in the authors' reference (`sqrt(var + 1e-5)`).
pub const ZSCORE_EPS: f64 = 1e-5;

/// Shapes `raw` (len N): rejects non-finite values (naming the member), then applies `shaping`
/// within groups of `group_size` consecutive members (0 = one group of all N).
///
/// * [`Shaping::ZScore`]: each value minus its group's mean, divided by
///   `sqrt(var + 1e-5)` where `var` is the variance of **all** N raw values. This is exactly the
///   authors' JAX `convert_fitnesses` (`jnp.var(raw_scores)`, population variance); without
///   groups it is the plain population z-score.
/// * [`Shaping::CenteredRank`]: the rank of each value within its group (ties share their mean
///   rank), mapped linearly to `[-0.5, 0.5]`.
/// * [`Shaping::Centered`]: each value minus its group's mean.
pub fn shape_fitness(raw: &[f32], group_size: usize, shaping: Shaping) -> Result<Vec<f32>> {
    eggroll_backend::validate_fitness(raw)?;
    let group = if group_size == 0 { raw.len() } else { group_size };
    if raw.is_empty() || !raw.len().is_multiple_of(group) {
        return Err(EggrollError::Data(format!("{} fitness values do not split into groups of {group}", raw.len())));
    }
    Ok(match shaping {
        Shaping::ZScore => zscore(raw, group),
        Shaping::CenteredRank => raw.chunks_exact(group).flat_map(centered_ranks).collect(),
        Shaping::Centered => raw
            .chunks_exact(group)
            .flat_map(|g| {
                let m = mean(g);
                g.iter().map(move |&v| (f64::from(v) - m) as f32)
            })
            .collect(),
    })
}

/// Mean of `values` in f64.
fn mean(values: &[f32]) -> f64 {
    values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64
}

/// Group-centred values over the global standard deviation of the raw values.
fn zscore(raw: &[f32], group: usize) -> Vec<f32> {
    let global_mean = mean(raw);
    let var = raw.iter().map(|&v| (f64::from(v) - global_mean).powi(2)).sum::<f64>() / raw.len() as f64;
    let inv_std = 1.0 / (var + ZSCORE_EPS).sqrt();
    raw.chunks_exact(group)
        .flat_map(|g| {
            let m = mean(g);
            g.iter().map(move |&v| ((f64::from(v) - m) * inv_std) as f32)
        })
        .collect()
}

/// Centered ranks of one group: the smallest value gets -0.5, the largest 0.5.
fn centered_ranks(values: &[f32]) -> Vec<f32> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0f64; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let mean_rank = (start + end - 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = mean_rank;
        }
        start = end;
    }
    let top = (values.len() - 1).max(1) as f64;
    ranks.iter().map(|r| (r / top - 0.5) as f32).collect()
}
