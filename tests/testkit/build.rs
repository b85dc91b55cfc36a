//! Builds the test guests of `tests/guests` into WebAssembly components in `OUT_DIR`, where
//! [`guests`](src/guests.rs) finds them.

use std::path::PathBuf;

/// The guest packages to build, each written to `OUT_DIR/<package>.wasm`.
const GUESTS: &[&str] = &["cbx-guest-probe"];

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let tests = manifest_dir
        .parent()
        .expect("tests/testkit has a parent")
        .to_path_buf();
    let root = tests.parent().expect("tests/ has a parent").to_path_buf();
    let guests = tests.join("guests");
    cbx_guest_build::rerun_if_changed_tree(&guests);
    cbx_guest_build::rerun_if_changed_tree(&root.join("wit"));
    let target_dir = cbx_guest_build::guest_target_dir(&out_dir);
    if let Err(e) = cbx_guest_build::build_components(&guests, GUESTS, &target_dir, &out_dir) {
        cbx_guest_build::fail(&e);
    }
    println!("cargo:rustc-env=CBX_TEST_GUESTS_DIR={}", out_dir.display());
}
