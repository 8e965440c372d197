//! Bounded caches of device objects that calls of the same shape reuse: idle buffers by key, and
//! bind groups by what they bind. Both evict the least recently used entries beyond their bounds
//! and hand what they evict back to the caller.

use std::collections::HashMap;
use std::hash::Hash;

/// Idle buffers by key (e.g. purpose and byte size). A caller takes one out for the duration of
/// a call and gives it back afterwards, so that concurrent calls never share one.
///
/// Bounded by the count and the total bytes of the idle buffers: giving one back evicts the least
/// recently given ones beyond either bound (never the one just given, so that one buffer larger
/// than the byte bound is still reused).
pub(crate) struct BufferPool<K> {
    idle: HashMap<K, Vec<(wgpu::Buffer, u64)>>,
    count: usize,
    bytes: u64,
    max_count: usize,
    max_bytes: u64,
    tick: u64,
}

impl<K: Clone + Eq + Hash> BufferPool<K> {
    /// An empty pool holding at most `max_count` idle buffers of at most `max_bytes` together.
    pub(crate) fn new(max_count: usize, max_bytes: u64) -> Self {
        Self { idle: HashMap::new(), count: 0, bytes: 0, max_count, max_bytes, tick: 0 }
    }

    /// An idle buffer of `key`, taken out of the pool.
    pub(crate) fn take(&mut self, key: &K) -> Option<wgpu::Buffer> {
        let (buffer, _) = self.idle.get_mut(key)?.pop()?;
        self.count -= 1;
        self.bytes -= buffer.size();
        Some(buffer)
    }

    /// Returns `buffer` to the pool under `key`; returns the buffers evicted to stay in bounds.
    pub(crate) fn give(&mut self, key: K, buffer: wgpu::Buffer) -> Vec<wgpu::Buffer> {
        self.tick += 1;
        self.count += 1;
        self.bytes += buffer.size();
        let given = self.tick;
        self.idle.entry(key).or_default().push((buffer, given));
        let mut evicted = Vec::new();
        while self.count > self.max_count || self.bytes > self.max_bytes {
            let oldest = self
                .idle
                .iter()
                .flat_map(|(k, v)| v.iter().enumerate().map(move |(i, (_, t))| (*t, k, i)))
                .filter(|(t, _, _)| *t != given)
                .min_by_key(|(t, _, _)| *t)
                .map(|(_, k, i)| (k.clone(), i));
            let Some((k, i)) = oldest else { break };
            let (buffer, _) = self.idle.get_mut(&k).expect("found above").remove(i);
            self.count -= 1;
            self.bytes -= buffer.size();
            evicted.push(buffer);
        }
        self.idle.retain(|_, v| !v.is_empty());
        evicted
    }
}

/// Bind groups by key. The key holds the buffers a bind group binds, which keeps them alive, so
/// the cache is bounded by count (least recently used out) and forgets every bind group of a
/// buffer when that buffer is released ([`BindGroupCache::forget`]).
pub(crate) struct BindGroupCache<K> {
    entries: HashMap<K, (wgpu::BindGroup, u64)>,
    max_count: usize,
    tick: u64,
}

/// What a bind group key binds.
pub(crate) trait Binds {
    /// Whether the key binds `buffer`.
    fn binds(&self, buffer: &wgpu::Buffer) -> bool;
}

impl<K: Clone + Eq + Hash + Binds> BindGroupCache<K> {
    /// An empty cache of at most `max_count` bind groups.
    pub(crate) fn new(max_count: usize) -> Self {
        Self { entries: HashMap::new(), max_count, tick: 0 }
    }

    /// The bind group of `key`, marked as just used.
    pub(crate) fn get(&mut self, key: &K) -> Option<wgpu::BindGroup> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(group, used)| {
            *used = tick;
            group.clone()
        })
    }

    /// Caches `group` under `key`, evicting the least recently used beyond the bound.
    pub(crate) fn insert(&mut self, key: K, group: wgpu::BindGroup) {
        self.tick += 1;
        if self.entries.len() >= self.max_count {
            let oldest = self.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, (group, self.tick));
    }

    /// Drops every bind group that binds `buffer` (released by its owner or evicted from a pool).
    pub(crate) fn forget(&mut self, buffer: &wgpu::Buffer) {
        self.entries.retain(|k, _| !k.binds(buffer));
    }
}
