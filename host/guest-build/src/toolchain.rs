//! Finds how this machine can compile a guest crate for wasm: with the running Rust toolchain
//! when its sysroot has the target's standard library (rustup), else with Debian's offline
//! `rustc-web` packages through `-Zbuild-std`. When neither can, it says exactly what is
//! missing and how to install it.
//!
//! Only two places are searched, never `PATH`: the running toolchain's own sysroot and the
//! fixed paths where Debian's packages put their files.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a guest crate is compiled into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestTarget {
    /// A core module for `wasm32-unknown-unknown`, wrapped into a component here. It imports
    /// nothing but its own WIT interfaces.
    Core,
    /// A component that imports WASI, as third parties usually build them: natively for
    /// `wasm32-wasip2` where the toolchain has that target and its linker, otherwise for
    /// `wasm32-wasip1` and adapted to WASI 0.2 with the preview-1 adapter here.
    Wasi,
}

impl GuestTarget {
    /// How build messages name this kind of guest.
    pub fn noun(self) -> &'static str {
        match self {
            GuestTarget::Core => "core wasm (wasm32-unknown-unknown)",
            GuestTarget::Wasi => "WASI (wasm32-wasip1 or wasm32-wasip2)",
        }
    }
}

/// The rustc targets guests are compiled for.
pub const CORE_TRIPLE: &str = "wasm32-unknown-unknown";
/// WASI 0.2, linked into a component by `wasm-component-ld`.
pub const WASIP2_TRIPLE: &str = "wasm32-wasip2";
/// WASI preview 1, a core module adapted into a component here.
pub const WASIP1_TRIPLE: &str = "wasm32-wasip1";

/// What the machine offers for compiling guests.
#[derive(Debug, Clone)]
pub struct Environment {
    /// The running toolchain's cargo (`$CARGO` in a build script).
    pub cargo: PathBuf,
    /// The running toolchain's rustc (`$RUSTC` in a build script).
    pub rustc: PathBuf,
    /// That rustc's sysroot, when it answered.
    pub sysroot: Option<PathBuf>,
    /// That rustc's host triple, when it answered.
    pub host: Option<String>,
    /// The file-system root under which Debian's packages are looked for: `/` (tests use a
    /// temporary directory).
    pub root: PathBuf,
}

impl Environment {
    /// The environment of the running build.
    pub fn current() -> Environment {
        let rustc = env::var_os("RUSTC").map_or_else(|| PathBuf::from("rustc"), PathBuf::from);
        let cargo = env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
        let sysroot = rustc_says(&rustc, &["--print", "sysroot"]).map(PathBuf::from);
        let host = rustc_says(&rustc, &["-vV"]).and_then(|v| {
            v.lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        });
        Environment {
            cargo,
            rustc,
            sysroot,
            host,
            root: PathBuf::from("/"),
        }
    }

    /// Whether the running toolchain's sysroot holds a standard library for `triple`.
    fn has_std(&self, triple: &str) -> bool {
        let Some(sysroot) = &self.sysroot else {
            return false;
        };
        let lib = sysroot.join("lib/rustlib").join(triple).join("lib");
        fs::read_dir(lib).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        })
    }

    /// The `wasm-component-ld` shipped in the running toolchain's sysroot, if any.
    fn sysroot_component_linker(&self) -> Option<PathBuf> {
        let path = self
            .sysroot
            .as_ref()?
            .join("lib/rustlib")
            .join(self.host.as_ref()?)
            .join("bin/wasm-component-ld");
        path.is_file().then_some(path)
    }

    /// The running toolchain's own rustc binary, so a nested build uses exactly the toolchain
    /// whose sysroot was inspected (not whatever a `rustc` proxy would pick).
    fn sysroot_rustc(&self) -> PathBuf {
        self.sysroot
            .as_ref()
            .map(|s| s.join("bin/rustc"))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| self.rustc.clone())
    }

    fn debian(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

/// Runs `rustc ARGS` and returns its trimmed stdout, if it succeeded.
fn rustc_says(rustc: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(rustc).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Which compiler a guest build runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The running toolchain, whose sysroot has the target's standard library (rustup).
    Sysroot { cargo: PathBuf, rustc: PathBuf },
    /// Debian's `rustc-web` and `cargo-web`, building the standard library from
    /// `rust-web-src` (`-Zbuild-std`); `libs` is where the C runtime of WASI guests is.
    DebianBuildStd {
        cargo: PathBuf,
        rustc: PathBuf,
        libs: Option<PathBuf>,
    },
}

/// What turns the linker's output into a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// A core module carrying wit-bindgen's component type: wrapped by `wit-component`.
    Encode,
    /// A WASI preview-1 module: wrapped with the preview-1 reactor adapter.
    Adapt,
    /// Already a component (`wasm-component-ld` made it).
    AsIs,
}

