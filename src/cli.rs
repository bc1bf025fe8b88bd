//! Command-line interface: the clap definition of every option and its validation into a
//! [`RunConfig`] or [`BenchConfig`], done before any GPU work starts.
//!
//! Three forms are accepted:
//!
//! ```text
//! wgpu-style CONTENT STYLE -o OUT.png [options]
//! wgpu-style bench [--sizes 128,256] [--iterations N] [--adapter NAME]
//! wgpu-style --list-layers
//! ```

use std::ffi::OsString;
use std::fmt;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use thiserror::Error;

use crate::image_io::{self, ImageIoError};
use crate::settings::{AdamSettings, InitMode, LossSettings};
use crate::vgg::{self, LayerError, VGG16_LAYERS};

/// Default `--content-weight` (alpha). Adam only sees the ratio alpha / beta = 100,
/// chosen by eye on photos and paintings at 128 px: the photo stays recognisable
/// while its textures and colours follow the painting within 25 to 100 iterations.
pub const DEFAULT_CONTENT_WEIGHT: f32 = 5.0;
/// Default `--style-weight` (beta).
pub const DEFAULT_STYLE_WEIGHT: f32 = 0.05;
/// Default `--tv-weight`.
pub const DEFAULT_TV_WEIGHT: f32 = 0.0;

/// Default longest side of the working image, in pixels.
pub const DEFAULT_SIZE: u32 = 512;
/// Default number of optimisation steps.
pub const DEFAULT_ITERATIONS: u32 = 500;
/// Default image sizes (longest side, in pixels) that `bench` times.
pub const DEFAULT_BENCH_SIZES: &str = "128,256";
/// Default number of timed iterations per size in `bench`.
pub const DEFAULT_BENCH_ITERATIONS: u32 = 20;

/// [`vgg::DEFAULT_CONTENT_LAYERS`] as one option value, so that help shows it with commas.
const DEFAULT_CONTENT_LAYERS: &str = "conv4_2";
/// [`vgg::DEFAULT_STYLE_LAYERS`] as one option value.
const DEFAULT_STYLE_LAYERS: &str = "conv1_1,conv2_1,conv3_1,conv4_1,conv5_1";

/// Default VGG-16 weights file, inside the source tree.
const DEFAULT_WEIGHTS_PATH: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/weights/vgg16.safetensors");

const HEADING_IO: &str = "Input/output";
const HEADING_LOSS: &str = "Loss";
const HEADING_OPTIMISATION: &str = "Optimisation";
const HEADING_OUTPUT: &str = "Output and snapshots";
const HEADING_DEVICE: &str = "Device";

