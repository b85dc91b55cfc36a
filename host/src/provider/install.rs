//! Installing and removing providers: fetch a component and its manifest, verify the digest,
//! describe it under an empty grant, say exactly what it asks for (and what changed since an
//! earlier approval), and — once the user approves — store it and record the approval pinned
//! to the component's sha256 and the manifest's.
//!
//! The command asks the user; everything else is here.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::bindings::api::ProviderInfo;
use super::contract::Fit;
use super::load::Runtime;
use super::registry::{self, COMPONENT_FILE, MANIFEST_FILE, Origin, ProviderPackage, VERSION_FILE};
use super::screen::Screen;
use crate::digest::sha256_hex;
use crate::error::{ErrorKind, Failure, fail};
use crate::grant::approval::{Approval, Approvals};
use crate::grant::changes;
use crate::grant::manifest::{Manifest, parse_endpoint_url};

/// Largest component accepted.
const MAX_COMPONENT_BYTES: usize = 256 << 20;

/// What the user asked to install.
#[derive(Debug, Clone)]
pub struct InstallRequest {
    /// The component: a local file or an https URL.
    pub source: String,
    /// Its manifest (default: `cbx-provider.toml` beside the component).
    pub manifest: Option<String>,
    /// The sha256 the user expects (required for URLs).
    pub sha256: Option<String>,
}

/// A provider fetched, verified and described, waiting for the user's approval.
pub struct Candidate {
    manifest: Manifest,
    manifest_text: String,
    component: Vec<u8>,
    digest: String,
    source: String,
    info: ProviderInfo,
    fit: Fit,
}

/// Fetches and checks what `request` names, and lets the component describe itself under an
/// empty grant: nothing of it runs before the user approves it, except `describe`.
pub async fn prepare(runtime: &Runtime, request: &InstallRequest, cwd: &Path) -> Result<Candidate> {
    let (component, source) = fetch(&request.source, cwd)
        .await
        .context("read the component")?;
    let digest = sha256_hex(&component);
    match &request.sha256 {
        Some(want) if !want.eq_ignore_ascii_case(&digest) => {
            return Err(Failure::new(
                ErrorKind::Denied,
                format!("the component's sha256 is {digest}, not the {want} you expected; nothing was installed"),
            )
            .into());
        }
        None if is_url(&request.source) => {
            return Err(fail(
                ErrorKind::Usage,
                "installing from a URL needs --sha256 <hex> (the digest you expect), so a changed download is refused",
            ));
        }
        _ => {}
    }
    let (manifest, manifest_text, manifest_shown) = fetch_manifest(request, cwd).await?;
    let name = manifest.name.clone();
    if registry::is_builtin(&name) {
        return Err(fail(
            ErrorKind::Usage,
            format!(
                "`{name}` is the name of a provider built into cbx; give the provider another name in its manifest"
            ),
        ));
    }
    let package = ProviderPackage::from_parts(
        &manifest_shown,
        &manifest_text,
        component.clone(),
        Origin::File(source.clone()),
    )?;
    let loaded = runtime.load_unapproved(package).await?;
    Ok(Candidate {
        manifest,
        manifest_text,
        component,
        digest,
        source,
        info: loaded.info().clone(),
        fit: loaded.fit().clone(),
    })
}

/// The manifest `request` names (or the one beside the component), parsed and validated, with
/// its text and where it was read from.
async fn fetch_manifest(
    request: &InstallRequest,
    cwd: &Path,
) -> Result<(Manifest, String, String)> {
    let manifest_source = match &request.manifest {
        Some(m) => m.clone(),
        None => beside(&request.source, cwd)?,
    };
    let (bytes, shown) = fetch(&manifest_source, cwd).await.with_context(|| {
        format!("read the manifest (give it with --manifest if it is not {manifest_source})")
    })?;
    let text = String::from_utf8(bytes).context("the manifest is not UTF-8 text")?;
    let manifest = Manifest::parse(&shown, &text)
        .map_err(|d| Failure::new(ErrorKind::Usage, format!("invalid provider manifest\n{d}")))?;
    Ok((manifest, text, shown))
}

