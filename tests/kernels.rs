//! Every WGSL kernel against the plain CPU reference, on small random tensors
//! with odd shapes: 1 and 3 channels, sizes like 7x5 and 13x9, channel counts
//! that are not a multiple of the 4-channel packing or the kernels' tiles.

mod common;

use common::{assert_close, gpu};
use wgpu_style::gpu::ops::{self, AdamParams, AdamState, GramSplit, PackedConv};
use wgpu_style::gpu::{create_storage, read_buffer, Gpu, GpuTensor, Program};
use wgpu_style::reference::{self, random_tensor, Tensor};
use wgpu_style::settings::AdamSettings;

fn upload(gpu: &Gpu, t: &Tensor) -> GpuTensor {
    let data: Vec<f32> = t.data.iter().map(|&v| v as f32).collect();
    GpuTensor::from_chw(gpu, "test input", t.channels, t.height, t.width, &data)
}

/// Rounds a tensor to f32 precision, so the reference sees exactly the GPU's input.
fn rounded(t: Tensor) -> Tensor {
    let data = t.data.iter().map(|&v| f64::from(v as f32)).collect();
    Tensor::new(t.channels, t.height, t.width, data)
}

fn random_f32(len: usize, seed: u64, scale: f64) -> Vec<f32> {
    random_tensor(1, 1, len, seed, scale)
        .data
        .iter()
        .map(|&v| v as f32)
        .collect()
}

/// A list of single dispatches and programs, for `run`.
macro_rules! parts {
    ($($part:expr),* $(,)?) => {
        vec![$(Program::from($part)),*]
    };
}

/// Runs the parts in order, as one program.
fn run(gpu: &Gpu, parts: Vec<Program>) {
    let mut program = Program::default();
    for part in parts {
        program.extend(part);
    }
    program.run(gpu, "test");
}

/// (in channels, out channels, height, width)
const CONV_SHAPES: [(usize, usize, usize, usize); 6] = [
    (3, 5, 7, 5),
    (1, 3, 13, 9),
    (8, 20, 9, 13),
    (17, 7, 5, 3),
    (3, 64, 1, 6),
    (37, 22, 11, 19),
];

#[test]
fn conv3x3_forward_matches_reference() {
    let Some(gpu) = gpu() else { return };
    for (case, &(c_in, c_out, h, w)) in CONV_SHAPES.iter().enumerate() {
        let seed = 100 + case as u64;
        let x = rounded(random_tensor(c_in, h, w, seed, 2.0));
        let weight = random_f32(c_out * c_in * 9, seed + 1, 0.5);
        let bias = random_f32(c_out, seed + 2, 0.5);
        let conv = PackedConv::forward(gpu, "test conv", &weight, &bias, c_in, c_out);
        let input = upload(gpu, &x);
        for relu in [false, true] {
            let output = GpuTensor::zeros(gpu, "test output", c_out, h, w);
            run(
                gpu,
                parts![ops::conv3x3(gpu, &conv, &input, &output, relu, None)],
            );
            let mut expected = reference::conv3x3_forward(&x, &weight, &bias, c_out);
            if relu {
                expected = reference::relu(&expected);
            }
            let got = output.read_chw(gpu).unwrap();
            let what = format!("conv3x3 {c_in}->{c_out} {h}x{w} relu={relu}");
            assert_close(&what, &got, &expected.data, 1e-5, 1e-5);
        }
    }
}

#[test]
fn conv3x3_backward_matches_reference() {
    let Some(gpu) = gpu() else { return };
    for (case, &(c_in, c_out, h, w)) in CONV_SHAPES.iter().enumerate() {
        let seed = 200 + case as u64;
        let dy = rounded(random_tensor(c_out, h, w, seed, 2.0));
        let weight = random_f32(c_out * c_in * 9, seed + 1, 0.5);
        let conv = PackedConv::backward(gpu, "test conv backward", &weight, c_in, c_out);
        let d_output = upload(gpu, &dy);
        let d_input = GpuTensor::zeros(gpu, "test d_input", c_in, h, w);
        // Every other case fuses the ReLU backward of a random activation.
        let activation = rounded(random_tensor(c_out, h, w, seed + 2, 1.0));
        let masked = case % 2 == 0;
        let mask = upload(gpu, &activation);
        run(
            gpu,
            parts![ops::conv3x3(
                gpu,
                &conv,
                &d_output,
                &d_input,
                false,
                masked.then_some(&mask),
            )],
        );
        let dy = if masked {
            reference::relu_backward(&activation, &dy)
        } else {
            dy
        };
        let expected = reference::conv3x3_backward_input(&dy, &weight, c_in);
        let got = d_input.read_chw(gpu).unwrap();
        let what = format!("conv3x3 backward {c_out}->{c_in} {h}x{w} masked={masked}");
        assert_close(&what, &got, &expected.data, 1e-5, 1e-5);
    }
}

