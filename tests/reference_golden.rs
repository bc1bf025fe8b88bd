//! Checks the `f64` CPU reference against golden values computed in float64 by an independent
//! implementation (PyTorch on the CPU, cross-checked against NumPy and onnxruntime).
//!
//! The test images are defined by formulas, with x the column, y the row and c = 0, 1, 2 for
//! R, G, B, values on the 0..255 scale and not rounded:
//! * content `127.5 + 100 * sin(0.31 x + 0.17 y + c)`,
//! * style `127.5 + 100 * cos(((0.23 x) y) / 7 + 0.5 c)`,
//! * mix, the average of the two, which gives a non-zero content loss.
//!
//! Each case is one image size. The losses use the settings stored with the golden values:
//! content layer conv4_2 with weight 5, style layers conv1_1 .. conv5_1 with layer weights 0.2
//! and style weight 100, no total variation term. Both implementations compute in `f64` from
//! the same `f32` weights and differ only in summation order. On x86-64 every value checked
//! here agreed to better than 1e-13 relative, so the tolerance leaves a margin of 100.
//!
//! The tests print a message and pass when the golden file or the weights file is missing.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;
use wgpu_style::preprocess::{
    blend_init_f64, noise_init, noise_init_f64, noise_uniform, rgb_to_preprocessed_f64,
};
use wgpu_style::reference::{adam_step, forward, loss_and_gradient, targets, LossTerms, Tensor};
use wgpu_style::settings::{AdamSettings, LossSettings};
use wgpu_style::vgg::{layer_index, VGG16_LAYERS};
use wgpu_style::weights::{Vgg16Weights, WeightsError};

/// Relative tolerance for every golden value.
const RELATIVE_TOLERANCE: f64 = 1e-11;

/// Absolute tolerance for gradient entries, as a fraction of the gradient's L2 norm, so that
/// entries near zero are not held to a relative bound.
const GRADIENT_ABSOLUTE_FRACTION: f64 = 1e-14;

/// Noise ratio of the noise-initialised image: `0.6 * noise + 0.4 * content`.
const NOISE_RATIO: f64 = 0.6;

fn golden_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/golden/golden.json"
    ))
}

/// Loads the golden values and the weights once for all tests, or returns `None` after
/// printing why the tests are skipped.
fn fixtures() -> Option<&'static (Value, Vgg16Weights)> {
    static FIXTURES: OnceLock<Option<(Value, Vgg16Weights)>> = OnceLock::new();
    FIXTURES
        .get_or_init(|| {
            let path = golden_path();
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error) => {
                    eprintln!(
                        "golden tests skipped: cannot read {} ({error}); the ../shared folder \
                         next to the repository is missing",
                        path.display()
                    );
                    return None;
                }
            };
            let golden: Value = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("invalid JSON in {}: {error}", path.display()));
            let weights = match Vgg16Weights::load(&Vgg16Weights::default_path()) {
                Ok(weights) => weights,
                Err(error @ WeightsError::NotFound { .. }) => {
                    eprintln!("golden tests skipped: {error}");
                    return None;
                }
                Err(error) => panic!("{error}"),
            };
            Some((golden, weights))
        })
        .as_ref()
}

// ---------------------------------------------------------------- JSON access

/// Returns the value at a dot-separated path such as `eval_at_mix.grad_l2`.
fn lookup<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |node, key| {
        node.get(key)
            .unwrap_or_else(|| panic!("golden value '{path}' is missing (no key '{key}')"))
    })
}

fn number(value: &Value, path: &str) -> f64 {
    lookup(value, path)
        .as_f64()
        .unwrap_or_else(|| panic!("golden value '{path}' is not a number"))
}

fn numbers(value: &Value, path: &str) -> Vec<f64> {
    lookup(value, path)
        .as_array()
        .unwrap_or_else(|| panic!("golden value '{path}' is not an array"))
        .iter()
        .map(|v| {
            v.as_f64()
                .unwrap_or_else(|| panic!("golden value '{path}' holds a non-number"))
        })
        .collect()
}

// ---------------------------------------------------------------- comparisons

