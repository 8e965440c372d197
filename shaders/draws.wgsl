// The draws of a cacheable module (one whose `Module::cacheable` is set) from the RNG
// (philox.wgsl): `draw` (standard normal) and `int_draw` (integer noise) of element `element` of
// pair `pair` of the whole population, in the stream of the module's parameters `p`. The variant
// that reads a noise cache entry composes cached_draws.wgsl in place of this file.

fn draw(pair: u32, element: u32) -> f32 {
    return normal_at(p.seed_lo, p.seed_hi, p.param_id, p.noise_epoch, pair, element);
}

fn int_draw(pair: u32, element: u32) -> i32 {
    return int_noise_at(p.seed_lo, p.seed_hi, p.param_id, p.noise_epoch, pair, element);
}
