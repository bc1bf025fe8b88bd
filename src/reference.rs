//! Plain `f64` CPU implementation of every step that the GPU pipeline runs. Tests compare the
//! WGSL kernels and the whole optimisation loop against it. It is single-threaded and written
//! for clarity. The convolution loops run over contiguous rows, so one loss-and-gradient
//! evaluation of a 64x48 image down to conv5_1 took about 1 s in a release build on one
//! core of a 2-core x86-64 development machine.
//!
//! # Layouts
//! * A [`Tensor`] is one image or feature map in CHW order, row-major: element `(c, y, x)` is
//!   at `data[(c * height + y) * width + x]`. The network input is the preprocessed image of
//!   [`crate::preprocess`] (channel 0 = B, mean subtracted, 0..255 pixel scale).
//! * Convolution weights are `f32` in OIHW order, `weight[((o * in + i) * 3 + ky) * 3 + kx]`
//!   with `ky` the row and `kx` the column offset. They are widened to `f64` exactly.
//! * A Gram matrix is a `Vec<f64>` of `C * C` values, row-major.
//!
//! # Network
//! Each layer of [`VGG16_LAYERS`] is a 3x3 cross-correlation with zero padding 1, stride 1 and
//! bias, `y[o, r, c] = b[o] + sum_{i, ky, kx} W[o, i, ky, kx] * x[i, r + ky - 1, c + kx - 1]`,
//! followed by ReLU. A 2x2 max-pool with stride 2 runs before each layer whose `pool_before`
//! is set. It rounds down, so an odd last row or column is dropped. Its backward pass sends
//! the gradient to the first maximum in the window order (0,0), (0,1), (1,0), (1,1). All
//! features below are taken after ReLU.
//!
//! # Losses
//! For features `F` of shape C x H x W, with `M = H * W` and `F` read as a C x M matrix:
//! * content: `sum((F - P)^2) / (C * H * W)`, the mean squared error with no factor 1/2,
//!   where `P` are the features of the content image;
//! * style: `E = sum((G - A)^2) / (4 * C^2 * M^2)` with the un-normalised Gram matrices
//!   `G = F F^T` and `A` of the style image. Its gradient is `(G - A) F / (C^2 * M^2)`;
//! * total variation of the input image `x`: the sum over channels of the squared
//!   differences of horizontally and vertically adjacent pixels, divided by `C * H * W`.
//!
//! The total is `content_weight * sum_l w_l * content_l + style_weight * sum_l s_l * style_l
//! + tv_weight * tv`, with the weights of [`LossSettings`].
//!
//! # Optimiser
//! Adam as in `torch.optim.Adam`, with `t = 1, 2, ...` and `m = v = 0` at the start:
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
//! `x -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`. There is no clamping.
//!
//! # Settings
//! The `f32` fields of [`LossSettings`] and [`AdamSettings`] are widened through their
//! shortest decimal form, so `0.2f32` becomes `0.2f64` and `0.9f32` becomes `0.9f64`: the
//! reference computes with the values a user typed, not with their `f32` rounding.

use crate::preprocess::noise_uniform;
use crate::settings::{AdamSettings, LossSettings};
use crate::vgg::VGG16_LAYERS;
use crate::weights::{ConvWeights, Vgg16Weights};

/// One image or feature map in CHW order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// `channels * height * width` values, element `(c, y, x)` at `(c * height + y) * width + x`.
    pub data: Vec<f64>,
}

impl Tensor {
    /// Creates a tensor from CHW data.
    ///
    /// # Panics
    /// If `data.len() != channels * height * width`.
    pub fn new(channels: usize, height: usize, width: usize, data: Vec<f64>) -> Self {
        assert_eq!(
            data.len(),
            channels * height * width,
            "tensor data has {} values but shape {channels}x{height}x{width} needs {}",
            data.len(),
            channels * height * width
        );
        Tensor {
            channels,
            height,
            width,
            data,
        }
    }

    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        Tensor::new(
            channels,
            height,
            width,
            vec![0.0; channels * height * width],
        )
    }

    /// Creates a tensor from CHW `f32` data, widening each value exactly.
    ///
    /// # Panics
    /// If `data.len() != channels * height * width`.
    pub fn from_f32(channels: usize, height: usize, width: usize, data: &[f32]) -> Self {
        let data = data.iter().map(|&v| f64::from(v)).collect();
        Tensor::new(channels, height, width, data)
    }

    /// Returns the data rounded to `f32`, in CHW order.
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }

    pub fn at(&self, c: usize, y: usize, x: usize) -> f64 {
        self.data[self.index(c, y, x)]
    }

    /// Flat index of element `(c, y, x)`.
    pub fn index(&self, c: usize, y: usize, x: usize) -> usize {
        assert!(
            c < self.channels && y < self.height && x < self.width,
            "element ({c}, {y}, {x}) is outside shape {}x{}x{}",
            self.channels,
            self.height,
            self.width
        );
        (c * self.height + y) * self.width + x
    }

    /// Number of values in one channel, `height * width`.
    pub fn plane_len(&self) -> usize {
        self.height * self.width
    }

    /// Returns the `height * width` values of channel `c`.
    pub fn plane(&self, c: usize) -> &[f64] {
        let len = self.plane_len();
        &self.data[c * len..(c + 1) * len]
    }

    /// Euclidean norm of all values.
    pub fn l2(&self) -> f64 {
        self.data.iter().map(|v| v * v).sum::<f64>().sqrt()
    }

    pub fn sum(&self) -> f64 {
        self.data.iter().sum()
    }

    /// Maximum absolute value, 0 for an empty tensor.
    pub fn max_abs(&self) -> f64 {
        self.data.iter().fold(0.0, |max, v| max.max(v.abs()))
    }

    fn same_shape(&self, other: &Tensor) -> bool {
        (self.channels, self.height, self.width) == (other.channels, other.height, other.width)
    }

    fn assert_same_shape(&self, other: &Tensor, operation: &str) {
        assert!(
            self.same_shape(other),
            "{operation}: shape {}x{}x{} does not match {}x{}x{}",
            self.channels,
            self.height,
            self.width,
            other.channels,
            other.height,
            other.width
        );
    }

    /// Adds `scale * other` to `self` elementwise.
    fn add_scaled(&mut self, other: &Tensor, scale: f64) {
        self.assert_same_shape(other, "add_scaled");
        for (a, b) in self.data.iter_mut().zip(&other.data) {
            *a += scale * b;
        }
    }
}

