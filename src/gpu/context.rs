use std::fmt::Write as _;

use thiserror::Error;

use super::kernels::Kernels;

/// Errors while finding an adapter or creating the device.
#[derive(Debug, Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found: install a Vulkan, Metal or DX12 driver, or Mesa's software \
         adapter (on Debian and Ubuntu: apt-get install mesa-vulkan-drivers)"
    )]
    NoAdapter,
    #[error("no adapter name contains '{requested}'; available adapters:\n{available}")]
    AdapterNotFound {
        requested: String,
        available: String,
    },
    #[error("could not create a device on adapter '{adapter}': {source}")]
    Device {
        adapter: String,
        source: wgpu::RequestDeviceError,
    },
    #[error("reading a buffer back from the GPU failed: {0}")]
    Readback(String),
}

/// An adapter, its device and queue, and the compiled kernels.
pub struct Gpu {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with: everything the adapter allows.
    pub limits: wgpu::Limits,
    pub kernels: Kernels,
}

impl Gpu {
    /// Opens the adapter whose name contains `adapter_name` (case-insensitive), or
    /// the best one when `None`: a discrete GPU before an integrated one, a
    /// hardware adapter before a software one. `WGPU_BACKEND` restricts the backends
    /// searched and `WGPU_ADAPTER_NAME` acts like `adapter_name`.
    pub fn new(adapter_name: Option<&str>) -> Result<Gpu, GpuError> {
        pollster::block_on(Self::new_async(adapter_name))
    }

    async fn new_async(adapter_name: Option<&str>) -> Result<Gpu, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
        let adapters = instance.enumerate_adapters(backends).await;
        let env_name = std::env::var("WGPU_ADAPTER_NAME").ok();
        let requested = adapter_name.map(str::to_owned).or(env_name);
        let adapter = choose_adapter(adapters, requested.as_deref())?;
        let info = adapter.get_info();

        // Timestamp queries are optional: only the benchmark's per-kernel times use them.
        let mut optional =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        // The tiled kernels share operands across 8 lanes; adapters
        // with smaller subgroups (WARP has 4) use the plain kernels.
        let subgroups = adapter.features().contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size >= 8
            && std::env::var_os("WGPU_STYLE_NO_SUBGROUPS").is_none();
        if subgroups {
            optional |= wgpu::Features::SUBGROUP;
        }
        let required_features = adapter.features() & optional;
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgpu-style device"),
                required_features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|source| GpuError::Device {
                adapter: info.name.clone(),
                source,
            })?;
        let kernels = Kernels::new(&device, subgroups.then_some(info.subgroup_min_size));
        Ok(Gpu {
            adapter,
            device,
            queue,
            info,
            limits,
            kernels,
        })
    }

    /// Returns whether this is a software adapter such as Mesa's lavapipe.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Returns whether per-kernel times can be measured: on a CPU adapter by the
    /// host's clock, elsewhere with timestamp queries.
    pub fn can_time_kernels(&self) -> bool {
        self.is_software() || self.has_timestamps()
    }

    /// Returns whether per-dispatch timestamp queries are available.
    pub fn has_timestamps(&self) -> bool {
        self.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Formats one line naming the adapter, its backend and type.
    pub fn describe(&self) -> String {
        let kind = match self.info.device_type {
            wgpu::DeviceType::DiscreteGpu => "discrete GPU",
            wgpu::DeviceType::IntegratedGpu => "integrated GPU",
            wgpu::DeviceType::VirtualGpu => "virtual GPU",
            wgpu::DeviceType::Cpu => "software adapter, running on the CPU",
            wgpu::DeviceType::Other => "unknown type",
        };
        format!("{} ({:?}, {kind})", self.info.name, self.info.backend)
    }

    /// Blocks until all submitted work has finished.
    pub fn wait_idle(&self) {
        // A failed poll here means a lost device, which the next map or submit reports.
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
    }
}

fn device_rank(device_type: wgpu::DeviceType) -> u32 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn backend_rank(backend: wgpu::Backend) -> u32 {
    match backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

fn choose_adapter(
    adapters: Vec<wgpu::Adapter>,
    requested: Option<&str>,
) -> Result<wgpu::Adapter, GpuError> {
    // Compute shaders need storage buffers; downlevel GL adapters may lack them.
    let usable: Vec<wgpu::Adapter> = adapters
        .into_iter()
        .filter(|a| {
            a.get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        })
        .collect();
    if usable.is_empty() {
        return Err(GpuError::NoAdapter);
    }
    if let Some(requested) = requested {
        let needle = requested.to_lowercase();
        let position = usable
            .iter()
            .position(|a| a.get_info().name.to_lowercase().contains(&needle));
        return match position {
            Some(index) => Ok(usable.into_iter().nth(index).expect("index from position")),
            None => {
                let mut available = String::new();
                for adapter in &usable {
                    let info = adapter.get_info();
                    let _ = writeln!(available, "  {} ({:?})", info.name, info.backend);
                }
                Err(GpuError::AdapterNotFound {
                    requested: requested.to_string(),
                    available,
                })
            }
        };
    }
    usable
        .into_iter()
        .min_by_key(|a| {
            let info = a.get_info();
            (device_rank(info.device_type), backend_rank(info.backend))
        })
        .ok_or(GpuError::NoAdapter)
}
