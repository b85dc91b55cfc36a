//! Test points: named places where cbx pauses when the environment asks it to, so end-to-end
//! tests can send real signals (or run a racing command) at a deterministic instant.
//!
//! `CBX_TEST_PAUSE=acquire:created` makes cbx print `cbx-test: paused at acquire:created (pid
//! N)` on stderr when it gets there, then wait — until the file named by `CBX_TEST_RESUME`
//! exists, or forever without one. The wait is asynchronous: signals are handled meanwhile,
//! exactly as they would be at that instant. Without `CBX_TEST_PAUSE` a point costs nothing.
//! docs/architecture.md lists the points.

use std::path::PathBuf;
use std::time::Duration;

use crate::environment::Environment;

/// Pauses at `point` if `CBX_TEST_PAUSE` (a comma-separated list) names it.
pub async fn reached(env: &Environment, point: &str) {
    let Some(wanted) = env.var("CBX_TEST_PAUSE") else {
        return;
    };
    if !wanted.split(',').any(|p| p.trim() == point) {
        return;
    }
    eprintln!("cbx-test: paused at {point} (pid {})", std::process::id());
    let resume = env.var_os("CBX_TEST_RESUME").map(PathBuf::from);
    while !resume.as_ref().is_some_and(|f| f.exists()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("cbx-test: resumed at {point}");
}
