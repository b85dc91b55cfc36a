#!/usr/bin/env bash
# cbx's main job, end to end, on this machine: lease a sandbox, sync this repository's
# sample project to it, run commands, open ssh, stop — against the Daytona simulator (the
# stand-in for Daytona when no account is at hand), whose sandboxes are served by a
# real sshd on loopback. Nothing touches your real cbx config or leases.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tests/setup.sh
# The same profile and features as tests/run.sh, so the tests reuse this build (wasmtime is
# compiled once); only cbx, its built-in providers and the simulator are built.
echo "demo: building cbx and the simulator…" >&2
cargo build --locked -q -p cbx -p cbx-daytona-sim --bin cbx --bin daytona-sim
bin="$root/target/debug"

work=$(mktemp -d -t cbx-demo-XXXXXX)
sim_pid=
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export XDG_CONFIG_HOME="$work/config" XDG_STATE_HOME="$work/state" XDG_CACHE_HOME="$work/cache"

ssh_flag=--ssh
if [ "$(id -u)" != 0 ]; then
  echo "demo: not root, so the simulator runs without SSH (its SSH gateway creates throwaway" >&2
  echo "demo: system users). The control plane is shown; run as root (e.g. in a container) for run/ssh." >&2
  ssh_flag=
fi
"$bin/daytona-sim" $ssh_flag > "$work/sim.env" &
sim_pid=$!
# The simulator prints DAYTONA_API_URL, DAYTONA_API_KEY and, last, DAYTONA_SSH_GATEWAY: where
# its sandboxes are reached over SSH. cbx connects only to destinations the provider's grant
# allows, and this is how you allow a self-hosted (here: simulated) Daytona's gateway.
for _ in $(seq 100); do grep -q DAYTONA_SSH_GATEWAY "$work/sim.env" 2>/dev/null && break; sleep 0.1; done
set -a; . "$work/sim.env"; set +a

# A small project to sync.
mkdir -p "$work/project/src" && cd "$work/project"
git init -q && git config user.email demo@cbx.invalid && git config user.name demo
printf 'fn main() { println!("hello from the sandbox"); }\n' > src/main.rs
printf '# demo project\n' > README.md
printf 'target/\n' > .gitignore
git add . && git commit -qm init

step() {
  printf '\n\033[1m$ cbx'
  printf ' %q' "${@:2}"
  printf '\033[0m\n'
  "$@"
}
CBX="$bin/cbx"

step "$CBX" doctor
step "$CBX" warmup --slug demo
step "$CBX" list
step "$CBX" status demo
if [ -n "$ssh_flag" ]; then
  step "$CBX" run --id demo -- sh -c 'echo "running in $(pwd) on lease $CBX_LEASE_ID"; ls -R'
  printf '\n# edit a file and delete another; the next run syncs just that\n'
  printf 'fn main() { println!("edited"); }\n' > src/main.rs
  rm README.md
  step "$CBX" run --id demo -- sh -c 'cat src/main.rs; ls'
  step "$CBX" run --id demo -- sh -c 'echo nothing changed, no sync; exit 3' || echo "(exit code $? passed through)"
  step "$CBX" ssh demo -- uname -a
  step "$CBX" ssh demo --print
  printf '\n# doctor on a live lease: SSH and the sandbox'"'"'s tools in one login, and the sync transport\n'
  step "$CBX" doctor --lease demo
  step "$CBX" run -- echo "a one-shot lease: created, used and deleted"
  printf '\n# every minted SSH destination, sync and --env forwarding is audited\n'
  step "$CBX" providers audit --last 12
fi
step "$CBX" stop demo
step "$CBX" list --json
printf '\ndemo: done\n'
