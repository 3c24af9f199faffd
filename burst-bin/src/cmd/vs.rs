//! `burst vs` and `burst httproute`: read or change the primary/burst weights of a
//! VirtualService or HTTPRoute manifest file.
//!
//! `set-weights` prints the whole file again (every document, in order) with only the two
//! weights of the selected route changed; `get-weights` prints the split. Ambiguous or
//! missing routes and destinations are errors (exit code 2), never guesses.
//!
//! The YAML printed is the same objects re-serialised: comments are dropped and mapping keys
//! come out sorted.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use burst_core::{Split, Weight};
use burst_istio::render::to_yaml_stream;
use burst_istio::{BackendSelector, HttpRouteTarget, RouteSelector, VsTarget};
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};

/// Arguments of `burst vs`.
#[derive(Debug, clap::Args)]
pub struct VsArgs {
    #[command(subcommand)]
    command: VsCommand,
}

#[derive(Debug, Subcommand)]
enum VsCommand {
    /// Print the manifest with the two subset weights set to a split.
    SetWeights {
        #[command(flatten)]
        select: VsSelect,
        /// Percentage of traffic for the burst subset (0-100); the primary subset gets the rest.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        burst_weight: u8,
    },
    /// Print the split the selected route holds.
    GetWeights {
        #[command(flatten)]
        select: VsSelect,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Debug, clap::Args)]
struct VsSelect {
    /// VirtualService manifest (YAML or JSON; several documents allowed); `-` reads stdin.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: PathBuf,
    /// Name of the http route to change (default: the only route holding both subsets).
    #[arg(long, value_name = "NAME", conflicts_with = "route_index")]
    route: Option<String>,
    /// 0-based index of the http route to change.
    #[arg(long, value_name = "N")]
    route_index: Option<usize>,
    /// Subset that receives the primary share.
    #[arg(long, default_value = "primary")]
    primary_subset: String,
    /// Subset that receives the burst share.
    #[arg(long, default_value = "burst")]
    burst_subset: String,
    /// Only destinations with this host count (to tell apart equal subset names).
    #[arg(long)]
    host: Option<String>,
}

/// Arguments of `burst httproute`.
#[derive(Debug, clap::Args)]
pub struct HttpRouteArgs {
    #[command(subcommand)]
    command: HttpRouteCommand,
}

#[derive(Debug, Subcommand)]
enum HttpRouteCommand {
    /// Print the manifest with the two backend weights set to a split.
    SetWeights {
        #[command(flatten)]
        select: HttpRouteSelect,
        /// Percentage of traffic for the burst backend (0-100); the primary backend gets the rest.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        burst_weight: u8,
    },
    /// Print the split the selected rule holds (weights are proportions).
    GetWeights {
        #[command(flatten)]
        select: HttpRouteSelect,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Debug, clap::Args)]
struct HttpRouteSelect {
    /// HTTPRoute manifest (YAML or JSON; several documents allowed); `-` reads stdin.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: PathBuf,
    /// Name of the rule to change (default: the only rule holding both backends).
    #[arg(long, value_name = "NAME", conflicts_with = "rule_index")]
    rule: Option<String>,
    /// 0-based index of the rule to change.
    #[arg(long, value_name = "N")]
    rule_index: Option<usize>,
    /// backendRef name (a Service) that receives the primary share.
    #[arg(long, value_name = "NAME")]
    primary_backend: String,
    /// backendRef name that receives the burst share.
    #[arg(long, value_name = "NAME")]
    burst_backend: String,
    /// Port the primary backendRef must have.
    #[arg(long)]
    primary_port: Option<u16>,
    /// Port the burst backendRef must have.
    #[arg(long)]
    burst_port: Option<u16>,
    /// Namespace the primary backendRef must be in (omitted in the ref: the route's).
    #[arg(long)]
    primary_namespace: Option<String>,
    /// Namespace the burst backendRef must be in.
    #[arg(long)]
    burst_namespace: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// `primary=80 burst=20`
    Text,
    /// `{"primary":80,"burst":20}`
    Json,
}

/// Runs `burst vs`.
pub async fn run_vs(args: VsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        VsCommand::SetWeights {
            select,
            burst_weight,
        } => {
            let target = select.target();
            set(&select.file, "VirtualService", burst_weight, |v, s| {
                target.write(v, s)
            })
        }
        VsCommand::GetWeights { select, output } => {
            let target = select.target();
            get(&select.file, "VirtualService", output, |v| target.read(v))
        }
    }
}

