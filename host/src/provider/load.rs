//! Loading a provider: from a name to something callable in one library call, in the stages
//! of Spin's factors.
//!
//! 1. **init** — [`Runtime::new`]: what every provider of this invocation shares: where
//!    providers are installed and approved, the compiled-component cache, the audit log, the
//!    environment credentials are read from, the redactor and the limits.
//! 2. **configure** — [`Runtime::load`]: find the package, check the user's approval (for an
//!    installed provider), resolve its grant ([`Runtime::find`]: a [`Found`] provider),
//!    compile the component (or load it from the cache), check that it fits the contract,
//!    link it against the host's imports, send its events to the audit log and ask it to
//!    describe itself (remembered in the describe cache, `described`): a [`Loaded`] provider.
//!    Then [`Loaded::configure`] hands it its settings: a [`Configured`] provider, ready for
//!    lease operations. A command that may not call the provider at all (the warm path) stops
//!    after [`Runtime::find`] with the cached description: a [`Pending`] provider, loaded and
//!    configured on its first call.
//! 3. **prepare** — every instance gets a freshly prepared store (`store::prepare`), the first
//!    on the first call; after a fault the next call prepares a new one and replays the
//!    settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::bindings::api;
use super::capability::{self, Capability};
use super::contract::{self, Fit};
use super::described::{DescribeCache, Described};
use super::engine::{Compilation, Engine};
use super::events;
use super::failure::{self, CallError};
use super::inspect::{self, Interface};
use super::instance::ProviderInstance;
use super::limits::Limits;
use super::registry::{self, Origin, ProviderPackage};
use crate::audit::AuditLog;
use crate::environment::Environment;
use crate::error::{self, ErrorKind, Failure};
use crate::grant::approval::{Approval, Approvals};
use crate::grant::http::{HttpGateway, HttpLimits};
use crate::grant::ssh::SshGrant;
use crate::grant::{EndpointOverrides, Grant};
use crate::paths::Dirs;
use crate::provenance::Value;
use crate::redact::Redactor;
use crate::terminal::inert;

/// What every provider loaded in this invocation shares (the "init" stage).
#[derive(Clone)]
pub struct Runtime {
    installed: PathBuf,
    grants: PathBuf,
    component_cache: PathBuf,
    descriptions: PathBuf,
    audit_log: PathBuf,
    env: Environment,
    redactor: Redactor,
    limits: Limits,
    http_limits: HttpLimits,
}

/// A component compiled, checked against the contract and linked, not yet instantiated.
pub struct Linked {
    /// The provider, ready for its first call.
    pub instance: ProviderInstance,
    /// Whether the compiled code came from the cache.
    pub compilation: Compilation,
    /// What the component's interface says about it.
    pub fit: Fit,
    /// What it imports.
    pub imports: Vec<Interface>,
    /// What it exports.
    pub exports: Vec<Interface>,
}

/// Compiles (or loads from cache) `package`'s component, checks it against the contract and
/// links it under `grant`, ready for its first call. The one way cbx turns a provider
/// package into something callable.
pub fn instantiate(
    engine: &Engine,
    package: &ProviderPackage,
    grant: Arc<Grant>,
    redactor: Redactor,
    limits: Limits,
    http_limits: HttpLimits,
) -> Result<Linked> {
    let name = package.name();
    let (component, compilation) = engine
        .load_digested(&package.component, &package.digest)
        .with_context(|| format!("load provider {name}"))?;
    let (imports, exports) = inspect::interfaces(engine.wasmtime(), &component);
    let fit = contract::check_interfaces(&imports, &exports)
        .with_context(|| format!("provider {name} does not fit this cbx"))?;
    let gateway = HttpGateway::new(grant, http_limits, redactor.clone())?;
    let instance = ProviderInstance::new(name, engine, &component, gateway, redactor, limits)?;
    Ok(Linked {
        instance,
        compilation,
        fit,
        imports,
        exports,
    })
}

/// A provider loaded for review: under its grant if the user approved it, else under an
/// empty grant, with the reason it was refused.
pub struct Review {
    /// The provider.
    pub loaded: Loaded,
    /// Why it may not run under its own grant, if it may not.
    pub refused: Option<String>,
}

impl Runtime {
    /// The runtime of one invocation: cbx's directories, the environment credentials come
    /// from, and the redactor every secret is registered with.
    pub fn new(dirs: &Dirs, env: &Environment, redactor: &Redactor) -> Runtime {
        Runtime {
            installed: dirs.installed_providers(),
            grants: dirs.grants_file(),
            component_cache: dirs.component_cache(),
            descriptions: dirs.descriptions(),
            audit_log: dirs.audit_log(),
            env: env.clone(),
            redactor: redactor.clone(),
            limits: Limits::default(),
            http_limits: HttpLimits::default(),
        }
    }

