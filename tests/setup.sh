#!/usr/bin/env bash
# Installs what building and testing cbx needs, if it is missing, and proves that it works:
#   - a Rust toolchain that can compile WebAssembly guests of both kinds cbx builds — core
#     modules (wasm32-unknown-unknown: the built-in providers) and WASI components (test guests,
#     the provider template): installed rustup targets, or Debian's offline packages (rustc-web,
#     cargo-web, rust-web-src, lld-19, wasi-libc);
#   - git, OpenSSH (client and server) and rsync, which the data plane and its tests use;
#   - tmux, a real terminal for the test that answers the approval prompt as a person would,
#     and GNU time (/usr/bin/time), which measures cbx's peak memory in a test;
#   - componentize-py, which builds the Python provider for its end-to-end test.
# Then it builds one tiny guest of each kind exactly as the real build does
# (host/guest-build/check) and, if that fails, says what is missing.
# Safe to run again: it installs only what is absent, and the check is quick once done.
# Needs root (or sudo) to install.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
have() { command -v "$1" >/dev/null 2>&1; }

# The running toolchain's sysroot, and whether it has a target's standard library.
sysroot=$(rustc --print sysroot 2>/dev/null || true)
host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p' || true)
has_std() { [ -n "$sysroot" ] && ls "$sysroot/lib/rustlib/$1/lib/" 2>/dev/null | grep -q '^libstd-'; }
rustup_core() { has_std wasm32-unknown-unknown; }
rustup_wasi() {
  has_std wasm32-wasip1 ||
    { has_std wasm32-wasip2 && [ -x "$sysroot/lib/rustlib/$host/bin/wasm-component-ld" ]; }
}
# Without both rustup targets, Debian's packages build what the toolchain cannot (the same
# fixed paths host/guest-build/src/toolchain.rs looks at; nothing is taken from PATH).
if ! rustup_core || ! rustup_wasi; then
  [ -x /usr/bin/rustc ] || missing+=(rustc-web)
  [ -x /usr/bin/cargo ] || missing+=(cargo-web)
  [ -d /usr/lib/rustlib/src/rust/library/std ] || missing+=(rust-web-src)
  ls /usr/bin/wasm-ld-* >/dev/null 2>&1 || missing+=(lld-19)
  rustup_wasi || [ -f /usr/lib/wasm32-wasi/libc.a ] || missing+=(wasi-libc)
fi
have git || missing+=(git)
have ssh || missing+=(openssh-client)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
have rsync || missing+=(rsync)
have tmux || missing+=(tmux)
[ -x /usr/bin/time ] || missing+=(time)

# componentize-py (PyPI; it ships its own binary) builds the Python provider in
# providers/daytona-py for its end-to-end test; pip installs it, after apt installed pip.
have python3 || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)

install_missing() {
  echo "setup: installing ${missing[*]}" >&2
  if ! have apt-get; then
    echo "setup: cannot install ${missing[*]} automatically on this system." >&2
    echo "setup: install git, OpenSSH, rsync, tmux and GNU time, and run: rustup target add wasm32-unknown-unknown wasm32-wasip1" >&2
    exit 1
  fi
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    if have sudo; then sudo=(sudo); else
      echo "setup: need root to install ${missing[*]} (run as root, or install them yourself)" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    # Without Debian's rustc-web (e.g. on Ubuntu), fall back to rustup's targets.
    local rest=() p
    for p in "${missing[@]}"; do
      case "$p" in rustc-web|cargo-web|rust-web-src|lld-19|wasi-libc) ;; *) rest+=("$p") ;; esac
    done
    [ ${#rest[@]} -eq 0 ] || "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${rest[@]}" >/dev/null
    rustup target add wasm32-unknown-unknown wasm32-wasip1
  fi
}
[ ${#missing[@]} -eq 0 ] || install_missing

# Pinned: installed when absent or another version. Only the Python provider's test needs it (it
# says why it skips without it, and fails in CI), so a failure here is a warning.
componentize_py_version=0.25.1
if ! python3 -c "import componentize_py, importlib.metadata as m, sys; sys.exit(m.version('componentize-py') != '$componentize_py_version')" 2>/dev/null; then
  echo "setup: installing componentize-py==$componentize_py_version with pip" >&2
  pip_install() { PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q "$@" "componentize-py==$componentize_py_version"; }
  # A system python (Debian's) refuses pip installs unless told to.
  if pip_install 2>/dev/null || pip_install --break-system-packages; then
    if have pyenv; then pyenv rehash; fi
  else
    echo "setup: warning: could not install componentize-py; the Python provider's test will skip (in CI: fail)" >&2
  fi
fi

# The proof: a tiny core guest and a tiny WASI guest, built through cbx-guest-build into the
# shared guest target directory (so the wasm standard library compiled here is reused by the
# real build). Quiet when it passes; on failure, cargo's output ends with what to install.
log=$(mktemp -t cbx-setup-XXXXXX)
trap 'rm -f "$log"' EXIT
echo "setup: checking that this toolchain builds WebAssembly guests (core and WASI)…" >&2
if ! cargo build --locked -q -p cbx-toolchain-check >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup: this machine cannot build cbx's WebAssembly guests; the error above names what" >&2
  echo "setup: is missing and how to install it (then run tests/setup.sh again)." >&2
  exit 1
fi
