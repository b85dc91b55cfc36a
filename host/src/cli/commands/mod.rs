//! One module per command.

pub mod conformance;
pub mod doctor;
pub mod install;
pub mod list;
pub mod providers;
pub mod run;
pub mod ssh;
pub mod status;
pub mod stop;
pub mod warmup;

use std::path::{Path, PathBuf};

/// The git work tree containing `dir`, if any (found by walking up to a `.git`).
pub fn repo_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

/// The provider for a command naming `ident`: `--provider` if given, else the provider of a
/// local claim matching it, else the configured default.
pub fn provider_for(ctx: &crate::cli::Context, ident: &str) -> anyhow::Result<String> {
    if ctx.global.provider.is_some() {
        return Ok(ctx.provider_name());
    }
    let claims = crate::lease::claims::Claims::new(ctx.dirs.claims()).all()?;
    let id = crate::lease::id::LeaseId::parse(ident);
    let slug = crate::lease::id::normalize_slug(ident);
    let mut providers: Vec<String> = claims
        .into_iter()
        .filter(|c| Some(&c.lease_id) == id.as_ref() || c.slug == slug)
        .map(|c| c.provider)
        .collect();
    providers.dedup();
    Ok(match providers.as_slice() {
        [one] => one.clone(),
        _ => ctx.provider_name(),
    })
}
