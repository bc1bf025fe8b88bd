//! Feature maps in GPU storage buffers.
//!
//! A tensor of C channels and H x W pixels is stored as `[ceil(C / 4)][H][W]`
//! vec4<f32>: channel `4g + k` of pixel `(y, x)` is component k of element
//! `(g * H + y) * W + x`. Channels past C in the last group are zero, which
//! every kernel relies on (a zero padding channel contributes nothing to a
//! convolution, a Gram matrix or a loss).

use super::context::{Gpu, GpuError};

/// A C x H x W tensor in a GPU buffer, in the packed layout above.
#[derive(Clone, Debug)]
pub struct GpuTensor {
    pub buffer: wgpu::Buffer,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl GpuTensor {
    /// Number of vec4 channel groups.
    pub fn groups(&self) -> usize {
        self.channels.div_ceil(4)
    }

    /// Number of vec4 elements.
    pub fn len_vec4(&self) -> usize {
        self.groups() * self.height * self.width
    }

    /// Size of the packed tensor in bytes.
    pub fn size_bytes(&self) -> u64 {
        Self::bytes_for(self.channels, self.height, self.width)
    }

    /// Size in bytes of a packed C x H x W tensor.
    pub fn bytes_for(channels: usize, height: usize, width: usize) -> u64 {
        (channels.div_ceil(4) * height * width * 16) as u64
    }

    /// Allocates a zero-filled tensor.
    pub fn zeros(
        gpu: &Gpu,
        label: &str,
        channels: usize,
        height: usize,
        width: usize,
    ) -> GpuTensor {
        let buffer = create_storage(gpu, label, Self::bytes_for(channels, height, width));
        GpuTensor {
            buffer,
            channels,
            height,
            width,
        }
    }

    /// Views the first bytes of `buffer` as a C x H x W tensor. The buffer may be
    /// larger, because gradient buffers are shared between layers.
    pub fn view(buffer: &wgpu::Buffer, channels: usize, height: usize, width: usize) -> GpuTensor {
        assert!(Self::bytes_for(channels, height, width) <= buffer.size());
        GpuTensor {
            buffer: buffer.clone(),
            channels,
            height,
            width,
        }
    }

    /// Binding resource covering exactly this tensor.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: 0,
            size: wgpu::BufferSize::new(self.size_bytes()),
        })
    }

    /// Allocates a tensor and uploads `chw`, a `[C][H][W]` array.
    pub fn from_chw(
        gpu: &Gpu,
        label: &str,
        channels: usize,
        height: usize,
        width: usize,
        chw: &[f32],
    ) -> GpuTensor {
        let tensor = Self::zeros(gpu, label, channels, height, width);
        tensor.write_chw(gpu, chw);
        tensor
    }

    /// Overwrites the tensor with `chw`, a `[C][H][W]` array.
    pub fn write_chw(&self, gpu: &Gpu, chw: &[f32]) {
        let packed = pack_chw(chw, self.channels, self.height, self.width);
        gpu.queue
            .write_buffer(&self.buffer, 0, bytemuck::cast_slice(&packed));
    }

    /// Reads the tensor back as a `[C][H][W]` array (blocks until the GPU is done).
    pub fn read_chw(&self, gpu: &Gpu) -> Result<Vec<f32>, GpuError> {
        let packed: Vec<f32> = read_buffer(gpu, &self.buffer, self.size_bytes(), None)?;
        Ok(unpack_chw(&packed, self.channels, self.height, self.width))
    }
}

/// Packs a `[C][H][W]` array into `[ceil(C / 4)][H][W][4]`, zero-padding channels.
pub fn pack_chw(chw: &[f32], channels: usize, height: usize, width: usize) -> Vec<f32> {
    assert_eq!(
        chw.len(),
        channels * height * width,
        "tensor data does not match its shape"
    );
    let plane = height * width;
    let mut packed = vec![0.0; channels.div_ceil(4) * plane * 4];
    for c in 0..channels {
        let (group, lane) = (c / 4, c % 4);
        for i in 0..plane {
            packed[(group * plane + i) * 4 + lane] = chw[c * plane + i];
        }
    }
    packed
}

/// Inverse of [`pack_chw`], dropping the padding channels.
pub fn unpack_chw(packed: &[f32], channels: usize, height: usize, width: usize) -> Vec<f32> {
    let plane = height * width;
    let mut chw = vec![0.0; channels * plane];
    for c in 0..channels {
        let (group, lane) = (c / 4, c % 4);
        for i in 0..plane {
            chw[c * plane + i] = packed[(group * plane + i) * 4 + lane];
        }
    }
    chw
}

/// Creates a zero-filled storage buffer that can also be copied to and from.
pub fn create_storage(gpu: &Gpu, label: &str, size: u64) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        // Zero-sized bindings are invalid; keep at least one vec4.
        size: size.max(16),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// Creates a buffer for reading `size` bytes back to the host.
pub fn create_staging(gpu: &Gpu, label: &str, size: u64) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// Copies the first `size` bytes of `buffer` to the host, through `staging` when
/// given (it must be at least `size` bytes) or a new staging buffer otherwise.
pub fn read_buffer<T: bytemuck::Pod>(
    gpu: &Gpu,
    buffer: &wgpu::Buffer,
    size: u64,
    staging: Option<&wgpu::Buffer>,
) -> Result<Vec<T>, GpuError> {
    let owned;
    let staging = match staging {
        Some(staging) => staging,
        None => {
            owned = create_staging(gpu, "readback staging", size);
            &owned
        }
    };
    let mut encoder = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("readback"),
        });
    encoder.copy_buffer_to_buffer(buffer, 0, staging, 0, size);
    gpu.queue.submit([encoder.finish()]);

    let slice = staging.slice(..size);
    let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
    slice.map_async(wgpu::MapMode::Read, move |result| {
        sender.send(result).ok();
    });
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| GpuError::Readback(e.to_string()))?;
    let mapped = pollster::block_on(receiver.receive())
        .ok_or_else(|| GpuError::Readback("the map callback was dropped".into()))?;
    mapped.map_err(|e| GpuError::Readback(e.to_string()))?;
    let values = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Readback(format!("{e:?}")))?;
        bytemuck::cast_slice::<u8, T>(&view).to_vec()
    };
    staging.unmap();
    Ok(values)
}