    /// Loads provider `name` under its grant — the manifest narrowed by the user's `choices`
    /// — after checking the user's approval of an installed provider.
    pub async fn load(&self, name: &str, choices: &EndpointOverrides) -> Result<Loaded> {
        let found = self.find(name, choices)?;
        self.link(found.package, found.grant, found.approval).await
    }

    /// Finds provider `name`, checks the user's approval of an installed provider and
    /// resolves its grant — everything [`Runtime::load`] does before compiling anything.
    pub fn find(&self, name: &str, choices: &EndpointOverrides) -> Result<Found> {
        let package = registry::find(&self.installed, name)?;
        let approval = match package.origin {
            Origin::Builtin => None,
            Origin::File(_) => Some(self.approvals().check(
                name,
                &package.digest,
                &package.manifest,
            )?),
        };
        let grant = Grant::resolve(
            &package.manifest,
            choices,
            &|k| self.env.var(k),
            &self.redactor,
        )?;
        Ok(Found {
            package,
            grant: Arc::new(grant),
            approval,
        })
    }

    /// What `found`'s component said about itself when it was last loaded (the describe
    /// cache), if this cbx can use it.
    pub fn described(&self, found: &Found) -> Option<Described> {
        self.descriptions()
            .read(&found.package.digest, &found.package.manifest.name)
    }

    /// Loads `found` (compile or load from cache, check, link, describe).
    pub async fn load_found(&self, found: Found) -> Result<Loaded> {
        self.link(found.package, found.grant, found.approval).await
    }

    /// What `found`'s component answered `configure` with when it was last configured with
    /// `options` (and its grant's endpoints and credential names): the describe cache's.
    pub fn configured_before(
        &self,
        found: &Found,
        options: &[(String, Value<String>)],
    ) -> Option<api::Profile> {
        let settings = settings_of(options, &found.grant);
        self.descriptions()
            .read_profile(&found.package.digest, &settings)
    }

    fn descriptions(&self) -> DescribeCache {
        DescribeCache::new(self.descriptions.clone())
    }

    /// Loads `package` — a component file the user named, not installed — under its grant
    /// (the manifest narrowed by `choices`), without an approval: `cbx providers test
    /// --component`, which shows the user what it asks for first and records nothing.
    pub async fn load_file(
        &self,
        package: ProviderPackage,
        choices: &EndpointOverrides,
    ) -> Result<Loaded> {
        let grant = Grant::resolve(
            &package.manifest,
            choices,
            &|k| self.env.var(k),
            &self.redactor,
        )?;
        self.link(package, Arc::new(grant), None).await
    }

    /// Loads provider `name` for review (`inspect`): an approved provider under its grant,
    /// others — not approved, changed, asking for more — under an empty grant, with the
    /// reason.
    pub async fn review(&self, name: &str, choices: &EndpointOverrides) -> Result<Review> {
        let package = registry::find(&self.installed, name)?;
        if let Origin::File(_) = package.origin
            && let Err(e) = self
                .approvals()
                .check(name, &package.digest, &package.manifest)
        {
            let loaded = self.load_unapproved(package).await?;
            return Ok(Review {
                loaded,
                refused: Some(e.to_string()),
            });
        }
        Ok(Review {
            loaded: self.load(name, choices).await?,
            refused: None,
        })
    }

    /// Loads `package` under an empty grant: it may describe itself, and nothing else (an
    /// installed provider being reviewed, or installed).
    pub async fn load_unapproved(&self, package: ProviderPackage) -> Result<Loaded> {
        let grant = Arc::new(Grant::empty(package.name()));
        self.link(package, grant, None).await
    }

    fn approvals(&self) -> Approvals {
        Approvals::new(self.grants.clone())
    }