/// Asserts `|actual - expected| <= absolute + RELATIVE_TOLERANCE * |expected|`.
fn assert_close(label: &str, actual: f64, expected: f64, absolute: f64) {
    let difference = (actual - expected).abs();
    let allowed = absolute + RELATIVE_TOLERANCE * expected.abs();
    assert!(
        difference <= allowed,
        "{label}: got {actual:e}, golden {expected:e}, difference {difference:e} \
         (relative {:e}) exceeds {allowed:e}",
        difference / expected.abs()
    );
}

/// Asserts [`assert_close`] elementwise and prints the first values and the largest
/// difference when it fails.
fn assert_all_close(label: &str, actual: &[f64], expected: &[f64], absolute: f64) {
    assert_eq!(actual.len(), expected.len(), "{label}: lengths differ");
    let mut worst = (0, 0.0);
    let mut failed = false;
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let difference = (a - e).abs();
        if difference > worst.1 {
            worst = (i, difference);
        }
        failed |= difference > absolute + RELATIVE_TOLERANCE * e.abs();
    }
    assert!(
        !failed,
        "{label}: max difference {:e} at index {}; got {:?}, golden {:?}",
        worst.1,
        worst.0,
        &actual[..actual.len().min(8)],
        &expected[..expected.len().min(8)]
    );
}

// ---------------------------------------------------------------- test setup

/// One image size with its preprocessed test images.
struct Case {
    name: &'static str,
    golden: &'static Value,
    weights: &'static Vgg16Weights,
    settings: LossSettings,
    /// The style layer weights as stored (0.2), for the weighted style loss. Widening the
    /// `f32` weights of `settings` would be off by 1.5e-8 relative.
    style_layer_weights: Vec<f64>,
    content: Tensor,
    style: Tensor,
    mix: Tensor,
}

/// Evaluates an RGB formula `pixel(x, y, c)` on a `width` x `height` grid and preprocesses it.
fn formula_image(width: usize, height: usize, pixel: impl Fn(f64, f64, f64) -> f64) -> Tensor {
    let mut rgb = Vec::with_capacity(3 * width * height);
    for y in 0..height {
        for x in 0..width {
            for c in 0..3 {
                rgb.push(pixel(x as f64, y as f64, c as f64));
            }
        }
    }
    Tensor::new(
        3,
        height,
        width,
        rgb_to_preprocessed_f64(&rgb, width, height),
    )
}

fn content_pixel(x: f64, y: f64, c: f64) -> f64 {
    127.5 + 100.0 * (0.31 * x + 0.17 * y + c).sin()
}

fn style_pixel(x: f64, y: f64, c: f64) -> f64 {
    127.5 + 100.0 * ((0.23 * x) * y / 7.0 + 0.5 * c).cos()
}

/// Builds the loss settings stored with the golden values.
fn golden_settings(golden: &Value) -> LossSettings {
    let meta = lookup(golden, "meta");
    let style_layers = lookup(meta, "style_layers")
        .as_array()
        .expect("meta.style_layers is an array")
        .iter()
        .map(|name| layer_index(name.as_str().expect("layer names are strings")).unwrap())
        .collect();
    let content_layer = lookup(meta, "content_layer").as_str().expect("layer name");
    LossSettings {
        content_layers: vec![layer_index(content_layer).unwrap()],
        content_layer_weights: vec![1.0],
        style_layers,
        style_layer_weights: numbers(meta, "style_layer_weights")
            .iter()
            .map(|&w| w as f32)
            .collect(),
        content_weight: number(meta, "alpha") as f32,
        style_weight: number(meta, "beta") as f32,
        tv_weight: 0.0,
    }
}

fn golden_adam(golden: &Value) -> AdamSettings {
    let adam = lookup(golden, "meta.adam");
    AdamSettings {
        learning_rate: number(adam, "lr") as f32,
        beta1: number(adam, "beta1") as f32,
        beta2: number(adam, "beta2") as f32,
        epsilon: number(adam, "eps") as f32,
    }
}