/// (channels, height, width)
const POOL_SHAPES: [(usize, usize, usize); 4] = [(3, 7, 5), (5, 13, 9), (1, 2, 2), (9, 6, 11)];

#[test]
fn max_pool_forward_and_backward_match_reference() {
    let Some(gpu) = gpu() else { return };
    for (case, &(c, h, w)) in POOL_SHAPES.iter().enumerate() {
        let seed = 300 + case as u64;
        let x = rounded(random_tensor(c, h, w, seed, 3.0));
        let input = upload(gpu, &x);
        let output = GpuTensor::zeros(gpu, "pooled", c, h / 2, w / 2);
        let dy = rounded(random_tensor(c, h / 2, w / 2, seed + 1, 1.0));
        let d_output = upload(gpu, &dy);
        // Fill d_input with garbage first: the kernel must overwrite every element.
        let garbage = rounded(random_tensor(c, h, w, seed + 2, 9.0));
        let d_input = upload(gpu, &garbage);
        run(
            gpu,
            parts![
                ops::max_pool(gpu, &input, &output),
                ops::max_pool_backward(gpu, &input, &d_output, &d_input),
            ],
        );
        let what = format!("max_pool {c}x{h}x{w}");
        let expected = reference::max_pool2x2(&x);
        assert_close(
            &what,
            &output.read_chw(gpu).unwrap(),
            &expected.data,
            0.0,
            0.0,
        );
        let expected = reference::max_pool2x2_backward(&x, &dy);
        let what = format!("max_pool backward {c}x{h}x{w}");
        assert_close(
            &what,
            &d_input.read_chw(gpu).unwrap(),
            &expected.data,
            0.0,
            0.0,
        );
    }
}

#[test]
fn max_pool_backward_breaks_ties_like_reference() {
    let Some(gpu) = gpu() else { return };
    // Zeros everywhere (as after ReLU) and a few equal maxima: the first wins.
    let (c, h, w) = (5, 5, 7);
    let data: Vec<f64> = (0..c * h * w)
        .map(|i| if i % 3 == 0 { 1.0 } else { 0.0 })
        .collect();
    let x = Tensor::new(c, h, w, data);
    let dy = rounded(random_tensor(c, h / 2, w / 2, 7, 1.0));
    let input = upload(gpu, &x);
    let d_output = upload(gpu, &dy);
    let d_input = GpuTensor::zeros(gpu, "d_input", c, h, w);
    run(
        gpu,
        parts![ops::max_pool_backward(gpu, &input, &d_output, &d_input)],
    );
    let expected = reference::max_pool2x2_backward(&x, &dy);
    assert_close(
        "max_pool backward ties",
        &d_input.read_chw(gpu).unwrap(),
        &expected.data,
        0.0,
        0.0,
    );
}

#[test]
fn relu_backward_matches_reference() {
    let Some(gpu) = gpu() else { return };
    for (case, &(c, h, w)) in POOL_SHAPES.iter().enumerate() {
        let seed = 400 + case as u64;
        let activation = reference::relu(&rounded(random_tensor(c, h, w, seed, 1.0)));
        let dy = rounded(random_tensor(c, h, w, seed + 1, 1.0));
        let act = upload(gpu, &activation);
        let grad = upload(gpu, &dy);
        run(gpu, parts![ops::relu_backward(gpu, &act, &grad)]);
        let expected = reference::relu_backward(&activation, &dy);
        let what = format!("relu_backward {c}x{h}x{w}");
        assert_close(
            &what,
            &grad.read_chw(gpu).unwrap(),
            &expected.data,
            0.0,
            0.0,
        );
    }
}

