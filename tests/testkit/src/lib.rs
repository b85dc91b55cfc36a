//! Test support for cbx: the test guest components, helpers for running the real `cbx` binary
//! in an isolated home, and — re-exported from `cbx-daytona-sim` — the Daytona simulator and
//! the loopback sshd.

pub use cbx_daytona_sim as daytona_sim;
pub use cbx_daytona_sim::sshd;

pub mod guests;
pub mod home;
