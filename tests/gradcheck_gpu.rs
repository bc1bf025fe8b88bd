//! The GPU's whole-loss gradient (content, style and total variation terms,
//! one backward sweep) against central finite differences of the GPU's own
//! loss, and element by element against the float64 CPU reference, on tiny
//! odd-sized images. Random weights with VGG-16's shapes keep it independent
//! of the weights file.

mod common;

use common::{assert_close, gpu, relative};
use wgpu_style::engine::Engine;
use wgpu_style::reference::{self, random_tensor, random_weights, Tensor};
use wgpu_style::settings::{AdamSettings, LossSettings};

fn to_f32(t: &Tensor) -> Vec<f32> {
    t.data.iter().map(|&v| v as f32).collect()
}

fn check(width: usize, height: usize, settings: &LossSettings, seed: u64) {
    let Some(gpu) = gpu() else { return };
    let weights = random_weights(seed);
    let content = to_f32(&random_tensor(3, height, width, seed + 1, 60.0));
    let style = to_f32(&random_tensor(3, height, width, seed + 2, 60.0));
    let x = to_f32(&random_tensor(3, height, width, seed + 3, 60.0));
    let size = (width, height);
    let engine = Engine::new(
        gpu,
        &weights,
        settings,
        AdamSettings::default(),
        &content,
        size,
        &style,
        size,
        &x,
    )
    .unwrap();
    let (report, gradient) = engine.evaluate().unwrap();

    // Element by element against the CPU reference at the same float32 inputs.
    let as_tensor =
        |v: &[f32]| Tensor::new(3, height, width, v.iter().map(|&a| f64::from(a)).collect());
    let (content_targets, style_targets) =
        reference::targets(&weights, &as_tensor(&content), &as_tensor(&style), settings);
    let (terms, expected) = reference::loss_and_gradient(
        &weights,
        &as_tensor(&x),
        settings,
        &content_targets,
        &style_targets,
    );
    assert!(
        relative(report.total, terms.total) < 1e-4,
        "total {} vs reference {}",
        report.total,
        terms.total
    );
    let scale = expected.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let what = format!("gradient {width}x{height}");
    assert_close(&what, &gradient, &expected.data, 1e-3 * scale, 1e-3);

    // Central differences of the GPU loss along random directions. This check is
    // coarse: float32 losses leave only a few digits in a difference over a
    // 0.05 step, and random weights put ReLU kinks close to any larger step
    // (measured errors 4% to 6%). It catches a wrong sign or scale; the
    // element-wise comparison above, against a reference whose own gradient
    // is checked by float64 finite differences, is the precise one.
    for direction_seed in 0..3 {
        let direction = random_tensor(3, height, width, seed + 10 + direction_seed, 1.0);
        let norm = direction.l2();
        let step = 0.05;
        let moved = |sign: f64| -> f64 {
            let shifted: Vec<f32> = x
                .iter()
                .zip(&direction.data)
                .map(|(&a, &d)| (f64::from(a) + sign * step * d / norm) as f32)
                .collect();
            engine.write_image(&shifted);
            engine.evaluate().unwrap().0.total
        };
        let numeric = (moved(1.0) - moved(-1.0)) / (2.0 * step);
        let analytic: f64 = gradient
            .iter()
            .zip(&direction.data)
            .map(|(&g, &d)| f64::from(g) * d / norm)
            .sum();
        let r = relative(numeric, analytic);
        assert!(r < 0.15, "direction {direction_seed}: finite difference {numeric:e}, gradient {analytic:e} ({r:.1e})");
    }
}

#[test]
fn gradient_to_conv2_2_on_11x9() {
    let settings = LossSettings {
        content_layers: vec![3],
        content_layer_weights: vec![1.0],
        style_layers: vec![0, 2],
        style_layer_weights: vec![0.5, 0.5],
        content_weight: 1e3,
        style_weight: 1e-2,
        tv_weight: 10.0,
    };
    check(11, 9, &settings, 10);
}

#[test]
fn gradient_to_conv5_1_on_17x16() {
    let settings = LossSettings {
        content_layers: vec![8],
        content_layer_weights: vec![1.0],
        style_layers: vec![0, 2, 4, 7, 10],
        style_layer_weights: vec![0.2; 5],
        content_weight: 1e3,
        style_weight: 1e-2,
        tv_weight: 1.0,
    };
    check(17, 16, &settings, 20);
}
