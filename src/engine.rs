//! The style transfer engine: VGG-16 features, the losses and their gradient,
//! and Adam, all as GPU dispatches recorded once and replayed every iteration.
//!
//! One iteration is one compute pass: the forward pass up to the deepest loss
//! layer, one backward sweep that injects each loss gradient at its layer, and
//! the Adam update of the image. Every buffer is allocated in [`Engine::new`];
//! an iteration only rewrites Adam's 32-byte parameter block and reads nothing
//! back. Losses and the image are read back only on request.
//!
//! Tensors use the packed channel layout of [`crate::gpu::GpuTensor`]. The image
//! being optimised is the preprocessed BGR image of [`crate::preprocess`].

use thiserror::Error;

use crate::gpu::ops::{self, AdamParams, AdamState, GramSplit, PackedConv};
use crate::gpu::{Gpu, GpuError, GpuTensor, KernelTiming, Program};
use crate::settings::{AdamSettings, LossSettings};
use crate::vgg::{self, VGG16_LAYERS};
use crate::weights::Vgg16Weights;

/// Errors found before or while setting up the GPU work.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error(
        "the {what} image is {width}x{height} pixels, too small for layer {layer}: its short \
         side must be at least {min_side} pixels (each of the {pools} max-pools before that \
         layer halves it); use a larger --size or --style-scale, or shallower layers"
    )]
    ImageTooSmall {
        what: &'static str,
        width: usize,
        height: usize,
        layer: &'static str,
        min_side: u32,
        pools: u32,
    },
    #[error(
        "the {what} image at {width}x{height} pixels needs a {needed_mib:.1} MiB buffer for \
         {tensor}, but this adapter allows at most {limit_mib:.1} MiB ({limit_name}); the \
         largest {what} image that fits has a longest side of {largest_side} pixels: lower \
         --size (or --style-scale for the style image) to stay within it"
    )]
    ImageTooLarge {
        what: &'static str,
        width: usize,
        height: usize,
        tensor: String,
        needed_mib: f64,
        limit_mib: f64,
        limit_name: &'static str,
        largest_side: u32,
    },
    #[error("invalid input for the engine: {0}")]
    InvalidInput(String),
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

/// Unweighted loss terms at one point, and the weighted total.
#[derive(Debug, Clone, PartialEq)]
pub struct LossReport {
    /// `sum((F - P)^2) / (C H W)` per content layer, in settings order.
    pub content: Vec<f64>,
    /// `sum((G - A)^2) / (4 C^2 M^2)` per style layer, in settings order.
    pub style: Vec<f64>,
    /// Mean squared difference of neighbouring pixels (0 when the TV weight is 0).
    pub tv: f64,
    /// `content_weight * sum w_l content_l + style_weight * sum s_l style_l + tv_weight * tv`.
    pub total: f64,
}

/// Largest tensor of a run, used to check it against the adapter's limits.
struct LargestTensor {
    bytes: u64,
    description: String,
}

/// Finds the largest buffer a forward and backward pass at this size binds:
/// the activations and their gradients, and the partial Gram matrices.
fn largest_tensor(settings: &LossSettings, height: usize, width: usize) -> LargestTensor {
    let mut largest = LargestTensor {
        bytes: 0,
        description: String::new(),
    };
    for (index, layer) in VGG16_LAYERS
        .iter()
        .enumerate()
        .take(settings.deepest_layer() + 1)
    {
        let (h, w) = vgg::layer_size(index, height as u32, width as u32);
        let (h, w) = (h as usize, w as usize);
        let bytes = GpuTensor::bytes_for(layer.out_channels, h, w);
        if bytes > largest.bytes {
            largest = LargestTensor {
                bytes,
                description: format!(
                    "the {} activations ({} channels x {h} x {w})",
                    layer.name, layer.out_channels
                ),
            };
        }
        if settings.style_layers.contains(&index) {
            // Either Gram kernel may run: check the larger of their partials.
            let bytes = [false, true]
                .map(|tiled| {
                    GramSplit::for_shape(tiled, layer.out_channels, h * w)
                        .partial_bytes(layer.out_channels)
                })
                .into_iter()
                .max()
                .unwrap_or(0);
            if bytes > largest.bytes {
                largest = LargestTensor {
                    bytes,
                    description: format!("the partial Gram matrices of {}", layer.name),
                };
            }
        }
    }
    largest
}

