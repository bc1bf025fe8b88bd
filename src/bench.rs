//! `wgpu-style bench`: milliseconds per iteration and effective GFLOP/s of the
//! whole optimisation loop at a few square sizes, on synthetic images, with the
//! default layers and weights. Per-kernel times need timestamp queries, except on
//! a CPU adapter, where the host's clock times each dispatch.

use std::time::Instant;

use crate::engine::{Engine, EngineError};
use crate::gpu::{Gpu, KernelTiming};
use crate::preprocess::noise_init;
use crate::settings::{AdamSettings, LossSettings};
use crate::weights::Vgg16Weights;

/// Measurements at one image size.
#[derive(Debug, Clone)]
pub struct BenchResult {
    pub size: u32,
    pub iterations: u32,
    /// Wall-clock milliseconds per iteration, GPU work included.
    pub ms_per_iteration: f64,
    /// Floating-point operations of one iteration: conv multiply-adds x2 forward,
    /// the same again backward, plus the Gram matrices and their gradients.
    pub flops_per_iteration: f64,
    /// Time per kernel over one iteration; empty where it cannot be measured.
    pub kernels: Vec<KernelTiming>,
}

impl BenchResult {
    pub fn gflops(&self) -> f64 {
        self.flops_per_iteration / (self.ms_per_iteration * 1e-3) / 1e9
    }
}

/// Times `iterations` iterations at `size` x `size` pixels after two warm-up
/// iterations (shaders compile at their first dispatch).
pub fn bench_size(
    gpu: &Gpu,
    weights: &Vgg16Weights,
    settings: &LossSettings,
    size: u32,
    iterations: u32,
) -> Result<BenchResult, EngineError> {
    let side = size as usize;
    // Fail on the adapter's limits before allocating the images.
    crate::engine::check_image_size(&gpu.limits, settings, "benchmark", side, side)?;
    let len = 3 * side * side;
    // Uniform noise in [-20, 20) around the mean colour, different for each image.
    let content = noise_init(1, len);
    let style = noise_init(2, len);
    let extent = (side, side);
    let mut engine = Engine::new(
        gpu,
        weights,
        settings,
        AdamSettings::default(),
        &content,
        extent,
        &style,
        extent,
        &content,
    )?;
    for _ in 0..2 {
        engine.step();
    }
    gpu.wait_idle();

    let start = Instant::now();
    for _ in 0..iterations {
        engine.step();
    }
    gpu.wait_idle();
    let elapsed = start.elapsed().as_secs_f64();
    // Keep the timed loop honest: read the loss once, after timing.
    engine.read_losses()?;

    let kernels = if gpu.can_time_kernels() {
        engine.time_kernels()?
    } else {
        Vec::new()
    };
    Ok(BenchResult {
        size,
        iterations,
        ms_per_iteration: elapsed * 1e3 / f64::from(iterations),
        flops_per_iteration: engine.flops_per_iteration(),
        kernels,
    })
}

/// Formats one result as a few lines of text.
pub fn format_result(result: &BenchResult) -> String {
    let mut text = format!(
        "{0}x{0}: {1:.1} ms per iteration, {2:.2} GFLOP per iteration, {3:.1} GFLOP/s ({4} iterations)\n",
        result.size,
        result.ms_per_iteration,
        result.flops_per_iteration / 1e9,
        result.gflops(),
        result.iterations,
    );
    if !result.kernels.is_empty() {
        let total: f64 = result.kernels.iter().map(|k| k.milliseconds).sum();
        text.push_str(&format!(
            "  {:<18} {:>10} {:>10} {:>7} {:>10}\n",
            "kernel", "dispatches", "ms", "share", "GFLOP/s"
        ));
        for kernel in &result.kernels {
            let gflops = if kernel.flops > 0.0 && kernel.milliseconds > 0.0 {
                format!("{:.1}", kernel.flops / (kernel.milliseconds * 1e-3) / 1e9)
            } else {
                "-".to_string()
            };
            text.push_str(&format!(
                "  {:<18} {:>10} {:>10.2} {:>6.1}% {:>10}\n",
                kernel.kernel,
                kernel.dispatches,
                kernel.milliseconds,
                100.0 * kernel.milliseconds / total,
                gflops
            ));
        }
        text.push_str(&format!(
            "  kernel time of one timed iteration: {total:.1} ms\n"
        ));
    }
    text
}
