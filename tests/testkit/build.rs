//! Builds the test guests of `tests/guests`, and the provider template of
//! `providers/template` (a WASI component, as authors build it), into WebAssembly components
//! in `OUT_DIR`, where [`guests`](src/guests.rs) finds them.

use std::path::PathBuf;

use cbx_guest_build::GuestTarget;

/// The guest packages built for `wasm32-unknown-unknown` (core modules wrapped into
/// components), each written to `OUT_DIR/<package>.wasm`.
const GUESTS: &[&str] = &[
    "cbx-guest-probe",
    "cbx-guest-malformed",
    "cbx-guest-spoof",
    "cbx-guest-broken",
];

/// The guest packages built as WASI components (importing WASI as third-party providers
/// usually do: wasm32-wasip2, or wasm32-wasip1 plus the preview-1 adapter), each written to
/// `OUT_DIR/<package>.wasm`.
const WASI_GUESTS: &[&str] = &["cbx-guest-escape-wasi"];

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
    if let Err(e) = cbx_guest_build::build_components_for(
        GuestTarget::Wasi,
        &guests,
        WASI_GUESTS,
        &target_dir,
        &out_dir,
    ) {
        cbx_guest_build::fail(&e);
    }
    let template = root.join("providers/template");
    cbx_guest_build::rerun_if_changed_tree(&template);
    if let Err(e) = cbx_guest_build::build_components_for(
        GuestTarget::Wasi,
        &template,
        &["cbx-provider-template"],
        &target_dir,
        &out_dir,
    ) {
        cbx_guest_build::fail(&e);
    }
    println!("cargo:rustc-env=CBX_TEST_GUESTS_DIR={}", out_dir.display());
}
