//! Files between this machine and a sandbox, over the lease's existing (multiplexed) ssh
//! connection, as tar streams: the sandbox needs nothing but `sh` and `tar`.
//!
//! A sandbox is hostile: what it sends back is unpacked here by cbx itself, entry by entry,
//! never by a local `tar`, so no name can write outside the destination (no `..`, no absolute
//! paths, no symlinks followed or created).
//!
//! - [`pattern`]: remote paths and globs, checked and quoted for the remote shell.
//! - [`unpack`]: writing a received tar stream under a destination, refusing what escapes.
//! - [`pack`]: a local file or directory as a tar stream.
//! - [`stream`]: the ssh processes that carry the streams.

pub mod pack;
pub mod pattern;
pub mod stream;
pub mod unpack;
