//! The wgpu side: adapter and device selection, compiled kernels, tensors in GPU
//! buffers and the dispatches that operate on them.

mod context;
mod kernels;
pub mod ops;
mod program;
mod tensor;
mod tiled_source;

pub use context::{Gpu, GpuError};
pub use kernels::{Kernel, Kernels, TiledKernels, SHADERS};
pub use program::{Dispatch, KernelTiming, Program};
pub use tensor::GpuTensor;
pub use tensor::{
    create_staging as tensor_staging, create_storage, pack_chw, read_buffer, unpack_chw,
};
pub use tiled_source::{tiled_source, Tile, TiledKind};