/// Widens an `f32` setting through its shortest decimal form, so `0.2f32` becomes `0.2f64`.
fn setting_to_f64(value: f32) -> f64 {
    value
        .to_string()
        .parse()
        .expect("an f32 formatted with Display parses as f64")
}

/// Copies each channel of `input` into a plane with a border of one zero on every side.
/// Returns `channels` planes of `(height + 2) * (width + 2)` values.
fn zero_padded_planes(input: &Tensor) -> Vec<f64> {
    let (height, width) = (input.height, input.width);
    let padded_width = width + 2;
    let padded_len = (height + 2) * padded_width;
    let mut padded = vec![0.0; input.channels * padded_len];
    for (c, padded_plane) in padded.chunks_exact_mut(padded_len).enumerate() {
        for (y, row) in input.plane(c).chunks_exact(width).enumerate() {
            let start = (y + 1) * padded_width + 1;
            padded_plane[start..start + width].copy_from_slice(row);
        }
    }
    padded
}

fn check_weight_shape(weight: &[f32], out_channels: usize, in_channels: usize) {
    assert_eq!(
        weight.len(),
        out_channels * in_channels * 9,
        "conv weight has {} values but {out_channels} outputs x {in_channels} inputs x 3 x 3 \
         needs {}",
        weight.len(),
        out_channels * in_channels * 9
    );
}

/// Computes a 3x3 convolution (cross-correlation, zero padding 1, stride 1) plus bias,
/// without ReLU. `weight` is `[out_channels][input.channels][3][3]`.
pub fn conv3x3_forward(
    input: &Tensor,
    weight: &[f32],
    bias: &[f32],
    out_channels: usize,
) -> Tensor {
    let (in_channels, height, width) = (input.channels, input.height, input.width);
    check_weight_shape(weight, out_channels, in_channels);
    assert_eq!(bias.len(), out_channels, "conv bias length");
    let padded_width = width + 2;
    let padded_len = (height + 2) * padded_width;
    let padded = zero_padded_planes(input);
    let mut output = Tensor::zeros(out_channels, height, width);

    // With the zero border, output (y, x) reads padded rows y .. y + 2 and columns
    // x .. x + 2, so every output row is nine shifted, contiguous input rows.
    for (o, output_plane) in output.data.chunks_exact_mut(height * width).enumerate() {
        output_plane.fill(f64::from(bias[o]));
        for i in 0..in_channels {
            let start = (o * in_channels + i) * 9;
            let w: [f64; 9] = std::array::from_fn(|k| f64::from(weight[start + k]));
            let padded_plane = &padded[i * padded_len..(i + 1) * padded_len];
            for (y, output_row) in output_plane.chunks_exact_mut(width).enumerate() {
                let row = |ky: usize, kx: usize| {
                    let start = (y + ky) * padded_width + kx;
                    &padded_plane[start..start + width]
                };
                let (r00, r01, r02) = (row(0, 0), row(0, 1), row(0, 2));
                let (r10, r11, r12) = (row(1, 0), row(1, 1), row(1, 2));
                let (r20, r21, r22) = (row(2, 0), row(2, 1), row(2, 2));
                for x in 0..width {
                    output_row[x] += w[0] * r00[x]
                        + w[1] * r01[x]
                        + w[2] * r02[x]
                        + w[3] * r10[x]
                        + w[4] * r11[x]
                        + w[5] * r12[x]
                        + w[6] * r20[x]
                        + w[7] * r21[x]
                        + w[8] * r22[x];
                }
            }
        }
    }
    output
}

/// Computes the gradient of a 3x3 convolution (zero padding 1, stride 1) with respect to its
/// input, `dx[i, r, c] = sum_{o, ky, kx} W[o, i, ky, kx] * dy[o, r - ky + 1, c - kx + 1]`.
/// `weight` is `[d_output.channels][in_channels][3][3]`.
///
/// This is the forward convolution of `d_output` with the kernel transposed in its channels
/// and flipped in both spatial directions, `W'[i, o, ky, kx] = W[o, i, 2 - ky, 2 - kx]`.
pub fn conv3x3_backward_input(d_output: &Tensor, weight: &[f32], in_channels: usize) -> Tensor {
    let out_channels = d_output.channels;
    check_weight_shape(weight, out_channels, in_channels);
    let mut flipped = vec![0.0f32; weight.len()];
    for o in 0..out_channels {
        for i in 0..in_channels {
            for tap in 0..9 {
                flipped[(i * out_channels + o) * 9 + tap] =
                    weight[(o * in_channels + i) * 9 + 8 - tap];
            }
        }
    }
    conv3x3_forward(d_output, &flipped, &vec![0.0; in_channels], in_channels)
}

pub fn relu(x: &Tensor) -> Tensor {
    let data = x.data.iter().map(|&v| v.max(0.0)).collect();
    Tensor::new(x.channels, x.height, x.width, data)
}

