//! `cbx providers install` and `cbx providers remove`.
//!
//! Installing shows exactly what a provider asks for — the endpoints it may reach, the
//! credentials cbx would attach for it, whether it uses WASI — and records the user's
//! approval pinned to the component's sha256. Nothing of the provider runs before that except
//! `describe`, under an empty grant.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};

use crate::cli::Context;
use crate::cli::args::InstallArgs;
use crate::error::{ErrorKind, Failure, fail};
use crate::grant::approval::{Approval, Approvals};
use crate::grant::{EndpointOverrides, Grant};
use crate::provider::contract;
use crate::provider::manifest::Manifest;
use crate::provider::registry::{
    self, COMPONENT_FILE, MANIFEST_FILE, Origin, ProviderPackage, VERSION_FILE,
};

/// Largest component accepted.
const MAX_COMPONENT_BYTES: usize = 256 << 20;

/// Runs `cbx providers install`.
pub async fn run(ctx: &Context, args: &InstallArgs) -> Result<u8> {
    let (component, source) = fetch(&args.source, &ctx.cwd)
        .await
        .context("read the component")?;
    let digest = hex::encode(Sha256::digest(&component));
    match &args.sha256 {
        Some(want) if !want.eq_ignore_ascii_case(&digest) => {
            return Err(Failure::new(
                ErrorKind::Denied,
                format!("the component's sha256 is {digest}, not the {want} you expected; nothing was installed"),
            )
            .into());
        }
        None if is_url(&args.source) => {
            return Err(fail(
                ErrorKind::Usage,
                "installing from a URL needs --sha256 <hex> (the digest you expect), so a changed download is refused",
            ));
        }
        _ => {}
    }
    let manifest_source = match &args.manifest {
        Some(m) => m.clone(),
        None => beside(&args.source, &ctx.cwd)?,
    };
    let (manifest_bytes, manifest_shown) =
        fetch(&manifest_source, &ctx.cwd).await.with_context(|| {
            format!("read the manifest (give it with --manifest if it is not {manifest_source})")
        })?;
    let manifest_text =
        String::from_utf8(manifest_bytes).context("the manifest is not UTF-8 text")?;
    let manifest = Manifest::parse(&manifest_shown, &manifest_text)
        .map_err(|d| Failure::new(ErrorKind::Usage, format!("invalid provider manifest\n{d}")))?;
    let name = manifest.name.clone();
    if registry::builtin().iter().any(|p| p.name() == name) {
        return Err(fail(
            ErrorKind::Usage,
            format!(
                "`{name}` is the name of a provider built into cbx; give the provider another name in its manifest"
            ),
        ));
    }

    // Load it under an empty grant: it may describe itself, and nothing else.
    let package = ProviderPackage::from_parts(
        &manifest_shown,
        &manifest_text,
        component.clone(),
        Origin::File(source.clone()),
    )?;
    let empty = Manifest {
        endpoints: Vec::new(),
        credentials: Vec::new(),
        auth: None,
        ..manifest.clone()
    };
    let grant = Arc::new(Grant::resolve(
        &empty,
        &EndpointOverrides::default(),
        &|_| None,
        &ctx.redactor,
    )?);
    let loaded = ctx.load_package(package, grant, None).await?;
    let fit = contract::check(loaded.engine.wasmtime(), &loaded.component)?;
    let version = loaded.info.version.clone();

    print!(
        "{}",
        request_summary(&manifest, &loaded.info, &digest, &source, &fit)
    );
    let approvals = Approvals::new(ctx.dirs.grants_file());
    let already = approvals
        .get(&name)?
        .is_some_and(|a| a.sha256 == digest && a.excess(&manifest).is_empty());
    if !already && !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::new(
                ErrorKind::Usage,
                format!("installing {name} needs your approval"),
            )
            .hint("review the capabilities above, then rerun with --yes to approve them")
            .into());
        }
        eprint!("Approve provider {name} with exactly these capabilities? [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(fail(
                ErrorKind::Denied,
                format!("not approved; {name} was not installed"),
            ));
        }
    }

    store(
        &ctx.dirs.installed_providers(),
        &name,
        &component,
        &manifest_text,
        &version,
    )?;
    approvals.put(&name, Approval::of(&manifest, &digest, &source, &version))?;
    println!("installed {name} {version} (sha256 {digest})");
    eprintln!("try it: cbx --provider {name} doctor");
    Ok(0)
}

/// Runs `cbx providers remove`.
pub async fn remove(ctx: &Context, name: &str) -> Result<u8> {
    if registry::builtin().iter().any(|p| p.name() == name) {
        return Err(fail(
            ErrorKind::Usage,
            format!("{name} is built into cbx and cannot be removed"),
        ));
    }
    let dir = ctx.dirs.installed_providers().join(name);
    let approvals = Approvals::new(ctx.dirs.grants_file());
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
    approvals.remove(name)?;
    println!("removed {name}");
    Ok(0)
}

/// What the provider asks for, in words a reviewer can check.
fn request_summary(
    m: &Manifest,
    info: &crate::provider::api::ProviderInfo,
    digest: &str,
    source: &str,
    fit: &contract::Fit,
) -> String {
    let mut s = String::new();
    let mut out = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    out(format!(
        "provider {} {} — {}",
        m.name, info.version, info.description
    ));
    out(format!("  from     {source}"));
    out(format!("  sha256   {digest}"));
    out(format!("  contract {}@{}", contract::PACKAGE, fit.version));
    out("It asks for:".into());
    if m.endpoints.is_empty() {
        out("  network: none — it cannot reach the network at all".into());
    }
    for e in &m.endpoints {
        out(format!(
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
        out(format!(
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
    if fit.wasi {
        out(
            "  WASI: clocks and randomness only (no environment, arguments, files or sockets)"
                .into(),
        );
    }
    out(format!(
        "  limits: {} MiB of memory, {}s of CPU and {}s per call",
        crate::provider::Limits::default().memory_bytes >> 20,
        crate::provider::Limits::default().cpu_per_call.as_secs(),
        crate::provider::Limits::default().wall_per_call.as_secs()
    ));
    s
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
    let url = crate::provider::manifest::parse_endpoint_url(source).map_err(|m| {
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
