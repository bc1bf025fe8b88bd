// 3x3 convolution, zero padding 1, stride 1, as a cross-correlation:
//   output[o, y, x] = bias[o] + sum_{i, ky, kx} W[o, i, ky, kx] * input[i, y + ky - 1, x + kx - 1]
// optionally followed by ReLU. The same kernel computes the input gradient of a
// convolution (its transpose) when the host packs the weights flipped and with
// input and output channels swapped, passes zero biases and turns ReLU off.
//
// Layouts (channels packed four to a vec4, "groups"):
//   input   [in_groups][height][width]  vec4, channel 4g + k in component k
//   output  [out_groups][height][width] vec4
//   weights [out_groups_padded][in_groups][9] mat4x4, tap = ky * 3 + kx;
//           column k of a matrix holds the weights from input channel 4i + k to
//           the four output channels 4o .. 4o + 3, so `w * x` sums over four inputs.
//           out_groups_padded is a multiple of OUT_BLOCK; padding matrices are zero.
//   bias    [out_groups_padded] vec4
//
// Dispatch: workgroup_size(64, 1, 1); global x = one tile of PIXELS consecutive
// output pixels of one row (tiles_per_row * height tiles), global y = one block
// of OUT_BLOCK output groups. Every invocation of a workgroup shares the same
// weights, and each input vector it loads feeds 4 * OUT_BLOCK * 3 multiply-adds.

const PIXELS: u32 = 4u;
const OUT_BLOCK: u32 = 4u;

struct Params {
    in_groups: u32,
    out_groups: u32,
    height: u32,
    width: u32,
    tiles_per_row: u32,
    apply_relu: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> weights: array<mat4x4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> output: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let tile = gid.x;
    if tile >= params.tiles_per_row * params.height {
        return;
    }
    let y = tile / params.tiles_per_row;
    let x0 = (tile % params.tiles_per_row) * PIXELS;
    // From the workgroup id, not gid.y, so that the compiler can prove the weight
    // addresses uniform across the workgroup and load each weight once.
    let first_group = wid.y * OUT_BLOCK;
    let plane = params.height * params.width;

    // Accumulators a{b}{p}: output group first_group + b, pixel x0 + p. They are
    // separate variables, not an array, so that the compiler keeps them in registers.
    var a00 = vec4<f32>(0.0);
    var a01 = vec4<f32>(0.0);
    var a02 = vec4<f32>(0.0);
    var a03 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0);
    var a11 = vec4<f32>(0.0);
    var a12 = vec4<f32>(0.0);
    var a13 = vec4<f32>(0.0);
    var a20 = vec4<f32>(0.0);
    var a21 = vec4<f32>(0.0);
    var a22 = vec4<f32>(0.0);
    var a23 = vec4<f32>(0.0);
    var a30 = vec4<f32>(0.0);
    var a31 = vec4<f32>(0.0);
    var a32 = vec4<f32>(0.0);
    var a33 = vec4<f32>(0.0);
    // Matrices between consecutive output groups in the weight array.
    let group_stride = params.in_groups * 9u;
    for (var i = 0u; i < params.in_groups; i++) {
        for (var ky = 0u; ky < 3u; ky++) {
            // Input columns x0 - 1 .. x0 + 4 of row y + ky - 1, zero outside the
            // image. Rows are masked rather than skipped: a per-invocation branch
            // around the loads would make the weight addresses below look
            // non-uniform to the compiler, and each weight load would become a gather.
            let iy = i32(y + ky) - 1;
            let row_inside = iy >= 0 && iy < i32(params.height);
            let row = i * plane + u32(clamp(iy, 0, i32(params.height) - 1)) * params.width;
            let r0 = load_input(row, i32(x0) - 1, row_inside);
            let r1 = load_input(row, i32(x0), row_inside);
            let r2 = load_input(row, i32(x0) + 1, row_inside);
            let r3 = load_input(row, i32(x0) + 2, row_inside);
            let r4 = load_input(row, i32(x0) + 3, row_inside);
            let r5 = load_input(row, i32(x0) + 4, row_inside);
            // w{b}{kx}: tap (ky, kx) of output group first_group + b.
            let tap = (first_group * params.in_groups + i) * 9u + ky * 3u;
            let w00 = weights[tap + 0u * group_stride];
            let w01 = weights[tap + 0u * group_stride + 1u];
            let w02 = weights[tap + 0u * group_stride + 2u];
            a00 += w00 * r0 + w01 * r1 + w02 * r2;
            a01 += w00 * r1 + w01 * r2 + w02 * r3;
            a02 += w00 * r2 + w01 * r3 + w02 * r4;
            a03 += w00 * r3 + w01 * r4 + w02 * r5;
            let w10 = weights[tap + 1u * group_stride];
            let w11 = weights[tap + 1u * group_stride + 1u];
            let w12 = weights[tap + 1u * group_stride + 2u];
            a10 += w10 * r0 + w11 * r1 + w12 * r2;
            a11 += w10 * r1 + w11 * r2 + w12 * r3;
            a12 += w10 * r2 + w11 * r3 + w12 * r4;
            a13 += w10 * r3 + w11 * r4 + w12 * r5;
            let w20 = weights[tap + 2u * group_stride];
            let w21 = weights[tap + 2u * group_stride + 1u];
            let w22 = weights[tap + 2u * group_stride + 2u];
            a20 += w20 * r0 + w21 * r1 + w22 * r2;
            a21 += w20 * r1 + w21 * r2 + w22 * r3;
            a22 += w20 * r2 + w21 * r3 + w22 * r4;
            a23 += w20 * r3 + w21 * r4 + w22 * r5;
            let w30 = weights[tap + 3u * group_stride];
            let w31 = weights[tap + 3u * group_stride + 1u];
            let w32 = weights[tap + 3u * group_stride + 2u];
            a30 += w30 * r0 + w31 * r1 + w32 * r2;
            a31 += w30 * r1 + w31 * r2 + w32 * r3;
            a32 += w30 * r2 + w31 * r3 + w32 * r4;
            a33 += w30 * r3 + w31 * r4 + w32 * r5;
        }
    }

    store(first_group, y, x0, a00, a01, a02, a03);
    store(first_group + 1u, y, x0, a10, a11, a12, a13);
    store(first_group + 2u, y, x0, a20, a21, a22, a23);
    store(first_group + 3u, y, x0, a30, a31, a32, a33);
}

// Element (row, x) of the input, or zero when x or the row is outside the image,
// computed without branches.
fn load_input(row: u32, x: i32, row_inside: bool) -> vec4<f32> {
    let inside = row_inside && x >= 0 && x < i32(params.width);
    let value = input[row + u32(clamp(x, 0, i32(params.width) - 1))];
    return select(vec4<f32>(0.0), value, inside);
}

// Adds the bias, applies ReLU when enabled and writes those of the pixels
// x0 .. x0 + 3 of one output group that exist.
fn store(group: u32, y: u32, x0: u32, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) {
    if group >= params.out_groups {
        return;
    }
    let values = array<vec4<f32>, 4>(v0, v1, v2, v3);
    let row = (group * params.height + y) * params.width;
    for (var p = 0u; p < PIXELS; p++) {
        if x0 + p >= params.width {
            return;
        }
        var value = values[p] + bias[group];
        if params.apply_relu != 0u {
            value = max(value, vec4<f32>(0.0));
        }
        output[row + x0 + p] = value;
    }
}