/// Neural style transfer (Gatys, Ecker and Bethge) with VGG-16, run in WGSL compute shaders
/// through wgpu.
#[derive(Debug, Parser)]
#[command(
    name = "wgpu-style",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    arg_required_else_help = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Content image: the picture whose layout the result keeps.
    #[arg(
        value_name = "CONTENT",
        required_unless_present = "list_layers",
        help_heading = HEADING_IO
    )]
    pub content: Option<PathBuf>,

    /// Style image: the picture whose textures and colours the result takes on.
    #[arg(
        value_name = "STYLE",
        required_unless_present = "list_layers",
        help_heading = HEADING_IO
    )]
    pub style: Option<PathBuf>,

    /// Output image file. Its extension selects the format: png, jpg, jpeg, bmp, tif, tiff,
    /// webp, tga, ppm or qoi.
    #[arg(
        short,
        long,
        value_name = "OUT",
        required_unless_present = "list_layers",
        help_heading = HEADING_IO
    )]
    pub output: Option<PathBuf>,

    /// Longest side of the working image, in pixels. The content image is resized to it,
    /// keeping its aspect ratio.
    #[arg(
        long,
        value_name = "PIXELS",
        allow_negative_numbers = true,
        default_value_t = DEFAULT_SIZE,
        help_heading = HEADING_IO
    )]
    pub size: u32,

    /// Scale of the style image relative to the working image: its longest side becomes
    /// size * style-scale pixels.
    #[arg(
        long,
        value_name = "FACTOR",
        allow_negative_numbers = true,
        default_value_t = 1.0,
        help_heading = HEADING_IO
    )]
    pub style_scale: f32,

    /// VGG-16 weights file (safetensors).
    #[arg(
        long,
        value_name = "FILE",
        default_value = DEFAULT_WEIGHTS_PATH,
        help_heading = HEADING_IO
    )]
    pub weights: PathBuf,

    /// Comma-separated layers whose activations the content loss compares, as conv4_2 or
    /// block4_conv2 (--list-layers prints all names).
    #[arg(
        long,
        value_name = "LAYERS",
        value_delimiter = ',',
        default_value = DEFAULT_CONTENT_LAYERS,
        help_heading = HEADING_LOSS
    )]
    pub content_layers: Vec<String>,

    /// Comma-separated layers whose Gram matrices the style loss compares.
    #[arg(
        long,
        value_name = "LAYERS",
        value_delimiter = ',',
        default_value = DEFAULT_STYLE_LAYERS,
        help_heading = HEADING_LOSS
    )]
    pub style_layers: Vec<String>,

    /// Comma-separated weight of each style layer, in the order of --style-layers
    /// [default: 1/n for each of the n style layers].
    #[arg(
        long,
        value_name = "WEIGHTS",
        value_delimiter = ',',
        allow_negative_numbers = true,
        help_heading = HEADING_LOSS
    )]
    pub style_layer_weights: Option<Vec<f32>>,

    /// Weight alpha of the content loss in the total loss. Only the ratio to
    /// --style-weight matters: the default ratio of 100 keeps the photo recognisable while its
    /// textures and colours follow the painting; raise it to keep more of the photo.
    #[arg(
        long,
        value_name = "ALPHA",
        allow_negative_numbers = true,
        default_value_t = DEFAULT_CONTENT_WEIGHT,
        help_heading = HEADING_LOSS
    )]
    pub content_weight: f32,

    /// Weight beta of the style loss in the total loss (see --content-weight). The style
    /// loss is about 1e4 to 1e6 times the content loss at the start, hence the small default.
    #[arg(
        long,
        value_name = "BETA",
        allow_negative_numbers = true,
        default_value_t = DEFAULT_STYLE_WEIGHT,
        help_heading = HEADING_LOSS
    )]
    pub style_weight: f32,

    /// Weight of the total variation loss, which smooths the result. Set 0 to turn it off.
    #[arg(
        long,
        value_name = "WEIGHT",
        allow_negative_numbers = true,
        default_value_t = DEFAULT_TV_WEIGHT,
        help_heading = HEADING_LOSS
    )]
    pub tv_weight: f32,

    /// Number of Adam steps.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_ITERATIONS,
        help_heading = HEADING_OPTIMISATION
    )]
    pub iterations: u32,

    /// Adam learning rate, in pixel units on the 0..255 scale.
    #[arg(
        long,
        value_name = "RATE",
        default_value_t = AdamSettings::default().learning_rate,
        allow_negative_numbers = true,
        help_heading = HEADING_OPTIMISATION
    )]
    pub learning_rate: f32,

    /// Adam decay rate of the first moment (mean of the gradient), in [0, 1).
    #[arg(
        long,
        value_name = "BETA1",
        default_value_t = AdamSettings::default().beta1,
        allow_negative_numbers = true,
        help_heading = HEADING_OPTIMISATION
    )]
    pub beta1: f32,

    /// Adam decay rate of the second moment (mean of the squared gradient), in [0, 1).
    #[arg(
        long,
        value_name = "BETA2",
        default_value_t = AdamSettings::default().beta2,
        allow_negative_numbers = true,
        help_heading = HEADING_OPTIMISATION
    )]
    pub beta2: f32,

    /// Adam epsilon, added to the root of the second moment before dividing by it.
    #[arg(
        long,
        value_name = "EPSILON",
        default_value = "1e-8",
        allow_negative_numbers = true,
        help_heading = HEADING_OPTIMISATION
    )]
    pub epsilon: f32,

    /// Starting image of the optimisation.
    #[arg(
        long,
        value_enum,
        default_value_t = InitMode::Content,
        help_heading = HEADING_OPTIMISATION
    )]
    pub init: InitMode,

    /// Fraction of noise in the starting image for --init blend, in [0, 1].
    #[arg(
        long,
        value_name = "FRACTION",
        allow_negative_numbers = true,
        default_value_t = 0.6,
        help_heading = HEADING_OPTIMISATION
    )]
    pub noise_ratio: f32,

    /// Seed of the random noise for --init noise and --init blend.
    #[arg(long, value_name = "SEED", default_value_t = 0, help_heading = HEADING_OPTIMISATION)]
    pub seed: u64,

    /// Print the per-layer losses every N iterations. Set 0 to turn the prints off.
    #[arg(long, value_name = "N", default_value_t = 50, help_heading = HEADING_OUTPUT)]
    pub print_every: u32,

    /// Save the current image every N iterations, as <output stem>_<iteration>.<output
    /// extension>. Set 0 to turn snapshots off.
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = HEADING_OUTPUT)]
    pub snapshot_every: u32,

    /// Folder for snapshots [default: the output image's folder].
    #[arg(long, value_name = "DIR", help_heading = HEADING_OUTPUT)]
    pub snapshot_dir: Option<PathBuf>,

    /// Use the first GPU adapter whose name contains NAME, ignoring case [default: the best
    /// hardware adapter, the software one only when there is no other].
    #[arg(long, value_name = "NAME", help_heading = HEADING_DEVICE)]
    pub adapter: Option<String>,

    /// Print the VGG-16 layer names, their channels and minimum image sides, then exit.
    #[arg(long, help_heading = HEADING_DEVICE)]
    pub list_layers: bool,
}

/// Subcommands besides a style transfer run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Time the forward and backward passes at several image sizes.
    Bench(BenchArgs),
}

/// Options of `wgpu-style bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Comma-separated square image sizes to time, in pixels per side.
    #[arg(long, value_name = "PIXELS", value_delimiter = ',', default_value = DEFAULT_BENCH_SIZES)]
    pub sizes: Vec<u32>,

    /// Number of timed iterations at each size.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BENCH_ITERATIONS)]
    pub iterations: u32,

    /// Use the first GPU adapter whose name contains NAME, ignoring case [default: the best
    /// hardware adapter, the software one only when there is no other].
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,

    /// VGG-16 weights file (safetensors).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_WEIGHTS_PATH)]
    pub weights: PathBuf,
}

/// Action that the command line requests, after validation.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Run(Box<RunConfig>),
    Bench(BenchConfig),
    ListLayers,
}

/// Validated settings of one style transfer run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    pub content: PathBuf,
    pub style: PathBuf,
    pub output: PathBuf,
    /// Longest side of the working image, in pixels.
    pub size: u32,
    /// Longest side of the style image relative to `size`.
    pub style_scale: f32,
    /// VGG-16 weights file. Its existence is not checked here.
    pub weights: PathBuf,
    pub loss: LossSettings,
    pub adam: AdamSettings,
    pub iterations: u32,
    pub init: InitMode,
    /// Fraction of noise in the starting image for [`InitMode::Blend`].
    pub noise_ratio: f32,
    pub seed: u64,
    /// Iterations between per-layer loss prints, where 0 means never.
    pub print_every: u32,
    /// Iterations between snapshots, where 0 means never.
    pub snapshot_every: u32,
    pub snapshot_dir: PathBuf,
    /// Case-insensitive substring of the adapter name, already lowercased.
    pub adapter: Option<String>,
}

/// Validated settings of `wgpu-style bench`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchConfig {
    /// Square image sizes, in pixels per side.
    pub sizes: Vec<u32>,
    pub iterations: u32,
    /// Case-insensitive substring of the adapter name, already lowercased.
    pub adapter: Option<String>,
    /// VGG-16 weights file. Its existence is not checked here.
    pub weights: PathBuf,
}