/// Unpacks a `[4 groups][groups]` vec4 matrix into a dense C x C row-major one.
fn unpack_gram(packed: &[f32], channels: usize) -> Vec<f32> {
    let padded = 4 * channels.div_ceil(4);
    let mut dense = Vec::with_capacity(channels * channels);
    for i in 0..channels {
        for j in 0..channels {
            dense.push(packed[i * padded + j]);
        }
    }
    dense
}

/// Packs a dense C x C matrix into the `[4 groups][groups]` vec4 layout.
fn pack_gram(dense: &[f64], channels: usize) -> Vec<f32> {
    let padded = 4 * channels.div_ceil(4);
    let mut packed = vec![0.0f32; padded * padded];
    for i in 0..channels {
        for j in 0..channels {
            packed[i * padded + j] = dense[i * channels + j] as f32;
        }
    }
    packed
}

fn storage_with(gpu: &Gpu, label: &str, data: &[f32]) -> wgpu::Buffer {
    let buffer = create_storage(gpu, label, (data.len() * 4) as u64);
    gpu.queue
        .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
    buffer
}

/// (channels, height, width): 3 and 9 channels leave the last vec4 and the
/// 2-group Gram tile partly empty; 13x9 spans several pixel splits.
const GRAM_SHAPES: [(usize, usize, usize); 4] = [(3, 7, 5), (9, 13, 9), (1, 3, 3), (20, 24, 17)];

#[test]
fn gram_style_loss_and_gradient_match_reference() {
    let Some(gpu) = gpu() else { return };
    for (case, &(c, h, w)) in GRAM_SHAPES.iter().enumerate() {
        let seed = 500 + case as u64;
        let f = reference::relu(&rounded(random_tensor(c, h, w, seed, 2.0)));
        let style = reference::relu(&rounded(random_tensor(c, h, w, seed + 1, 2.0)));
        let target_dense = reference::gram(&style);
        let features = upload(gpu, &f);
        let pixels = h * w;
        for split in [
            GramSplit::for_gpu(gpu, c, pixels),
            GramSplit {
                splits: 3,
                pixels_per_split: pixels.div_ceil(3) as u32,
            },
        ] {
            let partial = create_storage(gpu, "partial", split.partial_bytes(c));
            let target = storage_with(gpu, "target", &pack_gram(&target_dense, c));
            let difference = create_storage(gpu, "difference", ops::gram_bytes(c));
            let partial_count = (ops::gram_bytes(c) / 16).div_ceil(64) as u32;
            let loss_partials = ops::partials_buffer(gpu, "loss partials", partial_count);
            let losses = ops::partials_buffer(gpu, "losses", 2);
            let c2m2 = (c * c * pixels * pixels) as f64;
            let d_features = upload(gpu, &rounded(random_tensor(c, h, w, seed + 2, 1.0)));
            let (diff_dispatch, _) = ops::style_loss(
                gpu,
                c,
                split,
                &partial,
                &target,
                1.0,
                &difference,
                &loss_partials,
            );
            let scale = 3.0;
            run(
                gpu,
                parts![
                    ops::gram(gpu, &features, None, split, &partial),
                    diff_dispatch,
                    ops::reduce(
                        gpu,
                        &loss_partials,
                        partial_count,
                        &losses,
                        1,
                        (1.0 / (4.0 * c2m2)) as f32,
                    ),
                    ops::style_grad(
                        gpu,
                        &difference,
                        &features,
                        None,
                        &d_features,
                        (scale / c2m2) as f32,
                        false,
                    ),
                ],
            );
            let what = format!("style {c}x{h}x{w} splits={}", split.splits);
            let g = reference::gram(&f);
            let expected_diff: Vec<f64> = g.iter().zip(&target_dense).map(|(a, b)| a - b).collect();
            let packed: Vec<f32> = read_buffer(gpu, &difference, ops::gram_bytes(c), None).unwrap();
            let scale_abs = g.iter().fold(0.0f64, |m, v| m.max(v.abs())) * 1e-6;
            assert_close(
                &format!("{what} Gram difference"),
                &unpack_gram(&packed, c),
                &expected_diff,
                scale_abs,
                1e-5,
            );

            let loss: Vec<f32> = read_buffer(gpu, &losses, 8, None).unwrap();
            let expected_loss = reference::style_loss(&f, &target_dense);
            assert_close(
                &format!("{what} loss"),
                &loss[1..2],
                &[expected_loss],
                0.0,
                1e-5,
            );

            let expected_grad = reference::style_loss_grad(&f, &target_dense);
            let expected_grad: Vec<f64> = expected_grad.data.iter().map(|v| v * scale).collect();
            let grad_abs = expected_grad.iter().fold(0.0f64, |m, v| m.max(v.abs())) * 1e-5;
            assert_close(
                &format!("{what} gradient"),
                &d_features.read_chw(gpu).unwrap(),
                &expected_grad,
                grad_abs,
                1e-5,
            );
        }
    }
}

