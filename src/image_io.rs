//! Loading, resizing and saving the RGB images that go into and come out of a run.
//!
//! Every image in memory is an [`RgbImage`]: interleaved RGB in `f32` on the 0..255 scale,
//! so an 8-bit channel value keeps its exact integer value and higher-depth inputs keep their
//! extra precision until the final save rounds to 8 bits.

use std::f64::consts::PI;
use std::fs::{self, OpenOptions};
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use image::codecs::jpeg::JpegEncoder;
use image::codecs::pnm::{PnmEncoder, PnmSubtype, SampleEncoding};
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};
use thiserror::Error;

/// Input formats that image 0.25 decodes with its default features.
const INPUT_FORMATS: &str = "PNG, JPEG, GIF, WebP, TIFF, BMP, TGA, ICO, PNM, QOI, HDR, \
                             OpenEXR and Farbfeld";

/// Output extensions that [`save_image`] accepts, with the format each one selects. These are
/// the image 0.25 default-feature encoders that take 8-bit RGB without quantising it (GIF) or
/// limiting its size (ICO).
const OUTPUT_FORMATS: [(&str, ImageFormat); 10] = [
    ("png", ImageFormat::Png),
    ("jpg", ImageFormat::Jpeg),
    ("jpeg", ImageFormat::Jpeg),
    ("bmp", ImageFormat::Bmp),
    ("tif", ImageFormat::Tiff),
    ("tiff", ImageFormat::Tiff),
    ("webp", ImageFormat::WebP),
    ("tga", ImageFormat::Tga),
    ("ppm", ImageFormat::Pnm),
    ("qoi", ImageFormat::Qoi),
];

/// The extensions of [`OUTPUT_FORMATS`] as one string, for messages.
/// Largest allocation the decoders may make for one input image: a 16-bit RGBA
/// image of about 16k x 16k pixels, far more than the network can process.
const MAX_DECODE_BYTES: u64 = 2 << 30;

const OUTPUT_EXTENSIONS: &str = "png, jpg, jpeg, bmp, tif, tiff, webp, tga, ppm, qoi";

/// JPEG quality (1..=100) for saved images. The image crate's default is 75, and a higher
/// quality keeps more of the fine, high-frequency texture that style transfer produces.
const JPEG_QUALITY: u8 = 95;

/// Lanczos window radius in source pixels (at scale 1).
const LANCZOS_RADIUS: f64 = 3.0;

/// RGB image, HWC row-major, channel values on the 0..255 scale as `f32` (not rounded).
#[derive(Clone, Debug, PartialEq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    /// `width * height * 3` values, red, green and blue for each pixel in turn.
    pub data: Vec<f32>,
}

impl RgbImage {
    /// Returns the `[r, g, b]` values of the pixel in column `x` and row `y`.
    ///
    /// # Panics
    ///
    /// Panics if the pixel lies outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> [f32; 3] {
        assert!(
            x < self.width && y < self.height,
            "pixel ({x}, {y}) outside the image"
        );
        let start = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[start], self.data[start + 1], self.data[start + 2]]
    }
}

/// Errors from reading, checking or writing image files.
///
/// Each message contains the underlying I/O or codec error as text, so that error is not also
/// returned by `source()` and an `anyhow` `{:#}` chain prints it once.
#[derive(Debug, Error)]
pub enum ImageIoError {
    #[error("image file {path} not found: check the path")]
    NotFound { path: PathBuf },

    #[error("{path} is a directory, not an image file: give the path of an image file")]
    IsDirectory { path: PathBuf },

    #[error("cannot read {path}: {cause}: check that the file exists and is readable")]
    Unreadable { path: PathBuf, cause: io::Error },

    #[error(
        "{path} is not in a recognised image format: supported input formats are {INPUT_FORMATS}"
    )]
    UnrecognisedFormat { path: PathBuf },

    #[error(
        "{path} uses an unsupported image format ({cause}): supported input formats are \
         {INPUT_FORMATS}"
    )]
    UnsupportedFormat { path: PathBuf, cause: ImageError },

    #[error("failed to decode {path}: {cause}: the file may be corrupt or truncated")]
    Decode { path: PathBuf, cause: ImageError },

    #[error(
        "{path} is {width}x{height} pixels, too large to decode: it needs {} MiB and the limit \
         is {} MiB; scale it down first",
        bytes >> 20,
        MAX_DECODE_BYTES >> 20
    )]
    TooLargeToDecode {
        path: PathBuf,
        width: u32,
        height: u32,
        bytes: u64,
    },

    #[error(
        "{path} is a truncated JPEG: its image data or end-of-image marker is missing: export \
         or download the file again"
    )]
    TruncatedJpeg { path: PathBuf },

    #[error(
        "unsupported output extension '{extension}' in {path}: use one of {OUTPUT_EXTENSIONS}"
    )]
    UnsupportedOutputExtension { path: PathBuf, extension: String },

    #[error("output path {path} has no extension: add one of {OUTPUT_EXTENSIONS}")]
    MissingOutputExtension { path: PathBuf },

    #[error("output path {path} is a directory: add a file name such as out.png")]
    OutputIsDirectory { path: PathBuf },

    #[error("output folder {dir} does not exist: create it or choose another folder")]
    OutputDirMissing { dir: PathBuf },

    #[error("output folder {dir} is not a directory: choose a folder")]
    OutputDirNotDirectory { dir: PathBuf },

    #[error(
        "output folder {dir} is not writable ({cause}): fix its permissions or choose another \
         folder"
    )]
    OutputDirNotWritable { dir: PathBuf, cause: io::Error },

    #[error("image data has {len} values but a {width}x{height} RGB image needs {expected}")]
    DataLength {
        width: u32,
        height: u32,
        len: usize,
        expected: usize,
    },

    #[error("failed to encode {path}: {cause}")]
    Encode { path: PathBuf, cause: ImageError },

    #[error("failed to write {path}: {cause}")]
    Write { path: PathBuf, cause: io::Error },
}

