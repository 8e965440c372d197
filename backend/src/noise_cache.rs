//! The noise cache every backend keeps: a stream's draws for the pairs of a batch, drawn once per
//! noise epoch and read by every later call of the epoch instead of being drawn again.
//!
//! An entry holds draws `0..per_pair` of each pair of `first_pair..first_pair + pairs` of one
//! stream (one parameter at one noise epoch), pair after pair: for a matrix the pair's `Aᵀ` then
//! `Bᵀ` ([`FactorLayout`](crate::rng::FactorLayout)), for a vector its `ε`. Draws are a pure
//! function of the key, so a hit gives exactly the bits a fresh draw would; the cache changes
//! only how often they are drawn. Entries beyond the budget are dropped oldest first; one that
//! cannot fit is not kept, and its calls draw on the fly.

use crate::rng::NoiseStream;
use std::collections::VecDeque;
use std::sync::Mutex;

/// The kind of draws an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DrawKind {
    /// Standard normal f32 draws ([`NoiseStream::fill_normals`]).
    Normal,
    /// The integer noise of docs/int8.md, one byte per draw.
    Int8,
}

impl DrawKind {
    /// Bytes of one draw.
    pub fn bytes(self) -> u64 {
        match self {
            DrawKind::Normal => 4,
            DrawKind::Int8 => 1,
        }
    }
}

/// What one cache entry holds: draws `0..per_pair` of pairs `first_pair..first_pair + pairs` of
/// `stream`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Draws {
    /// The parameter's stream at the noise epoch.
    pub stream: NoiseStream,
    /// Normal or integer draws.
    pub kind: DrawKind,
    /// Draws per pair.
    pub per_pair: usize,
    /// The first pair of the whole population.
    pub first_pair: usize,
    /// Pairs.
    pub pairs: usize,
}

impl Draws {
    /// Draws in all.
    pub fn len(&self) -> usize {
        self.per_pair * self.pairs
    }

    /// Whether the entry holds no draw.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the entry takes.
    pub fn bytes(&self) -> u64 {
        self.len() as u64 * self.kind.bytes()
    }
}

/// A budgeted cache of draws whose values are `V` (a host array or a device buffer, cheap to
/// clone). Shared by the clones of a backend; safe to use from several threads.
pub struct NoiseCache<V> {
    inner: Mutex<Inner<V>>,
}

impl<V> std::fmt::Debug for NoiseCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("NoiseCache")
            .field("budget", &inner.budget)
            .field("used", &inner.used)
            .field("entries", &inner.entries.len())
            .finish()
    }
}

struct Inner<V> {
    budget: u64,
    used: u64,
    entries: VecDeque<(Draws, V)>,
}

impl<V> Default for NoiseCache<V> {
    fn default() -> Self {
        Self { inner: Mutex::new(Inner { budget: 0, used: 0, entries: VecDeque::new() }) }
    }
}

impl<V: Clone> NoiseCache<V> {
    /// Sets the budget to `bytes` (0: keep nothing), dropping the oldest entries beyond it.
    pub fn set_budget(&self, bytes: u64) {
        let mut inner = self.lock();
        inner.budget = bytes;
        inner.shrink_to(bytes);
    }

    /// The budget in bytes.
    pub fn budget(&self) -> u64 {
        self.lock().budget
    }

    /// Bytes the entries take now.
    pub fn used(&self) -> u64 {
        self.lock().used
    }

    /// The entry of `draws` when it is kept.
    pub fn get(&self, draws: Draws) -> Option<V> {
        self.lock().entries.iter().find(|(d, _)| *d == draws).map(|(_, v)| v.clone())
    }

    /// The entry of `draws`: kept from an earlier call, or made by `make` now and kept when it
    /// fits the budget (older entries dropped to make room). `None` when it can never fit: the
    /// caller draws on the fly, as without a cache. `make` runs without the lock held, so other
    /// threads keep reading while one draws.
    pub fn get_or_make<E>(&self, draws: Draws, make: impl FnOnce() -> Result<V, E>) -> Result<Option<V>, E> {
        let bytes = draws.bytes();
        if bytes == 0 || bytes > self.budget() {
            return Ok(None);
        }
        if let Some(v) = self.get(draws) {
            return Ok(Some(v));
        }
        let value = make()?;
        let mut inner = self.lock();
        if let Some((_, v)) = inner.entries.iter().find(|(d, _)| *d == draws) {
            return Ok(Some(v.clone()));
        }
        if bytes <= inner.budget {
            let keep = inner.budget - bytes;
            inner.shrink_to(keep);
            inner.used += bytes;
            inner.entries.push_back((draws, value.clone()));
        }
        Ok(Some(value))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        // The state stays consistent whatever a panicking holder did: every change is one step.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<V> Inner<V> {
    /// Drops the oldest entries until at most `bytes` are used.
    fn shrink_to(&mut self, bytes: u64) {
        while self.used > bytes {
            let Some((d, _)) = self.entries.pop_front() else { break };
            self.used -= d.bytes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(param_id: u32, pairs: usize) -> Draws {
        Draws { stream: NoiseStream::new(1, param_id, 0), kind: DrawKind::Normal, per_pair: 4, first_pair: 0, pairs }
    }

    #[test]
    fn entries_are_made_once_kept_within_the_budget_and_dropped_oldest_first() {
        let cache = NoiseCache::<u32>::default();
        let made = std::cell::Cell::new(0);
        let make = |v: u32| {
            made.set(made.get() + 1);
            Ok::<_, ()>(v)
        };
        // No budget: nothing is kept, the caller draws.
        assert_eq!(cache.get_or_make(draws(0, 2), || make(7)), Ok(None));
        assert_eq!(made.get(), 0);
        cache.set_budget(64);
        assert_eq!(cache.get_or_make(draws(0, 2), || make(7)), Ok(Some(7)));
        assert_eq!(cache.get_or_make(draws(0, 2), || make(8)), Ok(Some(7)));
        assert_eq!((made.get(), cache.used()), (1, 32));
        assert_eq!(cache.get_or_make(draws(1, 2), || make(9)), Ok(Some(9)));
        assert_eq!(cache.used(), 64);
        // A third entry drops the oldest.
        assert_eq!(cache.get_or_make(draws(2, 2), || make(10)), Ok(Some(10)));
        assert_eq!(cache.get_or_make(draws(0, 2), || make(11)), Ok(Some(11)));
        assert_eq!(cache.used(), 64);
        // One beyond the whole budget is never kept.
        assert_eq!(cache.get_or_make(draws(3, 5), || make(12)), Ok(None));
        cache.set_budget(32);
        assert_eq!(cache.used(), 32);
        cache.set_budget(0);
        assert_eq!(cache.used(), 0);
    }
}