/// How one kind of guest gets built on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The compiler.
    pub route: Route,
    /// The rustc target.
    pub triple: &'static str,
    /// The linker, when the target's default one is not used.
    pub linker: Option<PathBuf>,
    /// What makes a component of the linker's output.
    pub finish: Finish,
}

/// Debian's packages: (package, file it installs, needed for WASI guests only).
const DEBIAN_FILES: &[(&str, &str, bool)] = &[
    ("rustc-web", "/usr/bin/rustc", false),
    ("cargo-web", "/usr/bin/cargo", false),
    (
        "rust-web-src",
        "/usr/lib/rustlib/src/rust/library/std",
        false,
    ),
    ("wasi-libc", "/usr/lib/wasm32-wasi/libc.a", true),
];
/// Debian's wasm linkers (lld-19 first; the package list of tests/setup.sh has lld-19).
const DEBIAN_WASM_LD: &[(&str, &str)] = &[
    ("lld-19", "/usr/bin/wasm-ld-19"),
    ("lld-20", "/usr/bin/wasm-ld-20"),
    ("lld-21", "/usr/bin/wasm-ld-21"),
    ("lld-22", "/usr/bin/wasm-ld-22"),
];

impl Plan {
    /// Chooses how to build guests of kind `target` in `env`, or explains what to install.
    pub fn find(target: GuestTarget, env: &Environment) -> Result<Plan, String> {
        if let Some(plan) = Plan::from_sysroot(target, env) {
            return Ok(plan);
        }
        let missing = debian_missing(target, env);
        if missing.is_empty() {
            let linker = DEBIAN_WASM_LD
                .iter()
                .map(|(_, p)| env.debian(p))
                .find(|p| p.is_file());
            let (triple, finish) = match target {
                GuestTarget::Core => (CORE_TRIPLE, Finish::Encode),
                GuestTarget::Wasi => (WASIP1_TRIPLE, Finish::Adapt),
            };
            return Ok(Plan {
                route: Route::DebianBuildStd {
                    cargo: env.debian("/usr/bin/cargo"),
                    rustc: env.debian("/usr/bin/rustc"),
                    libs: (target == GuestTarget::Wasi).then(|| env.debian("/usr/lib/wasm32-wasi")),
                },
                triple,
                linker,
                finish,
            });
        }
        Err(install_hint(target, env, &missing))
    }

    /// The plan on the running toolchain, when its sysroot can build `target`.
    fn from_sysroot(target: GuestTarget, env: &Environment) -> Option<Plan> {
        let route = Route::Sysroot {
            cargo: env.cargo.clone(),
            rustc: env.sysroot_rustc(),
        };
        let plan = |triple, linker, finish| Plan {
            route: route.clone(),
            triple,
            linker,
            finish,
        };
        match target {
            GuestTarget::Core => env
                .has_std(CORE_TRIPLE)
                .then(|| plan(CORE_TRIPLE, None, Finish::Encode)),
            GuestTarget::Wasi => {
                if env.has_std(WASIP2_TRIPLE)
                    && let Some(linker) = env.sysroot_component_linker()
                {
                    return Some(plan(WASIP2_TRIPLE, Some(linker), Finish::AsIs));
                }
                env.has_std(WASIP1_TRIPLE)
                    .then(|| plan(WASIP1_TRIPLE, None, Finish::Adapt))
            }
        }
    }

