//! [`SelectedBackend`] against the backend inside it: a slice of the f32 and int8 kernels gives the
//! same bits through either variant as through the inner backend called directly (on the CPU, and
//! on every wgpu test adapter of `EGGROLL_TEST_WGPU_BACKEND`, failing when one is missing), the
//! memory limits are the inner backend's, and a buffer of the other kind is refused with an error.

use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::WgpuOptions;
use eggroll_backend::int8::IntKernels;
use eggroll_backend::int8::{threshold, IntBackend, IntMatrix, IntNoise};
use eggroll_backend::meter::MeterBackend;
use eggroll_backend::select::{SelectedBackend, SelectedBuffer, SelectedI32, SelectedI8};
use eggroll_backend::testing::{for_each_adapter, open};
use eggroll_backend::Kernels;
use eggroll_backend::{
    Activation, AdamParams, Backend, Batch, Error, InputLayout, LowRank, LowRankNoise, MemoryLimits, NoiseStream, Recurrence,
};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

/// What the slice of kernels gives: each f32 output as bits, each int8 and i32 output.
#[derive(Debug, PartialEq)]
struct Outputs {
    f32_bits: Vec<(&'static str, Vec<u32>)>,
    i8s: Vec<(&'static str, Vec<i8>)>,
    i32s: Vec<(&'static str, Vec<i32>)>,
}

fn random(rng: &mut Pcg64, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn random_i8(rng: &mut Pcg64, len: usize) -> Vec<i8> {
    (0..len).map(|_| rng.random_range(-127..=127i32) as i8).collect()
}

/// Runs perturbed_matmul, lowrank_update, mingru_scan, embedding, adam_step,
/// int_perturbed_matmul, int_lowrank_update and int_log_likelihood on `b` with fixed inputs.
fn run_slice<B: IntBackend>(b: &B) -> Outputs {
    let mut rng = Pcg64::seed_from_u64(7);
    let read = |x: &B::Buffer| b.read_blocking(x).unwrap().iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    let mut out = Outputs { f32_bits: Vec::new(), i8s: Vec::new(), i32s: Vec::new() };

    let noise = LowRankNoise { stream: NoiseStream::new(11, 2, 3), shape: LowRank { m: 12, n: 8, rank: 2, sigma: 0.1, piece: None } };
    let batch = Batch { population: 4, rows: 3, input: InputLayout::Shared, first_member: 0 };
    let (x, w) = (b.upload(&random(&mut rng, 3 * 8)).unwrap(), b.upload(&random(&mut rng, 12 * 8)).unwrap());
    let mut y = b.zeros(4 * 3 * 12).unwrap();
    b.perturbed_matmul(&x, &w, noise, batch, &mut y).unwrap();
    out.f32_bits.push(("perturbed_matmul", read(&y)));

    let mut g = b.zeros(12 * 8).unwrap();
    b.lowrank_update(&random(&mut rng, 4), noise, &mut g).unwrap();
    out.f32_bits.push(("lowrank_update", read(&g)));

    let shape = Recurrence { sequences: 4, time: 5, width: 6 };
    let gate = b.upload(&random(&mut rng, shape.output_len())).unwrap();
    let candidate = b.upload(&random(&mut rng, shape.output_len())).unwrap();
    let h0 = b.upload(&random(&mut rng, shape.state_len())).unwrap();
    let mut h = b.zeros(shape.output_len()).unwrap();
    b.mingru_scan(&gate, &candidate, Some(&h0), shape, &mut h).unwrap();
    out.f32_bits.push(("mingru_scan", read(&h)));

    let table = b.upload(&random(&mut rng, 10 * 6)).unwrap();
    let mut rows = b.zeros(4 * 6).unwrap();
    b.embedding(&[3, 0, 9, 3], &table, 6, &mut rows).unwrap();
    out.f32_bits.push(("embedding", read(&rows)));

    let mut param = b.upload(&random(&mut rng, 20)).unwrap();
    let grad = b.upload(&random(&mut rng, 20)).unwrap();
    let (mut m, mut v) = (b.upload(&random(&mut rng, 20)).unwrap(), b.upload(&[0.25; 20]).unwrap());
    let adam = AdamParams { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, step: 3 };
    b.adam_step(&mut param, &grad, &mut m, &mut v, adam).unwrap();
    out.f32_bits.extend([("adam param", read(&param)), ("adam m", read(&m)), ("adam v", read(&v))]);

    let shape = IntMatrix { m: 12, n: 8 };
    let noise = IntNoise { stream: NoiseStream::new(5, 1, 0), rank: 1, shift: 4 };
    let batch = Batch { population: 4, rows: 2, input: InputLayout::Shared, first_member: 0 };
    let x = b.upload_i8(&random_i8(&mut rng, 2 * 8)).unwrap();
    let mut w = b.upload_i8(&random_i8(&mut rng, 12 * 8)).unwrap();
    let mut y = b.zeros_i8(4 * 2 * 12).unwrap();
    b.int_perturbed_matmul(&x, &w, shape, noise, batch, &mut y).unwrap();
    out.i8s.push(("int_perturbed_matmul", b.read_i8_blocking(&y).unwrap()));

    b.int_lowrank_update(&[1, -1], noise, shape, threshold(0.5, 2, 1), &mut w).unwrap();
    out.i8s.push(("int_lowrank_update", b.read_i8_blocking(&w).unwrap()));

    let logits = b.upload_i8(&random_i8(&mut rng, 3 * 8)).unwrap();
    let mut ll = b.zeros_i32(3).unwrap();
    b.int_log_likelihood(&logits, &[1, 7, 0], 8, &mut ll).unwrap();
    out.i32s.push(("int_log_likelihood", b.read_i32_blocking(&ll).unwrap()));
    out
}

#[test]
fn cpu_variant_gives_the_cpu_bits() {
    let direct = run_slice(&CpuBackend::new());
    let selected = SelectedBackend::Cpu(CpuBackend::new());
    assert_eq!(run_slice(&selected), direct);
    assert_eq!(selected.describe(), CpuBackend::new().describe());
    assert_eq!(selected.memory_limits(), MemoryLimits::default(), "the CPU backend has no buffer limits");
}

#[test]
fn wgpu_variant_gives_the_adapter_bits_and_limits() {
    for_each_adapter(|adapter| {
        let backend = open(adapter, &WgpuOptions::default());
        let direct = run_slice(&backend);
        let (limits, description) = (backend.memory_limits(), backend.describe());
        let selected = SelectedBackend::Wgpu(Box::new(backend));
        assert_eq!(run_slice(&selected), direct);
        assert_eq!((selected.memory_limits(), selected.describe()), (limits, description));
        let (buffer, binding) = (limits.max_buffer_bytes.unwrap(), limits.max_binding_bytes.unwrap());
        assert!(binding > 0 && binding <= buffer, "max binding {binding} bytes, max buffer {buffer} bytes");
    });
}

/// Asserts that `r` is the refusal of a buffer of the other kind.
fn refused<T: std::fmt::Debug>(r: eggroll_backend::Result<T>, what: &str) {
    match r {
        Err(Error::InvalidArgument(e)) => assert!(e.contains("buffer given to the"), "{what}: {e}"),
        other => panic!("{what}: expected the refusal of a buffer of the other kind, got {other:?}"),
    }
}

#[test]
fn buffers_of_the_other_kind_are_refused() {
    for_each_adapter(|adapter| {
        let gpu = SelectedBackend::Wgpu(Box::new(open(adapter, &WgpuOptions::default())));
        let cpu = SelectedBackend::Cpu(CpuBackend::new());
        let (mut on_cpu, mut on_gpu): (SelectedBuffer, SelectedBuffer) = (cpu.upload(&[1.0; 8]).unwrap(), gpu.upload(&[1.0; 8]).unwrap());
        refused(gpu.read_blocking(&on_cpu), "reading a CPU buffer on wgpu");
        refused(gpu.add_bias(&mut on_gpu, &on_cpu), "a CPU bias on wgpu");
        refused(gpu.copy(&on_gpu, &mut on_cpu), "copying into a CPU buffer on wgpu");
        refused(cpu.activation(&mut on_gpu, Activation::Relu), "a wgpu buffer on the CPU");
        let (h0, mut h) = (cpu.zeros(2).unwrap(), gpu.zeros(8).unwrap());
        let (gate, candidate) = (gpu.zeros(8).unwrap(), gpu.zeros(8).unwrap());
        let shape = Recurrence { sequences: 2, time: 4, width: 1 };
        refused(gpu.mingru_scan(&gate, &candidate, Some(&h0), shape, &mut h), "a CPU initial state on wgpu");

        let (mut cpu_i8, gpu_i8): (SelectedI8, SelectedI8) = (cpu.upload_i8(&[1; 8]).unwrap(), gpu.upload_i8(&[1; 8]).unwrap());
        refused(gpu.int_relu(&mut cpu_i8), "a CPU int8 tensor on wgpu");
        refused(cpu.read_i8_blocking(&gpu_i8), "reading a wgpu int8 tensor on the CPU");
        let mut gpu_ll: SelectedI32 = gpu.zeros_i32(2).unwrap();
        refused(cpu.int_log_likelihood(&cpu_i8, &[0, 3], 4, &mut gpu_ll), "a wgpu i32 output on the CPU");
        assert_eq!(gpu.read_blocking(&on_gpu).unwrap(), [1.0; 8], "a refused call leaves its buffers as they were");
    });
}

#[test]
fn backends_and_buffers_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SelectedBackend>();
    send_sync::<SelectedBuffer>();
    send_sync::<SelectedI8>();
    send_sync::<SelectedI32>();
    send_sync::<MeterBackend>();
    send_sync::<<MeterBackend as Kernels>::Buffer>();
}
