//! The provider-neutral lease lifecycle.
//!
//! A lease is cbx's handle on one sandbox: an id (`cbx_` + 12 hex), a human slug
//! (`amber-otter`), ownership labels on the sandbox, and a local claim binding lease, sandbox
//! and repository. cbx never touches a sandbox it does not own and holds no exact claim for.
//!
//! - [`id`]: lease ids and slugs.
//! - [`labels`]: the ownership labels written on sandboxes.
//! - [`claims`]: local claims (JSON files, 0600, atomic, locked).
//! - [`session`]: a configured provider with retries and error mapping.
//! - [`lifecycle`]: acquire, resolve, wait, release.
//! - [`connect`]: SSH access with refresh, the remote work directory.
//! - [`view`]: what `status`, `list` and `warmup` report.

pub mod claims;
pub mod connect;
pub mod id;
pub mod labels;
pub mod lifecycle;
pub mod session;
pub mod view;
