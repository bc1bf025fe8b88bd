// Input gradient of ReLU, in place: gradient *= (activation > 0), where
// activation is the ReLU's output (zero exactly where the ReLU clipped).
//
// Layouts: activation, gradient [count] vec4 (any tensor, flattened).
// Dispatch: workgroup_size(64); one invocation per vec4; global x and y together
//           cover the count (x = index % (65535 * 64) keeps each dimension under
//           the dispatch limit).

struct Params {
    count: u32,
    row_stride: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> activation: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> gradient: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * params.row_stride + gid.x;
    if index >= params.count {
        return;
    }
    gradient[index] = select(vec4<f32>(0.0), gradient[index], activation[index] > vec4<f32>(0.0));
}