/// An invalid command line, found before any GPU work.
#[derive(Debug, Error)]
pub enum CliError {
    #[error("missing {argument}: run wgpu-style CONTENT STYLE -o OUT.png")]
    MissingArgument { argument: &'static str },

    #[error("{role} image {path} not found: check the path")]
    InputNotFound { role: &'static str, path: PathBuf },

    #[error("{role} image {path} is not a regular file: give the path of an image file")]
    InputNotFile { role: &'static str, path: PathBuf },

    #[error("cannot read {role} image {path} ({cause}): check its permissions")]
    InputUnreadable {
        role: &'static str,
        path: PathBuf,
        cause: io::Error,
    },

    #[error("invalid --output: {0}")]
    Output(ImageIoError),

    #[error("invalid --snapshot-dir: {0}")]
    SnapshotDir(ImageIoError),

    #[error("invalid {option}: {error}")]
    Layers {
        option: &'static str,
        error: LayerError,
    },

    #[error(
        "--style-layer-weights has {weights} values but --style-layers names {layers} layers: \
         give one weight per style layer"
    )]
    StyleLayerWeightCount { weights: usize, layers: usize },

    #[error("invalid {option} value {value}: expected {expected}")]
    InvalidValue {
        option: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error(
        "--content-weight, --style-weight and --tv-weight are all 0, so there is nothing to \
         optimise: set at least one of them above 0"
    )]
    NoLossTerm,

    #[error(
        "--style-layer-weights are all 0 although --style-weight is not: give at least one \
         style layer a weight above 0, or set --style-weight 0"
    )]
    ZeroStyleLayerWeights,

    #[error(
        "--output {output} is the {role} image: choose another output path so that the input \
         is not overwritten"
    )]
    OutputIsInput { output: PathBuf, role: &'static str },

    #[error(
        "{option} gives a {role} image side of {side} pixels, but layer {layer} needs at least \
         {min_side}: raise {option} or choose shallower layers"
    )]
    SizeTooSmall {
        option: &'static str,
        role: &'static str,
        side: u32,
        layer: &'static str,
        min_side: u32,
    },

    #[error(
        "the {role} image is {width}x{height} pixels after resizing, but layer {layer} needs \
         each side to be at least {min_side}: raise --size{scale_hint} or choose shallower layers"
    )]
    ImageTooSmall {
        role: &'static str,
        width: u32,
        height: u32,
        layer: &'static str,
        min_side: u32,
        scale_hint: &'static str,
    },
}

/// Turns parsed arguments into the requested action, validating them.
pub fn resolve(args: Args) -> Result<Action, CliError> {
    if args.list_layers {
        return Ok(Action::ListLayers);
    }
    match args.command {
        Some(Command::Bench(bench)) => validate_bench(bench).map(Action::Bench),
        None => validate(args).map(|config| Action::Run(Box::new(config))),
    }
}

/// Validates the options of a style transfer run. Files are checked for existence and
/// readability here, but images are decoded later by [`image_io::load_image`].
pub fn validate(args: Args) -> Result<RunConfig, CliError> {
    let content = args.content.ok_or(CliError::MissingArgument {
        argument: "CONTENT image",
    })?;
    let style = args.style.ok_or(CliError::MissingArgument {
        argument: "STYLE image",
    })?;
    let output = args.output.ok_or(CliError::MissingArgument {
        argument: "--output",
    })?;
    check_input_file("content", &content)?;
    check_input_file("style", &style)?;
    image_io::check_output_path(&output).map_err(CliError::Output)?;
    for (role, input) in [("content", &content), ("style", &style)] {
        if same_file(&output, input) {
            return Err(CliError::OutputIsInput {
                output: output.clone(),
                role,
            });
        }
    }

    let loss = validate_loss(
        &args.content_layers,
        &args.style_layers,
        args.style_layer_weights,
        [args.content_weight, args.style_weight, args.tv_weight],
    )?;

    check_sizes(args.size, args.style_scale, &loss)?;
    let adam = validate_adam(args.learning_rate, args.beta1, args.beta2, args.epsilon)?;
    if args.iterations == 0 {
        return Err(invalid("--iterations", 0, "a whole number of at least 1"));
    }
    if !(0.0..=1.0).contains(&args.noise_ratio) {
        return Err(invalid(
            "--noise-ratio",
            args.noise_ratio,
            "a fraction in [0, 1], such as 0.6",
        ));
    }

    // Snapshots go next to the output unless a folder is given. An explicit folder is checked
    // even with snapshots off, so that a typo shows up now.
    let snapshot_dir = match args.snapshot_dir {
        Some(dir) => {
            image_io::check_output_dir(&dir).map_err(CliError::SnapshotDir)?;
            dir
        }
        None => image_io::parent_dir(&output),
    };

    Ok(RunConfig {
        content,
        style,
        output,
        size: args.size,
        style_scale: args.style_scale,
        weights: args.weights,
        loss,
        adam,
        iterations: args.iterations,
        init: args.init,
        noise_ratio: args.noise_ratio,
        seed: args.seed,
        print_every: args.print_every,
        snapshot_every: args.snapshot_every,
        snapshot_dir,
        adapter: validate_adapter(args.adapter)?,
    })
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Validates the options of `wgpu-style bench`.
pub fn validate_bench(args: BenchArgs) -> Result<BenchConfig, CliError> {
    // The benchmark runs the whole network, so every size must reach the last layer.
    let last = VGG16_LAYERS.len() - 1;
    let min_side = vgg::min_image_side(last);
    if let Some(&size) = args.sizes.iter().find(|&&size| size < min_side) {
        return Err(CliError::SizeTooSmall {
            option: "--sizes",
            role: "benchmark",
            side: size,
            layer: VGG16_LAYERS[last].name,
            min_side,
        });
    }
    if args.iterations == 0 {
        return Err(invalid("--iterations", 0, "a whole number of at least 1"));
    }
    Ok(BenchConfig {
        sizes: args.sizes,
        iterations: args.iterations,
        adapter: validate_adapter(args.adapter)?,
        weights: args.weights,
    })
}

impl RunConfig {
    /// Returns the longest side of the style image in pixels: `size * style_scale`, rounded,
    /// at least 1.
    pub fn style_size(&self) -> u32 {
        scaled_side(self.size, self.style_scale)
    }

    /// Returns the path of the snapshot taken after `iteration`:
    /// `<snapshot dir>/<output stem>_<iteration>.<output extension>`, with the iteration
    /// zero-padded to the number of digits of `iterations` so that names sort in order.
    pub fn snapshot_path(&self, iteration: u32) -> PathBuf {
        let digits = self.iterations.to_string().len();
        let mut name = OsString::new();
        if let Some(stem) = self.output.file_stem() {
            name.push(stem);
        }
        name.push(format!("_{iteration:0digits$}"));
        if let Some(extension) = self.output.extension() {
            name.push(".");
            name.push(extension);
        }
        self.snapshot_dir.join(name)
    }

    /// Checks that a resized image of `width` x `height` pixels still reaches the deepest
    /// layer the loss reads. `role` is "content" or "style", for the message.
    pub fn check_image_size(
        &self,
        role: &'static str,
        width: u32,
        height: u32,
    ) -> Result<(), CliError> {
        let deepest = self.loss.deepest_layer();
        let min_side = vgg::min_image_side(deepest);
        if width.min(height) >= min_side {
            return Ok(());
        }
        let scale_hint = if role == "style" {
            " or --style-scale"
        } else {
            ""
        };
        Err(CliError::ImageTooSmall {
            role,
            width,
            height,
            layer: VGG16_LAYERS[deepest].name,
            min_side,
            scale_hint,
        })
    }
}

/// Formats the VGG-16 layer table that `--list-layers` prints.
pub fn list_layers_text() -> String {
    let mut text = String::from(
        "VGG-16 convolution layers in forward order.\n\
         Either name works in --content-layers and --style-layers.\n\
         min side: the smallest image side, in pixels, for which the layer output still has \
         a pixel.\n\n",
    );
    let _ = writeln!(
        text,
        "{:<8} {:<13} {:>11} {:>12} {:>8}  default",
        "name", "Keras name", "in channels", "out channels", "min side"
    );
    for (index, layer) in VGG16_LAYERS.iter().enumerate() {
        let row = format!(
            "{:<8} {:<13} {:>11} {:>12} {:>8}  {}",
            layer.name,
            layer.keras_name,
            layer.in_channels,
            layer.out_channels,
            vgg::min_image_side(index),
            default_use(layer.name)
        );
        text.push_str(row.trim_end());
        text.push('\n');
    }
    text
}

/// Returns which loss reads `name` by default: "content", "style" or "".
fn default_use(name: &str) -> &'static str {
    if vgg::DEFAULT_CONTENT_LAYERS.contains(&name) {
        "content"
    } else if vgg::DEFAULT_STYLE_LAYERS.contains(&name) {
        "style"
    } else {
        ""
    }
}

