//! The command end to end on a real photo and painting from `../shared/images`
//! beside the repository, at 64 px on whatever adapter the machine has: the loss
//! falls, the output has the content's working size, snapshots appear and no
//! temporary file is left. Skipped with a message when `../shared` is absent.

mod common;

use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_wgpu-style");

/// Total losses printed at the print points, in order.
fn printed_totals(stdout: &str) -> Vec<(u32, f64)> {
    stdout
        .lines()
        .filter(|line| line.starts_with("iteration"))
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let iteration = words[1].parse().expect("iteration number");
            assert_eq!(words[2], "total", "unexpected line {line}");
            (iteration, words[3].parse().expect("total loss"))
        })
        .collect()
}

#[test]
fn tubingen_in_starry_night_style_at_64_px() {
    let Some(shared) = common::shared_dir() else {
        eprintln!("skipping end-to-end test: ../shared is absent");
        return;
    };
    if common::gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("tubingen.png");
    let result = Command::new(BINARY)
        .arg(shared.join("images/tubingen.jpg"))
        .arg(shared.join("images/starry_night.jpg"))
        .args(["-o", output.to_str().unwrap()])
        .args([
            "--size",
            "64",
            "--iterations",
            "12",
            "--print-every",
            "4",
            "--snapshot-every",
            "4",
        ])
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        result.status.success(),
        "run failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );

    let totals = printed_totals(&stdout);
    let iterations: Vec<u32> = totals.iter().map(|(i, _)| *i).collect();
    assert_eq!(iterations, [1, 4, 8, 12], "print points:\n{stdout}");
    let (first, last) = (totals[0].1, totals[totals.len() - 1].1);
    assert!(
        last < 0.7 * first,
        "the loss did not fall enough: {first:e} -> {last:e}\n{stdout}"
    );

    // tubingen.jpg is 1024x768, so the working size at 64 px is 64x48.
    let image = image::open(&output).expect("the output decodes");
    assert_eq!((image.width(), image.height()), (64, 48));
    for iteration in [4, 8] {
        let snapshot = dir.path().join(format!("tubingen_{iteration:02}.png"));
        assert!(
            snapshot.is_file(),
            "snapshot {} is missing\n{stdout}",
            snapshot.display()
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// With a vanishing learning rate the output is the content image itself: this
/// catches any mistake in the colour conversions and layouts on the way in and out.
#[test]
fn tiny_step_returns_the_content_image() {
    if common::gpu().is_none() {
        return;
    }
    let content = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/coffee.jpg");
    let style =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hubble_deep_field.jpg");
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("same.png");
    let result = Command::new(BINARY)
        .arg(&content)
        .arg(&style)
        .args(["-o", output.to_str().unwrap()])
        .args([
            "--size",
            "48",
            "--iterations",
            "1",
            "--learning-rate",
            "1e-6",
        ])
        .output()
        .expect("the binary runs");
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );

    let original = wgpu_style::image_io::load_image(&content).unwrap();
    let (width, height) = wgpu_style::image_io::working_size(original.width, original.height, 48);
    let expected = wgpu_style::image_io::resize(&original, width, height);
    let written = image::open(&output).unwrap().to_rgb8();
    assert_eq!((written.width(), written.height()), (width, height));
    for (i, (&got, &want)) in written.as_raw().iter().zip(&expected.data).enumerate() {
        let want = want.round().clamp(0.0, 255.0);
        assert!(
            (f32::from(got) - want).abs() <= 1.0,
            "byte {i} (pixel {}, channel {}): wrote {got}, content has {want}",
            i / 3,
            i % 3
        );
    }
}