#[test]
fn style_target_rescales_with_pixel_count() {
    let Some(gpu) = gpu() else { return };
    // D = G - s A with s = 0.25 must equal the reference difference with A / 4.
    let (c, h, w) = (6, 5, 7);
    let f = reference::relu(&rounded(random_tensor(c, h, w, 42, 2.0)));
    let a = reference::gram(&reference::relu(&rounded(random_tensor(c, h, w, 43, 2.0))));
    let features = upload(gpu, &f);
    let split = GramSplit::for_gpu(gpu, c, h * w);
    let partial = create_storage(gpu, "partial", split.partial_bytes(c));
    let target = storage_with(gpu, "target", &pack_gram(&a, c));
    let difference = create_storage(gpu, "difference", ops::gram_bytes(c));
    let loss_partials = ops::partials_buffer(gpu, "loss partials", 64);
    let (diff, _) = ops::style_loss(
        gpu,
        c,
        split,
        &partial,
        &target,
        0.25,
        &difference,
        &loss_partials,
    );
    run(
        gpu,
        parts![ops::gram(gpu, &features, None, split, &partial), diff],
    );
    let g = reference::gram(&f);
    let expected: Vec<f64> = g.iter().zip(&a).map(|(g, a)| g - 0.25 * a).collect();
    let packed: Vec<f32> = read_buffer(gpu, &difference, ops::gram_bytes(c), None).unwrap();
    assert_close(
        "rescaled Gram difference",
        &unpack_gram(&packed, c),
        &expected,
        1e-3,
        1e-5,
    );
}

#[test]
fn content_loss_matches_reference() {
    let Some(gpu) = gpu() else { return };
    for (case, &(c, h, w)) in POOL_SHAPES.iter().enumerate() {
        let seed = 600 + case as u64;
        let f = rounded(random_tensor(c, h, w, seed, 2.0));
        let p = rounded(random_tensor(c, h, w, seed + 1, 2.0));
        let previous = rounded(random_tensor(c, h, w, seed + 2, 1.0));
        let elements = (c * h * w) as f64;
        for accumulate in [false, true] {
            let features = upload(gpu, &f);
            let target = upload(gpu, &p);
            let d_features = upload(gpu, &previous);
            let count = features.len_vec4();
            let partials = ops::partials_buffer(gpu, "partials", ops::flat_partials(count));
            let losses = ops::partials_buffer(gpu, "losses", 1);
            let weight = 5.0;
            run(
                gpu,
                parts![
                    ops::content_loss(
                        gpu,
                        &features,
                        &target,
                        &d_features,
                        (weight * 2.0 / elements) as f32,
                        accumulate,
                        &partials,
                    ),
                    ops::reduce(
                        gpu,
                        &partials,
                        ops::flat_partials(count),
                        &losses,
                        0,
                        (1.0 / elements) as f32,
                    ),
                ],
            );
            let what = format!("content {c}x{h}x{w} accumulate={accumulate}");
            let loss: Vec<f32> = read_buffer(gpu, &losses, 4, None).unwrap();
            assert_close(
                &format!("{what} loss"),
                &loss,
                &[reference::content_loss(&f, &p)],
                0.0,
                1e-5,
            );
            let grad = reference::content_loss_grad(&f, &p);
            let expected: Vec<f64> = grad
                .data
                .iter()
                .zip(&previous.data)
                .map(|(g, old)| weight * g + if accumulate { *old } else { 0.0 })
                .collect();
            assert_close(
                &format!("{what} gradient"),
                &d_features.read_chw(gpu).unwrap(),
                &expected,
                1e-6,
                1e-5,
            );
        }
    }
}