fn load_case(name: &'static str) -> Option<Case> {
    let (golden, weights) = fixtures()?;
    let case = lookup(golden, "cases").get(name).unwrap_or_else(|| {
        panic!("golden case '{name}' is missing");
    });
    let width = number(case, "width") as usize;
    let height = number(case, "height") as usize;
    let content = formula_image(width, height, content_pixel);
    let style = formula_image(width, height, style_pixel);
    let mix_data = content
        .data
        .iter()
        .zip(&style.data)
        .map(|(c, s)| 0.5 * c + 0.5 * s)
        .collect();
    // The mean is affine, so averaging preprocessed images equals preprocessing the average.
    let mix = Tensor::new(3, height, width, mix_data);
    Some(Case {
        name,
        golden: case,
        weights,
        settings: golden_settings(golden),
        style_layer_weights: numbers(golden, "meta.style_layer_weights"),
        content,
        style,
        mix,
    })
}

const CASES: [&str; 2] = ["32x32", "64x48"];

impl Case {
    fn targets(&self) -> (Vec<Tensor>, Vec<Vec<f64>>) {
        targets(self.weights, &self.content, &self.style, &self.settings)
    }

    fn evaluate(&self, x: &Tensor, targets: &(Vec<Tensor>, Vec<Vec<f64>>)) -> (LossTerms, Tensor) {
        loss_and_gradient(self.weights, x, &self.settings, &targets.0, &targets.1)
    }

    fn style_layer_name(&self, k: usize) -> &'static str {
        VGG16_LAYERS[self.settings.style_layers[k]].keras_name
    }

    fn style_loss_weighted(&self, terms: &LossTerms) -> f64 {
        terms
            .style
            .iter()
            .zip(&self.style_layer_weights)
            .map(|(loss, weight)| weight * loss)
            .sum()
    }

    fn number(&self, path: &str) -> f64 {
        number(self.golden, path)
    }

    /// Checks `{prefix}.content_loss{suffix}`, `style_loss_weighted{suffix}` and
    /// `total_loss{suffix}`, and with `per_layer` also `style_losses{suffix}.<layer>`.
    fn check_losses(&self, prefix: &str, suffix: &str, terms: &LossTerms, per_layer: bool) {
        let name = self.name;
        let key = format!("{prefix}.content_loss{suffix}");
        assert_close(
            &format!("{name} {key}"),
            terms.content[0],
            self.number(&key),
            0.0,
        );
        if per_layer {
            for (k, &loss) in terms.style.iter().enumerate() {
                let key = format!("{prefix}.style_losses{suffix}.{}", self.style_layer_name(k));
                assert_close(&format!("{name} {key}"), loss, self.number(&key), 0.0);
            }
        }
        let key = format!("{prefix}.style_loss_weighted{suffix}");
        let weighted = self.style_loss_weighted(terms);
        assert_close(&format!("{name} {key}"), weighted, self.number(&key), 0.0);
        let key = format!("{prefix}.total_loss{suffix}");
        assert_close(
            &format!("{name} {key}"),
            terms.total,
            self.number(&key),
            0.0,
        );
    }

    /// Checks the gradient summaries stored under `prefix`.
    fn check_gradient(&self, prefix: &str, grad: &Tensor) {
        let name = self.name;
        let grad_l2 = grad.l2();
        let expected_l2 = self.number(&format!("{prefix}.grad_l2"));
        assert_close(
            &format!("{name} {prefix}.grad_l2"),
            grad_l2,
            expected_l2,
            0.0,
        );
        let absolute = GRADIENT_ABSOLUTE_FRACTION * expected_l2;

        assert_all_close(
            &format!("{name} {prefix}.grad_first8"),
            &grad.data[..8],
            &numbers(self.golden, &format!("{prefix}.grad_first8")),
            absolute,
        );

        let plane_sums: Vec<f64> = (0..3).map(|c| grad.plane(c).iter().sum()).collect();
        assert_all_close(
            &format!("{name} {prefix}.grad_sum_per_channel_BGR"),
            &plane_sums,
            &numbers(self.golden, &format!("{prefix}.grad_sum_per_channel_BGR")),
            absolute * (grad.plane_len() as f64).sqrt(),
        );

        let samples = lookup(self.golden, &format!("{prefix}.grad_samples"))
            .as_array()
            .expect("grad_samples is an array");
        assert!(!samples.is_empty(), "{name} {prefix}.grad_samples is empty");
        for sample in samples {
            let (c, y, x) = (
                number(sample, "c") as usize,
                number(sample, "y") as usize,
                number(sample, "x") as usize,
            );
            assert_close(
                &format!("{name} {prefix}.grad_samples (c {c}, y {y}, x {x})"),
                grad.at(c, y, x),
                number(sample, "value"),
                absolute,
            );
        }
    }
}

