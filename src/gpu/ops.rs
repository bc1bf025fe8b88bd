//! Builders for every dispatch: each creates the small uniform buffer with the
//! kernel's parameters and the bind group, once, at setup time. The WGSL file
//! of each kernel documents its formula, layouts and dispatch shape.

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use super::context::Gpu;
use super::kernels::Kernel;
use super::program::{Dispatch, Program};
use super::tensor::{create_storage, GpuTensor};
use super::tiled_source::Tile;

/// Invocations per workgroup of every kernel except `reduce`.
pub const WORKGROUP_SIZE: u32 = 64;
/// Output pixels per invocation of `conv3x3` (its `PIXELS`).
pub const CONV_PIXELS: u32 = 4;
/// Output channel groups per invocation of `conv3x3` (its `OUT_BLOCK`).
pub const CONV_OUT_BLOCK: u32 = 4;
/// Channel groups per side of a `gram` tile (its `BLOCK`).
pub const GRAM_BLOCK: u32 = 2;
/// Pixels per invocation of `style_grad` (its `PIXELS`).
pub const STYLE_GRAD_PIXELS: u32 = 4;
/// Output channel groups per invocation of `style_grad` (its `OUT_BLOCK`).
pub const STYLE_GRAD_OUT_BLOCK: u32 = 2;
/// The largest workgroup count WebGPU guarantees per dispatch dimension.
const MAX_WORKGROUPS_PER_DIMENSION: u32 = 65535;

fn uniform<T: Pod>(gpu: &Gpu, label: &str, params: &T) -> wgpu::Buffer {
    gpu.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(params),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
}

fn whole(buffer: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    buffer.as_entire_binding()
}

fn dispatch(
    gpu: &Gpu,
    kernel: &Kernel,
    bindings: &[wgpu::BindingResource<'_>],
    workgroups: [u32; 3],
    flops: f64,
) -> Dispatch {
    Dispatch {
        kernel: kernel.name,
        pipeline: kernel.pipeline.clone(),
        bind_group: kernel.bind(&gpu.device, bindings),
        workgroups,
        flops,
    }
}

/// Workgroups covering `count` invocations of a flat-indexed kernel, and the
/// row stride that turns (gid.x, gid.y) into the flat index gid.y * stride + gid.x.
pub fn flat_workgroups(count: usize) -> ([u32; 3], u32) {
    let groups = (count as u32).div_ceil(WORKGROUP_SIZE).max(1);
    let x = groups.min(MAX_WORKGROUPS_PER_DIMENSION);
    let y = groups.div_ceil(x);
    ([x, y, 1], x * WORKGROUP_SIZE)
}

/// Conv weights packed for `conv3x3`, either for the forward pass or, flipped and
/// transposed, for the input gradient.
pub struct PackedConv {
    pub weights: wgpu::Buffer,
    /// The same weights as a texture for the tiled kernel, where the device has it.
    pub weights_texture: Option<wgpu::TextureView>,
    pub bias: wgpu::Buffer,
    /// Channels the packed kernel reads.
    pub in_channels: usize,
    /// Channels the packed kernel writes.
    pub out_channels: usize,
}

impl PackedConv {
    /// Packs `weight` (`[out][in][3][3]`, cross-correlation) and `bias` (`[out]`)
    /// for the forward convolution.
    pub fn forward(
        gpu: &Gpu,
        label: &str,
        weight: &[f32],
        bias: &[f32],
        in_channels: usize,
        out_channels: usize,
    ) -> PackedConv {
        let packed = pack_conv_weights(weight, in_channels, out_channels, false);
        Self::upload(gpu, label, &packed, bias, in_channels, out_channels)
    }

    /// Packs the same layer for its input gradient: a convolution from
    /// `out_channels` to `in_channels` with `W'[i][o][ky][kx] = W[o][i][2-ky][2-kx]`
    /// and no bias.
    pub fn backward(
        gpu: &Gpu,
        label: &str,
        weight: &[f32],
        in_channels: usize,
        out_channels: usize,
    ) -> PackedConv {
        let packed = pack_conv_weights(weight, in_channels, out_channels, true);
        let zero_bias = vec![0.0; in_channels];
        Self::upload(gpu, label, &packed, &zero_bias, out_channels, in_channels)
    }

    fn upload(
        gpu: &Gpu,
        label: &str,
        packed: &[f32],
        bias: &[f32],
        reads: usize,
        writes: usize,
    ) -> PackedConv {
        let padded_groups = padded_out_groups(writes);
        let mut bias_padded = vec![0.0f32; padded_groups * 4];
        bias_padded[..bias.len()].copy_from_slice(bias);
        let weights = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(packed),
                usage: wgpu::BufferUsages::STORAGE,
            });
        let bias = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(&bias_padded),
                usage: wgpu::BufferUsages::STORAGE,
            });
        // Row o of the texture is output group o: in_groups * 9 matrices of four
        // columns, in the order of the packed buffer.
        let weights_texture = gpu.kernels.tiled.as_ref().map(|_| {
            let texture = gpu.device.create_texture_with_data(
                &gpu.queue,
                &wgpu::TextureDescriptor {
                    label: Some(label),
                    size: wgpu::Extent3d {
                        width: (reads.div_ceil(4) * 36) as u32,
                        height: padded_groups as u32,
                        depth_or_array_layers: 1,
                    },
                    mip_level_count: 1,
                    sample_count: 1,
                    dimension: wgpu::TextureDimension::D2,
                    format: wgpu::TextureFormat::Rgba32Float,
                    usage: wgpu::TextureUsages::TEXTURE_BINDING,
                    view_formats: &[],
                },
                wgpu::util::TextureDataOrder::LayerMajor,
                bytemuck::cast_slice(packed),
            );
            array_view(&texture)
        });
        PackedConv {
            weights,
            weights_texture,
            bias,
            in_channels: reads,
            out_channels: writes,
        }
    }
}

