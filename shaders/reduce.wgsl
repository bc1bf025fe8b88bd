// Final reduction of one loss term:
//   losses[slot] = scale * sum(partials[offset .. offset + count])
//
// Layouts: partials, losses: f32 arrays.
// Dispatch: exactly one workgroup of 256 invocations; each sums a strided share
//           of the partials, then a tree reduction in workgroup memory.

struct Params {
    offset: u32,
    count: u32,
    slot: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;

var<workgroup> scratch: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32) {
    var sum = 0.0;
    for (var i = lid; i < params.count; i += 256u) {
        sum += partials[params.offset + i];
    }
    scratch[lid] = sum;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride /= 2u) {
        if lid < stride {
            scratch[lid] += scratch[lid + stride];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        losses[params.slot] = params.scale * scratch[0];
    }
}
