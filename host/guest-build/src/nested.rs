//! The nested `cargo build` that compiles a guest workspace for wasm, following a [`Plan`],
//! with the outer build's variables removed so they cannot leak into it.

use std::env;
use std::ffi::OsString;
use std::process::Command;

use crate::toolchain::{Plan, Route};

/// The `cargo build --release --target …` command for `plan` (the caller adds the manifest,
/// packages and target directory).
pub fn cargo_build(plan: &Plan) -> Command {
    let env_triple = plan.triple.to_uppercase().replace('-', "_");
    let mut cmd = match &plan.route {
        Route::Sysroot { cargo, rustc } => {
            let mut cmd = Command::new(cargo);
            scrub_env(&mut cmd);
            cmd.env("RUSTC", rustc);
            cmd.args(["build", "--release", "--target", plan.triple]);
            cmd
        }
        Route::DebianBuildStd { cargo, rustc, libs } => {
            let mut cmd = Command::new(cargo);
            scrub_env(&mut cmd);
            cmd.env("RUSTC", rustc).env("RUSTC_BOOTSTRAP", "1");
            if let Some(libs) = libs {
                // Debian's wasi-libc: the C library and start files std links against.
                let flags = format!("-L {}", libs.display());
                cmd.env(format!("CARGO_TARGET_{env_triple}_RUSTFLAGS"), flags);
            }
            cmd.args([
                "build",
                "--release",
                "--target",
                plan.triple,
                "-Zbuild-std=std,panic_abort",
            ]);
            cmd
        }
    };
    if let Some(linker) = &plan.linker {
        cmd.env(format!("CARGO_TARGET_{env_triple}_LINKER"), linker);
    }
    cmd
}

/// Removes the variables the outer cargo set for this build script, so they cannot leak into
/// the nested build (target, flags, wrappers, profile, toolchain).
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::toolchain::Finish;

    fn env_of(cmd: &Command, name: &str) -> Option<String> {
        cmd.get_envs()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
    }

    #[test]
    fn the_debian_wasi_route_links_with_wasm_ld_and_wasi_libc() {
        let plan = Plan {
            route: Route::DebianBuildStd {
                cargo: "/usr/bin/cargo".into(),
                rustc: "/usr/bin/rustc".into(),
                libs: Some("/usr/lib/wasm32-wasi".into()),
            },
            triple: "wasm32-wasip1",
            linker: Some("/usr/bin/wasm-ld-19".into()),
            finish: Finish::Adapt,
        };
        let cmd = cargo_build(&plan);
        assert_eq!(cmd.get_program(), "/usr/bin/cargo");
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(
            args,
            [
                "build",
                "--release",
                "--target",
                "wasm32-wasip1",
                "-Zbuild-std=std,panic_abort"
            ]
        );
        assert_eq!(env_of(&cmd, "RUSTC").unwrap(), "/usr/bin/rustc");
        assert_eq!(env_of(&cmd, "RUSTC_BOOTSTRAP").unwrap(), "1");
        assert_eq!(
            env_of(&cmd, "CARGO_TARGET_WASM32_WASIP1_LINKER").unwrap(),
            "/usr/bin/wasm-ld-19"
        );
        assert_eq!(
            env_of(&cmd, "CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS").unwrap(),
            "-L /usr/lib/wasm32-wasi"
        );
    }

    #[test]
    fn the_sysroot_route_names_its_rustc_and_component_linker() {
        let linker = PathBuf::from("/t/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld");
        let plan = Plan {
            route: Route::Sysroot {
                cargo: "/t/bin/cargo".into(),
                rustc: "/t/bin/rustc".into(),
            },
            triple: "wasm32-wasip2",
            linker: Some(linker.clone()),
            finish: Finish::AsIs,
        };
        let cmd = cargo_build(&plan);
        assert_eq!(cmd.get_program(), "/t/bin/cargo");
        assert!(
            !cmd.get_args()
                .any(|a| a.to_string_lossy().starts_with("-Z"))
        );
        assert_eq!(env_of(&cmd, "RUSTC").unwrap(), "/t/bin/rustc");
        assert_eq!(
            env_of(&cmd, "CARGO_TARGET_WASM32_WASIP2_LINKER").unwrap(),
            linker.to_string_lossy()
        );
        assert!(env_of(&cmd, "RUSTC_BOOTSTRAP").is_none());
    }
}