/// Builds a [`CliError::InvalidValue`]. Values are shown with `Debug`, so floats keep a
/// decimal point or exponent (`1.0`, `1e-8`) and strings show their quotes.
fn invalid(option: &'static str, value: impl fmt::Debug, expected: &'static str) -> CliError {
    CliError::InvalidValue {
        option,
        value: format!("{value:?}"),
        expected,
    }
}

/// Checks that `path` is a regular file that this process can open for reading.
fn check_input_file(role: &'static str, path: &Path) -> Result<(), CliError> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(cause) if cause.kind() == io::ErrorKind::NotFound => {
            return Err(CliError::InputNotFound {
                role,
                path: path.to_path_buf(),
            })
        }
        Err(cause) => {
            return Err(CliError::InputUnreadable {
                role,
                path: path.to_path_buf(),
                cause,
            })
        }
    };
    if !metadata.is_file() {
        return Err(CliError::InputNotFile {
            role,
            path: path.to_path_buf(),
        });
    }
    File::open(path)
        .map(drop)
        .map_err(|cause| CliError::InputUnreadable {
            role,
            path: path.to_path_buf(),
            cause,
        })
}

/// Parses the layer lists and checks the loss weights. `weights` is
/// `[content_weight, style_weight, tv_weight]`.
fn validate_loss(
    content_layers: &[String],
    style_layers: &[String],
    style_layer_weights: Option<Vec<f32>>,
    weights: [f32; 3],
) -> Result<LossSettings, CliError> {
    let content_layers =
        vgg::parse_layer_list(content_layers, "--content-layers").map_err(|error| {
            CliError::Layers {
                option: "--content-layers",
                error,
            }
        })?;
    let style_layers = vgg::parse_layer_list(style_layers, "--style-layers").map_err(|error| {
        CliError::Layers {
            option: "--style-layers",
            error,
        }
    })?;

    let style_layer_weights = match style_layer_weights {
        Some(layer_weights) => {
            if layer_weights.len() != style_layers.len() {
                return Err(CliError::StyleLayerWeightCount {
                    weights: layer_weights.len(),
                    layers: style_layers.len(),
                });
            }
            for &weight in &layer_weights {
                check_weight("--style-layer-weights", weight)?;
            }
            layer_weights
        }
        None => equal_weights(style_layers.len()),
    };

    let [content_weight, style_weight, tv_weight] = weights;
    check_weight("--content-weight", content_weight)?;
    check_weight("--style-weight", style_weight)?;
    check_weight("--tv-weight", tv_weight)?;
    if weights.iter().all(|&weight| weight == 0.0) {
        return Err(CliError::NoLossTerm);
    }
    if style_weight != 0.0 && style_layer_weights.iter().all(|&weight| weight == 0.0) {
        return Err(CliError::ZeroStyleLayerWeights);
    }

    Ok(LossSettings {
        content_layer_weights: equal_weights(content_layers.len()),
        content_layers,
        style_layers,
        style_layer_weights,
        content_weight,
        style_weight,
        tv_weight,
    })
}

fn equal_weights(count: usize) -> Vec<f32> {
    vec![1.0 / count as f32; count]
}

fn check_weight(option: &'static str, weight: f32) -> Result<(), CliError> {
    if weight.is_finite() && weight >= 0.0 {
        Ok(())
    } else {
        Err(invalid(option, weight, "a finite number of at least 0"))
    }
}