fn padded_out_groups(channels: usize) -> usize {
    channels.div_ceil(4).div_ceil(CONV_OUT_BLOCK as usize) * CONV_OUT_BLOCK as usize
}

/// Packs OIHW conv weights into the `[out_groups][in_groups][9]` mat4x4 layout of
/// `conv3x3` (column k = input channel 4i + k, row r = output channel 4o + r).
/// With `transpose_flip` the packed kernel is the layer's transpose (for the
/// input gradient): it reads `out_channels` and writes `in_channels`.
pub fn pack_conv_weights(
    weight: &[f32],
    in_channels: usize,
    out_channels: usize,
    transpose_flip: bool,
) -> Vec<f32> {
    assert_eq!(
        weight.len(),
        out_channels * in_channels * 9,
        "conv weights do not match their shape"
    );
    let (reads, writes) = if transpose_flip {
        (out_channels, in_channels)
    } else {
        (in_channels, out_channels)
    };
    let in_groups = reads.div_ceil(4);
    let out_groups = padded_out_groups(writes);
    let mut packed = vec![0.0f32; out_groups * in_groups * 9 * 16];
    for o in 0..writes {
        for i in 0..reads {
            for tap in 0..9 {
                let (ky, kx) = (tap / 3, tap % 3);
                let value = if transpose_flip {
                    weight[((i * in_channels + o) * 3 + (2 - ky)) * 3 + (2 - kx)]
                } else {
                    weight[((o * in_channels + i) * 3 + ky) * 3 + kx]
                };
                let matrix = ((o / 4) * in_groups + i / 4) * 9 + tap;
                packed[matrix * 16 + (i % 4) * 4 + o % 4] = value;
            }
        }
    }
    packed
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ConvParams {
    in_groups: u32,
    out_groups: u32,
    height: u32,
    width: u32,
    tiles_per_row: u32,
    apply_relu: u32,
}

/// `output = conv(input)` (+ bias, then ReLU when `relu`). With `relu_mask`
/// the input is first multiplied by `relu_mask > 0`, the ReLU backward of the
/// gradient `input` (`input` itself is left as it is with the tiled kernels).
///
/// With the tiled kernels this is two dispatches: the input's copy into a
/// texture (see [`sample`]), then [`conv3x3_sampled`].
pub fn conv3x3(
    gpu: &Gpu,
    conv: &PackedConv,
    input: &GpuTensor,
    output: &GpuTensor,
    relu: bool,
    relu_mask: Option<&GpuTensor>,
) -> Program {
    if gpu.kernels.tiled.is_some() {
        let (copy, texture) = sample(gpu, input, relu_mask);
        let mut program = Program::from(copy);
        program.push(conv3x3_sampled(gpu, conv, &texture, input, output, relu));
        return program;
    }
    let mut program = Program::default();
    if let Some(mask) = relu_mask {
        program.push(relu_backward(gpu, mask, input));
    }
    assert_eq!(input.channels, conv.in_channels);
    assert_eq!(output.channels, conv.out_channels);
    assert_eq!((input.height, input.width), (output.height, output.width));
    let tiles_per_row = (output.width as u32).div_ceil(CONV_PIXELS);
    let params = ConvParams {
        in_groups: input.groups() as u32,
        out_groups: output.groups() as u32,
        height: output.height as u32,
        width: output.width as u32,
        tiles_per_row,
        apply_relu: relu as u32,
    };
    let params = uniform(gpu, "conv3x3 params", &params);
    let tiles = tiles_per_row * output.height as u32;
    let workgroups = [
        tiles.div_ceil(WORKGROUP_SIZE),
        (output.groups() as u32).div_ceil(CONV_OUT_BLOCK),
        1,
    ];
    let kernel = &gpu.kernels.conv3x3;
    let bindings = [
        whole(&params),
        input.binding(),
        whole(&conv.weights),
        whole(&conv.bias),
        output.binding(),
    ];
    program.push(dispatch(
        gpu,
        kernel,
        &bindings,
        workgroups,
        conv_flops(conv, output),
    ));
    program
}

fn conv_flops(conv: &PackedConv, output: &GpuTensor) -> f64 {
    2.0 * 9.0 * (conv.in_channels * conv.out_channels * output.height * output.width) as f64
}

/// `output = conv(input)` with the tiled kernel, reading `input` from `texture`,
/// its copy made by [`sample`]. Needs the tiled kernels.
pub fn conv3x3_sampled(
    gpu: &Gpu,
    conv: &PackedConv,
    texture: &wgpu::TextureView,
    input: &GpuTensor,
    output: &GpuTensor,
    relu: bool,
) -> Dispatch {
    assert_eq!(input.channels, conv.in_channels);
    assert_eq!(output.channels, conv.out_channels);
    assert_eq!((input.height, input.width), (output.height, output.width));
    let tiled = gpu.kernels.tiled.as_ref().expect("the tiled kernels");
    let weights = conv
        .weights_texture
        .as_ref()
        .expect("weights packed with the tiled kernels");
    assert_eq!(
        CONV_OUT_BLOCK % tiled.tile.out_block,
        0,
        "weight rows are padded for CONV_OUT_BLOCK"
    );
    let shape = TiledShape {
        in_groups: input.groups(),
        out_groups: output.groups(),
        relu,
        accumulate: false,
        scale: 1.0,
    };
    tiled_dispatch(
        gpu,
        &tiled.conv3x3,
        tiled.tile,
        shape,
        [texture, weights],
        &conv.bias,
        output,
        conv_flops(conv, output),
    )
}

/// Creates a texture copy of `tensor` for the tiled kernels, multiplied by
/// `relu_mask > 0` when given, and returns the copy's dispatch and the texture.
pub fn sample(
    gpu: &Gpu,
    tensor: &GpuTensor,
    relu_mask: Option<&GpuTensor>,
) -> (Dispatch, wgpu::TextureView) {
    let texture = texture_array(
        gpu,
        "tensor texture",
        tensor.groups(),
        tensor.height,
        tensor.width,
    );
    let shape = (tensor.groups(), tensor.height, tensor.width);
    if let Some(mask) = relu_mask {
        assert_eq!(mask.len_vec4(), tensor.len_vec4());
    }
    let copy = copy_to_texture(
        gpu,
        tensor.binding(),
        relu_mask.map(GpuTensor::binding),
        shape,
        &texture,
    );
    (copy, texture)
}

/// Returns `texture`, a current copy of `tensor`, or else a new copy whose
/// dispatch is appended to `program`.
fn texture_or_copy(
    gpu: &Gpu,
    tensor: &GpuTensor,
    texture: Option<&wgpu::TextureView>,
    program: &mut Program,
) -> wgpu::TextureView {
    if let Some(texture) = texture {
        return texture.clone();
    }
    let (copy, texture) = sample(gpu, tensor, None);
    program.push(copy);
    texture
}

/// Creates a 2D-array view of `texture`, the view type every texture binding uses.
fn array_view(texture: &wgpu::Texture) -> wgpu::TextureView {
    texture.create_view(&wgpu::TextureViewDescriptor {
        dimension: Some(wgpu::TextureViewDimension::D2Array),
        ..Default::default()
    })
}

/// Creates an rgba32float texture array with `layers` layers of `height` x `width`
/// texels that kernels can write and read.
fn texture_array(
    gpu: &Gpu,
    label: &str,
    layers: usize,
    height: usize,
    width: usize,
) -> wgpu::TextureView {
    let texture = gpu.device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width: width as u32,
            height: height as u32,
            depth_or_array_layers: layers as u32,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Float,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::STORAGE_BINDING,
        view_formats: &[],
    });
    array_view(&texture)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ToTextureParams {
    width: u32,
    height: u32,
    count: u32,
    row_stride: u32,
    use_mask: u32,
    _pad: [u32; 3],
}