/// Computes the gradient through ReLU from its output: `d_output * (output > 0)`.
pub fn relu_backward(output: &Tensor, d_output: &Tensor) -> Tensor {
    output.assert_same_shape(d_output, "relu_backward");
    let data = output
        .data
        .iter()
        .zip(&d_output.data)
        .map(|(&out, &d)| if out > 0.0 { d } else { 0.0 })
        .collect();
    Tensor::new(output.channels, output.height, output.width, data)
}

/// Window offsets of a 2x2 max-pool in the order that breaks ties.
const POOL_WINDOW: [(usize, usize); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];

/// Returns the input position `(y, x)` of the first maximum of the pooling window at
/// output position `(out_y, out_x)` in channel `c`.
fn pool_argmax(x: &Tensor, c: usize, out_y: usize, out_x: usize) -> (usize, usize) {
    let mut best = (2 * out_y, 2 * out_x);
    let mut best_value = x.at(c, best.0, best.1);
    for &(dy, dx) in &POOL_WINDOW[1..] {
        let position = (2 * out_y + dy, 2 * out_x + dx);
        let value = x.at(c, position.0, position.1);
        if value > best_value {
            best = position;
            best_value = value;
        }
    }
    best
}

/// Computes a 2x2 max-pool with stride 2 that rounds the output size down.
pub fn max_pool2x2(x: &Tensor) -> Tensor {
    let (out_height, out_width) = (x.height / 2, x.width / 2);
    let mut output = Tensor::zeros(x.channels, out_height, out_width);
    for c in 0..x.channels {
        for out_y in 0..out_height {
            for out_x in 0..out_width {
                let (y, x_in) = pool_argmax(x, c, out_y, out_x);
                let index = output.index(c, out_y, out_x);
                output.data[index] = x.at(c, y, x_in);
            }
        }
    }
    output
}

/// Computes the gradient of [`max_pool2x2`] with respect to its input: each output gradient
/// goes to the first maximum of its window, and dropped rows or columns get zero.
pub fn max_pool2x2_backward(input: &Tensor, d_output: &Tensor) -> Tensor {
    assert_eq!(
        (d_output.channels, d_output.height, d_output.width),
        (input.channels, input.height / 2, input.width / 2),
        "max_pool2x2_backward: output gradient shape does not match the pooled input"
    );
    let mut d_input = Tensor::zeros(input.channels, input.height, input.width);
    for c in 0..input.channels {
        for out_y in 0..d_output.height {
            for out_x in 0..d_output.width {
                let (y, x) = pool_argmax(input, c, out_y, out_x);
                let index = d_input.index(c, y, x);
                d_input.data[index] += d_output.at(c, out_y, out_x);
            }
        }
    }
    d_input
}

/// Computes the un-normalised Gram matrix `F F^T` of features read as a C x (H W) matrix.
/// Returns `C * C` values, row-major.
pub fn gram(features: &Tensor) -> Vec<f64> {
    let channels = features.channels;
    let mut gram = vec![0.0; channels * channels];
    for a in 0..channels {
        for b in a..channels {
            let dot: f64 = features
                .plane(a)
                .iter()
                .zip(features.plane(b))
                .map(|(u, v)| u * v)
                .sum();
            gram[a * channels + b] = dot;
            gram[b * channels + a] = dot;
        }
    }
    gram
}

/// Computes the content loss `sum((F - P)^2) / (C * H * W)`.
pub fn content_loss(features: &Tensor, target: &Tensor) -> f64 {
    features.assert_same_shape(target, "content_loss");
    let squared: f64 = features
        .data
        .iter()
        .zip(&target.data)
        .map(|(f, p)| (f - p) * (f - p))
        .sum();
    squared / features.data.len() as f64
}

/// Computes the gradient of [`content_loss`]: `2 (F - P) / (C * H * W)`.
pub fn content_loss_grad(features: &Tensor, target: &Tensor) -> Tensor {
    features.assert_same_shape(target, "content_loss_grad");
    let scale = 2.0 / features.data.len() as f64;
    let data = features
        .data
        .iter()
        .zip(&target.data)
        .map(|(f, p)| scale * (f - p))
        .collect();
    Tensor::new(features.channels, features.height, features.width, data)
}

fn check_gram_shape(features: &Tensor, target_gram: &[f64]) {
    assert_eq!(
        target_gram.len(),
        features.channels * features.channels,
        "target Gram matrix has {} values but {} channels need {}",
        target_gram.len(),
        features.channels,
        features.channels * features.channels
    );
}

/// Computes the style loss `E = sum((G - A)^2) / (4 * C^2 * M^2)` with `G = F F^T` and
/// `M = H * W`.
pub fn style_loss(features: &Tensor, target_gram: &[f64]) -> f64 {
    check_gram_shape(features, target_gram);
    let squared: f64 = gram(features)
        .iter()
        .zip(target_gram)
        .map(|(g, a)| (g - a) * (g - a))
        .sum();
    let channels = features.channels as f64;
    let positions = features.plane_len() as f64;
    squared / (4.0 * channels * channels * positions * positions)
}

/// Computes the gradient of [`style_loss`]: `(G - A) F / (C^2 * M^2)`.
pub fn style_loss_grad(features: &Tensor, target_gram: &[f64]) -> Tensor {
    check_gram_shape(features, target_gram);
    let channels = features.channels;
    let positions = features.plane_len();
    let scale = 1.0 / ((channels * channels) as f64 * (positions * positions) as f64);
    let difference: Vec<f64> = gram(features)
        .iter()
        .zip(target_gram)
        .map(|(g, a)| g - a)
        .collect();

    let mut grad = Tensor::zeros(channels, features.height, features.width);
    for (a, grad_plane) in grad.data.chunks_exact_mut(positions).enumerate() {
        for b in 0..channels {
            let coefficient = scale * difference[a * channels + b];
            for (out, f) in grad_plane.iter_mut().zip(features.plane(b)) {
                *out += coefficient * f;
            }
        }
    }
    grad
}

