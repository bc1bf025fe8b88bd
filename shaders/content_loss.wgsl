// Content loss partial sums and gradient, for L = sum((F - P)^2) / (C H W):
//   d_features (+)= grad_scale * (F - P),   grad_scale = 2 * weight / (C H W)
//   loss_partials[workgroup] = sum over the workgroup's elements of (F - P)^2
// The host finishes L with the reduce kernel (scale 1 / (C H W)).
//
// Layouts: features, target, d_features [groups][height][width] vec4, flattened
//          to count vec4; loss_partials [number of workgroups] f32.
// Dispatch: workgroup_size(64); flat index gid.y * row_stride + gid.x, and flat
//           workgroup index wid.y * num_workgroups.x + wid.x. `accumulate` = 0
//           overwrites d_features, 1 adds to it.

struct Params {
    count: u32,
    row_stride: u32,
    grad_scale: f32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> features: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> target_features: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> d_features: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> loss_partials: array<f32>;

var<workgroup> scratch: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let index = gid.y * params.row_stride + gid.x;
    var squared = 0.0;
    if index < params.count {
        let d = features[index] - target_features[index];
        var grad = params.grad_scale * d;
        if params.accumulate != 0u {
            grad += d_features[index];
        }
        d_features[index] = grad;
        squared = dot(d, d);
    }

    scratch[lid] = squared;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride /= 2u) {
        if lid < stride {
            scratch[lid] += scratch[lid + stride];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        loss_partials[wid.y * groups.x + wid.x] = scratch[0];
    }
}
