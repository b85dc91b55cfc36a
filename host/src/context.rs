//! One invocation's context: cbx's directories, the configuration, the environment (read once,
//! here), the working directory and the repository it is in, the global flags and the
//! redactor — and, from those, the providers it loads and the lease sessions it opens.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::config::Config;
use crate::environment::Environment;
use crate::lease::session::Session;
use crate::paths::Dirs;
use crate::provenance::Value;
use crate::provider::registry::{self, ProviderPackage};
use crate::provider::{Capability, Configured, Found, Loaded, Pending, Runtime, api};
use crate::redact::Redactor;

/// The flags every command accepts, as the library needs them.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--provider`.
    pub provider: Option<String>,
    /// `--option NAME=VALUE`, in order.
    pub options: Vec<(String, String)>,
    /// `--endpoint NAME=URL`, in order.
    pub endpoints: Vec<(String, String)>,
    /// `--quiet`: no progress.
    pub quiet: bool,
    /// `-v` counted: more detail on stderr.
    pub verbose: u8,
}

/// Everything a command needs.
pub struct Context {
    /// cbx's directories.
    pub dirs: Dirs,
    /// User and repository configuration.
    pub config: Config,
    /// The process environment, read once.
    pub env: Environment,
    /// The working directory.
    pub cwd: PathBuf,
    /// The git work tree the working directory is in, if any.
    repo_root: Option<PathBuf>,
    /// Global flags.
    pub flags: Flags,
    /// Scrubs secrets from output.
    pub redactor: Redactor,
}

impl Context {
    /// The context of a process started with `env` and `flags`: cbx's directories, the working
    /// directory, its repository and the configuration that governs it.
    pub fn new(env: Environment, flags: Flags, redactor: Redactor) -> Result<Context> {
        let dirs = Dirs::from_env()?;
        let cwd = std::env::current_dir().context("read the current directory")?;
        // A repository git cannot be asked about is no repository here; `cbx run` asks again
        // and reports why (`require_repo_root`).
        let repo_root = crate::sync::find_repo_root(&cwd, &env).unwrap_or(None);
        let config = Config::load(&dirs.config_file(), &cwd, repo_root.as_deref())?;
        Ok(Context {
            dirs,
            config,
            env,
            cwd,
            repo_root,
            flags,
            redactor,
        })
    }

    /// An environment variable (set and valid UTF-8).
    pub fn var(&self, name: &str) -> Option<String> {
        self.env.var(name)
    }

    /// The git work tree the working directory is in, if any.
    pub fn repo_root(&self) -> Option<&Path> {
        self.repo_root.as_deref()
    }

    /// The git work tree the working directory is in; a sync failure (exit 6) saying why there
    /// is none.
    pub fn require_repo_root(&self) -> Result<&Path> {
        match &self.repo_root {
            Some(root) => Ok(root),
            None => Err(crate::sync::repo_root(&self.cwd, &self.env)
                .err()
                .unwrap_or_else(|| anyhow::anyhow!("the repository vanished"))),
        }
    }

    /// The provider this command uses, and where that choice came from.
    pub fn provider(&self) -> Value<String> {
        self.config
            .provider(self.flags.provider.as_deref(), &self.env)
    }

    /// The provider this command uses.
    pub fn provider_name(&self) -> String {
        self.provider().val
    }

    /// The provider for a command naming lease `ident`: `--provider` if given, else the
    /// provider of the one local claim matching it, else the configured one.
    pub fn provider_for(&self, ident: &str) -> Result<String> {
        if self.flags.provider.is_some() {
            return Ok(self.provider_name());
        }
        let claims = crate::lease::claims::Claims::new(self.dirs.claims());
        let mut providers: Vec<String> = claims
            .matching(None, ident)?
            .into_iter()
            .map(|c| c.provider)
            .collect();
        providers.dedup();
        Ok(match providers.as_slice() {
            [one] => one.clone(),
            _ => self.provider_name(),
        })
    }

    /// What loading providers in this invocation shares.
    pub fn runtime(&self) -> Runtime {
        Runtime::new(&self.dirs, &self.env, &self.redactor)
    }

    /// Loads provider `name` under the grant the user's configuration and flags give it.
    pub async fn load(&self, name: &str) -> Result<Loaded> {
        let choices = self
            .config
            .endpoint_overrides(name, &self.flags.endpoints)?;
        self.runtime().load(name, &choices).await
    }

    /// Provider `name` for review: under its grant if approved, else under an empty grant with
    /// the reason (see [`Runtime::review`]).
    pub async fn review(&self, name: &str) -> Result<crate::provider::load::Review> {
        let choices = self
            .config
            .endpoint_overrides(name, &self.flags.endpoints)?;
        self.runtime().review(name, &choices).await
    }

    /// `loaded`'s options, from its defaults, the configuration, `CBX_<PROVIDER>_…` variables
    /// and `--option` flags, each with where it came from.
    pub fn options(&self, loaded: &Loaded) -> Result<Vec<(String, Value<String>)>> {
        self.options_of(loaded.info(), loaded.package())
    }

    /// The options of the provider of `package`, which described itself as `info`.
    fn options_of(
        &self,
        info: &api::ProviderInfo,
        package: &ProviderPackage,
    ) -> Result<Vec<(String, Value<String>)>> {
        let name = &info.name;
        self.config.options(
            name,
            &info.options,
            &package.manifest.user_only_options,
            &self.flags.options,
            &self.option_vars(name),
        )
    }

