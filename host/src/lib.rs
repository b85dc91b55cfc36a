//! cbx: lease remote Linux sandboxes, sync a working tree to them and run commands there.
//!
//! Every sandbox provider is a sandboxed WebAssembly component. The host (this crate) keeps
//! everything dangerous — credentials, SSH, rsync, the local file system — and grants each
//! provider only the capabilities its manifest declares and the user allows.
//!
//! The modules, from the top (docs/architecture.md draws the layers):
//! - [`cli`]: argument types, one thin file per command, output formatting.
//! - [`ops`]: what the commands do, as library calls (doctor, conformance, provider review,
//!   run).
//! - [`context`]: one invocation's directories, configuration, environment and repository.
//! - [`lease`]: the provider-neutral lease lifecycle — ids, labels, claims, sessions with
//!   retries, acquire/resolve/release, the SSH access cache.
//! - [`provider`]: the wasm boundary — loading (runtime, registry, install), engine, component
//!   cache, bindings, the host side of each import, limits.
//! - [`grant`]: capabilities — manifests, approvals, the effective grant, the one egress check.
//! - [`audit`]: the audit log.
//! - [`config`]: user and repository configuration, provider option resolution.
//! - [`ssh`], [`sync`], [`remote`], [`transfer`]: the data plane — OpenSSH with a private
//!   config, rsync of the working tree, remote command lines, tar streams of files to and from
//!   a sandbox.
//! - Leaves: [`environment`] (read once), [`provenance`] (where a setting came from),
//!   [`interrupt`] (the one place signals are awaited), [`junit`] (test reports), [`diagnostic`], [`digest`], [`error`],
//!   [`paths`], [`progress`], [`redact`], [`terminal`] (provider text made inert for a
//!   terminal), [`testpoint`] (pauses for end-to-end tests).

pub mod audit;
pub mod cli;
pub mod config;
pub mod context;
pub mod diagnostic;
pub mod digest;
pub mod environment;
pub mod error;
pub mod grant;
pub mod interrupt;
pub mod junit;
pub mod lease;
pub mod login_env;
pub mod ops;
pub mod paths;
pub mod progress;
pub mod provenance;
pub mod provider;
pub mod redact;
pub mod remote;
pub mod ssh;
pub mod sync;
pub mod terminal;
pub mod testpoint;
pub mod transfer;

#[cfg(test)]
mod tree_rules;
