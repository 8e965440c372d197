//! What the CPU's integer kernels share: a pair's integer noise drawn from its stream, a member's
//! sign, and the size of a rayon job.

use crate::rng::{philox4x32_10, NoiseStream};

/// Fewest values a rayon job handles in the elementwise kernels.
pub(super) const MIN_JOB_VALUES: usize = 4096;
/// Elements `first..first + out.len()` of pair `pair`'s integer noise, each the value
/// [`noise_value`](crate::int8::noise_value) gives it, from one Philox block per 16 draws.
pub(super) fn fill_noise(stream: &NoiseStream, pair: u32, first: u32, out: &mut [i8]) {
    let mut e = first;
    let mut rest = out;
    while !rest.is_empty() {
        let block = e >> 4;
        let words = philox4x32_10([block, pair, stream.param_id, stream.noise_epoch], stream.key());
        let count = rest.len().min((16 - (e & 15)) as usize);
        let (now, later) = rest.split_at_mut(count);
        for v in now {
            let u = (words[((e >> 2) & 3) as usize] >> (8 * (e & 3))) & 0xff;
            *v = ((u & 15) as i32 - (u >> 4) as i32) as i8;
            e += 1;
        }
        rest = later;
    }
}

/// The sign of member `member`'s noise: +1 for even members, -1 for odd ones.
pub(super) fn sign(member: usize) -> i32 {
    if member.is_multiple_of(2) {
        1
    } else {
        -1
    }
}