    /// Compiles, checks and links `package` under `grant`, with its activity going to the
    /// audit log, and asks it to describe itself.
    async fn link(
        &self,
        package: ProviderPackage,
        grant: Arc<Grant>,
        approval: Option<Approval>,
    ) -> Result<Loaded> {
        let engine = Engine::new(Some(self.component_cache.clone()))?;
        let started = Instant::now();
        let mut linked = instantiate(
            &engine,
            &package,
            grant.clone(),
            self.redactor.clone(),
            self.limits,
            self.http_limits,
        )?;
        let load_time = started.elapsed();
        tracing::debug!(
            "loaded provider {} ({:?}) in {load_time:?}",
            package.name(),
            linked.compilation
        );
        linked
            .instance
            .observe(events::audit_observer(AuditLog::new(
                self.audit_log.clone(),
            )));
        let info = linked.instance.describe().await.map_err(|e| {
            let message = self.redactor.redact(&e.to_string());
            anyhow::Error::new(Failure::new(ErrorKind::Provider, inert(&message)))
        })?;
        if info.name != package.manifest.name {
            return Err(error::fail(
                ErrorKind::Provider,
                format!(
                    "the component calls itself `{}`, but its manifest says `{}`",
                    inert(&info.name),
                    package.manifest.name
                ),
            ));
        }
        self.descriptions().remember(
            &package.digest,
            &Described {
                info: info.clone(),
                capabilities: linked.fit.capabilities.clone(),
            },
        );
        Ok(Loaded {
            package,
            grant,
            info,
            approval,
            load_time,
            linked,
            descriptions: self.descriptions(),
        })
    }
}

/// The settings `configure` is handed: `options`' values, `grant`'s endpoint URLs and
/// credential names.
fn settings_of(options: &[(String, Value<String>)], grant: &Grant) -> api::Settings {
    api::Settings {
        options: options
            .iter()
            .map(|(name, value)| (name.clone(), value.val.clone()))
            .collect(),
        endpoints: grant.endpoint_urls(),
        credentials: grant.credential_names(),
    }
}

/// A provider found, approved (if installed) and granted, not yet compiled or instantiated:
/// the first stage of [`Runtime::load`].
#[derive(Clone)]
pub struct Found {
    package: ProviderPackage,
    grant: Arc<Grant>,
    approval: Option<Approval>,
}

impl Found {
    /// Its package.
    pub fn package(&self) -> &ProviderPackage {
        &self.package
    }

    /// Its effective grant.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }
}

/// A provider that is loaded on its first call: found, approved and granted, its options
/// resolved from its cached description and its profile the one it answered these settings
/// with before (see `described`), credentials checked. Loading it does what
/// [`Runtime::load`] and [`Loaded::configure`] do, with the same errors.
pub struct Pending {
    runtime: Runtime,
    found: Found,
    described: Described,
    options: Vec<(String, Value<String>)>,
    profile: api::Profile,
    ssh: SshGrant,
}

impl Pending {
    /// `found`, described as `described`, to be configured with `options` when it is loaded;
    /// `profile` is what it answered them with before ([`Runtime::configured_before`]). Its
    /// credentials must be there now and the work root usable, as for [`Loaded::configure`].
    pub fn new(
        runtime: Runtime,
        found: Found,
        described: Described,
        options: Vec<(String, Value<String>)>,
        profile: api::Profile,
    ) -> Result<Pending> {
        found.grant.require_auth()?;
        crate::remote::check_work_root(found.package.name(), &profile.work_root)?;
        let ssh = found.grant.ssh.with_options(&options);
        Ok(Pending {
            runtime,
            found,
            described,
            options,
            profile,
            ssh,
        })
    }

    /// What it answered these settings with when it was last configured with them.
    pub fn profile(&self) -> &api::Profile {
        &self.profile
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.found.package.manifest.name
    }

    /// What it said about itself (cached).
    pub fn info(&self) -> &api::ProviderInfo {
        &self.described.info
    }

    /// Its effective grant.
    pub fn grant(&self) -> &Grant {
        &self.found.grant
    }

    /// Its SSH grant, completed with the user's options.
    pub fn ssh_grant(&self) -> &SshGrant {
        &self.ssh
    }

    /// The redactor its secrets are registered with.
    pub fn redactor(&self) -> &Redactor {
        &self.runtime.redactor
    }

    /// `Ok` if it offers `capability`; else the usage error (exit 2) that `command` gives.
    pub fn require(&self, capability: Capability, command: &str) -> Result<()> {
        capability::require(
            self.name(),
            &self.described.capabilities,
            capability,
            command,
        )
    }

    /// Loads, describes and configures it. Its options were resolved from the cached
    /// description, which is the description of this very component (the cache is keyed by
    /// its digest); one that differs now is replaced in the cache, for the next command.
    pub async fn load(&self) -> Result<Configured> {
        tracing::debug!("loading provider {} on its first call", self.name());
        let loaded = self.runtime.load_found(self.found.clone()).await?;
        if !self
            .described
            .same_as(loaded.info(), &loaded.fit().capabilities)
        {
            tracing::warn!(
                "provider {} described itself differently from its cached description",
                self.name()
            );
        }
        loaded.configure(&self.options).await
    }
}