/// Size of an image scaled so that its longest side is `side`, keeping the aspect ratio.
fn scaled(width: usize, height: usize, side: u32) -> (usize, usize) {
    let scale = f64::from(side) / width.max(height) as f64;
    let w = ((width as f64 * scale).round() as usize).max(1);
    let h = ((height as f64 * scale).round() as usize).max(1);
    (w, h)
}

/// Checks that an image of `width` x `height` fits the layers and the adapter.
pub fn check_image_size(
    limits: &wgpu::Limits,
    settings: &LossSettings,
    what: &'static str,
    width: usize,
    height: usize,
) -> Result<(), EngineError> {
    let deepest = settings.deepest_layer();
    let min_side = vgg::min_image_side(deepest);
    if (width.min(height) as u32) < min_side {
        return Err(EngineError::ImageTooSmall {
            what,
            width,
            height,
            layer: VGG16_LAYERS[deepest].name,
            min_side,
            pools: vgg::pools_before(deepest),
        });
    }

    let (limit, limit_name) = if limits.max_storage_buffer_binding_size <= limits.max_buffer_size {
        (
            limits.max_storage_buffer_binding_size,
            "max_storage_buffer_binding_size",
        )
    } else {
        (limits.max_buffer_size, "max_buffer_size")
    };
    let largest = largest_tensor(settings, height, width);
    if largest.bytes <= limit {
        return Ok(());
    }
    // Binary search for the longest side that still fits at this aspect ratio.
    let (mut low, mut high) = (1u32, width.max(height) as u32);
    while low < high {
        let middle = (low + high).div_ceil(2);
        let (w, h) = scaled(width, height, middle);
        if largest_tensor(settings, h, w).bytes <= limit {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    const MIB: f64 = 1024.0 * 1024.0;
    Err(EngineError::ImageTooLarge {
        what,
        width,
        height,
        tensor: largest.description,
        needed_mib: largest.bytes as f64 / MIB,
        limit_mib: limit as f64 / MIB,
        limit_name,
        largest_side: low,
    })
}

/// Forward-pass buffers of one network input.
struct Network {
    /// Post-ReLU output of each layer up to the deepest one used.
    activations: Vec<GpuTensor>,
    /// With the tiled kernels, the texture copy of each activation that the
    /// next convolution reads, for the Gram and style gradient kernels to reuse.
    textures: Vec<Option<wgpu::TextureView>>,
    program: Program,
}

/// Records the forward pass from `input` through layers `0..=deepest`.
fn build_forward(
    gpu: &Gpu,
    convs: &[PackedConv],
    input: &GpuTensor,
    deepest: usize,
    label: &str,
) -> Network {
    let mut program = Program::default();
    let mut activations: Vec<GpuTensor> = Vec::with_capacity(deepest + 1);
    let mut textures: Vec<Option<wgpu::TextureView>> = Vec::with_capacity(deepest + 1);
    for (index, layer) in VGG16_LAYERS.iter().enumerate().take(deepest + 1) {
        let previous = activations.last().unwrap_or(input);
        let layer_input = if layer.pool_before {
            let pooled = GpuTensor::zeros(
                gpu,
                &format!("{label} pool before {}", layer.name),
                previous.channels,
                previous.height / 2,
                previous.width / 2,
            );
            program.push(ops::max_pool(gpu, previous, &pooled));
            pooled
        } else {
            previous.clone()
        };
        let output = GpuTensor::zeros(
            gpu,
            &format!("{label} {} activations", layer.name),
            layer.out_channels,
            layer_input.height,
            layer_input.width,
        );
        if gpu.kernels.tiled.is_some() {
            let (copy, texture) = ops::sample(gpu, &layer_input, None);
            program.push(copy);
            program.push(ops::conv3x3_sampled(
                gpu,
                &convs[index],
                &texture,
                &layer_input,
                &output,
                true,
            ));
            if index > 0 && !layer.pool_before {
                textures[index - 1] = Some(texture);
            }
        } else {
            program.extend(ops::conv3x3(
                gpu,
                &convs[index],
                &layer_input,
                &output,
                true,
                None,
            ));
        }
        activations.push(output);
        textures.push(None);
    }
    Network {
        activations,
        textures,
        program,
    }
}

/// One loss term's slot in the loss buffer and its reduction dispatch.
struct LossSlots {
    content: Vec<usize>,
    style: Vec<usize>,
    tv: Option<usize>,
    count: usize,
}

/// A style transfer problem resident on the GPU.
pub struct Engine<'a> {
    gpu: &'a Gpu,
    settings: LossSettings,
    adam_settings: AdamSettings,
    width: usize,
    height: usize,
    image: GpuTensor,
    d_image: GpuTensor,
    adam: AdamState,
    /// Forward pass, losses and backward sweep: leaves dL/dimage in `d_image`.
    loss_and_gradient: Program,
    adam_step: Program,
    losses: wgpu::Buffer,
    losses_staging: wgpu::Buffer,
    image_staging: wgpu::Buffer,
    slots: LossSlots,
    step: u32,
    /// The previous iteration's submission: [`Engine::step`] waits for it so that
    /// at most two iterations are queued and progress reports stay truthful.
    in_flight: Option<wgpu::SubmissionIndex>,
}

impl<'a> Engine<'a> {
    /// Uploads the weights and both images, computes the content and style targets
    /// and records the iteration. Images are preprocessed `[3][H][W]` BGR arrays
    /// (see [`crate::preprocess`]); `init` has the content's size. The style image
    /// may have another size: its Gram targets are rescaled by the ratio of pixel
    /// counts so that the loss compares Gram matrices per pixel.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &'a Gpu,
        weights: &Vgg16Weights,
        settings: &LossSettings,
        adam_settings: AdamSettings,
        content: &[f32],
        (width, height): (usize, usize),
        style: &[f32],
        (style_width, style_height): (usize, usize),
        init: &[f32],
    ) -> Result<Engine<'a>, EngineError> {
        check_settings(settings)?;
        for (what, data, w, h) in [
            ("content", content, width, height),
            ("initial", init, width, height),
            ("style", style, style_width, style_height),
        ] {
            if data.len() != 3 * w * h {
                return Err(EngineError::InvalidInput(format!(
                    "the {what} image has {} values, expected 3 x {h} x {w}",
                    data.len()
                )));
            }
        }
        check_image_size(&gpu.limits, settings, "content", width, height)?;
        check_image_size(&gpu.limits, settings, "style", style_width, style_height)?;

        let deepest = settings.deepest_layer();
        let mut forward_convs = Vec::with_capacity(deepest + 1);
        let mut backward_convs = Vec::with_capacity(deepest + 1);
        for (index, layer) in VGG16_LAYERS.iter().enumerate().take(deepest + 1) {
            let w = &weights.layers[index];
            forward_convs.push(PackedConv::forward(
                gpu,
                &format!("{} weights", layer.name),
                &w.weight,
                &w.bias,
                layer.in_channels,
                layer.out_channels,
            ));
            backward_convs.push(PackedConv::backward(
                gpu,
                &format!("{} transposed weights", layer.name),
                &w.weight,
                layer.in_channels,
                layer.out_channels,
            ));
        }

        let image = GpuTensor::from_chw(gpu, "image", 3, height, width, content);
        let d_image = GpuTensor::zeros(gpu, "image gradient", 3, height, width);
        let network = build_forward(gpu, &forward_convs, &image, deepest, "image");

        let content_targets = compute_content_targets(gpu, settings, &network)?;
        let style_targets = compute_style_targets(
            gpu,
            &forward_convs,
            settings,
            style,
            style_width,
            style_height,
        )?;
        image.write_chw(gpu, init);

        let slots = LossSlots {
            content: (0..settings.content_layers.len()).collect(),
            style: (0..settings.style_layers.len())
                .map(|i| settings.content_layers.len() + i)
                .collect(),
            tv: (settings.tv_weight > 0.0)
                .then_some(settings.content_layers.len() + settings.style_layers.len()),
            count: settings.content_layers.len() + settings.style_layers.len() + 1,
        };
        let losses = crate::gpu::ops::partials_buffer(gpu, "loss values", slots.count as u32);
        let losses_staging =
            crate::gpu::tensor_staging(gpu, "loss staging", slots.count as u64 * 4);

        let mut loss_and_gradient = Program::default();
        loss_and_gradient.extend(network.program);
        let backward = BackwardBuilder {
            gpu,
            settings,
            network_activations: &network.activations,
            network_textures: &network.textures,
            backward_convs: &backward_convs,
            content_targets: &content_targets,
            style_targets: &style_targets,
            image: &image,
            d_image: &d_image,
            losses: &losses,
            slots: &slots,
            pixels: width * height,
        };
        loss_and_gradient.extend(backward.build());

        let adam = AdamState::new(gpu, &image);
        let mut adam_step = Program::default();
        adam_step.push(adam.step(gpu, &d_image, &image));
        let image_staging = crate::gpu::tensor_staging(gpu, "image staging", image.size_bytes());

        Ok(Engine {
            gpu,
            settings: settings.clone(),
            adam_settings,
            width,
            height,
            image,
            d_image,
            adam,
            loss_and_gradient,
            adam_step,
            losses,
            losses_staging,
            image_staging,
            slots,
            step: 0,
            in_flight: None,
        })
    }

    /// Number of Adam steps taken so far.
    pub fn iteration(&self) -> u32 {
        self.step
    }

    /// (width, height) of the image being optimised.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Floating-point operations of one iteration (convolutions forward and
    /// backward, Gram matrices and their gradients).
    pub fn flops_per_iteration(&self) -> f64 {
        self.loss_and_gradient.flops() + self.adam_step.flops()
    }

    fn write_adam_params(&self, step: u32) {
        let a = &self.adam_settings;
        let t = f64::from(step);
        let params = AdamParams {
            count: self.image.len_vec4() as u32,
            row_stride: self.adam.row_stride,
            learning_rate: a.learning_rate,
            beta1: a.beta1,
            beta2: a.beta2,
            epsilon: a.epsilon,
            bias_correction1: (1.0 - f64::from(a.beta1).powf(t)) as f32,
            bias_correction2: (1.0 - f64::from(a.beta2).powf(t)) as f32,
        };
        self.gpu
            .queue
            .write_buffer(&self.adam.params, 0, bytemuck::bytes_of(&params));
    }

    /// Submits one iteration: losses and gradient at the current image, then one
    /// Adam step. Waits for the previous iteration, not for this one.
    pub fn step(&mut self) {
        if let Some(previous) = self.in_flight.take() {
            // A failed wait means a lost device, which the next readback reports.
            let _ = self.gpu.device.poll(wgpu::PollType::Wait {
                submission_index: Some(previous),
                timeout: None,
            });
        }
        self.step += 1;
        self.write_adam_params(self.step);
        let mut encoder = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("iteration"),
            });
        self.loss_and_gradient
            .record(&mut encoder, "loss and gradient");
        self.adam_step.record(&mut encoder, "adam step");
        self.in_flight = Some(self.gpu.queue.submit([encoder.finish()]));
    }

    /// Losses computed by the latest iteration, at the image before its update.
    pub fn read_losses(&self) -> Result<LossReport, EngineError> {
        let values: Vec<f32> = crate::gpu::read_buffer(
            self.gpu,
            &self.losses,
            self.slots.count as u64 * 4,
            Some(&self.losses_staging),
        )?;
        Ok(self.report(&values))
    }

    fn report(&self, values: &[f32]) -> LossReport {
        let s = &self.settings;
        let content: Vec<f64> = self
            .slots
            .content
            .iter()
            .map(|&i| f64::from(values[i]))
            .collect();
        let style: Vec<f64> = self
            .slots
            .style
            .iter()
            .map(|&i| f64::from(values[i]))
            .collect();
        let tv = self.slots.tv.map_or(0.0, |i| f64::from(values[i]));
        let content_total: f64 = content
            .iter()
            .zip(&s.content_layer_weights)
            .map(|(l, w)| l * f64::from(*w))
            .sum();
        let style_total: f64 = style
            .iter()
            .zip(&s.style_layer_weights)
            .map(|(l, w)| l * f64::from(*w))
            .sum();
        let total = f64::from(s.content_weight) * content_total
            + f64::from(s.style_weight) * style_total
            + f64::from(s.tv_weight) * tv;
        LossReport {
            content,
            style,
            tv,
            total,
        }
    }

    /// Reads back the current image, preprocessed `[3][H][W]` BGR.
    pub fn read_image(&self) -> Result<Vec<f32>, EngineError> {
        let packed: Vec<f32> = crate::gpu::read_buffer(
            self.gpu,
            &self.image.buffer,
            self.image.size_bytes(),
            Some(&self.image_staging),
        )?;
        Ok(crate::gpu::unpack_chw(&packed, 3, self.height, self.width))
    }

    /// Replaces the current image (`[3][H][W]` preprocessed BGR).
    pub fn write_image(&self, chw: &[f32]) {
        self.image.write_chw(self.gpu, chw);
    }

    /// Evaluates the losses and dL/dimage at the current image without stepping.
    pub fn evaluate(&self) -> Result<(LossReport, Vec<f32>), EngineError> {
        self.loss_and_gradient.run(self.gpu, "evaluate");
        let report = self.read_losses()?;
        let gradient = self.d_image.read_chw(self.gpu)?;
        Ok((report, gradient))
    }

    /// Runs one iteration and returns the time per kernel. A CPU adapter is
    /// timed by the host's clock around each dispatch run on its own, other
    /// adapters by timestamp queries ([`Gpu::can_time_kernels`]).
    pub fn time_kernels(&mut self) -> Result<Vec<KernelTiming>, EngineError> {
        self.step += 1;
        self.write_adam_params(self.step);
        if self.gpu.is_software() {
            let mut timings = self.loss_and_gradient.run_host_timed(self.gpu);
            timings.extend(self.adam_step.run_host_timed(self.gpu));
            return Ok(timings);
        }
        let mut timings = self.loss_and_gradient.run_timed(self.gpu)?;
        timings.extend(self.adam_step.run_timed(self.gpu)?);
        Ok(timings)
    }
}

