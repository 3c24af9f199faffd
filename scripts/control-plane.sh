#!/usr/bin/env bash
# A real Kubernetes control plane (etcd + kube-apiserver) for tests, demos and people,
# built from the Go modules pinned in tools/control-plane/go.mod.
#
#   scripts/control-plane.sh build      build etcd, kube-apiserver, kubectl and guard once
#                                       into the cache; prints the directory
#   scripts/control-plane.sh dir        print the cache directory (built or not)
#   scripts/control-plane.sh status     exit 0 when the cached binaries are present and
#                                       current, 1 when `build` has work to do
#   scripts/control-plane.sh up DIR     start etcd and kube-apiserver on free loopback ports,
#                                       state in DIR; prints `export KUBECONFIG=...`
#   scripts/control-plane.sh down DIR   stop them and remove DIR
#
# The cache is ${BURST_CONTROL_PLANE_DIR:-$HOME/.cache/burst/control-plane/<k8s>-<etcd>}
# (burst-testkit looks in the same place). The first build downloads the modules and compiles
# for several minutes; later builds reuse Go's module and build caches, and a build whose
# binaries are present and current returns at once.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
module="$root/tools/control-plane"

die() {
  echo "control-plane: $*" >&2
  exit 1
}

version_of() {
  # The version go.mod pins for module $1 (first match on a require line).
  awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$module/go.mod"
}

k8s_version="$(version_of k8s.io/kubernetes)"
etcd_version="$(version_of go.etcd.io/etcd/server/v3)"
[ -n "$k8s_version" ] && [ -n "$etcd_version" ] || die "cannot read the pinned versions from $module/go.mod"
# What `kubectl version` and /version report, stamped as a release build stamps them.
minor="${k8s_version#v1.}"
minor="${minor%%.*}"
ldflags="-s"
for pkg_v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg_v.gitVersion=$k8s_version -X $pkg_v.gitMajor=1 -X $pkg_v.gitMinor=$minor -X $pkg_v.gitTreeState=clean"
done
cache="${BURST_CONTROL_PLANE_DIR:-$HOME/.cache/burst/control-plane/$k8s_version-$etcd_version}"

# What the cached binaries were built from: go.mod, go.sum, our own Go sources, the flags.
source_stamp() {
  (cd "$module" && cat go.mod go.sum $(find cmd -name '*.go' | LC_ALL=C sort) && echo "$ldflags") |
    sha256sum | cut -d' ' -f1
}

