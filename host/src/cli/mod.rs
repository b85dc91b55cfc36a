//! The command-line interface: parse arguments, build a [`Context`], run one command, turn its
//! result into output and an exit code.

pub mod args;
pub mod commands;
pub mod output;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::Parser;

use self::args::{Cli, Command, GlobalArgs, ProvidersCommand};
use crate::audit::{self, AuditLog};
use crate::config::Config;
use crate::error::{self, ErrorKind, Failure};
use crate::grant::Grant;
use crate::grant::approval::{Approval, Approvals};
use crate::grant::http::HttpLimits;
use crate::lease::claims::Claims;
use crate::lease::session::{RetryPolicy, Session};
use crate::paths::Dirs;
use crate::provider::ProviderEvent;
use crate::provider::api;
use crate::provider::registry::{self, Origin, ProviderPackage};
use crate::provider::{Engine, Limits, ProviderInstance};
use crate::redact::{RedactingStderr, Redactor};

/// Runs cbx with the process's arguments and environment.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let redactor = Redactor::new();
    init_tracing(cli.global.verbose, &redactor);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(cli, redactor.clone()));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            report(&err, &redactor);
            ExitCode::from(error::exit_code(&err))
        }
    }
}

fn init_tracing(verbose: u8, redactor: &Redactor) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CBX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("cbx={level},warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_writer(RedactingStderr::new(redactor.clone()))
        .try_init();
}

/// Prints an error and its hint on stderr, secrets removed.
fn report(err: &anyhow::Error, redactor: &Redactor) {
    let text = redactor.redact(&format!("{err:#}"));
    eprintln!("error: {text}");
    if let Some(Failure {
        hint: Some(hint), ..
    }) = error::failure(err)
    {
        eprintln!("hint: {}", redactor.redact(hint));
    }
}

async fn run(cli: Cli, redactor: Redactor) -> Result<u8> {
    let ctx = Context::new(cli.global, redactor)?;
    match cli.command {
        Command::Doctor(a) => commands::doctor::run(&ctx, &a).await,
        Command::Warmup(a) => commands::warmup::run(&ctx, &a).await,
        Command::List(a) => commands::list::run(&ctx, &a).await,
        Command::Status(a) => commands::status::run(&ctx, &a).await,
        Command::Stop(a) => commands::stop::run(&ctx, &a).await,
        Command::Run(a) => commands::run::run(&ctx, &a).await,
        Command::Ssh(a) => commands::ssh::run(&ctx, &a).await,
        Command::Providers(ProvidersCommand::List { json }) => {
            commands::providers::list(&ctx, json).await
        }
        Command::Providers(ProvidersCommand::Inspect { name, json }) => {
            commands::providers::inspect(&ctx, &name, json).await
        }
        Command::Providers(ProvidersCommand::Install(a)) => commands::install::run(&ctx, &a).await,
        Command::Providers(ProvidersCommand::Remove { name }) => {
            commands::install::remove(&ctx, &name).await
        }
        Command::Providers(ProvidersCommand::Audit(a)) => commands::providers::audit(&ctx, &a),
        Command::Providers(ProvidersCommand::Test {
            name,
            timeout,
            json,
        }) => {
            let timeout = crate::config::parse_duration(&timeout, "--timeout")?;
            commands::conformance::run(&ctx, &name, timeout, json).await
        }
    }
}

/// Everything a command needs: directories, configuration, flags, environment.
pub struct Context {
    /// cbx's directories.
    pub dirs: Dirs,
    /// User and repository configuration.
    pub config: Config,
    /// Global flags.
    pub global: GlobalArgs,
    /// The process environment, read once.
    pub env: BTreeMap<String, String>,
    /// The working directory.
    pub cwd: PathBuf,
    /// Scrubs secrets from output.
    pub redactor: Redactor,
}

/// A provider loaded and checked, before it is configured.
pub struct Loaded {
    /// Its package.
    pub package: ProviderPackage,
    /// Its effective grant.
    pub grant: Arc<Grant>,
    /// The engine it runs in.
    pub engine: Engine,
    /// The compiled component.
    pub component: wasmtime::component::Component,
    /// Whether it came from the cache.
    pub cached: bool,
    /// How long loading took.
    pub load_time: std::time::Duration,
    /// The instance.
    pub instance: ProviderInstance,
    /// What it says about itself.
    pub info: api::ProviderInfo,
    /// The user's approval (installed providers; none for built-in ones).
    pub approval: Option<Approval>,
}

impl Context {
    /// Reads the environment, directories and configuration.
    pub fn new(global: GlobalArgs, redactor: Redactor) -> Result<Context> {
        let dirs = Dirs::from_env()?;
        let cwd = std::env::current_dir().context("read the current directory")?;
        let config = Config::load(&dirs.config_file(), &cwd)?;
        let env = std::env::vars().collect();
        Ok(Context {
            dirs,
            config,
            global,
            env,
            cwd,
            redactor,
        })
    }

