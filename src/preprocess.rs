//! Pixel conventions shared by the GPU pipeline, the CPU reference and the tests.
//!
//! * Images read from disk are RGB in interleaved HWC order with values on the 0..255 scale,
//!   as floats. No rounding happens before writing a PNG.
//! * The network and the optimiser work on the *preprocessed* image: planar CHW order
//!   `[3][height][width]`, channels reordered to B, G, R and the ImageNet mean pixel
//!   [`MEAN_BGR`] subtracted, with no scaling. This is the Keras "caffe" convention that
//!   the VGG-16 weights were trained with. One preprocessed unit is one step of an 8-bit
//!   colour channel, which is the unit of the Adam learning rate.
//! * [`preprocessed_to_rgb`] is the exact inverse. Rounding and clipping to 0..255 happen only
//!   when an image is written.
//! * Noise for the initial image is a portable hash of the seed and the flat CHW index (see
//!   [`noise_init_f64`]), so every platform and backend starts from the same image.
//!
//! The functions compute in `f64`. The `f32` variants round each result once at the end.

/// ImageNet mean pixel in B, G, R order, on the 0..255 scale.
pub const MEAN_BGR_F64: [f64; 3] = [103.939, 116.779, 123.68];

/// [`MEAN_BGR_F64`] rounded to `f32`.
pub const MEAN_BGR: [f32; 3] = [103.939, 116.779, 123.68];

/// Lower bound of the initial noise, in preprocessed pixel units.
pub const NOISE_MIN: f64 = -20.0;
/// Upper bound (exclusive) of the initial noise, in preprocessed pixel units.
pub const NOISE_MAX: f64 = 20.0;

/// Increment of the splitmix64 generator (the 64-bit golden ratio).
const SPLITMIX64_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Converts an RGB image (HWC, 0..255) to the preprocessed layout: CHW with channel 0 = B,
/// minus [`MEAN_BGR_F64`].
///
/// # Panics
/// If `rgb.len() != 3 * width * height`.
pub fn rgb_to_preprocessed_f64(rgb: &[f64], width: usize, height: usize) -> Vec<f64> {
    let pixels = width * height;
    assert_eq!(
        rgb.len(),
        3 * pixels,
        "RGB buffer has {} values but a {width}x{height} image needs {}",
        rgb.len(),
        3 * pixels
    );
    let mut chw = vec![0.0; 3 * pixels];
    for (bgr_channel, plane) in chw.chunks_exact_mut(pixels).enumerate() {
        let rgb_channel = 2 - bgr_channel;
        let mean = MEAN_BGR_F64[bgr_channel];
        for (pixel, value) in plane.iter_mut().enumerate() {
            *value = rgb[3 * pixel + rgb_channel] - mean;
        }
    }
    chw
}

/// Converts a preprocessed image (CHW, channel 0 = B, mean subtracted) back to RGB HWC on the
/// 0..255 scale. This is the exact inverse of [`rgb_to_preprocessed_f64`]: values outside
/// 0..255 are kept.
///
/// # Panics
/// If `chw.len() != 3 * width * height`.
pub fn preprocessed_to_rgb_f64(chw: &[f64], width: usize, height: usize) -> Vec<f64> {
    let pixels = width * height;
    assert_eq!(
        chw.len(),
        3 * pixels,
        "preprocessed buffer has {} values but a {width}x{height} image needs {}",
        chw.len(),
        3 * pixels
    );
    let mut rgb = vec![0.0; 3 * pixels];
    for (bgr_channel, plane) in chw.chunks_exact(pixels).enumerate() {
        let rgb_channel = 2 - bgr_channel;
        let mean = MEAN_BGR_F64[bgr_channel];
        for (pixel, value) in plane.iter().enumerate() {
            rgb[3 * pixel + rgb_channel] = value + mean;
        }
    }
    rgb
}

/// `f32` version of [`rgb_to_preprocessed_f64`]. Each value is computed in `f64` and rounded
/// once.
pub fn rgb_to_preprocessed(rgb: &[f32], width: usize, height: usize) -> Vec<f32> {
    let rgb: Vec<f64> = rgb.iter().map(|&v| f64::from(v)).collect();
    to_f32(&rgb_to_preprocessed_f64(&rgb, width, height))
}