# Whether the cache holds every binary, built from the current sources.
is_current() {
  [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$(source_stamp)" ] &&
    [ -x "$cache/bin/etcd" ] && [ -x "$cache/bin/kube-apiserver" ] &&
    [ -x "$cache/bin/kubectl" ] && [ -x "$cache/bin/guard" ]
}

cmd_build() {
  local stamp
  stamp="$(source_stamp)"
  if is_current; then
    echo "$cache"
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "Go is not installed; the control plane is built from Go modules.
Install Go 1.26 or newer (Debian: apt-get install -y golang-go, if it is new enough; or the
toolchain your machine provides) and run this again."
  mkdir -p "$cache/bin"
  local log="$cache/build.log"
  : >"$log"
  echo "building kube-apiserver $k8s_version, etcd $etcd_version, kubectl and guard into $cache/bin" >&2
  echo "(the first build downloads the modules and takes several minutes; log: $log)" >&2
  local started=$SECONDS
  local targets=(
    "etcd ./cmd/etcd"
    "guard ./cmd/guard"
    "kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver"
    "kubectl k8s.io/kubernetes/cmd/kubectl"
  )
  local t name pkg
  for t in "${targets[@]}"; do
    name="${t%% *}"
    pkg="${t#* }"
    echo "+ go build -o $cache/bin/$name $pkg" >>"$log"
    if ! (cd "$module" && go build -mod=readonly -trimpath -buildvcs=false -ldflags="$ldflags" -o "$cache/bin/$name.tmp" "$pkg") >>"$log" 2>&1; then
      echo "control-plane: building $name failed; the last lines of $log:" >&2
      tail -n 30 "$log" >&2
      exit 1
    fi
    mv "$cache/bin/$name.tmp" "$cache/bin/$name"
  done
  echo "$stamp" >"$cache/stamp"
  echo "built in $((SECONDS - started)) s" >&2
  echo "$cache"
}

# A loopback port nothing listens on, outside the kernel's ephemeral range.
free_port() {
  local low high p tries=0
  read -r low high </proc/sys/net/ipv4/ip_local_port_range || { low=32768; high=60999; }
  while [ $tries -lt 200 ]; do
    tries=$((tries + 1))
    if [ "$low" -gt 12000 ]; then
      p=$((10000 + RANDOM % (low - 10000)))
    else
      p=$((high + 1 + RANDOM % (65535 - high)))
    fi
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
        echo "$p"
        return 0
      fi
    fi
  done
  die "no free loopback port found after 200 tries"
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_ready() {
  # wait_ready NAME URL LOG PIDFILE [curl args...]
  local name="$1" url="$2" log="$3" pidfile="$4"
  shift 4
  local deadline=$((SECONDS + 60))
  while [ $SECONDS -lt $deadline ]; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "control-plane: $name exited while starting; the last lines of $log:" >&2
      tail -n 30 "$log" >&2
      return 1
    fi
    if curl -fsS --max-time 2 "$@" "$url" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  echo "control-plane: $name did not become ready in 60 s ($url); the last lines of $log:" >&2
  tail -n 30 "$log" >&2
  return 1
}

cmd_up() {
  local dir="${1:-}"
  [ -n "$dir" ] || die "usage: $0 up DIR"
  [ ! -e "$dir/pids" ] || die "$dir already holds a running control plane; run: $0 down $dir"
  local bin="$cache/bin"
  [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ] ||
    die "the control plane is not built; run: $root/scripts/control-plane.sh build"
  mkdir -p "$dir/etcd" "$dir/certs"
  dir="$(cd "$dir" && pwd)"

  local etcd_port peer_port api_port
  etcd_port="${BURST_ETCD_PORT:-$(free_port)}"
  peer_port="$(free_port)"
  api_port="${BURST_APISERVER_PORT:-$(free_port)}"
  for p in "$etcd_port" "$peer_port" "$api_port"; do
    if port_in_use "$p"; then die "port $p on 127.0.0.1 is in use; free it or choose another"; fi
  done

  # Service-account signing key; an admin token in a static token file.
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/certs/sa.key" 2>/dev/null ||
    die "openssl could not generate the service-account key"
  openssl pkey -in "$dir/certs/sa.key" -pubout -out "$dir/certs/sa.pub" 2>/dev/null ||
    die "openssl could not derive the service-account public key"
  local token
  token="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
  printf '%s,admin,admin-uid,"system:masters"\n' "$token" >"$dir/tokens.csv"
  chmod 600 "$dir/tokens.csv" "$dir/certs/sa.key"

  : >"$dir/pids"
  nohup "$bin/etcd" \
    --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync=true \
    --log-level warn \
    >"$dir/etcd.log" 2>&1 </dev/null &
  echo $! >"$dir/etcd.pid"
  echo "etcd $!" >>"$dir/pids"
  wait_ready etcd "http://127.0.0.1:$etcd_port/health" "$dir/etcd.log" "$dir/etcd.pid" || {
    cmd_stop "$dir"
    exit 1
  }

  nohup "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --cert-dir "$dir/certs" \
    --secure-port "$api_port" \
    --bind-address 127.0.0.1 \
    --advertise-address 127.0.0.1 \
    --service-cluster-ip-range 10.0.0.0/24 \
    --allow-privileged=true \
    --authorization-mode RBAC \
    --disable-admission-plugins ServiceAccount \
    --token-auth-file "$dir/tokens.csv" \
    --service-account-issuer "https://127.0.0.1:$api_port/" \
    --service-account-key-file "$dir/certs/sa.pub" \
    --service-account-signing-key-file "$dir/certs/sa.key" \
    >"$dir/kube-apiserver.log" 2>&1 </dev/null &
  echo $! >"$dir/kube-apiserver.pid"
  echo "kube-apiserver $!" >>"$dir/pids"
  local ca="$dir/certs/apiserver.crt"
  local deadline=$((SECONDS + 60))
  while [ ! -s "$ca" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  wait_ready kube-apiserver "https://127.0.0.1:$api_port/readyz" "$dir/kube-apiserver.log" \
    "$dir/kube-apiserver.pid" --cacert "$ca" -H "Authorization: Bearer $token" || {
    cmd_stop "$dir"
    exit 1
  }

  cat >"$dir/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: burst-control-plane
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority-data: $(base64 -w0 <"$ca")
users:
- name: admin
  user:
    token: $token
contexts:
- name: burst-control-plane
  context:
    cluster: burst-control-plane
    user: admin
current-context: burst-control-plane
EOF
  chmod 600 "$dir/admin.kubeconfig"
  echo "kube-apiserver https://127.0.0.1:$api_port (etcd 127.0.0.1:$etcd_port); logs and pids in $dir" >&2
  echo "export KUBECONFIG=$dir/admin.kubeconfig"
}

cmd_stop() {
  local dir="$1" name pid
  [ -f "$dir/pids" ] || return 0
  # kube-apiserver first, then etcd.
  for name in kube-apiserver etcd; do
    pid="$(cat "$dir/$name.pid" 2>/dev/null || true)"
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$dir/pids"
}

cmd_down() {
  local dir="${1:-}"
  [ -n "$dir" ] || die "usage: $0 down DIR"
  [ -d "$dir" ] || die "$dir does not exist"
  [ -f "$dir/pids" ] || [ -f "$dir/admin.kubeconfig" ] || [ -d "$dir/etcd" ] ||
    die "$dir does not look like a control plane started by '$0 up'; not removing it"
  cmd_stop "$dir"
  rm -rf "$dir"
}

case "${1:-}" in
build) cmd_build ;;
status)
  if is_current; then
    echo "built and current: $cache"
  else
    echo "not built, or built from other sources: $cache (run: $0 build)"
    exit 1
  fi
  ;;
dir) echo "$cache" ;;
up) cmd_up "${2:-}" ;;
down) cmd_down "${2:-}" ;;
-h | --help | help)
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  ;;
*)
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
