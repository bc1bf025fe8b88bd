// Partial Gram matrices of a feature map read as a texture, with one operand
// shared through subgroup broadcasts. It computes exactly what gram.wgsl
// computes, into the same partial layout (see there):
//   partial[s, i, j] = sum over pixels m in split s of F[i, m] * F[j, m]
//
// Layouts: features texture [groups layers][height][width], pixel m at
//          (m % width, m / width); partial [splits][4 * groups][groups] vec4.
// Dispatch: workgroup_size(WORKGROUP_SIZE), at least 8; global x = one pair of
//           column groups (slot), workgroup y = a block of 4 row groups, the
//           same for the whole workgroup, workgroup z = split index.
//
// Every invocation of a subgroup walks the same pixels, two at a time. Lane l
// of the first 8 fetches row group a0 + l % 4 at pixel m + l / 4, and
// subgroupBroadcast gives those 8 texels to every lane; each lane fetches its own
// two column groups at both pixels. So one step costs a lane 5 fetches for 256
// multiply-adds.

override WORKGROUP_SIZE: u32 = 8u;

struct Params {
    groups: u32,
    pixels: u32,
    pixels_per_split: u32,
    width: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var features: texture_2d_array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<vec4<f32>>;

// Channels 4g .. 4g + 3 at pixel m, zero for pixels at or past `end` and for
// groups past the last.
fn texel(g: u32, m: u32, end: u32) -> vec4<f32> {
    let inside = m < end && g < params.groups;
    let mc = min(m, params.pixels - 1u);
    let gc = min(g, params.groups - 1u);
    let value = textureLoad(features, vec2<u32>(mc % params.width, mc / params.width), gc, 0);
    return select(vec4<f32>(0.0), value, inside);
}

// Column k, row r of the result: f[r] * g[k].
fn outer(f: vec4<f32>, g: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(f * g.x, f * g.y, f * g.z, f * g.w);
}

@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    // Lanes past the last slot repeat it and skip the stores; they must stay
    // active for the broadcasts.
    let slots = (params.groups + 1u) / 2u;
    let in_range = gid.x < slots;
    let b0 = min(gid.x, slots - 1u) * 2u;
    let a0 = wid.y * 4u;
    let start = wid.z * params.pixels_per_split;
    let end = min(start + params.pixels_per_split, params.pixels);
    let share = lane % 8u;

    // c_a_b: row group a0 + a, column group b0 + b (column k, row r as in outer).
    var c_0_0 = mat4x4<f32>();
    var c_0_1 = mat4x4<f32>();
    var c_1_0 = mat4x4<f32>();
    var c_1_1 = mat4x4<f32>();
    var c_2_0 = mat4x4<f32>();
    var c_2_1 = mat4x4<f32>();
    var c_3_0 = mat4x4<f32>();
    var c_3_1 = mat4x4<f32>();
    for (var m = start; m < end; m += 2u) {
        let shared_texel = texel(a0 + share % 4u, m + share / 4u, end);
        // f_a_h: row group a0 + a at pixel m + h, from lane 4 h + a.
        let f_0_0 = subgroupBroadcast(shared_texel, 0u);
        let f_1_0 = subgroupBroadcast(shared_texel, 1u);
        let f_2_0 = subgroupBroadcast(shared_texel, 2u);
        let f_3_0 = subgroupBroadcast(shared_texel, 3u);
        let f_0_1 = subgroupBroadcast(shared_texel, 4u);
        let f_1_1 = subgroupBroadcast(shared_texel, 5u);
        let f_2_1 = subgroupBroadcast(shared_texel, 6u);
        let f_3_1 = subgroupBroadcast(shared_texel, 7u);
        // g_b_h: column group b0 + b at pixel m + h.
        let g_0_0 = texel(b0, m, end);
        let g_1_0 = texel(b0 + 1u, m, end);
        let g_0_1 = texel(b0, m + 1u, end);
        let g_1_1 = texel(b0 + 1u, m + 1u, end);
        c_0_0 += outer(f_0_0, g_0_0) + outer(f_0_1, g_0_1);
        c_0_1 += outer(f_0_0, g_1_0) + outer(f_0_1, g_1_1);
        c_1_0 += outer(f_1_0, g_0_0) + outer(f_1_1, g_0_1);
        c_1_1 += outer(f_1_0, g_1_0) + outer(f_1_1, g_1_1);
        c_2_0 += outer(f_2_0, g_0_0) + outer(f_2_1, g_0_1);
        c_2_1 += outer(f_2_0, g_1_0) + outer(f_2_1, g_1_1);
        c_3_0 += outer(f_3_0, g_0_0) + outer(f_3_1, g_0_1);
        c_3_1 += outer(f_3_0, g_1_0) + outer(f_3_1, g_1_1);
    }
    if !in_range {
        return;
    }
    let base = wid.z * 4u * params.groups * params.groups;
    store(base, a0, b0, c_0_0);
    store(base, a0, b0 + 1u, c_0_1);
    store(base, a0 + 1u, b0, c_1_0);
    store(base, a0 + 1u, b0 + 1u, c_1_1);
    store(base, a0 + 2u, b0, c_2_0);
    store(base, a0 + 2u, b0 + 1u, c_2_1);
    store(base, a0 + 3u, b0, c_3_0);
    store(base, a0 + 3u, b0 + 1u, c_3_1);
}

// Writes the 4x4 tile of row group a, column group b, if both exist.
fn store(base: u32, a: u32, b: u32, tile: mat4x4<f32>) {
    if a >= params.groups || b >= params.groups {
        return;
    }
    // Row r of the Gram tile is row r of `tile`, i.e. column r of its transpose.
    let rows = transpose(tile);
    for (var r = 0u; r < 4u; r++) {
        partial[base + (4u * a + r) * params.groups + b] = rows[r];
    }
}
