//! [`ControlPlane`]: a real etcd and kube-apiserver as child processes, as envtest runs them.
//!
//! Size: One concern (start, stop, restart and talk to a real control plane) in ~770 lines: splitting the process handling from the client helpers would spread one lifecycle over two files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use burst_core::lock;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::free_port;

/// The control-plane Go module; its `go.mod` pins the versions (one source of truth with
/// `scripts/control-plane.sh`).
const GO_MOD: &str = include_str!("../../../tools/control-plane/go.mod");

/// How long a server gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopped server gets to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The command that builds the binaries, for error messages.
pub const BUILD_COMMAND: &str = "scripts/control-plane.sh build";

/// A user of the static token file, created when the control plane starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user name the server sees (`system:...` names are allowed).
    pub name: String,
    /// Its groups.
    pub groups: Vec<String>,
}

impl User {
    /// A user with these groups.
    pub fn new(name: &str, groups: &[&str]) -> User {
        User {
            name: name.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }
}

/// Options for [`ControlPlane::start_with`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Users besides the admin (group `system:masters`), each with a bearer token.
    pub users: Vec<User>,
}

/// A kube-apiserver (RBAC, static tokens, service-account tokens) on etcd, both on free
/// loopback ports, state in a temporary directory.
///
/// Both servers run under `guard` (built with them): when this process ends, however it
/// ends, the guards' stdin closes and they stop their servers and remove the state directory,
/// so no server is left behind even by a test binary whose statics are never dropped.
/// Dropping the `ControlPlane` kills both at once and removes the state directory.
///
/// ```no_run
/// # async fn f() -> Result<(), String> {
/// let cp = burst_testkit::kube::ControlPlane::shared()?;
/// let ns = cp.create_namespace("routers").await?;
/// let client = cp.admin_client().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ControlPlane {
    bin: PathBuf,
    dir: PathBuf,
    etcd_port: u16,
    etcd_peer_port: u16,
    api_port: u16,
    admin_token: String,
    user_tokens: Vec<(User, String)>,
    etcd: Mutex<Option<Guarded>>,
    apiserver: Mutex<Option<Guarded>>,
    ca_pem: Mutex<String>,
    started_in: Duration,
}

/// A server under `guard`: closing `stdin` asks the guard to stop it.
#[derive(Debug)]
struct Guarded {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Guarded {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Tells the guard to stop the server (SIGTERM; the state stays) and waits; kills after
    /// `STOP_TIMEOUT`.
    fn stop(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
            let _ = stdin.flush();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// SIGKILL to the guard; the server gets SIGKILL as its parent-death signal.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The version `go.mod` pins for `module`.
fn pinned(module: &str) -> Option<&'static str> {
    GO_MOD.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(module)).then_some(())?;
        it.next().filter(|v| v.starts_with('v'))
    })
}

/// `vK8S-vETCD`, the cache directory's name.
pub fn versions() -> String {
    format!(
        "{}-{}",
        pinned("k8s.io/kubernetes").unwrap_or("unknown"),
        pinned("go.etcd.io/etcd/server/v3").unwrap_or("unknown")
    )
}

/// Where `scripts/control-plane.sh build` puts the binaries:
/// `$BURST_CONTROL_PLANE_DIR/bin`, else `$HOME/.cache/burst/control-plane/<versions>/bin`.
pub fn bin_dir() -> PathBuf {
    let base = std::env::var_os("BURST_CONTROL_PLANE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home =
                std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
            home.join(".cache/burst/control-plane").join(versions())
        });
    base.join("bin")
}

/// The path of one control-plane binary, or the command that builds it.
pub fn binary(name: &str) -> Result<PathBuf, String> {
    let p = bin_dir().join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "`{}` is missing; this test needs the real Kubernetes control plane \
             (etcd + kube-apiserver {}). Build it once with: {BUILD_COMMAND} \
             (needs Go; the first build takes several minutes)",
            p.display(),
            versions()
        ))
    }
}

