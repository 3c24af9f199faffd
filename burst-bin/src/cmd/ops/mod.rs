//! `kubectl burst`: list, inspect, explain, pause, resume and pin BurstPolicies.
//!
//! Every command is one or two API calls with the user's own credentials: `list` and
//! `status` read BurstPolicies (and Events), `explain` also reads what the policy's source
//! and route need (its Secrets, the route) and never writes, `pause`/`resume`/`pin`/`unpin`
//! send one merge patch of the spec. burstd does the rest: a new spec restarts the policy's
//! loop, which honours `paused` and `pin`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use burst_operator::api::{BurstPolicy, BurstPolicyStatus};
use clap::{Parser, Subcommand, ValueEnum};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Resource as _, ResourceExt as _};
use serde_json::{Value, json};

mod render;

/// Timeout of every API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Field manager of the CLI's spec patches.
const FIELD_MANAGER: &str = "kubectl-burst";

/// A mistake of the request (exit code 2): wrong arguments, no kubeconfig, no such policy,
/// not allowed.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(message.into()))
}

/// kubectl-burst: look at and steer the BurstPolicies that burstd runs.
///
/// Run it as `kubectl burst COMMAND` (kubectl finds `kubectl-burst` on the PATH) or
/// directly. It uses your kubeconfig and your rights: reading needs get/list on
/// burstpolicies.bursting.dev (and list on events.k8s.io events for `status`), changing
/// needs patch (see docs/operations.md, "The operator CLI").
///
/// Exit codes: 0 done; 1 the API server could not be reached or failed; 2 the request was
/// wrong (no kubeconfig, no such policy, forbidden, bad arguments).
#[derive(Debug, Parser)]
#[command(name = "kubectl-burst", bin_name = "kubectl burst", version)]
pub struct Cli {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct KubeArgs {
    /// Path of the kubeconfig (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
    /// Namespace of the policies (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    namespace: Option<String>,
    /// `list`: policies of every namespace.
    #[arg(short = 'A', long, global = true)]
    all_namespaces: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List policies: target, mode, split, measured rate, last rule, pause/pin, age.
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Show one policy: its status, conditions, last decision with its reason, and the
    /// recent Events about it (split changes with their reasons, errors, pins).
    Status {
        /// Name of the BurstPolicy.
        name: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// What the policy would decide now and why: measures its live source, reads the
    /// route's split and asks the policy, without writing anything (the route and the
    /// policy stay as they are). The policy is asked fresh, as after a restart of burstd:
    /// `sustain` and `cooldown` timers start now.
    Explain {
        /// Name of the BurstPolicy.
        name: String,
    },
    /// Stop burstd from changing the route (sets spec.paused); the weights stay as they are.
    Pause {
        /// Name of the BurstPolicy.
        name: String,
    },
    /// Let burstd control the route again (clears spec.paused).
    Resume {
        /// Name of the BurstPolicy.
        name: String,
    },
    /// Hold a fixed split for a while (sets spec.pin): burstd applies it, repairs drift back
    /// to it, and returns to the policy's decisions by itself once the time is up.
    Pin {
        /// Name of the BurstPolicy.
        name: String,
        /// Weight of the burst destination while pinned (0-100); the primary gets the rest.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        burst_weight: u8,
        /// How long the pin holds (`30m`, `2h`, `90s`).
        #[arg(long = "for", value_name = "DURATION", default_value = "30m", value_parser = parse_for)]
        duration: Duration,
    },
    /// End a pin now (clears spec.pin); the policy decides again on burstd's next tick.
    Unpin {
        /// Name of the BurstPolicy.
        name: String,
    },
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// A table for people.
    Table,
    /// JSON for scripts.
    Json,
}

fn parse_for(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 30m, 2h or 90s"))?;
    if d.is_zero() {
        return Err("a pin of 0s would end at once; give a positive duration".to_owned());
    }
    // Far beyond any useful pin, and well inside what a timestamp can hold.
    if d > Duration::from_secs(366 * 24 * 3600) {
        return Err(format!(
            "`{s}` is longer than a year; pin for less and renew the pin if needed"
        ));
    }
    Ok(d)
}

/// Where the commands act: a client and a namespace.
struct Target {
    client: kube::Client,
    namespace: String,
}

impl Target {
    fn api(&self) -> Api<BurstPolicy> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.kube.all_namespaces && !matches!(cli.command, Command::List { .. }) {
        return Err(usage(
            "-A/--all-namespaces is for `list`; name the policy's namespace with -n",
        ));
    }
    let target = connect(&cli.kube).await?;
    match cli.command {
        Command::List { output } => list(&target, cli.kube.all_namespaces, output).await,
        Command::Status { name, output } => status(&target, &name, output).await,
        Command::Explain { name } => explain(&target, &name).await,
        Command::Pause { name } => {
            patch_spec(&target, &name, json!({"paused": true})).await?;
            print(&format!(
                "burstpolicy {}/{name} paused: burstd leaves the route as it is\n",
                target.namespace
            ))
        }
        Command::Resume { name } => {
            patch_spec(&target, &name, json!({"paused": false})).await?;
            print(&format!(
                "burstpolicy {}/{name} resumed: burstd controls the route again\n",
                target.namespace
            ))
        }
        Command::Pin {
            name,
            burst_weight,
            duration,
        } => {
            let until = jiff::Timestamp::now()
                .checked_add(duration)
                .context("the end of the pin is out of range")?;
            // RFC 3339 in whole seconds, as Kubernetes stores times.
            let until = jiff::Timestamp::from_second(until.as_second())
                .context("the end of the pin is out of range")?;
            patch_spec(
                &target,
                &name,
                json!({"pin": {"burstWeight": burst_weight, "until": until.to_string()}}),
            )
            .await?;
            print(&format!(
                "burstpolicy {}/{name} pinned at burst weight {burst_weight} until {until}\n",
                target.namespace
            ))
        }
        Command::Unpin { name } => {
            patch_spec(&target, &name, json!({"pin": null})).await?;
            print(&format!(
                "burstpolicy {}/{name} unpinned: the policy decides again\n",
                target.namespace
            ))
        }
    }
}

async fn connect(args: &KubeArgs) -> anyhow::Result<Target> {
    let kubeconfig = match &args.kubeconfig {
        Some(path) => Kubeconfig::read_from(path).map_err(|e| {
            usage(format!(
                "cannot read the kubeconfig {}: {e}; give a readable kubeconfig with --kubeconfig",
                path.display()
            ))
        })?,
        None => Kubeconfig::read().map_err(|e| {
            usage(format!(
                "no kubeconfig: {e}; set --kubeconfig or KUBECONFIG, or create ~/.kube/config"
            ))
        })?,
    };
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| {
            usage(match &args.context {
                Some(c) => format!(
                    "cannot use context `{c}` of the kubeconfig: {e}; `kubectl config get-contexts` lists them"
                ),
                None => format!("cannot use the kubeconfig: {e}"),
            })
        })?;
    config.connect_timeout = Some(REQUEST_TIMEOUT);
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).context("cannot build a Kubernetes client")?;
    Ok(Target { client, namespace })
}

