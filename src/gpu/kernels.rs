//! Every compute pipeline, compiled once per device with an explicit bind group layout.

use super::tiled_source::{tiled_source, Tile, TiledKind};

/// Kind of one shader binding; a shader lists them in binding order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binding {
    Uniform,
    ReadOnly,
    ReadWrite,
    /// `texture_2d_array<f32>` of rgba32float texels, read with `textureLoad`.
    Texture,
    /// `texture_storage_2d_array<rgba32float, write>`.
    StorageTexture,
}

use Binding::{ReadOnly, ReadWrite, StorageTexture, Texture, Uniform};

/// A WGSL source file, its entry point `main` and its bindings.
struct ShaderSpec {
    name: &'static str,
    source: &'static str,
    bindings: &'static [Binding],
}

macro_rules! shader {
    ($name:literal, $bindings:expr) => {
        ShaderSpec {
            name: $name,
            source: include_str!(concat!("../../shaders/", $name, ".wgsl")),
            bindings: $bindings,
        }
    };
}

const CONV3X3: ShaderSpec = shader!(
    "conv3x3",
    &[Uniform, ReadOnly, ReadOnly, ReadOnly, ReadWrite]
);
const MAX_POOL: ShaderSpec = shader!("max_pool", &[Uniform, ReadOnly, ReadWrite]);
const MAX_POOL_BACKWARD: ShaderSpec = shader!(
    "max_pool_backward",
    &[Uniform, ReadOnly, ReadOnly, ReadWrite]
);
const RELU_BACKWARD: ShaderSpec = shader!("relu_backward", &[Uniform, ReadOnly, ReadWrite]);
const GRAM: ShaderSpec = shader!("gram", &[Uniform, ReadOnly, ReadWrite]);
const STYLE_LOSS: ShaderSpec = shader!(
    "style_loss",
    &[Uniform, ReadOnly, ReadOnly, ReadWrite, ReadWrite]
);
const STYLE_GRAD: ShaderSpec = shader!("style_grad", &[Uniform, ReadOnly, ReadOnly, ReadWrite]);
const CONTENT_LOSS: ShaderSpec = shader!(
    "content_loss",
    &[Uniform, ReadOnly, ReadOnly, ReadWrite, ReadWrite]
);
const TV_LOSS: ShaderSpec = shader!("tv_loss", &[Uniform, ReadOnly, ReadWrite, ReadWrite]);
const REDUCE: ShaderSpec = shader!("reduce", &[Uniform, ReadOnly, ReadWrite]);
const ADAM: ShaderSpec = shader!(
    "adam",
    &[Uniform, ReadOnly, ReadWrite, ReadWrite, ReadWrite]
);

const GRAM_SUBGROUP: ShaderSpec = shader!("gram_subgroup", &[Uniform, Texture, ReadWrite]);
const TO_TEXTURE: ShaderSpec =
    shader!("to_texture", &[Uniform, ReadOnly, StorageTexture, ReadOnly]);
/// Bindings of the generated tiled kernels (see `tiled_source`).
const TILED_BINDINGS: &[Binding] = &[Uniform, Texture, Texture, ReadOnly, ReadWrite];

const ALL: [&ShaderSpec; 13] = [
    &CONV3X3,
    &MAX_POOL,
    &MAX_POOL_BACKWARD,
    &RELU_BACKWARD,
    &GRAM,
    &STYLE_LOSS,
    &STYLE_GRAD,
    &CONTENT_LOSS,
    &TV_LOSS,
    &REDUCE,
    &ADAM,
    &GRAM_SUBGROUP,
    &TO_TEXTURE,
];

/// Name and WGSL source of every shader file, for validation without an adapter.
pub const SHADERS: [(&str, &str); 13] = {
    let mut list = [("", ""); 13];
    let mut i = 0;
    while i < ALL.len() {
        list[i] = (ALL[i].name, ALL[i].source);
        i += 1;
    }
    list
};

/// A compiled compute pipeline and the layout of its only bind group.
pub struct Kernel {
    pub name: &'static str,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

impl Kernel {
    fn new(device: &wgpu::Device, spec: &ShaderSpec) -> Kernel {
        Self::compile(device, spec.name, spec.source, spec.bindings, &[])
    }

