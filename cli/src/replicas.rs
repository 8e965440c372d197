//! The exchange of the replicas of one process (`finetune --devices`): one thread per adapter,
//! each holding a copy of the model and trainer, evaluating its share of the population (whole
//! antithetic pairs) and gathering the others' values in member order, as MPI ranks do.

use eggroll::session::Exchange;
use eggroll::shards::share_pairs;
use eggroll::{EggrollError, Result};
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex};

/// The error of a replica released from an all-gather because another one failed.
pub const RELEASED: &str = "another device's replica failed";

/// What the replicas share: each round's parts, and whether one of them failed.
struct Board {
    state: Mutex<Round>,
    changed: Condvar,
}

/// One round of the all-gather.
struct Round {
    parts: Vec<Vec<f32>>,
    arrived: usize,
    number: u64,
    gathered: Vec<f32>,
    failed: bool,
}

/// One replica's end of the exchange.
pub struct ThreadExchange {
    index: usize,
    count: usize,
    board: Arc<Board>,
}

impl ThreadExchange {
    /// The ends of `count` replicas, in member order.
    pub fn group(count: usize) -> Vec<ThreadExchange> {
        let round = Round { parts: vec![Vec::new(); count], arrived: 0, number: 0, gathered: Vec::new(), failed: false };
        let board = Arc::new(Board { state: Mutex::new(round), changed: Condvar::new() });
        (0..count).map(|index| ThreadExchange { index, count, board: Arc::clone(&board) }).collect()
    }

    /// Marks the group failed: every replica waiting in (or later entering) an all-gather gets
    /// an error instead of waiting for this one.
    pub fn fail(&self) {
        self.board.state.lock().unwrap_or_else(|p| p.into_inner()).failed = true;
        self.board.changed.notify_all();
    }
}

impl Exchange<f32> for ThreadExchange {
    fn members(&self, population: usize) -> Result<Range<usize>> {
        Ok(share_pairs(population, self.count)?.swap_remove(self.index))
    }

    fn all_gather(&mut self, mine: Vec<f32>, _population: usize, _epoch: u32) -> Result<Vec<f32>> {
        let failed = || EggrollError::Data(RELEASED.into());
        let mut round = self.board.state.lock().unwrap_or_else(|p| p.into_inner());
        if round.failed {
            return Err(failed());
        }
        round.parts[self.index] = mine;
        round.arrived += 1;
        if round.arrived == self.count {
            round.gathered = round.parts.concat();
            round.arrived = 0;
            round.number += 1;
            self.board.changed.notify_all();
            return Ok(round.gathered.clone());
        }
        let number = round.number;
        while round.number == number && !round.failed {
            round = self.board.changed.wait(round).unwrap_or_else(|p| p.into_inner());
        }
        if round.number == number {
            return Err(failed());
        }
        Ok(round.gathered.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_gather_in_member_order_and_a_failure_releases_the_others() {
        let group = ThreadExchange::group(3);
        let gathered: Vec<Vec<f32>> = std::thread::scope(|s| {
            let handles: Vec<_> = group
                .into_iter()
                .map(|mut end| {
                    s.spawn(move || {
                        let members = end.members(12).unwrap();
                        let mut last = Vec::new();
                        for round in 0..50 {
                            last = end.all_gather(members.clone().map(|m| (m + round) as f32).collect(), 12, 0).unwrap();
                        }
                        last
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for g in gathered {
            assert_eq!(g, (0..12).map(|m| (m + 49) as f32).collect::<Vec<_>>());
        }

        let mut group = ThreadExchange::group(2);
        let (mut waiting, failing) = (group.remove(0), group.remove(0));
        let err = std::thread::scope(|s| {
            let handle = s.spawn(move || waiting.all_gather(vec![1.0], 4, 0));
            failing.fail();
            handle.join().unwrap()
        });
        assert!(err.unwrap_err().to_string().contains("failed"));
    }
}