/// Turns an API error into a message naming the verb, the resource and the fix.
fn api_error(
    e: kube::Error,
    verb: &str,
    resource: &str,
    name: Option<&str>,
    ns: &str,
) -> anyhow::Error {
    let what = match name {
        Some(n) => format!("{resource} {ns}/{n}"),
        None => format!("{resource} in namespace {ns}"),
    };
    match e {
        kube::Error::Api(s) if s.code == 404 && name.is_some() => usage(format!(
            "no {what} (`kubectl burst list -n {ns}` lists the policies there)"
        )),
        kube::Error::Api(s) if s.code == 404 => usage(format!(
            "the API server does not serve {resource}: is the BurstPolicy CRD installed? (`kubectl apply -f deploy/crd/`)"
        )),
        kube::Error::Api(s) if s.code == 403 => usage(format!(
            "forbidden: you may not {verb} {what} ({}); ask for the rights listed in docs/operations.md, \"The operator CLI\"",
            s.message
        )),
        kube::Error::Api(s) if s.code == 401 => usage(format!(
            "the API server refused your credentials ({}); renew them in the kubeconfig",
            s.message
        )),
        e => anyhow::Error::new(e).context(format!("cannot {verb} {what}")),
    }
}

const POLICIES: &str = "burstpolicies.bursting.dev";

