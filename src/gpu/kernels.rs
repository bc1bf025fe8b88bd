//! Every compute pipeline, compiled once per device with an explicit bind group layout.

/// Kind of one shader binding; a shader lists them in binding order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binding {
    Uniform,
    ReadOnly,
    ReadWrite,
}

use Binding::{ReadOnly, ReadWrite, Uniform};

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

const CONV3X3_SUBGROUP: ShaderSpec = shader!(
    "conv3x3_subgroup",
    &[Uniform, ReadOnly, ReadOnly, ReadOnly, ReadWrite]
);
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

const ALL: [&ShaderSpec; 12] = [
    &CONV3X3,
    &CONV3X3_SUBGROUP,
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
];

/// Name and WGSL source of every shader, for validation without an adapter.
pub const SHADERS: [(&str, &str); 12] = {
    let mut list = [("", ""); 12];
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
        let entries: Vec<wgpu::BindGroupLayoutEntry> = spec
            .bindings
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
                },
                count: None,
            })
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(spec.name),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(spec.name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(spec.name),
            source: wgpu::ShaderSource::Wgsl(spec.source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(spec.name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Kernel {
            name: spec.name,
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

/// All pipelines, compiled once when the device is opened.
pub struct Kernels {
    /// `conv3x3`, or `conv3x3_subgroup` where the device has subgroups of at least 8.
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
    /// Compiles every kernel; `subgroups` selects the subgroup variant of the
    /// convolution, which needs `Features::SUBGROUP` and subgroups of 8 or more.
    pub fn new(device: &wgpu::Device, subgroups: bool) -> Kernels {
        let conv = if subgroups {
            &CONV3X3_SUBGROUP
        } else {
            &CONV3X3
        };
        Kernels {
            conv3x3: Kernel::new(device, conv),
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
