//! Builds one tiny guest of each kind cbx needs — a core module (`guests/core`) and a WASI
//! component (`guests/wasi`) — through exactly the path the real builds take: `cbx-guest-build`
//! called from a build script, into the same guest target directory with the same release
//! profile, so the wasm standard library compiled here is the one the providers and test
//! guests reuse. `tests/setup.sh` builds this crate to prove the toolchain it installed works.

use std::path::PathBuf;

use cbx_guest_build::GuestTarget;

/// The tiny guests: (kind, package).
const GUESTS: &[(GuestTarget, &str)] = &[
    (GuestTarget::Core, "cbx-check-core"),
    (GuestTarget::Wasi, "cbx-check-wasi"),
];

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let guests = manifest_dir.join("guests");
    cbx_guest_build::rerun_if_changed_tree(&guests);
    let target_dir = cbx_guest_build::guest_target_dir(&out_dir);
    for (target, package) in GUESTS {
        if let Err(e) = cbx_guest_build::build_components_for(
            *target,
            &guests,
            &[package],
            &target_dir,
            &out_dir,
        ) {
            cbx_guest_build::fail(&format!(
                "toolchain check: this machine cannot build {} guests.\n{e}",
                target.noun()
            ));
        }
    }
    println!("cargo:rustc-env=CBX_CHECK_GUESTS_DIR={}", out_dir.display());
}
