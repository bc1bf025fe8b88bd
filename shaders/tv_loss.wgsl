// Total variation loss partial sums and gradient, on the image being optimised:
//   TV = sum over pixels and colour channels of (x[y, x+1] - x[y, x])^2 + (x[y+1, x] - x[y, x])^2,
//   divided by the host (reduce kernel, scale 1 / (3 H W)).
//   d_image += grad_scale * 2 * sum over existing neighbours n of (x[p] - x[n]),
//   grad_scale = weight / (3 H W).
//
// Layouts: image, d_image [height][width] vec4 (B, G, R, zero padding channel);
//          loss_partials [number of workgroups] f32.
// Dispatch: workgroup_size(64); one invocation per pixel, flat index
//           gid.y * row_stride + gid.x; flat workgroup index wid.y * num_workgroups.x + wid.x.

struct Params {
    height: u32,
    width: u32,
    row_stride: u32,
    grad_scale: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> image: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> d_image: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> loss_partials: array<f32>;

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
    if index < params.height * params.width {
        let y = index / params.width;
        let x = index % params.width;
        let here = image[index];
        var pull = vec4<f32>(0.0);
        if x + 1u < params.width {
            let d = here - image[index + 1u];
            pull += d;
            squared += dot(d, d);
        }
        if y + 1u < params.height {
            let d = here - image[index + params.width];
            pull += d;
            squared += dot(d, d);
        }
        if x > 0u {
            pull += here - image[index - 1u];
        }
        if y > 0u {
            pull += here - image[index - params.width];
        }
        d_image[index] += 2.0 * params.grad_scale * pull;
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