/// A provider loaded, checked and described, before it is configured.
pub struct Loaded {
    package: ProviderPackage,
    grant: Arc<Grant>,
    info: api::ProviderInfo,
    approval: Option<Approval>,
    load_time: Duration,
    linked: Linked,
    descriptions: DescribeCache,
}

impl Loaded {
    /// Its package: manifest, component, digest, origin.
    pub fn package(&self) -> &ProviderPackage {
        &self.package
    }

    /// Its effective grant.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// What it says about itself.
    pub fn info(&self) -> &api::ProviderInfo {
        &self.info
    }

    /// The user's approval (installed providers under their own grant; none otherwise).
    pub fn approval(&self) -> Option<&Approval> {
        self.approval.as_ref()
    }

    /// Whether its compiled code came from the cache.
    pub fn from_cache(&self) -> bool {
        self.linked.compilation == Compilation::Cached
    }

    /// How long compiling (or loading from cache) and linking took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// What its interface says about it: contract version, WASI.
    pub fn fit(&self) -> &Fit {
        &self.linked.fit
    }

    /// `Ok` if it exports `capability`; else the usage error (exit 2) that `command` gives
    /// before doing anything, naming the capability and the provider.
    pub fn require(&self, capability: Capability, command: &str) -> Result<()> {
        capability::require(
            &self.package.manifest.name,
            &self.linked.fit.capabilities,
            capability,
            command,
        )
    }

    /// What it imports.
    pub fn imports(&self) -> &[Interface] {
        &self.linked.imports
    }

    /// What it exports.
    pub fn exports(&self) -> &[Interface] {
        &self.linked.exports
    }

    /// Configures it with `options` (name, value and where it was set): checks that it can
    /// authenticate, then hands over its settings (options, endpoint URLs, credential names)
    /// and checks the work root it reports. The options also complete its SSH grant, for a
    /// provider whose destination or key is the user's own option.
    pub async fn configure(self, options: &[(String, Value<String>)]) -> Result<Configured> {
        let Loaded {
            package,
            grant,
            info,
            linked,
            descriptions,
            ..
        } = self;
        grant.require_auth()?;
        let settings = settings_of(options, &grant);
        let mut instance = linked.instance;
        let profile = match instance.configure(settings.clone()).await {
            Ok(p) => p,
            Err(e) => return Err(failure::to_failure(e, &grant, instance.redactor())),
        };
        crate::remote::check_work_root(instance.name(), &profile.work_root)?;
        descriptions.remember_profile(&package.digest, &settings, &profile);
        let ssh = grant.ssh.with_options(options);
        Ok(Configured {
            instance,
            grant,
            ssh,
            info,
            profile,
        })
    }
}

/// A configured provider, ready for lease operations.
pub struct Configured {
    instance: ProviderInstance,
    grant: Arc<Grant>,
    ssh: SshGrant,
    info: api::ProviderInfo,
    profile: api::Profile,
}

impl Configured {
    /// The provider's name.
    pub fn name(&self) -> &str {
        self.instance.name()
    }

    /// What it says about itself.
    pub fn info(&self) -> &api::ProviderInfo {
        &self.info
    }

    /// Its effective grant.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// What it reported after accepting its settings.
    pub fn profile(&self) -> &api::Profile {
        &self.profile
    }

    /// Where its minted SSH access may lead, and the user's key: its grant's, completed with
    /// the user's options.
    pub fn ssh_grant(&self) -> &SshGrant {
        &self.ssh
    }

    /// The redactor its secrets are registered with.
    pub fn redactor(&self) -> &Redactor {
        self.instance.redactor()
    }

    /// The instance, to call.
    pub fn instance(&mut self) -> &mut ProviderInstance {
        &mut self.instance
    }

    /// The optional capabilities it exports.
    pub fn capabilities(&self) -> Vec<Capability> {
        self.instance.capabilities()
    }

    /// `Ok` if it offers `capability`; else the usage error (exit 2) that `command` gives
    /// before doing anything, naming the capability and the provider.
    pub fn require(&self, capability: Capability, command: &str) -> Result<()> {
        capability::require(self.name(), &self.capabilities(), capability, command)
    }

    /// Turns a failed call into a cbx failure with a kind and a hint.
    pub fn failure(&self, err: CallError) -> anyhow::Error {
        failure::to_failure(err, &self.grant, self.instance.redactor())
    }
}
