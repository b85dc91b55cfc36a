//! cbx: lease remote Linux sandboxes, sync a working tree to them and run commands there.
//!
//! Every sandbox provider is a sandboxed WebAssembly component. The host (this crate) keeps
//! everything dangerous — credentials, SSH, rsync, the local file system — and grants each
//! provider only the capabilities its manifest declares and the user allows.
//!
//! The modules follow the architecture:
//! - [`provider`]: the wasm boundary — engine, component cache, bindings, limits, manifests.
//! - [`grant`]: capabilities — the effective grant, credentials and the one egress check.
//! - [`lease`]: the provider-neutral lease lifecycle — ids, slugs, labels, claims, waiting.
//! - [`ssh`], [`sync`], [`remote`]: the data plane — OpenSSH with a private config, rsync of
//!   the working tree, remote command lines.
//! - [`config`]: user and repository configuration, provider option resolution.
//! - [`cli`]: argument types, one file per command, output formatting.

pub mod audit;
pub mod cli;
pub mod config;
pub mod error;
pub mod grant;
pub mod lease;
pub mod paths;
pub mod progress;
pub mod provider;
pub mod redact;
pub mod remote;
pub mod ssh;
pub mod sync;