/// Copies the packed vec4 array `source` of `layers x height x width` elements
/// into `destination`, a texture array of that shape, multiplied by `mask > 0`
/// when given.
fn copy_to_texture(
    gpu: &Gpu,
    source: wgpu::BindingResource<'_>,
    mask: Option<wgpu::BindingResource<'_>>,
    (layers, height, width): (usize, usize, usize),
    destination: &wgpu::TextureView,
) -> Dispatch {
    let tiled = gpu
        .kernels
        .tiled
        .as_ref()
        .expect("texture copies need the tiled kernels");
    let count = layers * height * width;
    let (workgroups, row_stride) = flat_workgroups(count);
    let params = ToTextureParams {
        width: width as u32,
        height: height as u32,
        count: count as u32,
        row_stride,
        use_mask: mask.is_some() as u32,
        _pad: [0; 3],
    };
    let params = uniform(gpu, "to_texture params", &params);
    // Without a mask the source is bound in its place; the kernel does not read it.
    let mask = mask.unwrap_or_else(|| source.clone());
    let bindings = [
        whole(&params),
        source,
        wgpu::BindingResource::TextureView(destination),
        mask,
    ];
    dispatch(gpu, &tiled.to_texture, &bindings, workgroups, 0.0)
}

/// Channel counts and epilogue of one tiled dispatch (see `tiled_source`).
#[derive(Clone, Copy)]
struct TiledShape {
    in_groups: usize,
    out_groups: usize,
    relu: bool,
    accumulate: bool,
    scale: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct TiledParams {
    in_groups: u32,
    out_groups: u32,
    height: u32,
    width: u32,
    tiles_per_row: u32,
    row_tiles: u32,
    apply_relu: u32,
    accumulate: u32,
    scale: f32,
    _pad: [u32; 3],
}

/// Builds one dispatch of a generated tiled kernel that writes `output` from
/// `textures`, the input and the weights.
#[allow(clippy::too_many_arguments)]
fn tiled_dispatch(
    gpu: &Gpu,
    kernel: &Kernel,
    tile: Tile,
    shape: TiledShape,
    textures: [&wgpu::TextureView; 2],
    bias: &wgpu::Buffer,
    output: &GpuTensor,
    flops: f64,
) -> Dispatch {
    let tiles_per_row = (output.width as u32).div_ceil(tile.pixels);
    let row_tiles = (output.height as u32).div_ceil(tile.rows);
    let params = TiledParams {
        in_groups: shape.in_groups as u32,
        out_groups: shape.out_groups as u32,
        height: output.height as u32,
        width: output.width as u32,
        tiles_per_row,
        row_tiles,
        apply_relu: shape.relu as u32,
        accumulate: shape.accumulate as u32,
        scale: shape.scale,
        _pad: [0; 3],
    };
    let params = uniform(gpu, kernel.name, &params);
    let workgroups = [
        (tiles_per_row * row_tiles).div_ceil(tile.workgroup_size),
        (shape.out_groups as u32).div_ceil(tile.out_block),
        1,
    ];
    let bindings = [
        whole(&params),
        wgpu::BindingResource::TextureView(textures[0]),
        wgpu::BindingResource::TextureView(textures[1]),
        whole(bias),
        output.binding(),
    ];
    dispatch(gpu, kernel, &bindings, workgroups, flops)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PoolParams {
    groups: u32,
    in_height: u32,
    in_width: u32,
    row_stride: u32,
}

/// `output = max_pool_2x2(input)`.
pub fn max_pool(gpu: &Gpu, input: &GpuTensor, output: &GpuTensor) -> Dispatch {
    assert_eq!(input.channels, output.channels);
    assert_eq!(
        (input.height / 2, input.width / 2),
        (output.height, output.width)
    );
    let (workgroups, row_stride) = flat_workgroups(output.len_vec4());
    let params = PoolParams {
        groups: input.groups() as u32,
        in_height: input.height as u32,
        in_width: input.width as u32,
        row_stride,
    };
    let params = uniform(gpu, "max_pool params", &params);
    let bindings = [whole(&params), input.binding(), output.binding()];
    dispatch(gpu, &gpu.kernels.max_pool, &bindings, workgroups, 0.0)
}

/// `d_input = gradient of max_pool_2x2 at input, given d_output`.
pub fn max_pool_backward(
    gpu: &Gpu,
    input: &GpuTensor,
    d_output: &GpuTensor,
    d_input: &GpuTensor,
) -> Dispatch {
    assert_eq!(
        (input.channels, input.height, input.width),
        (d_input.channels, d_input.height, d_input.width)
    );
    assert_eq!(
        (input.height / 2, input.width / 2),
        (d_output.height, d_output.width)
    );
    let windows = input.groups() * input.height.div_ceil(2) * input.width.div_ceil(2);
    let (workgroups, row_stride) = flat_workgroups(windows);
    let params = PoolParams {
        groups: input.groups() as u32,
        in_height: input.height as u32,
        in_width: input.width as u32,
        row_stride,
    };
    let params = uniform(gpu, "max_pool_backward params", &params);
    let bindings = [
        whole(&params),
        input.binding(),
        d_output.binding(),
        d_input.binding(),
    ];
    dispatch(
        gpu,
        &gpu.kernels.max_pool_backward,
        &bindings,
        workgroups,
        0.0,
    )
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct FlatParams {
    count: u32,
    row_stride: u32,
}

/// `gradient *= (activation > 0)`, in place.
pub fn relu_backward(gpu: &Gpu, activation: &GpuTensor, gradient: &GpuTensor) -> Dispatch {
    assert_eq!(activation.len_vec4(), gradient.len_vec4());
    let (workgroups, row_stride) = flat_workgroups(gradient.len_vec4());
    let params = FlatParams {
        count: gradient.len_vec4() as u32,
        row_stride,
    };
    let params = uniform(gpu, "relu_backward params", &params);
    let bindings = [whole(&params), activation.binding(), gradient.binding()];
    dispatch(gpu, &gpu.kernels.relu_backward, &bindings, workgroups, 0.0)
}

/// Split of the pixel reduction of one feature map across `gram` invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GramSplit {
    pub splits: u32,
    pub pixels_per_split: u32,
}

impl GramSplit {
    /// Returns the split for the Gram kernel that `gpu` uses.
    pub fn for_gpu(gpu: &Gpu, channels: usize, pixels: usize) -> GramSplit {
        Self::for_shape(gpu.kernels.tiled.is_some(), channels, pixels)
    }

    /// Returns the split for `gram_subgroup` when `tiled`, else for `gram`.
    ///
    /// `gram` runs one invocation per 2x2 block of channel groups: enough splits
    /// to give a wide GPU about 16k invocations, with at least 64 pixels per
    /// split so that each invocation still amortises its stores.
    ///
    /// `gram_subgroup` runs one invocation per 4 row groups x 2 column groups.
    /// Every split adds a partial matrix that `style_loss` must sum, so this
    /// split aims at about 1k invocations and at least 512 pixels per split.
    // TODO: measure the split on hardware GPUs, which want more invocations.
    pub fn for_shape(tiled: bool, channels: usize, pixels: usize) -> GramSplit {
        let groups = channels.div_ceil(4) as u32;
        let (tiles, target, min_pixels) = if tiled {
            (groups.div_ceil(2) * groups.div_ceil(4), 1024u32, 512u32)
        } else {
            let blocks = groups.div_ceil(GRAM_BLOCK);
            (blocks * blocks, 16384, 64)
        };
        // Sizes past u32 are rejected by the size checks that call this; saturate
        // instead of wrapping so that they get that far.
        let pixels = u32::try_from(pixels).unwrap_or(u32::MAX).max(1);
        let target_splits = target.div_ceil(tiles);
        let max_splits = pixels.div_ceil(min_pixels).max(1);
        let splits = target_splits.clamp(1, max_splits);
        let pixels_per_split = pixels.div_ceil(splits);
        // Recompute so that no split is empty.
        let splits = pixels.div_ceil(pixels_per_split).max(1);
        GramSplit {
            splits,
            pixels_per_split,
        }
    }

    /// Bytes of the partial Gram buffer for a C-channel feature map.
    pub fn partial_bytes(&self, channels: usize) -> u64 {
        let groups = channels.div_ceil(4) as u64;
        u64::from(self.splits) * 4 * groups * groups * 16
    }
}

/// Bytes of one Gram matrix (or difference) of a C-channel feature map in the
/// `[4 * groups][groups]` vec4 layout.
pub fn gram_bytes(channels: usize) -> u64 {
    let groups = channels.div_ceil(4) as u64;
    4 * groups * groups * 16
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GramParams {
    groups: u32,
    pixels: u32,
    pixels_per_split: u32,
    blocks_per_side: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GramSubgroupParams {
    groups: u32,
    pixels: u32,
    pixels_per_split: u32,
    width: u32,
}

/// Partial Gram matrices of `features` into `partial` (see [`GramSplit`]). The
/// tiled kernel reads `texture`, a current copy of `features` from [`sample`],
/// or makes its own copy when it is `None`.
pub fn gram(
    gpu: &Gpu,
    features: &GpuTensor,
    texture: Option<&wgpu::TextureView>,
    split: GramSplit,
    partial: &wgpu::Buffer,
) -> Program {
    let pixels = features.height * features.width;
    assert!(partial.size() >= split.partial_bytes(features.channels));
    let flops = 2.0 * (features.channels * features.channels * pixels) as f64;
    let groups = features.groups() as u32;
    if let Some(tiled) = &gpu.kernels.tiled {
        let mut program = Program::default();
        let texture = texture_or_copy(gpu, features, texture, &mut program);
        let params = GramSubgroupParams {
            groups,
            pixels: pixels as u32,
            pixels_per_split: split.pixels_per_split,
            width: features.width as u32,
        };
        let params = uniform(gpu, "gram_subgroup params", &params);
        let workgroups = [
            groups.div_ceil(2).div_ceil(tiled.tile.workgroup_size),
            groups.div_ceil(4),
            split.splits,
        ];
        let bindings = [
            whole(&params),
            wgpu::BindingResource::TextureView(&texture),
            whole(partial),
        ];
        program.push(dispatch(gpu, &tiled.gram, &bindings, workgroups, flops));
        return program;
    }
    let blocks_per_side = groups.div_ceil(GRAM_BLOCK);
    let params = GramParams {
        groups,
        pixels: pixels as u32,
        pixels_per_split: split.pixels_per_split,
        blocks_per_side,
    };
    let params = uniform(gpu, "gram params", &params);
    let workgroups = [
        (blocks_per_side * blocks_per_side).div_ceil(WORKGROUP_SIZE),
        split.splits,
        1,
    ];
    let bindings = [whole(&params), features.binding(), whole(partial)];
    dispatch(gpu, &gpu.kernels.gram, &bindings, workgroups, flops).into()
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct StyleLossParams {
    count: u32,
    splits: u32,
    target_scale: f32,
    _pad: u32,
}

/// `difference = sum of the partial Grams - target_scale * target`, with the sum
/// of squares per workgroup in `loss_partials`. Returns the dispatch and the
/// number of partial sums it writes.
#[allow(clippy::too_many_arguments)]
pub fn style_loss(
    gpu: &Gpu,
    channels: usize,
    split: GramSplit,
    partial: &wgpu::Buffer,
    target: &wgpu::Buffer,
    target_scale: f32,
    difference: &wgpu::Buffer,
    loss_partials: &wgpu::Buffer,
) -> (Dispatch, u32) {
    let count = (gram_bytes(channels) / 16) as u32;
    let workgroups = count.div_ceil(WORKGROUP_SIZE);
    assert!(loss_partials.size() >= u64::from(workgroups) * 4);
    let params = StyleLossParams {
        count,
        splits: split.splits,
        target_scale,
        _pad: 0,
    };
    let params = uniform(gpu, "style_loss params", &params);
    let bindings = [
        whole(&params),
        whole(partial),
        whole(target),
        whole(difference),
        whole(loss_partials),
    ];
    let d = dispatch(
        gpu,
        &gpu.kernels.style_loss,
        &bindings,
        [workgroups, 1, 1],
        0.0,
    );
    (d, workgroups)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct StyleGradParams {
    groups: u32,
    pixels: u32,
    scale: f32,
    accumulate: u32,
}

/// `d_features (+)= scale * D F` for the Gram difference D. The tiled kernel
/// reads D from a texture copy and F from `texture`, a current copy of
/// `features` from [`sample`], or from its own copy when it is `None`.
#[allow(clippy::too_many_arguments)]
pub fn style_grad(
    gpu: &Gpu,
    difference: &wgpu::Buffer,
    features: &GpuTensor,
    texture: Option<&wgpu::TextureView>,
    d_features: &GpuTensor,
    scale: f32,
    accumulate: bool,
) -> Program {
    assert_eq!(features.len_vec4(), d_features.len_vec4());
    let pixels = features.height * features.width;
    let flops = 2.0 * (features.channels * features.channels * pixels) as f64;
    let groups = features.groups();
    if let Some(tiled) = &gpu.kernels.tiled {
        // D is one layer of 4 * groups rows of `groups` vec4.
        let d_shape = (1, 4 * groups, groups);
        let d_texture = texture_array(gpu, "Gram difference texture", 1, 4 * groups, groups);
        let zero_bias = create_storage(gpu, "zero bias", (groups * 16) as u64);
        let mut program = Program::from(copy_to_texture(
            gpu,
            whole(difference),
            None,
            d_shape,
            &d_texture,
        ));
        let f_texture = texture_or_copy(gpu, features, texture, &mut program);
        let shape = TiledShape {
            in_groups: groups,
            out_groups: groups,
            relu: false,
            accumulate,
            scale,
        };
        program.push(tiled_dispatch(
            gpu,
            &tiled.pointwise,
            tiled.pointwise_tile,
            shape,
            [&f_texture, &d_texture],
            &zero_bias,
            d_features,
            flops,
        ));
        return program;
    }
    let params = StyleGradParams {
        groups: groups as u32,
        pixels: pixels as u32,
        scale,
        accumulate: accumulate as u32,
    };
    let params = uniform(gpu, "style_grad params", &params);
    let workgroups = [
        (pixels as u32)
            .div_ceil(STYLE_GRAD_PIXELS)
            .div_ceil(WORKGROUP_SIZE),
        (groups as u32).div_ceil(STYLE_GRAD_OUT_BLOCK),
        1,
    ];
    let bindings = [
        whole(&params),
        whole(difference),
        features.binding(),
        d_features.binding(),
    ];
    dispatch(gpu, &gpu.kernels.style_grad, &bindings, workgroups, flops).into()
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ContentLossParams {
    count: u32,
    row_stride: u32,
    grad_scale: f32,
    accumulate: u32,
}

/// Number of partial sums a flat-indexed loss kernel writes for `count` invocations.
pub fn flat_partials(count: usize) -> u32 {
    let ([x, y, _], _) = flat_workgroups(count);
    x * y
}

/// `d_features (+)= grad_scale * (features - target)`, with the sum of squared
/// differences per workgroup in `loss_partials`.
pub fn content_loss(
    gpu: &Gpu,
    features: &GpuTensor,
    target: &GpuTensor,
    d_features: &GpuTensor,
    grad_scale: f32,
    accumulate: bool,
    loss_partials: &wgpu::Buffer,
) -> Dispatch {
    assert_eq!(features.len_vec4(), target.len_vec4());
    assert_eq!(features.len_vec4(), d_features.len_vec4());
    let count = features.len_vec4();
    assert!(loss_partials.size() >= u64::from(flat_partials(count)) * 4);
    let (workgroups, row_stride) = flat_workgroups(count);
    let params = ContentLossParams {
        count: count as u32,
        row_stride,
        grad_scale,
        accumulate: accumulate as u32,
    };
    let params = uniform(gpu, "content_loss params", &params);
    let bindings = [
        whole(&params),
        features.binding(),
        target.binding(),
        d_features.binding(),
        whole(loss_partials),
    ];
    dispatch(gpu, &gpu.kernels.content_loss, &bindings, workgroups, 0.0)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct TvParams {
    height: u32,
    width: u32,
    row_stride: u32,
    grad_scale: f32,
}

/// `d_image += grad_scale * dTV/dimage`, with TV partial sums in `loss_partials`.
pub fn tv_loss(
    gpu: &Gpu,
    image: &GpuTensor,
    d_image: &GpuTensor,
    grad_scale: f32,
    loss_partials: &wgpu::Buffer,
) -> Dispatch {
    assert_eq!(
        image.groups(),
        1,
        "total variation runs on a 3- or 4-channel image"
    );
    let count = image.height * image.width;
    assert!(loss_partials.size() >= u64::from(flat_partials(count)) * 4);
    let (workgroups, row_stride) = flat_workgroups(count);
    let params = TvParams {
        height: image.height as u32,
        width: image.width as u32,
        row_stride,
        grad_scale,
    };
    let params = uniform(gpu, "tv_loss params", &params);
    let bindings = [
        whole(&params),
        image.binding(),
        d_image.binding(),
        whole(loss_partials),
    ];
    dispatch(gpu, &gpu.kernels.tv_loss, &bindings, workgroups, 0.0)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceParams {
    offset: u32,
    count: u32,
    slot: u32,
    scale: f32,
}

/// `losses[slot] = scale * sum(partials[..count])`.
pub fn reduce(
    gpu: &Gpu,
    partials: &wgpu::Buffer,
    count: u32,
    losses: &wgpu::Buffer,
    slot: u32,
    scale: f32,
) -> Dispatch {
    let params = ReduceParams {
        offset: 0,
        count,
        slot,
        scale,
    };
    let params = uniform(gpu, "reduce params", &params);
    let bindings = [whole(&params), whole(partials), whole(losses)];
    dispatch(gpu, &gpu.kernels.reduce, &bindings, [1, 1, 1], 0.0)
}

/// Adam parameters as the `adam` kernel reads them; the host rewrites them
/// before every step because the bias corrections change with the step.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct AdamParams {
    pub count: u32,
    pub row_stride: u32,
    pub learning_rate: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    pub bias_correction1: f32,
    pub bias_correction2: f32,
}

/// The Adam state of one image: first and second moments.
pub struct AdamState {
    pub params: wgpu::Buffer,
    pub moment1: GpuTensor,
    pub moment2: GpuTensor,
    pub row_stride: u32,
    workgroups: [u32; 3],
}

impl AdamState {
    pub fn new(gpu: &Gpu, image: &GpuTensor) -> AdamState {
        let (workgroups, row_stride) = flat_workgroups(image.len_vec4());
        let params = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("adam params"),
            size: std::mem::size_of::<AdamParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        AdamState {
            params,
            moment1: GpuTensor::zeros(
                gpu,
                "adam moment1",
                image.channels,
                image.height,
                image.width,
            ),
            moment2: GpuTensor::zeros(
                gpu,
                "adam moment2",
                image.channels,
                image.height,
                image.width,
            ),
            row_stride,
            workgroups,
        }
    }

    /// Builds the dispatch that applies one step to `image` with `gradient`.
    pub fn step(&self, gpu: &Gpu, gradient: &GpuTensor, image: &GpuTensor) -> Dispatch {
        let bindings = [
            whole(&self.params),
            gradient.binding(),
            image.binding(),
            self.moment1.binding(),
            self.moment2.binding(),
        ];
        dispatch(gpu, &gpu.kernels.adam, &bindings, self.workgroups, 0.0)
    }
}

/// Allocates a buffer for per-workgroup loss partial sums.
pub fn partials_buffer(gpu: &Gpu, label: &str, count: u32) -> wgpu::Buffer {
    create_storage(gpu, label, u64::from(count) * 4)
}
