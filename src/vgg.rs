//! The VGG-16 feature extractor: its 13 convolution layers, their names and
//! the 2x2 max-pools between blocks.

use thiserror::Error;

/// One 3x3 convolution layer (padding 1, stride 1, bias, then ReLU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvLayer {
    /// Caffe-style name used by neural-style tools, e.g. `conv4_2`.
    pub name: &'static str,
    /// Keras name of the same layer, e.g. `block4_conv2`.
    pub keras_name: &'static str,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Whether a 2x2 max-pool (stride 2, floor) runs on this layer's input.
    pub pool_before: bool,
}

const fn layer(
    name: &'static str,
    keras_name: &'static str,
    in_channels: usize,
    out_channels: usize,
    pool_before: bool,
) -> ConvLayer {
    ConvLayer {
        name,
        keras_name,
        in_channels,
        out_channels,
        pool_before,
    }
}

/// The 13 convolution layers of VGG-16 in forward order.
pub const VGG16_LAYERS: [ConvLayer; 13] = [
    layer("conv1_1", "block1_conv1", 3, 64, false),
    layer("conv1_2", "block1_conv2", 64, 64, false),
    layer("conv2_1", "block2_conv1", 64, 128, true),
    layer("conv2_2", "block2_conv2", 128, 128, false),
    layer("conv3_1", "block3_conv1", 128, 256, true),
    layer("conv3_2", "block3_conv2", 256, 256, false),
    layer("conv3_3", "block3_conv3", 256, 256, false),
    layer("conv4_1", "block4_conv1", 256, 512, true),
    layer("conv4_2", "block4_conv2", 512, 512, false),
    layer("conv4_3", "block4_conv3", 512, 512, false),
    layer("conv5_1", "block5_conv1", 512, 512, true),
    layer("conv5_2", "block5_conv2", 512, 512, false),
    layer("conv5_3", "block5_conv3", 512, 512, false),
];

/// Default content layer, as in Gatys et al.
pub const DEFAULT_CONTENT_LAYERS: [&str; 1] = ["conv4_2"];
/// Default style layers, as in Gatys et al.
pub const DEFAULT_STYLE_LAYERS: [&str; 5] = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LayerError {
    #[error(
        "unknown layer name '{0}': use conv1_1 .. conv5_3 or block1_conv1 .. block5_conv3 \
         (--list-layers prints them all)"
    )]
    Unknown(String),
    #[error("layer '{0}' is listed twice in {1}: name each layer once")]
    Duplicate(String, &'static str),
    #[error("{0} is empty: name at least one layer")]
    Empty(&'static str),
}

/// Returns the index into [`VGG16_LAYERS`] of a Caffe-style (`conv4_2`) or Keras-style
/// (`block4_conv2`) layer name. Matching ignores ASCII case and surrounding spaces.
pub fn layer_index(name: &str) -> Result<usize, LayerError> {
    let wanted = name.trim().to_ascii_lowercase();
    VGG16_LAYERS
        .iter()
        .position(|l| l.name == wanted || l.keras_name == wanted)
        .ok_or_else(|| LayerError::Unknown(name.trim().to_string()))
}

/// Parses a list of layer names into sorted-by-request layer indices, rejecting
/// unknown names and duplicates. `what` names the option in messages.
pub fn parse_layer_list<S: AsRef<str>>(
    names: &[S],
    what: &'static str,
) -> Result<Vec<usize>, LayerError> {
    if names.is_empty() {
        return Err(LayerError::Empty(what));
    }
    let mut indices = Vec::with_capacity(names.len());
    for name in names {
        let index = layer_index(name.as_ref())?;
        if indices.contains(&index) {
            return Err(LayerError::Duplicate(
                VGG16_LAYERS[index].name.to_string(),
                what,
            ));
        }
        indices.push(index);
    }
    Ok(indices)
}

/// Number of 2x2 max-pools applied before layer `index` runs.
pub fn pools_before(index: usize) -> u32 {
    VGG16_LAYERS[..=index]
        .iter()
        .filter(|l| l.pool_before)
        .count() as u32
}

/// Spatial size (height, width) of layer `index`'s input and output for an image of
/// `height` x `width` pixels. Each pool halves the size, dropping an odd last row or column.
pub fn layer_size(index: usize, height: u32, width: u32) -> (u32, u32) {
    let pools = pools_before(index);
    (height >> pools, width >> pools)
}

/// Smallest image side for which layer `index` still has at least one pixel.
pub fn min_image_side(index: usize) -> u32 {
    1 << pools_before(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_in_both_styles() {
        assert_eq!(layer_index("conv4_2"), Ok(8));
        assert_eq!(layer_index("block4_conv2"), Ok(8));
        assert_eq!(layer_index(" Conv1_1 "), Ok(0));
        assert!(matches!(
            layer_index("conv6_1"),
            Err(LayerError::Unknown(_))
        ));
    }

    #[test]
    fn duplicates_are_rejected_across_styles() {
        let err = parse_layer_list(&["conv1_1", "block1_conv1"], "--style-layers").unwrap_err();
        assert_eq!(
            err,
            LayerError::Duplicate("conv1_1".into(), "--style-layers")
        );
    }

    #[test]
    fn sizes_follow_floor_pooling() {
        assert_eq!(layer_size(10, 48, 64), (3, 4));
        assert_eq!(layer_size(4, 13, 9), (3, 2));
        assert_eq!(min_image_side(10), 16);
        assert_eq!(min_image_side(0), 1);
    }

    #[test]
    fn channels_chain() {
        for pair in VGG16_LAYERS.windows(2) {
            assert_eq!(pair[0].out_channels, pair[1].in_channels);
        }
    }
}
