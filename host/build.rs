//! Builds the embedded Daytona provider from `providers/daytona` into a WebAssembly component.

use std::path::PathBuf;

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ has a parent")
        .to_path_buf();
    let daytona = root.join("providers/daytona");
    cbx_guest_build::rerun_if_changed_tree(&daytona.join("src"));
    println!(
        "cargo:rerun-if-changed={}",
        daytona.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        daytona.join("Cargo.lock").display()
    );
    cbx_guest_build::rerun_if_changed_tree(&root.join("wit"));
    let target_dir = cbx_guest_build::guest_target_dir(&out_dir);
    if let Err(e) = cbx_guest_build::build_components(
        &daytona,
        &["cbx-provider-daytona"],
        &target_dir,
        &out_dir,
    ) {
        cbx_guest_build::fail(&e);
    }
}