fn check_settings(settings: &LossSettings) -> Result<(), EngineError> {
    let invalid = |message: String| Err(EngineError::InvalidInput(message));
    if settings.content_layers.len() != settings.content_layer_weights.len() {
        return invalid("one content layer weight is needed per content layer".into());
    }
    if settings.style_layers.len() != settings.style_layer_weights.len() {
        return invalid("one style layer weight is needed per style layer".into());
    }
    if settings.content_layers.is_empty() && settings.style_layers.is_empty() {
        return invalid("at least one content or style layer is needed".into());
    }
    if let Some(&bad) = settings
        .content_layers
        .iter()
        .chain(&settings.style_layers)
        .find(|&&l| l >= VGG16_LAYERS.len())
    {
        return invalid(format!("layer index {bad} is out of range"));
    }
    Ok(())
}

/// Runs the forward pass on the content image (already in the image buffer) and
/// copies the activations of each content layer.
fn compute_content_targets(
    gpu: &Gpu,
    settings: &LossSettings,
    network: &Network,
) -> Result<Vec<GpuTensor>, EngineError> {
    let mut encoder = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("content targets"),
        });
    network.program.record(&mut encoder, "content forward");
    let mut targets = Vec::new();
    for &layer in &settings.content_layers {
        let source = &network.activations[layer];
        let target = GpuTensor::zeros(
            gpu,
            &format!("{} content target", VGG16_LAYERS[layer].name),
            source.channels,
            source.height,
            source.width,
        );
        encoder.copy_buffer_to_buffer(&source.buffer, 0, &target.buffer, 0, source.size_bytes());
        targets.push(target);
    }
    gpu.queue.submit([encoder.finish()]);
    Ok(targets)
}