    /// One line saying how guests are built, for messages.
    pub fn describe(&self) -> String {
        let how = match &self.route {
            Route::Sysroot { rustc, .. } => format!("the toolchain of {}", rustc.display()),
            Route::DebianBuildStd { .. } => "Debian's rustc-web with -Zbuild-std".to_string(),
        };
        let finish = match self.finish {
            Finish::Encode => ", wrapped into a component",
            Finish::Adapt => ", adapted to WASI 0.2 with the preview-1 adapter",
            Finish::AsIs => "",
        };
        format!("{} with {how}{finish}", self.triple)
    }
}

/// The Debian packages the offline route lacks for `target`: (package, missing file).
fn debian_missing(target: GuestTarget, env: &Environment) -> Vec<(&'static str, &'static str)> {
    let mut missing: Vec<(&str, &str)> = DEBIAN_FILES
        .iter()
        .filter(|(_, path, wasi_only)| {
            (target == GuestTarget::Wasi || !wasi_only) && !env.debian(path).exists()
        })
        .map(|(package, path, _)| (*package, *path))
        .collect();
    if !DEBIAN_WASM_LD.iter().any(|(_, p)| env.debian(p).is_file()) {
        missing.push(DEBIAN_WASM_LD[0]);
    }
    missing
}

/// What to install when no route can build `target`.
fn install_hint(target: GuestTarget, env: &Environment, missing: &[(&str, &str)]) -> String {
    let lacks = |triples: &str| match &env.sysroot {
        Some(s) => format!(
            "the running toolchain ({}) has no {triples} standard library",
            s.display()
        ),
        None => "the running rustc did not name its sysroot".to_string(),
    };
    let rustup = match target {
        GuestTarget::Core => format!(
            "  rustup target add {CORE_TRIPLE}\n      ({})",
            lacks(CORE_TRIPLE)
        ),
        GuestTarget::Wasi => {
            let why = if env.has_std(WASIP2_TRIPLE) {
                format!(
                    "the running toolchain has {WASIP2_TRIPLE} but not its linker \
                     wasm-component-ld, and {}",
                    lacks(WASIP1_TRIPLE)
                )
            } else {
                lacks(&format!("{WASIP2_TRIPLE} or {WASIP1_TRIPLE}"))
            };
            format!("  rustup target add {WASIP1_TRIPLE}      (or {WASIP2_TRIPLE})\n      ({why})")
        }
    };
    let packages: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
    let files: Vec<String> = missing
        .iter()
        .map(|(p, f)| format!("{f} from {p}"))
        .collect();
    format!(
        "cannot build {} guests: no Rust toolchain here compiles for that target. Install one \
         of:\n{rustup}\n  apt-get install {}      (Debian 12, works offline)\n      (missing: \
         {})\ntests/setup.sh installs the Debian packages and checks that guests build.",
        target.noun(),
        packages.join(" "),
        files.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine laid out under a temporary directory.
    struct Fake {
        dir: tempfile::TempDir,
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn file(&self, path: &str) -> &Fake {
            let p = self.dir.path().join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, b"").unwrap();
            self
        }

        fn debian(&self, wasi_libc: bool) -> &Fake {
            self.file("/usr/bin/rustc")
                .file("/usr/bin/cargo")
                .file("/usr/lib/rustlib/src/rust/library/std/Cargo.toml")
                .file("/usr/bin/wasm-ld-19");
            if wasi_libc {
                self.file("/usr/lib/wasm32-wasi/libc.a");
            }
            self
        }

        fn std(&self, triple: &str) -> &Fake {
            self.file(&format!(
                "/rustup/lib/rustlib/{triple}/lib/libstd-0123.rlib"
            ))
        }

        fn env(&self) -> Environment {
            let root = self.dir.path().to_path_buf();
            Environment {
                cargo: root.join("rustup/bin/cargo"),
                rustc: root.join("rustup/bin/rustc"),
                sysroot: Some(root.join("rustup")),
                host: Some("x86_64-unknown-linux-gnu".into()),
                root,
            }
        }
    }

    const COMPONENT_LD: &str = "/rustup/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld";

    #[test]
    fn a_sysroot_with_the_target_is_used_natively() {
        let fake = Fake::new();
        fake.std(CORE_TRIPLE).debian(true);
        let plan = Plan::find(GuestTarget::Core, &fake.env()).unwrap();
        assert_eq!(plan.triple, CORE_TRIPLE);
        assert!(matches!(plan.route, Route::Sysroot { .. }), "{plan:?}");
        assert_eq!(plan.finish, Finish::Encode);
    }

    #[test]
    fn wasip2_is_linked_with_the_sysroots_own_component_linker() {
        let fake = Fake::new();
        fake.std(WASIP2_TRIPLE)
            .std(WASIP1_TRIPLE)
            .file(COMPONENT_LD);
        let plan = Plan::find(GuestTarget::Wasi, &fake.env()).unwrap();
        assert_eq!(plan.triple, WASIP2_TRIPLE);
        assert_eq!(plan.finish, Finish::AsIs);
        assert_eq!(
            plan.linker.unwrap(),
            fake.dir.path().join(COMPONENT_LD.trim_start_matches('/'))
        );
    }

    #[test]
    fn wasip2_without_its_linker_falls_back_to_wasip1_and_the_adapter() {
        let fake = Fake::new();
        fake.std(WASIP2_TRIPLE).std(WASIP1_TRIPLE);
        let plan = Plan::find(GuestTarget::Wasi, &fake.env()).unwrap();
        assert_eq!(plan.triple, WASIP1_TRIPLE);
        assert_eq!(plan.finish, Finish::Adapt);
        assert!(matches!(plan.route, Route::Sysroot { .. }));
    }

    #[test]
    fn without_wasm_targets_debians_packages_build_wasip1_with_the_adapter() {
        let fake = Fake::new();
        fake.debian(true);
        let env = fake.env();
        let plan = Plan::find(GuestTarget::Wasi, &env).unwrap();
        assert_eq!(plan.triple, WASIP1_TRIPLE);
        assert_eq!(plan.finish, Finish::Adapt);
        assert_eq!(plan.linker, Some(env.debian("/usr/bin/wasm-ld-19")));
        assert_eq!(
            plan.route,
            Route::DebianBuildStd {
                cargo: env.debian("/usr/bin/cargo"),
                rustc: env.debian("/usr/bin/rustc"),
                libs: Some(env.debian("/usr/lib/wasm32-wasi")),
            }
        );
        let core = Plan::find(GuestTarget::Core, &env).unwrap();
        assert_eq!((core.triple, core.finish), (CORE_TRIPLE, Finish::Encode));
    }

    #[test]
    fn a_missing_wasi_libc_is_named_with_its_package() {
        let fake = Fake::new();
        fake.debian(false);
        let env = fake.env();
        assert!(Plan::find(GuestTarget::Core, &env).is_ok());
        let err = Plan::find(GuestTarget::Wasi, &env).unwrap_err();
        assert!(
            err.starts_with("cannot build WASI (wasm32-wasip1 or wasm32-wasip2) guests"),
            "{err}"
        );
        assert!(err.contains("apt-get install wasi-libc "), "{err}");
        assert!(
            err.contains("missing: /usr/lib/wasm32-wasi/libc.a from wasi-libc"),
            "{err}"
        );
        assert!(err.contains("rustup target add wasm32-wasip1"), "{err}");
    }

    #[test]
    fn with_nothing_installed_every_package_and_the_rustup_target_are_named() {
        let fake = Fake::new();
        let err = Plan::find(GuestTarget::Core, &fake.env()).unwrap_err();
        assert!(
            err.contains("rustup target add wasm32-unknown-unknown"),
            "{err}"
        );
        assert!(
            err.contains("apt-get install rustc-web cargo-web rust-web-src lld-19 "),
            "{err}"
        );
        assert!(!err.contains("wasi-libc"), "{err}");
        assert!(err.contains("/usr/bin/wasm-ld-19 from lld-19"), "{err}");
        assert!(err.contains("tests/setup.sh"), "{err}");
    }

    #[test]
    fn a_wasip2_target_without_its_linker_is_said_so() {
        let fake = Fake::new();
        fake.std(WASIP2_TRIPLE);
        let err = Plan::find(GuestTarget::Wasi, &fake.env()).unwrap_err();
        assert!(
            err.contains(
                "has wasm32-wasip2 but not its linker wasm-component-ld, and the \
                 running toolchain"
            ),
            "{err}"
        );
    }
}
