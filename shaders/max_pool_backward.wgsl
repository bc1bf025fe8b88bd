// Input gradient of the 2x2 max-pool (stride 2, floor). Each channel of each
// window passes the output gradient to the first position holding the window's
// maximum, in the order (0,0), (0,1), (1,0), (1,1); the other positions, and the
// dropped odd last row or column, get zero.
//
// Layouts: input, d_input [groups][in_height][in_width] vec4;
//          d_output [groups][in_height / 2][in_width / 2] vec4.
// Dispatch: workgroup_size(64); flat index gid.y * row_stride + gid.x; one
//           invocation per window, including the partial
//           windows on an odd last row or column, over
//           groups * ceil(in_height / 2) * ceil(in_width / 2) windows. Each
//           invocation writes every input position of its window, so d_input
//           needs no clearing beforehand.

struct Params {
    groups: u32,
    in_height: u32,
    in_width: u32,
    row_stride: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> d_output: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> d_input: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let windows_down = (params.in_height + 1u) / 2u;
    let windows_across = (params.in_width + 1u) / 2u;
    let index = gid.y * params.row_stride + gid.x;
    if index >= params.groups * windows_down * windows_across {
        return;
    }
    let group = index / (windows_down * windows_across);
    let wy = (index / windows_across) % windows_down;
    let wx = index % windows_across;
    let out_height = params.in_height / 2u;
    let out_width = params.in_width / 2u;
    let plane = group * params.in_height * params.in_width;
    let top = plane + 2u * wy * params.in_width + 2u * wx;

    if wy >= out_height || wx >= out_width {
        // A partial window on the dropped edge: zero the positions that exist.
        for (var dy = 0u; dy < 2u; dy++) {
            for (var dx = 0u; dx < 2u; dx++) {
                if 2u * wy + dy < params.in_height && 2u * wx + dx < params.in_width {
                    d_input[top + dy * params.in_width + dx] = vec4<f32>(0.0);
                }
            }
        }
        return;
    }

    let bottom = top + params.in_width;
    let a = input[top];
    let b = input[top + 1u];
    let c = input[bottom];
    let d = input[bottom + 1u];
    let grad = d_output[group * out_height * out_width + wy * out_width + wx];
    let zero = vec4<f32>(0.0);
    // Per channel: a wins ties with everything, b with c and d, c with d.
    let take_a = a >= b & a >= c & a >= d;
    let take_b = !take_a & b >= c & b >= d;
    let take_c = !take_a & !take_b & c >= d;
    let take_d = !take_a & !take_b & !take_c;
    d_input[top] = select(zero, grad, take_a);
    d_input[top + 1u] = select(zero, grad, take_b);
    d_input[bottom] = select(zero, grad, take_c);
    d_input[bottom + 1u] = select(zero, grad, take_d);
}
