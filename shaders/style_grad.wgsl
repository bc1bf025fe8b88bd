// Gradient of the style loss E = sum((G - A)^2) / (4 C^2 M^2) with respect to
// the features F (C x M, M = height * width), with D = G - A:
//   d_features[i, m] (+)= scale * sum_j D[i, j] F[j, m],   scale = weight / (C^2 M^2)
// D is symmetric, so the four entries D[4 g .. 4 g + 3, j] are read as the
// contiguous vec4 D[j, 4 g .. 4 g + 3] of row j.
//
// Layouts: difference [4 * groups][groups] vec4 (row-major D);
//          features, d_features [groups][pixels] vec4.
// Dispatch: workgroup_size(64); global x = one run of PIXELS consecutive pixels,
//           global y = one block of OUT_BLOCK output groups. `accumulate` = 0
//           overwrites d_features, 1 adds to it.

const PIXELS: u32 = 4u;
const OUT_BLOCK: u32 = 2u;

struct Params {
    groups: u32,
    pixels: u32,
    scale: f32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> difference: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> features: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> d_features: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m0 = gid.x * PIXELS;
    if m0 >= params.pixels {
        return;
    }
    let first_group = gid.y * OUT_BLOCK;

    var acc: array<array<vec4<f32>, PIXELS>, OUT_BLOCK>;
    for (var j = 0u; j < params.groups; j++) {
        var f: array<vec4<f32>, PIXELS>;
        for (var p = 0u; p < PIXELS; p++) {
            let m = min(m0 + p, params.pixels - 1u);
            f[p] = features[j * params.pixels + m];
        }
        for (var b = 0u; b < OUT_BLOCK; b++) {
            let group = min(first_group + b, params.groups - 1u);
            // Column k: D[4 group .. 4 group + 3, 4 j + k].
            let d = mat4x4<f32>(
                difference[(4u * j) * params.groups + group],
                difference[(4u * j + 1u) * params.groups + group],
                difference[(4u * j + 2u) * params.groups + group],
                difference[(4u * j + 3u) * params.groups + group],
            );
            for (var p = 0u; p < PIXELS; p++) {
                acc[b][p] += d * f[p];
            }
        }
    }

    for (var b = 0u; b < OUT_BLOCK; b++) {
        let group = first_group + b;
        if group >= params.groups {
            break;
        }
        for (var p = 0u; p < PIXELS; p++) {
            let m = m0 + p;
            if m >= params.pixels {
                break;
            }
            let index = group * params.pixels + m;
            var value = params.scale * acc[b][p];
            if params.accumulate != 0u {
                value += d_features[index];
            }
            d_features[index] = value;
        }
    }
}