/// Calls `visit(first, second)` with the flat indices of every horizontally and every
/// vertically adjacent pair of pixels in every channel.
fn for_each_adjacent_pair(x: &Tensor, mut visit: impl FnMut(usize, usize)) {
    for c in 0..x.channels {
        for y in 0..x.height {
            for column in 0..x.width {
                let current = x.index(c, y, column);
                if column + 1 < x.width {
                    visit(current, current + 1);
                }
                if y + 1 < x.height {
                    visit(current, current + x.width);
                }
            }
        }
    }
}

/// Computes the total variation loss: the sum of the squared differences of adjacent pixels,
/// divided by `C * H * W`.
pub fn tv_loss(x: &Tensor) -> f64 {
    let mut squared = 0.0;
    for_each_adjacent_pair(x, |first, second| {
        let difference = x.data[second] - x.data[first];
        squared += difference * difference;
    });
    squared / x.data.len() as f64
}

/// Computes the gradient of [`tv_loss`].
pub fn tv_loss_grad(x: &Tensor) -> Tensor {
    let scale = 2.0 / x.data.len() as f64;
    let mut grad = Tensor::zeros(x.channels, x.height, x.width);
    for_each_adjacent_pair(x, |first, second| {
        let difference = scale * (x.data[second] - x.data[first]);
        grad.data[second] += difference;
        grad.data[first] -= difference;
    });
    grad
}

fn layer_weights(weights: &Vgg16Weights, index: usize) -> &ConvWeights {
    weights.layers.get(index).unwrap_or_else(|| {
        panic!(
            "weights have {} layers but layer {index} ({}) is needed",
            weights.layers.len(),
            VGG16_LAYERS[index].name
        )
    })
}

/// Runs VGG-16 on `x` (3 channels, preprocessed) and returns the post-ReLU features of layers
/// `0..=last_layer`, with a max-pool before each layer that has `pool_before`.
pub fn forward(weights: &Vgg16Weights, x: &Tensor, last_layer: usize) -> Vec<Tensor> {
    assert!(
        last_layer < VGG16_LAYERS.len(),
        "layer {last_layer} does not exist: VGG-16 has {} conv layers",
        VGG16_LAYERS.len()
    );
    assert_eq!(
        x.channels, 3,
        "the network input must have 3 channels (B, G, R)"
    );
    let mut features: Vec<Tensor> = Vec::with_capacity(last_layer + 1);
    for (index, layer) in VGG16_LAYERS[..=last_layer].iter().enumerate() {
        let input = if index == 0 { x } else { &features[index - 1] };
        let pooled;
        let input = if layer.pool_before {
            pooled = max_pool2x2(input);
            &pooled
        } else {
            input
        };
        let conv = layer_weights(weights, index);
        let output = relu(&conv3x3_forward(
            input,
            &conv.weight,
            &conv.bias,
            layer.out_channels,
        ));
        features.push(output);
    }
    features
}

/// Unweighted loss terms of one evaluation, and the weighted total.
#[derive(Clone, Debug, PartialEq)]
pub struct LossTerms {
    /// Content loss of each content layer, in the order of `LossSettings::content_layers`.
    pub content: Vec<f64>,
    /// Style loss `E_l` of each style layer, in the order of `LossSettings::style_layers`.
    pub style: Vec<f64>,
    pub tv: f64,
    pub total: f64,
}

fn check_settings(settings: &LossSettings) {
    assert_eq!(
        settings.content_layers.len(),
        settings.content_layer_weights.len(),
        "one weight per content layer"
    );
    assert_eq!(
        settings.style_layers.len(),
        settings.style_layer_weights.len(),
        "one weight per style layer"
    );
}

/// Accumulates `scale * grad` into the gradient slot of one layer.
fn accumulate(slot: &mut Option<Tensor>, grad: &Tensor, scale: f64) {
    match slot {
        Some(sum) => sum.add_scaled(grad, scale),
        None => {
            let mut scaled = Tensor::zeros(grad.channels, grad.height, grad.width);
            scaled.add_scaled(grad, scale);
            *slot = Some(scaled);
        }
    }
}

/// Loss terms of one evaluation, with what the backward pass needs.
struct Evaluation {
    /// Post-ReLU features of layers `0..=settings.deepest_layer()`.
    features: Vec<Tensor>,
    terms: LossTerms,
    /// Gradient of the total loss with respect to each layer's features from the loss terms on
    /// that layer alone. `None` for layers without a loss term, and for every layer when the
    /// gradient was not requested.
    d_features: Vec<Option<Tensor>>,
}

/// Runs the forward pass and computes the loss terms, plus their gradients with respect to the
/// loss layers' features when `with_gradients` is set.
fn evaluate(
    weights: &Vgg16Weights,
    x: &Tensor,
    settings: &LossSettings,
    content_targets: &[Tensor],
    style_targets: &[Vec<f64>],
    with_gradients: bool,
) -> Evaluation {
    check_settings(settings);
    assert_eq!(
        content_targets.len(),
        settings.content_layers.len(),
        "one content target per content layer"
    );
    assert_eq!(
        style_targets.len(),
        settings.style_layers.len(),
        "one style target per style layer"
    );
    let deepest = settings.deepest_layer();
    let features = forward(weights, x, deepest);
    let mut d_features: Vec<Option<Tensor>> = vec![None; deepest + 1];
    let mut terms = LossTerms {
        content: Vec::with_capacity(content_targets.len()),
        style: Vec::with_capacity(style_targets.len()),
        tv: 0.0,
        total: 0.0,
    };

    let content_weight = setting_to_f64(settings.content_weight);
    for (k, (&layer, target)) in settings
        .content_layers
        .iter()
        .zip(content_targets)
        .enumerate()
    {
        let weight = content_weight * setting_to_f64(settings.content_layer_weights[k]);
        let loss = content_loss(&features[layer], target);
        terms.content.push(loss);
        terms.total += weight * loss;
        if with_gradients {
            let grad = content_loss_grad(&features[layer], target);
            accumulate(&mut d_features[layer], &grad, weight);
        }
    }

    let style_weight = setting_to_f64(settings.style_weight);
    for (k, (&layer, target)) in settings.style_layers.iter().zip(style_targets).enumerate() {
        let weight = style_weight * setting_to_f64(settings.style_layer_weights[k]);
        let loss = style_loss(&features[layer], target);
        terms.style.push(loss);
        terms.total += weight * loss;
        if with_gradients {
            let grad = style_loss_grad(&features[layer], target);
            accumulate(&mut d_features[layer], &grad, weight);
        }
    }

    terms.tv = tv_loss(x);
    terms.total += setting_to_f64(settings.tv_weight) * terms.tv;
    Evaluation {
        features,
        terms,
        d_features,
    }
}

