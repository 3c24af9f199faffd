#!/usr/bin/env bash
# Checks what the Dockerfile promises, without a container engine: the binaries it builds
# compile for x86_64-unknown-linux-musl with the same cargo command, are fully static (no
# NEEDED entry), and run as user 65532 inside an empty root that holds nothing but them, as
# in distroless/static. Run as root (chroot); installs musl-tools and the musl target.
#   ./scripts/image-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
bins=(burstd hashr-worker hashr-frontend)

command -v musl-gcc >/dev/null 2>&1 || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update && apt-get install -y --no-install-recommends musl-tools
}
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

# The Dockerfile's build command, with the target made explicit.
args=()
for b in "${bins[@]}"; do args+=(--bin "$b"); done
CC_x86_64_unknown_linux_musl=musl-gcc \
  cargo build --release --locked --target "$target" -p burst-bin -p burst-hashr "${args[@]}"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/tmp"
chmod 755 "$root" "$root/usr" "$root/usr/local" "$root/usr/local/bin"
chmod 1777 "$root/tmp"
for b in "${bins[@]}"; do
  f="${CARGO_TARGET_DIR:-target}/$target/release/$b"
  if readelf -d "$f" | grep -q NEEDED; then
    echo "image-check: $b needs shared libraries:"; readelf -d "$f" | grep NEEDED; exit 1
  fi
  cp "$f" "$root/usr/local/bin/"
  echo "image-check: $b static, $(du -h "$f" | cut -f1)"
done

in_image() { chroot --userspec=65532:65532 "$root" "$@"; }
for b in "${bins[@]}"; do
  in_image "/usr/local/bin/$b" --help >/dev/null
done
# The CRD the image prints is the committed one.
in_image /usr/local/bin/burstd crd | diff -u deploy/crd/burstpolicies.bursting.dev.yaml - \
  || { echo "image-check: burstd crd in the image differs from deploy/crd"; exit 1; }
# The worker serves as user 65532 with nothing else in its root (in-process pub/sub).
port=18099
PORT=$port chroot --userspec=65532:65532 "$root" /usr/local/bin/hashr-worker &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$root"' EXIT
ok=
for _ in $(seq 50); do
  kill -0 "$pid" 2>/dev/null || { echo "image-check: hashr-worker exited (port $port taken?)"; exit 1; }
  if curl -fsS "http://127.0.0.1:$port/_healthz" >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.1
done
[ -n "$ok" ] || { echo "image-check: hashr-worker did not answer /_healthz"; exit 1; }
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
[ "$uid" = 65532 ] || { echo "image-check: hashr-worker runs as uid '$uid', not 65532"; exit 1; }
echo "image-check: hashr-worker serves on :$port in an empty root as uid $uid"
echo "image-check: ok"