    /// The environment, minus `CBX_<OTHER>_…` variables of another provider whose name extends
    /// this one's (`CBX_DAYTONA_PY_SNAPSHOT` is daytona-py's, not daytona's `py-snapshot`).
    fn option_vars(&self, provider: &str) -> Vec<(String, String)> {
        let prefix = |p: &str| format!("CBX_{}_", p.to_ascii_uppercase().replace('-', "_"));
        let own = prefix(provider);
        // Names only: reading (and hashing) every installed component here would cost every
        // lease command, the warm path's included.
        let longer: Vec<String> = registry::names(&self.dirs.installed_providers())
            .iter()
            .map(|p| prefix(p))
            .filter(|p| p.len() > own.len() && p.starts_with(&own))
            .collect();
        self.env
            .utf8_vars()
            .filter(|(k, _)| !longer.iter().any(|p| k.starts_with(p.as_str())))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Configures `loaded` with its resolved options (credentials required).
    pub async fn configure(&self, loaded: Loaded) -> Result<Configured> {
        let options = self.options(&loaded)?;
        loaded.configure(&options).await
    }

    /// Loads and configures provider `name` for lease operations, after finishing what
    /// interrupted cbx processes left unfinished with it (see `lease::reconcile`).
    pub async fn session(&self, name: &str) -> Result<Session> {
        let loaded = self.load(name).await?;
        let configured = self.configure(loaded).await?;
        let mut session = self.session_of(configured);
        crate::lease::reconcile::unfinished(&mut session).await;
        Ok(session)
    }

    /// [`Context::session`] for a command that may not need to call the provider at all (the
    /// warm path of `cbx run --id` and `cbx ssh`): the provider is found, its approval
    /// checked, its grant resolved, its options resolved from its cached description (see
    /// `provider::described`) and its credentials required — all as for a loaded one — and
    /// its profile is the one it answered the same settings with before; it is loaded only on
    /// its first call. Without a cached description, or with settings it was never
    /// configured with (it may refuse them), it is loaded now, as is one that has intents to
    /// finish (loaded, then `lease::reconcile` as always).
    ///
    /// Credentials are required although the warm path sends nothing with them: a command
    /// then fails or works the same whether or not its connection falls back to the
    /// provider, and the check is a lookup in the environment.
    pub async fn session_on_demand(&self, name: &str) -> Result<Session> {
        let choices = self
            .config
            .endpoint_overrides(name, &self.flags.endpoints)?;
        let runtime = self.runtime();
        let found = runtime.find(name, &choices)?;
        let Some(described) = runtime.described(&found) else {
            tracing::debug!("no cached description of provider {name}: loading it");
            return self.session_loaded(&runtime, found).await;
        };
        let options = self.options_of(&described.info, found.package())?;
        let Some(profile) = runtime.configured_before(&found, &options) else {
            tracing::debug!(
                "provider {name} was not configured with these settings before: loading it"
            );
            return self.session_loaded(&runtime, found).await;
        };
        let pending = Pending::new(runtime, found, described, options, profile)?;
        let mut session = Session::pending(
            pending,
            self.dirs.clone(),
            self.env.clone(),
            self.flags.quiet,
        );
        if crate::lease::reconcile::anything_unfinished(&session) {
            session.configured().await?;
            crate::lease::reconcile::unfinished(&mut session).await;
        }
        Ok(session)
    }

    /// [`Context::session`] of a provider found already.
    async fn session_loaded(&self, runtime: &Runtime, found: Found) -> Result<Session> {
        let loaded = runtime.load_found(found).await?;
        let mut session = self.session_of(self.configure(loaded).await?);
        crate::lease::reconcile::unfinished(&mut session).await;
        Ok(session)
    }

    /// [`Context::session`] for a command that needs `capability`: a provider without it
    /// fails (exit 2, naming both) right after loading, before credentials are read or
    /// anything is done.
    pub async fn session_requiring(
        &self,
        name: &str,
        capability: Capability,
        command: &str,
    ) -> Result<Session> {
        let loaded = self.load(name).await?;
        loaded.require(capability, command)?;
        let configured = self.configure(loaded).await?;
        let mut session = self.session_of(configured);
        crate::lease::reconcile::unfinished(&mut session).await;
        Ok(session)
    }

    /// Loads and configures `package` (a component file, not installed) for `cbx providers
    /// test --component`: under its manifest's grant, narrowed by the user's configuration and
    /// flags as an installed provider's would be.
    pub async fn session_of_file(&self, package: ProviderPackage) -> Result<Session> {
        let choices = self
            .config
            .endpoint_overrides(package.name(), &self.flags.endpoints)?;
        let loaded = self.runtime().load_file(package, &choices).await?;
        let configured = self.configure(loaded).await?;
        let mut session = self.session_of(configured);
        crate::lease::reconcile::unfinished(&mut session).await;
        Ok(session)
    }

    /// A lease session of a configured provider.
    pub fn session_of(&self, configured: Configured) -> Session {
        Session::new(
            configured,
            self.dirs.clone(),
            self.env.clone(),
            self.flags.quiet,
        )
    }
}