async fn get_policy(target: &Target, name: &str) -> anyhow::Result<BurstPolicy> {
    target
        .api()
        .get(name)
        .await
        .map_err(|e| api_error(e, "get", POLICIES, Some(name), &target.namespace))
}

async fn patch_spec(target: &Target, name: &str, spec: Value) -> anyhow::Result<()> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    target
        .api()
        .patch(name, &params, &Patch::Merge(json!({ "spec": spec })))
        .await
        .map_err(|e| api_error(e, "patch", POLICIES, Some(name), &target.namespace))?;
    Ok(())
}

async fn list(target: &Target, all: bool, output: Output) -> anyhow::Result<()> {
    let api: Api<BurstPolicy> = if all {
        Api::all(target.client.clone())
    } else {
        target.api()
    };
    let ns = if all {
        "(all)"
    } else {
        target.namespace.as_str()
    };
    let policies = api
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error(e, "list", POLICIES, None, ns))?;
    let now = jiff::Timestamp::now();
    let rows: Vec<render::Row> = policies
        .items
        .iter()
        .map(|p| render::Row::of(p, now))
        .collect();
    match output {
        Output::Json => print(&format!("{}\n", serde_json::to_string_pretty(&rows)?)),
        Output::Table => print(&render::list_table(&rows, all)),
    }
}

async fn events_of(target: &Target, policy: &BurstPolicy) -> anyhow::Result<Vec<Event>> {
    let api: Api<Event> = Api::namespaced(target.client.clone(), &target.namespace);
    let name = policy.name_any();
    let params = ListParams::default().fields(&format!("regarding.name={name}"));
    let mut events = api
        .list(&params)
        .await
        .map_err(|e| api_error(e, "list", "events.events.k8s.io", None, &target.namespace))?
        .items;
    let uid = policy.meta().uid.clone();
    events.retain(|e| {
        e.regarding.as_ref().is_some_and(|r| {
            r.kind.as_deref() == Some("BurstPolicy") && (uid.is_none() || r.uid == uid)
        })
    });
    events.sort_by_key(render::event_time);
    Ok(events)
}

async fn status(target: &Target, name: &str, output: Output) -> anyhow::Result<()> {
    let policy = get_policy(target, name).await?;
    let events = events_of(target, &policy).await?;
    match output {
        Output::Json => {
            let value = json!({
                "namespace": target.namespace,
                "name": name,
                "spec": policy.spec,
                "status": policy.status,
                "events": events.iter().rev().take(render::EVENTS_SHOWN).map(render::event_json).collect::<Vec<_>>(),
            });
            print(&format!("{}\n", serde_json::to_string_pretty(&value)?))
        }
        Output::Table => print(&render::status_text(
            &policy,
            policy
                .status
                .as_ref()
                .unwrap_or(&BurstPolicyStatus::default()),
            &events,
            jiff::Timestamp::now(),
        )),
    }
}

async fn explain(target: &Target, name: &str) -> anyhow::Result<()> {
    let policy = get_policy(target, name).await?;
    let explanation = burst_operator::runner::explain(
        target.client.clone(),
        &target.namespace,
        &policy.spec,
        REQUEST_TIMEOUT,
    )
    .await
    .map_err(|e| match e {
        burst_operator::Error::InvalidSpec { .. } | burst_operator::Error::Secret { .. } => {
            usage(format!("burstpolicy {}/{name}: {e}", target.namespace))
        }
        e => anyhow::Error::new(e).context(format!("burstpolicy {}/{name}", target.namespace)),
    })?;
    print(&render::explanation_text(
        &target.namespace,
        name,
        &policy.spec,
        &explanation,
    ))
}

/// Writes `text` to stdout; a closed pipe (`kubectl burst list | head`) is not an error.
fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
