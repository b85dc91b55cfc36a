//! Builds the embedded providers (`providers/daytona`, `providers/ssh`) into WebAssembly
//! components. Each is its own guest workspace; they share one guest target directory, so the
//! standard library built for wasm32 is built once.

use std::path::PathBuf;

/// The embedded providers: (directory under `providers/`, guest package).
const PROVIDERS: &[(&str, &str)] = &[
    ("daytona", "cbx-provider-daytona"),
    ("ssh", "cbx-provider-ssh"),
];

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ has a parent")
        .to_path_buf();
    cbx_guest_build::rerun_if_changed_tree(&root.join("wit"));
    let target_dir = cbx_guest_build::guest_target_dir(&out_dir);
    for (dir, package) in PROVIDERS {
        let workspace = root.join("providers").join(dir);
        cbx_guest_build::rerun_if_changed_tree(&workspace.join("src"));
        for file in ["Cargo.toml", "Cargo.lock"] {
            println!("cargo:rerun-if-changed={}", workspace.join(file).display());
        }
        if let Err(e) =
            cbx_guest_build::build_components(&workspace, &[package], &target_dir, &out_dir)
        {
            cbx_guest_build::fail(&e);
        }
    }
}
