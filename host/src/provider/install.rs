//! Installing and removing providers: fetch a component and its manifest, verify the digest,
//! describe it under an empty grant, say exactly what it asks for, and — once the user
//! approves — store it and record the approval pinned to its sha256.
//!
//! The command asks the user; everything else is here.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::bindings::api::ProviderInfo;
use super::contract::{self, Fit};
use super::limits::Limits;
use super::load::Runtime;
use super::registry::{self, COMPONENT_FILE, MANIFEST_FILE, Origin, ProviderPackage, VERSION_FILE};
use crate::digest::sha256_hex;
use crate::error::{ErrorKind, Failure, fail};
use crate::grant::approval::{Approval, Approvals};
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

    /// Its version, as it describes itself.
    pub fn version(&self) -> &str {
        &self.info.version
    }

    /// The component's sha256.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether the user already approved exactly this component and no less than its manifest
    /// asks for (then there is nothing to ask).
    pub fn already_approved(&self, approvals: &Approvals) -> Result<bool> {
        Ok(approvals
            .get(self.name())?
            .is_some_and(|a| a.sha256 == self.digest && a.excess(&self.manifest).is_empty()))
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
        approvals.put(
            self.name(),
            Approval::of(&self.manifest, &self.digest, &self.source, self.version()),
        )
    }

    /// What the provider asks for, in words a reviewer can check.
    pub fn summary(&self) -> String {
        let m = &self.manifest;
        let mut s = String::new();
        let mut out = |l: String| {
            s.push_str(&l);
            s.push('\n');
        };
        out(format!(
            "provider {} {} — {}",
            m.name, self.info.version, self.info.description
        ));
        out(format!("  from     {}", self.source));
        out(format!("  sha256   {}", self.digest));
        out(format!(
            "  contract {}@{}",
            contract::PACKAGE,
            self.fit.version
        ));
        out("It asks for:".into());
        for line in capability_lines(m, self.fit.wasi) {
            out(line);
        }
        s
    }
}

/// One line per capability `m` asks for, then the limits it runs under.
fn capability_lines(m: &Manifest, wasi: bool) -> Vec<String> {
    let mut lines = Vec::new();
    if m.endpoints.is_empty() {
        lines.push("  network: none — it cannot reach the network at all".into());
    }
    for e in &m.endpoints {
        lines.push(format!(
            "  network: requests under {} (endpoint `{}`{})",
            e.url,
            e.name,
            e.env
                .as_ref()
                .map(|v| format!("; you may point it elsewhere with {v}"))
                .unwrap_or_default()
        ));
    }
    for c in &m.credentials {
        lines.push(format!(
            "  credential `{}`: the value of {} sent as `{}: {}` only to endpoint `{}`{}",
            c.name,
            c.env,
            c.header,
            c.format.replace("{value}", "…"),
            c.endpoint,
            if c.secret {
                " (cbx attaches it; the provider never sees it)"
            } else {
                ""
            }
        ));
    }
    lines.extend(ssh_lines(m));
    if wasi {
        lines.push(
            "  WASI: clocks and randomness only (no environment, arguments, files or sockets)"
                .into(),
        );
    }
    let limits = Limits::default();
    lines.push(format!(
        "  limits: {} MiB of memory, {}s of CPU and {}s per call",
        limits.memory_bytes >> 20,
        limits.cpu_per_call.as_secs(),
        limits.wall_per_call.as_secs()
    ));
    lines
}

/// Where the provider may have cbx send the user's files, commands and `--env` values over
/// SSH, and with which key.
fn ssh_lines(m: &Manifest) -> Vec<String> {
    let Some(ssh) = &m.ssh else {
        return vec![
            "  ssh: none — cbx will send your files to no SSH destination it names".into(),
        ];
    };
    let mut lines = Vec::new();
    if let Some(host) = &ssh.host_option {
        lines.push(format!(
            "  ssh: your files, commands and --env values go only to the host{} you set in your option `{host}`{}",
            if ssh.port_option.is_some() { " and port" } else { "" },
            ssh.port_option
                .as_ref()
                .map(|p| format!(" and `{p}`"))
                .unwrap_or_default()
        ));
    }
    for d in &ssh.destinations {
        lines.push(format!(
            "  ssh: your files, commands and --env values may be sent to {d}{}",
            ssh.env
                .as_ref()
                .map(|v| format!("; you may point it elsewhere with {v}"))
                .unwrap_or_default()
        ));
    }
    lines.push(match &ssh.identity_option {
        Some(o) => format!("  ssh key: the one you set in your option `{o}` (never one it picks)"),
        None => "  ssh key: none (it may never pick one)".into(),
    });
    lines
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