/// Loads an image file as RGB on the 0..255 scale.
///
/// The format comes from the file's content, so a wrong extension still loads, and the
/// extension is used only when the content has no signature (TGA). EXIF orientation is applied,
/// so the result is upright as a photo viewer shows it. Grayscale is copied to all three
/// channels. 16-bit channels map 65535 to 255.0 without a detour through 8 bits. Float channels
/// (HDR, OpenEXR) are clamped to 0..1 and scaled, with no tone mapping. An alpha channel is
/// composited over white, so a transparent pixel becomes (255, 255, 255).
pub fn load_image(path: &Path) -> Result<RgbImage, ImageIoError> {
    let metadata = fs::metadata(path).map_err(|cause| read_error(path, cause))?;
    if metadata.is_dir() {
        return Err(ImageIoError::IsDirectory {
            path: path.to_path_buf(),
        });
    }

    let reader = ImageReader::open(path)
        .and_then(|reader| reader.with_guessed_format())
        .map_err(|cause| read_error(path, cause))?;
    if reader.format().is_none() {
        return Err(ImageIoError::UnrecognisedFormat {
            path: path.to_path_buf(),
        });
    }
    // The JPEG decoder fills the rows of a truncated file with grey and succeeds.
    if reader.format() == Some(ImageFormat::Jpeg) {
        let bytes = fs::read(path).map_err(|cause| read_error(path, cause))?;
        if jpeg_is_truncated(&bytes) {
            return Err(ImageIoError::TruncatedJpeg {
                path: path.to_path_buf(),
            });
        }
    }

    let mut decoder = reader
        .into_decoder()
        .map_err(|cause| decode_error(path, cause))?;
    // A header can claim any size, and decoding allocates the whole image at once.
    let (width, height) = decoder.dimensions();
    let bytes = decoder.total_bytes();
    if bytes > MAX_DECODE_BYTES {
        return Err(ImageIoError::TooLargeToDecode {
            path: path.to_path_buf(),
            width,
            height,
            bytes,
        });
    }
    let orientation = decoder
        .orientation()
        .map_err(|cause| decode_error(path, cause))?;
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|cause| decode_error(path, cause))?;
    image.apply_orientation(orientation);

    Ok(to_rgb(&image))
}

/// Returns whether a JPEG stream has no start-of-scan marker (FF DA), or no
/// end-of-image marker (FF D9) after its last one. Entropy-coded data escapes
/// every FF byte, so FF D9 appears there only as the real marker.
fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    let marker_at = |marker: u8| bytes.windows(2).rposition(|pair| pair == [0xFF, marker]);
    match (marker_at(0xDA), marker_at(0xD9)) {
        (Some(scan), Some(end)) => end < scan,
        (Some(_), None) | (None, _) => true,
    }
}

fn read_error(path: &Path, cause: io::Error) -> ImageIoError {
    let path = path.to_path_buf();
    if cause.kind() == io::ErrorKind::NotFound {
        ImageIoError::NotFound { path }
    } else {
        ImageIoError::Unreadable { path, cause }
    }
}

fn decode_error(path: &Path, cause: ImageError) -> ImageIoError {
    let path = path.to_path_buf();
    match cause {
        ImageError::Unsupported(_) => ImageIoError::UnsupportedFormat { path, cause },
        _ => ImageIoError::Decode { path, cause },
    }
}

/// Converts any decoded colour type to RGB on the 0..255 scale, compositing alpha over white.
fn to_rgb(image: &DynamicImage) -> RgbImage {
    let (width, height) = (image.width(), image.height());
    match image {
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => {
            samples_to_rgb(width, height, image.to_rgb8().as_raw(), 3, 1.0)
        }
        DynamicImage::ImageLumaA8(_) | DynamicImage::ImageRgba8(_) => {
            samples_to_rgb(width, height, image.to_rgba8().as_raw(), 4, 1.0)
        }
        DynamicImage::ImageLuma16(_) | DynamicImage::ImageRgb16(_) => {
            samples_to_rgb(width, height, image.to_rgb16().as_raw(), 3, 255.0 / 65535.0)
        }
        DynamicImage::ImageLumaA16(_) | DynamicImage::ImageRgba16(_) => samples_to_rgb(
            width,
            height,
            image.to_rgba16().as_raw(),
            4,
            255.0 / 65535.0,
        ),
        DynamicImage::ImageRgb32F(_) => {
            samples_to_rgb(width, height, image.to_rgb32f().as_raw(), 3, 255.0)
        }
        // Rgba32F, and any colour type that a later image version adds.
        _ => samples_to_rgb(width, height, image.to_rgba32f().as_raw(), 4, 255.0),
    }
}

/// Scales interleaved RGB or RGBA samples by `scale` to the 0..255 range. With `channels == 4`
/// the colour is composited over white: `c * a + 255 * (1 - a)` with `a` in 0..1.
fn samples_to_rgb<T: Copy + Into<f64>>(
    width: u32,
    height: u32,
    samples: &[T],
    channels: usize,
    scale: f64,
) -> RgbImage {
    let to_255 = |value: T| clamp_channel(value.into() * scale);
    let mut data = Vec::with_capacity(width as usize * height as usize * 3);
    for pixel in samples.chunks_exact(channels) {
        let alpha = if channels == 4 {
            to_255(pixel[3]) / 255.0
        } else {
            1.0
        };
        for &value in &pixel[..3] {
            let composited = to_255(value) * alpha + 255.0 * (1.0 - alpha);
            data.push(composited as f32);
        }
    }
    RgbImage {
        width,
        height,
        data,
    }
}

/// Clamps to 0..255 and maps NaN to 0, which only float inputs can produce.
fn clamp_channel(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 255.0)
    }
}

/// Computes the size that keeps the aspect ratio of `width` x `height` and makes the longer
/// side exactly `longest_side`, scaling up or down. The shorter side is rounded to the nearest
/// pixel. Every returned side is at least 1, also for zero inputs.
pub fn working_size(width: u32, height: u32, longest_side: u32) -> (u32, u32) {
    let longest_side = longest_side.max(1);
    let (width, height) = (width.max(1), height.max(1));
    let scale = f64::from(longest_side) / f64::from(width.max(height));
    let scaled = |side: u32| ((f64::from(side) * scale).round() as u32).clamp(1, longest_side);
    (scaled(width), scaled(height))
}