/// Runs `check` on every case, or does nothing when the fixtures are missing.
fn for_each_case(check: impl Fn(&Case)) {
    for name in CASES {
        match load_case(name) {
            Some(case) => check(&case),
            None => return,
        }
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn golden_inputs_preprocess() {
    for_each_case(|case| {
        let name = case.name;
        for (key, image) in [("content", &case.content), ("style", &case.style)] {
            assert_all_close(
                &format!("{name} input_checks.{key}_pre_first8"),
                &image.data[..8],
                &numbers(case.golden, &format!("input_checks.{key}_pre_first8")),
                0.0,
            );
            assert_close(
                &format!("{name} input_checks.{key}_pre_sum"),
                image.sum(),
                case.number(&format!("input_checks.{key}_pre_sum")),
                0.0,
            );
        }
    });
}

#[test]
fn golden_activations_all_layers() {
    for_each_case(|case| {
        let name = case.name;
        for (key, image) in [("content", &case.content), ("style", &case.style)] {
            let features = forward(case.weights, image, VGG16_LAYERS.len() - 1);
            for (layer, output) in VGG16_LAYERS.iter().zip(&features) {
                let prefix = format!("{key}_activations.{}", layer.keras_name);
                let shape = numbers(case.golden, &format!("{prefix}.shape_CHW"));
                assert_eq!(
                    [output.channels, output.height, output.width].map(|v| v as f64),
                    [shape[0], shape[1], shape[2]],
                    "{name} {prefix}.shape_CHW"
                );
                let sum_key = format!("{prefix}.sum");
                let l2_key = format!("{prefix}.l2");
                assert_close(
                    &format!("{name} {sum_key}"),
                    output.sum(),
                    case.number(&sum_key),
                    0.0,
                );
                assert_close(
                    &format!("{name} {l2_key}"),
                    output.l2(),
                    case.number(&l2_key),
                    0.0,
                );
            }
        }
    });
}

#[test]
fn golden_style_gram_targets() {
    for_each_case(|case| {
        let (_, style_targets) = case.targets();
        for (k, target) in style_targets.iter().enumerate() {
            let prefix = format!("style_gram_targets.{}", case.style_layer_name(k));
            let sum: f64 = target.iter().sum();
            let l2 = target.iter().map(|v| v * v).sum::<f64>().sqrt();
            let name = case.name;
            assert_close(
                &format!("{name} {prefix}.sum"),
                sum,
                case.number(&format!("{prefix}.sum")),
                0.0,
            );
            assert_close(
                &format!("{name} {prefix}.l2"),
                l2,
                case.number(&format!("{prefix}.l2")),
                0.0,
            );
        }
    });
}

#[test]
fn golden_eval_at_content() {
    for_each_case(|case| {
        let targets = case.targets();
        let (terms, grad) = case.evaluate(&case.content, &targets);
        assert_eq!(
            terms.content[0], 0.0,
            "{} content loss at the content image",
            case.name
        );
        case.check_losses("eval_at_content", "", &terms, true);
        case.check_gradient("eval_at_content", &grad);
    });
}

#[test]
fn golden_eval_at_mix() {
    for_each_case(|case| {
        let targets = case.targets();
        let (terms, grad) = case.evaluate(&case.mix, &targets);
        case.check_losses("eval_at_mix", "", &terms, true);
        case.check_gradient("eval_at_mix", &grad);
    });
}

/// Runs 10 Adam steps from the content image and checks the trajectory.
fn check_adam10(name: &'static str) {
    let Some(case) = load_case(name) else {
        return;
    };
    let (golden, _) = fixtures().expect("load_case returned a case, so the fixtures are loaded");
    let adam = golden_adam(golden);
    let targets = case.targets();
    let x0 = case.content.clone();
    let mut x = x0.clone();
    let mut m = vec![0.0; x.data.len()];
    let mut v = vec![0.0; x.data.len()];
    let mut losses = Vec::with_capacity(10);
    for step in 1..=10 {
        let (terms, grad) = case.evaluate(&x, &targets);
        losses.push(terms.total);
        adam_step(&mut x.data, &mut m, &mut v, &grad.data, step, &adam);
    }
    let prefix = "adam10_from_content";
    assert_all_close(
        &format!("{name} {prefix}.losses_before_each_step"),
        &losses,
        &numbers(case.golden, &format!("{prefix}.losses_before_each_step")),
        0.0,
    );

    let (terms, _) = case.evaluate(&x, &targets);
    case.check_losses(prefix, "_after_10", &terms, true);
    assert_close(
        &format!("{name} {prefix}.total_loss_after_10_torch_optim_Adam"),
        terms.total,
        case.number(&format!("{prefix}.total_loss_after_10_torch_optim_Adam")),
        0.0,
    );
    assert_all_close(
        &format!("{name} {prefix}.x10_first8"),
        &x.data[..8],
        &numbers(case.golden, &format!("{prefix}.x10_first8")),
        0.0,
    );
    let moved = x
        .data
        .iter()
        .zip(&x0.data)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt();
    assert_close(
        &format!("{name} {prefix}.x10_minus_x0_l2"),
        moved,
        case.number(&format!("{prefix}.x10_minus_x0_l2")),
        0.0,
    );
}

#[test]
fn golden_adam10_32x32() {
    check_adam10("32x32");
}

#[test]
fn golden_adam10_64x48() {
    check_adam10("64x48");
}

#[test]
fn golden_noise_init_seed0() {
    for_each_case(|case| {
        let name = case.name;
        let prefix = "noise_init_seed0";
        let expected_u = numbers(case.golden, &format!("{prefix}.u_first8"));
        let u: Vec<f64> = (0..expected_u.len()).map(|i| noise_uniform(0, i)).collect();
        // The golden variates would match bit for bit, but serde_json's default float parser
        // (without its float_roundtrip feature) can be one unit in the last place off.
        for (i, (&actual, &expected)) in u.iter().zip(&expected_u).enumerate() {
            assert!(
                (actual - expected).abs() <= 2.0 * f64::EPSILON * expected,
                "{name} {prefix}.u_first8[{i}]: got {actual:e}, golden {expected:e}"
            );
        }

        let len = case.content.data.len();
        let noise = noise_init_f64(0, len);
        let noise_f32 = noise_init(0, len);
        for (i, (&wide, &narrow)) in noise.iter().zip(&noise_f32).enumerate() {
            if i < u.len() {
                assert_eq!(wide, -20.0 + 40.0 * u[i], "{name} noise value {i}");
            }
            assert_eq!(narrow, wide as f32, "{name} f32 noise value {i}");
        }

        let x0 = Tensor::new(
            3,
            case.content.height,
            case.content.width,
            blend_init_f64(&case.content.data, &noise, NOISE_RATIO),
        );
        assert_all_close(
            &format!("{name} {prefix}.x0_first8"),
            &x0.data[..8],
            &numbers(case.golden, &format!("{prefix}.x0_first8")),
            0.0,
        );
        assert_close(
            &format!("{name} {prefix}.x0_sum"),
            x0.sum(),
            case.number(&format!("{prefix}.x0_sum")),
            0.0,
        );

        let targets = case.targets();
        let (terms, grad) = case.evaluate(&x0, &targets);
        case.check_losses(prefix, "", &terms, false);
        assert_close(
            &format!("{name} {prefix}.grad_l2"),
            grad.l2(),
            case.number(&format!("{prefix}.grad_l2")),
            0.0,
        );
    });
}
