#!/usr/bin/env bash
# Runs every test of cbx: unit tests, the Daytona provider's own tests, and the end-to-end
# tests (the real cbx binary against the Daytona simulator, wiremock, a real sshd, ssh and
# rsync). Installs what it needs first (tests/setup.sh). The SSH tests need root; elsewhere
# they say why they are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh
# cbx-guest-build is tested on its own: as a dependency of this build it is a build-dependency,
# and testing it here would turn on features of wasmtime's dependencies that tests/demo.sh's build
# lacks, so wasmtime would be compiled twice.
cargo test --workspace --exclude cbx-guest-build --locked "$@"
cargo test -p cbx-guest-build --locked "$@"
# The providers' pure logic (requests, errors, parsing, the ssh provider's id codec) also has
# native unit tests.
cargo test --locked --manifest-path providers/daytona/Cargo.toml --target-dir target/provider-tests
cargo test --locked --manifest-path providers/ssh/Cargo.toml --target-dir target/provider-tests
