//! Helpers shared by the GPU tests.
#![allow(dead_code)]

use std::sync::OnceLock;

use wgpu_style::gpu::Gpu;

/// The adapter shared by all tests of one test binary, or `None` (with a message)
/// when the machine has none. Set `WGPU_STYLE_REQUIRE_GPU=1` (as CI does) to turn
/// a missing adapter into a failure instead of a skip.
pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new(None) {
        Ok(gpu) => Some(gpu),
        Err(error) => {
            if std::env::var_os("WGPU_STYLE_REQUIRE_GPU").is_some() {
                panic!("no GPU adapter although WGPU_STYLE_REQUIRE_GPU is set: {error}");
            }
            eprintln!("skipping GPU test: {error}");
            None
        }
    })
    .as_ref()
}

/// Asserts `|actual - expected| <= abs + rel * |expected|` element by element, and
/// on failure prints the first values and the largest difference.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f64], abs: f64, rel: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    let mut worst = (0usize, 0.0f64);
    let mut failures = 0;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let diff = (f64::from(a) - e).abs();
        // Written so that a NaN difference counts as a failure.
        if diff.is_nan() || diff > abs + rel * e.abs() {
            failures += 1;
        }
        if diff > worst.1 || diff.is_nan() {
            worst = (i, diff);
        }
    }
    if failures > 0 {
        let n = actual.len().min(8);
        panic!(
            "{what}: {failures} of {} values outside abs {abs} + rel {rel}; largest difference \
             {:.3e} at index {} (got {}, expected {})\n first got:      {:?}\n first expected: {:?}",
            actual.len(),
            worst.1,
            worst.0,
            actual[worst.0],
            expected[worst.0],
            &actual[..n],
            &expected[..n]
        );
    }
}

/// Relative difference `|a - b| / |b|`.
pub fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

/// Path of the shared test data folder beside the repository, if present.
pub fn shared_dir() -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    path.is_dir().then_some(path)
}
