// Copies a packed tensor from a storage buffer into a texture array, for the
// kernels that read their inputs as textures:
//   texture[layer][y][x] = source[i] * (mask[i] > 0 when use_mask),
//   i = (layer * height + y) * width + x
// For a feature map, layer = channel group; a [rows][columns] vec4 matrix is one
// layer of height rows. With use_mask the copy is also the ReLU backward of a
// gradient, `mask` being the ReLU's output; otherwise `mask` is not read.
//
// Dispatch: workgroup_size(64); one invocation per vec4, flat index
//           gid.y * row_stride + gid.x.

struct Params {
    width: u32,
    height: u32,
    count: u32,
    row_stride: u32,
    use_mask: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> source: array<vec4<f32>>;
@group(0) @binding(2) var destination: texture_storage_2d_array<rgba32float, write>;
@group(0) @binding(3) var<storage, read> mask: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * params.row_stride + gid.x;
    if index >= params.count {
        return;
    }
    let x = index % params.width;
    let row = index / params.width;
    let y = row % params.height;
    let layer = row / params.height;
    var value = source[index];
    if params.use_mask != 0u {
        value = select(vec4<f32>(0.0), value, mask[index] > vec4<f32>(0.0));
    }
    textureStore(destination, vec2<u32>(x, y), layer, value);
}
