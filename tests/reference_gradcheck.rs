//! Checks the whole-loss gradient of the `f64` CPU reference against central finite
//! differences, on odd image sizes where the 2x2 max-pools drop a row or a column.
//!
//! The network uses seeded random weights with the real VGG-16 shapes, so these tests need
//! no weights file. The loss is piecewise polynomial in the input, because ReLU and max-pool
//! switch between pieces, so a central difference converges to the derivative only while both
//! probes stay on one piece. With a step of 1e-4 pixel units they do at every probed
//! coordinate, and the differences stay below 4e-8 of the largest gradient entry. A step of
//! 1e-3 crossed a switch at one coordinate of the 17x16 case, off by 1.7e-5.

use wgpu_style::reference::{
    loss, loss_and_gradient, random_tensor, random_weights, targets, Tensor,
};
use wgpu_style::settings::LossSettings;
use wgpu_style::vgg::layer_index;
use wgpu_style::weights::Vgg16Weights;

/// Finite-difference step, in preprocessed pixel units.
const STEP: f64 = 1e-4;

/// Allowed difference between the analytic and the numeric derivative, as a fraction of the
/// largest absolute analytic gradient entry.
const TOLERANCE: f64 = 1e-6;

/// Scale of the random test images, in preprocessed pixel units (about one colour range).
const IMAGE_SCALE: f64 = 60.0;

fn layers(names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .map(|name| layer_index(name).unwrap())
        .collect()
}

/// One loss configuration with its images and targets.
struct Problem {
    weights: Vgg16Weights,
    settings: LossSettings,
    x: Tensor,
    content_targets: Vec<Tensor>,
    style_targets: Vec<Vec<f64>>,
}

impl Problem {
    fn new(settings: LossSettings, width: usize, height: usize, seed: u64) -> Self {
        let weights = random_weights(seed);
        let content = random_tensor(3, height, width, seed + 1, IMAGE_SCALE);
        let style = random_tensor(3, height, width, seed + 2, IMAGE_SCALE);
        let x = random_tensor(3, height, width, seed + 3, IMAGE_SCALE);
        let (content_targets, style_targets) = targets(&weights, &content, &style, &settings);
        Problem {
            weights,
            settings,
            x,
            content_targets,
            style_targets,
        }
    }

    fn total_loss(&self, x: &Tensor) -> f64 {
        let terms = loss(
            &self.weights,
            x,
            &self.settings,
            &self.content_targets,
            &self.style_targets,
        );
        terms.total
    }

    /// Compares the analytic gradient with central differences at `coordinates` (c, y, x).
    fn check(&self, label: &str, coordinates: &[(usize, usize, usize)]) {
        let (_, grad) = loss_and_gradient(
            &self.weights,
            &self.x,
            &self.settings,
            &self.content_targets,
            &self.style_targets,
        );
        let scale = grad.max_abs();
        assert!(scale > 0.0, "{label}: the gradient is all zero");

        let mut probe = self.x.clone();
        let mut worst = (0.0, (0, 0, 0), 0.0, 0.0);
        for &(c, y, x) in coordinates {
            let index = self.x.index(c, y, x);
            let original = probe.data[index];
            probe.data[index] = original + STEP;
            let plus = self.total_loss(&probe);
            probe.data[index] = original - STEP;
            let minus = self.total_loss(&probe);
            probe.data[index] = original;

            let numeric = (plus - minus) / (2.0 * STEP);
            let analytic = grad.data[index];
            let error = (analytic - numeric).abs() / scale;
            if error >= worst.0 {
                worst = (error, (c, y, x), analytic, numeric);
            }
        }
        let (error, (c, y, x), analytic, numeric) = worst;
        println!(
            "{label}: {} coordinates, max |analytic - numeric| / max |grad| = {error:e} at \
             ({c}, {y}, {x})",
            coordinates.len()
        );
        assert!(
            error <= TOLERANCE,
            "{label}: at (c {c}, y {y}, x {x}) the analytic derivative is {analytic:e} but the \
             central difference is {numeric:e}; the difference is {error:e} of max |grad| \
             {scale:e}, above {TOLERANCE:e}"
        );
    }
}

/// Lists every coordinate (c, y, x) of a 3-channel image.
fn all_coordinates(width: usize, height: usize) -> Vec<(usize, usize, usize)> {
    let mut coordinates = Vec::with_capacity(3 * width * height);
    for c in 0..3 {
        for y in 0..height {
            for x in 0..width {
                coordinates.push((c, y, x));
            }
        }
    }
    coordinates
}

/// Lists the corners, edge midpoints, last row and column (dropped by odd-size pools) and a
/// few interior points of every channel.
fn sampled_coordinates(width: usize, height: usize) -> Vec<(usize, usize, usize)> {
    let (last_x, last_y) = (width - 1, height - 1);
    let (mid_x, mid_y) = (width / 2, height / 2);
    let positions = [
        (0, 0),
        (0, last_x),
        (last_y, 0),
        (last_y, last_x),
        (0, mid_x),
        (mid_y, 0),
        (last_y, mid_x),
        (mid_y, last_x),
        (mid_y, mid_x),
        (1, 1),
        (mid_y + 1, mid_x - 3),
        (last_y - 2, 5),
    ];
    let mut coordinates = Vec::with_capacity(3 * positions.len());
    for c in 0..3 {
        for &(y, x) in &positions {
            coordinates.push((c, y, x));
        }
    }
    coordinates
}

/// Settings on layers up to conv2_2, with the given term weights.
fn shallow_settings(content_weight: f32, style_weight: f32, tv_weight: f32) -> LossSettings {
    LossSettings {
        content_layers: layers(&["conv2_2"]),
        content_layer_weights: vec![1.0],
        style_layers: layers(&["conv1_1", "conv2_1"]),
        style_layer_weights: vec![0.7, 0.3],
        content_weight,
        style_weight,
        tv_weight,
    }
}

// With these random weights and images, the unweighted style gradient is about 100 times the
// content gradient and 20 times the tv gradient (9x7, max abs entries), and 600 and 40 times
// at 17x16. The combined tests weight the terms so that each has a comparable share.

#[test]
fn gradcheck_content_only_9x7() {
    let problem = Problem::new(shallow_settings(1.0, 0.0, 0.0), 9, 7, 10);
    problem.check("content only, 9x7", &all_coordinates(9, 7));
}

#[test]
fn gradcheck_style_only_9x7() {
    let problem = Problem::new(shallow_settings(0.0, 1.0, 0.0), 9, 7, 20);
    problem.check("style only, 9x7", &all_coordinates(9, 7));
}

#[test]
fn gradcheck_tv_only_9x7() {
    let problem = Problem::new(shallow_settings(0.0, 0.0, 1.0), 9, 7, 30);
    problem.check("tv only, 9x7", &all_coordinates(9, 7));
}

#[test]
fn gradcheck_all_terms_9x7() {
    let problem = Problem::new(shallow_settings(100.0, 1.0, 10.0), 9, 7, 40);
    problem.check("all terms, 9x7", &all_coordinates(9, 7));
}

#[test]
fn gradcheck_to_conv5_1_17x16() {
    let settings = LossSettings {
        content_layers: layers(&["conv4_2"]),
        content_layer_weights: vec![1.0],
        style_layers: layers(&["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]),
        style_layer_weights: vec![0.2; 5],
        content_weight: 500.0,
        style_weight: 1.0,
        tv_weight: 30.0,
    };
    let (width, height) = (17, 16);
    let problem = Problem::new(settings, width, height, 50);
    problem.check("conv5_1, 17x16", &sampled_coordinates(width, height));
}