/// A style layer's Gram target, computed at the style image's size.
struct StyleTarget {
    gram: wgpu::Buffer,
    /// Pixels of the style layer's feature map, M_style.
    pixels: f32,
}

/// Runs the forward pass on the style image in its own, temporary buffers and
/// computes the Gram matrix of each style layer.
fn compute_style_targets(
    gpu: &Gpu,
    convs: &[PackedConv],
    settings: &LossSettings,
    style: &[f32],
    width: usize,
    height: usize,
) -> Result<Vec<StyleTarget>, EngineError> {
    let input = GpuTensor::from_chw(gpu, "style image", 3, height, width, style);
    let deepest = settings.style_layers.iter().copied().max();
    let Some(deepest) = deepest else {
        return Ok(Vec::new());
    };
    let network = build_forward(gpu, convs, &input, deepest, "style");
    let mut program = network.program;
    let mut targets = Vec::new();
    let mut copies = Vec::new();
    for &layer in &settings.style_layers {
        let features = &network.activations[layer];
        let channels = features.channels;
        let split = GramSplit::for_gpu(gpu, channels, features.height * features.width);
        let partial =
            crate::gpu::create_storage(gpu, "style partial Gram", split.partial_bytes(channels));
        let gram = crate::gpu::create_storage(
            gpu,
            &format!("{} style Gram target", VGG16_LAYERS[layer].name),
            ops::gram_bytes(channels),
        );
        let sum = crate::gpu::create_storage(gpu, "style Gram sum", ops::gram_bytes(channels));
        let scratch = ops::partials_buffer(
            gpu,
            "unused loss partials",
            (ops::gram_bytes(channels) / 16 / 64 + 1) as u32,
        );
        let texture = network.textures[layer].as_ref();
        program.extend(ops::gram(gpu, features, texture, split, &partial));
        // With target_scale = 0 the style loss kernel only sums the partials.
        let (sum_dispatch, _) =
            ops::style_loss(gpu, channels, split, &partial, &gram, 0.0, &sum, &scratch);
        program.push(sum_dispatch);
        copies.push((sum, ops::gram_bytes(channels)));

        let (h, w) = vgg::layer_size(layer, height as u32, width as u32);
        targets.push(StyleTarget {
            gram,
            pixels: (h * w) as f32,
        });
    }
    let mut encoder = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("style targets"),
        });
    program.record(&mut encoder, "style forward");
    for ((sum, bytes), target) in copies.iter().zip(&targets) {
        encoder.copy_buffer_to_buffer(sum, 0, &target.gram, 0, *bytes);
    }
    gpu.queue.submit([encoder.finish()]);
    gpu.wait_idle();
    Ok(targets)
}

