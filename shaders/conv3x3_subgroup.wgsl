// 3x3 convolution, zero padding 1, stride 1, as a cross-correlation, with the
// weights shared through subgroup broadcasts. It computes exactly what
// conv3x3.wgsl computes (see there for the formula, the layouts of input,
// output and bias, and the dispatch shape); only the weight loads differ.
//
// In conv3x3.wgsl every invocation loads all 48 weight columns it needs for one
// input group and kernel row, although the whole workgroup needs the same ones.
// Here lane l of each subgroup loads only columns l, l + 8, ..., l + 40 and
// subgroupBroadcast hands each column to the other lanes, so each invocation
// loads 8 times fewer weights. This needs subgroups of at least 8 invocations,
// and every invocation stays active until the broadcasts are done (the bounds
// guard masks the stores instead of returning early).
//
// Layout of weights: the mat4x4 array of conv3x3.wgsl read as vec4 columns,
//   weights[4 * matrix + k] = column k of matrix ((o * in_groups + i) * 9 + tap).

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
@group(0) @binding(2) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> output: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let tiles = params.tiles_per_row * params.height;
    let in_range = gid.x < tiles;
    let tile = min(gid.x, tiles - 1u);
    let y = tile / params.tiles_per_row;
    let x0 = (tile % params.tiles_per_row) * PIXELS;
    let first_group = wid.y * OUT_BLOCK;
    let plane = params.height * params.width;
    // Which of the 48 columns this lane loads: lane % 8 + 8 j for j = 0 .. 5.
    let share = lane % 8u;

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
            // Column q = 12 b + 4 kx + k of this kernel row: column k of tap (ky, kx)
            // of output group first_group + b. Lane l loads q = l, l + 8, ..., l + 40.
            let tap = (first_group * params.in_groups + i) * 9u + ky * 3u;
            let s0 = load_column(tap, group_stride, share + 0u);
            let s1 = load_column(tap, group_stride, share + 8u);
            let s2 = load_column(tap, group_stride, share + 16u);
            let s3 = load_column(tap, group_stride, share + 24u);
            let s4 = load_column(tap, group_stride, share + 32u);
            let s5 = load_column(tap, group_stride, share + 40u);
            let w00 = mat4x4<f32>(
                subgroupBroadcast(s0, 0u),
                subgroupBroadcast(s0, 1u),
                subgroupBroadcast(s0, 2u),
                subgroupBroadcast(s0, 3u),
            );
            let w01 = mat4x4<f32>(
                subgroupBroadcast(s0, 4u),
                subgroupBroadcast(s0, 5u),
                subgroupBroadcast(s0, 6u),
                subgroupBroadcast(s0, 7u),
            );
            let w02 = mat4x4<f32>(
                subgroupBroadcast(s1, 0u),
                subgroupBroadcast(s1, 1u),
                subgroupBroadcast(s1, 2u),
                subgroupBroadcast(s1, 3u),
            );
            a00 += w00 * r0 + w01 * r1 + w02 * r2;
            a01 += w00 * r1 + w01 * r2 + w02 * r3;
            a02 += w00 * r2 + w01 * r3 + w02 * r4;
            a03 += w00 * r3 + w01 * r4 + w02 * r5;
            let w10 = mat4x4<f32>(
                subgroupBroadcast(s1, 4u),
                subgroupBroadcast(s1, 5u),
                subgroupBroadcast(s1, 6u),
                subgroupBroadcast(s1, 7u),
            );
            let w11 = mat4x4<f32>(
                subgroupBroadcast(s2, 0u),
                subgroupBroadcast(s2, 1u),
                subgroupBroadcast(s2, 2u),
                subgroupBroadcast(s2, 3u),
            );
            let w12 = mat4x4<f32>(
                subgroupBroadcast(s2, 4u),
                subgroupBroadcast(s2, 5u),
                subgroupBroadcast(s2, 6u),
                subgroupBroadcast(s2, 7u),
            );
            a10 += w10 * r0 + w11 * r1 + w12 * r2;
            a11 += w10 * r1 + w11 * r2 + w12 * r3;
            a12 += w10 * r2 + w11 * r3 + w12 * r4;
            a13 += w10 * r3 + w11 * r4 + w12 * r5;
            let w20 = mat4x4<f32>(
                subgroupBroadcast(s3, 0u),
                subgroupBroadcast(s3, 1u),
                subgroupBroadcast(s3, 2u),
                subgroupBroadcast(s3, 3u),
            );
            let w21 = mat4x4<f32>(
                subgroupBroadcast(s3, 4u),
                subgroupBroadcast(s3, 5u),
                subgroupBroadcast(s3, 6u),
                subgroupBroadcast(s3, 7u),
            );
            let w22 = mat4x4<f32>(
                subgroupBroadcast(s4, 0u),
                subgroupBroadcast(s4, 1u),
                subgroupBroadcast(s4, 2u),
                subgroupBroadcast(s4, 3u),
            );
            a20 += w20 * r0 + w21 * r1 + w22 * r2;
            a21 += w20 * r1 + w21 * r2 + w22 * r3;
            a22 += w20 * r2 + w21 * r3 + w22 * r4;
            a23 += w20 * r3 + w21 * r4 + w22 * r5;
            let w30 = mat4x4<f32>(
                subgroupBroadcast(s4, 4u),
                subgroupBroadcast(s4, 5u),
                subgroupBroadcast(s4, 6u),
                subgroupBroadcast(s4, 7u),
            );
            let w31 = mat4x4<f32>(
                subgroupBroadcast(s5, 0u),
                subgroupBroadcast(s5, 1u),
                subgroupBroadcast(s5, 2u),
                subgroupBroadcast(s5, 3u),
            );
            let w32 = mat4x4<f32>(
                subgroupBroadcast(s5, 4u),
                subgroupBroadcast(s5, 5u),
                subgroupBroadcast(s5, 6u),
                subgroupBroadcast(s5, 7u),
            );
            a30 += w30 * r0 + w31 * r1 + w32 * r2;
            a31 += w30 * r1 + w31 * r2 + w32 * r3;
            a32 += w30 * r2 + w31 * r3 + w32 * r4;
            a33 += w30 * r3 + w31 * r4 + w32 * r5;
        }
    }

    if !in_range {
        return;
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

// Column q (0 .. 47) of the current kernel row: q = 12 b + 4 kx + k.
fn load_column(tap: u32, group_stride: u32, q: u32) -> vec4<f32> {
    let b = q / 12u;
    let kx = (q % 12u) / 4u;
    let k = q % 4u;
    return weights[4u * (tap + b * group_stride + kx) + k];
}
