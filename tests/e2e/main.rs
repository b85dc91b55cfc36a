//! cbx's end-to-end tests, as one test binary (so cbx and wasmtime are linked into one test
//! executable, not one per area), with a module per area. Each test's name starts with its
//! area: `tests/run.sh control_plane::` runs one area, `tests/run.sh control_plane::doctor`
//! the matching tests.
//!
//! | module | what it exercises |
//! | --- | --- |
//! | `daytona_requests` | the real binary against wiremock: Daytona's exact requests and error answers |
//! | `control_plane` | the real binary against the Daytona simulator: the lease lifecycle |
//! | `capabilities` | the `probe` guest in the real host: grants, credentials, limits |
//! | `install` | installing, approving, inspecting and auditing providers; the template |
//! | `adversarial` | hostile components installed as a user would |
//! | `authoring` | provider authors: `providers test --component`, the conformance checks, `providers new`/`build` |
//! | `python_provider` | the Python Daytona provider, built with componentize-py |
//! | `data_plane` | the simulator with a real sshd, ssh and rsync (needs root) |
//! | `ssh_provider` | the built-in ssh provider against a real sshd (needs root) |
//! | `login_env` | the login environment read once per connection and reused by warm commands (issue 14, needs root) |
//! | `warm_path` | `run --id` and `ssh` straight over a live connection, and every fallback (needs root) |
//! | `checkpoints` | optional capabilities: checkpoints and forks (simulator, real sshd), the missing-capability error |
//! | `crash_safety` | kills, signals, races and damaged state against the simulator (issue 11) |
//! | `remote_loop` | `run --download`, `--junit`, `cp`: files and test results back, hostile sandboxes (issue 15, needs root) |
//! | `server_cleanup` | server-side clean-up, reclaiming, key scopes against the simulator (issue 12) |
//! | `shard` | `cbx shard`: one command on N sandboxes, its verdict, signals, `--fail-fast`, `--from` (issue 16, needs root) |

mod adversarial;
mod authoring;
mod capabilities;
mod checkpoints;
mod control_plane;
mod crash_safety;
mod data_plane;
mod daytona_requests;
mod install;
mod login_env;
mod python_provider;
mod remote_loop;
mod server_cleanup;
mod shard;
mod ssh_provider;
mod warm_path;