fn random_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect()
}

impl ControlPlane {
    /// The control plane of this test binary, started on first use. A failed start is
    /// remembered, so every test that asks fails with the same message.
    pub fn shared() -> Result<&'static ControlPlane, String> {
        static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| ControlPlane::start_with(Options::default()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Starts a control plane with only the admin user.
    pub fn start() -> Result<ControlPlane, String> {
        ControlPlane::start_with(Options::default())
    }

    /// Starts etcd and kube-apiserver and waits until `/readyz` answers. Blocks (call it
    /// from `spawn_blocking` in async code, or through [`ControlPlane::shared`]).
    pub fn start_with(options: Options) -> Result<ControlPlane, String> {
        let started = Instant::now();
        let bin = bin_dir();
        for b in ["guard", "etcd", "kube-apiserver"] {
            binary(b)?;
        }
        let dir = tempfile::Builder::new()
            .prefix("burst-control-plane-")
            .tempdir()
            .map_err(|e| format!("cannot create a state directory: {e}"))?
            .keep();
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs)
            .map_err(|e| format!("cannot create {}: {e}", certs.display()))?;

        let sa_key = rcgen::KeyPair::generate()
            .map_err(|e| format!("cannot generate the service-account key: {e}"))?;
        write_private(&certs.join("sa.key"), &sa_key.serialize_pem())?;
        write_private(&certs.join("sa.pub"), &sa_key.public_key_pem())?;

        let admin_token = random_token();
        let user_tokens: Vec<(User, String)> = options
            .users
            .into_iter()
            .map(|u| (u, random_token()))
            .collect();
        let mut tokens = format!("{admin_token},admin,admin-uid,\"system:masters\"\n");
        for (u, t) in &user_tokens {
            tokens.push_str(&format!(
                "{t},{},{}-uid,\"{}\"\n",
                u.name,
                u.name,
                u.groups.join(",")
            ));
        }
        write_private(&dir.join("tokens.csv"), &tokens)?;

        let port = || free_port().map_err(|e| format!("no free port: {e}"));
        let mut cp = ControlPlane {
            bin,
            dir,
            etcd_port: port()?,
            etcd_peer_port: port()?,
            api_port: port()?,
            admin_token,
            user_tokens,
            etcd: Mutex::new(None),
            apiserver: Mutex::new(None),
            ca_pem: Mutex::new(String::new()),
            started_in: Duration::ZERO,
        };
        cp.start_etcd()?;
        cp.start_apiserver()?;
        cp.started_in = started.elapsed();
        Ok(cp)
    }

    /// How long [`ControlPlane::start_with`] took (both servers ready).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The state directory (etcd data, certificates, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    /// The API server's port.
    pub fn port(&self) -> u16 {
        self.api_port
    }

    /// The PEM certificates a client trusts for the API server.
    pub fn ca_pem(&self) -> String {
        lock(&self.ca_pem).clone()
    }

    /// The admin's bearer token (group `system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The bearer token of a user given in [`Options::users`].
    pub fn user_token(&self, name: &str) -> Option<&str> {
        self.user_tokens
            .iter()
            .find(|(u, _)| u.name == name)
            .map(|(_, t)| t.as_str())
    }

    /// The pids of the running servers' guards (etcd, kube-apiserver).
    pub fn pids(&self) -> (Option<u32>, Option<u32>) {
        (
            lock(&self.etcd).as_ref().map(Guarded::pid),
            lock(&self.apiserver).as_ref().map(Guarded::pid),
        )
    }

