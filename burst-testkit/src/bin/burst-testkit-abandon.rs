//! Starts a control plane, prints the pids of its servers and state directory, then aborts
//! without running any destructor: what a test binary that crashes or is killed leaves
//! behind. `tests/control_plane.rs` runs it and checks that nothing is left.

use std::io::Write;

fn main() -> std::process::ExitCode {
    let cp = match burst_testkit::kube::ControlPlane::start() {
        Ok(cp) => cp,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let (etcd, apiserver) = cp.server_pids();
    let pid = |p: Option<u32>| p.map_or_else(|| "none".to_owned(), |p| p.to_string());
    println!("{} {} {}", pid(etcd), pid(apiserver), cp.dir().display());
    let _ = std::io::stdout().flush();
    std::process::abort();
}