/// Checks that the content and style images at their working sizes reach the deepest layer
/// the loss reads. Only the longest side is known before decoding, so
/// [`RunConfig::check_image_size`] repeats the check on the real sizes.
fn check_sizes(size: u32, style_scale: f32, loss: &LossSettings) -> Result<(), CliError> {
    if size == 0 {
        return Err(invalid(
            "--size",
            0,
            "a side length of at least 1 pixel, such as 512",
        ));
    }
    if !(style_scale.is_finite() && style_scale > 0.0) {
        return Err(invalid(
            "--style-scale",
            style_scale,
            "a finite number above 0, such as 1.0",
        ));
    }

    let deepest = loss.deepest_layer();
    let min_side = vgg::min_image_side(deepest);
    let layer = VGG16_LAYERS[deepest].name;
    if size < min_side {
        return Err(CliError::SizeTooSmall {
            option: "--size",
            role: "content",
            side: size,
            layer,
            min_side,
        });
    }
    let style_side = scaled_side(size, style_scale);
    if style_side < min_side {
        return Err(CliError::SizeTooSmall {
            option: "--style-scale",
            role: "style",
            side: style_side,
            layer,
            min_side,
        });
    }
    Ok(())
}

/// Returns `size * scale` rounded to whole pixels, at least 1 and saturating at `u32::MAX`.
fn scaled_side(size: u32, scale: f32) -> u32 {
    let side = (f64::from(size) * f64::from(scale)).round();
    (side as u32).max(1)
}

fn validate_adam(
    learning_rate: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
) -> Result<AdamSettings, CliError> {
    if !(learning_rate.is_finite() && learning_rate > 0.0) {
        return Err(invalid(
            "--learning-rate",
            learning_rate,
            "a finite number above 0, such as 2.0",
        ));
    }
    // Adam divides by 1 - beta^t, which is 0 for beta = 1.
    if !(0.0..1.0).contains(&beta1) {
        return Err(invalid("--beta1", beta1, "a number in [0, 1), such as 0.9"));
    }
    if !(0.0..1.0).contains(&beta2) {
        return Err(invalid(
            "--beta2",
            beta2,
            "a number in [0, 1), such as 0.999",
        ));
    }
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return Err(invalid(
            "--epsilon",
            epsilon,
            "a finite number above 0, such as 1e-8",
        ));
    }
    Ok(AdamSettings {
        learning_rate,
        beta1,
        beta2,
        epsilon,
    })
}