impl Candidate {
    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Its component and manifest as a package (not installed).
    pub fn package(&self) -> Result<ProviderPackage> {
        ProviderPackage::from_parts(
            &self.manifest.origin,
            &self.manifest_text,
            self.component.clone(),
            Origin::File(self.source.clone()),
        )
    }

    /// Its version, as it describes itself.
    pub fn version(&self) -> &str {
        &self.info.version
    }

    /// The component's sha256.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The screen that asks for approval: what it is, its own words fenced, what it asks for,
    /// and credential variables another provider installed under `installed_dir` (or built
    /// in) uses.
    pub fn screen(&self, installed_dir: &Path, colour: bool) -> Result<String> {
        let shared = registry::shared_credentials(installed_dir, &self.manifest)?;
        Ok(Screen {
            manifest: &self.manifest,
            info: &self.info,
            fit: &self.fit,
            source: &self.source,
            digest: &self.digest,
            shared: &shared,
        }
        .render(colour))
    }

    /// Where it stands with the user's approvals: approved exactly as it is (component and
    /// manifest), never approved, or changed since — with what changed, from the approved
    /// manifest installed under `installed_dir` (when it is still the one approved).
    pub fn standing(&self, approvals: &Approvals, installed_dir: &Path) -> Result<Standing> {
        let Some(approval) = approvals.get(self.name())? else {
            return Ok(Standing::New);
        };
        if approval.sha256 == self.digest
            && approval.pins_manifest()
            && approval.manifest_sha256 == self.manifest.sha256
        {
            return Ok(Standing::Approved);
        }
        let mut lines = Vec::new();
        if approval.sha256 != self.digest {
            lines.push(format!(
                "~ component: sha256 {} → {} (version {} → {})",
                approval.sha256,
                self.digest,
                approval.version,
                self.version()
            ));
        }
        match approved_manifest(installed_dir, self.name(), &approval) {
            Some(old) => {
                // Component facts an older approval did not record are left out of both sides.
                let (before, now) = match (&approval.wasi, &approval.options) {
                    (Some(wasi), Some(options)) => (
                        facts(&old, *wasi, options),
                        facts(&self.manifest, self.fit.wasi, &self.option_names()),
                    ),
                    _ => (facts(&old, false, &[]), facts(&self.manifest, false, &[])),
                };
                lines.extend(changes::difference(&before, &now));
            }
            None => lines.push(
                "! the earlier approval does not pin a manifest cbx still has (an earlier cbx wrote it, or the installed copy changed): everything it asks for is shown above, as if new".to_string(),
            ),
        }
        Ok(Standing::Changed(lines))
    }

    fn option_names(&self) -> Vec<String> {
        self.info.options.iter().map(|o| o.name.clone()).collect()
    }

    /// Stores the provider under `installed_dir` (replacing an earlier install whole) and
    /// records the user's approval of exactly what it asks for.
    pub fn install(&self, installed_dir: &Path, approvals: &Approvals) -> Result<()> {
        store(
            installed_dir,
            self.name(),
            &self.component,
            &self.manifest_text,
            self.version(),
        )?;
        let mut approval = Approval::of(&self.manifest, &self.digest, &self.source, self.version());
        approval.wasi = Some(self.fit.wasi);
        approval.options = Some(self.option_names());
        approvals.put(self.name(), approval)
    }
}

/// Where a candidate stands with the user's approvals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Approved exactly as it is: nothing to ask.
    Approved,
    /// Never approved.
    New,
    /// Approved before, but its component or manifest changed: what changed, in cbx's words.
    Changed(Vec<String>),
}

/// The manifest installed for `name` under `installed_dir`, if it is still the one `approval`
/// pinned.
fn approved_manifest(installed_dir: &Path, name: &str, approval: &Approval) -> Option<Manifest> {
    if !approval.pins_manifest() {
        return None;
    }
    let path = installed_dir.join(name).join(MANIFEST_FILE);
    let text = fs_err::read_to_string(&path).ok()?;
    let manifest = Manifest::parse(&path.display().to_string(), &text).ok()?;
    (manifest.sha256 == approval.manifest_sha256).then_some(manifest)
}