/// Resizes with a separable Lanczos3 filter computed in `f32`, without rounding.
///
/// When shrinking, the filter widens by the shrink factor so that it also low-passes.
/// Lanczos overshoots near sharp edges, so results are clamped to 0..255. Returns a copy when
/// the size is unchanged.
///
/// # Panics
///
/// Panics if `width` or `height` is 0, or if `img.data` does not match its size.
pub fn resize(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    assert!(
        width > 0 && height > 0,
        "resize target {width}x{height} has a zero side"
    );
    assert_eq!(
        img.data.len(),
        img.width as usize * img.height as usize * 3,
        "image data does not match its {}x{} size",
        img.width,
        img.height
    );
    if (width, height) == (img.width, img.height) {
        return img.clone();
    }

    let (src_width, src_height) = (img.width as usize, img.height as usize);
    let (dst_width, dst_height) = (width as usize, height as usize);

    // Horizontal pass: src_height rows of dst_width pixels.
    let column_taps = lanczos_taps(src_width, dst_width);
    let mut rows = vec![0.0f32; src_height * dst_width * 3];
    for y in 0..src_height {
        let src_row = &img.data[y * src_width * 3..(y + 1) * src_width * 3];
        let dst_row = &mut rows[y * dst_width * 3..(y + 1) * dst_width * 3];
        for (x, taps) in column_taps.iter().enumerate() {
            let mut sum = [0.0f32; 3];
            for (k, &weight) in taps.weights.iter().enumerate() {
                let src = (taps.first + k) * 3;
                for c in 0..3 {
                    sum[c] += weight * src_row[src + c];
                }
            }
            dst_row[x * 3..x * 3 + 3].copy_from_slice(&sum);
        }
    }

    // Vertical pass over the horizontally resampled rows.
    let row_taps = lanczos_taps(src_height, dst_height);
    let row_len = dst_width * 3;
    let mut data = vec![0.0f32; dst_height * row_len];
    for (y, taps) in row_taps.iter().enumerate() {
        let dst_row = &mut data[y * row_len..(y + 1) * row_len];
        for (k, &weight) in taps.weights.iter().enumerate() {
            let src_start = (taps.first + k) * row_len;
            let src_row = &rows[src_start..src_start + row_len];
            for (dst, &src) in dst_row.iter_mut().zip(src_row) {
                *dst += weight * src;
            }
        }
        for value in dst_row.iter_mut() {
            *value = value.clamp(0.0, 255.0);
        }
    }

    RgbImage {
        width,
        height,
        data,
    }
}

/// Source range and normalised filter weights for one output pixel along one axis.
struct Taps {
    first: usize,
    weights: Vec<f32>,
}

fn lanczos3(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else if x.abs() < LANCZOS_RADIUS {
        let px = PI * x;
        LANCZOS_RADIUS * px.sin() * (px / LANCZOS_RADIUS).sin() / (px * px)
    } else {
        0.0
    }
}

/// Builds the filter taps that map `src_len` samples to `dst_len` samples. Pixel centres sit
/// at `i + 0.5` on both axes, and the window is cut at the image border and renormalised.
fn lanczos_taps(src_len: usize, dst_len: usize) -> Vec<Taps> {
    let ratio = src_len as f64 / dst_len as f64;
    let filter_scale = ratio.max(1.0);
    let support = LANCZOS_RADIUS * filter_scale;

    (0..dst_len)
        .map(|i| {
            let center = (i as f64 + 0.5) * ratio;
            let first = ((center - support).floor().max(0.0)) as usize;
            let end = ((center + support).ceil() as usize).min(src_len);
            let raw: Vec<f64> = (first..end)
                .map(|j| lanczos3((j as f64 + 0.5 - center) / filter_scale))
                .collect();
            let total: f64 = raw.iter().sum();
            let weights = raw.iter().map(|w| (w / total) as f32).collect();
            Taps { first, weights }
        })
        .collect()
}

/// Checks, before any long computation, that [`save_image`] can write `path`: its extension
/// selects a supported format, it is not a directory, and its folder exists and is writable.
/// Writability is probed by creating and deleting a hidden empty file in that folder.
pub fn check_output_path(path: &Path) -> Result<(), ImageIoError> {
    output_format(path)?;
    // "out.png/" names a folder to the file system, so writing it would fail at the end.
    if path.is_dir()
        || path
            .as_os_str()
            .to_string_lossy()
            .ends_with(std::path::MAIN_SEPARATOR)
    {
        return Err(ImageIoError::OutputIsDirectory {
            path: path.to_path_buf(),
        });
    }
    check_output_dir(&parent_dir(path))
}