/// Runs `burst httproute`.
pub async fn run_httproute(args: HttpRouteArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        HttpRouteCommand::SetWeights {
            select,
            burst_weight,
        } => {
            let target = select.target();
            set(&select.file, "HTTPRoute", burst_weight, |v, s| {
                target.write(v, s)
            })
        }
        HttpRouteCommand::GetWeights { select, output } => {
            let target = select.target();
            get(&select.file, "HTTPRoute", output, |v| target.read(v))
        }
    }
}

impl VsSelect {
    fn target(&self) -> VsTarget {
        let mut t = VsTarget::default()
            .route(selector(&self.route, self.route_index))
            .subsets(&self.primary_subset, &self.burst_subset);
        if let Some(h) = &self.host {
            t = t.host(h);
        }
        t
    }
}

impl HttpRouteSelect {
    fn target(&self) -> HttpRouteTarget {
        let backend = |name: &str, port: Option<u16>, ns: &Option<String>| {
            let mut b = BackendSelector::new(name);
            if let Some(p) = port {
                b = b.port(p);
            }
            if let Some(ns) = ns {
                b = b.namespace(ns);
            }
            b
        };
        HttpRouteTarget::new(
            backend(
                &self.primary_backend,
                self.primary_port,
                &self.primary_namespace,
            ),
            backend(&self.burst_backend, self.burst_port, &self.burst_namespace),
        )
        .rule(selector(&self.rule, self.rule_index))
    }
}

fn selector(name: &Option<String>, index: Option<usize>) -> RouteSelector {
    match (name, index) {
        (Some(n), _) => RouteSelector::Name(n.clone()),
        (None, Some(i)) => RouteSelector::Index(i),
        (None, None) => RouteSelector::Only,
    }
}

fn read_documents(file: &Path) -> anyhow::Result<Vec<Value>> {
    let text = if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the manifest from stdin")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| anyhow::anyhow!("{} is not valid YAML or JSON: {e}", file.display()))?;
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    if docs.is_empty() {
        bail!("{} holds no object", file.display());
    }
    Ok(docs)
}

/// Index of the one document of `kind`; with a single document, that one (the transform then
/// names a wrong kind precisely).
fn pick(file: &Path, docs: &[Value], kind: &str) -> anyhow::Result<usize> {
    if docs.len() == 1 {
        return Ok(0);
    }
    let found: Vec<usize> = docs
        .iter()
        .enumerate()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(i, _)| i)
        .collect();
    match found.as_slice() {
        [i] => Ok(*i),
        [] => bail!(
            "{} has {} documents but no {kind}; pass the file holding the {kind}",
            file.display(),
            docs.len()
        ),
        several => bail!(
            "{} has {} {kind}s ({}); pass a file with exactly one",
            file.display(),
            several.len(),
            several
                .iter()
                .map(|i| docs[*i]["metadata"]["name"].as_str().unwrap_or("<unnamed>"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn set(
    file: &Path,
    kind: &str,
    burst_weight: u8,
    write: impl Fn(&Value, Split) -> Result<Value, burst_istio::Error>,
) -> anyhow::Result<ExitCode> {
    let split = Split::from_burst(Weight::try_new(i64::from(burst_weight))?);
    let mut docs = read_documents(file)?;
    let i = pick(file, &docs, kind)?;
    docs[i] = write(&docs[i], split)?;
    print!("{}", to_yaml_stream(&docs)?);
    Ok(ExitCode::SUCCESS)
}

fn get(
    file: &Path,
    kind: &str,
    output: Output,
    read: impl Fn(&Value) -> Result<Split, burst_istio::Error>,
) -> anyhow::Result<ExitCode> {
    let docs = read_documents(file)?;
    let i = pick(file, &docs, kind)?;
    let split = read(&docs[i])?;
    match output {
        Output::Text => println!("primary={} burst={}", split.primary(), split.burst()),
        Output::Json => println!(
            "{}",
            json!({"primary": split.primary().get(), "burst": split.burst().get()})
        ),
    }
    Ok(ExitCode::SUCCESS)
}
