//! What the commands do, as library calls — cargo's `ops`: each command in `cli::commands`
//! parses its arguments, builds options, calls one of these and renders the result.
//!
//! - [`doctor`]: the checks of `cbx doctor`.
//! - [`doctor_lease`]: doctor's checks of a live lease (`--lease`): SSH and the sandbox's tools.
//! - [`doctor_report`]: what doctor reports.
//! - [`conformance`]: the suite of `cbx providers test`.
//! - [`scaffold`]: the provider projects of `cbx providers new` and the WIT of `providers wit`.
//! - [`build`]: `cbx providers build`, a Rust provider project built into a component.
//! - [`review`]: what `cbx providers list` and `inspect` report about providers.
//! - [`guard`]: never running a command twice when a warm run falls back.
//! - [`pending_files`]: a run's file list, made while the run's network steps go on.
//! - [`run`]: syncing and running a command on a lease's sandbox (`cbx run`).
//! - [`run_report`]: what `run` reports (`--json`, `--report`, the `-v` timings line).
//! - [`download`]: `run --download`, the files copied back after the command.
//! - [`copy`]: `cbx cp`, files to and from a lease's sandbox.
//! - [`test_report`]: `run --junit`, the test summary from JUnit XML reports.
//! - [`shard`]: `cbx shard`, one command on N sandboxes at once, and its verdict.
//!
//! Installing providers (the approval flow) is `provider::install`; the lease operations
//! behind `warmup`, `list`, `status` and `stop` are `lease::*`.

pub mod build;
pub mod conformance;
pub mod copy;
pub mod doctor;
pub mod doctor_lease;
pub mod doctor_report;
pub mod download;
pub mod guard;
pub mod pending_files;
pub mod review;
pub mod run;
pub mod run_report;
pub mod scaffold;
pub mod shard;
pub mod test_report;
