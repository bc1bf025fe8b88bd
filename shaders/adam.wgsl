// One Adam step on the image (Kingma and Ba), identical to torch.optim.Adam
// without weight decay:
//   m = beta1 m + (1 - beta1) g
//   v = beta2 v + (1 - beta2) g^2
//   x -= learning_rate * (m / bias_correction1) / (sqrt(v / bias_correction2) + epsilon)
// with bias_correction1 = 1 - beta1^t and bias_correction2 = 1 - beta2^t for step
// t = 1, 2, ..., computed on the host. A component whose gradient stays zero (the
// padding channel) keeps m = v = 0 and does not move.
//
// Layouts: gradient, image, moment1, moment2 [count] vec4 (any layout, flattened).
// Dispatch: workgroup_size(64); flat index gid.y * row_stride + gid.x.

struct Params {
    count: u32,
    row_stride: u32,
    learning_rate: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    bias_correction1: f32,
    bias_correction2: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> gradient: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> image: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> moment1: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> moment2: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * params.row_stride + gid.x;
    if index >= params.count {
        return;
    }
    let g = gradient[index];
    let m = params.beta1 * moment1[index] + (1.0 - params.beta1) * g;
    let v = params.beta2 * moment2[index] + (1.0 - params.beta2) * g * g;
    moment1[index] = m;
    moment2[index] = v;
    let m_hat = m / params.bias_correction1;
    let v_hat = v / params.bias_correction2;
    image[index] -= params.learning_rate * m_hat / (sqrt(v_hat) + params.epsilon);
}
