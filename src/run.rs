//! The command's two long-running actions: a style transfer with progress,
//! per-layer losses and snapshots, and the benchmark.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use wgpu_style::bench;
use wgpu_style::cli::{BenchConfig, RunConfig};
use wgpu_style::engine::{self, Engine, LossReport};
use wgpu_style::gpu::Gpu;
use wgpu_style::image_io::{self, RgbImage};
use wgpu_style::preprocess::{blend_init, noise_init, preprocessed_to_rgb, rgb_to_preprocessed};
use wgpu_style::settings::{InitMode, LossSettings};
use wgpu_style::vgg::{self, VGG16_LAYERS};
use wgpu_style::weights::Vgg16Weights;

/// Reason a style transfer ended. The output image is written in every case.
pub enum Outcome {
    Finished,
    /// Stopped by Ctrl-C.
    Interrupted,
    /// Stopped because the loss became NaN or infinite.
    Diverged,
}

/// Loads an image; `role` names it in messages.
fn load(path: &Path, role: &str) -> anyhow::Result<RgbImage> {
    image_io::load_image(path).with_context(|| format!("loading the {role} image"))
}

/// Resizes `image` to `(width, height)` unless it already has that size.
fn resized(image: &RgbImage, (width, height): (u32, u32)) -> RgbImage {
    image_io::resize(image, width, height)
}

fn layer_names(layers: &[usize]) -> String {
    let names: Vec<&str> = layers.iter().map(|&l| VGG16_LAYERS[l].name).collect();
    names.join(",")
}

fn print_settings(config: &RunConfig, content: &RgbImage, style: &RgbImage) {
    let loss = &config.loss;
    println!(
        "content: {} at {}x{}",
        config.content.display(),
        content.width,
        content.height
    );
    println!(
        "style:   {} at {}x{}",
        config.style.display(),
        style.width,
        style.height
    );
    println!("output:  {}", config.output.display());
    println!(
        "loss:    content {} x [{}], style {} x [{}] (layer weights {:?}), tv {}",
        loss.content_weight,
        layer_names(&loss.content_layers),
        loss.style_weight,
        layer_names(&loss.style_layers),
        loss.style_layer_weights,
        loss.tv_weight
    );
    println!(
        "adam:    {} iterations, learning rate {}, beta1 {}, beta2 {}, epsilon {:e}; init {}{}, seed {}",
        config.iterations,
        config.adam.learning_rate,
        config.adam.beta1,
        config.adam.beta2,
        config.adam.epsilon,
        format!("{:?}", config.init).to_lowercase(),
        if config.init == InitMode::Blend { format!(" (noise ratio {})", config.noise_ratio) } else { String::new() },
        config.seed
    );
}

fn format_losses(settings: &LossSettings, report: &LossReport) -> String {
    let mut text = format!("total {:.4e}", report.total);
    for (k, &layer) in settings.content_layers.iter().enumerate() {
        text.push_str(&format!(
            "  content {} {:.3e}",
            VGG16_LAYERS[layer].name, report.content[k]
        ));
    }
    for (k, &layer) in settings.style_layers.iter().enumerate() {
        text.push_str(&format!(
            "  style {} {:.3e}",
            VGG16_LAYERS[layer].name, report.style[k]
        ));
    }
    if settings.tv_weight > 0.0 {
        text.push_str(&format!("  tv {:.3e}", report.tv));
    }
    text
}

/// Reads the current image back and writes it atomically.
fn save_current(engine: &Engine, path: &Path) -> anyhow::Result<()> {
    let (width, height) = engine.size();
    save_chw(&engine.read_image()?, width, height, path)
}

/// Writes a preprocessed `[3][H][W]` BGR image atomically.
fn save_chw(chw: &[f32], width: usize, height: usize, path: &Path) -> anyhow::Result<()> {
    let image = RgbImage {
        width: width as u32,
        height: height as u32,
        data: preprocessed_to_rgb(chw, width, height),
    };
    image_io::save_image(path, &image).with_context(|| format!("writing {}", path.display()))
}