    /// The pids of the server processes themselves (etcd, kube-apiserver), the children of
    /// their guards, for measuring their CPU and memory in `/proc`.
    pub fn server_pids(&self) -> (Option<u32>, Option<u32>) {
        let child_of = |guard: Option<u32>| {
            let guard = guard?;
            std::fs::read_to_string(format!("/proc/{guard}/task/{guard}/children"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        let (etcd, apiserver) = self.pids();
        (child_of(etcd), child_of(apiserver))
    }

    /// A kubeconfig for this server with `token` as the user and `namespace` as the
    /// context's default.
    pub fn kubeconfig(&self, token: &str, namespace: &str) -> String {
        kubeconfig(&self.url(), Some(&self.ca_pem()), token, namespace)
    }

    /// A client as the admin.
    pub async fn admin_client(&self) -> Result<kube::Client, String> {
        self.client(&self.admin_token).await
    }

    /// A client with this bearer token.
    pub async fn client(&self, token: &str) -> Result<kube::Client, String> {
        client_from_kubeconfig(&self.kubeconfig(token, "default")).await
    }

    /// Creates a namespace named `<prefix>-<n>` (unique in this process) and returns its
    /// name. Tests sharing one control plane each take a namespace of their own.
    pub async fn create_namespace(&self, prefix: &str) -> Result<String, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed));
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))
            .map_err(|e| e.to_string())?;
        let api: Api<Namespace> = Api::all(self.admin_client().await?);
        api.create(&PostParams::default(), &ns)
            .await
            .map_err(|e| format!("cannot create namespace {name}: {e}"))?;
        Ok(name)
    }

    /// Creates ServiceAccount `namespace/name` (if it does not exist) and returns a token
    /// for it from the server's TokenRequest API (valid for an hour).
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, String> {
        let client = self.admin_client().await?;
        let api: Api<ServiceAccount> = Api::namespaced(client, namespace);
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}}))
            .map_err(|e| e.to_string())?;
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(format!(
                    "cannot create ServiceAccount {namespace}/{name}: {e}"
                ));
            }
        }
        let request: TokenRequest =
            serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
                .map_err(|e| e.to_string())?;
        let answer = api
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(|e| format!("TokenRequest for {namespace}/{name} failed: {e}"))?;
        answer
            .status
            .and_then(|s| s.token)
            .ok_or_else(|| format!("TokenRequest for {namespace}/{name} returned no token"))
    }

    /// Installs (server-side apply, field manager `burst-testkit`) every
    /// CustomResourceDefinition in `yaml` (one or more documents) and waits until each is
    /// Established. The server's refusal (a schema that is not structural, say) is the error.
    pub async fn install_crds(&self, yaml: &str) -> Result<Vec<String>, String> {
        let api: Api<CustomResourceDefinition> = Api::all(self.admin_client().await?);
        let mut names = Vec::new();
        for doc in serde_saphyr::from_multiple::<serde_json::Value>(yaml)
            .map_err(|e| format!("CRD YAML does not parse: {e}"))?
        {
            if doc.is_null() {
                continue;
            }
            if doc.get("kind").and_then(|k| k.as_str()) != Some("CustomResourceDefinition") {
                continue;
            }
            let name = doc["metadata"]["name"]
                .as_str()
                .ok_or("a CustomResourceDefinition without metadata.name")?
                .to_owned();
            api.patch(
                &name,
                &PatchParams::apply("burst-testkit").force(),
                &Patch::Apply(&doc),
            )
            .await
            .map_err(|e| format!("the API server refused CRD {name}: {e}"))?;
            names.push(name);
        }
        for name in &names {
            wait_established(&api, name).await?;
        }
        Ok(names)
    }

    /// [`ControlPlane::install_crds`] on the files given (paths relative to the workspace
    /// root, e.g. `deploy/crd/burstpolicies.yaml`).
    pub async fn install_crd_files(&self, paths: &[&str]) -> Result<Vec<String>, String> {
        let root = workspace_root();
        let mut names = Vec::new();
        for p in paths {
            let path = root.join(p);
            let yaml = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            names.extend(self.install_crds(&yaml).await?);
        }
        Ok(names)
    }

    /// Stops kube-apiserver (SIGTERM, waits). etcd keeps its data.
    pub fn stop_apiserver(&self) {
        if let Some(g) = lock(&self.apiserver).take() {
            g.stop();
        }
    }

    /// Kills kube-apiserver with SIGKILL.
    pub fn kill_apiserver(&self) {
        if let Some(g) = lock(&self.apiserver).take() {
            g.kill();
        }
    }

    /// Starts kube-apiserver again on the same port and waits until it is ready.
    pub fn start_apiserver(&self) -> Result<(), String> {
        let mut slot = lock(&self.apiserver);
        if slot.is_some() {
            return Ok(());
        }
        let log = self.dir.join("kube-apiserver.log");
        let certs = self.dir.join("certs");
        let port = self.api_port.to_string();
        let etcd = format!("http://127.0.0.1:{}", self.etcd_port);
        let issuer = format!("https://127.0.0.1:{}/", self.api_port);
        let sa_key = certs.join("sa.key");
        let sa_pub = certs.join("sa.pub");
        let tokens = self.dir.join("tokens.csv");
        let args: Vec<String> = [
            "--etcd-servers",
            &etcd,
            "--cert-dir",
            &path_str(&certs),
            "--secure-port",
            &port,
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--service-cluster-ip-range",
            "10.0.0.0/24",
            "--allow-privileged=true",
            "--authorization-mode",
            "RBAC",
            "--disable-admission-plugins",
            "ServiceAccount",
            "--token-auth-file",
            &path_str(&tokens),
            "--service-account-issuer",
            &issuer,
            "--service-account-key-file",
            &path_str(&sa_pub),
            "--service-account-signing-key-file",
            &path_str(&sa_key),
            "--event-ttl",
            "1h",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let guarded = self.spawn("kube-apiserver", &args, &log)?;
        let pid = guarded.pid();
        *slot = Some(guarded);
        drop(slot);
        let ca = wait_for_file(&certs.join("apiserver.crt"), &log)?;
        *lock(&self.ca_pem) = ca;
        let url = format!("{}/readyz", self.url());
        self.wait_ready("kube-apiserver", &url, &log, pid, true)
    }

    /// Stops and starts kube-apiserver (same port, same data).
    pub fn restart_apiserver(&self) -> Result<(), String> {
        self.stop_apiserver();
        self.start_apiserver()
    }

    /// Stops etcd (SIGTERM, waits); kube-apiserver keeps running and fails its requests.
    pub fn stop_etcd(&self) {
        if let Some(g) = lock(&self.etcd).take() {
            g.stop();
        }
    }

    /// Starts etcd again on the same ports with the same data and waits for `/health`.
    pub fn start_etcd(&self) -> Result<(), String> {
        let mut slot = lock(&self.etcd);
        if slot.is_some() {
            return Ok(());
        }
        let log = self.dir.join("etcd.log");
        let client = format!("http://127.0.0.1:{}", self.etcd_port);
        let peer = format!("http://127.0.0.1:{}", self.etcd_peer_port);
        let cluster = format!("default={peer}");
        let data = path_str(&self.dir.join("etcd"));
        let args: Vec<String> = [
            "--data-dir",
            &data,
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &cluster,
            "--unsafe-no-fsync=true",
            "--log-level",
            "warn",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let guarded = self.spawn("etcd", &args, &log)?;
        let pid = guarded.pid();
        *slot = Some(guarded);
        drop(slot);
        self.wait_ready("etcd", &format!("{client}/health"), &log, pid, false)
    }

    /// Stops and starts etcd (same ports, same data).
    pub fn restart_etcd(&self) -> Result<(), String> {
        self.stop_etcd();
        self.start_etcd()
    }

    fn spawn(&self, name: &str, args: &[String], log: &Path) -> Result<Guarded, String> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let mut cmd = Command::new(self.bin.join("guard"));
        // etcd's guard removes the state directory once etcd has stopped because this
        // process is gone (not on a restart).
        if name == "etcd" {
            cmd.arg("-cleanup").arg(&self.dir);
        }
        let mut child = cmd
            .arg(self.bin.join(name))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let stdin = child.stdin.take();
        Ok(Guarded { child, stdin })
    }

    fn wait_ready(
        &self,
        name: &str,
        url: &str,
        log: &Path,
        pid: u32,
        tls: bool,
    ) -> Result<(), String> {
        let slot = if name == "etcd" {
            &self.etcd
        } else {
            &self.apiserver
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2));
        if tls {
            for c in reqwest::Certificate::from_pem_bundle(self.ca_pem().as_bytes())
                .map_err(|e| format!("{name}'s serving certificate does not parse: {e}"))?
            {
                client = client.add_root_certificate(c);
            }
        }
        // The polling runs on a thread of its own with one small runtime and one client, so
        // this works from inside an async test too.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| format!("cannot start a runtime to poll {name}: {e}"))?;
                    let client = client
                        .build()
                        .map_err(|e| format!("cannot build a client to poll {name}: {e}"))?;
                    let ready = || {
                        rt.block_on(async {
                            let request = client.get(url).bearer_auth(&self.admin_token);
                            request.send().await.is_ok_and(|r| r.status().is_success())
                        })
                    };
                    loop {
                        if ready() {
                            return Ok(());
                        }
                        let exited = lock(slot).as_mut().is_none_or(|g| {
                            g.pid() != pid || matches!(g.child.try_wait(), Ok(Some(_)))
                        });
                        if exited {
                            return Err(format!(
                                "{name} exited while starting; the end of {}:\n{}",
                                log.display(),
                                tail(log, 30)
                            ));
                        }
                        if Instant::now() >= deadline {
                            return Err(format!(
                                "{name} did not become ready in {} s; the end of {}:\n{}",
                                READY_TIMEOUT.as_secs(),
                                log.display(),
                                tail(log, 30)
                            ));
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                })
                .join()
                .unwrap_or_else(|_| Err(format!("polling {name} panicked")))
        })
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Nobody waits for a graceful stop of a control plane that is thrown away.
        self.kill_apiserver();
        if let Some(g) = lock(&self.etcd).take() {
            g.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn write_private(path: &Path, content: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(content.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn wait_for_file(path: &Path, log: &Path) -> Result<String, String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.contains("END CERTIFICATE")
        {
            return Ok(s);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "kube-apiserver wrote no serving certificate to {}; the end of {}:\n{}",
                path.display(),
                log.display(),
                tail(log, 30)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The workspace root (where `Cargo.toml` with `[workspace]` is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

async fn wait_established(api: &Api<CustomResourceDefinition>, name: &str) -> Result<(), String> {
    use kube::runtime::wait::{await_condition, conditions};
    let established = await_condition(api.clone(), name, conditions::is_crd_established());
    match tokio::time::timeout(Duration::from_secs(30), established).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot watch CRD {name}: {e}")),
        Err(_) => Err(format!("CRD {name} was not Established within 30 s")),
    }
}

/// A kubeconfig for `server` (`ca_pem` for HTTPS), bearer `token`, default `namespace`.
pub fn kubeconfig(server: &str, ca_pem: Option<&str>, token: &str, namespace: &str) -> String {
    use base64::Engine;
    let ca = ca_pem
        .map(|pem| {
            format!(
                "\n    certificate-authority-data: {}",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: burst-test\n  cluster:\n    server: \"{server}\"{ca}\n\
         users:\n- name: user\n  user:\n    token: \"{token}\"\n\
         contexts:\n- name: burst-test\n  context:\n    cluster: burst-test\n    user: user\n    namespace: \"{namespace}\"\n\
         current-context: burst-test\n"
    )
}

/// A client from kubeconfig text.
pub async fn client_from_kubeconfig(text: &str) -> Result<kube::Client, String> {
    let kc =
        kube::config::Kubeconfig::from_yaml(text).map_err(|e| format!("bad kubeconfig: {e}"))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| format!("bad kubeconfig: {e}"))?;
    kube::Client::try_from(config).map_err(|e| format!("cannot build a client: {e}"))
}