/// The facts of a manifest and a component with `wasi` and `options`, as an approval covers
/// them.
fn facts(manifest: &Manifest, wasi: bool, options: &[String]) -> changes::Facts {
    let mut facts = changes::manifest_facts(manifest);
    if wasi {
        facts.insert("WASI".into(), "clocks and randomness only".into());
    }
    if !options.is_empty() {
        facts.insert("options".into(), options.join(", "));
    }
    facts
}

/// Uninstalls provider `name` from `installed_dir` and forgets its approval.
pub fn remove(installed_dir: &Path, approvals: &Approvals, name: &str) -> Result<()> {
    if registry::is_builtin(name) {
        return Err(fail(
            ErrorKind::Usage,
            format!("{name} is built into cbx and cannot be removed"),
        ));
    }
    let dir = installed_dir.join(name);
    let approved = approvals.get(name)?.is_some();
    if !dir.exists() && !approved {
        return Err(Failure::new(
            ErrorKind::NotFound,
            format!("no installed provider `{name}`"),
        )
        .hint("`cbx providers list` shows the installed providers")
        .into());
    }
    if dir.exists() {
        fs_err::remove_dir_all(&dir)?;
    }
    approvals.remove(name)
}

fn is_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

/// Where the manifest is by default: `cbx-provider.toml` beside the component.
fn beside(source: &str, cwd: &Path) -> Result<String> {
    if is_url(source) {
        let url = url::Url::parse(source).context("parse the component URL")?;
        return Ok(url
            .join(MANIFEST_FILE)
            .context("build the manifest URL")?
            .to_string());
    }
    let path = cwd.join(source);
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(dir.join(MANIFEST_FILE).display().to_string())
}

/// Reads a local file or downloads an https URL (plain http only from loopback).
async fn fetch(source: &str, cwd: &Path) -> Result<(Vec<u8>, String)> {
    if !is_url(source) {
        let path = cwd.join(source);
        let bytes = fs_err::read(&path)?;
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(fail(
                ErrorKind::Usage,
                format!(
                    "{} is larger than {} MiB",
                    path.display(),
                    MAX_COMPONENT_BYTES >> 20
                ),
            ));
        }
        let shown = path.canonicalize().unwrap_or(path).display().to_string();
        return Ok((bytes, shown));
    }
    let url = parse_endpoint_url(source).map_err(|m| {
        Failure::new(
            ErrorKind::Usage,
            format!("cannot download the provider: {m}"),
        )
    })?;
    let client = reqwest::Client::builder()
        .user_agent(concat!("cbx/", env!("CARGO_PKG_VERSION")))
        .timeout(std::time::Duration::from_secs(300))
        .build()?;
    let mut response = client.get(url.clone()).send().await?.error_for_status()?;
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(fail(
                ErrorKind::Usage,
                format!("{url} is larger than {} MiB", MAX_COMPONENT_BYTES >> 20),
            ));
        }
    }
    Ok((bytes, url.to_string()))
}

/// Writes the provider's files into `<dir>/<name>/`, replacing an earlier install whole.
fn store(dir: &Path, name: &str, component: &[u8], manifest: &str, version: &str) -> Result<()> {
    fs_err::create_dir_all(dir)?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}-"))
        .tempdir_in(dir)?;
    fs_err::write(staging.path().join(COMPONENT_FILE), component)?;
    fs_err::write(staging.path().join(MANIFEST_FILE), manifest)?;
    fs_err::write(staging.path().join(VERSION_FILE), version)?;
    let target = dir.join(name);
    if target.exists() {
        fs_err::remove_dir_all(&target)?;
    }
    let staged = staging.keep();
    fs_err::rename(&staged, &target)?;
    Ok(())
}
