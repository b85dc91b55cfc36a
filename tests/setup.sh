#!/usr/bin/env bash
# Installs what building and testing cbx needs, if it is missing:
#   - a Rust toolchain that can compile for wasm32 (cbx embeds its Daytona provider as a
#     WebAssembly component): an installed rustup target, or Debian's offline rustc-web;
#   - git, OpenSSH (client and server) and rsync, which the data plane and its tests use;
#   - tmux, a real terminal for the test that answers the approval prompt as a person would,
#     and GNU time (/usr/bin/time), which measures cbx's peak memory in a test.
# Safe to run again: it only installs what is absent. Needs root (or sudo) to install.
set -euo pipefail

missing=()
have() { command -v "$1" >/dev/null 2>&1; }

wasm_ready() {
  rustc --print sysroot >/dev/null 2>&1 &&
    ls "$(rustc --print sysroot)/lib/rustlib/wasm32-unknown-unknown/lib/" 2>/dev/null | grep -q '^libstd-' && return 0
  [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library/std ] &&
    { have wasm-ld-19 || have wasm-ld; }
}

wasm_ready || missing+=(rustc-web cargo-web rust-web-src lld-19)
[ -d /usr/lib/wasm32-wasi ] || rustup target list --installed 2>/dev/null | grep -q wasm32-wasip2 || missing+=(wasi-libc)
have git || missing+=(git)
have ssh || missing+=(openssh-client)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
have rsync || missing+=(rsync)
have tmux || missing+=(tmux)
[ -x /usr/bin/time ] || missing+=(time)

# componentize-py (PyPI; it ships its own binary) builds the Python provider in
# providers/daytona-py for its end-to-end test. Pinned: installed when absent or another version.
componentize_py_version=0.25.1
if ! python3 -c "import componentize_py, importlib.metadata as m, sys; sys.exit(m.version('componentize-py') != '$componentize_py_version')" 2>/dev/null; then
  echo "setup: installing componentize-py==$componentize_py_version with pip" >&2
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q "componentize-py==$componentize_py_version" ||
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --break-system-packages "componentize-py==$componentize_py_version"
  if have pyenv; then pyenv rehash; fi
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
if ! have apt-get; then
  echo "setup: cannot install ${missing[*]} automatically on this system." >&2
  echo "setup: install git, OpenSSH and rsync, and run: rustup target add wasm32-unknown-unknown" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
  if have sudo; then sudo=(sudo); else
    echo "setup: need root to install ${missing[*]} (run as root, or install them yourself)" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  # Without Debian's rustc-web (e.g. on Ubuntu), fall back to rustup's target.
  rest=()
  for p in "${missing[@]}"; do
    case "$p" in rustc-web|cargo-web|rust-web-src|lld-19|wasi-libc) ;; *) rest+=("$p") ;; esac
  done
  [ ${#rest[@]} -eq 0 ] || "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${rest[@]}" >/dev/null
  rustup target add wasm32-unknown-unknown wasm32-wasip2
fi
