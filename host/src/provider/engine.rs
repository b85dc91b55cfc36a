//! The wasmtime engine and the on-disk cache of compiled components.
//!
//! Compiled code is cached in a host-owned directory (0700), keyed by the component's sha256
//! and the engine's compatibility hash. Only files this cache wrote are ever deserialized;
//! precompiled code shipped by a provider is refused.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use wasmtime::component::Component;

use super::limits::TICK;
use crate::paths;

/// A wasmtime engine configured for providers, with a compiled-component cache.
#[derive(Clone)]
pub struct Engine {
    engine: wasmtime::Engine,
    cache_dir: Option<PathBuf>,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compilation {
    /// Deserialized from the cache.
    Cached,
    /// Compiled now (and cached if a cache directory is set).
    Compiled,
}

impl Engine {
    /// An engine caching compiled components in `cache_dir` (none: no caching).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Engine> {
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(1 << 20)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = wasmtime::Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("configure the WebAssembly engine")?;
        spawn_epoch_ticker(&engine);
        Ok(Engine { engine, cache_dir })
    }

    /// The underlying wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// Compiles `bytes` (a component) or loads its compiled form from the cache.
    pub fn load(&self, bytes: &[u8]) -> Result<(Component, Compilation)> {
        self.load_digested(bytes, &crate::digest::sha256_hex(bytes))
    }

    /// [`Engine::load`] for a component whose hex sha256 is already known (a provider
    /// package's, computed when it was read, or when cbx was built for a built-in one), so it
    /// is not hashed again. `digest` must be the sha256 of `bytes`: it names the cache entry.
    pub fn load_digested(&self, bytes: &[u8], digest: &str) -> Result<(Component, Compilation)> {
        if wasmtime::Engine::detect_precompiled(bytes).is_some() {
            bail!(
                "the file holds precompiled native code; cbx loads only WebAssembly components and compiles them itself"
            );
        }
        let path = self.cache_path(digest);
        if let Some(path) = &path
            && trusted_cache_file(path)
        {
            // SAFETY: the file was written by `serialize` below into a directory only this
            // user can write (checked by `trusted_cache_file`), and its name binds it to the
            // component's digest and this engine's compatibility hash.
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(component) => return Ok((component, Compilation::Cached)),
                Err(e) => tracing::debug!("ignoring unusable cache entry {}: {e}", path.display()),
            }
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(anyhow::Error::from)
            .context("compile the provider component")?;
        if let Some(path) = &path
            && let Err(e) = self.store(&component, path)
        {
            tracing::debug!("could not cache compiled component: {e:#}");
        }
        Ok((component, Compilation::Compiled))
    }

    fn store(&self, component: &Component, path: &Path) -> Result<()> {
        let bytes = component.serialize().map_err(anyhow::Error::from)?;
        paths::write_private_atomic(path, &bytes)
    }

    fn cache_path(&self, digest: &str) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        Some(dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish())))
    }
}

/// Whether `path` is a cache file only its owner can write, in a directory only its owner
/// can reach (the rule for every cache whose contents cbx trusts: compiled components,
/// provider descriptions).
pub(crate) fn trusted_cache_file(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (Ok(file), Some(Ok(dir))) = (
            std::fs::symlink_metadata(path),
            path.parent().map(std::fs::metadata),
        ) else {
            return false;
        };
        file.is_file()
            && file.mode() & 0o022 == 0
            && dir.mode() & 0o077 == 0
            && file.uid() == dir.uid()
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// Advances the engine's epoch every [`TICK`] for as long as the engine lives.
fn spawn_epoch_ticker(engine: &wasmtime::Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("cbx-epoch".into())
        .spawn(move || {
            let mut next = Instant::now() + TICK;
            loop {
                std::thread::sleep(
                    next.saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1)),
                );
                next += TICK;
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .expect("spawn the epoch thread");
}
