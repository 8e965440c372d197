// The draws of a cacheable module read from a noise cache entry (eggroll-backend's noise_cache)
// instead of drawn: `draw` and `int_draw` of draws.wgsl, the same values. The entry (binding 6)
// holds draws 0 .. draws_per_pair() (the module's) of each pair from `p.pair_offset` on, pair
// after pair: normal draws as the bits of their f32, integer draws packed four to a word (lane j
// of word w is draw 4 w + j).

@group(0) @binding(6) var<storage, read> cached: array<u32>;

// Where draw `element` of pair `pair` of the whole population is in the entry.
fn cached_index(pair: u32, element: u32) -> u32 {
    return (pair - p.pair_offset) * draws_per_pair() + element;
}

fn draw(pair: u32, element: u32) -> f32 {
    return bitcast<f32>(cached[cached_index(pair, element)]);
}

fn int_draw(pair: u32, element: u32) -> i32 {
    let at = cached_index(pair, element);
    // The draw's byte to the top of the word, then sign-extended by the arithmetic shift.
    return bitcast<i32>(cached[at >> 2u] << (24u - 8u * (at & 3u))) >> 24u;
}
