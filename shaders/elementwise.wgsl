// Elementwise kernels: bias, gain, activations and optimizer steps over `len` values.
// `add_bias`: dst[i] += src[i % cols];  `gain`: dst[i] *= 1 + src[i % cols] (a gain is stored as
// an offset from 1);  `activation`: dst = act(dst), mode 0 relu, 1 silu, 2 tanh;
// `sgd_step`: dst += lr src;  `adam_step`: Adam/AdamW on the loss -src (ascent on the fitness),
// moments in m and v, bias corrections bc1 = 1 - beta1^t and bc2 = 1 - beta2^t from the host.

// `ElementParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

@group(0) @binding(0) var<uniform> p: ElementParams;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn add_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if (i < p.len) {
        dst[i] += src[i % p.cols];
    }
}

@compute @workgroup_size(256)
fn gain(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if (i < p.len) {
        dst[i] *= 1.0 + src[i % p.cols];
    }
}

@compute @workgroup_size(256)
fn activation(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if (i >= p.len) {
        return;
    }
    let x = dst[i];
    switch p.mode {
        case 0u: {
            dst[i] = max(x, 0.0);
        }
        case 1u: {
            dst[i] = x / (1.0 + exp(-x));
        }
        default: {
            // tanh(±15) is ±1 in f32; the clamp keeps exp-based tanh implementations finite.
            dst[i] = tanh(clamp(x, -15.0, 15.0));
        }
    }
}

@compute @workgroup_size(256)
fn sgd_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if (i < p.len) {
        dst[i] += p.lr * src[i];
    }
}

@compute @workgroup_size(256)
fn adam_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if (i >= p.len) {
        return;
    }
    let g = src[i];
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * (-g);
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let mhat = mi / p.bc1;
    let vhat = vi / p.bc2;
    let param = dst[i];
    dst[i] = param - p.lr * (mhat / (sqrt(vhat) + p.eps) + p.weight_decay * param);
}