    /// An environment variable.
    pub fn var(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    /// The provider this command uses.
    pub fn provider_name(&self) -> String {
        self.config
            .provider(self.global.provider.as_deref(), &|k| self.var(k))
    }

    /// Loads provider `name`: checks its approval (installed providers), resolves its grant,
    /// compiles (or loads from cache) its component, instantiates it and asks it to describe
    /// itself.
    pub async fn load(&self, name: &str) -> Result<Loaded> {
        let package = registry::find(&self.dirs.installed_providers(), name)?;
        let approval = match package.origin {
            Origin::Builtin => None,
            Origin::File(_) => Some(Approvals::new(self.dirs.grants_file()).check(
                name,
                &package.digest,
                &package.manifest,
            )?),
        };
        let overrides = self
            .config
            .endpoint_overrides(name, &self.global.endpoints)?;
        let grant = Arc::new(Grant::resolve(
            &package.manifest,
            &overrides,
            &|k| self.var(k),
            &self.redactor,
        )?);
        self.load_package(package, grant, approval).await
    }

    /// Loads provider `name` for review (`inspect`): approved providers under their grant,
    /// others — not approved, changed, asking for more — under an empty grant, with the reason.
    pub async fn load_for_review(&self, name: &str) -> Result<(Loaded, Option<String>)> {
        let package = registry::find(&self.dirs.installed_providers(), name)?;
        if let Origin::File(_) = package.origin
            && let Err(e) = Approvals::new(self.dirs.grants_file()).check(
                name,
                &package.digest,
                &package.manifest,
            )
        {
            let empty = crate::provider::manifest::Manifest {
                endpoints: Vec::new(),
                credentials: Vec::new(),
                auth: None,
                ..package.manifest.clone()
            };
            let grant = Arc::new(Grant::resolve(
                &empty,
                &Default::default(),
                &|_| None,
                &self.redactor,
            )?);
            let loaded = self.load_package(package, grant, None).await?;
            return Ok((loaded, Some(e.to_string())));
        }
        Ok((self.load(name).await?, None))
    }

    /// Instantiates `package` under `grant`, with its activity going to the audit log.
    pub async fn load_package(
        &self,
        package: ProviderPackage,
        grant: Arc<Grant>,
        approval: Option<Approval>,
    ) -> Result<Loaded> {
        let engine = Engine::new(Some(self.dirs.component_cache()))?;
        let started = std::time::Instant::now();
        let (mut instance, component, how) = crate::provider::instantiate(
            &engine,
            &package,
            grant.clone(),
            self.redactor.clone(),
            Limits::default(),
            HttpLimits::default(),
        )?;
        let load_time = started.elapsed();
        let log = AuditLog::new(self.dirs.audit_log());
        instance.observe(Arc::new(move |event| {
            let record = match event {
                ProviderEvent::Http(e) => audit::Record::from_http(e),
                ProviderEvent::Fault {
                    provider,
                    op,
                    limit,
                    detail,
                } => audit::Record::fault(provider, op, *limit, detail),
            };
            if let Err(e) = log.append(&record) {
                tracing::warn!("could not write the audit log: {e:#}");
            }
        }));
        let info = instance
            .describe()
            .await
            .map_err(|e| anyhow::Error::new(Failure::new(ErrorKind::Provider, e.to_string())))?;
        if info.name != package.manifest.name {
            return Err(error::fail(
                ErrorKind::Provider,
                format!(
                    "the component calls itself `{}`, but its manifest says `{}`",
                    info.name, package.manifest.name
                ),
            ));
        }
        Ok(Loaded {
            package,
            grant,
            engine,
            component,
            cached: how == crate::provider::engine::Loaded::Cached,
            load_time,
            instance,
            info,
            approval,
        })
    }

    /// The environment, minus `CBX_<OTHER>_…` variables of another provider whose name extends
    /// this one's (`CBX_DAYTONA_PY_SNAPSHOT` is daytona-py's, not daytona's `py-snapshot`).
    pub fn option_vars(&self, provider: &str) -> Vec<(String, String)> {
        let prefix = |p: &str| format!("CBX_{}_", p.to_ascii_uppercase().replace('-', "_"));
        let own = prefix(provider);
        let longer: Vec<String> = registry::all(&self.dirs.installed_providers())
            .unwrap_or_default()
            .iter()
            .map(|p| prefix(p.name()))
            .filter(|p| p.len() > own.len() && p.starts_with(&own))
            .collect();
        self.env
            .iter()
            .filter(|(k, _)| !longer.iter().any(|p| k.starts_with(p.as_str())))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Loads and configures provider `name` for lease operations (credentials required).
    pub async fn session(&self, name: &str) -> Result<Session> {
        let loaded = self.load(name).await?;
        self.configure(loaded).await
    }

    /// Configures a loaded provider: resolves its options, checks credentials, hands over
    /// settings.
    pub async fn configure(&self, loaded: Loaded) -> Result<Session> {
        let Loaded {
            grant,
            instance,
            info,
            package,
            ..
        } = loaded;
        let name = info.name.clone();
        let env_vars = self.option_vars(&name);
        let options = self.config.options(
            &name,
            &info.options,
            &package.manifest.user_only_options,
            &self.global.options,
            &env_vars,
        )?;
        grant.require_auth()?;
        let settings = api::Settings {
            options: options
                .iter()
                .map(|o| (o.name.clone(), o.value.clone()))
                .collect(),
            endpoints: grant.endpoint_urls(),
            credentials: grant.credential_names(),
        };
        let mut session = Session {
            provider: instance,
            grant,
            info,
            profile: api::Profile {
                work_root: String::new(),
                summary: Vec::new(),
            },
            options,
            claims: Claims::new(self.dirs.claims()),
            dirs: self.dirs.clone(),
            quiet: self.global.quiet,
            retry: RetryPolicy::default(),
        };
        let profile = session.provider.configure(settings).await;
        session.profile = profile.map_err(|e| session.failure(e))?;
        Ok(session)
    }
}
