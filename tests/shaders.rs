//! Every WGSL shader parses and validates with naga, without any adapter.

use wgpu_style::gpu::{tiled_source, Tile, TiledKind, SHADERS};

#[test]
fn every_shader_validates_with_naga() {
    assert!(!SHADERS.is_empty());
    for (name, source) in SHADERS {
        validate(name, source);
    }
}

/// The generated kernels, for the tile the engine uses and a few others.
#[test]
fn generated_tiled_kernels_validate_with_naga() {
    let mut tiles = vec![Tile::for_subgroup_size(8), Tile::for_subgroup_size(64)];
    tiles.push(Tile {
        pixels: 3,
        rows: 1,
        out_block: 2,
        workgroup_size: 16,
    });
    for tile in tiles {
        for kind in [TiledKind::Conv3x3, TiledKind::Pointwise] {
            let source = tiled_source(kind, tile);
            validate(&format!("{kind:?} {tile:?}"), &source);
        }
    }
}

/// Parses and validates one WGSL module with the capabilities wgpu enables
/// with `Features::SUBGROUP`, and checks its entry point.
fn validate(name: &str, source: &str) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name} does not parse:\n{}", e.emit_to_string(source)));
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default() | naga::valid::Capabilities::SUBGROUP,
    );
    validator
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all());
    validator
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name} does not validate:\n{}", e.emit_to_string(source)));
    assert!(
        module.entry_points.iter().any(|e| e.name == "main"),
        "{name} has no entry point named main"
    );
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