/// Evaluates the loss terms at `x` (preprocessed, 3 channels) without the gradient.
///
/// The targets are as in [`loss_and_gradient`].
pub fn loss(
    weights: &Vgg16Weights,
    x: &Tensor,
    settings: &LossSettings,
    content_targets: &[Tensor],
    style_targets: &[Vec<f64>],
) -> LossTerms {
    evaluate(weights, x, settings, content_targets, style_targets, false).terms
}

/// Evaluates the loss terms at `x` (preprocessed, 3 channels) and the gradient of the total
/// with respect to `x`.
///
/// `content_targets[k]` are the content image's features at `settings.content_layers[k]`,
/// `style_targets[k]` the style image's Gram matrix at `settings.style_layers[k]`, as
/// returned by [`targets`]. One forward pass runs to the deepest loss layer, then one backward
/// pass adds each layer's loss gradient where it is reached.
pub fn loss_and_gradient(
    weights: &Vgg16Weights,
    x: &Tensor,
    settings: &LossSettings,
    content_targets: &[Tensor],
    style_targets: &[Vec<f64>],
) -> (LossTerms, Tensor) {
    let Evaluation {
        features,
        terms,
        d_features,
    } = evaluate(weights, x, settings, content_targets, style_targets, true);
    let deepest = features.len() - 1;

    // Backward sweep: `d` is the gradient with respect to the current layer's output.
    let mut d: Option<Tensor> = None;
    for index in (0..=deepest).rev() {
        let layer = &VGG16_LAYERS[index];
        if let Some(local) = &d_features[index] {
            accumulate(&mut d, local, 1.0);
        }
        let d_output = d.take().unwrap_or_else(|| {
            let shape = &features[index];
            Tensor::zeros(shape.channels, shape.height, shape.width)
        });
        let d_conv = relu_backward(&features[index], &d_output);
        let conv = layer_weights(weights, index);
        let mut d_input = conv3x3_backward_input(&d_conv, &conv.weight, layer.in_channels);
        if layer.pool_before {
            let pool_input = &features[index - 1];
            d_input = max_pool2x2_backward(pool_input, &d_input);
        }
        d = Some(d_input);
    }
    let mut d_x = d.expect("the backward sweep covers at least layer 0");
    d_x.add_scaled(&tv_loss_grad(x), setting_to_f64(settings.tv_weight));
    (terms, d_x)
}

/// Computes the loss targets: the content image's features at each content layer and the
/// style image's Gram matrix at each style layer, in the order of `settings`.
pub fn targets(
    weights: &Vgg16Weights,
    content: &Tensor,
    style: &Tensor,
    settings: &LossSettings,
) -> (Vec<Tensor>, Vec<Vec<f64>>) {
    check_settings(settings);
    let content_targets = match settings.content_layers.iter().max() {
        Some(&deepest) => {
            let features = forward(weights, content, deepest);
            settings
                .content_layers
                .iter()
                .map(|&layer| features[layer].clone())
                .collect()
        }
        None => Vec::new(),
    };
    let style_targets = match settings.style_layers.iter().max() {
        Some(&deepest) => {
            let features = forward(weights, style, deepest);
            settings
                .style_layers
                .iter()
                .map(|&layer| gram(&features[layer]))
                .collect()
        }
        None => Vec::new(),
    };
    (content_targets, style_targets)
}

/// Applies one Adam update to `x` in place, with the moment estimates `m` and `v` (zero
/// before the first step) and the step number `step` = 1, 2, ...
pub fn adam_step(
    x: &mut [f64],
    m: &mut [f64],
    v: &mut [f64],
    grad: &[f64],
    step: u32,
    adam: &AdamSettings,
) {
    assert!(step >= 1, "Adam step numbers start at 1");
    let n = x.len();
    assert!(
        m.len() == n && v.len() == n && grad.len() == n,
        "Adam buffers differ in length: x {n}, m {}, v {}, grad {}",
        m.len(),
        v.len(),
        grad.len()
    );
    let learning_rate = setting_to_f64(adam.learning_rate);
    let beta1 = setting_to_f64(adam.beta1);
    let beta2 = setting_to_f64(adam.beta2);
    let epsilon = setting_to_f64(adam.epsilon);
    let exponent = i32::try_from(step).expect("Adam step number fits in i32");
    let bias_correction1 = 1.0 - beta1.powi(exponent);
    let bias_correction2 = 1.0 - beta2.powi(exponent);
    for i in 0..n {
        let g = grad[i];
        m[i] = beta1 * m[i] + (1.0 - beta1) * g;
        v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
        let m_hat = m[i] / bias_correction1;
        let v_hat = v[i] / bias_correction2;
        x[i] -= learning_rate * m_hat / (v_hat.sqrt() + epsilon);
    }
}

