//! A population shared out over several workers (adapters in one process, or processes): each
//! evaluates its share of whole antithetic pairs, the fitness of all N members is gathered, and
//! every worker applies the same update ([`crate::session::Session`]). Only fitness values
//! travel: every worker regenerates any member's noise from the seed.

use crate::error::{EggrollError, Result};
use std::ops::Range;

/// Shares `population` members out over `workers` in whole antithetic pairs, in member order, as
/// evenly as possible: each gets `pairs / workers` pairs and the first `pairs % workers` one pair
/// more. An error when there are fewer pairs than workers (a worker would have nothing to do).
pub fn share_pairs(population: usize, workers: usize) -> Result<Vec<Range<usize>>> {
    let pairs = population / 2;
    if workers == 0 || !population.is_multiple_of(2) || pairs < workers {
        return Err(EggrollError::Config(format!(
            "a population of {population} ({pairs} antithetic pairs) cannot be shared out over {workers} workers: \
             each needs at least one whole pair"
        )));
    }
    let (each, extra) = (pairs / workers, pairs % workers);
    let mut start = 0;
    Ok((0..workers)
        .map(|w| {
            let len = 2 * (each + usize::from(w < extra));
            let share = start..start + len;
            start += len;
            share
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_whole_pairs_in_order_and_as_even_as_possible() {
        let one = share_pairs(8, 1).unwrap();
        assert_eq!((one.len(), one[0].clone()), (1, 0..8));
        assert_eq!(share_pairs(8, 2).unwrap(), [0..4, 4..8]);
        assert_eq!(share_pairs(10, 3).unwrap(), [0..4, 4..8, 8..10]);
        assert_eq!(share_pairs(4, 2).unwrap(), [0..2, 2..4]);
        for (n, k) in [(4096, 7), (64, 32), (6, 2)] {
            let shares = share_pairs(n, k).unwrap();
            assert_eq!(shares.len(), k);
            assert_eq!((shares[0].start, shares[k - 1].end), (0, n));
            assert!(shares.windows(2).all(|w| w[0].end == w[1].start));
            assert!(shares.iter().all(|s| s.start % 2 == 0 && s.len() % 2 == 0 && !s.is_empty()));
            let (min, max) = (shares.iter().map(Range::len).min().unwrap(), shares.iter().map(Range::len).max().unwrap());
            assert!(max - min <= 2, "{n} over {k}: {shares:?}");
        }
    }

    #[test]
    fn too_few_pairs_or_no_workers_are_refused() {
        for (n, k) in [(4, 3), (2, 2), (8, 0), (7, 1)] {
            let e = share_pairs(n, k).unwrap_err().to_string();
            assert!(e.contains("cannot be shared out"), "{n} over {k}: {e}");
        }
    }
}