/// Trims and lowercases the adapter filter, rejecting one that is empty.
fn validate_adapter(adapter: Option<String>) -> Result<Option<String>, CliError> {
    match adapter {
        None => Ok(None),
        Some(name) if name.trim().is_empty() => Err(invalid(
            "--adapter",
            name,
            "part of an adapter name, such as nvidia",
        )),
        Some(name) => Ok(Some(name.trim().to_lowercase())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use tempfile::TempDir;

    /// A temporary folder with a content and a style file. Validation only opens them, so
    /// they need not be images.
    struct Fixture {
        dir: TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("create a temporary directory");
            fs::write(dir.path().join("content.png"), b"content").unwrap();
            fs::write(dir.path().join("style.jpg"), b"style").unwrap();
            Fixture { dir }
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).to_string_lossy().into_owned()
        }

        /// Builds the argument list of a run with valid files, followed by `extra`.
        fn run_args(&self, extra: &[&str]) -> Vec<String> {
            let mut args = vec![
                "wgpu-style".to_string(),
                self.path("content.png"),
                self.path("style.jpg"),
                "-o".to_string(),
                self.path("out.png"),
            ];
            args.extend(extra.iter().map(|arg| arg.to_string()));
            args
        }

        fn validate(&self, extra: &[&str]) -> Result<RunConfig, CliError> {
            let args = Args::try_parse_from(self.run_args(extra)).expect("clap accepts the line");
            validate(args)
        }

        /// Returns the message of the validation error for a run with `extra` options.
        fn error(&self, extra: &[&str]) -> String {
            match self.validate(extra) {
                Ok(config) => panic!("{extra:?} was accepted: {config:?}"),
                Err(error) => error.to_string(),
            }
        }
    }

    fn assert_contains(message: &str, expected: &str) {
        assert!(
            message.contains(expected),
            "message {message:?} does not contain {expected:?}"
        );
    }

    /// Formats a float argument the way error messages show it.
    fn shown(value: &str) -> String {
        format!("{:?}", value.parse::<f32>().unwrap())
    }

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn run_defaults() {
        let fixture = Fixture::new();
        let config = fixture.validate(&[]).unwrap();

        assert_eq!(config.content, PathBuf::from(fixture.path("content.png")));
        assert_eq!(config.style, PathBuf::from(fixture.path("style.jpg")));
        assert_eq!(config.output, PathBuf::from(fixture.path("out.png")));
        assert_eq!(config.size, 512);
        assert_eq!(config.style_scale, 1.0);
        assert_eq!(config.weights, PathBuf::from(DEFAULT_WEIGHTS_PATH));
        assert!(config.weights.ends_with("weights/vgg16.safetensors"));

        assert_eq!(config.loss.content_layers, vec![8]);
        assert_eq!(config.loss.content_layer_weights, vec![1.0]);
        assert_eq!(config.loss.style_layers, vec![0, 2, 4, 7, 10]);
        assert_eq!(config.loss.style_layer_weights, vec![0.2; 5]);
        assert_eq!(config.loss.content_weight, DEFAULT_CONTENT_WEIGHT);
        assert_eq!(config.loss.style_weight, DEFAULT_STYLE_WEIGHT);
        assert_eq!(config.loss.tv_weight, DEFAULT_TV_WEIGHT);

        assert_eq!(config.adam, AdamSettings::default());
        assert_eq!(config.adam.learning_rate, 5.0);
        assert_eq!(config.adam.beta1, 0.9);
        assert_eq!(config.adam.beta2, 0.999);
        assert_eq!(config.adam.epsilon, 1e-8);
        assert_eq!(config.iterations, 500);
        assert_eq!(config.init, InitMode::Content);
        assert_eq!(config.noise_ratio, 0.6);
        assert_eq!(config.seed, 0);

        assert_eq!(config.print_every, 50);
        assert_eq!(config.snapshot_every, 0);
        assert_eq!(config.snapshot_dir, fixture.dir.path());
        assert_eq!(config.adapter, None);
    }

    #[test]
    fn default_layer_lists_match_vgg() {
        assert_eq!(
            DEFAULT_CONTENT_LAYERS,
            vgg::DEFAULT_CONTENT_LAYERS.join(",")
        );
        assert_eq!(DEFAULT_STYLE_LAYERS, vgg::DEFAULT_STYLE_LAYERS.join(","));
    }

    #[test]
    fn run_options_are_applied() {
        let fixture = Fixture::new();
        let snapshots = fixture.path("");
        let config = fixture
            .validate(&[
                "--size",
                "256",
                "--style-scale",
                "0.5",
                "--content-layers",
                "block3_conv2,conv4_2",
                "--style-layers",
                "conv1_1,CONV2_1",
                "--style-layer-weights",
                "0.25,0.75",
                "--content-weight",
                "1",
                "--style-weight",
                "1e3",
                "--tv-weight",
                "0.01",
                "--iterations",
                "1000",
                "--learning-rate",
                "5",
                "--beta1",
                "0",
                "--beta2",
                "0.99",
                "--epsilon",
                "1e-4",
                "--init",
                "blend",
                "--noise-ratio",
                "1",
                "--seed",
                "42",
                "--print-every",
                "0",
                "--snapshot-every",
                "100",
                "--snapshot-dir",
                &snapshots,
                "--adapter",
                " NVIDIA ",
            ])
            .unwrap();

        assert_eq!(config.size, 256);
        assert_eq!(config.style_size(), 128);
        assert_eq!(config.loss.content_layers, vec![5, 8]);
        assert_eq!(config.loss.content_layer_weights, vec![0.5, 0.5]);
        assert_eq!(config.loss.style_layers, vec![0, 2]);
        assert_eq!(config.loss.style_layer_weights, vec![0.25, 0.75]);
        assert_eq!(config.loss.content_weight, 1.0);
        assert_eq!(config.loss.style_weight, 1000.0);
        assert_eq!(config.loss.tv_weight, 0.01);
        assert_eq!(config.iterations, 1000);
        assert_eq!(
            config.adam,
            AdamSettings {
                learning_rate: 5.0,
                beta1: 0.0,
                beta2: 0.99,
                epsilon: 1e-4,
            }
        );
        assert_eq!(config.init, InitMode::Blend);
        assert_eq!(config.noise_ratio, 1.0);
        assert_eq!(config.seed, 42);
        assert_eq!(config.print_every, 0);
        assert_eq!(config.snapshot_every, 100);
        assert_eq!(config.snapshot_dir, PathBuf::from(snapshots));
        assert_eq!(config.adapter.as_deref(), Some("nvidia"));
    }

    #[test]
    fn snapshot_path_pads_iteration() {
        let fixture = Fixture::new();
        let config = fixture.validate(&["--iterations", "500"]).unwrap();
        assert_eq!(
            config.snapshot_path(50),
            fixture.dir.path().join("out_050.png")
        );
        assert_eq!(
            config.snapshot_path(500),
            fixture.dir.path().join("out_500.png")
        );

        let config = fixture.validate(&["--iterations", "10000"]).unwrap();
        assert_eq!(
            config.snapshot_path(7),
            fixture.dir.path().join("out_00007.png")
        );

        let config = fixture.validate(&["--iterations", "9"]).unwrap();
        assert_eq!(
            config.snapshot_path(3),
            fixture.dir.path().join("out_3.png")
        );
    }

    #[test]
    fn snapshot_path_keeps_output_extension() {
        // Validating a bare output name would probe the working directory, so the config
        // is edited instead.
        let fixture = Fixture::new();
        let mut config = fixture.validate(&["--iterations", "100"]).unwrap();
        config.output = PathBuf::from("result.JPG");
        config.snapshot_dir = PathBuf::from(".");
        assert_eq!(config.snapshot_path(1), PathBuf::from("./result_001.JPG"));

        config.output = PathBuf::from("archive.v2.tiff");
        assert_eq!(
            config.snapshot_path(99),
            PathBuf::from("./archive.v2_099.tiff")
        );
    }

    #[test]
    fn list_layers_needs_no_images() {
        let args = Args::try_parse_from(["wgpu-style", "--list-layers"]).unwrap();
        assert_eq!(resolve(args).unwrap(), Action::ListLayers);
    }

    #[test]
    fn run_needs_images_and_output() {
        let error = Args::try_parse_from(["wgpu-style", "a.png", "b.png"]).unwrap_err();
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        assert_contains(&error.to_string(), "--output");

        let error = Args::try_parse_from(["wgpu-style", "-o", "out.png"]).unwrap_err();
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        assert_contains(&error.to_string(), "<CONTENT>");
    }

    #[test]
    fn resolve_returns_run() {
        let fixture = Fixture::new();
        let args = Args::try_parse_from(fixture.run_args(&[])).unwrap();
        let Action::Run(config) = resolve(args).unwrap() else {
            panic!("expected a run");
        };
        assert_eq!(config.output, PathBuf::from(fixture.path("out.png")));
    }

    #[test]
    fn bench_defaults() {
        let args = Args::try_parse_from(["wgpu-style", "bench"]).unwrap();
        let expected = BenchConfig {
            sizes: vec![128, 256],
            iterations: DEFAULT_BENCH_ITERATIONS,
            adapter: None,
            weights: PathBuf::from(DEFAULT_WEIGHTS_PATH),
        };
        assert_eq!(resolve(args).unwrap(), Action::Bench(expected));
    }

    #[test]
    fn bench_options() {
        let args = Args::try_parse_from([
            "wgpu-style",
            "bench",
            "--sizes",
            "64,512,1024",
            "--iterations",
            "3",
            "--adapter",
            "Radeon",
            "--weights",
            "/opt/vgg16.safetensors",
        ])
        .unwrap();
        let expected = BenchConfig {
            sizes: vec![64, 512, 1024],
            iterations: 3,
            adapter: Some("radeon".to_string()),
            weights: PathBuf::from("/opt/vgg16.safetensors"),
        };
        assert_eq!(resolve(args).unwrap(), Action::Bench(expected));
    }

    #[test]
    fn bench_rejects_bad_values() {
        let args = Args::try_parse_from(["wgpu-style", "bench", "--sizes", "8"]).unwrap();
        let message = resolve(args).unwrap_err().to_string();
        assert_eq!(
            message,
            "--sizes gives a benchmark image side of 8 pixels, but layer conv5_3 needs at \
             least 16: raise --sizes or choose shallower layers"
        );

        let args = Args::try_parse_from(["wgpu-style", "bench", "--iterations", "0"]).unwrap();
        let message = resolve(args).unwrap_err().to_string();
        assert_contains(&message, "invalid --iterations value 0");
    }

    #[test]
    fn bench_rejects_run_arguments() {
        let error = Args::try_parse_from(["wgpu-style", "a.png", "b.png", "bench"]);
        assert!(
            error.is_err(),
            "positional arguments before bench were accepted"
        );
    }

    #[test]
    fn rejects_missing_content() {
        let fixture = Fixture::new();
        let mut args = fixture.run_args(&[]);
        args[1] = fixture.path("nope.png");
        let message = validate(Args::try_parse_from(args).unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            format!(
                "content image {} not found: check the path",
                fixture.path("nope.png")
            )
        );
    }

    #[test]
    fn rejects_directory_as_style() {
        let fixture = Fixture::new();
        let mut args = fixture.run_args(&[]);
        args[2] = fixture.path("");
        let message = validate(Args::try_parse_from(args).unwrap())
            .unwrap_err()
            .to_string();
        assert_contains(&message, "style image");
        assert_contains(&message, "is not a regular file");
    }

    #[cfg(unix)]
    #[test]
    fn rejects_unreadable_content() {
        use std::os::unix::fs::PermissionsExt;

        let fixture = Fixture::new();
        let content = fixture.path("content.png");
        fs::set_permissions(&content, fs::Permissions::from_mode(0o000)).unwrap();
        if File::open(&content).is_ok() {
            eprintln!("skipped: this user can read files without read permission");
            return;
        }
        let message = fixture.error(&[]);
        assert_contains(&message, "cannot read content image");
        assert_contains(&message, "check its permissions");
    }

    #[test]
    fn rejects_output_extension() {
        let fixture = Fixture::new();
        let mut args = fixture.run_args(&[]);
        args[4] = fixture.path("out.gif");
        let message = validate(Args::try_parse_from(args).unwrap())
            .unwrap_err()
            .to_string();
        assert_contains(
            &message,
            "invalid --output: unsupported output extension 'gif'",
        );
        assert_contains(&message, "png, jpg");
    }

    #[test]
    fn rejects_missing_output_folder() {
        let fixture = Fixture::new();
        let mut args = fixture.run_args(&[]);
        args[4] = fixture.path("missing/out.png");
        let message = validate(Args::try_parse_from(args).unwrap())
            .unwrap_err()
            .to_string();
        assert_contains(&message, "invalid --output: output folder");
        assert_contains(&message, "does not exist");
    }

    #[test]
    fn rejects_missing_snapshot_dir() {
        let fixture = Fixture::new();
        let missing = fixture.path("snapshots");
        let message = fixture.error(&["--snapshot-every", "10", "--snapshot-dir", &missing]);
        assert_eq!(
            message,
            format!(
                "invalid --snapshot-dir: output folder {missing} does not exist: create it or \
                 choose another folder"
            )
        );
    }

    #[cfg(unix)]
    #[test]
    fn rejects_read_only_snapshot_dir() {
        use std::os::unix::fs::PermissionsExt;

        let fixture = Fixture::new();
        let read_only = fixture.dir.path().join("read_only");
        fs::create_dir(&read_only).unwrap();
        fs::set_permissions(&read_only, fs::Permissions::from_mode(0o555)).unwrap();
        if File::create(read_only.join("probe")).is_ok() {
            eprintln!("skipped: this user can write to read-only folders");
            return;
        }
        let dir = read_only.to_string_lossy().into_owned();
        let message = fixture.error(&["--snapshot-every", "10", "--snapshot-dir", &dir]);
        assert_contains(&message, "invalid --snapshot-dir");
        assert_contains(&message, "is not writable");
    }

    #[test]
    fn rejects_unknown_layer() {
        let fixture = Fixture::new();
        let message = fixture.error(&["--content-layers", "conv6_1"]);
        assert_contains(
            &message,
            "invalid --content-layers: unknown layer name 'conv6_1'",
        );
        assert_contains(&message, "--list-layers");
    }

    #[test]
    fn rejects_duplicate_layer() {
        let fixture = Fixture::new();
        let message = fixture.error(&["--style-layers", "conv1_1,block1_conv1"]);
        assert_contains(&message, "invalid --style-layers");
        assert_contains(&message, "'conv1_1' is listed twice");
    }

    #[test]
    fn rejects_empty_layer_list() {
        let fixture = Fixture::new();
        let message = fixture.error(&["--style-layers", ""]);
        assert_contains(&message, "invalid --style-layers");
    }

    #[test]
    fn rejects_style_weight_count() {
        let fixture = Fixture::new();
        let message = fixture.error(&["--style-layer-weights", "1,2"]);
        assert_eq!(
            message,
            "--style-layer-weights has 2 values but --style-layers names 5 layers: give one \
             weight per style layer"
        );
    }

    #[test]
    fn rejects_negative_or_nonfinite_weights() {
        let fixture = Fixture::new();
        let cases = [
            (
                "--content-weight",
                "-1",
                "invalid --content-weight value -1.0",
            ),
            ("--style-weight", "inf", "invalid --style-weight value inf"),
            ("--tv-weight", "NaN", "invalid --tv-weight value NaN"),
            (
                "--style-layer-weights",
                "0.2,0.2,-0.2,0.2,0.2",
                "invalid --style-layer-weights value -0.2",
            ),
        ];
        for (option, value, expected) in cases {
            let message = fixture.error(&[option, value]);
            assert_contains(&message, expected);
            assert_contains(&message, "expected a finite number of at least 0");
        }
    }

    #[test]
    fn rejects_all_zero_weights() {
        let fixture = Fixture::new();
        let message = fixture.error(&["--content-weight", "0", "--style-weight", "0"]);
        assert_contains(&message, "are all 0");
    }

    #[test]
    fn rejects_zero_size() {
        let fixture = Fixture::new();
        let message = fixture.error(&["--size", "0"]);
        assert_eq!(
            message,
            "invalid --size value 0: expected a side length of at least 1 pixel, such as 512"
        );
    }

    #[test]
    fn rejects_negative_size_at_parse() {
        let fixture = Fixture::new();
        let error = Args::try_parse_from(fixture.run_args(&["--size", "-5"])).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
        assert_contains(&error.to_string(), "'-5' for '--size <PIXELS>'");
    }

    #[test]
    fn rejects_size_below_deepest_layer() {
        let fixture = Fixture::new();
        let message = fixture.error(&["--size", "8"]);
        assert_eq!(
            message,
            "--size gives a content image side of 8 pixels, but layer conv5_1 needs at least \
             16: raise --size or choose shallower layers"
        );
        // Shallower layers make the same size valid.
        fixture
            .validate(&["--size", "8", "--style-layers", "conv1_1,conv2_1"])
            .unwrap();
    }

    #[test]
    fn rejects_style_scale() {
        let fixture = Fixture::new();
        for value in ["0", "-1", "inf"] {
            let message = fixture.error(&["--style-scale", value]);
            assert_contains(
                &message,
                &format!("invalid --style-scale value {}", shown(value)),
            );
            assert_contains(&message, "expected a finite number above 0");
        }
        let message = fixture.error(&["--style-scale", "0.01"]);
        assert_contains(
            &message,
            "--style-scale gives a style image side of 5 pixels",
        );
    }

    #[test]
    fn rejects_zero_iterations() {
        let fixture = Fixture::new();
        let message = fixture.error(&["--iterations", "0"]);
        assert_eq!(
            message,
            "invalid --iterations value 0: expected a whole number of at least 1"
        );
    }

    #[test]
    fn rejects_noise_ratio() {
        let fixture = Fixture::new();
        for value in ["-0.1", "1.5", "NaN"] {
            let message = fixture.error(&["--noise-ratio", value]);
            assert_contains(
                &message,
                &format!("invalid --noise-ratio value {}", shown(value)),
            );
            assert_contains(&message, "expected a fraction in [0, 1]");
        }
    }

    #[test]
    fn rejects_learning_rate() {
        let fixture = Fixture::new();
        for value in ["0", "-2", "NaN"] {
            let message = fixture.error(&["--learning-rate", value]);
            assert_contains(
                &message,
                &format!("invalid --learning-rate value {}", shown(value)),
            );
            assert_contains(&message, "expected a finite number above 0");
        }
    }

    #[test]
    fn rejects_betas() {
        let fixture = Fixture::new();
        for option in ["--beta1", "--beta2"] {
            for value in ["1", "-0.1", "1.5", "NaN"] {
                let message = fixture.error(&[option, value]);
                assert_contains(
                    &message,
                    &format!("invalid {option} value {}", shown(value)),
                );
                assert_contains(&message, "expected a number in [0, 1)");
            }
        }
    }

    #[test]
    fn rejects_epsilon() {
        let fixture = Fixture::new();
        // clap reads "-1e-8" as an unknown flag, so the negative case has no exponent.
        for value in ["0", "-1", "inf"] {
            let message = fixture.error(&["--epsilon", value]);
            assert_contains(
                &message,
                &format!("invalid --epsilon value {}", shown(value)),
            );
            assert_contains(&message, "expected a finite number above 0");
        }
    }

    #[test]
    fn rejects_empty_adapter() {
        let fixture = Fixture::new();
        let message = fixture.error(&["--adapter", " "]);
        assert_contains(&message, "invalid --adapter value \" \"");
    }

    #[test]
    fn rejects_unknown_init() {
        let fixture = Fixture::new();
        let error = Args::try_parse_from(fixture.run_args(&["--init", "zeros"])).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::InvalidValue);
    }

    #[test]
    fn check_image_size_uses_deepest_layer() {
        let fixture = Fixture::new();
        let config = fixture.validate(&[]).unwrap();
        config.check_image_size("content", 512, 16).unwrap();

        let message = config
            .check_image_size("style", 512, 15)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "the style image is 512x15 pixels after resizing, but layer conv5_1 needs each side \
             to be at least 16: raise --size or --style-scale or choose shallower layers"
        );
        let message = config
            .check_image_size("content", 10, 300)
            .unwrap_err()
            .to_string();
        assert_contains(&message, "raise --size or choose");
    }

    #[test]
    fn list_layers_text_has_every_layer() {
        let text = list_layers_text();
        for layer in VGG16_LAYERS {
            assert_contains(&text, layer.name);
            assert_contains(&text, layer.keras_name);
        }
        let line = |name: &str| {
            text.lines()
                .find(|line| line.starts_with(name))
                .unwrap_or_else(|| panic!("no line for {name}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            line("conv1_1"),
            ["conv1_1", "block1_conv1", "3", "64", "1", "style"]
        );
        assert_eq!(
            line("conv4_2"),
            ["conv4_2", "block4_conv2", "512", "512", "8", "content"]
        );
        assert_eq!(
            line("conv5_3"),
            ["conv5_3", "block5_conv3", "512", "512", "16"]
        );
    }

    #[test]
    fn help_lists_headings() {
        let help = Args::command().render_help().to_string();
        for heading in [
            HEADING_IO,
            HEADING_LOSS,
            HEADING_OPTIMISATION,
            HEADING_OUTPUT,
            HEADING_DEVICE,
        ] {
            assert_contains(&help, &format!("{heading}:"));
        }
        assert_contains(&help, "[default: conv1_1,conv2_1,conv3_1,conv4_1,conv5_1]");
    }
}
