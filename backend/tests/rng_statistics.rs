//! Statistical checks of the normal draws: mean, variance, higher moments and a
//! Kolmogorov-Smirnov test against the standard normal CDF on 2^20 draws.

use eggroll_backend::NoiseStream;

/// Standard normal CDF through Numerical Recipes' erfc (fractional error < 1.2e-7, far below
/// the KS threshold of ~1.9e-3 used here).
fn normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    1.0 - 0.5 * erfc
}

fn draws(count: usize) -> Vec<f64> {
    // Spread over pairs, parameters and epochs, as training uses them.
    let mut out = Vec::with_capacity(count);
    let mut buf = vec![0.0f32; 4096];
    let mut k = 0u32;
    while out.len() < count {
        let stream = NoiseStream::new(0x5eed, k % 7, k / 7 % 3);
        stream.fill_normals(k, 0, &mut buf);
        out.extend(buf.iter().map(|v| f64::from(*v)));
        k += 1;
    }
    out.truncate(count);
    out
}

#[test]
fn moments_are_standard_normal() {
    let z = draws(1 << 20);
    let n = z.len() as f64;
    let mean = z.iter().sum::<f64>() / n;
    let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let skew = z.iter().map(|v| (v - mean).powi(3)).sum::<f64>() / n / var.powf(1.5);
    let kurt = z.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n / var.powi(2);
    // Standard errors at n = 2^20: mean 0.001, variance 0.0014, skewness 0.0024, kurtosis 0.0048.
    assert!(mean.abs() < 0.005, "mean {mean}");
    assert!((var - 1.0).abs() < 0.007, "variance {var}");
    assert!(skew.abs() < 0.012, "skewness {skew}");
    assert!((kurt - 3.0).abs() < 0.025, "kurtosis {kurt}");
    assert!(z.iter().all(|v| v.abs() <= 5.78), "Box-Muller on 24-bit uniforms is bounded by 5.77");
}

#[test]
fn kolmogorov_smirnov_against_the_normal_cdf() {
    let mut z = draws(1 << 20);
    z.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = z.len() as f64;
    let d = z
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let cdf = normal_cdf(*v);
            (cdf - i as f64 / n).abs().max(((i + 1) as f64 / n - cdf).abs())
        })
        .fold(0.0, f64::max);
    // Critical value at significance 0.001: 1.95 / sqrt(n).
    let critical = 1.95 / n.sqrt();
    assert!(d < critical, "KS statistic {d} >= {critical}");
}

#[test]
fn pairs_are_uncorrelated() {
    let stream = NoiseStream::new(1, 2, 3);
    let count = 1 << 16;
    let mut a = vec![0.0f32; count];
    let mut b = vec![0.0f32; count];
    stream.fill_normals(0, 0, &mut a);
    stream.fill_normals(1, 0, &mut b);
    let corr = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>() / count as f64;
    let lag1 = a.windows(2).map(|w| f64::from(w[0]) * f64::from(w[1])).sum::<f64>() / count as f64;
    // Standard error 1/sqrt(2^16) = 0.0039.
    assert!(corr.abs() < 0.02 && lag1.abs() < 0.02, "pair correlation {corr}, lag-1 {lag1}");
}
