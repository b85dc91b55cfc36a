//! What the commands do, as library calls — cargo's `ops`: each command in `cli::commands`
//! parses its arguments, builds options, calls one of these and renders the result.
//!
//! - [`doctor`]: the checks of `cbx doctor`.
//! - [`conformance`]: the suite of `cbx providers test`.
//! - [`scaffold`]: the provider projects of `cbx providers new` and the WIT of `providers wit`.
//! - [`build`]: `cbx providers build`, a Rust provider project built into a component.
//! - [`review`]: what `cbx providers list` and `inspect` report about providers.
//! - [`run`]: syncing and running a command on a lease's sandbox (`cbx run`).
//!
//! Installing providers (the approval flow) is `provider::install`; the lease operations
//! behind `warmup`, `list`, `status` and `stop` are `lease::*`.

pub mod build;
pub mod conformance;
pub mod doctor;
pub mod review;
pub mod run;
pub mod scaffold;
