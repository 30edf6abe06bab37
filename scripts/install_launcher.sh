#!/usr/bin/env bash
# Puts a `sara` launcher on PATH (default /usr/local/bin/sara) that runs this
# checkout with its pinned Deno, so operators type `sara ...` as with Go sara.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-/usr/local/bin/sara}
deno="$root/node_modules/.bin/deno"
if [ ! -x "$deno" ]; then
  echo "install_launcher: $deno missing; run 'npm ci' in $root first" >&2
  exit 1
fi
cat >"$target" <<LAUNCHER
#!/usr/bin/env bash
# Deno must not manage the node_modules that npm installed it into.
export DENO_NO_PACKAGE_JSON=1
# The V8 young generation of deno task start (docs/operations.md, "Memory").
exec "$deno" run --allow-all --v8-flags=--max-semi-space-size=4 "$root/main.ts" "\$@"
LAUNCHER
chmod +x "$target"
echo "install_launcher: wrote $target"
