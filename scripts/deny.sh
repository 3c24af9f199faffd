#!/usr/bin/env bash
# cargo-deny checks of the workspace's dependency tree, as configured in deny.toml:
#
#   scripts/deny.sh
#
# - licenses, bans (duplicate versions, wildcard requirements) and sources: always; any
#   error fails the script.
# - advisories (RustSec): only when the advisory database can be fetched, or a copy of it
#   is already present under $CARGO_HOME/advisory-dbs; otherwise the script says that it
#   skipped the check and why, and does not fail for it.
#
# cargo-deny is installed from crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deny >/dev/null 2>&1 || cargo install --locked cargo-deny
echo "deny: $(cargo deny --version)"

cargo deny check licenses bans sources
echo "deny: licenses, bans and sources passed"

db_root="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
fetch_log="$(mktemp)"
trap 'rm -f "$fetch_log"' EXIT
if timeout 120 cargo deny fetch db >"$fetch_log" 2>&1; then
  cargo deny --offline check advisories
  echo "deny: advisories passed (database fetched just now)"
elif present="$(find "$db_root" -mindepth 2 -maxdepth 2 -type d -name crates 2>/dev/null | head -n1)" &&
  [ -n "$present" ]; then
  db="$(dirname "$present")"
  echo "deny: the advisory database cannot be fetched; using the copy in $db" \
    "(last updated $(git -C "$db" log -1 --format=%cs 2>/dev/null || echo 'at an unknown date'))"
  cargo deny --offline check advisories
  echo "deny: advisories passed (against that copy)"
else
  reason="$(grep -v '^\s*$' "$fetch_log" | tail -n1)"
  echo "deny: advisories SKIPPED: the RustSec advisory database is fetched with git from its" \
    "public repository, which this machine cannot reach, and no copy is present in $db_root" \
    "(${reason:-no reason given}). Licenses, bans and sources were checked."
fi
