//! Builds guest crates (cbx providers and test guests) into WebAssembly components.
//!
//! Build scripts call [`build_components`] (core guests) or [`build_components_for`]. It
//! chooses how this machine can compile for wasm ([`toolchain`]: the running toolchain's
//! sysroot when it has the target, else Debian's offline `rustc-web` through `-Zbuild-std`),
//! runs a nested `cargo build` with a clean environment ([`nested`]), and makes a component of
//! each result ([`component`]). When no toolchain can, it stops the build with a message that
//! says what is missing and how to install it. Nothing is looked up on `PATH`.

pub mod component;
pub mod nested;
pub mod toolchain;

use std::fs;
use std::path::{Path, PathBuf};

pub use component::encode_component;
pub use toolchain::{Environment, Finish, GuestTarget, Plan, Route};

/// A component produced by [`build_components`].
#[derive(Debug, Clone)]
pub struct BuiltComponent {
    /// The guest package's name, e.g. `cbx-provider-daytona`.
    pub package: String,
    /// Where the component was written.
    pub path: PathBuf,
}

/// Builds the core guests `packages` of the guest workspace at `workspace` into components in
/// `out_dir`.
///
/// `target_dir` is the nested cargo's target directory; keep it outside `OUT_DIR` so the
/// standard library built by `-Zbuild-std` survives host rebuilds.
pub fn build_components(
    workspace: &Path,
    packages: &[&str],
    target_dir: &Path,
    out_dir: &Path,
) -> Result<Vec<BuiltComponent>, String> {
    build_components_for(GuestTarget::Core, workspace, packages, target_dir, out_dir)
}

/// Like [`build_components`], for guests of kind `target`.
pub fn build_components_for(
    target: GuestTarget,
    workspace: &Path,
    packages: &[&str],
    target_dir: &Path,
    out_dir: &Path,
) -> Result<Vec<BuiltComponent>, String> {
    let plan = Plan::find(target, &Environment::current())?;
    let mut cmd = nested::cargo_build(&plan);
    cmd.current_dir(workspace)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    for package in packages {
        cmd.args(["-p", package]);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("could not run cargo for {}: {e}", workspace.display()))?;
    if !status.success() {
        return Err(format!(
            "building the {} guests in {} ({}) failed ({status}); see the cargo output above. \
             tests/setup.sh checks that this machine can build guests and says what to install.",
            target.noun(),
            workspace.display(),
            plan.describe()
        ));
    }
    fs::create_dir_all(out_dir).map_err(|e| format!("create {}: {e}", out_dir.display()))?;
    let mut built = Vec::new();
    for package in packages {
        let linked = target_dir
            .join(plan.triple)
            .join("release")
            .join(format!("{}.wasm", package.replace('-', "_")));
        let bytes = fs::read(&linked).map_err(|e| format!("read {}: {e}", linked.display()))?;
        let component = component::finish(bytes, plan.finish)
            .map_err(|e| format!("make a component of {}: {e}", linked.display()))?;
        let path = out_dir.join(format!("{package}.wasm"));
        fs::write(&path, component).map_err(|e| format!("write {}: {e}", path.display()))?;
        built.push(BuiltComponent {
            package: package.to_string(),
            path,
        });
    }
    Ok(built)
}

/// Tells cargo to rerun the calling build script when anything under `path` changes.
pub fn rerun_if_changed_tree(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            let p = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                rerun_if_changed_tree(&p);
            } else {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
}

/// The directory nested guest builds should use: `<target>/guests`, beside the host's own
/// profile directories, derived from `OUT_DIR` so it follows `CARGO_TARGET_DIR`.
pub fn guest_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out (or <target>/<triple>/<profile>/…).
    let mut dir = out_dir;
    while let Some(parent) = dir.parent() {
        if dir.file_name().is_some_and(|n| n == "build")
            && let Some(target) = parent.parent()
        {
            return target.join("guests");
        }
        dir = parent;
    }
    out_dir.join("guests")
}

/// Reports a fatal build-script error in cargo's format and exits.
pub fn fail(message: &str) -> ! {
    for line in message.lines() {
        println!("cargo::error={line}");
    }
    std::process::exit(1);
}
