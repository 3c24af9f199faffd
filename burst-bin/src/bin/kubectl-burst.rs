//! kubectl-burst: the operator's CLI for BurstPolicies, as a kubectl plugin.
//!
//! On the `PATH` as `kubectl-burst`, it runs as `kubectl burst ...`. It reads the kubeconfig
//! as kubectl does (`--kubeconfig`, `KUBECONFIG`, `~/.kube/config`; `--context`,
//! `-n/--namespace`, `-A`). The commands live in `burst-bin/src/cmd/ops/`; this file parses,
//! runs one command and maps the outcome to an exit code: 0 done, 1 the work failed (the
//! API server did not answer), 2 the request was wrong (no kubeconfig, no such policy,
//! forbidden, bad arguments).

use std::process::ExitCode;

use clap::Parser;

#[path = "../cmd/ops/mod.rs"]
mod ops;

fn main() -> ExitCode {
    let cli = ops::Cli::parse();
    burst_main::init_logging_from_env("warn");
    match burst_main::block_on(ops::run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            let exit = if e.downcast_ref::<ops::Usage>().is_some() {
                burst_main::Exit::Usage
            } else {
                burst_main::Exit::Runtime
            };
            burst_main::fail("kubectl-burst", exit, &e)
        }
        Err(e) => burst_main::fail("kubectl-burst", burst_main::Exit::Runtime, &e),
    }
}
