//! `scripts/control-plane.sh`, as people and CI use it: `up` starts a working control plane
//! and prints the `export KUBECONFIG` line, `down` stops it and removes its directory, and
//! the errors name the problem and the fix (Go missing, a port in use).

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burst_testkit::kube::{client_from_kubeconfig, workspace_root};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

fn script() -> PathBuf {
    workspace_root().join("scripts/control-plane.sh")
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("bash");
    c.arg(script()).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn pid_alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_prints_a_working_kubeconfig_and_down_removes_everything() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("cp");
    let dir_s = dir.to_str().unwrap().to_owned();
    let up = run(&["up", &dir_s], &[]);
    assert!(up.status.success(), "up failed:\n{}", text(&up.stderr));
    let stdout = text(&up.stdout);
    let kubeconfig = dir.join("admin.kubeconfig");
    assert_eq!(
        stdout.trim(),
        format!("export KUBECONFIG={}", kubeconfig.display())
    );

    let pids: Vec<String> = ["etcd.pid", "kube-apiserver.pid"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(dir.join(f))
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect();
    assert!(pids.iter().all(|p| pid_alive(p)), "servers not running");

    let client = client_from_kubeconfig(&std::fs::read_to_string(&kubeconfig).unwrap())
        .await
        .unwrap();
    let names: Vec<String> = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.iter().any(|n| n == "kube-system"), "{names:?}");

    // A second `up` on the same directory is refused instead of starting twice.
    let again = run(&["up", &dir_s], &[]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("down"),
        "{}",
        text(&again.stderr)
    );

    let down = run(&["down", &dir_s], &[]);
    assert!(
        down.status.success(),
        "down failed:\n{}",
        text(&down.stderr)
    );
    assert!(!dir.exists(), "down left {} behind", dir.display());
    for _ in 0..50 {
        if pids.iter().all(|p| !pid_alive(p)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("servers still running after down: {pids:?}");
}

#[test]
fn a_port_in_use_is_named() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("cp");
    let out = run(
        &["up", dir.to_str().unwrap()],
        &[("BURST_APISERVER_PORT", &port)],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("port {port}")) && err.contains("in use"),
        "{err}"
    );
    assert!(!dir.join("pids").exists(), "nothing may be left running");
}

#[test]
fn build_without_go_says_how_to_get_it() {
    // An empty cache forces a build; a PATH without Go makes it impossible.
    let cache = tempfile::tempdir().unwrap();
    let out = run(
        &["build"],
        &[
            ("BURST_CONTROL_PLANE_DIR", cache.path().to_str().unwrap()),
            ("PATH", "/usr/bin:/bin"),
        ],
    );
    if Path::new("/usr/bin/go").exists() {
        // Debian's golang-go is on that PATH: the check cannot be made here.
        panic!("/usr/bin/go exists; this test needs a PATH without Go");
    }
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("Go is not installed") && err.contains("Go 1.26"),
        "{err}"
    );
}

#[test]
fn build_with_the_cache_present_is_immediate_and_prints_it() {
    let out = run(&["build"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = text(&out.stdout).trim().to_owned();
    // The script and the testkit agree on where the binaries are.
    assert_eq!(Path::new(&dir).join("bin"), burst_testkit::kube::bin_dir());
    for b in ["etcd", "kube-apiserver", "kubectl", "guard"] {
        assert!(
            Path::new(&dir).join("bin").join(b).is_file(),
            "{b} missing in {dir}"
        );
    }
}
