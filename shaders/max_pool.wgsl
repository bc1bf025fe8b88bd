// 2x2 max-pool, stride 2, floor: an odd last row or column of the input is dropped.
//   output[c, y, x] = max(input[c, 2y + dy, 2x + dx]) over dy, dx in {0, 1}
//
// Layouts: input [groups][in_height][in_width] vec4,
//          output [groups][in_height / 2][in_width / 2] vec4 (integer division).
// Dispatch: workgroup_size(64); one invocation per output vec4,
//           flat index gid.y * row_stride + gid.x over
//           groups * out_height * out_width (two dimensions stay under the dispatch limit).

struct Params {
    groups: u32,
    in_height: u32,
    in_width: u32,
    row_stride: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> output: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let out_height = params.in_height / 2u;
    let out_width = params.in_width / 2u;
    let index = gid.y * params.row_stride + gid.x;
    if index >= params.groups * out_height * out_width {
        return;
    }
    let group = index / (out_height * out_width);
    let y = (index / out_width) % out_height;
    let x = index % out_width;
    let top = group * params.in_height * params.in_width + 2u * y * params.in_width + 2u * x;
    let bottom = top + params.in_width;
    output[index] = max(max(input[top], input[top + 1u]), max(input[bottom], input[bottom + 1u]));
}