/// `f32` version of [`preprocessed_to_rgb_f64`]. Each value is computed in `f64` and rounded
/// once, so a round trip through [`rgb_to_preprocessed`] may differ in the last bit.
pub fn preprocessed_to_rgb(chw: &[f32], width: usize, height: usize) -> Vec<f32> {
    let chw: Vec<f64> = chw.iter().map(|&v| f64::from(v)).collect();
    to_f32(&preprocessed_to_rgb_f64(&chw, width, height))
}

/// Applies the splitmix64 finaliser (Steele, Lea and Flood 2014) to `z`.
fn splitmix64_mix(mut z: u64) -> u64 {
    z ^= z >> 30;
    z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 27;
    z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Returns the uniform variate in [0, 1) for flat index `index` and `seed`: the splitmix64
/// output for state `seed + (index + 1) * 0x9E3779B97F4A7C15` (wrapping), top 53 bits
/// scaled by 2^-53.
pub fn noise_uniform(seed: u64, index: usize) -> f64 {
    let state = seed.wrapping_add(
        (index as u64)
            .wrapping_add(1)
            .wrapping_mul(SPLITMIX64_GAMMA),
    );
    let z = splitmix64_mix(state);
    (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Generates `len` noise values uniform in [[`NOISE_MIN`], [`NOISE_MAX`]), value `i` being
/// `NOISE_MIN + (NOISE_MAX - NOISE_MIN) * noise_uniform(seed, i)`.
///
/// Index `i` is the flat index into the preprocessed `[3][height][width]` tensor, so the noise
/// of a pixel depends on the image size but not on the platform.
pub fn noise_init_f64(seed: u64, len: usize) -> Vec<f64> {
    (0..len)
        .map(|index| NOISE_MIN + (NOISE_MAX - NOISE_MIN) * noise_uniform(seed, index))
        .collect()
}

/// `f32` version of [`noise_init_f64`].
pub fn noise_init(seed: u64, len: usize) -> Vec<f32> {
    to_f32(&noise_init_f64(seed, len))
}

/// Blends noise into the preprocessed content image:
/// `noise_ratio * noise + (1 - noise_ratio) * content_pre`.
///
/// # Panics
/// If the two slices differ in length.
pub fn blend_init_f64(content_pre: &[f64], noise: &[f64], noise_ratio: f64) -> Vec<f64> {
    assert_eq!(
        content_pre.len(),
        noise.len(),
        "content has {} values but noise has {}",
        content_pre.len(),
        noise.len()
    );
    content_pre
        .iter()
        .zip(noise)
        .map(|(&content, &noise)| noise_ratio * noise + (1.0 - noise_ratio) * content)
        .collect()
}

/// `f32` version of [`blend_init_f64`]. Each value is computed in `f64` and rounded once.
pub fn blend_init(content_pre: &[f32], noise: &[f32], noise_ratio: f32) -> Vec<f32> {
    let content: Vec<f64> = content_pre.iter().map(|&v| f64::from(v)).collect();
    let noise: Vec<f64> = noise.iter().map(|&v| f64::from(v)).collect();
    to_f32(&blend_init_f64(&content, &noise, f64::from(noise_ratio)))
}

fn to_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns a 3x2 RGB image with distinct values.
    fn sample_rgb() -> Vec<f64> {
        (0..18).map(|i| 10.0 * i as f64 + 0.25).collect()
    }

    #[test]
    fn preprocess_reorders_to_planar_bgr() {
        let (width, height) = (3, 2);
        let rgb = sample_rgb();
        let chw = rgb_to_preprocessed_f64(&rgb, width, height);
        for y in 0..height {
            for x in 0..width {
                let pixel = y * width + x;
                for bgr_channel in 0..3 {
                    let expected = rgb[3 * pixel + 2 - bgr_channel] - MEAN_BGR_F64[bgr_channel];
                    assert_eq!(chw[bgr_channel * width * height + pixel], expected);
                }
            }
        }
        // Channel 0 of pixel 0 is the blue value minus the blue mean.
        assert_eq!(chw[0], rgb[2] - 103.939);
    }

    #[test]
    fn preprocess_round_trip_f64() {
        let (width, height) = (3, 2);
        let rgb = sample_rgb();
        let back =
            preprocessed_to_rgb_f64(&rgb_to_preprocessed_f64(&rgb, width, height), width, height);
        for (a, b) in rgb.iter().zip(&back) {
            assert!((a - b).abs() <= 1e-12, "{a} became {b}");
        }
    }

    #[test]
    fn preprocess_round_trip_f32_keeps_out_of_range() {
        let (width, height) = (2, 2);
        let rgb: Vec<f32> = vec![
            -30.5, 0.0, 255.0, 300.25, 12.5, 99.0, 128.0, 127.5, 1.0, 254.75, 3.0, 17.0,
        ];
        let back = preprocessed_to_rgb(&rgb_to_preprocessed(&rgb, width, height), width, height);
        for (a, b) in rgb.iter().zip(&back) {
            assert!((a - b).abs() <= 1e-4, "{a} became {b}");
        }
    }

    #[test]
    fn preprocess_f32_matches_f64() {
        let (width, height) = (3, 2);
        let rgb = sample_rgb();
        let rgb32: Vec<f32> = rgb.iter().map(|&v| v as f32).collect();
        let pre64 = rgb_to_preprocessed_f64(&rgb, width, height);
        let pre32 = rgb_to_preprocessed(&rgb32, width, height);
        for (a, b) in pre64.iter().zip(&pre32) {
            assert_eq!(*a as f32, *b);
        }
    }

    #[test]
    #[should_panic(expected = "needs 18")]
    fn preprocess_rejects_wrong_length() {
        rgb_to_preprocessed_f64(&[0.0; 17], 3, 2);
    }

    #[test]
    fn mean_f32_is_rounded_f64() {
        for c in 0..3 {
            assert_eq!(MEAN_BGR[c], MEAN_BGR_F64[c] as f32);
        }
    }

    #[test]
    fn noise_in_range_and_deterministic() {
        let noise = noise_init_f64(7, 10_000);
        assert!(noise.iter().all(|&v| (NOISE_MIN..NOISE_MAX).contains(&v)));
        assert_eq!(noise, noise_init_f64(7, 10_000));
        let mean = noise.iter().sum::<f64>() / noise.len() as f64;
        assert!(
            mean.abs() < 0.5,
            "mean {mean} of uniform [-20, 20) noise is far from 0"
        );
        let min = noise.iter().copied().fold(f64::INFINITY, f64::min);
        let max = noise.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert!(min < -19.9, "noise minimum {min} is far above -20");
        assert!(max > 19.9, "noise maximum {max} is far below 20");
    }

    #[test]
    fn noise_prefix_is_independent_of_length() {
        let long = noise_init_f64(3, 100);
        assert_eq!(&long[..10], &noise_init_f64(3, 10)[..]);
    }

    #[test]
    fn noise_depends_on_seed() {
        assert_ne!(noise_init_f64(0, 16), noise_init_f64(1, 16));
    }

    #[test]
    fn noise_matches_splitmix64_sequence() {
        // With seed s, index i hashes state s + (i + 1) * gamma, which is exactly the
        // (i + 1)-th output of the sequential splitmix64 generator seeded with s.
        let seed = 1234u64;
        let mut state = seed;
        for index in 0..5 {
            state = state.wrapping_add(SPLITMIX64_GAMMA);
            let expected = (splitmix64_mix(state) >> 11) as f64 / 9007199254740992.0;
            assert_eq!(noise_uniform(seed, index), expected);
        }
    }

    #[test]
    fn noise_f32_is_rounded_f64() {
        let wide = noise_init_f64(5, 64);
        let narrow = noise_init(5, 64);
        for (a, b) in wide.iter().zip(&narrow) {
            assert_eq!(*a as f32, *b);
        }
    }

    #[test]
    fn blend_weights_noise_and_content() {
        let content = [10.0f32, -4.0, 0.0];
        let noise = [20.0f32, 0.0, -5.0];
        assert_eq!(blend_init(&content, &noise, 0.0), content.to_vec());
        assert_eq!(blend_init(&content, &noise, 1.0), noise.to_vec());
        let blended = blend_init(&content, &noise, 0.6);
        let expected = [16.0f32, -1.6, -3.0];
        for (a, b) in blended.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "{a} != {b}");
        }
    }
}