/// Creates a tensor of values uniform in `[-scale, scale)` from a seeded hash, for tests.
pub fn random_tensor(
    channels: usize,
    height: usize,
    width: usize,
    seed: u64,
    scale: f64,
) -> Tensor {
    let data = (0..channels * height * width)
        .map(|i| scale * (2.0 * noise_uniform(seed, i) - 1.0))
        .collect();
    Tensor::new(channels, height, width, data)
}

/// Creates VGG-16 weights with the real layer shapes and He-scaled uniform values from a
/// seeded hash, so tests can run the whole network without the weights file. Activations keep
/// roughly the scale of the input through all 13 layers.
pub fn random_weights(seed: u64) -> Vgg16Weights {
    let layers = VGG16_LAYERS
        .iter()
        .enumerate()
        .map(|(index, layer)| {
            let fan_in = 9 * layer.in_channels;
            // A uniform variable on [-a, a) has variance a^2 / 3, so this gives 2 / fan_in.
            let limit = (6.0 / fan_in as f64).sqrt();
            let layer_seed = seed.wrapping_add(1000 * index as u64);
            let weight = (0..layer.out_channels * fan_in)
                .map(|i| (limit * (2.0 * noise_uniform(layer_seed, i) - 1.0)) as f32)
                .collect();
            let bias = (0..layer.out_channels)
                .map(|i| (0.1 * (2.0 * noise_uniform(layer_seed + 1, i) - 1.0)) as f32)
                .collect();
            ConvWeights { weight, bias }
        })
        .collect();
    Vgg16Weights { layers }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &Tensor, b: &Tensor) -> f64 {
        a.data.iter().zip(&b.data).map(|(u, v)| u * v).sum()
    }

    fn random_f32(len: usize, seed: u64, scale: f64) -> Vec<f32> {
        (0..len)
            .map(|i| (scale * (2.0 * noise_uniform(seed, i) - 1.0)) as f32)
            .collect()
    }

    /// Returns the central finite difference of `loss` with respect to every element of `x`.
    fn numeric_grad(x: &Tensor, step: f64, loss: impl Fn(&Tensor) -> f64) -> Tensor {
        let mut grad = Tensor::zeros(x.channels, x.height, x.width);
        let mut probe = x.clone();
        for i in 0..x.data.len() {
            probe.data[i] = x.data[i] + step;
            let plus = loss(&probe);
            probe.data[i] = x.data[i] - step;
            let minus = loss(&probe);
            probe.data[i] = x.data[i];
            grad.data[i] = (plus - minus) / (2.0 * step);
        }
        grad
    }

    /// Asserts `|actual - expected| <= tolerance * max |expected|` elementwise.
    fn assert_grad_close(label: &str, actual: &Tensor, expected: &Tensor, tolerance: f64) {
        assert!(actual.same_shape(expected), "{label}: shapes differ");
        let scale = expected.max_abs();
        assert!(scale > 0.0, "{label}: expected gradient is all zero");
        let (worst, max_difference) = actual
            .data
            .iter()
            .zip(&expected.data)
            .map(|(a, e)| (a - e).abs())
            .enumerate()
            .fold(
                (0, 0.0),
                |best, (i, d)| if d > best.1 { (i, d) } else { best },
            );
        assert!(
            max_difference <= tolerance * scale,
            "{label}: max difference {max_difference:e} at index {worst} exceeds {tolerance:e} \
             x max |expected| {scale:e}; actual first values {:?}, expected {:?}",
            &actual.data[..actual.data.len().min(6)],
            &expected.data[..expected.data.len().min(6)]
        );
    }

    const ODD_SHAPES: [(usize, usize, usize); 4] = [(1, 5, 7), (3, 5, 7), (1, 9, 13), (3, 9, 13)];

    #[test]
    fn conv_forward_matches_direct_formula() {
        let (in_channels, out_channels, height, width) = (3, 4, 5, 7);
        let input = random_tensor(in_channels, height, width, 1, 10.0);
        let weight = random_f32(out_channels * in_channels * 9, 2, 1.0);
        let bias = random_f32(out_channels, 3, 1.0);
        let output = conv3x3_forward(&input, &weight, &bias, out_channels);
        for o in 0..out_channels {
            for r in 0..height {
                for c in 0..width {
                    let mut expected = f64::from(bias[o]);
                    for i in 0..in_channels {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (y, x) =
                                    (r as isize + ky as isize - 1, c as isize + kx as isize - 1);
                                if y < 0 || x < 0 || y >= height as isize || x >= width as isize {
                                    continue;
                                }
                                let w = weight[((o * in_channels + i) * 3 + ky) * 3 + kx];
                                expected += f64::from(w) * input.at(i, y as usize, x as usize);
                            }
                        }
                    }
                    let actual = output.at(o, r, c);
                    assert!(
                        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
                        "output ({o}, {r}, {c}): {actual} != {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn conv_single_tap_is_a_shift() {
        // Only W[0, 0, 0, 0] = 1, so y[r, c] = x[r - 1, c - 1] with zero padding.
        let input = random_tensor(1, 4, 5, 9, 1.0);
        let mut weight = vec![0.0f32; 9];
        weight[0] = 1.0;
        let output = conv3x3_forward(&input, &weight, &[0.5], 1);
        for r in 0..4 {
            for c in 0..5 {
                let expected = if r == 0 || c == 0 {
                    0.5
                } else {
                    0.5 + input.at(0, r - 1, c - 1)
                };
                assert_eq!(output.at(0, r, c), expected, "({r}, {c})");
            }
        }
    }

    #[test]
    fn conv_backward_is_adjoint() {
        for (seed, &(in_channels, height, width)) in ODD_SHAPES.iter().enumerate() {
            let seed = 10 * seed as u64;
            let out_channels = 3;
            let x = random_tensor(in_channels, height, width, seed, 5.0);
            let y = random_tensor(out_channels, height, width, seed + 1, 5.0);
            let weight = random_f32(out_channels * in_channels * 9, seed + 2, 1.0);
            let zero_bias = vec![0.0; out_channels];
            let lhs = dot(&conv3x3_forward(&x, &weight, &zero_bias, out_channels), &y);
            let rhs = dot(&x, &conv3x3_backward_input(&y, &weight, in_channels));
            assert!(
                (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0),
                "shape {in_channels}x{height}x{width}: <conv(x), y> = {lhs} but \
                 <x, conv_backward(y)> = {rhs}"
            );
        }
    }

    #[test]
    fn relu_backward_masks_inactive() {
        let output = Tensor::new(1, 1, 4, vec![0.0, 2.0, 0.0, 0.5]);
        let d = Tensor::new(1, 1, 4, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(relu_backward(&output, &d).data, vec![0.0, 2.0, 0.0, 4.0]);
        let x = Tensor::new(1, 1, 3, vec![-1.0, 0.0, 3.0]);
        assert_eq!(relu(&x).data, vec![0.0, 0.0, 3.0]);
    }

    #[test]
    fn pool_drops_odd_edge() {
        let x = random_tensor(2, 5, 7, 4, 1.0);
        let pooled = max_pool2x2(&x);
        assert_eq!((pooled.channels, pooled.height, pooled.width), (2, 2, 3));
        for c in 0..2 {
            for r in 0..2 {
                for col in 0..3 {
                    let expected = [(0, 0), (0, 1), (1, 0), (1, 1)]
                        .iter()
                        .map(|&(dy, dx)| x.at(c, 2 * r + dy, 2 * col + dx))
                        .fold(f64::NEG_INFINITY, f64::max);
                    assert_eq!(pooled.at(c, r, col), expected);
                }
            }
        }
    }

    #[test]
    fn pool_backward_ties_go_to_first() {
        // Window 0 ties at (0,1) and (1,0); window 1 is all equal.
        let x = Tensor::new(1, 2, 4, vec![1.0, 3.0, 2.0, 2.0, 3.0, 0.0, 2.0, 2.0]);
        let d = Tensor::new(1, 1, 2, vec![10.0, 20.0]);
        let d_x = max_pool2x2_backward(&x, &d);
        assert_eq!(d_x.data, vec![0.0, 10.0, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn pool_backward_matches_finite_differences() {
        for (seed, &(channels, height, width)) in ODD_SHAPES.iter().enumerate() {
            let x = random_tensor(channels, height, width, 20 + seed as u64, 10.0);
            let pooled = max_pool2x2(&x);
            let weights = random_tensor(pooled.channels, pooled.height, pooled.width, 30, 1.0);
            let analytic = max_pool2x2_backward(&x, &weights);
            let numeric = numeric_grad(&x, 1e-6, |probe| dot(&max_pool2x2(probe), &weights));
            assert_grad_close("max_pool2x2_backward", &analytic, &numeric, 1e-8);
            // Dropped last row and column receive nothing.
            for c in 0..channels {
                for column in 0..width {
                    assert_eq!(analytic.at(c, height - 1, column), 0.0);
                }
                for y in 0..height {
                    assert_eq!(analytic.at(c, y, width - 1), 0.0);
                }
            }
        }
    }

    #[test]
    fn gram_is_features_times_transpose() {
        let f = Tensor::new(2, 1, 3, vec![1.0, 2.0, 3.0, -1.0, 0.5, 4.0]);
        assert_eq!(gram(&f), vec![14.0, 12.0, 12.0, 17.25]);
    }

    #[test]
    fn content_grad_matches_finite_differences() {
        for (seed, &(channels, height, width)) in ODD_SHAPES.iter().enumerate() {
            let seed = 40 + 10 * seed as u64;
            let f = random_tensor(channels, height, width, seed, 10.0);
            let target = random_tensor(channels, height, width, seed + 1, 10.0);
            let analytic = content_loss_grad(&f, &target);
            let numeric = numeric_grad(&f, 1e-4, |probe| content_loss(probe, &target));
            assert_grad_close("content_loss_grad", &analytic, &numeric, 1e-8);
        }
    }

    #[test]
    fn content_loss_is_mean_squared_error() {
        let f = Tensor::new(1, 1, 4, vec![1.0, 2.0, 3.0, 4.0]);
        let p = Tensor::new(1, 1, 4, vec![1.0, 0.0, 3.0, 1.0]);
        assert_eq!(content_loss(&f, &p), (4.0 + 9.0) / 4.0);
    }

    #[test]
    fn style_grad_matches_finite_differences() {
        for (seed, &(channels, height, width)) in ODD_SHAPES.iter().enumerate() {
            let seed = 80 + 10 * seed as u64;
            // Post-ReLU-like non-negative features.
            let f = relu(&random_tensor(channels, height, width, seed, 10.0));
            let target = gram(&random_tensor(channels, height, width, seed + 1, 10.0));
            let analytic = style_loss_grad(&f, &target);
            let numeric = numeric_grad(&f, 1e-3, |probe| style_loss(probe, &target));
            assert_grad_close("style_loss_grad", &analytic, &numeric, 1e-8);
        }
    }

    #[test]
    fn style_loss_single_channel_by_hand() {
        // C = 1, M = 2: G = 9 + 16 = 25, A = 5, E = 400 / (4 * 1 * 4) = 25.
        let f = Tensor::new(1, 1, 2, vec![3.0, 4.0]);
        assert_eq!(style_loss(&f, &[5.0]), 25.0);
        // Gradient (G - A) F / (C^2 M^2) = 20 * F / 4.
        assert_eq!(style_loss_grad(&f, &[5.0]).data, vec![15.0, 20.0]);
    }

    #[test]
    fn tv_grad_matches_finite_differences() {
        for (seed, &(channels, height, width)) in ODD_SHAPES.iter().enumerate() {
            let x = random_tensor(channels, height, width, 120 + seed as u64, 50.0);
            let analytic = tv_loss_grad(&x);
            let numeric = numeric_grad(&x, 1e-3, tv_loss);
            assert_grad_close("tv_loss_grad", &analytic, &numeric, 1e-8);
        }
    }

    #[test]
    fn tv_loss_by_hand() {
        // One channel, 2x2: horizontal pairs (1,2), (3,5); vertical pairs (1,3), (2,5).
        let x = Tensor::new(1, 2, 2, vec![1.0, 2.0, 3.0, 5.0]);
        assert_eq!(tv_loss(&x), (1.0 + 4.0 + 4.0 + 9.0) / 4.0);
    }

    #[test]
    fn adam_first_step_moves_by_learning_rate() {
        // At t = 1 the bias-corrected update is lr * g / (|g| + eps), about lr * sign(g).
        let adam = AdamSettings {
            learning_rate: 2.0,
            ..AdamSettings::default()
        };
        let mut x = vec![1.0, 1.0, 1.0];
        let mut m = vec![0.0; 3];
        let mut v = vec![0.0; 3];
        adam_step(&mut x, &mut m, &mut v, &[1e6, -3.0, 0.0], 1, &adam);
        assert!((x[0] - (1.0 - 2.0)).abs() < 1e-12, "{}", x[0]);
        assert!((x[1] - (1.0 + 2.0)).abs() < 1e-8, "{}", x[1]);
        assert_eq!(x[2], 1.0);
        assert!((m[0] - 1e5).abs() < 1e-6);
        assert!((v[0] - 1e9).abs() < 1e-3);
    }

    #[test]
    fn adam_matches_formula_over_steps() {
        let adam = AdamSettings {
            learning_rate: 0.5,
            beta1: 0.8,
            beta2: 0.99,
            epsilon: 1e-3,
        };
        let grads = [0.3, -1.2, 0.7];
        let mut x = vec![2.0];
        let mut m = vec![0.0];
        let mut v = vec![0.0];
        let (mut x_expected, mut m_expected, mut v_expected) = (2.0f64, 0.0f64, 0.0f64);
        for (t, &g) in grads.iter().enumerate() {
            let t = t as i32 + 1;
            adam_step(&mut x, &mut m, &mut v, &[g], t as u32, &adam);
            m_expected = 0.8 * m_expected + 0.2 * g;
            v_expected = 0.99 * v_expected + 0.01 * g * g;
            let m_hat = m_expected / (1.0 - 0.8f64.powi(t));
            let v_hat = v_expected / (1.0 - 0.99f64.powi(t));
            x_expected -= 0.5 * m_hat / (v_hat.sqrt() + 1e-3);
            assert!(
                (x[0] - x_expected).abs() < 1e-14,
                "step {t}: {} != {x_expected}",
                x[0]
            );
        }
    }

    #[test]
    fn settings_widen_to_typed_decimal() {
        assert_eq!(setting_to_f64(0.2), 0.2);
        assert_eq!(setting_to_f64(0.9), 0.9);
        assert_eq!(setting_to_f64(1e-8), 1e-8);
        assert_eq!(setting_to_f64(100.0), 100.0);
    }

    fn small_settings(tv_weight: f32) -> LossSettings {
        LossSettings {
            content_layers: vec![1],
            content_layer_weights: vec![1.0],
            style_layers: vec![0, 2],
            style_layer_weights: vec![0.5, 0.5],
            content_weight: 5.0,
            style_weight: 100.0,
            tv_weight,
        }
    }

    #[test]
    fn loss_terms_add_up() {
        let weights = random_weights(1);
        let settings = small_settings(3.0);
        let content = random_tensor(3, 6, 5, 200, 50.0);
        let style = random_tensor(3, 6, 5, 201, 50.0);
        let x = random_tensor(3, 6, 5, 202, 50.0);
        let (content_targets, style_targets) = targets(&weights, &content, &style, &settings);
        let (terms, grad) =
            loss_and_gradient(&weights, &x, &settings, &content_targets, &style_targets);
        assert_eq!(terms.content.len(), 1);
        assert_eq!(terms.style.len(), 2);
        let expected = 5.0 * terms.content[0]
            + 100.0 * 0.5 * (terms.style[0] + terms.style[1])
            + 3.0 * terms.tv;
        assert!((terms.total - expected).abs() <= 1e-12 * expected);
        assert_eq!((grad.channels, grad.height, grad.width), (3, 6, 5));
        let without_gradient = loss(&weights, &x, &settings, &content_targets, &style_targets);
        assert_eq!(without_gradient, terms);

        // At the content image the content term and its gradient vanish.
        let (at_content, _) = loss_and_gradient(
            &weights,
            &content,
            &settings,
            &content_targets,
            &style_targets,
        );
        assert_eq!(at_content.content[0], 0.0);
    }

    #[test]
    fn forward_shapes_follow_pools() {
        let weights = random_weights(2);
        let x = random_tensor(3, 17, 16, 3, 50.0);
        let features = forward(&weights, &x, 10);
        assert_eq!(features.len(), 11);
        let shapes: Vec<(usize, usize, usize)> = features
            .iter()
            .map(|f| (f.channels, f.height, f.width))
            .collect();
        assert_eq!(shapes[0], (64, 17, 16));
        assert_eq!(shapes[2], (128, 8, 8));
        assert_eq!(shapes[4], (256, 4, 4));
        assert_eq!(shapes[7], (512, 2, 2));
        assert_eq!(shapes[10], (512, 1, 1));
        // He-scaled random weights keep deep activations alive.
        assert!(features[10].sum() > 0.0);
    }
}