/// Everything the backward sweep needs, gathered to keep its signature short.
struct BackwardBuilder<'b> {
    gpu: &'b Gpu,
    settings: &'b LossSettings,
    network_activations: &'b [GpuTensor],
    network_textures: &'b [Option<wgpu::TextureView>],
    backward_convs: &'b [PackedConv],
    content_targets: &'b [GpuTensor],
    style_targets: &'b [StyleTarget],
    image: &'b GpuTensor,
    d_image: &'b GpuTensor,
    losses: &'b wgpu::Buffer,
    slots: &'b LossSlots,
    pixels: usize,
}

impl BackwardBuilder<'_> {
    /// Records the loss terms and the backward sweep from the deepest layer down
    /// to the image. Gradients of successive layers alternate between two shared
    /// buffers, each as large as the largest gradient.
    fn build(&self) -> Program {
        let gpu = self.gpu;
        let s = self.settings;
        let activations = self.network_activations;
        let deepest = s.deepest_layer();
        let mut program = Program::default();
        let mut reductions = Program::default();

        let largest = activations
            .iter()
            .map(GpuTensor::size_bytes)
            .max()
            .unwrap_or(16);
        let ping_pong = [
            crate::gpu::create_storage(gpu, "gradient buffer A", largest),
            crate::gpu::create_storage(gpu, "gradient buffer B", largest),
        ];
        let mut current = 0;

        for index in (0..=deepest).rev() {
            let layer = &VGG16_LAYERS[index];
            let features = &activations[index];
            let d_features = GpuTensor::view(
                &ping_pong[current],
                features.channels,
                features.height,
                features.width,
            );
            // The deepest layer's gradient starts from its first loss term.
            let mut accumulate = index != deepest;
            let elements = (features.channels * features.height * features.width) as f32;

            for (k, _) in s
                .content_layers
                .iter()
                .enumerate()
                .filter(|(_, &l)| l == index)
            {
                let count = features.len_vec4();
                let partials =
                    ops::partials_buffer(gpu, "content loss partials", ops::flat_partials(count));
                let grad_scale = s.content_weight * s.content_layer_weights[k] * 2.0 / elements;
                program.push(ops::content_loss(
                    gpu,
                    features,
                    &self.content_targets[k],
                    &d_features,
                    grad_scale,
                    accumulate,
                    &partials,
                ));
                accumulate = true;
                reductions.push(ops::reduce(
                    gpu,
                    &partials,
                    ops::flat_partials(count),
                    self.losses,
                    self.slots.content[k] as u32,
                    1.0 / elements,
                ));
            }

            for (k, _) in s
                .style_layers
                .iter()
                .enumerate()
                .filter(|(_, &l)| l == index)
            {
                let channels = features.channels;
                let pixels = features.height * features.width;
                let split = GramSplit::for_gpu(gpu, channels, pixels);
                let partial =
                    crate::gpu::create_storage(gpu, "partial Gram", split.partial_bytes(channels));
                let difference = crate::gpu::create_storage(
                    gpu,
                    &format!("{} Gram difference", layer.name),
                    ops::gram_bytes(channels),
                );
                let partial_count = (ops::gram_bytes(channels) / 16).div_ceil(64) as u32;
                let partials = ops::partials_buffer(gpu, "style loss partials", partial_count);
                let target = &self.style_targets[k];
                let texture = self.network_textures[index].as_ref();
                program.extend(ops::gram(gpu, features, texture, split, &partial));
                // An unnormalised Gram grows with the pixel count: rescale the
                // target from the style image's size to this image's.
                let target_scale = pixels as f32 / target.pixels;
                let (diff_dispatch, _) = ops::style_loss(
                    gpu,
                    channels,
                    split,
                    &partial,
                    &target.gram,
                    target_scale,
                    &difference,
                    &partials,
                );
                program.push(diff_dispatch);
                let c2m2 = (channels as f64).powi(2) * (pixels as f64).powi(2);
                let scale =
                    (f64::from(s.style_weight) * f64::from(s.style_layer_weights[k]) / c2m2) as f32;
                program.extend(ops::style_grad(
                    gpu,
                    &difference,
                    features,
                    texture,
                    &d_features,
                    scale,
                    accumulate,
                ));
                accumulate = true;
                reductions.push(ops::reduce(
                    gpu,
                    &partials,
                    partial_count,
                    self.losses,
                    self.slots.style[k] as u32,
                    (1.0 / (4.0 * c2m2)) as f32,
                ));
            }

            // The ReLU backward is applied by each convolution below, on its input.
            let mask = Some(features);
            let conv = &self.backward_convs[index];
            if index == 0 {
                program.extend(ops::conv3x3(
                    gpu,
                    conv,
                    &d_features,
                    self.d_image,
                    false,
                    mask,
                ));
            } else if layer.pool_before {
                // conv backward into the pooled gradient, then the pool's backward
                // into the previous layer's gradient, which reuses this buffer.
                let previous = &activations[index - 1];
                let other = 1 - current;
                let d_pooled = GpuTensor::view(
                    &ping_pong[other],
                    layer.in_channels,
                    features.height,
                    features.width,
                );
                program.extend(ops::conv3x3(gpu, conv, &d_features, &d_pooled, false, mask));
                let d_previous = GpuTensor::view(
                    &ping_pong[current],
                    previous.channels,
                    previous.height,
                    previous.width,
                );
                program.push(ops::max_pool_backward(
                    gpu,
                    previous,
                    &d_pooled,
                    &d_previous,
                ));
            } else {
                let previous = &activations[index - 1];
                let other = 1 - current;
                let d_previous = GpuTensor::view(
                    &ping_pong[other],
                    previous.channels,
                    previous.height,
                    previous.width,
                );
                program.extend(ops::conv3x3(
                    gpu,
                    conv,
                    &d_features,
                    &d_previous,
                    false,
                    mask,
                ));
                current = other;
            }
        }

        if let Some(slot) = self.slots.tv {
            let count = self.pixels;
            let partials = ops::partials_buffer(gpu, "tv loss partials", ops::flat_partials(count));
            let elements = (3 * self.pixels) as f32;
            program.push(ops::tv_loss(
                gpu,
                self.image,
                self.d_image,
                s.tv_weight / elements,
                &partials,
            ));
            reductions.push(ops::reduce(
                gpu,
                &partials,
                ops::flat_partials(count),
                self.losses,
                slot as u32,
                1.0 / elements,
            ));
        }
        program.extend(reductions);
        program
    }
}
