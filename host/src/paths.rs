//! Where cbx keeps its files: config (settings, approvals), state (claims, intents, SSH access,
//! sync records, audit log), data (installed providers) and cache (compiled components); and
//! the atomic, private (and, for records of what exists, durable) way cbx writes them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use etcetera::BaseStrategy;

/// cbx's directories for one user.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// User configuration: `$XDG_CONFIG_HOME/cbx` (`config.toml`, installed providers).
    pub config: PathBuf,
    /// Durable state: `$XDG_STATE_HOME/cbx` (claims, secrets, audit log).
    pub state: PathBuf,
    /// Disposable cache: `$XDG_CACHE_HOME/cbx` (compiled components).
    pub cache: PathBuf,
    /// Installed data: `$XDG_DATA_HOME/cbx` (installed providers).
    pub data: PathBuf,
}

impl Dirs {
    /// The XDG directories of the current user.
    pub fn from_env() -> Result<Dirs> {
        let base = etcetera::choose_base_strategy()
            .context("cannot find your home directory (set HOME)")?;
        let state = base
            .state_dir()
            .unwrap_or_else(|| base.home_dir().join(".local/state"));
        Ok(Dirs {
            config: base.config_dir().join("cbx"),
            state: state.join("cbx"),
            cache: base.cache_dir().join("cbx"),
            data: base.data_dir().join("cbx"),
        })
    }

    /// The user configuration file.
    pub fn config_file(&self) -> PathBuf {
        self.config.join("config.toml")
    }

    /// Directory of local lease claims.
    pub fn claims(&self) -> PathBuf {
        self.state.join("claims")
    }

    /// Directory of intents: what cbx is about to create, recorded before it asks.
    pub fn intents(&self) -> PathBuf {
        self.state.join("intents")
    }

    /// Directory of secret files (cached SSH access, ssh configs); 0700, files 0600.
    pub fn secrets(&self) -> PathBuf {
        self.state.join("secrets")
    }

    /// The file recording which providers the user approved, with what.
    pub fn grants_file(&self) -> PathBuf {
        self.config.join("grants.toml")
    }

    /// Directory of installed providers, one subdirectory each.
    pub fn installed_providers(&self) -> PathBuf {
        self.data.join("providers")
    }

    /// The audit log of provider activity.
    pub fn audit_log(&self) -> PathBuf {
        self.state.join("audit.jsonl")
    }

    /// Directory of compiled components.
    pub fn component_cache(&self) -> PathBuf {
        self.cache.join("components")
    }

    /// Directory of providers' cached descriptions (`provider::described`).
    pub fn descriptions(&self) -> PathBuf {
        self.cache.join("descriptions")
    }
}

/// Creates `dir` (and parents) and restricts it to its owner (0700).
pub fn private_dir(dir: &Path) -> Result<()> {
    fs_err::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically with mode 0600: a temporary file in the same directory,
/// synced, then renamed over the target. Readers see the old or the new file, never half.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    private_dir(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("create a temporary file in {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// [`write_private_atomic`], then syncs the directory too, so the new file survives a crash
/// of the machine, not only of cbx: for records that say what exists (claims, intents).
pub fn write_private_durable(path: &Path, bytes: &[u8]) -> Result<()> {
    write_private_atomic(path, bytes)?;
    sync_parent(path)
}

/// Removes `path` (no error if absent) and syncs its directory.
pub fn remove_durable(path: &Path) -> Result<()> {
    match fs_err::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    sync_parent(path)
}

/// Syncs the directory holding `path`, making a rename or removal in it durable.
fn sync_parent(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    #[cfg(unix)]
    fs_err::File::open(dir)?
        .sync_all()
        .with_context(|| format!("sync {}", dir.display()))?;
    Ok(())
}
