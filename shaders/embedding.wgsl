// The embedding lookup, noise from `draw` (the RNG, draws.wgsl, or in the cached variant a noise
// cache entry, cached_draws.wgsl):
// `perturbed_embedding`: y[i, row, c] = table[v, c] + s_i scale sum_k A_pair(i)[v, k] B_pair(i)[c, k]
//   with v the row's token (the shared rows' tokens, or member i's own): row v of member i's
//   table W + s_i scale A Bᵀ, only the rows looked up; one invocation per (member, row, column),
//   drawing the r terms of its value;
// `full_rank_embedding`: y[i, row, c] = table[v, c] + s_i sigma E_pair(i)[v, c] with
//   E_t[v, c] draw v n + c of pair t's stream (OpenES's full-rank noise, as full_rank.wgsl and
//   vector_noise.wgsl draw it), `scale` holding sigma and `rank` unused; one invocation per
//   (member, row, column), drawing its one value;
// both for a piece of a split table too: the table holds rows first_row .. first_row + m of a
//   vocabulary of whole_rows rows, v indexes the whole vocabulary (and its noise), and only the
//   rows whose tokens fall in the piece are written, the others left as they are;
// `embedding`: y[row, c] = table[tokens[row], c], the unperturbed gather (the mean model);
// `embedding_piece`: the same from one piece of a split table, the rows first_row .. first_row + m
//   of the vocabulary: the rows whose tokens fall there, the others left as they are.
// The table is read through `table_at`, which widens its storage type to f32 exactly: f32, or for
// `embedding_piece` also f16 or bf16 (gpu/transformer.rs); the other entries take f32 tables.

// `EmbeddingParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs),
// and so is `table` (binding 1) with `table_at`.

@group(0) @binding(0) var<uniform> p: EmbeddingParams;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Draws of one pair in a noise cache entry of this module's stream (cached_draws.wgsl).
fn draws_per_pair() -> u32 {
    return (p.m + p.n) * p.rank;
}

// What invocation `gid` of a perturbed lookup computes: y[member, row, c], from row v of the
// table (the row's token: the shared rows', or the member's own).
struct Lookup {
    member: u32,
    c: u32,
    v: u32,
}

// Whether vocabulary row `v` is among the table's rows (always, for a whole table).
fn in_piece(v: u32) -> bool {
    return v >= p.first_row && v - p.first_row < p.m;
}

fn lookup(gid: u32) -> Lookup {
    let c = gid % p.n;
    let row = (gid / p.n) % p.rows;
    let member = gid / (p.n * p.rows);
    return Lookup(member, c, tokens[select(member * p.rows + row, row, p.shared_input != 0u)]);
}

@compute @workgroup_size(256)
fn perturbed_embedding(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (gid >= p.count * p.rows * p.n) {
        return;
    }
    let at = lookup(gid);
    if (!in_piece(at.v)) {
        return;
    }
    // The batch's member `at.member` is of pair `pair_offset + at.member / 2` in the whole population.
    let pair = p.pair_offset + at.member / 2u;
    var acc = 0.0;
    for (var k = 0u; k < p.rank; k++) {
        acc = fma(draw(pair, a_element(p.whole_rows, at.v, k)), draw(pair, b_element(p.whole_rows, p.n, p.rank, at.c, k)), acc);
    }
    let coef = select(p.scale, -p.scale, (at.member & 1u) != 0u);
    y[gid] = fma(coef, acc, table_at((at.v - p.first_row) * p.n + at.c));
}

@compute @workgroup_size(256)
fn full_rank_embedding(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (gid >= p.count * p.rows * p.n) {
        return;
    }
    let at = lookup(gid);
    if (!in_piece(at.v)) {
        return;
    }
    // v n + c < whole_rows n <= 2^32 (checked in front): a draw index of the pair.
    let element = at.v * p.n + at.c;
    let coef = select(p.scale, -p.scale, (at.member & 1u) != 0u);
    y[gid] = table_at((at.v - p.first_row) * p.n + at.c) + coef * draw(p.pair_offset + at.member / 2u, element);
}

@compute @workgroup_size(256)
fn embedding(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (gid >= p.rows * p.n) {
        return;
    }
    y[gid] = table_at(tokens[gid / p.n] * p.n + gid % p.n);
}

@compute @workgroup_size(256)
fn embedding_piece(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (gid >= p.rows * p.n) {
        return;
    }
    let token = tokens[gid / p.n];
    if (!in_piece(token)) {
        return;
    }
    y[gid] = table_at((token - p.first_row) * p.n + gid % p.n);
}