#[test]
fn tv_loss_matches_reference() {
    let Some(gpu) = gpu() else { return };
    for (case, &(h, w)) in [(7usize, 5usize), (13, 9), (1, 4), (3, 1)]
        .iter()
        .enumerate()
    {
        let seed = 700 + case as u64;
        let x = rounded(random_tensor(3, h, w, seed, 50.0));
        let previous = rounded(random_tensor(3, h, w, seed + 1, 1.0));
        let image = upload(gpu, &x);
        let d_image = upload(gpu, &previous);
        let partials = ops::partials_buffer(gpu, "partials", ops::flat_partials(h * w));
        let losses = ops::partials_buffer(gpu, "losses", 1);
        let elements = (3 * h * w) as f64;
        let weight = 0.5;
        run(
            gpu,
            parts![
                ops::tv_loss(gpu, &image, &d_image, (weight / elements) as f32, &partials),
                ops::reduce(
                    gpu,
                    &partials,
                    ops::flat_partials(h * w),
                    &losses,
                    0,
                    (1.0 / elements) as f32,
                ),
            ],
        );
        let what = format!("tv {h}x{w}");
        let loss: Vec<f32> = read_buffer(gpu, &losses, 4, None).unwrap();
        assert_close(
            &format!("{what} loss"),
            &loss,
            &[reference::tv_loss(&x)],
            1e-6,
            1e-5,
        );
        let grad = reference::tv_loss_grad(&x);
        let expected: Vec<f64> = grad
            .data
            .iter()
            .zip(&previous.data)
            .map(|(g, old)| weight * g + old)
            .collect();
        assert_close(
            &format!("{what} gradient"),
            &d_image.read_chw(gpu).unwrap(),
            &expected,
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn reduce_sums_many_partials() {
    let Some(gpu) = gpu() else { return };
    for count in [1usize, 255, 256, 257, 5000] {
        let values = random_f32(count, count as u64, 1.0);
        let partials = storage_with(gpu, "partials", &values);
        let losses = ops::partials_buffer(gpu, "losses", 3);
        run(
            gpu,
            parts![ops::reduce(gpu, &partials, count as u32, &losses, 2, 0.5)],
        );
        let got: Vec<f32> = read_buffer(gpu, &losses, 12, None).unwrap();
        let expected: f64 = 0.5 * values.iter().map(|&v| f64::from(v)).sum::<f64>();
        assert_close(
            &format!("reduce {count}"),
            &got[2..3],
            &[expected],
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn adam_matches_reference_over_steps() {
    let Some(gpu) = gpu() else { return };
    let (h, w) = (7, 5);
    let x0 = rounded(random_tensor(3, h, w, 800, 50.0));
    let image = upload(gpu, &x0);
    let gradient = GpuTensor::zeros(gpu, "gradient", 3, h, w);
    let adam = AdamState::new(gpu, &image);
    let settings = AdamSettings {
        learning_rate: 2.0,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
    };
    let mut x = x0.data.clone();
    let (mut m, mut v) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    for step in 1..=5u32 {
        // Gradients of varying sign and size, including exact zeros.
        let g = rounded(random_tensor(3, h, w, 900 + u64::from(step), 1e6));
        let mut g = g.data;
        g[3] = 0.0;
        let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
        gradient.write_chw(gpu, &g32);
        let t = f64::from(step);
        let params = AdamParams {
            count: image.len_vec4() as u32,
            row_stride: adam.row_stride,
            learning_rate: 2.0,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            bias_correction1: (1.0 - 0.9f64.powf(t)) as f32,
            bias_correction2: (1.0 - 0.999f64.powf(t)) as f32,
        };
        gpu.queue
            .write_buffer(&adam.params, 0, bytemuck::bytes_of(&params));
        run(gpu, parts![adam.step(gpu, &gradient, &image)]);
        reference::adam_step(&mut x, &mut m, &mut v, &g, step, &settings);
    }
    assert_close(
        "adam after 5 steps",
        &image.read_chw(gpu).unwrap(),
        &x,
        1e-4,
        1e-6,
    );
}
