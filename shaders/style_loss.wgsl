// Gram difference and style loss partial sums, one step of the style loss
//   E = sum((G - A)^2) / (4 C^2 M^2):
//   difference[e] = sum_s partial[s, e] - target_scale * target[e]
//   loss_partials[workgroup] = sum over the workgroup's elements of difference^2
// The host finishes E with the reduce kernel (scale 1 / (4 C^2 M^2)). The
// difference feeds the gradient kernel. With target_scale = 0 this just sums
// the partial Gram matrices, which is how the style targets are computed.
//
// Layouts: partial [splits][count] vec4; target, difference [count] vec4, where
//          count = (4 * groups) * groups for a [4 groups][4 groups] matrix;
//          loss_partials [number of workgroups] f32.
// Dispatch: workgroup_size(64); one invocation per vec4 element, flat index
//           gid.x (count stays far below the one-dimension dispatch limit:
//           512 channels give 65536 vec4, 1024 workgroups).

struct Params {
    count: u32,
    splits: u32,
    target_scale: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> partial: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> target_gram: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> difference: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> loss_partials: array<f32>;

var<workgroup> scratch: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let index = gid.x;
    var squared = 0.0;
    if index < params.count {
        var gram = vec4<f32>(0.0);
        for (var s = 0u; s < params.splits; s++) {
            gram += partial[s * params.count + index];
        }
        let d = gram - params.target_scale * target_gram[index];
        difference[index] = d;
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
        loss_partials[wid.x] = scratch[0];
    }
}