    /// Compiles `source` with values for its `override` constants.
    fn compile(
        device: &wgpu::Device,
        name: &'static str,
        source: &str,
        bindings: &[Binding],
        constants: &[(&str, f64)],
    ) -> Kernel {
        let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .enumerate()
            .map(|(index, binding)| wgpu::BindGroupLayoutEntry {
                binding: index as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: match binding {
                    Uniform => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    ReadOnly | ReadWrite => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage {
                            read_only: *binding == ReadOnly,
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    Texture => wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: false },
                        view_dimension: wgpu::TextureViewDimension::D2Array,
                        multisampled: false,
                    },
                    StorageTexture => wgpu::BindingType::StorageTexture {
                        access: wgpu::StorageTextureAccess::WriteOnly,
                        format: wgpu::TextureFormat::Rgba32Float,
                        view_dimension: wgpu::TextureViewDimension::D2Array,
                    },
                },
                count: None,
            })
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(name),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                ..Default::default()
            },
            cache: None,
        });
        Kernel {
            name,
            pipeline,
            layout,
        }
    }

    /// Creates a bind group for this kernel from buffers in binding order.
    pub fn bind(
        &self,
        device: &wgpu::Device,
        buffers: &[wgpu::BindingResource<'_>],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(index, resource)| wgpu::BindGroupEntry {
                binding: index as u32,
                resource: resource.clone(),
            })
            .collect();
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.name),
            layout: &self.layout,
            entries: &entries,
        })
    }
}

/// Kernels that read inputs as textures and share operands with subgroup
/// broadcasts; the device needs `Features::SUBGROUP` with subgroups of 8 or more.
pub struct TiledKernels {
    /// Tile of `conv3x3`; `gram` uses its workgroup size.
    pub tile: Tile,
    /// Tile of `pointwise`.
    pub pointwise_tile: Tile,
    /// Generated 3x3 convolution (forward and input gradient).
    pub conv3x3: Kernel,
    /// Generated 1x1 convolution by a symmetric matrix (the style gradient).
    pub pointwise: Kernel,
    pub gram: Kernel,
    /// Copies a packed tensor into a texture array for the kernels above.
    pub to_texture: Kernel,
}

impl TiledKernels {
    fn new(device: &wgpu::Device, tile: Tile) -> TiledKernels {
        let conv_source = tiled_source(TiledKind::Conv3x3, tile);
        let pointwise_tile = tile;
        let pointwise_source = tiled_source(TiledKind::Pointwise, pointwise_tile);
        let workgroup = [("WORKGROUP_SIZE", f64::from(tile.workgroup_size))];
        TiledKernels {
            tile,
            pointwise_tile,
            conv3x3: Kernel::compile(device, "conv3x3_tiled", &conv_source, TILED_BINDINGS, &[]),
            pointwise: Kernel::compile(
                device,
                "style_grad_tiled",
                &pointwise_source,
                TILED_BINDINGS,
                &[],
            ),
            gram: Kernel::compile(
                device,
                GRAM_SUBGROUP.name,
                GRAM_SUBGROUP.source,
                GRAM_SUBGROUP.bindings,
                &workgroup,
            ),
            to_texture: Kernel::new(device, &TO_TEXTURE),
        }
    }
}

/// All pipelines, compiled once when the device is opened.
pub struct Kernels {
    /// The texture-reading kernels, used instead of `conv3x3`, `gram` and
    /// `style_grad` where the device supports them.
    pub tiled: Option<TiledKernels>,
    pub conv3x3: Kernel,
    pub max_pool: Kernel,
    pub max_pool_backward: Kernel,
    pub relu_backward: Kernel,
    pub gram: Kernel,
    pub style_loss: Kernel,
    pub style_grad: Kernel,
    pub content_loss: Kernel,
    pub tv_loss: Kernel,
    pub reduce: Kernel,
    pub adam: Kernel,
}

impl Kernels {
    /// Compiles every kernel; `subgroup_size` (the adapter's smallest subgroup
    /// size, where subgroups of 8 or more are enabled) selects the tiled kernels.
    pub fn new(device: &wgpu::Device, subgroup_size: Option<u32>) -> Kernels {
        Kernels {
            tiled: subgroup_size
                .map(|size| TiledKernels::new(device, Tile::for_subgroup_size(size))),
            conv3x3: Kernel::new(device, &CONV3X3),
            max_pool: Kernel::new(device, &MAX_POOL),
            max_pool_backward: Kernel::new(device, &MAX_POOL_BACKWARD),
            relu_backward: Kernel::new(device, &RELU_BACKWARD),
            gram: Kernel::new(device, &GRAM),
            style_loss: Kernel::new(device, &STYLE_LOSS),
            style_grad: Kernel::new(device, &STYLE_GRAD),
            content_loss: Kernel::new(device, &CONTENT_LOSS),
            tv_loss: Kernel::new(device, &TV_LOSS),
            reduce: Kernel::new(device, &REDUCE),
            adam: Kernel::new(device, &ADAM),
        }
    }
}
