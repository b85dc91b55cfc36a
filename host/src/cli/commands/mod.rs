//! One module per command: each parses its arguments into options, calls the library and
//! renders the result (as cargo's `src/bin/cargo/commands/*.rs`).

pub mod checkpoint;
pub mod cleanup;
pub mod completions;
pub mod conformance;
pub mod cp;
pub mod doctor;
pub mod install;
pub mod list;
pub mod pause;
pub mod providers;
pub mod run;
pub mod scaffold;
pub mod shard;
pub mod ssh;
pub mod status;
pub mod stop;
pub mod warmup;
