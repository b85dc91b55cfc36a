//! `cbx providers build`: a Rust provider project built into a component beside its manifest,
//! the way cbx builds its own providers (`cbx-guest-build`): `cargo build --release --target
//! wasm32-unknown-unknown` with the toolchain that has that target (rustup's, else Debian's
//! offline `rustc-web` through `-Zbuild-std`), then the core module wrapped into a component.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use cbx_guest_build::{Environment, GuestTarget, Plan, component, nested};

use crate::error::{ErrorKind, Failure, fail};
use crate::provider::registry::{COMPONENT_FILE, MANIFEST_FILE};

/// What a build produced.
#[derive(Debug)]
pub struct Built {
    /// The component, `DIR/provider.wasm`.
    pub component: PathBuf,
    /// Its size in bytes.
    pub size: usize,
    /// How it was built, in words.
    pub how: String,
}

/// Builds the provider project in `dir` into `dir/provider.wasm`; cargo's progress goes to
/// stderr.
pub fn build(dir: &Path) -> Result<Built> {
    let cargo_toml = dir.join("Cargo.toml");
    let package = package_name(&cargo_toml)?;
    if !dir.join(MANIFEST_FILE).is_file() {
        return Err(fail(
            ErrorKind::Usage,
            format!(
                "{} has no {MANIFEST_FILE}: is it a provider project (`cbx providers new` writes one)?",
                dir.display()
            ),
        ));
    }
    let plan = Plan::find(GuestTarget::Core, &Environment::current()).map_err(|why| {
        Failure::new(
            ErrorKind::Usage,
            format!("cannot build for wasm on this machine:\n{why}"),
        )
    })?;
    let target_dir = dir.join("target");
    let status = nested::cargo_build(&plan)
        .current_dir(dir)
        .arg("--manifest-path")
        .arg(&cargo_toml)
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .context("run cargo")?;
    if !status.success() {
        return Err(fail(
            ErrorKind::Other,
            format!("cargo failed ({status}); its messages are above"),
        ));
    }
    let module = target_dir
        .join(plan.triple)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    let linked = fs_err::read(&module)?;
    let bytes = component::finish(linked, plan.finish).map_err(|e| {
        Failure::new(
            ErrorKind::Other,
            format!("cannot make a component of {}: {e}", module.display()),
        )
    })?;
    let out = dir.join(COMPONENT_FILE);
    fs_err::write(&out, &bytes)?;
    Ok(Built {
        component: out,
        size: bytes.len(),
        how: plan.describe(),
    })
}

/// The `[package] name` of a Cargo.toml.
fn package_name(cargo_toml: &Path) -> Result<String> {
    let text = fs_err::read_to_string(cargo_toml).map_err(|e| {
        Failure::new(ErrorKind::Usage, format!("{e}"))
            .hint("run it in a provider project, or give the project's directory")
    })?;
    let value: toml::Value = toml::from_str(&text)
        .map_err(|e| Failure::new(ErrorKind::Usage, format!("{}: {e}", cargo_toml.display())))?;
    value
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            fail(
                ErrorKind::Usage,
                format!("{} has no [package] name", cargo_toml.display()),
            )
        })
}
