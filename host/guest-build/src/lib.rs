//! Builds guest crates (cbx providers and test guests) into WebAssembly components.
//!
//! Build scripts call [`build_components`]. It finds a Rust toolchain that can target
//! `wasm32-unknown-unknown` — an installed rustup target first, then Debian's offline
//! `rustc-web` packages through `-Zbuild-std` — runs a nested `cargo build` with a clean
//! environment, and wraps each core module into a component with `wit-component`. With neither
//! toolchain present it stops the build with a message that says how to install one.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasm target guests are compiled for by default.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// What a guest crate is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestTarget {
    /// `wasm32-unknown-unknown`: a core module wrapped into a component here. It imports
    /// nothing but its own WIT interfaces.
    Core,
    /// `wasm32-wasip2`: a component straight from the linker, importing WASI, as third parties
    /// usually build them.
    WasiP2,
}

impl GuestTarget {
    /// The rustc target triple.
    pub fn triple(self) -> &'static str {
        match self {
            GuestTarget::Core => TARGET,
            GuestTarget::WasiP2 => "wasm32-wasip2",
        }
    }
}

/// A Rust toolchain able to compile for [`TARGET`].
#[derive(Debug, Clone)]
pub enum Toolchain {
    /// The toolchain running this build, with the wasm32 standard library installed (rustup).
    Installed { cargo: PathBuf, rustc: PathBuf },
    /// Debian's `rustc-web` toolchain, building the standard library from `rust-web-src`.
    DebianBuildStd { linker: PathBuf },
}

/// How to install a wasm toolchain, shown when none is found.
pub const INSTALL_HINT: &str = "building cbx needs a Rust toolchain that can compile for \
wasm32-unknown-unknown (cbx embeds its providers, Daytona and ssh, as WebAssembly components), and none was found. \
Install one of:\n  rustup target add wasm32-unknown-unknown\n  \
apt-get install rustc-web cargo-web rust-web-src lld-19   (Debian 12 or Ubuntu, works offline)";

impl Toolchain {
    /// Finds a usable toolchain, preferring the installed rustup target.
    pub fn detect() -> Result<Toolchain, String> {
        Toolchain::detect_for(GuestTarget::Core)
    }

    /// Finds a usable toolchain for `target`.
    pub fn detect_for(target: GuestTarget) -> Result<Toolchain, String> {
        let rustc = env::var_os("RUSTC").map_or_else(|| PathBuf::from("rustc"), PathBuf::from);
        let cargo = env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
        if has_target_std(&rustc, target.triple()) {
            return Ok(Toolchain::Installed { cargo, rustc });
        }
        let debian_src = Path::new("/usr/lib/rustlib/src/rust/library/std");
        let wasi_libc = target == GuestTarget::Core || Path::new(WASI_LIBC).exists();
        if Path::new("/usr/bin/cargo").exists()
            && Path::new("/usr/bin/rustc").exists()
            && debian_src.exists()
            && wasi_libc
            && let Some(linker) = find_wasm_ld()
        {
            return Ok(Toolchain::DebianBuildStd { linker });
        }
        Err(match target {
            GuestTarget::Core => INSTALL_HINT.to_string(),
            GuestTarget::WasiP2 => "building wasm32-wasip2 guests needs `rustup target add \
                 wasm32-wasip2`, or Debian's rustc-web, rust-web-src, lld-19 and wasi-libc"
                .to_string(),
        })
    }

    fn command_for(&self, target: GuestTarget) -> Command {
        match self {
            Toolchain::Installed { cargo, rustc } => {
                let mut cmd = Command::new(cargo);
                scrub_env(&mut cmd);
                cmd.env("RUSTC", rustc);
                cmd.args(["build", "--release", "--target", target.triple()]);
                cmd
            }
            Toolchain::DebianBuildStd { linker } => {
                let mut cmd = Command::new("/usr/bin/cargo");
                scrub_env(&mut cmd);
                cmd.env("RUSTC", "/usr/bin/rustc")
                    .env("RUSTC_BOOTSTRAP", "1")
                    .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", linker);
                if target == GuestTarget::WasiP2 {
                    // rustc's wasm-component-ld calls `wasm-ld` by that name; Debian names it
                    // wasm-ld-19. Debian's wasi-libc holds the C runtime std links against.
                    let shim = env::temp_dir().join(format!("cbx-wasm-ld-{}", std::process::id()));
                    let _ = fs::create_dir_all(&shim);
                    let link = shim.join("wasm-ld");
                    if !link.exists() {
                        #[cfg(unix)]
                        let _ = std::os::unix::fs::symlink(linker, &link);
                    }
                    let path = env::var_os("PATH").unwrap_or_default();
                    let mut paths = vec![shim];
                    paths.extend(env::split_paths(&path));
                    if let Ok(joined) = env::join_paths(paths) {
                        cmd.env("PATH", joined);
                    }
                    cmd.env("RUSTFLAGS", format!("-L {WASI_LIBC}"));
                }
                cmd.args([
                    "build",
                    "--release",
                    "--target",
                    target.triple(),
                    "-Zbuild-std=std,panic_abort",
                ]);
                cmd
            }
        }
    }
}