/// Checks that `dir` exists, is a directory and accepts new files, by creating and deleting a
/// hidden empty file in it.
pub fn check_output_dir(dir: &Path) -> Result<(), ImageIoError> {
    let metadata = match fs::metadata(dir) {
        Ok(metadata) => metadata,
        Err(cause) if cause.kind() == io::ErrorKind::NotFound => {
            return Err(ImageIoError::OutputDirMissing {
                dir: dir.to_path_buf(),
            })
        }
        Err(cause) => {
            return Err(ImageIoError::OutputDirNotWritable {
                dir: dir.to_path_buf(),
                cause,
            })
        }
    };
    if !metadata.is_dir() {
        return Err(ImageIoError::OutputDirNotDirectory {
            dir: dir.to_path_buf(),
        });
    }

    let probe = dir.join(unique_hidden_name("write-probe"));
    let created = OpenOptions::new().write(true).create_new(true).open(&probe);
    match created {
        Ok(file) => {
            drop(file);
            // A probe that cannot be removed is harmless, and the folder is writable.
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(cause) => Err(ImageIoError::OutputDirNotWritable {
            dir: dir.to_path_buf(),
            cause,
        }),
    }
}

/// Saves `img` in the format chosen by the extension of `path`, rounding each channel to the
/// nearest integer and clamping to 0..255 (NaN becomes 0). JPEG uses quality 95.
///
/// The write is atomic: the image is written to a hidden temporary file in the same folder,
/// synced and then renamed over `path`, so a reader never sees a partial file. The temporary
/// file is removed if any step fails.
pub fn save_image(path: &Path, img: &RgbImage) -> Result<(), ImageIoError> {
    let format = output_format(path)?;
    let expected = img.width as usize * img.height as usize * 3;
    if img.data.len() != expected {
        return Err(ImageIoError::DataLength {
            width: img.width,
            height: img.height,
            len: img.data.len(),
            expected,
        });
    }

    let bytes: Vec<u8> = img.data.iter().map(|&value| to_u8(value)).collect();
    let buffer = image::RgbImage::from_raw(img.width, img.height, bytes)
        .expect("data length was checked against width * height * 3");
    let encoded = encode(&buffer, format).map_err(|cause| ImageIoError::Encode {
        path: path.to_path_buf(),
        cause,
    })?;

    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp_path = parent_dir(path).join(unique_hidden_name(&file_name));
    let result = write_synced(&temp_path, &encoded).and_then(|()| fs::rename(&temp_path, path));
    result.map_err(|cause| {
        let _ = fs::remove_file(&temp_path);
        ImageIoError::Write {
            path: path.to_path_buf(),
            cause,
        }
    })
}

fn to_u8(value: f32) -> u8 {
    // `as` maps NaN to 0 and the clamp keeps everything else in range.
    value.round().clamp(0.0, 255.0) as u8
}

fn encode(buffer: &image::RgbImage, format: ImageFormat) -> Result<Vec<u8>, ImageError> {
    let mut encoded = Cursor::new(Vec::new());
    if format == ImageFormat::Jpeg {
        buffer.write_with_encoder(JpegEncoder::new_with_quality(&mut encoded, JPEG_QUALITY))?;
    } else if format == ImageFormat::Pnm {
        // The PNM encoder's default for RGB is PAM (P7); a .ppm file is a binary pixmap (P6).
        let subtype = PnmSubtype::Pixmap(SampleEncoding::Binary);
        buffer.write_with_encoder(PnmEncoder::new(&mut encoded).with_subtype(subtype))?;
    } else {
        buffer.write_to(&mut encoded, format)?;
    }
    Ok(encoded.into_inner())
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Returns the format that the extension of `path` selects, or the error naming the extension.
fn output_format(path: &Path) -> Result<ImageFormat, ImageIoError> {
    let Some(extension) = path.extension() else {
        return Err(ImageIoError::MissingOutputExtension {
            path: path.to_path_buf(),
        });
    };
    let extension = extension.to_string_lossy();
    let lowercase = extension.to_ascii_lowercase();
    OUTPUT_FORMATS
        .iter()
        .find(|(name, _)| *name == lowercase)
        .map(|&(_, format)| format)
        .ok_or_else(|| ImageIoError::UnsupportedOutputExtension {
            path: path.to_path_buf(),
            extension: extension.into_owned(),
        })
}

/// Returns the folder that contains `path`, with `.` for a bare file name.
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Returns a hidden file name that no other process or thread uses at the same time.
fn unique_hidden_name(base: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{base}.{}.{count}.tmp", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};
    use tempfile::TempDir;

    fn temp_dir() -> TempDir {
        tempfile::tempdir().expect("create a temporary directory")
    }

    fn assert_pixel(img: &RgbImage, x: u32, y: u32, expected: [f32; 3]) {
        assert_eq!(img.pixel(x, y), expected, "pixel ({x}, {y})");
    }

    fn assert_pixel_near(img: &RgbImage, x: u32, y: u32, expected: [f32; 3], tolerance: f32) {
        let actual = img.pixel(x, y);
        for c in 0..3 {
            assert!(
                (actual[c] - expected[c]).abs() <= tolerance,
                "pixel ({x}, {y}) is {actual:?}, expected {expected:?} within {tolerance}"
            );
        }
    }

    /// Lists the file names in `dir`, hidden ones included.
    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Returns true when the current user ignores file permissions (root), so permission tests
    /// cannot fail the way they would for a normal user.
    fn permissions_are_bypassed(dir: &Path) -> bool {
        let probe = dir.join("bypass-probe");
        let bypassed = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .is_ok();
        let _ = fs::remove_file(&probe);
        bypassed
    }

    // ---- Colour type conversion ----

    #[test]
    fn load_gray8_replicates_channels() {
        let dir = temp_dir();
        let path = dir.path().join("gray8.png");
        let gray = ImageBuffer::from_raw(2, 1, vec![0u8, 200]).unwrap();
        DynamicImage::ImageLuma8(gray).save(&path).unwrap();

        let img = load_image(&path).unwrap();
        assert_eq!((img.width, img.height), (2, 1));
        assert_pixel(&img, 0, 0, [0.0; 3]);
        assert_pixel(&img, 1, 0, [200.0; 3]);
    }

    #[test]
    fn load_gray16_keeps_precision() {
        let dir = temp_dir();
        let path = dir.path().join("gray16.png");
        let gray = ImageBuffer::<Luma<u16>, _>::from_raw(3, 1, vec![65535u16, 257, 1]).unwrap();
        DynamicImage::ImageLuma16(gray).save(&path).unwrap();

        let img = load_image(&path).unwrap();
        assert_pixel(&img, 0, 0, [255.0; 3]);
        assert_pixel(&img, 1, 0, [1.0; 3]);
        // 1 / 65535 * 255 would be 0 after a detour through 8 bits.
        let expected = (255.0f64 / 65535.0) as f32;
        assert_pixel(&img, 2, 0, [expected; 3]);
    }

    #[test]
    fn load_gray_alpha_composites_over_white() {
        let dir = temp_dir();
        let path = dir.path().join("graya.png");
        let pixels = vec![0u8, 255, 0, 0, 100, 51];
        let gray = ImageBuffer::<LumaA<u8>, _>::from_raw(3, 1, pixels).unwrap();
        DynamicImage::ImageLumaA8(gray).save(&path).unwrap();

        let img = load_image(&path).unwrap();
        assert_pixel(&img, 0, 0, [0.0; 3]);
        assert_pixel(&img, 1, 0, [255.0; 3]);
        // Alpha 51 is 0.2: 100 * 0.2 + 255 * 0.8 = 224.
        assert_pixel_near(&img, 2, 0, [224.0; 3], 1e-4);
    }

    #[test]
    fn load_rgba_composites_over_white() {
        let dir = temp_dir();
        let path = dir.path().join("rgba.png");
        let pixels = vec![10u8, 20, 30, 255, 10, 20, 30, 0, 0, 100, 200, 153];
        let rgba = ImageBuffer::<Rgba<u8>, _>::from_raw(3, 1, pixels).unwrap();
        DynamicImage::ImageRgba8(rgba).save(&path).unwrap();

        let img = load_image(&path).unwrap();
        assert_pixel(&img, 0, 0, [10.0, 20.0, 30.0]);
        assert_pixel(&img, 1, 0, [255.0; 3]);
        // Alpha 153 is 0.6: c * 0.6 + 255 * 0.4.
        assert_pixel_near(&img, 2, 0, [102.0, 162.0, 222.0], 1e-4);
    }

    #[test]
    fn load_rgb16_scales_to_255() {
        let dir = temp_dir();
        let path = dir.path().join("rgb16.png");
        let pixels = vec![65535u16, 0, 32768, 0, 65535, 0];
        let rgb = ImageBuffer::<Rgb<u16>, _>::from_raw(2, 1, pixels).unwrap();
        DynamicImage::ImageRgb16(rgb).save(&path).unwrap();

        let img = load_image(&path).unwrap();
        let half = (32768.0f64 * 255.0 / 65535.0) as f32;
        assert_pixel(&img, 0, 0, [255.0, 0.0, half]);
        assert_pixel(&img, 1, 0, [0.0, 255.0, 0.0]);
    }

    #[test]
    fn load_rgba16_composites_over_white() {
        let dir = temp_dir();
        let path = dir.path().join("rgba16.png");
        let pixels = vec![0u16, 0, 0, 32768, 65535, 0, 0, 65535];
        let rgba = ImageBuffer::<Rgba<u16>, _>::from_raw(2, 1, pixels).unwrap();
        DynamicImage::ImageRgba16(rgba).save(&path).unwrap();

        let img = load_image(&path).unwrap();
        let white_share = (255.0 * (1.0 - 32768.0f64 / 65535.0)) as f32;
        assert_pixel_near(&img, 0, 0, [white_share; 3], 1e-4);
        assert_pixel(&img, 1, 0, [255.0, 0.0, 0.0]);
    }

    #[test]
    fn load_float_clamps_and_scales() {
        let dir = temp_dir();
        let path = dir.path().join("float.exr");
        let pixels = vec![0.5f32, 0.25, 1.0, 2.0, -1.0, 0.0];
        let rgb = ImageBuffer::<Rgb<f32>, _>::from_raw(2, 1, pixels).unwrap();
        DynamicImage::ImageRgb32F(rgb).save(&path).unwrap();

        let img = load_image(&path).unwrap();
        assert_pixel(&img, 0, 0, [127.5, 63.75, 255.0]);
        assert_pixel(&img, 1, 0, [255.0, 0.0, 0.0]);
    }

    #[test]
    fn load_palette_png_expands_colours() {
        let dir = temp_dir();
        let path = dir.path().join("palette.png");
        let palette = [255, 0, 0, 0, 0, 255, 10, 20, 30];
        // Entry 2 is 40% opaque, through a tRNS chunk.
        let transparency = [255, 255, 102];
        fs::write(
            &path,
            palette_png(3, 1, &palette, &transparency, &[0, 1, 2]),
        )
        .unwrap();

        let img = load_image(&path).unwrap();
        assert_eq!((img.width, img.height), (3, 1));
        assert_pixel(&img, 0, 0, [255.0, 0.0, 0.0]);
        assert_pixel(&img, 1, 0, [0.0, 0.0, 255.0]);
        assert_pixel_near(&img, 2, 0, [157.0, 161.0, 165.0], 1e-4);
    }

    #[test]
    fn load_detects_format_from_content() {
        let dir = temp_dir();
        let path = dir.path().join("really_a_png.jpg");
        let rgb = ImageBuffer::<Rgb<u8>, _>::from_raw(1, 1, vec![1u8, 2, 3]).unwrap();
        rgb.save_with_format(&path, ImageFormat::Png).unwrap();

        let img = load_image(&path).unwrap();
        assert_pixel(&img, 0, 0, [1.0, 2.0, 3.0]);
    }

    // ---- EXIF orientation ----

    /// Encodes a 32x16 white JPEG with a red 8x8 block in its top-left corner and inserts an
    /// EXIF APP1 segment with the given Orientation tag right after the SOI marker.
    fn jpeg_with_orientation(orientation: u16) -> Vec<u8> {
        let marked = ImageBuffer::from_fn(32, 16, |x, y| {
            if x < 8 && y < 8 {
                Rgb([255u8, 0, 0])
            } else {
                Rgb([255u8, 255, 255])
            }
        });
        let mut jpeg = Vec::new();
        marked
            .write_with_encoder(JpegEncoder::new_with_quality(&mut jpeg, 100))
            .unwrap();
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "JPEG starts with SOI");

        // Big-endian TIFF header, then one IFD with a single SHORT entry: tag 0x0112.
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend_from_slice(b"MM\0\x2A");
        exif.extend_from_slice(&8u32.to_be_bytes()); // offset of the first IFD
        exif.extend_from_slice(&1u16.to_be_bytes()); // entry count
        exif.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation tag
        exif.extend_from_slice(&3u16.to_be_bytes()); // type SHORT
        exif.extend_from_slice(&1u32.to_be_bytes()); // value count
        exif.extend_from_slice(&orientation.to_be_bytes());
        exif.extend_from_slice(&[0, 0]); // padding of the 4-byte value field
        exif.extend_from_slice(&0u32.to_be_bytes()); // no next IFD

        let segment_length = u16::try_from(exif.len() + 2).unwrap();
        let mut app1 = vec![0xFF, 0xE1];
        app1.extend_from_slice(&segment_length.to_be_bytes());
        app1.extend_from_slice(&exif);

        let mut result = jpeg[..2].to_vec();
        result.extend_from_slice(&app1);
        result.extend_from_slice(&jpeg[2..]);
        result
    }

    #[test]
    fn load_rejects_huge_header() {
        // A valid PNG header that claims 100000 x 100000 RGB pixels, with almost no data.
        let mut header = Vec::new();
        header.extend_from_slice(&100_000u32.to_be_bytes());
        header.extend_from_slice(&100_000u32.to_be_bytes());
        header.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(png_chunk(b"IHDR", &header));
        png.extend(png_chunk(b"IDAT", &zlib_stored(&[0; 64])));
        png.extend(png_chunk(b"IEND", &[]));
        let dir = temp_dir();
        let path = dir.path().join("huge.png");
        fs::write(&path, &png).unwrap();

        let error = load_image(&path).unwrap_err();
        assert!(
            matches!(error, ImageIoError::TooLargeToDecode { .. }),
            "unexpected error: {error}"
        );
        assert!(
            error.to_string().contains("100000x100000"),
            "message: {error}"
        );
    }

    #[test]
    fn save_ppm_writes_binary_pixmap() {
        let dir = temp_dir();
        let path = dir.path().join("out.ppm");
        let image = RgbImage {
            width: 4,
            height: 2,
            data: vec![128.0; 3 * 4 * 2],
        };
        save_image(&path, &image).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(&bytes[..2], b"P6", "a .ppm file starts with the P6 magic");
    }

    #[test]
    fn load_jpeg_cut_inside_scan() {
        let dir = temp_dir();
        let jpeg = jpeg_with_orientation(1);
        let whole = dir.path().join("whole.jpg");
        fs::write(&whole, &jpeg).unwrap();
        assert!(load_image(&whole).is_ok(), "the complete file loads");

        // Cut inside the entropy-coded data, after the start-of-scan header.
        let scan = jpeg
            .windows(2)
            .rposition(|pair| pair == [0xFF, 0xDA])
            .unwrap();
        let cut = dir.path().join("cut.jpg");
        fs::write(&cut, &jpeg[..scan + (jpeg.len() - scan) / 2]).unwrap();
        let error = load_image(&cut).unwrap_err();
        assert!(
            matches!(error, ImageIoError::TruncatedJpeg { .. }),
            "unexpected error: {error}"
        );
        assert!(error.to_string().contains("cut.jpg"), "message: {error}");

        // Bytes after the end-of-image marker (padding some tools add) are accepted.
        let padded = dir.path().join("padded.jpg");
        let mut with_tail = jpeg.clone();
        with_tail.extend_from_slice(&[0u8; 16]);
        fs::write(&padded, &with_tail).unwrap();
        assert!(load_image(&padded).is_ok(), "trailing bytes load");
    }

    fn is_red(pixel: [f32; 3]) -> bool {
        pixel[0] > 200.0 && pixel[1] < 60.0 && pixel[2] < 60.0
    }

    fn is_white(pixel: [f32; 3]) -> bool {
        pixel.iter().all(|&c| c > 200.0)
    }

    #[test]
    fn exif_orientation_6_rotates_clockwise() {
        let dir = temp_dir();
        let path = dir.path().join("rotate_cw.jpg");
        fs::write(&path, jpeg_with_orientation(6)).unwrap();

        let img = load_image(&path).unwrap();
        assert_eq!((img.width, img.height), (16, 32));
        // Clockwise rotation takes the top-left corner to the top-right.
        assert!(
            is_red(img.pixel(12, 3)),
            "top right is {:?}",
            img.pixel(12, 3)
        );
        assert!(
            is_white(img.pixel(3, 3)),
            "top left is {:?}",
            img.pixel(3, 3)
        );
        assert!(
            is_white(img.pixel(3, 28)),
            "bottom left is {:?}",
            img.pixel(3, 28)
        );
    }

    #[test]
    fn exif_orientation_8_rotates_counterclockwise() {
        let dir = temp_dir();
        let path = dir.path().join("rotate_ccw.jpg");
        fs::write(&path, jpeg_with_orientation(8)).unwrap();

        let img = load_image(&path).unwrap();
        assert_eq!((img.width, img.height), (16, 32));
        // Counterclockwise rotation takes the top-left corner to the bottom-left.
        assert!(
            is_red(img.pixel(3, 28)),
            "bottom left is {:?}",
            img.pixel(3, 28)
        );
        assert!(
            is_white(img.pixel(3, 3)),
            "top left is {:?}",
            img.pixel(3, 3)
        );
        assert!(
            is_white(img.pixel(12, 3)),
            "top right is {:?}",
            img.pixel(12, 3)
        );
    }

    #[test]
    fn exif_orientation_1_keeps_layout() {
        let dir = temp_dir();
        let path = dir.path().join("upright.jpg");
        fs::write(&path, jpeg_with_orientation(1)).unwrap();

        let img = load_image(&path).unwrap();
        assert_eq!((img.width, img.height), (32, 16));
        assert!(is_red(img.pixel(3, 3)), "top left is {:?}", img.pixel(3, 3));
        assert!(
            is_white(img.pixel(28, 3)),
            "top right is {:?}",
            img.pixel(28, 3)
        );
    }

    // ---- working_size ----

    #[test]
    fn working_size_cases() {
        // (width, height, longest side) -> expected
        let cases = [
            ((1024, 768, 512), (512, 384)),
            ((768, 1024, 512), (384, 512)),
            ((300, 300, 512), (512, 512)),
            ((640, 427, 512), (512, 342)), // 341.6 rounds up
            ((100, 50, 512), (512, 256)),  // upscaling
            ((1, 1, 64), (64, 64)),
            ((1000, 1, 100), (100, 1)), // 0.1 rounds to 0, kept at 1
            ((1, 1000, 100), (1, 100)),
            ((7, 3, 1), (1, 1)),
        ];
        for ((width, height, side), expected) in cases {
            assert_eq!(
                working_size(width, height, side),
                expected,
                "working_size({width}, {height}, {side})"
            );
        }
    }

    // ---- resize ----

    fn constant_image(width: u32, height: u32, value: f32) -> RgbImage {
        RgbImage {
            width,
            height,
            data: vec![value; width as usize * height as usize * 3],
        }
    }

    #[test]
    fn resize_keeps_constant_without_rounding() {
        let img = constant_image(13, 7, 12.34);
        for (width, height) in [(5, 3), (40, 21), (13, 20), (1, 1)] {
            let resized = resize(&img, width, height);
            assert_eq!((resized.width, resized.height), (width, height));
            assert_eq!(resized.data.len(), (width * height * 3) as usize);
            for &value in &resized.data {
                assert!(
                    (value - 12.34).abs() < 1e-4,
                    "{width}x{height} gave {value}"
                );
            }
        }
    }

    #[test]
    fn resize_same_size_is_identity() {
        let mut img = constant_image(4, 3, 0.0);
        for (i, value) in img.data.iter_mut().enumerate() {
            *value = i as f32 * 0.7;
        }
        assert_eq!(resize(&img, 4, 3), img);
    }

    #[test]
    fn resize_downscale_averages_stripes() {
        // Alternating black and white columns shrink to mid grey.
        let mut img = constant_image(64, 4, 0.0);
        for y in 0..4 {
            for x in (1..64).step_by(2) {
                let start = (y * 64 + x) * 3;
                img.data[start..start + 3].copy_from_slice(&[255.0; 3]);
            }
        }
        let resized = resize(&img, 8, 4);
        // The border pixels see a window cut at the edge, so only inner pixels are checked.
        for x in 1..7 {
            assert_pixel_near(&resized, x, 1, [127.5; 3], 2.0);
        }
    }

    #[test]
    fn resize_clamps_overshoot() {
        let mut img = constant_image(8, 1, 0.0);
        img.data[12..].fill(255.0);
        let resized = resize(&img, 32, 1);
        let min = resized.data.iter().copied().fold(f32::MAX, f32::min);
        let max = resized.data.iter().copied().fold(f32::MIN, f32::max);
        assert!(min >= 0.0, "minimum {min}");
        assert!(max <= 255.0, "maximum {max}");
        assert_eq!(resized.pixel(0, 0), [0.0; 3]);
        assert_eq!(resized.pixel(31, 0), [255.0; 3]);
    }

    // ---- Saving ----

    #[test]
    fn save_round_trip_rounds_and_clamps() {
        let dir = temp_dir();
        let path = dir.path().join("out.png");
        let img = RgbImage {
            width: 2,
            height: 2,
            data: vec![
                0.4,
                0.6,
                254.5, //
                -3.0,
                300.0,
                f32::NAN, //
                10.0,
                20.0,
                30.0, //
                127.49,
                127.51,
                255.0,
            ],
        };
        save_image(&path, &img).unwrap();

        let loaded = load_image(&path).unwrap();
        assert_eq!((loaded.width, loaded.height), (2, 2));
        assert_pixel(&loaded, 0, 0, [0.0, 1.0, 255.0]);
        assert_pixel(&loaded, 1, 0, [0.0, 255.0, 0.0]);
        assert_pixel(&loaded, 0, 1, [10.0, 20.0, 30.0]);
        assert_pixel(&loaded, 1, 1, [127.0, 128.0, 255.0]);
    }

    #[test]
    fn save_every_output_extension() {
        let dir = temp_dir();
        let img = RgbImage {
            width: 16,
            height: 8,
            data: (0..16 * 8 * 3).map(|i| (i % 256) as f32).collect(),
        };
        for (extension, format) in OUTPUT_FORMATS {
            assert!(format.writing_enabled(), "{extension} cannot be written");
            let path = dir.path().join(format!("out.{extension}"));
            save_image(&path, &img).unwrap_or_else(|e| panic!("saving .{extension}: {e}"));

            let loaded = load_image(&path).unwrap_or_else(|e| panic!("loading .{extension}: {e}"));
            assert_eq!((loaded.width, loaded.height), (16, 8), ".{extension} size");
            if format != ImageFormat::Jpeg {
                assert_eq!(loaded, img, ".{extension} is lossless");
            }
        }
    }

    #[test]
    fn save_accepts_uppercase_extension() {
        let dir = temp_dir();
        let path = dir.path().join("OUT.PNG");
        save_image(&path, &constant_image(2, 2, 9.0)).unwrap();
        assert_eq!(load_image(&path).unwrap(), constant_image(2, 2, 9.0));
    }

    #[test]
    fn save_leaves_no_temp_file() {
        let dir = temp_dir();
        let path = dir.path().join("result.png");
        save_image(&path, &constant_image(3, 3, 50.0)).unwrap();
        // Overwriting goes through a temporary file too.
        save_image(&path, &constant_image(3, 3, 60.0)).unwrap();

        assert_eq!(dir_entries(dir.path()), vec!["result.png".to_string()]);
        assert_eq!(load_image(&path).unwrap(), constant_image(3, 3, 60.0));
    }

    #[test]
    fn save_failure_removes_temp_file() {
        let dir = temp_dir();
        // Renaming a file over a non-empty directory fails after the temporary file exists.
        let path = dir.path().join("taken.png");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), b"x").unwrap();

        let err = save_image(&path, &constant_image(2, 2, 1.0)).unwrap_err();
        assert!(matches!(err, ImageIoError::Write { .. }), "{err}");
        assert_eq!(dir_entries(dir.path()), vec!["taken.png".to_string()]);
    }

    #[test]
    fn save_rejects_wrong_data_length() {
        let dir = temp_dir();
        let img = RgbImage {
            width: 2,
            height: 2,
            data: vec![0.0; 11],
        };
        let err = save_image(&dir.path().join("bad.png"), &img).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image data has 11 values but a 2x2 RGB image needs 12"
        );
        assert!(dir_entries(dir.path()).is_empty());
    }

    // ---- Load errors ----

    #[test]
    fn load_missing_file() {
        let dir = temp_dir();
        let path = dir.path().join("missing.png");
        let err = load_image(&path).unwrap_err();
        assert!(matches!(err, ImageIoError::NotFound { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("missing.png"), "{message}");
        assert!(message.contains("not found"), "{message}");
    }

    #[test]
    fn load_directory() {
        let dir = temp_dir();
        let err = load_image(dir.path()).unwrap_err();
        assert!(matches!(err, ImageIoError::IsDirectory { .. }), "{err:?}");
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn load_unreadable_file() {
        use std::os::unix::fs::PermissionsExt;

        let dir = temp_dir();
        let path = dir.path().join("locked.png");
        save_image(&path, &constant_image(1, 1, 0.0)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
        if fs::File::open(&path).is_ok() {
            eprintln!("skipped: this user can read files without read permission");
            return;
        }

        let err = load_image(&path).unwrap_err();
        assert!(matches!(err, ImageIoError::Unreadable { .. }), "{err:?}");
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn load_unrecognised_format() {
        let dir = temp_dir();
        let path = dir.path().join("notes.txt");
        fs::write(&path, "plain text, not an image").unwrap();

        let err = load_image(&path).unwrap_err();
        assert!(
            matches!(err, ImageIoError::UnrecognisedFormat { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("notes.txt"), "{message}");
        assert!(message.contains("PNG, JPEG"), "{message}");
    }

    #[test]
    fn load_corrupt_png() {
        let dir = temp_dir();
        let path = dir.path().join("corrupt.png");
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        bytes.extend_from_slice(&[0x13; 40]);
        fs::write(&path, bytes).unwrap();

        let err = load_image(&path).unwrap_err();
        assert!(matches!(err, ImageIoError::Decode { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("failed to decode"), "{message}");
        assert!(message.contains("corrupt.png"), "{message}");
    }

    #[test]
    fn load_truncated_jpeg() {
        let dir = temp_dir();
        let path = dir.path().join("truncated.jpg");
        let full = jpeg_with_orientation(1);
        // A third of this file ends in its headers, before any image data.
        fs::write(&path, &full[..full.len() / 3]).unwrap();

        let err = load_image(&path).unwrap_err();
        assert!(matches!(err, ImageIoError::TruncatedJpeg { .. }), "{err:?}");
    }

    #[test]
    fn input_formats_can_be_decoded() {
        let listed = [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Gif,
            ImageFormat::WebP,
            ImageFormat::Tiff,
            ImageFormat::Bmp,
            ImageFormat::Tga,
            ImageFormat::Ico,
            ImageFormat::Pnm,
            ImageFormat::Qoi,
            ImageFormat::Hdr,
            ImageFormat::OpenExr,
            ImageFormat::Farbfeld,
        ];
        for format in listed {
            assert!(
                format.reading_enabled(),
                "{format:?} is listed but cannot be read"
            );
        }
    }

    // ---- Output checks ----

    #[test]
    fn check_output_accepts_writable_folder() {
        let dir = temp_dir();
        check_output_path(&dir.path().join("out.png")).unwrap();
        check_output_path(&dir.path().join("out.JPG")).unwrap();
        assert!(dir_entries(dir.path()).is_empty(), "probe file left behind");
    }

    #[test]
    fn check_output_rejects_extension() {
        let dir = temp_dir();
        let err = check_output_path(&dir.path().join("out.gif")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "unsupported output extension 'gif' in {}: use one of {OUTPUT_EXTENSIONS}",
                dir.path().join("out.gif").display()
            )
        );

        let err = check_output_path(&dir.path().join("out")).unwrap_err();
        assert!(
            matches!(err, ImageIoError::MissingOutputExtension { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("has no extension"), "{err}");
    }

    #[test]
    fn check_output_rejects_missing_folder() {
        let dir = temp_dir();
        let missing = dir.path().join("no_such_folder");
        let err = check_output_path(&missing.join("out.png")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "output folder {} does not exist: create it or choose another folder",
                missing.display()
            )
        );
    }

    #[test]
    fn check_output_rejects_file_as_folder() {
        let dir = temp_dir();
        let file = dir.path().join("plain_file");
        fs::write(&file, b"x").unwrap();
        let err = check_output_path(&file.join("out.png")).unwrap_err();
        assert!(
            matches!(err, ImageIoError::OutputDirNotDirectory { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn check_output_rejects_directory_path() {
        let dir = temp_dir();
        let folder = dir.path().join("looks_like.png");
        fs::create_dir(&folder).unwrap();
        let err = check_output_path(&folder).unwrap_err();
        assert!(
            matches!(err, ImageIoError::OutputIsDirectory { .. }),
            "{err:?}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn check_output_rejects_read_only_folder() {
        use std::os::unix::fs::PermissionsExt;

        let dir = temp_dir();
        let read_only = dir.path().join("read_only");
        fs::create_dir(&read_only).unwrap();
        fs::set_permissions(&read_only, fs::Permissions::from_mode(0o555)).unwrap();
        if permissions_are_bypassed(&read_only) {
            eprintln!("skipped: this user can write to read-only folders");
            return;
        }

        let err = check_output_path(&read_only.join("out.png")).unwrap_err();
        assert!(
            matches!(err, ImageIoError::OutputDirNotWritable { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("is not writable"), "{err}");

        let err = save_image(&read_only.join("out.png"), &constant_image(1, 1, 0.0)).unwrap_err();
        assert!(matches!(err, ImageIoError::Write { .. }), "{err:?}");
        fs::set_permissions(&read_only, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn parent_dir_of_bare_name_is_current() {
        assert_eq!(parent_dir(Path::new("out.png")), PathBuf::from("."));
        assert_eq!(parent_dir(Path::new("a/out.png")), PathBuf::from("a"));
    }

    // ---- A hand-written palette PNG, since image cannot encode one ----

    /// Builds an 8-bit palette PNG with a stored (uncompressed) zlib stream.
    fn palette_png(
        width: u32,
        height: u32,
        palette: &[u8],
        transparency: &[u8],
        indices: &[u8],
    ) -> Vec<u8> {
        let mut header = Vec::new();
        header.extend_from_slice(&width.to_be_bytes());
        header.extend_from_slice(&height.to_be_bytes());
        // Bit depth 8, colour type 3 (palette), deflate, adaptive filtering, no interlace.
        header.extend_from_slice(&[8, 3, 0, 0, 0]);

        let mut scanlines = Vec::new();
        for row in indices.chunks(width as usize) {
            scanlines.push(0); // filter type None
            scanlines.extend_from_slice(row);
        }

        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(png_chunk(b"IHDR", &header));
        png.extend(png_chunk(b"PLTE", palette));
        png.extend(png_chunk(b"tRNS", transparency));
        png.extend(png_chunk(b"IDAT", &zlib_stored(&scanlines)));
        png.extend(png_chunk(b"IEND", &[]));
        png
    }

    fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut chunk = Vec::new();
        chunk.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(data);
        let crc = crc32(&chunk[4..]);
        chunk.extend_from_slice(&crc.to_be_bytes());
        chunk
    }

    /// Wraps `data` (under 64 KiB) in a zlib stream with one stored deflate block.
    fn zlib_stored(data: &[u8]) -> Vec<u8> {
        let len = u16::try_from(data.len()).unwrap();
        let mut stream = vec![0x78, 0x01, 0x01];
        stream.extend_from_slice(&len.to_le_bytes());
        stream.extend_from_slice(&(!len).to_le_bytes());
        stream.extend_from_slice(data);
        stream.extend_from_slice(&adler32(data).to_be_bytes());
        stream
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                let mask = (crc & 1).wrapping_neg();
                crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
            }
        }
        !crc
    }

    fn adler32(bytes: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in bytes {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }
}
