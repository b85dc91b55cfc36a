//! Test support for cbx: a stateful Daytona simulator, the test guest components, a loopback
//! sshd and helpers for running the real `cbx` binary in an isolated home.

pub mod daytona_sim;
pub mod guests;
pub mod home;
pub mod sshd;
