#!/usr/bin/env bash
# Builds the Python Daytona provider into a WebAssembly component with componentize-py.
#
#   providers/daytona-py/build.sh [OUT_DIR]      (default: providers/daytona-py/target)
#
# Writes OUT_DIR/daytona-py.wasm and its manifest beside it (OUT_DIR/cbx-provider.toml), so
# `cbx providers install OUT_DIR/daytona-py.wasm` finds both. On the way it generates the
# binding stubs of wit/provider.wit (OUT_DIR/bindings) and runs the unit tests against them
# with the native python3. The sources are built from a copy in OUT_DIR/src, so the source
# tree gets no __pycache__.
#
# Needs componentize-py (`python3 -m pip install componentize-py==0.25.1`; tests/setup.sh
# installs it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="$(cd "$here/../../wit" && pwd)"
out="${1:-$here/target}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
world=provider-world

# componentize-py from PATH, else from python3's packages (its script dir may not be on PATH).
if command -v componentize-py >/dev/null 2>&1; then
  cpy() { componentize-py "$@"; }
elif python3 -c 'import componentize_py' >/dev/null 2>&1; then
  cpy() { python3 -c 'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.exit(script())' "$@"; }
else
  echo "build.sh: componentize-py is not installed; run: python3 -m pip install componentize-py==0.25.1" >&2
  exit 127
fi

# 1. Stage the sources.
rm -rf "$out/src" "$out/bindings"
mkdir -p "$out/src"
cp "$here/app.py" "$out/src/"
cp -r "$here/daytona_py" "$out/src/"
find "$out/src" -name __pycache__ -prune -exec rm -rf {} +

# 2. Binding stubs, and the unit tests against them (natively, without the network).
cpy -q -d "$wit" -w "$world" bindings "$out/bindings"
PYTHONPATH="$out/bindings:$out/src" python3 -B -m unittest discover -s "$here/tests" -p 'test_*.py' -q

# 3. The component. componentize-py generates the real bindings itself while it builds.
(cd "$out/src" && cpy -q -d "$wit" -w "$world" componentize app -o "$out/daytona-py.wasm")
cp "$here/cbx-provider.toml" "$out/cbx-provider.toml"
echo "built $out/daytona-py.wasm ($(wc -c <"$out/daytona-py.wasm") bytes, $(cpy --version))"
