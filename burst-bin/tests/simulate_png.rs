//! `burst simulate --plot` writing PNG: the built binary, the decoded image, and the errors
//! for formats it cannot write.

use std::path::Path;

use resvg::tiny_skia::Pixmap;

mod common;

use common::burst;

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn decode(path: &Path) -> Pixmap {
    let bytes = std::fs::read(path).expect("plot written");
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is no PNG",
        path.display()
    );
    Pixmap::decode_png(&bytes).expect("PNG decodes")
}

/// Opaque pixels of this colour, also where anti-aliasing blended it with the white
/// background (at least 60 % coverage).
fn count(image: &Pixmap, rgb: [u8; 3]) -> usize {
    image
        .pixels()
        .iter()
        .filter(|c| c.alpha() == 255 && covers(rgb, [c.red(), c.green(), c.blue()]))
        .count()
}

fn covers(line: [u8; 3], pixel: [u8; 3]) -> bool {
    // pixel = a * line + (1 - a) * white, solved for a on the line's darkest channel.
    let (i, darkest) = line
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| **c)
        .expect("three channels");
    let a = (255.0 - f64::from(pixel[i])) / (255.0 - f64::from(*darkest));
    (0.6..=1.02).contains(&a)
        && line.iter().zip(pixel).all(|(l, p)| {
            let want = a * f64::from(*l) + (1.0 - a) * 255.0;
            (want - f64::from(p)).abs() <= 6.0
        })
}

fn dark_in_title(image: &Pixmap) -> usize {
    (4..30)
        .flat_map(|y| (300..660).map(move |x| (x, y)))
        .filter_map(|(x, y)| image.pixel(x, y))
        .filter(|c| c.red() < 100 && c.green() < 100 && c.blue() < 100)
        .count()
}

#[test]
fn step_trace_plot_is_a_png_with_the_weight_line_and_a_title() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("step.PNG");
    let (code, out, err) = burst(&["simulate", "--trace", "builtin:step", "--plot", utf8(&file)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("weight changes"),
        "the table is still printed: {out}"
    );
    let image = decode(&file);
    assert_eq!((image.width(), image.height()), (960, 420));
    // The burst weight (#d62728) goes 0 -> 100 -> 0: long horizontal runs of it.
    let red = count(&image, [0xd6, 0x27, 0x28]);
    assert!(red > 500, "only {red} pixels of the burst weight's colour");
    let white = image
        .pixels()
        .iter()
        .filter(|c| [c.red(), c.green(), c.blue(), c.alpha()] == [255; 4])
        .count();
    assert!(white > 960 * 420 / 2, "only {white} white pixels");
    assert!(dark_in_title(&image) > 30, "no title text drawn");
}

#[test]
fn compare_writes_one_png_per_trace_with_plot_format_png() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plots = dir.path().join("plots");
    let (code, _, err) = burst(&[
        "simulate",
        "--compare",
        "--trace",
        "builtin:step",
        "--trace",
        "builtin:flash",
        "--plot",
        utf8(&plots),
        "--plot-format",
        "png",
    ]);
    assert_eq!(code, 0, "{err}");
    let mut names: Vec<String> = std::fs::read_dir(&plots)
        .expect("plot dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["builtin_flash.png", "builtin_step.png"]);
    for name in &names {
        let image = decode(&plots.join(name));
        assert_eq!((image.width(), image.height()), (960, 420));
        // seed, recommended and overflow weights in their own colours. On `flash`,
        // recommended's burst weight sits on the frame at 100 % and its rise coincides with
        // overflow's (drawn over it), so little more than its legend entry shows there.
        let least = if name.contains("flash") {
            [300, 30, 300]
        } else {
            [300, 300, 300]
        };
        for (rgb, min) in [[0xd6, 0x27, 0x28], [0x2c, 0xa0, 0x2c], [0x94, 0x67, 0xbd]]
            .iter()
            .zip(least)
        {
            let n = count(&image, *rgb);
            assert!(n > min, "{name}: only {n} pixels of colour {rgb:?}");
        }
    }
}

#[test]
fn jpg_is_refused_naming_both_formats_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("step.jpg");
    let (code, _, err) = burst(&["simulate", "--trace", "builtin:step", "--plot", utf8(&file)]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(".jpg") && err.contains(".svg") && err.contains(".png"),
        "{err}"
    );
    assert!(!file.exists());
}

#[test]
fn plot_format_that_contradicts_the_file_name_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("step.svg");
    let (code, _, err) = burst(&[
        "simulate",
        "--trace",
        "builtin:step",
        "--plot",
        utf8(&file),
        "--plot-format",
        "png",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--plot-format png contradicts"), "{err}");
    assert!(!file.exists());
}

#[test]
fn help_documents_png_and_plot_format() {
    let (code, out, err) = burst(&["simulate", "--help"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("FILE.png"), "{out}");
    assert!(out.contains("--plot-format"), "{out}");
    assert!(out.contains("fonts-dejavu-core"), "{out}");
}
