//! Every WGSL shader parses and validates with naga, without any adapter.

use wgpu_style::gpu::SHADERS;

#[test]
fn every_shader_validates_with_naga() {
    assert!(!SHADERS.is_empty());
    for (name, source) in SHADERS {
        let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| {
            panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(source))
        });
        // The subgroup convolution needs what wgpu enables with Features::SUBGROUP.
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default() | naga::valid::Capabilities::SUBGROUP,
        );
        validator
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
        validator.validate(&module).unwrap_or_else(|e| {
            panic!(
                "{name}.wgsl does not validate:\n{}",
                e.emit_to_string(source)
            )
        });
        assert!(
            module.entry_points.iter().any(|e| e.name == "main"),
            "{name}.wgsl has no entry point named main"
        );
    }
}

#[test]
fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(
                SHADERS.iter().any(|(name, _)| *name == stem),
                "{} is not compiled by the engine",
                path.display()
            );
        }
    }
}

/// The host computes dispatch sizes from tile constants that must match the shaders.
#[test]
fn tile_constants_match_shaders() {
    use wgpu_style::gpu::ops;
    let source = |name: &str| SHADERS.iter().find(|(n, _)| *n == name).unwrap().1;
    let checks = [
        (
            "conv3x3",
            format!("const PIXELS: u32 = {}u;", ops::CONV_PIXELS),
        ),
        (
            "conv3x3",
            format!("const OUT_BLOCK: u32 = {}u;", ops::CONV_OUT_BLOCK),
        ),
        ("gram", format!("const BLOCK: u32 = {}u;", ops::GRAM_BLOCK)),
        (
            "style_grad",
            format!("const PIXELS: u32 = {}u;", ops::STYLE_GRAD_PIXELS),
        ),
        (
            "style_grad",
            format!("const OUT_BLOCK: u32 = {}u;", ops::STYLE_GRAD_OUT_BLOCK),
        ),
    ];
    for (name, line) in checks {
        assert!(
            source(name).contains(&line),
            "{name}.wgsl does not declare `{line}`"
        );
    }
}
