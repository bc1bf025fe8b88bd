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
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let tile = gid.x;
    if tile >= params.tiles_per_row * params.height {
        return;
    }
    let y = tile / params.tiles_per_row;
    let x0 = (tile % params.tiles_per_row) * PIXELS;
    let first_group = gid.y * OUT_BLOCK;
    let plane = params.height * params.width;

    var acc: array<array<vec4<f32>, PIXELS>, OUT_BLOCK>;
    for (var i = 0u; i < params.in_groups; i++) {
        for (var ky = 0u; ky < 3u; ky++) {
            let iy = i32(y + ky) - 1;
            if iy < 0 || iy >= i32(params.height) {
                continue;
            }
            // Input columns x0 - 1 .. x0 + PIXELS of row iy, zero outside the image.
            let row_base = i * plane + u32(iy) * params.width;
            var row: array<vec4<f32>, PIXELS + 2u>;
            for (var j = 0u; j < PIXELS + 2u; j++) {
                let ix = i32(x0 + j) - 1;
                if ix >= 0 && ix < i32(params.width) {
                    row[j] = input[row_base + u32(ix)];
                } else {
                    row[j] = vec4<f32>(0.0);
                }
            }
            for (var kx = 0u; kx < 3u; kx++) {
                for (var b = 0u; b < OUT_BLOCK; b++) {
                    let w = weights[((first_group + b) * params.in_groups + i) * 9u + ky * 3u + kx];
                    for (var p = 0u; p < PIXELS; p++) {
                        acc[b][p] += w * row[p + kx];
                    }
                }
            }
        }
    }

    for (var b = 0u; b < OUT_BLOCK; b++) {
        let group = first_group + b;
        if group >= params.out_groups {
            break;
        }
        for (var p = 0u; p < PIXELS; p++) {
            let x = x0 + p;
            if x >= params.width {
                break;
            }
            var value = acc[b][p] + bias[group];
            if params.apply_relu != 0u {
                value = max(value, vec4<f32>(0.0));
            }
            output[group * plane + y * params.width + x] = value;
        }
    }
}