/// Runs one style transfer as configured. Every input is checked before the
/// GPU work starts; the output is written at the end, on Ctrl-C and when the
/// loss diverges.
pub fn style_transfer(config: &RunConfig) -> anyhow::Result<Outcome> {
    let content = load(&config.content, "content")?;
    let style = load(&config.style, "style")?;
    let content_size = image_io::working_size(content.width, content.height, config.size);
    let style_size = image_io::working_size(style.width, style.height, config.style_size());
    config.check_image_size("content", content_size.0, content_size.1)?;
    config.check_image_size("style", style_size.0, style_size.1)?;
    let weights = Vgg16Weights::load(&config.weights)?;

    let gpu = Gpu::new(config.adapter.as_deref())?;
    println!("adapter: {}", gpu.describe());
    if gpu.is_software() {
        println!("         (no hardware GPU found: the software adapter works but is slow)");
    }
    // Check the adapter's limits before resizing, so that a huge --size fails at once.
    let (width, height) = (content_size.0 as usize, content_size.1 as usize);
    let (style_width, style_height) = (style_size.0 as usize, style_size.1 as usize);
    engine::check_image_size(&gpu.limits, &config.loss, "content", width, height)?;
    engine::check_image_size(
        &gpu.limits,
        &config.loss,
        "style",
        style_width,
        style_height,
    )?;
    let content = resized(&content, content_size);
    let style = resized(&style, style_size);
    print_settings(config, &content, &style);

    let content_pre = rgb_to_preprocessed(&content.data, width, height);
    let style_pre = rgb_to_preprocessed(&style.data, style_width, style_height);
    let init = match config.init {
        InitMode::Content => content_pre.clone(),
        InitMode::Noise => blend_init(
            &content_pre,
            &noise_init(config.seed, content_pre.len()),
            1.0,
        ),
        InitMode::Blend => blend_init(
            &content_pre,
            &noise_init(config.seed, content_pre.len()),
            config.noise_ratio,
        ),
    };
    let setup = Instant::now();
    let mut engine = Engine::new(
        &gpu,
        &weights,
        &config.loss,
        config.adam,
        &content_pre,
        (width, height),
        &style_pre,
        (style_width, style_height),
        &init,
    )?;
    println!(
        "setup:   {:.1} s (weights uploaded, targets computed)",
        setup.elapsed().as_secs_f64()
    );

    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: stop at once without writing.
            std::process::exit(130);
        }
    })
    .context("installing the Ctrl-C handler")?;

    let progress = ProgressBar::new(u64::from(config.iterations));
    progress.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} iterations  {per_sec}  ETA {eta}  {msg}",
        )
        .expect("valid progress template"),
    );
    let start = Instant::now();
    let mut outcome = Outcome::Finished;
    // The latest image read back at a print point with a finite loss, kept so that
    // a diverged run still ends with a usable picture.
    let mut last_good: Option<(u32, Vec<f32>)> = None;
    for iteration in 1..=config.iterations {
        engine.step();
        progress.set_position(u64::from(iteration));

        let print_point = config.print_every > 0
            && (iteration == 1
                || iteration % config.print_every == 0
                || iteration == config.iterations);
        if print_point {
            let report = engine.read_losses()?;
            let rate = f64::from(iteration) / start.elapsed().as_secs_f64();
            progress.set_message(format!("loss {:.4e}", report.total));
            // Losses are evaluated at the image before this iteration's update.
            progress.suspend(|| {
                println!(
                    "iteration {iteration:>5}  {}  ({rate:.2} it/s)",
                    format_losses(&config.loss, &report)
                );
            });
            if !report.total.is_finite() {
                progress.suspend(|| {
                    println!(
                        "stopping: the loss became {} at iteration {iteration}; try a lower \
                         --learning-rate or smaller loss weights",
                        report.total
                    )
                });
                outcome = Outcome::Diverged;
                break;
            }
            let image = engine.read_image()?;
            if image.iter().all(|v| v.is_finite()) {
                last_good = Some((iteration, image));
            }
        }
        if config.snapshot_every > 0
            && iteration % config.snapshot_every == 0
            && iteration < config.iterations
        {
            let path = config.snapshot_path(iteration);
            save_current(&engine, &path)?;
            progress.suspend(|| println!("snapshot: {}", path.display()));
        }
        if interrupted.load(Ordering::SeqCst) {
            let reason = "interrupted by a signal (Ctrl-C, SIGTERM or SIGHUP)";
            progress.suspend(|| println!("stopping: {reason} after iteration {iteration}"));
            outcome = Outcome::Interrupted;
            break;
        }
    }
    progress.finish_and_clear();
    let (width, height) = engine.size();
    let mut image = engine.read_image()?;
    if image.iter().any(|v| !v.is_finite()) {
        // NaN or infinite pixels: the optimisation diverged, even where no loss was printed.
        outcome = Outcome::Diverged;
        match last_good.take() {
            Some((iteration, good)) => {
                println!("the image diverged; writing the one from iteration {iteration} instead");
                image = good;
            }
            None => println!(
                "the image diverged and no earlier image was kept (see --print-every); \
                 try a lower --learning-rate or smaller loss weights"
            ),
        }
    }
    save_chw(&image, width, height, &config.output)?;
    let elapsed = start.elapsed().as_secs_f64();
    let done = engine.iteration();
    let noun = if done == 1 { "iteration" } else { "iterations" };
    println!(
        "wrote {} after {done} {noun} in {elapsed:.1} s ({:.2} it/s)",
        config.output.display(),
        f64::from(done) / elapsed
    );
    Ok(outcome)
}

/// Runs the benchmark at each configured size and prints the figures.
pub fn bench(config: &BenchConfig) -> anyhow::Result<()> {
    let weights = Vgg16Weights::load(&config.weights)?;
    let gpu = Gpu::new(config.adapter.as_deref())?;
    println!("adapter: {}", gpu.describe());
    let settings = LossSettings {
        content_layers: vec![vgg::layer_index("conv4_2")?],
        content_layer_weights: vec![1.0],
        style_layers: vgg::parse_layer_list(&vgg::DEFAULT_STYLE_LAYERS, "style layers")?,
        style_layer_weights: vec![0.2; 5],
        content_weight: 5.0,
        style_weight: 100.0,
        tv_weight: 0.0,
    };
    if !gpu.can_time_kernels() {
        println!("(this adapter has no timestamp queries: no per-kernel times)");
    }
    for &size in &config.sizes {
        let result = bench::bench_size(&gpu, &weights, &settings, size, config.iterations)?;
        print!("{}", bench::format_result(&result));
    }
    Ok(())
}
