//! The command line rejects bad input with one clear message, a non-zero exit
//! status and no output file, before any GPU work.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_wgpu-style");

fn examples() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    (root.join("coffee.jpg"), root.join("hubble_deep_field.jpg"))
}

fn run(args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs the command, expects failure with `needle` in stderr and no file at `output`.
fn expect_rejected(args: &[&str], needle: &str, output: &Path) {
    let result = run(args);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        !result.status.success(),
        "{args:?} succeeded; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(needle),
        "{args:?}: stderr does not contain {needle:?}:\n{stderr}"
    );
    assert!(!output.exists(), "{args:?} left {}", output.display());
    // Errors come before the GPU is opened, so no adapter line is printed.
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        !stdout.contains("adapter:"),
        "{args:?} opened the GPU:\n{stdout}"
    );
}

struct Case {
    args: Vec<String>,
    needle: &'static str,
}

#[test]
fn bad_inputs_are_rejected_before_gpu_work() {
    let dir = tempfile::tempdir().unwrap();
    let (content, style) = examples();
    let content = content.to_str().unwrap().to_string();
    let style = style.to_str().unwrap().to_string();
    let out = dir.path().join("out.png");
    let out_s = out.to_str().unwrap().to_string();
    let not_an_image = dir.path().join("notes.png");
    std::fs::write(&not_an_image, "plain text, not a PNG").unwrap();
    let not_an_image = not_an_image.to_str().unwrap().to_string();
    let missing = dir.path().join("missing.jpg").to_str().unwrap().to_string();
    let folder = dir.path().to_str().unwrap().to_string();
    let in_missing_folder = dir
        .path()
        .join("no/such/folder/out.png")
        .to_str()
        .unwrap()
        .to_string();
    let bad_extension = dir.path().join("out.xyz").to_str().unwrap().to_string();
    let missing_weights = dir
        .path()
        .join("none.safetensors")
        .to_str()
        .unwrap()
        .to_string();

    let base = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![content.clone(), style.clone(), "-o".into(), out_s.clone()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let cases = vec![
        Case {
            args: vec![missing.clone(), style.clone(), "-o".into(), out_s.clone()],
            needle: "not found",
        },
        Case {
            args: vec![content.clone(), folder.clone(), "-o".into(), out_s.clone()],
            needle: "not a regular file",
        },
        Case {
            args: vec![
                not_an_image.clone(),
                style.clone(),
                "-o".into(),
                out_s.clone(),
            ],
            needle: "notes.png",
        },
        Case {
            args: vec![content.clone(), style.clone(), "-o".into(), bad_extension],
            needle: "xyz",
        },
        Case {
            args: vec![
                content.clone(),
                style.clone(),
                "-o".into(),
                in_missing_folder,
            ],
            needle: "does not exist",
        },
        Case {
            args: base(&["--style-layers", "conv1_1,conv9_9"]),
            needle: "unknown layer name 'conv9_9'",
        },
        Case {
            args: base(&["--content-layers", "conv4_2,block4_conv2"]),
            needle: "listed twice",
        },
        Case {
            args: base(&["--style-layer-weights", "1,2"]),
            needle: "--style-layer-weights",
        },
        Case {
            args: base(&["--size", "0"]),
            needle: "--size",
        },
        Case {
            args: base(&["--iterations", "0"]),
            needle: "--iterations",
        },
        Case {
            args: base(&["--learning-rate", "0"]),
            needle: "--learning-rate",
        },
        Case {
            args: base(&["--noise-ratio", "1.5"]),
            needle: "--noise-ratio",
        },
        Case {
            args: base(&["--size", "8"]),
            needle: "16",
        },
        Case {
            args: base(&["--weights", &missing_weights]),
            needle: "convert_vgg16.py",
        },
    ];
    for case in cases {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        expect_rejected(&args, case.needle, &out);
    }
}

#[test]
fn output_may_not_overwrite_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let (content, style) = examples();
    let copy = dir.path().join("photo.jpg");
    std::fs::copy(&content, &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let copy_s = copy.to_str().unwrap();
    let result = run(&[copy_s, style.to_str().unwrap(), "-o", copy_s]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("is the content image"), "{stderr}");
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        before,
        "the input was modified"
    );
}

#[test]
fn list_layers_prints_every_layer() {
    let result = run(&["--list-layers"]);
    assert!(result.status.success());
    let text = String::from_utf8_lossy(&result.stdout);
    for name in ["conv1_1", "conv3_3", "conv5_3", "block4_conv2"] {
        assert!(text.contains(name), "--list-layers lacks {name}:\n{text}");
    }
}