/// Debian's wasi-libc (preview 1), which wasm32-wasip2 std links against.
const WASI_LIBC: &str = "/usr/lib/wasm32-wasi";

/// Whether `rustc`'s sysroot holds a standard library for `triple`.
fn has_target_std(rustc: &Path, triple: &str) -> bool {
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    if !out.status.success() {
        return false;
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let lib = sysroot.join("lib/rustlib").join(triple).join("lib");
    fs::read_dir(lib).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
    })
}

fn find_wasm_ld() -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    for name in [
        "wasm-ld-19",
        "wasm-ld-20",
        "wasm-ld-21",
        "wasm-ld-22",
        "wasm-ld",
    ] {
        for dir in env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// A component produced by [`build_components`].
#[derive(Debug, Clone)]
pub struct BuiltComponent {
    /// The guest package's name, e.g. `cbx-provider-daytona`.
    pub package: String,
    /// Where the component was written.
    pub path: PathBuf,
}

/// Builds every package of the guest workspace at `workspace` into components in `out_dir`.
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

/// Like [`build_components`], for `target`.
pub fn build_components_for(
    target: GuestTarget,
    workspace: &Path,
    packages: &[&str],
    target_dir: &Path,
    out_dir: &Path,
) -> Result<Vec<BuiltComponent>, String> {
    let toolchain = Toolchain::detect_for(target)?;
    let mut cmd = toolchain.command_for(target);
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
            "building the guest crates in {} failed ({status}); see the cargo output above",
            workspace.display()
        ));
    }
    fs::create_dir_all(out_dir).map_err(|e| format!("create {}: {e}", out_dir.display()))?;
    let mut built = Vec::new();
    for package in packages {
        let module_path = target_dir
            .join(target.triple())
            .join("release")
            .join(format!("{}.wasm", package.replace('-', "_")));
        let module =
            fs::read(&module_path).map_err(|e| format!("read {}: {e}", module_path.display()))?;
        let component = match target {
            GuestTarget::Core => encode_component(&module)
                .map_err(|e| format!("make a component of {}: {e}", module_path.display()))?,
            // The wasip2 linker (wasm-component-ld) already made a component.
            GuestTarget::WasiP2 => module,
        };
        let path = out_dir.join(format!("{package}.wasm"));
        fs::write(&path, component).map_err(|e| format!("write {}: {e}", path.display()))?;
        built.push(BuiltComponent {
            package: package.to_string(),
            path,
        });
    }
    Ok(built)
}

/// Wraps a core module that carries wit-bindgen's component-type section into a component.
pub fn encode_component(module: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .module(module)
        .map_err(|e| format!("{e:#}"))?
        .validate(true)
        .encode()
        .map_err(|e| format!("{e:#}"))
}

/// Removes the variables the outer cargo set for this build script, so they cannot leak into
/// the nested build (target, flags, wrappers, profile).
fn scrub_env(cmd: &mut Command) {
    let keep = |name: &str| {
        name == "CARGO_HOME"
            || name == "CARGO_MAKEFLAGS"
            || name.starts_with("CARGO_NET_")
            || name.starts_with("CARGO_HTTP_")
            || name.starts_with("CARGO_REGISTRIES_")
            || name.starts_with("CARGO_REGISTRY_")
            || name.starts_with("CARGO_SOURCE_")
    };
    let drop: Vec<OsString> = env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| {
            let k = k.to_string_lossy();
            (k.starts_with("CARGO") && !keep(&k))
                || k.starts_with("RUSTC")
                || k.starts_with("RUSTFLAGS")
                || k.starts_with("RUSTDOC")
                || k == "RUSTUP_TOOLCHAIN"
                || matches!(
                    &*k,
                    "TARGET" | "HOST" | "OUT_DIR" | "OPT_LEVEL" | "DEBUG" | "PROFILE" | "NUM_JOBS"
                )
        })
        .collect();
    for k in drop {
        cmd.env_remove(k);
    }
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
