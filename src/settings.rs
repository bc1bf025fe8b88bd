//! Settings of one style transfer run, independent of how they were given (CLI or library).

/// Which loss terms to use and how to weight them.
///
/// Layer indices refer to [`crate::vgg::VGG16_LAYERS`]. The total loss is
/// `content_weight * sum_l w_l * content_l + style_weight * sum_l s_l * style_l
/// + tv_weight * tv`, with the per-layer terms defined in [`crate::reference`].
#[derive(Debug, Clone, PartialEq)]
pub struct LossSettings {
    pub content_layers: Vec<usize>,
    /// One weight per content layer.
    pub content_layer_weights: Vec<f32>,
    pub style_layers: Vec<usize>,
    /// One weight per style layer.
    pub style_layer_weights: Vec<f32>,
    pub content_weight: f32,
    pub style_weight: f32,
    pub tv_weight: f32,
}

impl LossSettings {
    /// Index of the deepest layer any loss term reads; the forward pass stops there.
    pub fn deepest_layer(&self) -> usize {
        self.content_layers
            .iter()
            .chain(&self.style_layers)
            .copied()
            .max()
            .unwrap_or(0)
    }
}

/// Adam hyper-parameters. The learning rate is in preprocessed pixel units, where
/// one unit is one step of an 8-bit colour channel (0..255 scale). The default 5
/// moves a pixel by up to about 5 levels per step, which stylised 128 px test images
/// within 25 to 100 steps. The other defaults are PyTorch's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamSettings {
    pub learning_rate: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
}

impl Default for AdamSettings {
    fn default() -> Self {
        AdamSettings {
            learning_rate: 5.0,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }
}

/// Starting point of the optimised image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitMode {
    /// The content image itself.
    Content,
    /// Uniform noise in [-20, 20) around the ImageNet mean colour.
    Noise,
    /// `noise_ratio * noise + (1 - noise_ratio) * content`.
    Blend,
}
