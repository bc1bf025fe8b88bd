// Partial Gram matrices of a feature map, split over pixel ranges so that a
// long reduction still fills the GPU:
//   partial[s, i, j] = sum over pixels m in split s of F[i, m] * F[j, m]
// The Gram matrix G = F F^T is the sum of the partials over s (unnormalised).
//
// Layouts: features [groups][pixels] vec4 (pixels = height * width, channels
//          packed four to a vec4; padding channels are zero);
//          partial [splits][4 * groups][groups] vec4, i.e. per split a
//          row-major [4 * groups][4 * groups] matrix, four columns to a vec4.
// Dispatch: workgroup_size(64); global x = one BLOCK x BLOCK tile of channel
//           groups (blocks_per_side^2 tiles, row tile = x / blocks_per_side),
//           global y = split index. Each invocation accumulates
//           (4 * BLOCK)^2 products for every pixel of its split.

const BLOCK: u32 = 2u;

struct Params {
    groups: u32,
    pixels: u32,
    pixels_per_split: u32,
    blocks_per_side: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> features: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> partial: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x >= params.blocks_per_side * params.blocks_per_side {
        return;
    }
    let row_block = (gid.x / params.blocks_per_side) * BLOCK;
    let col_block = (gid.x % params.blocks_per_side) * BLOCK;
    let split = gid.y;
    let start = split * params.pixels_per_split;
    let end = min(start + params.pixels_per_split, params.pixels);

    // acc[a][b] column k, row r = sum_m F[4 (row_block + a) + r, m] * F[4 (col_block + b) + k, m]
    var acc: array<array<mat4x4<f32>, BLOCK>, BLOCK>;
    for (var m = start; m < end; m++) {
        var rows: array<vec4<f32>, BLOCK>;
        var cols: array<vec4<f32>, BLOCK>;
        for (var a = 0u; a < BLOCK; a++) {
            let group = min(row_block + a, params.groups - 1u);
            rows[a] = select(vec4<f32>(0.0), features[group * params.pixels + m], row_block + a < params.groups);
        }
        for (var b = 0u; b < BLOCK; b++) {
            let group = min(col_block + b, params.groups - 1u);
            cols[b] = select(vec4<f32>(0.0), features[group * params.pixels + m], col_block + b < params.groups);
        }
        for (var a = 0u; a < BLOCK; a++) {
            for (var b = 0u; b < BLOCK; b++) {
                let c = cols[b];
                acc[a][b] += mat4x4<f32>(rows[a] * c.x, rows[a] * c.y, rows[a] * c.z, rows[a] * c.w);
            }
        }
    }

    let split_base = split * 4u * params.groups * params.groups;
    for (var a = 0u; a < BLOCK; a++) {
        let row_group = row_block + a;
        if row_group >= params.groups {
            break;
        }
        for (var b = 0u; b < BLOCK; b++) {
            let col_group = col_block + b;
            if col_group >= params.groups {
                break;
            }
            // Row r of the Gram tile is row r of acc, i.e. column r of its transpose.
            let tile = transpose(acc[a][b]);
            for (var r = 0u; r < 4u; r++) {
                partial[split_base + (4u * row_group + r) * params.groups + col_group] = tile[r];
            }
        }
    }
}
