//! Neural style transfer (Gatys, Ecker and Bethge) with every step of the
//! optimisation loop running in WGSL compute shaders through wgpu.

pub mod bench;
pub mod cli;
pub mod engine;
pub mod gpu;
pub mod image_io;
pub mod preprocess;
pub mod reference;
pub mod settings;
pub mod vgg;
pub mod weights;
