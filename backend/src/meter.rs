//! [`MeterBackend`]: a backend that holds no data and runs no kernel, and counts the bytes its
//! live buffers would take. The trainer runs a model's forward on it "dry" to learn exactly which
//! buffers a run allocates, and how many bytes at most are live at once, before allocating
//! anything on a real device.

use crate::int8::{IntKernels, IntMatrix, IntNoise};
use crate::ops::{Activation, AdamParams, Batch, DType, LowRankNoise, Recurrence};
use crate::rng::NoiseStream;
use crate::{AdapterDescription, Kernels, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A backend whose buffers hold only their length (and storage type): uploads keep no data,
/// reads give zeros, kernels do nothing and succeed. The checked methods of [`Backend`](crate::Backend) and
/// [`IntBackend`](crate::int8::IntBackend) still check every argument in front, so a shape error is reported as on a real
/// backend. It counts the bytes of its live buffers ([`MeterBackend::allocated_bytes`]), their
/// most at any time ([`MeterBackend::peak_bytes`]) and the largest one
/// ([`MeterBackend::largest_bytes`]): f32 buffers at 4 bytes per value, f16 and bf16 ones at 2,
/// int8 tensors at 1, i32 tensors at 4. Clones share the counts.
#[derive(Clone, Debug, Default)]
pub struct MeterBackend {
    meter: Arc<Meter>,
}

/// The byte counts of a [`MeterBackend`] and its buffers.
#[derive(Debug, Default)]
struct Meter {
    allocated: AtomicU64,
    peak: AtomicU64,
    largest: AtomicU64,
}

/// The bytes one buffer holds on its backend's meter, given back when it is dropped.
#[derive(Debug)]
struct Charge {
    bytes: u64,
    meter: Arc<Meter>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.meter.allocated.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A float buffer (f32, f16 or bf16) of a [`MeterBackend`]: its length and storage type, no values.
#[derive(Debug)]
pub struct MeterBuffer {
    len: usize,
    dtype: DType,
    _charge: Charge,
}

/// An int8 tensor of a [`MeterBackend`]: its length, no values.
#[derive(Debug)]
pub struct MeterI8 {
    len: usize,
    _charge: Charge,
}

/// An i32 tensor of a [`MeterBackend`]: its length, no values.
#[derive(Debug)]
pub struct MeterI32 {
    len: usize,
    _charge: Charge,
}

impl MeterBackend {
    /// A new meter with nothing allocated.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes of the buffers and tensors alive now.
    pub fn allocated_bytes(&self) -> u64 {
        self.meter.allocated.load(Ordering::Relaxed)
    }

    /// The most bytes alive at once since the meter was made.
    pub fn peak_bytes(&self) -> u64 {
        self.meter.peak.load(Ordering::Relaxed)
    }

    /// The bytes of the largest buffer or tensor made since the meter was made.
    pub fn largest_bytes(&self) -> u64 {
        self.meter.largest.load(Ordering::Relaxed)
    }

    /// Counts a new buffer of `len` values of `bytes_per_value` bytes each.
    fn charge(&self, len: usize, bytes_per_value: usize) -> Charge {
        let bytes = len as u64 * bytes_per_value as u64;
        let now = self.meter.allocated.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.meter.peak.fetch_max(now, Ordering::Relaxed);
        self.meter.largest.fetch_max(bytes, Ordering::Relaxed);
        Charge { bytes, meter: self.meter.clone() }
    }
}

/// Kernels that do nothing and succeed: `no_op! { name(ArgType, ..); .. }` in an impl.
macro_rules! no_op {
    ($($name:ident($($arg:ty),*);)*) => {
        $(fn $name(&self, $(_: $arg),*) -> Result<()> {
            Ok(())
        })*
    };
}

impl Kernels for MeterBackend {
    type Buffer = MeterBuffer;

    fn describe(&self) -> AdapterDescription {
        AdapterDescription {
            name: "meter".into(),
            backend: "meter".into(),
            driver: "counts buffer bytes, runs no kernel".into(),
            device_type: "Other".into(),
            ..AdapterDescription::default()
        }
    }

    fn upload(&self, data: &[f32]) -> Result<MeterBuffer> {
        self.upload_as(data, DType::F32)
    }

    /// Any storage type: the meter plans for a device that has it.
    fn upload_as(&self, data: &[f32], dtype: DType) -> Result<MeterBuffer> {
        Ok(MeterBuffer { len: data.len(), dtype, _charge: self.charge(data.len(), dtype.bytes()) })
    }

    fn dtype(&self, buffer: &MeterBuffer) -> DType {
        buffer.dtype
    }

    fn zeros(&self, len: usize) -> Result<MeterBuffer> {
        Ok(MeterBuffer { len, dtype: DType::F32, _charge: self.charge(len, DType::F32.bytes()) })
    }

    fn len(&self, buffer: &MeterBuffer) -> usize {
        buffer.len
    }

    async fn read(&self, buffer: &MeterBuffer) -> Result<Vec<f32>> {
        Ok(vec![0.0; buffer.len])
    }

    async fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    /// Keeps nothing: a memory plan counts the cache from the model's shapes.
    fn set_noise_cache(&self, _bytes: u64) {}

    no_op! {
        write_unchecked(&mut MeterBuffer, &[f32]);
        copy_unchecked(&MeterBuffer, &mut MeterBuffer);
        matmul_unchecked(&MeterBuffer, &MeterBuffer, usize, usize, usize, &mut MeterBuffer);
        noise_factors_unchecked(LowRankNoise, usize, &mut MeterBuffer, &mut MeterBuffer);
        perturbed_matmul_unchecked(&MeterBuffer, &MeterBuffer, LowRankNoise, Batch, &mut MeterBuffer);
        full_rank_matmul_unchecked(&MeterBuffer, &MeterBuffer, LowRankNoise, Batch, &mut MeterBuffer);
        lowrank_update_unchecked(&[f32], LowRankNoise, &mut MeterBuffer);
        perturbed_bias_unchecked(&mut MeterBuffer, &MeterBuffer, NoiseStream, f32, Batch);
        vector_update_unchecked(&[f32], NoiseStream, f32, &mut MeterBuffer);
        full_rank_update_unchecked(&[f32], LowRankNoise, &mut MeterBuffer);
        add_bias_unchecked(&mut MeterBuffer, &MeterBuffer);
        perturbed_gain_unchecked(&mut MeterBuffer, &MeterBuffer, NoiseStream, f32, Batch);
        gain_unchecked(&mut MeterBuffer, &MeterBuffer);
        activation_unchecked(&mut MeterBuffer, Activation);
        layer_norm_unchecked(&mut MeterBuffer, usize, f32);
        sgd_step_unchecked(&mut MeterBuffer, &MeterBuffer, f32);
        adam_step_unchecked(&mut MeterBuffer, &MeterBuffer, &mut MeterBuffer, &mut MeterBuffer, AdamParams);
        mingru_scan_unchecked(&MeterBuffer, &MeterBuffer, Option<&MeterBuffer>, Recurrence, &mut MeterBuffer);
        log_softmax_at_unchecked(&MeterBuffer, &[u32], usize, &mut MeterBuffer);
        perturbed_embedding_unchecked(&[u32], &MeterBuffer, LowRankNoise, Batch, &mut MeterBuffer);
        full_rank_embedding_unchecked(&[u32], &MeterBuffer, LowRankNoise, Batch, &mut MeterBuffer);
        embedding_unchecked(&[u32], &MeterBuffer, usize, &mut MeterBuffer);
    }
}

impl IntKernels for MeterBackend {
    type I8 = MeterI8;
    type I32 = MeterI32;

    fn zeros_i32(&self, len: usize) -> Result<MeterI32> {
        Ok(MeterI32 { len, _charge: self.charge(len, size_of::<i32>()) })
    }

    fn len_i8(&self, tensor: &MeterI8) -> usize {
        tensor.len
    }

    fn len_i32(&self, tensor: &MeterI32) -> usize {
        tensor.len
    }

    async fn read_i8(&self, tensor: &MeterI8) -> Result<Vec<i8>> {
        Ok(vec![0; tensor.len])
    }

    async fn read_i32(&self, tensor: &MeterI32) -> Result<Vec<i32>> {
        Ok(vec![0; tensor.len])
    }

    fn upload_i8_unchecked(&self, data: &[i8]) -> Result<MeterI8> {
        self.zeros_i8_unchecked(data.len())
    }

    fn zeros_i8_unchecked(&self, len: usize) -> Result<MeterI8> {
        Ok(MeterI8 { len, _charge: self.charge(len, size_of::<i8>()) })
    }

    no_op! {
        copy_i8_unchecked(&MeterI8, &mut MeterI8);
        write_i8_unchecked(&mut MeterI8, &[i8]);
        int_matmul_unchecked(&MeterI8, &MeterI8, IntMatrix, usize, &mut MeterI8);
        int_perturbed_matmul_unchecked(&MeterI8, &MeterI8, IntMatrix, IntNoise, Batch, &mut MeterI8);
        int_naive_matmul_unchecked(&MeterI8, &MeterI8, IntMatrix, NoiseStream, Batch, &mut MeterI8);
        int_full_rank_matmul_unchecked(&MeterI8, &MeterI8, IntMatrix, IntNoise, Batch, &mut MeterI8);
        int_embedding_unchecked(&[u32], &MeterI8, IntMatrix, &mut MeterI8);
        int_perturbed_embedding_unchecked(&[u32], &MeterI8, IntMatrix, IntNoise, Batch, &mut MeterI8);
        int_full_rank_embedding_unchecked(&[u32], &MeterI8, IntMatrix, IntNoise, Batch, &mut MeterI8);
        int_layer_norm_unchecked(&mut MeterI8, usize);
        int_mingru_scan_unchecked(&MeterI8, &MeterI8, Recurrence, &mut MeterI8);
        int_relu_unchecked(&mut MeterI8);
        int_add_unchecked(&mut MeterI8, &MeterI8);
        int_log_likelihood_unchecked(&MeterI8, &[u32], usize, &mut MeterI32);
        int_lowrank_update_unchecked(&[i8], IntNoise, IntMatrix, i32, &mut MeterI8);
        int_full_rank_update_unchecked(&[i8], IntNoise, IntMatrix, i32, &mut MeterI8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::IntBackend;
    use crate::{Backend, Error, LowRank};

    #[test]
    fn counts_go_up_and_down_by_dtype() {
        let meter = MeterBackend::new();
        let a = meter.zeros(10).unwrap();
        let h = meter.upload_as(&[1.0; 6], DType::F16).unwrap();
        assert_eq!(meter.allocated_bytes(), 40 + 12);
        let i8s = meter.upload_i8(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let i32s = meter.zeros_i32(3).unwrap();
        assert_eq!(meter.allocated_bytes(), 52 + 8 + 12);
        drop(a);
        drop(i8s);
        assert_eq!(meter.allocated_bytes(), 12 + 12);
        drop((h, i32s));
        assert_eq!((meter.allocated_bytes(), meter.peak_bytes()), (0, 72));
        let _b = meter.zeros(4).unwrap();
        assert_eq!((meter.allocated_bytes(), meter.peak_bytes()), (16, 72), "the peak stays the most ever live");
    }

    #[test]
    fn buffers_keep_their_shape_and_read_as_zeros() {
        let meter = MeterBackend::new();
        let x = meter.upload_as(&[1.0, 2.0, 3.0], DType::F16).unwrap();
        assert_eq!((meter.len(&x), meter.dtype(&x)), (3, DType::F16));
        assert_eq!(meter.read_blocking(&x).unwrap(), [0.0; 3]);
        let t = meter.upload_i8(&[5; 4]).unwrap();
        assert_eq!(meter.read_i8_blocking(&t).unwrap(), [0; 4]);
        assert_eq!(meter.read_i32_blocking(&meter.zeros_i32(2).unwrap()).unwrap(), [0; 2]);
        assert_eq!(meter.describe().backend, "meter");
        assert_eq!(meter.memory_limits(), crate::MemoryLimits::default());
    }

    #[test]
    fn kernels_run_through_the_checked_front() {
        let meter = MeterBackend::new();
        let (x, w) = (meter.zeros(2 * 3).unwrap(), meter.zeros(4 * 3).unwrap());
        let mut y = meter.zeros(2 * 4).unwrap();
        meter.matmul(&x, &w, 4, 3, 2, &mut y).unwrap();
        let mut short = meter.zeros(7).unwrap();
        assert!(matches!(meter.matmul(&x, &w, 4, 3, 2, &mut short), Err(Error::Shape(_))));
        let noise = LowRankNoise { stream: NoiseStream::new(1, 0, 0), shape: LowRank { m: 4, n: 3, rank: 1, sigma: 0.1, piece: None } };
        let mut g = meter.zeros(12).unwrap();
        meter.lowrank_update(&[1.0, -1.0], noise, &mut g).unwrap();
        assert!(matches!(meter.lowrank_update(&[1.0, -1.0, 0.5], noise, &mut g), Err(Error::InvalidArgument(_))));
        assert!(meter.upload_i8(&[1, 2, 3]).is_err(), "int8 lengths are multiples of 4");
        let (logits, mut ll) = (meter.zeros_i8(8).unwrap(), meter.zeros_i32(2).unwrap());
        meter.int_log_likelihood(&logits, &[0, 3], 4, &mut ll).unwrap();
        assert!(meter.int_log_likelihood(&logits, &[0, 4], 4, &mut ll).is_err(), "a target outside the classes");
    }

    #[test]
    fn forwards_take_f32_inputs_with_any_weights_or_both_f16() {
        let meter = MeterBackend::new();
        let (m, n) = (4, 3);
        let noise = LowRankNoise { stream: NoiseStream::new(1, 0, 0), shape: LowRank { m, n, rank: 1, sigma: 0.1, piece: None } };
        let batch = Batch { population: 2, rows: 1, input: crate::InputLayout::PerMember, first_member: 0 };
        for dx in DType::WEIGHTS {
            for dw in DType::WEIGHTS {
                let (x, w) = (meter.upload_as(&[0.0; 2 * 3], dx).unwrap(), meter.upload_as(&[0.0; 4 * 3], dw).unwrap());
                let mut y = meter.zeros(2 * m).unwrap();
                let results = [
                    meter.matmul(&x, &w, m, n, 2, &mut y),
                    meter.perturbed_matmul(&x, &w, noise, batch, &mut y),
                    meter.full_rank_matmul(&x, &w, noise, batch, &mut y),
                ];
                let taken = dx == DType::F32 || (dx, dw) == (DType::F16, DType::F16);
                for result in results {
                    match result {
                        Ok(()) => assert!(taken, "x {dx}, w {dw} taken"),
                        Err(Error::Unsupported(e)) => {
                            assert!(!taken && e.starts_with(&format!("input X is {dx} with weight W {dw}:")), "x {dx}, w {dw}: {e}")
                        }
                        Err(e) => panic!("x {dx}, w {dw}: {e}"),
                    }
                }
            }
        }
        assert_eq!(DType::WEIGHTS.map(|d| d.to_string().parse::<DType>().unwrap()), DType::WEIGHTS);
        assert_eq!(DType::WEIGHTS.map(|d| (d.bytes(), d.words(3))), [(4, 3), (2, 2), (2, 2)]);
    }
}
